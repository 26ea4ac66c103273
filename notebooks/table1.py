# ---
# jupyter:
#   kernelspec:
#     display_name: Python (siamese-lib)
#     language: python
#     name: siamese-lib
# ---

# %% [markdown]
# # Table I: four models, weight sharing and auxiliary loss
#
# Table I of the paper compares the four siamese architectures (Net, LeNet5, LeNet5_FullyConv,
# ResNet) with weight sharing on or off and the auxiliary digit losses on or off: Adam,
# mini-batch 100, 30 epochs, batch norm on, each model at the learning rate of the search, and the
# test error as mean and standard deviation over ten seeds (one shuffle of the same 1000 training
# pairs and one initialisation per seed). This notebook runs **one cell of the table** - one model,
# one weight-sharing setting, one auxiliary-loss setting - over the seeds; the report assembles the
# table from the results store.
#
# The `protocol` is `corrected` (the test input normalised like the training input, evaluation in
# eval mode) or `original` (the authors' code as it ran: the test input left unnormalised, batch
# norm on test batches of 100 in training mode, and 25 epochs without the auxiliary loss).

# %% tags=["parameters"]
# fmt: off
# Parameters
from typing import Optional, Union  # noqa: F401 - for the annotations below

model: str = "LeNet5"                         # Net, LeNet5, LeNet5_FullyConv or ResNet
weight_sharing: bool = True                   # one branch for both images, or one branch per image
aux_loss: bool = True                         # add the two digit-classification losses to the comparison loss
lr: Optional[float] = None                    # None: the paper's rate for the model
protocol: str = "corrected"                   # corrected or original
seeds: list[int] = [1, 2]                     # one training run per seed (the paper: 1..10; LR search 1..3)
epochs: int = 10                              # the paper: 30 (LR search 100)
nb_pairs: int = 1000                          # training pairs and test pairs, as in the paper
data_seed: int = 0                            # the prologue's torch.manual_seed(0): the authors' one pair set
batch_size: int = 100
device: str = "auto"                          # auto, cpu or cuda
store_dir: str = "../runs/interactive/store"  # results store; a relative path is taken from notebooks/
threads: int = 1                              # torch threads (the runner: 1 per kernel, same numbers for any --jobs)
force: Union[bool, float] = False             # True: retrain stored runs too (the runner's --force: a time stamp)
scheduler: Optional[str] = None              # None: train missing runs in this process; "tcp://HOST:8786": on that Dask cluster
confirm_seeds: list[int] = []                 # data seeds of the confirmation set, scored too (the runner: paper's best cell)
holdout_seed: Optional[int] = None            # data seed of the holdout (training images), scored too (the same cell)
# fmt: on

# %%
from siamese_lib.experiments.parameters import check_parameters

# every parameter checked against the run-configuration rules: a bad one ends here in one line
checked = check_parameters("table1", globals())  # globals(): a misspelt -p name is refused too
lr, seeds, store = checked["lr"], checked["seeds"], checked["store"]  # lr None: the paper's rate

# %%
from IPython.display import Markdown, display

from siamese_lib.analysis.tables import seed_table
from siamese_lib.experiments.planning import configs_for
from siamese_lib.pipeline.engine import ensure_runs

# %% [markdown]
# ## The runs
#
# One training run per seed. A run already in the store is read back, not retrained.

# %%
params = dict(
    model=model,
    weight_sharing=weight_sharing,
    aux_loss=aux_loss,
    lr=lr,
    seeds=seeds,
    epochs=epochs,
    protocol=protocol,
    nb_pairs=nb_pairs,
    data_seed=data_seed,
    batch_size=batch_size,
    confirm_seeds=checked["confirm_seeds"],
    holdout_seed=checked["holdout_seed"],
)
configs = configs_for("table1", params)
records = ensure_runs(configs, store, device=device, force=force, scheduler=scheduler, threads=threads)

# %% [markdown]
# ## Test error per seed (%)
#
# `test_error` is the comparison head's error; `test_derived_error` compares the two predicted
# digits instead; the digit columns are the per-image classification errors (meaningful mostly
# with the auxiliary loss, which is what trains them).

# %%
table = seed_table(records)
table

# %% [markdown]
# ## What came out

# %%
setting = (
    f"{model}, weight sharing {'on' if weight_sharing else 'off'}, "
    f"auxiliary loss {'on' if aux_loss else 'off'} ({protocol} protocol, lr = {lr:g})"
)
display(
    Markdown(
        f"{setting}: test error {table.loc['mean', 'test_error']:.2f} % "
        f"(std {table.loc['std', 'test_error']:.2f}) over {len(records)} seed(s) of {epochs} epochs."
    )
)
