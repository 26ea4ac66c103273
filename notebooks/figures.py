# ---
# jupyter:
#   kernelspec:
#     display_name: Python (siamese-lib)
#     language: python
#     name: siamese-lib
# ---

# %% [markdown]
# # Figures
#
# The report's figures, drawn from the results store (never trained here) and saved as PNG and SVG under
# `runs/<profile>/figures/`. Run it interactively to look at one figure at a time.

# %% tags=["parameters"]
# Parameters (papermill overrides them). An empty profile: the first of paper, quick, smoke whose store
# holds runs. Empty paths follow from the profile name: runs/<profile>/, runs/<profile>/store,
# params/<profile>.yaml; the figures are written under runs/<profile>/figures/.
profile = ""
store_dir = ""
runs_dir = ""
profile_path = ""
# passed by the runner to every stage; the store and the profile already say all this, so unused here
nb_pairs = 1000
data_seed = 0
batch_size = 100
device = "auto"

# %%
from pathlib import Path

import matplotlib.pyplot as plt

from siamese_lib.analysis import tables
from IPython.display import HTML, display

from siamese_lib.common import PARAMS_DIR, runs_root
from siamese_lib.data import generate_pair_sets
from siamese_lib.experiments import planning
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.presentation import figures, profile_text
from siamese_lib.store import load_records

profile, picked = profile_text.pick_profile(profile, runs_root()) if not store_dir else (profile, "")
if picked:
    display(HTML(f"<p>{picked}</p>"))
runs_dir = Path(runs_dir or runs_root() / profile)
store_dir = Path(store_dir or runs_dir / "store")
profile_path = Path(profile_path or PARAMS_DIR / f"{profile}.yaml")
fig_dir = runs_dir / "figures"
fig_dir.mkdir(parents=True, exist_ok=True)
prof = load_profile(str(profile_path))
records = load_records(store_dir) if store_dir.is_dir() else []  # read only
cells = tables.table_cells(records, prof, store_dir)


def save(fig, name):
    """Keep a PNG and an SVG of each figure beside the runs."""
    if fig is not None:
        for ext in ("png", "svg"):
            fig.savefig(fig_dir / f"{name}.{ext}", dpi=200, bbox_inches="tight")
    return fig


# %% [markdown]
# ## Sample input pairs
#
# The first training pairs, their digit classes and the comparison target.

# %%
pairs = generate_pair_sets(prof.settings["nb_pairs"], seed=prof.settings["data_seed"])
save(figures.sample_pairs_figure(pairs, n=8), "sample_pairs")
plt.show()

# %% [markdown]
# ## Fig. 1 of the paper: the siamese architecture

# %%
save(figures.architecture_figure(), "architecture")
plt.show()

# %% [markdown]
# ## Fig. 2 of the paper: the learning-rate search
#
# Mean over seeds of the per-epoch summed training loss, one line per rate; the rate the tables use is dotted.
# Rates with missing runs are not drawn.

# %%
curves = planning.lr_search_curves(records, prof)
used = planning.used_learning_rates(prof, curves, store_dir)
print("our rule would choose:", planning.choose_learning_rates(curves), "| used:", used)
save(figures.lr_search_figure(curves, used), "lr_search")
plt.show()

# %% [markdown]
# ## Table I and Table II as error bars: the paper and ours, under each protocol run

# %%
protocols = tuple(prof.settings["protocols"])
save(figures.errorbar_figure(cells, "table1", protocols), "table1_errorbars")
plt.show()
save(figures.errorbar_figure(cells, "table2", protocols), "table2_errorbars")
plt.show()
