# ---
# jupyter:
#   kernelspec:
#     display_name: Python (siamese-lib)
#     language: python
#     name: siamese-lib
# ---

# %% [markdown]
# # Table II: LeNet5 with batch norm and dropout
#
# Table II of the paper analyses LeNet5 further, with the auxiliary loss always on: weight
# sharing, batch normalisation after the convolutions, and dropout (0.25 after the hidden linear
# layers) are each switched on and off, with the training of Table I (Adam, mini-batch 100,
# 30 epochs, the LeNet5 learning rate, ten seeds). The paper finds that batch norm helps and
# dropout hurts. This notebook runs **one row of the table** over the seeds; the report assembles
# the table from the results store.

# %% tags=["parameters"]
# fmt: off
# Parameters
from typing import Optional, Union  # noqa: F401 - for the annotations below

weight_sharing: bool = True                   # one branch for both images, or one branch per image
batch_norm: bool = True                       # batch normalisation after each convolution
dropout: bool = False                         # dropout 0.25 after the hidden linear layers
lr: Optional[float] = None                    # None: the paper's rate for LeNet5
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
# fmt: on

# %%
from siamese_lib.experiments.parameters import check_parameters

# every parameter checked against the run-configuration rules: a bad one ends here in one line
checked = check_parameters("table2", globals())  # globals(): a misspelt -p name is refused too
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
    weight_sharing=weight_sharing,
    batch_norm=batch_norm,
    dropout=dropout,
    lr=lr,
    seeds=seeds,
    epochs=epochs,
    protocol=protocol,
    nb_pairs=nb_pairs,
    data_seed=data_seed,
    batch_size=batch_size,
)
configs = configs_for("table2", params)
records = ensure_runs(configs, store, device=device, force=force, scheduler=scheduler, threads=threads)

# %% [markdown]
# ## Test error per seed (%)

# %%
table = seed_table(records)
table


# %% [markdown]
# ## What came out


# %%
def on(flag):
    return "on" if flag else "off"


display(
    Markdown(
        f"LeNet5 with the auxiliary loss, weight sharing {on(weight_sharing)}, batch norm "
        f"{on(batch_norm)} and dropout {on(dropout)} ({protocol} protocol, lr = {lr:g}): test error "
        f"{table.loc['mean', 'test_error']:.2f} % (std {table.loc['std', 'test_error']:.2f}) over "
        f"{len(records)} seed(s) of {epochs} epochs."
    )
)
