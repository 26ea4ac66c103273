"""Profiles (params/*.yaml), read within limits and validated once; the schema's types are config.py's, so a
value is refused with the same words as in RunConfig, the notebooks' parameters and the train command."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, create_model, model_validator

from ..common import PARAMS_DIR
from ..config import FIELD_TYPES, PAPER_MODELS, BatchSize, Epochs, Lr, NbPairs, Protocol, RunConfig, Seed
from ..machine import NUMERICS
from ..rules import Listed, Number, OneOf, Strict, one_line, ruled
from .grid import GRIDS, SELECTION_STAGES, TRAINING_STAGES, configs_for, paper_executions
from .selection import DATA, Selection, candidate_config, final_configs
from .variants import VARIANTS

STAGES = TRAINING_STAGES + ("figures", "report")
# The published choice (paper, section III and Fig. 2).
PAPER_LRS = {"Net": 3e-2, "LeNet5": 5e-3, "LeNet5_FullyConv": 5e-2, "ResNet": 5e-3}
# Limits on what a profile may hold, so that loading and validating take time linear in its text.
MAX_PROFILE_BYTES = 100_000
MAX_ALIASES = 100
MAX_DEPTH = 20


def notebook_name(stage: str) -> str:
    """The notebook that runs a stage (notebooks/<name>.ipynb)."""
    return "selection" if stage in SELECTION_STAGES else stage


class ProfileError(ValueError):
    """A profile that cannot be run; the message is one line naming file, key and what is allowed."""


# --- the schema ---------------------------------------------------------------------------------------------
Float = AfterValidator(float)  # a rate or margin written 1 is the float 1.0, as the profiles always gave
# a paper stage: a list per key of GRIDS of values of the run field it sets (the paper's four models), over
# the seeds, for that many epochs; absent variants: every variant
ITEMS = dict(FIELD_TYPES, model=OneOf(*PAPER_MODELS), lr=Annotated[Lr, Float], variant=OneOf(*VARIANTS))
NoSettings = ruled(
    Annotated[dict, Field(max_length=0)],
    "takes no settings (leave it empty)",
    BeforeValidator(lambda value: {} if value is None else value),
)


def _grid(stage: str):
    lists = {key: (Listed(ITEMS[f]), None if key == "variants" else ...) for key, f in GRIDS[stage].items()}
    return create_model(stage, __base__=Strict, seeds=(Listed(Seed), ...), epochs=(Epochs, ...), **lists)


class Stages(Strict):  # a stage left out is not run
    lr_search: _grid("lr_search") = None
    table1: _grid("table1") = None
    table2: _grid("table2") = None
    beyond_paper: _grid("beyond_paper") = None
    selection: Selection = None
    selection_round2: Selection = None  # a second round, declared before any of its runs; the first stays
    selection_round3: Selection = None  # a third, likewise
    figures: NoSettings = None
    report: NoSettings = None

    @model_validator(mode="after")
    def _trains(self):
        if not self.model_fields_set & set(TRAINING_STAGES):
            raise ValueError(f"names no training stage; allowed: {', '.join(TRAINING_STAGES)}")
        seen: dict = {}  # seed -> the earlier round that used it
        for stage in SELECTION_STAGES:
            r = getattr(self, stage)
            shared = sorted(set(r.selection_seeds + r.final_seeds) & set(seen)) if r else []
            if shared:
                raise ValueError(
                    f"{stage} must use fresh seeds, none of an earlier round's (shared: {shared}, "
                    f"of {seen[shared[0]]})"
                )
            seen.update(dict.fromkeys(r.selection_seeds + r.final_seeds, stage) if r else {})
        return self


class ProfileModel(Strict):
    description: ruled(str, "must be a string") = ""  # strict: a string only
    nb_pairs: NbPairs = RunConfig.nb_pairs
    data_seed: Seed = RunConfig.data_seed
    batch_size: BatchSize = RunConfig.batch_size
    protocols: Listed(Protocol) = ["corrected"]
    learning_rates: OneOf("paper", "auto") = "paper"
    numerics: OneOf(*NUMERICS) = "native"
    # percentage points of test error: the margin of the report's equivalence test (declared before the runs)
    equivalence_margin: Annotated[Number(0, 100.0, above=True), Float] = 1.0
    # data seeds of the confirmation set (data.eval_set): the selection rounds' final runs and the
    # paper's best cell are scored on it too; no choice is ever made on it
    confirmation_seeds: Listed(Seed) = None
    # the data seed of the holdout (data.eval_set: training images the training pairs leave), scored
    # like the confirmation set and, like it, never chosen on
    holdout_seed: Seed | None = None
    # how the report judges the paper's claims (analysis/claims.py); it enters no run and no plan
    claim_rule: OneOf("pooled_effect", "all_comparisons") = "pooled_effect"
    stages: Stages


@dataclass
class Profile:
    """A loaded profile: ``model`` typed (``profile.model.stages.table1.epochs``); ``settings`` (the top-level
    keys) and ``stages`` (stage -> its keys) as plain dicts."""

    name: str
    path: Path
    model: ProfileModel

    def __post_init__(self):
        self.settings = self.model.model_dump(mode="json", exclude={"stages"})
        self.stages = self.model.stages.model_dump(mode="json", exclude_unset=True)


# --- reading the YAML, within limits ---------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader within limits, each refused in one line: aliases, nesting, a key given twice (safe_load
    keeps the last silently) and merge keys ('<<', which copy mappings: a file could grow exponentially)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.aliases, self.path = 0, []

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise ProfileError(f"more than {MAX_ALIASES} YAML aliases (*name); write the values out")
        elif self.check_event(yaml.MappingStartEvent, yaml.SequenceStartEvent) and len(self.path) > MAX_DEPTH:
            line = self.peek_event().start_mark.line + 1
            raise ProfileError(f"nested more than {MAX_DEPTH} levels deep (line {line})")
        step = f"[{index}]" if isinstance(index, int) else f".{getattr(index, 'value', '?')}"
        self.path.append(step if parent is not None else "")
        node = super().compose_node(parent, index)
        self.path.pop()
        return node

    def compose_mapping_node(self, anchor):
        node, seen = super().compose_mapping_node(anchor), set()
        for k, _ in node.value:
            key, line = (k.value if isinstance(k, yaml.ScalarNode) else "?"), k.start_mark.line + 1
            if k.tag == "tag:yaml.org,2002:merge":
                raise ProfileError(f"merge keys ('<<', line {line}) are not supported; write the keys out")
            if key in seen:
                name = "".join([*self.path, f".{key}"]).lstrip(".")
                raise ProfileError(f"key '{name}' is given twice (line {line}); give it once")
            seen.add(key)
        return node


def _check_runs(profile: Profile) -> None:
    """Every kind of run the profile implies must be a valid RunConfig (rules across fields, such as batch
    norm's two pairs per mini-batch): refused now, not when a notebook reaches it. One seed stands for all."""
    s, st, key = profile.settings, profile.stages, None
    one = {stage: dict(g, seeds=g["seeds"][:1]) for stage, g in st.items() if stage in GRIDS}
    try:
        for stage, _, p in paper_executions(s, one, {k: s[k] for k in DATA}, PAPER_LRS.get):
            key = f"stages.{stage}"
            configs_for(stage, p)
        for stage in SELECTION_STAGES:
            for name, spec in st.get(stage, {}).get("candidates", {}).items():
                key = f"stages.{stage}.candidates.{name}"
                candidate_config(spec, 0, s)
                final_configs(st[stage], s, name, seeds=[0])
    except ValueError as exc:
        raise ProfileError(f"key '{key}': {exc}") from None


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PARAMS_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    """The profile of that name (params/<name>.yaml) or path, validated; ProfileError names the file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml") and "/" not in name_or_path:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name_or_path):
            raise ProfileError(
                f"profile name {name_or_path!r}: use letters, digits, '_' or '-', or a .yaml path"
            )
        path = PARAMS_DIR / f"{name_or_path}.yaml"
    try:
        if not path.is_file():
            raise ProfileError(f"no such profile file; available profiles: {', '.join(available_profiles())}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", path.stem) or path.stem.endswith("."):
            # the name becomes runs/<name>/ and report/<name>/: nothing that could leave those folders
            raise ProfileError(
                f"profile name {path.stem!r} (from the file name): use letters, digits, '_', '-' or '.'"
            )
        if (size := path.stat().st_size) > MAX_PROFILE_BYTES:
            raise ProfileError(f"{size} bytes; a profile may hold at most {MAX_PROFILE_BYTES} bytes")
        raw = yaml.load(path.read_text(), Loader=_Loader)  # _Loader: safe, within limits
        if raw is None:
            raise ProfileError("the file is empty; a profile needs at least 'stages'")
        if isinstance(raw, dict) and "stages" not in raw and set(raw) <= set(ProfileModel.model_fields):
            raise ProfileError(f"key 'stages' is required (a mapping of {', '.join(TRAINING_STAGES)})")
        profile = Profile(path.stem, path, ProfileModel.model_validate(raw))
        _check_runs(profile)
        return profile
    except ValidationError as exc:
        raise ProfileError(f"{path}: {one_line(exc, 'key {!r}')}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProfileError(
            f"{path}: YAML syntax error{loc}: {getattr(exc, 'problem', None) or exc}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read: {exc}") from None
    except ProfileError as exc:
        raise ProfileError(f"{path}: {exc}") from None
