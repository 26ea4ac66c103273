"""The training notebooks' parameters, checked in one call after their parameters cell (``checked =
check_parameters(stage, globals())``): a bad value or an unknown name ends the notebook in one line."""

import ast
import json
import os
from pathlib import Path
from typing import Annotated, Optional, Union

from pydantic import AfterValidator, BeforeValidator, Field, StrictStr, ValidationError, create_model

from ..common import NOTEBOOKS_DIR, OneLineError, directory_problem
from ..config import FIELD_TYPES, Device, Flag, Threads
from ..machine import device_type
from ..rules import Listed, Number, Refusal, Strict, one_line, ruled
from .grid import GRIDS, PROTOCOL_STAGES, configs_for
from .profiles import ITEMS, PAPER_LRS

COMMON_PARAMETERS = ("seeds", "epochs", "nb_pairs", "data_seed", "batch_size")  # every training notebook's
COMMON_PARAMETERS += ("device", "store_dir", "threads", "force", "scheduler")  # and how its runs are made


class ParameterError(OneLineError, ValueError):
    """A notebook parameter that cannot be run: one line in the executed notebook, not a traceback."""


def _list_text(value):
    """``papermill -p seeds "[1, 2]"`` passes text: read as JSON, or refused saying how to pass a list."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise Refusal(
            "must be a list; papermill -p passes text: give it as YAML, -y 'seeds: [1, 2]'"
        ) from None


def _store_dir(value):
    problem = directory_problem(NOTEBOOKS_DIR / value, "store_dir")
    if problem:
        raise Refusal(problem)
    return value


TYPES = {  # a parameter named like a RunConfig field takes its type; the paper's stages, the paper's models
    **ITEMS,
    "lr": Optional[FIELD_TYPES["lr"]],  # None: the paper's rate for the model  # noqa: F821
    "seeds": Annotated[Listed(FIELD_TYPES["seed"]), BeforeValidator(_list_text)],  # noqa: F821
    "confirm_seeds": Annotated[FIELD_TYPES["confirm_seeds"], BeforeValidator(_list_text)],  # noqa: F821
    "holdout_seed": FIELD_TYPES["holdout_seed"],
    "device": Device,
    "threads": Threads,
    # True/False, or the runner's time stamp (retrain what was stored before it)
    "force": ruled(Union[Flag, Number(0)], "must be true, false or a time stamp"),
    "store_dir": Annotated[
        ruled(StrictStr, "must be a folder path", Field(min_length=1)), AfterValidator(_store_dir)
    ],
    "scheduler": Optional[ruled(StrictStr, "must be a Dask scheduler address, tcp://HOST:8786")],
}
# parameters a notebook of an earlier version never received
OPTIONAL = {"confirm_seeds": (), "holdout_seed": None}


def _model(stage: str, cell: dict):
    """A stage's parameters: its grid's, the rate, the protocol where the stage has one, table1's confirmation
    seeds (the paper's best cell), and those of every training notebook."""
    names = [*dict.fromkeys([*cell.values(), "lr"]), *["protocol"] * (stage in PROTOCOL_STAGES)]
    names += ["confirm_seeds", "holdout_seed"] * (stage == "table1") + list(COMMON_PARAMETERS)
    return create_model(stage, __base__=Strict, **{n: (TYPES[n], OPTIONAL.get(n, ...)) for n in names})


MODELS = {stage: _model(stage, cell) for stage, cell in GRIDS.items()}


def _assigned(namespace: dict) -> set:
    """The names a kernel's parameters cells assigned (the notebook's and papermill's injected one: both begin
    '# Parameters'); outside a kernel (no ``In``), every name given."""
    if "In" not in namespace:
        return set(namespace)
    cells = [ast.parse(source) for source in namespace["In"] if source.lstrip().startswith("# Parameters")]
    names = (node for cell in cells for node in ast.walk(cell) if isinstance(node, ast.Name))
    return {node.id for node in names if isinstance(node.ctx, ast.Store)}


def check_parameters(stage: str, namespace: dict) -> dict:
    """The stage's parameters from ``namespace`` (the notebook's ``globals()``), checked, with ``lr`` filled
    in (None: the paper's rate) and ``store`` (the store's absolute path) added; ParameterError names the
    first bad, missing or unknown one in one line."""
    model = MODELS[stage]
    names = list(model.model_fields) + sorted(_assigned(namespace) - set(model.model_fields))
    try:
        checked = model.model_validate({n: namespace[n] for n in names if n in namespace}).model_dump()
    except ValidationError as exc:
        raise ParameterError(f"{stage}: {one_line(exc, 'parameter {}')}") from None
    if checked["lr"] is None:
        checked["lr"] = PAPER_LRS[checked.get("model", "LeNet5")]
    try:
        device_type(checked["device"])  # no torch: a notebook that reads the store never starts it
        configs_for(stage, checked)  # the rules across fields, e.g. batch norm's two pairs per mini-batch
    except ValueError as exc:
        raise ParameterError(f"{stage}: {exc}") from None
    checked["store"] = Path(os.path.abspath(NOTEBOOKS_DIR / checked["store_dir"]))
    return checked
