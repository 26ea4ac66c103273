"""A training stage's runs: the grid of a paper stage (one notebook execution per combination of its lists) and
``configs_for``, the runs of one execution from its parameters, which the plan, the profile check and the notebooks
all use."""

import itertools

from ..config import RunConfig
from .selection import candidate_configs, final_configs
from .variants import VARIANTS, applies_to, variant_configs

# Two selection rounds, each declared before it ran; both run the selection notebook.
SELECTION_STAGES = ("selection", "selection_round2")
TRAINING_STAGES = ("lr_search", "table1", "table2", "beyond_paper") + SELECTION_STAGES

# A paper stage's grid: one notebook execution per combination of these lists (the profile's key -> the notebook's
# parameter); table1 and table2 run once per protocol too. Planning, the profile check and the notebook parameters
# read it here.
GRIDS = {
    "lr_search": {"models": "model", "lrs": "lr"},
    "table1": {"models": "model", "weight_sharing": "weight_sharing", "aux_loss": "aux_loss"},
    "table2": {"weight_sharing": "weight_sharing", "batch_norm": "batch_norm", "dropout": "dropout"},
    "beyond_paper": {"models": "model", "variants": "variant"},
}
PROTOCOL_STAGES = ("table1", "table2")
SHORT = {"weight_sharing": "ws", "aux_loss": "aux", "batch_norm": "bn", "dropout": "do"}


def grid_cells(stage: str, grid: dict) -> list[dict]:
    """The combinations of a paper stage's lists as notebook parameters, in order (a variant where it applies)."""
    lists = [grid.get(key) or (list(VARIANTS) if key == "variants" else []) for key in GRIDS[stage]]
    cells = [dict(zip(GRIDS[stage].values(), combo, strict=True)) for combo in itertools.product(*lists)]
    return [c for c in cells if "variant" not in c or applies_to(c["variant"], c["model"])]


def cell_name(cell: dict, protocol: str | None = None) -> str:
    """An execution's name: 'LeNet5-lr0.005', 'corrected-LeNet5-ws1-aux0', 'corrected-ws1-bn1-do0', 'Net-mixup'."""
    parts = [
        f"lr{v:g}" if k == "lr" else f"{SHORT[k]}{int(v)}" if k in SHORT else str(v) for k, v in cell.items()
    ]
    return "-".join([protocol] * bool(protocol) + parts)


def configs_for(stage: str, p: dict) -> list[RunConfig]:
    """The training runs of one execution, from its parameters (notebooks call this too)."""
    if stage not in TRAINING_STAGES:
        return []
    if stage in SELECTION_STAGES:
        return _selection_configs(p)
    common = dict(
        nb_pairs=p["nb_pairs"], data_seed=p["data_seed"], batch_size=p["batch_size"], epochs=p["epochs"]
    )
    if stage == "lr_search":
        return [
            RunConfig(model=p["model"], lr=p["lr"], seed=s, protocol="corrected", **common)
            for s in p["seeds"]
        ]
    if stage == "table1":
        return [
            RunConfig(
                model=p["model"],
                weight_sharing=p["weight_sharing"],
                aux_loss=p["aux_loss"],
                lr=p["lr"],
                seed=s,
                protocol=p["protocol"],
                confirm_seeds=tuple(p.get("confirm_seeds", ())),
                **common,
            )
            for s in p["seeds"]
        ]
    if stage == "table2":
        return [
            RunConfig(
                model="LeNet5",
                aux_loss=True,
                weight_sharing=p["weight_sharing"],
                batch_norm=p["batch_norm"],
                dropout=p["dropout"],
                lr=p["lr"],
                seed=s,
                protocol=p["protocol"],
                **common,
            )
            for s in p["seeds"]
        ]
    if stage == "beyond_paper":
        return variant_configs(p["variant"], p["model"], p["lr"], p["seeds"], **common)
    return []


def _selection_configs(p: dict) -> list[RunConfig]:
    """A candidate on the selection seeds, or the chosen candidate on (some of) the fresh final seeds."""
    settings = dict(
        nb_pairs=p["nb_pairs"],
        data_seed=p["data_seed"],
        batch_size=p["batch_size"],
        confirmation_seeds=p.get("confirm_seeds", []),
    )
    if p["part"] == "candidate":
        return candidate_configs(p["selection"], settings, p["candidate"])
    return final_configs(p["selection"], settings, p["candidate"], p["seeds"])
