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
# The report's figures, drawn from the results store (never trained here), shown inline; the report draws its own
# copies. Run it interactively to look at one figure at a time.

# %% tags=["parameters"]
# fmt: off
# Parameters (papermill overrides them). An empty profile: the first of paper, quick, smoke whose store
# holds runs. Empty paths follow from the profile name: runs/<profile>/, runs/<profile>/store,
# params/<profile>.yaml.
profile = ""
store_dir = ""
runs_dir = ""
profile_path = ""
# passed by the runner to every stage; the store and the profile already say all this, so unused here
nb_pairs = 1000
data_seed = 0
batch_size = 100
device = "auto"
# fmt: on

# %%
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import HTML, SVG, display

from siamese_lib.analysis import tables
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
prof = load_profile(str(profile_path))
records = load_records(store_dir) if store_dir.is_dir() else []  # read only
plan = planning.plan_of(prof, runs_dir, store_dir)  # the executions and runs the runner planned
cells = tables.table_cells(records, plan, prof.name)


# %% [markdown]
# ## Sample input pairs
#
# The first training pairs, their digit classes and the comparison target.

# %%
pairs = generate_pair_sets(prof.settings["nb_pairs"], seed=prof.settings["data_seed"])
figures.sample_pairs_figure(pairs, n=8)
plt.show()

# %% [markdown]
# ## Fig. 1 of the paper: the siamese architecture

# %%
display(SVG(filename=figures.ARCHITECTURE))

# %% [markdown]
# ## Fig. 2 of the paper: the learning-rate search
#
# Mean over seeds of the per-epoch summed training loss, one line per rate; the rate the tables use is dotted.
# Rates with missing runs are not drawn.

# %%
curves = planning.lr_search_curves(records, plan)
used = planning.used_learning_rates(prof, curves, store_dir)
print("our rule would choose:", planning.choose_learning_rates(curves), "| used:", used)
figures.lr_search_figure(curves, used)
plt.show()

# %% [markdown]
# ## Table I and Table II as error bars: the paper and ours, under each protocol run

# %%
protocols = tuple(prof.settings["protocols"])
figures.errorbar_figure(cells, "table1", protocols)
plt.show()
figures.errorbar_figure(cells, "table2", protocols)
plt.show()
