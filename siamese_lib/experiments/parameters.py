"""The training notebooks' parameters, checked in one call right after their parameters cell.

A bad value given with ``papermill -p`` (or edited in Jupyter) ends the notebook with one line naming
the parameter, what is allowed and what was given: the limits and words of config.FIELD_RULES, the
one validation that profiles and the train command use too.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from ..common import NOTEBOOKS_DIR, OneLineError, directory_problem
from ..config import FIELD_RULES, field_problem, short_repr
from ..training import resolve_device
from .planning import configs_for
from .profiles import MAX_LIST_ITEMS, PAPER_LRS
from .variants import VARIANTS, applies_to

MAX_THREADS = 1024
# Parameters of every training notebook, beside the run-configuration fields of FIELD_RULES.
STAGE_PARAMETERS = {
    "lr_search": ("model", "lr"),
    "table1": ("model", "weight_sharing", "aux_loss", "lr", "protocol"),
    "table2": ("weight_sharing", "batch_norm", "dropout", "lr", "protocol"),
    "beyond_paper": ("model", "variant", "lr"),
}
COMMON_PARAMETERS = ("seeds", "epochs", "nb_pairs", "data_seed", "batch_size", "device", "store_dir", "threads",
                     "force")


class ParameterError(OneLineError, ValueError):
    """A notebook parameter that cannot be run: one line in the executed notebook, not a traceback."""


def _seeds_problem(seeds) -> str | None:
    if not isinstance(seeds, list) or not 1 <= len(seeds) <= MAX_LIST_ITEMS:
        return f"seeds must be a list of 1..{MAX_LIST_ITEMS} seeds, got {short_repr(seeds)}"
    for seed in seeds:
        problem = field_problem("seed", seed)
        if problem:
            return f"seeds: {problem}"
    if len(set(seeds)) != len(seeds):
        return f"seeds must not repeat values, got {short_repr(seeds)}"
    return None


def _problem(name: str, value, values: dict) -> str | None:
    if name == "seeds":
        return _seeds_problem(value)
    if name == "lr" and value is None:
        return None  # the paper's rate for the model
    if name in FIELD_RULES:
        return field_problem(name, value)
    if name == "device":
        return None if value in ("auto", "cpu", "cuda") else f"device must be auto, cpu or cuda, got {short_repr(value)}"
    if name == "threads":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_THREADS
        return None if ok else f"threads must be an integer in 1..{MAX_THREADS}, got {short_repr(value)}"
    if name == "force":  # True/False, or the runner's time stamp (retrain what was stored before it)
        ok = isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0)
        return None if ok else f"force must be true, false or a time stamp, got {short_repr(value)}"
    if name == "store_dir":
        if not isinstance(value, str) or not value:
            return f"store_dir must be a folder path, got {short_repr(value)}"
        return directory_problem(NOTEBOOKS_DIR / value, "store_dir")
    if name == "variant":
        if not isinstance(value, str) or value not in VARIANTS:
            return f"variant must be one of {', '.join(VARIANTS)}, got {short_repr(value)}"
        model = values.get("model")
        if isinstance(model, str) and model in PAPER_LRS and not applies_to(value, model):
            return f"variant {value} is defined for {', '.join(VARIANTS[value]['models'])} only, not {model}"
        return None
    return None


def check_parameters(stage: str, **values) -> dict:
    """The parameters, checked, with ``lr`` filled in (None: the paper's rate) and ``store`` (the store's
    absolute path) added; raises ParameterError naming the first bad one in one line."""
    expected = STAGE_PARAMETERS[stage] + COMMON_PARAMETERS
    missing = [name for name in expected if name not in values]
    if missing:
        raise ParameterError(f"{stage}: parameters {', '.join(missing)} are missing")
    for name in expected:
        problem = _problem(name, values[name], values)
        if problem:
            raise ParameterError(f"{stage}: parameter {name}: {problem}")
    checked = dict(values)
    if checked["lr"] is None:
        checked["lr"] = PAPER_LRS[checked.get("model", "LeNet5")]
    try:
        resolve_device(checked["device"])
        configs_for(stage, checked)  # the rules across fields, e.g. batch norm's two pairs per mini-batch
    except ValueError as exc:
        raise ParameterError(f"{stage}: {exc}") from None
    checked["store"] = Path(os.path.abspath(NOTEBOOKS_DIR / checked["store_dir"]))
    return checked
