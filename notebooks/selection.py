# ---
# jupyter:
#   kernelspec:
#     display_name: Python (siamese-lib)
#     language: python
#     name: siamese-lib
# ---

# %% [markdown]
# # Selection, declared before it runs
#
# The candidate space, the comparison rules, the seeds and the rule are all written in the profile
# (`stages.selection`, and a second round in `stages.selection_round2`) before anything trains. This
# notebook does one of two parts:
#
# - `part = "candidate"`: trains one candidate on the **selection seeds**. Every candidate uses the
#   same seeds, hence the same training/validation splits (a seed fixes the fold's shuffle; its first
#   20 % of the training pairs are held out for validation, the rest train).
# - `part = "final"`: applies the rule to the stored candidates (validation columns only: the rule
#   refuses any test column), then trains the chosen configuration on **fresh seeds** that took no part
#   in the choice. Its test error over those seeds is the headline; the test pairs are scored once.
#   The members of the ensembles the round names in advance train on the same fresh seeds. Final runs
#   are also scored on the holdouts, which no choice ever reads: the confirmation set (`confirm_seeds`:
#   test images no test pair uses) and the holdout (`holdout_seed`: training images no training pair uses).

# %% tags=["parameters"]
# fmt: off
# Parameters (the runner passes the profile's stage; these defaults are a tiny space for a look in Jupyter)
from typing import Optional, Union  # noqa: F401 - for the annotations below

part: str = "candidate"            # "candidate" or "final"
candidate: str = "lenet5_cosine"   # the candidate to train; part "final": the rule's choice or an ensemble's member
seeds: list[int] = []              # part "final": the fresh seeds this execution trains
confirm_seeds: list[int] = []      # part "final": data seeds of the confirmation set (empty: none)
holdout_seed: Optional[int] = None  # part "final": data seed of the holdout, training images (None: none)
selection: dict = {
    "candidates": {"lenet5_cosine": {"model": "LeNet5", "lr": 2e-3, "lr_schedule": "cosine", "epochs": 2},
                   "lenet5_constant": {"model": "LeNet5", "lr": 5e-3, "epochs": 2}},
    "rules": ["head", "digit_prob"],
    "selection_seeds": [11, 12],
    "final_seeds": [21, 22],
    "final_training": "all_pairs",
}
nb_pairs: int = 100                # training pairs and test pairs (the paper: 1000)
data_seed: int = 0
batch_size: int = 50
device: str = "auto"               # auto, cpu or cuda
store_dir: str = "../runs/interactive/store"  # results store; a relative path is taken from notebooks/
threads: int = 1                   # torch threads; the runner uses 1 per kernel
force: Union[bool, float] = False  # True: retrain even when the store has the run
scheduler: Optional[str] = None    # None: train missing runs in this process; "tcp://HOST:8786": on that Dask cluster
# fmt: on

# %%
import pandas as pd
from IPython.display import Markdown, display

from siamese_lib.common import NOTEBOOKS_DIR
from siamese_lib.experiments.planning import configs_for
from siamese_lib.experiments.selection import RULE_TEXT, chosen_candidate, final_candidates
from siamese_lib.pipeline.engine import ensure_runs

store = (NOTEBOOKS_DIR / store_dir).resolve()  # absolute paths pass through unchanged
settings = dict(nb_pairs=nb_pairs, data_seed=data_seed, batch_size=batch_size)
settings.update(confirmation_seeds=confirm_seeds, holdout_seed=holdout_seed)
if part == "final" and not seeds:
    seeds = selection["final_seeds"]
params = dict(
    settings, part=part, candidate=candidate, seeds=seeds, selection=selection, confirm_seeds=confirm_seeds
)
params.update({"holdout_seed": holdout_seed} if holdout_seed is not None else {})
candidates, rules = len(selection["candidates"]), selection["rules"]
display(
    Markdown(
        f"Declared space: {candidates} candidates x {len(rules)} comparison rules ({', '.join(rules)}) = "
        f"{candidates * len(rules)} choices, each on selection seeds "
        f"{', '.join(map(str, selection['selection_seeds']))}; the choice trains on fresh seeds "
        f"{', '.join(map(str, selection['final_seeds']))} ({selection['final_training'].replace('_', ' ')}); "
        f"{nb_pairs} training pairs. Rule: {RULE_TEXT}."
    )
)

# %% [markdown]
# ## The choice (part "final")
#
# The rule, as the profile's stage fixes it: the (candidate, comparison rule) with the lowest mean
# validation error over the selection seeds. A part-"final" execution checks that the stored candidates
# still give the choice it was planned with.

# %%
if part == "final":
    if candidate not in selection["candidates"]:
        raise ValueError(f"candidate {candidate!r} is not in the declared space")
    choice = chosen_candidate(selection, settings, store)
    if choice is None:
        raise LookupError(f"the selection runs are not all in {store}: run the candidates first")
    if candidate not in final_candidates(selection, choice["candidate"]):
        raise ValueError(
            f"the rule chooses {choice['candidate']!r}, and {candidate!r} is in no declared ensemble"
        )
    display(
        Markdown(
            f"Rule: {RULE_TEXT}. Chosen: **{choice['candidate']}** judged by the "
            f"**{choice['rule']}** rule, mean validation error {choice['mean']:.2f} %."
        )
    )

# %% [markdown]
# ## The runs
#
# One run per seed; a run already in the store is read back, not retrained.

# %%
configs = configs_for("selection", params)
records = ensure_runs(configs, store, device=device, force=force, scheduler=scheduler, threads=threads)
cols = [
    c
    for c in (
        "val_error",
        "val_digit_prob_error",
        "test_error",
        "test_digit_prob_error",
        "confirm_error",
        "confirm_digit_prob_error",
        "holdout_error",
        "holdout_digit_prob_error",
    )
    if c in records[0]["metrics"]
]
pd.DataFrame([{"seed": r["config"]["seed"], **{c: r["metrics"][c] for c in cols}} for r in records]).round(2)

# %% [markdown]
# In part "candidate" the test columns are shown for the record only: the rule reads the validation
# columns. In part "final" there is no validation split when the profile says `final_training: all_pairs`
# (the chosen configuration trains on every training pair; nothing is left to choose).
