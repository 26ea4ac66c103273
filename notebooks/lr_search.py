# ---
# jupyter:
#   kernelspec:
#     display_name: Python (siamese-lib)
#     language: python
#     name: siamese-lib
# ---

# %% [markdown]
# # Learning-rate search (paper, Fig. 2)
#
# Before comparing the four architectures, the paper picks one learning rate per model with a
# grid search: every model is trained with weight sharing, the auxiliary loss and batch norm on,
# for 100 epochs and seeds 1-3, at each rate of [3e-1, 5e-2, 3e-2, 5e-3, 3e-3, 5e-4]; the summed
# training loss per epoch, averaged over the seeds, is plotted per model, and the chosen rate is
# drawn dotted (Fig. 2). This notebook runs **one model at one learning rate** over the seeds; the
# figures and report notebooks overlay the rates of a model from the results store.

# %% tags=["parameters"]
# fmt: off
# Parameters
from typing import Optional, Union  # noqa: F401 - for the annotations below

model: str = "LeNet5"                         # Net, LeNet5, LeNet5_FullyConv or ResNet
lr: float = 5e-3                              # Adam learning rate
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
checked = check_parameters("lr_search", globals())  # globals(): a misspelt -p name is refused too
lr, seeds, store = checked["lr"], checked["seeds"], checked["store"]  # lr None: the paper's rate

# %%
from IPython.display import Markdown, display

from siamese_lib.analysis.tables import seed_table
from siamese_lib.experiments.planning import configs_for
from siamese_lib.pipeline.engine import ensure_runs

# %% [markdown]
# ## The runs
#
# One training run per seed, always under the corrected protocol (the test input is normalised
# and evaluated in eval mode). A run already in the store is read back, not retrained.

# %%
params = dict(
    model=model,
    lr=lr,
    seeds=seeds,
    epochs=epochs,
    nb_pairs=nb_pairs,
    data_seed=data_seed,
    batch_size=batch_size,
)
configs = configs_for("lr_search", params)
records = ensure_runs(configs, store, device=device, force=force, scheduler=scheduler, threads=threads)

# %% [markdown]
# ## Training loss per epoch
#
# As in the paper, the loss of an epoch is the sum of the mini-batch losses (comparison loss plus
# both auxiliary digit losses); the line is the mean over seeds and the band one standard
# deviation. A rate that is too high plateaus high or oscillates; one that is too low is still
# falling at the end.

# %%
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

curves = np.array([r["curves"]["train_loss"] for r in records])
mean, std = curves.mean(0), curves.std(0)
epoch = np.arange(1, curves.shape[1] + 1)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(epoch, mean, label=f"{model}, lr = {lr:g}")
ax.fill_between(epoch, mean - std, mean + std, alpha=0.25)
ax.set(
    xlabel="epoch",
    ylabel="summed training loss",
    yscale="log",
    title=f"{model}, lr = {lr:g}: mean over {len(records)} seed(s)",
)
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.legend()
plt.show()

# %% [markdown]
# ## Test error per seed (%)

# %%
table = seed_table(records)
table

# %% [markdown]
# ## What came out

# %%
display(
    Markdown(
        f"{model} at lr = {lr:g} ends with a mean summed training loss of {mean[-1]:.3g} after "
        f"{len(epoch)} epochs and a test error of {table.loc['mean', 'test_error']:.2f} % "
        f"(std {table.loc['std', 'test_error']:.2f}, {len(records)} seed(s))."
    )
)
