"""Profiles (params/*.yaml): loading and validation, nothing run.

A profile names the data, the protocols and, per stage, the grid to run; ``planning`` turns a
validated profile into runs and notebook executions.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..common import PARAMS_DIR
from ..models import PAPER_MODELS
from ..training import PROTOCOLS
from .selection import CANDIDATE_FIELDS, FINAL_TRAINING, RULE_COLUMNS, candidate_config
from .variants import VARIANTS

TRAINING_STAGES = ("lr_search", "table1", "table2", "beyond_paper", "selection")
STAGES = TRAINING_STAGES + ("figures", "report")
# The published choice (paper, section III and Fig. 2).
PAPER_LRS = {"Net": 3e-2, "LeNet5": 5e-3, "LeNet5_FullyConv": 5e-2, "ResNet": 5e-3}


class ProfileError(ValueError):
    """A profile that cannot be run; the message is one line naming file, key and what is allowed."""


# --- validation ----------------------------------------------------------------

def _kind(value):
    return type(value).__name__


def _check(cond, where, key, allowed, value):
    if not cond:
        raise ProfileError(f"{where}: key '{key}': {allowed}, got {value!r} ({_kind(value)})")


def _int(value, where, key, lo=None, hi=None):
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (lo is None or value >= lo) and (hi is None or value <= hi)
    rng = f" in {lo}..{hi}" if hi is not None else (f" >= {lo}" if lo is not None else "")
    _check(ok, where, key, f"must be an integer{rng}", value)
    return value


def _number(value, where, key, positive=True):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > 0 if positive else value >= 0)
    _check(ok, where, key, "must be a finite number > 0" if positive else "must be a finite number >= 0", value)
    return float(value)


def _list(value, where, key, item, unique=True):
    _check(isinstance(value, list) and len(value) > 0, where, key, "must be a non-empty list", value)
    out = [item(v, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if unique:
        dupes = sorted({repr(v) for v in out if out.count(v) > 1})
        _check(not dupes, where, key, f"must not repeat values (repeated: {', '.join(dupes)})", value)
    return out


def _choice(options):
    def check(value, where, key):
        _check(value in options, where, key, f"must be one of {', '.join(map(str, options))}", value)
        return value
    return check


def _bool(value, where, key):
    _check(isinstance(value, bool), where, key, "must be true or false", value)
    return value


MAX_SEED = 2**32 - 1  # torch and numpy both accept it; larger values fail only once training starts


def _seed(value, where, key):
    return _int(value, where, key, lo=0, hi=MAX_SEED)


def _unknown_keys(mapping, allowed, where, prefix):
    for k in mapping:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), list(allowed), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ProfileError(f"{where}: unknown key '{prefix}{k}'{hint}; allowed: {', '.join(allowed)}")


def _mapping(value, where, key):
    _check(isinstance(value, dict), where, key, "must be a mapping", value)
    return value


STAGE_SCHEMAS = {
    "lr_search": {"models": lambda v, w, k: _list(v, w, k, _choice(PAPER_MODELS)),
                  "lrs": lambda v, w, k: _list(v, w, k, _number),
                  "seeds": lambda v, w, k: _list(v, w, k, _seed),
                  "epochs": lambda v, w, k: _int(v, w, k, 1, 10000)},
    "table1": {"models": lambda v, w, k: _list(v, w, k, _choice(PAPER_MODELS)),
               "weight_sharing": lambda v, w, k: _list(v, w, k, _bool),
               "aux_loss": lambda v, w, k: _list(v, w, k, _bool),
               "seeds": lambda v, w, k: _list(v, w, k, _seed),
               "epochs": lambda v, w, k: _int(v, w, k, 1, 10000)},
    "table2": {"weight_sharing": lambda v, w, k: _list(v, w, k, _bool),
               "batch_norm": lambda v, w, k: _list(v, w, k, _bool),
               "dropout": lambda v, w, k: _list(v, w, k, _bool),
               "seeds": lambda v, w, k: _list(v, w, k, _seed),
               "epochs": lambda v, w, k: _int(v, w, k, 1, 10000)},
    "beyond_paper": {"models": lambda v, w, k: _list(v, w, k, _choice(PAPER_MODELS)),
                   "variants": lambda v, w, k: _list(v, w, k, _variant_name),
                   "seeds": lambda v, w, k: _list(v, w, k, _seed),
                   "epochs": lambda v, w, k: _int(v, w, k, 1, 10000)},
    "selection": {"candidates": lambda v, w, k: _candidates(v, w, k),
                  "rules": lambda v, w, k: _list(v, w, k, _choice(tuple(RULE_COLUMNS))),
                  "selection_seeds": lambda v, w, k: _list(v, w, k, _seed),
                  "final_seeds": lambda v, w, k: _list(v, w, k, _seed),
                  "final_training": lambda v, w, k: _choice(FINAL_TRAINING)(v, w, k)},
}
REQUIRED_STAGE_KEYS = {s: tuple(k for k in schema if not (s == "beyond_paper" and k == "variants"))
                       for s, schema in STAGE_SCHEMAS.items()}
TOP_LEVEL = {
    "description": lambda v, w, k: (_check(isinstance(v, str), w, k, "must be a string", v), v)[1],
    "nb_pairs": lambda v, w, k: _int(v, w, k, 1, 5000),
    "data_seed": lambda v, w, k: _int(v, w, k, 0, MAX_SEED),
    "batch_size": lambda v, w, k: _int(v, w, k, 1, 5000),
    "protocols": lambda v, w, k: _list(v, w, k, _choice(PROTOCOLS)),
    "learning_rates": lambda v, w, k: _choice(("paper", "auto"))(v, w, k),
    "stages": _mapping,
}
DEFAULTS = {"description": "", "nb_pairs": 1000, "data_seed": 0, "batch_size": 100,
            "protocols": ["corrected"], "learning_rates": "paper"}


def _candidates(value, where, key):
    """name -> RunConfig fields (CANDIDATE_FIELDS); each must make a valid configuration."""
    _check(isinstance(value, dict) and len(value) > 0, where, key, "must be a non-empty mapping of name -> fields", value)
    out = {}
    for name, spec in value.items():
        _check(isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", name), where, f"{key}",
               "candidate names must use letters, digits, '_', '-' or '.'", name)
        spec = _mapping(spec or {}, where, f"{key}.{name}")
        _unknown_keys(spec, CANDIDATE_FIELDS, where, f"{key}.{name}.")
        try:
            candidate_config(spec, 0, DEFAULTS)
        except (ValueError, TypeError) as exc:
            raise ProfileError(f"{where}: key '{key}.{name}': {exc}") from None
        out[name] = spec
    return out


def _check_selection(stage: dict, where: str):
    shared = sorted(set(stage["selection_seeds"]) & set(stage["final_seeds"]))
    _check(not shared, where, "stages.selection.final_seeds",
           f"must be fresh seeds, none of the selection seeds (shared: {shared})", stage["final_seeds"])


def _variant_name(value, where, key):
    return _choice(tuple(VARIANTS))(value, where, key)


@dataclass
class Profile:
    name: str
    path: Path
    settings: dict
    stages: dict = field(default_factory=dict)


def profile_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or "/" in str(name_or_path):
        return p
    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(name_or_path)):
        raise ProfileError(f"profile name {name_or_path!r}: use letters, digits, '_' or '-', or a path to a .yaml file")
    return PARAMS_DIR / f"{name_or_path}.yaml"


def _duplicate_key(text: str):
    """The first mapping key given twice, as (dotted key, line), or None: yaml.safe_load keeps the last silently."""
    def walk(node, prefix):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for k, v in node.value:
                name = f"{prefix}{k.value}" if isinstance(k, yaml.ScalarNode) else prefix + "?"
                if name in seen:
                    return name, k.start_mark.line + 1
                seen.add(name)
                found = walk(v, name + ".")
                if found:
                    return found
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                found = walk(v, f"{prefix.rstrip('.')}[{i}].")
                if found:
                    return found
        return None
    return walk(yaml.compose(text, Loader=yaml.SafeLoader), "")  # nodes only: nothing is constructed


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PARAMS_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    path = profile_path(name_or_path)
    where = str(path)
    if not path.is_file():
        raise ProfileError(f"{where}: no such profile file; available profiles: {', '.join(available_profiles())}")
    try:
        text = path.read_text()
        raw = yaml.safe_load(text)
        duplicate = _duplicate_key(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProfileError(f"{where}: YAML syntax error{loc}: {getattr(exc, 'problem', None) or exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{where}: cannot read: {exc}") from None
    if duplicate:
        raise ProfileError(f"{where}: key '{duplicate[0]}' is given twice (line {duplicate[1]}); give it once")
    if raw is None:
        raise ProfileError(f"{where}: the file is empty; a profile needs at least 'stages'")
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: a profile must be a mapping of keys, got {_kind(raw)}")
    _unknown_keys(raw, TOP_LEVEL, where, "")
    if "stages" not in raw:
        raise ProfileError(f"{where}: key 'stages' is required (a mapping of {', '.join(TRAINING_STAGES)})")
    settings = dict(DEFAULTS)
    for key, check in TOP_LEVEL.items():
        if key in raw:
            settings[key] = check(raw[key], where, key)
    stages = {}
    _unknown_keys(raw["stages"], STAGES, where, "stages.")
    for stage, body in raw["stages"].items():
        if stage in ("figures", "report"):
            _check(body in (None, {}), where, f"stages.{stage}", "takes no settings (leave it empty)", body)
            stages[stage] = {}
            continue
        key = f"stages.{stage}"
        body = _mapping(body, where, key)
        _unknown_keys(body, STAGE_SCHEMAS[stage], where, key + ".")
        for req in REQUIRED_STAGE_KEYS[stage]:
            if req not in body:
                raise ProfileError(f"{where}: key '{key}.{req}' is required")
        stages[stage] = {k: STAGE_SCHEMAS[stage][k](v, where, f"{key}.{k}") for k, v in body.items()}
        if stage == "selection":
            _check_selection(stages[stage], where)
    if not any(s in stages for s in TRAINING_STAGES):
        raise ProfileError(f"{where}: key 'stages' names no training stage; allowed: {', '.join(TRAINING_STAGES)}")
    name = path.stem
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name.endswith("."):
        # the name becomes runs/<name>/ and report/<name>/: nothing that could leave those folders
        raise ProfileError(f"{where}: profile name {name!r} (from the file name): use letters, digits, '_', '-' or '.'")
    return Profile(name=name, path=path, settings=settings, stages=stages)


