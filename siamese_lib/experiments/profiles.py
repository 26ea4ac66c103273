"""Profiles (params/*.yaml): loading and validation, nothing run.

A profile names the data, the protocols and, per stage, the grid to run; ``planning`` turns a
validated profile into runs and notebook executions.
"""
from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..common import PARAMS_DIR
from ..machine import NUMERICS
from ..models import PAPER_MODELS
from ..config import FIELD_RULES, RunConfig, short_repr
from .selection import CANDIDATE_FIELDS, FINAL_TRAINING, RULE_COLUMNS, candidate_config
from .variants import VARIANTS, applies_to, variant_configs

TRAINING_STAGES = ("lr_search", "table1", "table2", "beyond_paper", "selection")
STAGES = TRAINING_STAGES + ("figures", "report")
# The published choice (paper, section III and Fig. 2).
PAPER_LRS = {"Net": 3e-2, "LeNet5": 5e-3, "LeNet5_FullyConv": 5e-2, "ResNet": 5e-3}


class ProfileError(ValueError):
    """A profile that cannot be run; the message is one line naming file, key and what is allowed."""


# --- validation ----------------------------------------------------------------
# Limits on what a profile may hold, so that loading and validating take time linear in its text.
MAX_PROFILE_BYTES = 100_000
MAX_LIST_ITEMS = 1000
MAX_ALIASES = 100
MAX_DEPTH = 20


def _kind(value):
    return type(value).__name__


def _check(cond, where, key, allowed, value):
    if not cond:
        raise ProfileError(f"{where}: key '{key}': {allowed}, got {short_repr(value)} ({_kind(value)})")


def _field(name):
    """A checker for values of the run-configuration field ``name``: the limits and words of
    config.FIELD_RULES, the one validation that RunConfig and the train command use too."""
    ok, rule = FIELD_RULES[name]

    def check(value, where, key):
        _check(ok(value), where, key, rule, value)
        return float(value) if name == "lr" else value
    return check


def _list(value, where, key, item, unique=True):
    _check(isinstance(value, list) and len(value) > 0, where, key, "must be a non-empty list", value)
    _check(len(value) <= MAX_LIST_ITEMS, where, key, f"must hold at most {MAX_LIST_ITEMS} entries",
           f"a list of {len(value)}")
    out = [item(v, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if unique:  # one pass over a Counter: linear, however long the list
        dupes = sorted(repr(v) for v, n in Counter(out).items() if n > 1)
        _check(not dupes, where, key, f"must not repeat values (repeated: {', '.join(dupes[:10])})", value)
    return out


def _choice(options):
    def check(value, where, key):
        _check(isinstance(value, str) and value in options, where, key,
               f"must be one of {', '.join(map(str, options))}", value)
        return value
    return check


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
    # the paper's stages run the paper's four models; the selection stage may add others (its candidates)
    "lr_search": {"models": lambda v, w, k: _list(v, w, k, _choice(PAPER_MODELS)),
                  "lrs": lambda v, w, k: _list(v, w, k, _field("lr")),
                  "seeds": lambda v, w, k: _list(v, w, k, _field("seed")),
                  "epochs": lambda v, w, k: _field("epochs")(v, w, k)},
    "table1": {"models": lambda v, w, k: _list(v, w, k, _choice(PAPER_MODELS)),
               "weight_sharing": lambda v, w, k: _list(v, w, k, _field("weight_sharing")),
               "aux_loss": lambda v, w, k: _list(v, w, k, _field("aux_loss")),
               "seeds": lambda v, w, k: _list(v, w, k, _field("seed")),
               "epochs": lambda v, w, k: _field("epochs")(v, w, k)},
    "table2": {"weight_sharing": lambda v, w, k: _list(v, w, k, _field("weight_sharing")),
               "batch_norm": lambda v, w, k: _list(v, w, k, _field("batch_norm")),
               "dropout": lambda v, w, k: _list(v, w, k, _field("dropout")),
               "seeds": lambda v, w, k: _list(v, w, k, _field("seed")),
               "epochs": lambda v, w, k: _field("epochs")(v, w, k)},
    "beyond_paper": {"models": lambda v, w, k: _list(v, w, k, _choice(PAPER_MODELS)),
                     "variants": lambda v, w, k: _list(v, w, k, _variant_name),
                     "seeds": lambda v, w, k: _list(v, w, k, _field("seed")),
                     "epochs": lambda v, w, k: _field("epochs")(v, w, k)},
    "selection": {"candidates": lambda v, w, k: _candidates(v, w, k),
                  "rules": lambda v, w, k: _list(v, w, k, _choice(tuple(RULE_COLUMNS))),
                  "selection_seeds": lambda v, w, k: _list(v, w, k, _field("seed")),
                  "final_seeds": lambda v, w, k: _list(v, w, k, _field("seed")),
                  "final_training": lambda v, w, k: _choice(FINAL_TRAINING)(v, w, k)},
}
REQUIRED_STAGE_KEYS = {s: tuple(k for k in schema if not (s == "beyond_paper" and k == "variants"))
                       for s, schema in STAGE_SCHEMAS.items()}
TOP_LEVEL = {
    "description": lambda v, w, k: (_check(isinstance(v, str), w, k, "must be a string", v), v)[1],
    "nb_pairs": _field("nb_pairs"),
    "data_seed": _field("data_seed"),
    "batch_size": _field("batch_size"),
    "protocols": lambda v, w, k: _list(v, w, k, _field("protocol")),
    "learning_rates": lambda v, w, k: _choice(("paper", "auto"))(v, w, k),
    "numerics": lambda v, w, k: _choice(NUMERICS)(v, w, k),
    "equivalence_margin": lambda v, w, k: (_check(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 100,
                                                  w, k, "must be percentage points, a number in (0, 100)", v), float(v))[1],
    "stages": _mapping,
}
DEFAULTS = {"description": "", "nb_pairs": 1000, "data_seed": 0, "batch_size": 100,
            "protocols": ["corrected"], "learning_rates": "paper", "numerics": "native", "equivalence_margin": 1.0}


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


def _compose(text: str, where: str):
    """The YAML node tree, refused past the stated limits before anything is composed or constructed."""
    aliases = depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):  # a stream of events: linear in the text
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise ProfileError(f"{where}: more than {MAX_ALIASES} YAML aliases (*name); write the values out")
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise ProfileError(f"{where}: nested more than {MAX_DEPTH} levels deep (line {line})")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    loader = yaml.SafeLoader(text)
    try:
        return loader, loader.get_single_node()
    finally:
        loader.dispose()


def _check_nodes(root, where: str) -> None:
    """Refuse a mapping key given twice (yaml.safe_load keeps the last silently) and merge keys ('<<',
    which copy mappings and can grow a small file exponentially). Each node is visited once, however
    many aliases share it, so the walk is linear in the text."""
    seen_nodes, stack = set(), [(root, "")]
    while stack:
        node, prefix = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys = set()
            for k, v in node.value:
                if k.tag == "tag:yaml.org,2002:merge":
                    raise ProfileError(f"{where}: merge keys ('<<', line {k.start_mark.line + 1}) are not "
                                       f"supported; write the keys out")
                name = f"{prefix}{k.value}" if isinstance(k, yaml.ScalarNode) else prefix + "?"
                if name in keys:
                    raise ProfileError(f"{where}: key '{name}' is given twice (line {k.start_mark.line + 1}); "
                                       f"give it once")
                keys.add(name)
                stack.append((v, name + "."))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, f"{prefix.rstrip('.')}[{i}].") for i, v in enumerate(node.value))


def _read_yaml(path: Path, where: str):
    try:
        size = path.stat().st_size
        if size > MAX_PROFILE_BYTES:
            raise ProfileError(f"{where}: {size} bytes; a profile may hold at most {MAX_PROFILE_BYTES} bytes")
        text = path.read_text()
        loader, node = _compose(text, where)
        if node is None:
            return None
        _check_nodes(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProfileError(f"{where}: YAML syntax error{loc}: {getattr(exc, 'problem', None) or exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{where}: cannot read: {exc}") from None


def _check_runs(settings: dict, stages: dict, where: str) -> None:
    """Every kind of run the profile implies must be a valid RunConfig (cross-field rules, such as batch
    norm's two pairs per mini-batch): refused now, not when a notebook reaches it. One seed stands for all."""
    base = dict(nb_pairs=settings["nb_pairs"], data_seed=settings["data_seed"], batch_size=settings["batch_size"])
    for stage, g in stages.items():
        seed, epochs = g.get("seeds", [1])[0], g.get("epochs")
        runs = []
        if stage == "lr_search":
            runs = [dict(model=m, lr=lr) for m in g["models"] for lr in g["lrs"]]
        elif stage == "table1":
            runs = [dict(model=m, weight_sharing=ws, aux_loss=aux, protocol=p) for p in settings["protocols"]
                    for m in g["models"] for ws in g["weight_sharing"] for aux in g["aux_loss"]]
        elif stage == "table2":
            runs = [dict(model="LeNet5", weight_sharing=ws, batch_norm=bn, dropout=dr, protocol=p)
                    for p in settings["protocols"] for ws in g["weight_sharing"] for bn in g["batch_norm"]
                    for dr in g["dropout"]]
        try:
            for fields in runs:
                RunConfig(**{"lr": PAPER_LRS[fields["model"]], **base, **fields, "seed": seed, "epochs": epochs})
            if stage == "beyond_paper":
                for m in g["models"]:
                    for v in g.get("variants", VARIANTS):
                        if applies_to(v, m):
                            variant_configs(v, m, PAPER_LRS[m], [seed], epochs=epochs, **base)
        except ValueError as exc:
            raise ProfileError(f"{where}: stages.{stage}: {exc}") from None


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PARAMS_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    path = profile_path(name_or_path)
    where = str(path)
    if not path.is_file():
        raise ProfileError(f"{where}: no such profile file; available profiles: {', '.join(available_profiles())}")
    raw = _read_yaml(path, where)
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
    _check_runs(settings, stages, where)
    name = path.stem
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name.endswith("."):
        # the name becomes runs/<name>/ and report/<name>/: nothing that could leave those folders
        raise ProfileError(f"{where}: profile name {name!r} (from the file name): use letters, digits, '_', '-' or '.'")
    return Profile(name=name, path=path, settings=settings, stages=stages)


