"""The training notebooks' parameters, checked in one call right after their parameters cell:
``checked = check_parameters(stage, globals())``.

Each stage's parameters are a typed model built from config.py's field types, the ones RunConfig, the
profiles and the train command use: a bad value given with ``papermill -p`` (or edited in Jupyter) ends the
notebook with one line naming the parameter, what is allowed and what was given; so does a name the
notebook does not take (a misspelt ``-p epoch 2``, which papermill itself only warns about).
"""

import ast
import json
import os
from pathlib import Path
from typing import Annotated, Optional, Union

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)

from ..common import NOTEBOOKS_DIR, OneLineError, directory_problem
from ..config import FIELD_TYPES, PAPER_MODELS, Device, Seed, Threads
from ..machine import device_type
from ..rules import Listed, OneOf, Refusal, Strict, one_line, ruled
from .grid import GRIDS, PROTOCOL_STAGES, configs_for
from .profiles import PAPER_LRS
from .variants import VARIANTS

# Parameters of every training notebook (those named like a RunConfig field take its type): its grid's, the rate,
# the protocol where the stage has one, and table1's confirmation seeds (the paper's best cell).
STAGE_PARAMETERS = {
    stage: tuple(dict.fromkeys([*cell.values(), "lr"]))
    + ("protocol",) * (stage in PROTOCOL_STAGES)
    + ("confirm_seeds",) * (stage == "table1")
    for stage, cell in GRIDS.items()
}
COMMON_PARAMETERS = (
    "seeds",
    "epochs",
    "nb_pairs",
    "data_seed",
    "batch_size",
    "device",
    "store_dir",
    "threads",
    "force",
    "scheduler",
)


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


TYPES = {
    **FIELD_TYPES,
    "model": OneOf(*PAPER_MODELS),  # the paper's stages: the paper's models (and rates)
    "lr": Optional[FIELD_TYPES["lr"]],  # None: the paper's rate for the model  # noqa: F821 (ruff reads the key as a forward reference)
    "seeds": Annotated[Listed(Seed), BeforeValidator(_list_text)],
    "confirm_seeds": Annotated[FIELD_TYPES["confirm_seeds"], BeforeValidator(_list_text)],  # noqa: F821
    "device": Device,
    "threads": Threads,
    # True/False, or the runner's time stamp (retrain what was stored before it)
    "force": ruled(
        Union[StrictBool, Annotated[StrictInt | StrictFloat, Field(ge=0, allow_inf_nan=False)]],
        "must be true, false or a time stamp",
    ),
    "store_dir": Annotated[
        ruled(StrictStr, "must be a folder path", Field(min_length=1)), AfterValidator(_store_dir)
    ],
    "variant": OneOf(*VARIANTS),
    "scheduler": Optional[ruled(StrictStr, "must be a Dask scheduler address, tcp://HOST:8786")],
}


OPTIONAL = {"confirm_seeds": ()}  # parameters a notebook of an earlier version never received
MODELS = {
    stage: create_model(
        stage,
        __base__=Strict,
        **{name: (TYPES[name], OPTIONAL.get(name, ...)) for name in names + COMMON_PARAMETERS},
    )
    for stage, names in STAGE_PARAMETERS.items()
}


def _assigned(namespace: dict) -> set:
    """The names a kernel's parameters cells assigned (the notebook's own and papermill's injected one:
    both begin '# Parameters'); outside a kernel (no ``In``), every name given."""
    if "In" not in namespace:
        return set(namespace)
    cells = [
        ast.parse(source).body for source in namespace["In"] if source.lstrip().startswith("# Parameters")
    ]
    return {
        t.id
        for body in cells
        for node in body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }


def check_parameters(stage: str, namespace: dict) -> dict:
    """The stage's parameters from ``namespace`` (the notebook's ``globals()``), checked, with ``lr`` filled
    in (None: the paper's rate) and ``store`` (the store's absolute path) added; raises ParameterError
    naming the first bad, missing or unknown one in one line."""
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
