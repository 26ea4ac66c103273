"""Profiles (params/*.yaml): loading and validation, nothing run.

A profile names the data, the protocols and, per stage, the grid to run. The typed models below are its
schema; their fields are config.py's types, so a value is refused with the same words as in RunConfig,
the notebooks' parameters and the train command. ``planning`` turns a validated profile into runs and
notebook executions.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BeforeValidator, StrictStr, ValidationError, model_validator

from ..common import PARAMS_DIR
from ..config import PAPER_MODELS, BatchSize, Epochs, Flag, Lr, NbPairs, Protocol, RunConfig, Seed
from ..machine import NUMERICS
from ..rules import (
    MAX_LIST_ITEMS,  # noqa: F401 (a limit on profiles too)
    Listed,
    Number,
    OneOf,
    Refusal,
    Strict,
    one_line,
    ruled,
)
from .grid import GRIDS, PROTOCOL_STAGES, SELECTION_STAGES, TRAINING_STAGES, configs_for, grid_cells
from .selection import Selection, candidate_config
from .variants import VARIANTS

STAGES = TRAINING_STAGES + ("figures", "report")
# The published choice (paper, section III and Fig. 2).
PAPER_LRS = {"Net": 3e-2, "LeNet5": 5e-3, "LeNet5_FullyConv": 5e-2, "ResNet": 5e-3}
# The paper's best cell (Table I: LeNet5_FullyConv, weight sharing + auxiliary loss), scored on the confirmation set
# too (corrected protocol).
PAPER_BEST_CELL = {"model": "LeNet5_FullyConv", "weight_sharing": True, "aux_loss": True}


def notebook_name(stage: str) -> str:
    """The notebook that runs a stage (notebooks/<name>.ipynb)."""
    return "selection" if stage in SELECTION_STAGES else stage


class ProfileError(ValueError):
    """A profile that cannot be run; the message is one line naming file, key and what is allowed."""


# --- the schema ----------------------------------------------------------------------------------
# the paper's stages run the paper's four models; the selection stage may add others (its candidates)
PaperModels = Listed(OneOf(*PAPER_MODELS))
Seeds, Flags = Listed(Seed), Listed(Flag)
Float = AfterValidator(float)  # a rate or margin written 1 is the float 1.0, as the profiles always gave


class Grid(Strict):  # a training stage: each of its configurations over the seeds, for that many epochs
    seeds: Seeds
    epochs: Epochs


class LrSearch(Grid):
    models: PaperModels
    lrs: Listed(Annotated[Lr, Float])


class Table1(Grid):
    models: PaperModels
    weight_sharing: Flags
    aux_loss: Flags


class Table2(Grid):
    weight_sharing: Flags
    batch_norm: Flags
    dropout: Flags


class BeyondPaper(Grid):
    models: PaperModels
    variants: Listed(OneOf(*VARIANTS)) = None  # absent: every variant


def _no_settings(value):
    if value not in (None, {}):
        raise Refusal("takes no settings (leave it empty)")
    return {}


NoSettings = Annotated[dict, BeforeValidator(_no_settings)]


class Stages(Strict):  # a stage left out is not run
    lr_search: LrSearch = None
    table1: Table1 = None
    table2: Table2 = None
    beyond_paper: BeyondPaper = None
    selection: Selection = None
    selection_round2: Selection = None  # a second round, declared before any of its runs; the first stays
    figures: NoSettings = None
    report: NoSettings = None

    @model_validator(mode="after")
    def _trains(self):
        if not self.model_fields_set & set(TRAINING_STAGES):
            raise ValueError(f"names no training stage; allowed: {', '.join(TRAINING_STAGES)}")
        if self.selection and self.selection_round2:
            first, second = (
                set(r.selection_seeds) | set(r.final_seeds) for r in (self.selection, self.selection_round2)
            )
            if first & second:
                raise ValueError(
                    f"selection_round2 must use fresh seeds, none of the first round's (shared: {sorted(first & second)})"
                )
        return self


class ProfileModel(Strict):
    description: ruled(StrictStr, "must be a string") = ""
    nb_pairs: NbPairs = RunConfig.nb_pairs
    data_seed: Seed = RunConfig.data_seed
    batch_size: BatchSize = RunConfig.batch_size
    protocols: Listed(Protocol) = ["corrected"]
    learning_rates: OneOf("paper", "auto") = "paper"
    numerics: OneOf(*NUMERICS) = "native"
    # percentage points of test error: the margin of the report's equivalence test (declared before the runs)
    equivalence_margin: Annotated[Number(0, 100.0, above=True), Float] = 1.0
    # data seeds of the confirmation set (data.confirmation_pairs), declared before anything runs: the selection
    # rounds' final runs and the paper's best cell are also scored on it; no choice is ever made on it
    confirmation_seeds: Listed(Seed) = None
    # how the report judges the paper's claims (analysis/claims.py); it enters no run and no plan
    claim_rule: OneOf("pooled_effect", "all_comparisons") = "pooled_effect"
    stages: Stages


@dataclass
class Profile:
    """A loaded profile: ``model`` typed (``profile.model.stages.table1.epochs``; ``profile.nb_pairs``...);
    ``settings`` (the top-level keys) and ``stages`` (stage -> its keys) as plain dicts."""

    name: str
    path: Path
    model: ProfileModel

    def __post_init__(self):
        self.settings = self.model.model_dump(mode="json", exclude={"stages"})
        self.stages = self.model.stages.model_dump(mode="json", exclude_unset=True)

    def __getattr__(self, name):  # the typed top-level settings: profile.nb_pairs, profile.protocols...
        if name.startswith("_") or name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


# --- reading the YAML, within limits ---------------------------------------------------------------
# Limits on what a profile may hold, so that loading and validating take time linear in its text.
MAX_PROFILE_BYTES = 100_000
MAX_ALIASES = 100
MAX_DEPTH = 20


def profile_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or "/" in str(name_or_path):
        return p
    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(name_or_path)):
        raise ProfileError(
            f"profile name {name_or_path!r}: use letters, digits, '_' or '-', or a path to a .yaml file"
        )
    return PARAMS_DIR / f"{name_or_path}.yaml"


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader within limits, each refused in one line: aliases, nesting, a key given twice (safe_load
    keeps the last silently) and merge keys ('<<', which copy mappings: a small file could grow exponentially)."""

    def __init__(self, text: str, where: str):
        super().__init__(text)
        self.where, self.aliases, self.path = where, 0, []

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise ProfileError(
                    f"{self.where}: more than {MAX_ALIASES} YAML aliases (*name); write the values out"
                )
        elif (
            self.check_event(yaml.MappingStartEvent, yaml.SequenceStartEvent) and len(self.path) >= MAX_DEPTH
        ):
            line = self.peek_event().start_mark.line + 1
            raise ProfileError(f"{self.where}: nested more than {MAX_DEPTH} levels deep (line {line})")
        if parent is not None:
            self.path.append(f"[{index}]" if isinstance(index, int) else f".{getattr(index, 'value', '?')}")
        try:
            return super().compose_node(parent, index)
        finally:
            if parent is not None:
                self.path.pop()

    def compose_mapping_node(self, anchor):
        node, seen = super().compose_mapping_node(anchor), set()
        for k, _ in node.value:
            key, line = (k.value if isinstance(k, yaml.ScalarNode) else "?"), k.start_mark.line + 1
            if k.tag == "tag:yaml.org,2002:merge":
                raise ProfileError(
                    f"{self.where}: merge keys ('<<', line {line}) are not supported; write the keys out"
                )
            if key in seen:
                name = "".join([*self.path, f".{key}"]).lstrip(".")
                raise ProfileError(f"{self.where}: key '{name}' is given twice (line {line}); give it once")
            seen.add(key)
        return node


def _read_yaml(path: Path, where: str):
    try:
        size = path.stat().st_size
        if size > MAX_PROFILE_BYTES:
            raise ProfileError(f"{where}: {size} bytes; a profile may hold at most {MAX_PROFILE_BYTES} bytes")
        loader = _Loader(path.read_text(), where)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProfileError(
            f"{where}: YAML syntax error{loc}: {getattr(exc, 'problem', None) or exc}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{where}: cannot read: {exc}") from None


def _check_runs(settings: dict, stages: dict, where: str) -> None:
    """Every kind of run the profile implies must be a valid RunConfig (cross-field rules, such as batch
    norm's two pairs per mini-batch): refused now, not when a notebook reaches it. One seed stands for all."""
    base = {k: settings[k] for k in ("nb_pairs", "data_seed", "batch_size")}
    for stage, g in stages.items():
        key, one = f"stages.{stage}", dict(base, seeds=g.get("seeds", [1])[:1], epochs=g.get("epochs"))
        try:
            for protocol in settings["protocols"] if stage in PROTOCOL_STAGES else [None]:
                for cell in grid_cells(stage, g) if stage in GRIDS else ():
                    run = {**one, "lr": PAPER_LRS[cell.get("model", "LeNet5")], **cell, "protocol": protocol}
                    configs_for(stage, run)
            for name, spec in g.get("candidates", {}).items() if stage in SELECTION_STAGES else ():
                key = f"stages.{stage}.candidates.{name}"
                candidate_config(spec, 0, settings)
                candidate_config(
                    spec, 0, settings, val_pairs=0, confirm_seeds=settings["confirmation_seeds"] or ()
                )
        except ValueError as exc:
            raise ProfileError(f"{where}: key '{key}': {exc}") from None


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PARAMS_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    path = profile_path(name_or_path)
    where = str(path)
    if not path.is_file():
        raise ProfileError(
            f"{where}: no such profile file; available profiles: {', '.join(available_profiles())}"
        )
    raw = _read_yaml(path, where)
    if raw is None:
        raise ProfileError(f"{where}: the file is empty; a profile needs at least 'stages'")
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: a profile must be a mapping of keys, got {type(raw).__name__}")
    if "stages" not in raw and set(raw) <= set(ProfileModel.model_fields):
        raise ProfileError(f"{where}: key 'stages' is required (a mapping of {', '.join(TRAINING_STAGES)})")
    try:
        profile = Profile(path.stem, path, ProfileModel.model_validate(raw))
    except ValidationError as exc:
        raise ProfileError(f"{where}: {one_line(exc, 'key {!r}')}") from None
    _check_runs(profile.settings, profile.stages, where)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", profile.name) or profile.name.endswith("."):
        # the name becomes runs/<name>/ and report/<name>/: nothing that could leave those folders
        raise ProfileError(
            f"{where}: profile name {profile.name!r} (from the file name): use letters, digits, '_', '-' or '.'"
        )
    return profile
