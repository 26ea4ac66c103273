# ---
# jupyter:
#   kernelspec:
#     display_name: Python (siamese-lib)
#     language: python
#     name: siamese-lib
# ---

# %% [markdown]
# # Beyond the paper: one variant
#
# The paper closes with its further work: weighting the auxiliary losses, and L1/L2
# regularisation. Other public solutions of the task add data augmentation. This notebook trains
# **one variant** of the paper's setting on one architecture, over the seeds, and records every run
# in the results store; Section VII of the report compares the variants (Table IX).
#
# Every variant keeps the paper's protocol (Adam, mini-batches of 100 in a fixed order, 30 epochs,
# batch norm and weight sharing on, the corrected evaluation, the paper's learning rate for the
# architecture) and changes only what its description says - `best` also sets its own learning rate.
#
# **Fairness rule.** Only the training pairs train and choose. Each run holds out a validation
# split carved from its own shuffle of the training pairs (20 %: 200 of the paper's 1000; the
# input is normalised with the statistics of the other 800 alone); any choice between variants or
# comparison rules is made on those validation errors (`siamese_lib.analysis.beyond_paper.chosen`,
# through `experiments.selection.choose`, refuses test columns). The 1000 test pairs are scored once,
# for the final numbers.

# %% tags=["parameters"]
# fmt: off
# Parameters
from typing import Optional, Union  # noqa: F401 - for the annotations below

model: str = "LeNet5_FullyConv"               # the paper's best two: LeNet5_FullyConv and LeNet5
variant: str = "aug_all"                      # a name in siamese_lib.experiments.variants.VARIANTS
lr: float = 5e-2                              # the paper's rate for the model (a variant may replace it)
seeds: list[int] = [1, 2]                     # one training run per seed (the paper: 1..10)
epochs: int = 3                               # the paper: 30
nb_pairs: int = 200                           # training pairs and test pairs (the paper: 1000)
data_seed: int = 0                            # the prologue's torch.manual_seed(0): the authors' one pair set
batch_size: int = 100
device: str = "auto"                          # auto, cpu or cuda
store_dir: str = "../runs/interactive/store"  # results store; a relative path is taken from notebooks/
threads: int = 1                              # torch threads (the runner: 1 per kernel, same numbers for any --jobs)
force: Union[bool, float] = False             # True: retrain stored runs too (the runner's --force: a time stamp)
scheduler: Optional[str] = None              # None: train missing runs in this process; "tcp://HOST:8786": on that Dask cluster
# fmt: on

# %%
from siamese_lib.experiments.parameters import check_parameters

# every parameter checked against the run-configuration rules: a bad one ends here in one line
checked = check_parameters("beyond_paper", globals())  # globals(): a misspelt -p name is refused too
lr, seeds, store = checked["lr"], checked["seeds"], checked["store"]  # lr None: the paper's rate

# %%
import pandas as pd
from IPython.display import Markdown, display

from siamese_lib.analysis import beyond_paper as beyond
from siamese_lib.experiments import variants
from siamese_lib.experiments.planning import configs_for
from siamese_lib.pipeline.engine import ensure_runs

params = dict(
    nb_pairs=nb_pairs,
    data_seed=data_seed,
    batch_size=batch_size,
    store_dir=str(store),
    device=device,
    model=model,
    variant=variant,
    lr=lr,
    seeds=seeds,
    epochs=epochs,
)
configs = configs_for("beyond_paper", params)
spec = variants.VARIANTS[variant]
display(
    Markdown(
        f"**{model}, variant `{variant}`**: {spec['description']}. Changes to the paper's setting: "
        f"{spec['overrides'] or 'none'}; {configs[0].epochs} epochs; {configs[0].val_pairs} of the "
        f"{nb_pairs} training pairs held out for validation; {len(configs)} seed(s)."
    )
)

# %% [markdown]
# ## The runs
#
# One training run per seed. A run already in the store is read back, not retrained. The
# augmentations draw only on the trained-on pairs: *repair* builds every mini-batch from random
# pairs of the training digits (the target follows from their classes), *swap* exchanges the two
# images of a random half of the pairs (target recomputed), *shift* moves each image independently
# by up to one pixel (edges replicated).

# %%
records = ensure_runs(configs, store, device=device, force=force, scheduler=scheduler, threads=threads)
df = beyond.runs_frame(records, variant)

# %% [markdown]
# ## Error per seed (%)
#
# Three rules decide d1 <= d2: the learned comparison head (`error`), the comparison of the two
# predicted digits (`derived_error`), and the exact probability P(d1 <= d2) > 0.5 from the two
# digit softmaxes (`digit_prob_error`). Validation first - what a choice may use - then test.

# %%
cols = [f"{split}_{suffix}" for split in ("val", "test") for suffix in beyond.RULES.values()]
per_seed = df.set_index("seed")[[c for c in cols if c in df]]
table = pd.concat([per_seed, per_seed.agg(["mean", "std"])]).round(2)
table

# %% [markdown]
# ## Ensemble of the seeds
#
# The ensemble averages the seeds' outputs per test pair - the head's probability, P(d1 <= d2) from
# the digits, or for the argmax rule the share of seeds voting d1 <= d2 - and predicts d1 <= d2 when
# the average exceeds 0.5. It is fixed in advance, not chosen, so the test pairs give only its final
# number; `se` is the binomial standard error over the test pairs. Their targets are read from the
# table the runner writes beside the store (`pairs.parquet`), or drawn again without it.

# %%
ensemble = beyond.ensemble_errors(df, beyond.test_truth(nb_pairs, data_seed, store.parent / "pairs.parquet"))
ensemble.drop(columns=["model", "variant"]).round(2)

# %% [markdown]
# ## What came out

# %%
e = ensemble.iloc[0]
val = (
    f"validation: {table.loc['mean', 'val_error']:.2f} % and {table.loc['mean', 'val_digit_prob_error']:.2f} %"
    if "val_error" in table
    else "no validation split: trained on all the training pairs"
)
display(
    Markdown(
        f"{model}, `{variant}`: test error {table.loc['mean', 'test_error']:.2f} % with the head, "
        f"{table.loc['mean', 'test_digit_prob_error']:.2f} % with P(d1 <= d2) from the digits (means over "
        f"{len(df)} seed(s); {val}). The ensemble of the seeds: "
        f"{e['head_error']:.2f} % (head) and {e['digit_prob_error']:.2f} % (digits)."
    )
)
