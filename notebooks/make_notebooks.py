"""Write the training notebooks (lr_search, table1, table2) clean: no outputs, no execution counts.

Run from the repository root: ``.venv/bin/python notebooks/make_notebooks.py``. Each notebook has
one cell tagged ``parameters`` (papermill replaces it); its defaults make a small interactive run.
Cell ids are fixed so that regenerating gives the same files.
"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"name": "siamese-lib", "display_name": "Python (siamese-lib)", "language": "python"}

COMMON_PARAMETERS = '''\
seeds = [1, 2]               # one training run per seed (the paper: 1..10; LR search 1..3)
epochs = 10                  # the paper: 30 (LR search 100)
nb_pairs = 1000              # training pairs and test pairs, as in the paper
data_seed = 0                # the prologue's torch.manual_seed(0): the authors' one pair set
batch_size = 100
device = "auto"              # auto, cpu or cuda
store_dir = "../runs/interactive/store"  # results store; a relative path is taken from notebooks/
threads = 1                  # torch threads; the runner uses 1 per kernel (same numbers for any --jobs)
force = False                # True: retrain even when the store has the run (the runner's --force: a time stamp)'''

SETUP = '''\
import torch
from IPython.display import Markdown, display

from siamese_lib.profiles import NOTEBOOKS_DIR, configs_for
from siamese_lib.runner import ensure_runs, seed_table

torch.set_num_threads(threads)
store = (NOTEBOOKS_DIR / store_dir).resolve()  # absolute paths pass through unchanged'''


def notebook(stem, cells):
    nb = new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for i, (kind, text, *tags) in enumerate(cells):
        cell = new_markdown_cell(text) if kind == "md" else new_code_cell(text)
        cell.id = f"{stem}-{i:02d}"
        if tags:
            cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


LR_SEARCH = [
    ("md", """\
# Learning-rate search (paper, Fig. 2)

Before comparing the four architectures, the paper picks one learning rate per model with a
grid search: every model is trained with weight sharing, the auxiliary loss and batch norm on,
for 100 epochs and seeds 1-3, at each rate of [3e-1, 5e-2, 3e-2, 5e-3, 3e-3, 5e-4]; the summed
training loss per epoch, averaged over the seeds, is plotted per model, and the chosen rate is
drawn dotted (Fig. 2). This notebook runs **one model at one learning rate** over the seeds; the
figures and report notebooks overlay the rates of a model from the results store."""),
    ("code", '''\
# Parameters
model = "LeNet5"             # Net, LeNet5, LeNet5_FullyConv or ResNet
lr = 5e-3                    # Adam learning rate
''' + COMMON_PARAMETERS, "parameters"),
    ("code", SETUP),
    ("md", """\
## The runs

One training run per seed, always under the corrected protocol (the test input is normalised
and evaluated in eval mode). A run already in the store is read back, not retrained."""),
    ("code", '''\
params = dict(model=model, lr=lr, seeds=seeds, epochs=epochs, nb_pairs=nb_pairs,
              data_seed=data_seed, batch_size=batch_size)
configs = configs_for("lr_search", params)
records = ensure_runs(configs, store, device=device, force=force)'''),
    ("md", """\
## Training loss per epoch

As in the paper, the loss of an epoch is the sum of the mini-batch losses (comparison loss plus
both auxiliary digit losses); the line is the mean over seeds and the band one standard
deviation. A rate that is too high plateaus high or oscillates; one that is too low is still
falling at the end."""),
    ("code", '''\
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

curves = np.array([r["curves"]["train_loss"] for r in records])
mean, std = curves.mean(0), curves.std(0)
epoch = np.arange(1, curves.shape[1] + 1)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(epoch, mean, label=f"{model}, lr = {lr:g}")
ax.fill_between(epoch, mean - std, mean + std, alpha=0.25)
ax.set(xlabel="epoch", ylabel="summed training loss", yscale="log",
       title=f"{model}, lr = {lr:g}: mean over {len(records)} seed(s)")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.legend()
plt.show()'''),
    ("md", "## Test error per seed (%)"),
    ("code", "table = seed_table(records)\ntable"),
    ("md", "## What came out"),
    ("code", '''\
display(Markdown(
    f"{model} at lr = {lr:g} ends with a mean summed training loss of {mean[-1]:.3g} after "
    f"{len(epoch)} epochs and a test error of {table.loc['mean', 'test_error']:.2f} % "
    f"(std {table.loc['std', 'test_error']:.2f}, {len(records)} seed(s))."))'''),
]

TABLE1 = [
    ("md", """\
# Table I: four models, weight sharing and auxiliary loss

Table I of the paper compares the four siamese architectures (Net, LeNet5, LeNet5_FullyConv,
ResNet) with weight sharing on or off and the auxiliary digit losses on or off: Adam,
mini-batch 100, 30 epochs, batch norm on, each model at the learning rate of the search, and the
test error as mean and standard deviation over ten seeds (one shuffle of the same 1000 training
pairs and one initialisation per seed). This notebook runs **one cell of the table** - one model,
one weight-sharing setting, one auxiliary-loss setting - over the seeds; the report assembles the
table from the results store.

The `protocol` is `corrected` (the test input normalised like the training input, evaluation in
eval mode) or `original` (the authors' code as it ran: the test input left unnormalised, batch
norm on test batches of 100 in training mode, and 25 epochs without the auxiliary loss)."""),
    ("code", '''\
# Parameters
model = "LeNet5"             # Net, LeNet5, LeNet5_FullyConv or ResNet
weight_sharing = True        # one branch for both images, or one branch per image
aux_loss = True              # add the two digit-classification losses to the comparison loss
lr = None                    # None: the paper's rate for the model
protocol = "corrected"       # corrected or original
''' + COMMON_PARAMETERS, "parameters"),
    ("code", SETUP + '''
from siamese_lib.profiles import PAPER_LRS

lr = PAPER_LRS[model] if lr is None else lr'''),
    ("md", """\
## The runs

One training run per seed. A run already in the store is read back, not retrained."""),
    ("code", '''\
params = dict(model=model, weight_sharing=weight_sharing, aux_loss=aux_loss, lr=lr, seeds=seeds,
              epochs=epochs, protocol=protocol, nb_pairs=nb_pairs, data_seed=data_seed,
              batch_size=batch_size)
configs = configs_for("table1", params)
records = ensure_runs(configs, store, device=device, force=force)'''),
    ("md", """\
## Test error per seed (%)

`test_error` is the comparison head's error; `test_derived_error` compares the two predicted
digits instead; the digit columns are the per-image classification errors (meaningful mostly
with the auxiliary loss, which is what trains them)."""),
    ("code", "table = seed_table(records)\ntable"),
    ("md", "## What came out"),
    ("code", '''\
setting = (f"{model}, weight sharing {'on' if weight_sharing else 'off'}, "
           f"auxiliary loss {'on' if aux_loss else 'off'} ({protocol} protocol, lr = {lr:g})")
display(Markdown(
    f"{setting}: test error {table.loc['mean', 'test_error']:.2f} % "
    f"(std {table.loc['std', 'test_error']:.2f}) over {len(records)} seed(s) of {epochs} epochs."))'''),
]

TABLE2 = [
    ("md", """\
# Table II: LeNet5 with batch norm and dropout

Table II of the paper analyses LeNet5 further, with the auxiliary loss always on: weight
sharing, batch normalisation after the convolutions, and dropout (0.25 after the hidden linear
layers) are each switched on and off, with the training of Table I (Adam, mini-batch 100,
30 epochs, the LeNet5 learning rate, ten seeds). The paper finds that batch norm helps and
dropout hurts. This notebook runs **one row of the table** over the seeds; the report assembles
the table from the results store."""),
    ("code", '''\
# Parameters
weight_sharing = True        # one branch for both images, or one branch per image
batch_norm = True            # batch normalisation after each convolution
dropout = False              # dropout 0.25 after the hidden linear layers
lr = None                    # None: the paper's rate for LeNet5
protocol = "corrected"       # corrected or original
''' + COMMON_PARAMETERS, "parameters"),
    ("code", SETUP + '''
from siamese_lib.profiles import PAPER_LRS

lr = PAPER_LRS["LeNet5"] if lr is None else lr'''),
    ("md", """\
## The runs

One training run per seed. A run already in the store is read back, not retrained."""),
    ("code", '''\
params = dict(weight_sharing=weight_sharing, batch_norm=batch_norm, dropout=dropout, lr=lr,
              seeds=seeds, epochs=epochs, protocol=protocol, nb_pairs=nb_pairs,
              data_seed=data_seed, batch_size=batch_size)
configs = configs_for("table2", params)
records = ensure_runs(configs, store, device=device, force=force)'''),
    ("md", "## Test error per seed (%)"),
    ("code", "table = seed_table(records)\ntable"),
    ("md", "## What came out"),
    ("code", '''\
def on(flag):
    return "on" if flag else "off"

display(Markdown(
    f"LeNet5 with the auxiliary loss, weight sharing {on(weight_sharing)}, batch norm "
    f"{on(batch_norm)} and dropout {on(dropout)} ({protocol} protocol, lr = {lr:g}): test error "
    f"{table.loc['mean', 'test_error']:.2f} % (std {table.loc['std', 'test_error']:.2f}) over "
    f"{len(records)} seed(s) of {epochs} epochs."))'''),
]


def main():
    for stem, cells in (("lr_search", LR_SEARCH), ("table1", TABLE1), ("table2", TABLE2)):
        path = HERE / f"{stem}.ipynb"
        nbformat.write(notebook(stem, cells), path)
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
