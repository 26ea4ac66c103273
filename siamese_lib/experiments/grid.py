"""A training stage's runs: a paper stage's grid (one notebook execution per combination of its lists),
expanded here only, and ``configs_for``, one execution's runs from its parameters."""

import itertools

from ..config import RunConfig
from .selection import DATA, candidate_configs, final_configs
from .variants import VARIANTS, applies_to, variant_configs

# Two selection rounds, each declared before it ran; both run the selection notebook.
SELECTION_STAGES = ("selection", "selection_round2", "selection_round3")
TRAINING_STAGES = ("lr_search", "table1", "table2", "beyond_paper") + SELECTION_STAGES
# A paper stage's grid: the profile's key -> the notebook's parameter; table1 and table2 run per protocol too.
GRIDS = {
    "lr_search": {"models": "model", "lrs": "lr"},
    "table1": {"models": "model", "weight_sharing": "weight_sharing", "aux_loss": "aux_loss"},
    "table2": {"weight_sharing": "weight_sharing", "batch_norm": "batch_norm", "dropout": "dropout"},
    "beyond_paper": {"models": "model", "variants": "variant"},
}
PROTOCOL_STAGES = ("table1", "table2")
SHORT = {"weight_sharing": "ws", "aux_loss": "aux", "batch_norm": "bn", "dropout": "do"}
# The paper's best cell (Table I: LeNet5_FullyConv, weight sharing + auxiliary loss), scored on the
# holdouts too (corrected protocol).
PAPER_BEST_CELL = {"model": "LeNet5_FullyConv", "weight_sharing": True, "aux_loss": True}


def grid_cells(stage: str, grid: dict) -> list[dict]:
    """A paper stage's cells as notebook parameters, in order (variants where they apply)."""
    lists = [grid.get(key) or (list(VARIANTS) if key == "variants" else []) for key in GRIDS[stage]]
    cells = [dict(zip(GRIDS[stage].values(), combo, strict=True)) for combo in itertools.product(*lists)]
    return [c for c in cells if "variant" not in c or applies_to(c["variant"], c["model"])]


def cell_name(cell: dict, protocol: str | None = None) -> str:
    """An execution's name: 'LeNet5-lr0.005', 'corrected-LeNet5-ws1-aux0', 'corrected-ws1-bn1-do0'."""
    parts = [
        f"lr{v:g}" if k == "lr" else f"{SHORT[k]}{int(v)}" if k in SHORT else str(v) for k, v in cell.items()
    ]
    return "-".join([protocol] * bool(protocol) + parts)


def paper_executions(settings: dict, stages: dict, base: dict, lr_for, wanted=GRIDS) -> list[tuple]:
    """(stage, name, parameters) per cell of the paper stages in ``wanted``, in order (LR search, tables per
    protocol, beyond the paper): ``base``, the cell, ``lr_for(model)`` where the grid has no rate, the stage's
    seeds and epochs; the best cell (corrected) is scored on the holdouts too."""
    confirm, out = settings["confirmation_seeds"], []
    tables = [(stage, protocol) for protocol in settings["protocols"] for stage in PROTOCOL_STAGES]
    for stage, protocol in [("lr_search", None), *tables, ("beyond_paper", None)]:
        g = stages.get(stage) if stage in wanted else None
        for cell in grid_cells(stage, g) if g else ():
            rate = {} if "lr" in cell else {"lr": lr_for(cell.get("model", "LeNet5"))}
            p = dict(base, **cell, **rate, seeds=g["seeds"], epochs=g["epochs"])
            p.update({"protocol": protocol} if protocol else {})
            if stage == "table1" and protocol == "corrected" and cell == PAPER_BEST_CELL:
                p.update({"confirm_seeds": confirm} if confirm else {}, **holdout_parameter(settings))
            out.append((stage, cell_name(cell, protocol), p))
    return out


def holdout_parameter(settings: dict) -> dict:
    """The holdout's parameter of an execution that scores it: none when the profile declares no holdout."""
    seed = settings.get("holdout_seed")
    return {} if seed is None else {"holdout_seed": seed}


def configs_for(stage: str, p: dict) -> list[RunConfig]:
    """The training runs of one execution, from its parameters (notebooks call this too)."""
    if stage in SELECTION_STAGES:
        settings = dict({k: p[k] for k in DATA}, confirmation_seeds=p.get("confirm_seeds", []))
        settings["holdout_seed"] = p.get("holdout_seed")
        if p["part"] == "candidate":
            return candidate_configs(p["selection"], settings, p["candidate"])
        return final_configs(p["selection"], settings, p["candidate"], p["seeds"])
    if stage not in GRIDS:
        return []
    common = {k: p[k] for k in (*DATA, "epochs")}
    if stage == "beyond_paper":
        return variant_configs(p["variant"], p["model"], p["lr"], p["seeds"], **common)
    fields = {k: p[k] for k in (*GRIDS[stage].values(), "lr")}
    if stage == "lr_search":
        fields.update(protocol="corrected")
    if stage == "table1":
        holdouts = {"confirm_seeds": tuple(p.get("confirm_seeds", ())), "holdout_seed": p.get("holdout_seed")}
        fields.update(protocol=p["protocol"], **holdouts)
    if stage == "table2":
        fields.update(protocol=p["protocol"], model="LeNet5", aux_loss=True)
    return [RunConfig(**common, **fields, seed=s) for s in p["seeds"]]
