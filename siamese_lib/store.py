"""The results store: one JSON record per training run, keyed by a hash of what determines it. It stores; it
never trains (the engine, pipeline/engine.py, does).

Records are written atomically (temp file, fsync, rename), so the store never holds a
partial record; a record that fails to parse or validate is reported by path, never used.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import json
import math
import os
import sys
import subprocess
from pathlib import Path

from .common import OneLineError, UsageError, runs_root, write_atomically
from .machine import fingerprint_problems
from .config import KEY_OMITS_AT_DEFAULT, RunConfig, short_repr

SCHEMA_VERSION = 1
REQUIRED_FIELDS = ("schema_version", "key", "config", "device", "metrics", "curves", "outputs",
                   "torch_version", "code_version", "created")


class CorruptRecord(OneLineError):
    """A record on disk that cannot be trusted (shown as one line in a notebook, not a traceback)."""


def run_key(config: RunConfig, device_type: str) -> str:
    """Stable across processes and sessions: sorted JSON of the configuration and the device type."""
    d = config.to_dict()
    for name, value in KEY_OMITS_AT_DEFAULT.items():
        if d[name] == value:
            del d[name]
    payload = json.dumps({"config": d, "device": device_type}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


# What decides a run's numbers: a change under these paths is a new code version; docs, README and tests are not,
# so a long run resumed after a docs-only commit keeps one version.
CODE_PATHS = ("siamese_lib", "notebooks", "params", "pyproject.toml", "constraints.txt")
DIRTY = "+dirty"
ALLOW_DIRTY_ENV = "SIAMESE_LIB_ALLOW_DIRTY"   # set by `run --allow-dirty`; the kernels and workers inherit it
CLEAN_PROFILES = ("paper",)                  # the profiles whose record is committed


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout


def uncommitted_code() -> list[str]:
    """The paths under CODE_PATHS that differ from the last commit (modified, added or untracked)."""
    try:
        lines = _git("status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS).splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    return [line[3:] for line in lines if line.strip()]


UNKNOWN = "unknown"  # no git history here (e.g. a zip download): provenance cannot be established


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The last commit that changed CODE_PATHS (12 hex digits), with DIRTY while any of them is uncommitted. A tree
    whose version cannot be established is treated like uncommitted code: UNKNOWN + DIRTY."""
    try:
        commit = _git("log", "-1", "--format=%H", "--", *CODE_PATHS).strip()[:12]
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if not commit:
        return UNKNOWN + DIRTY
    return commit + (DIRTY if uncommitted_code() else "")


def dirty_allowed() -> bool:
    return os.environ.get(ALLOW_DIRTY_ENV) == "1"


def check_clean_code(profile_name: str, allow: bool = False) -> None:
    """Refuse (UsageError, one line) to train a committed profile's runs from uncommitted code (or code of no known
    version), unless allowed; ``allow`` holds for this process and the kernels and workers it starts."""
    if allow:
        os.environ[ALLOW_DIRTY_ENV] = "1"
    if profile_name in CLEAN_PROFILES and not dirty_allowed() and code_version().endswith(DIRTY):
        raise UsageError(_refusal(profile_name))


def _refusal(profile_name: str) -> str:
    if code_version().startswith(UNKNOWN):
        why = ("code whose version cannot be established (no git history here, e.g. a zip download): "
               "clone the repository with git")
    else:
        changed = uncommitted_code()
        shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
        why = f"uncommitted changes ({shown or 'see git status'}): commit them"
    return (f"refusing to write records of profile {profile_name!r} from {why} first, or pass --allow-dirty "
            f"(make report ALLOW_DIRTY=1) for an experiment; its runs are then marked {DIRTY} in the report")


def record_path(store_dir: Path, key: str) -> Path:
    return Path(store_dir) / f"{key}.json"


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _percent(x) -> bool:
    return _finite(x) and 0 <= x <= 100


def _text(x) -> bool:
    return isinstance(x, str) and 0 < len(x) <= 200


def _iso_time(x) -> bool:
    try:
        return isinstance(x, str) and datetime.datetime.fromisoformat(x) is not None
    except ValueError:
        return False


# Fields beside the required ones: name -> check. ``machine``: the fingerprint of the machine that trained the
# run (machine.fingerprint; records stored before it existed have none).
OPTIONAL_FIELDS = {"python": _text, "host": lambda x: isinstance(x, str) and len(x) <= 200, "cpu": _text,
                   "threads": lambda x: isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 4096,
                   "epochs_trained": lambda x: isinstance(x, int) and not isinstance(x, bool),
                   "machine": lambda x: isinstance(x, dict)}  # and its keys: fingerprint_problems
ERROR_METRICS = ("error", "digit1_error", "digit2_error", "derived_error", "digit_prob_error",
                 "head_vs_digits_disagreement")
OUTPUTS = {"head_prob": lambda x: _finite(x) and 0 <= x <= 1, "digit_prob": lambda x: _finite(x) and 0 <= x <= 1,
           "digit1_pred": lambda x: isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 9,
           "digit2_pred": lambda x: isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 9}


def _record_problem(record, path: Path, config: RunConfig) -> str | None:
    """The first field of a (JSON-parsed) record that breaks its type or range, as 'field: what is wrong'."""
    unknown = sorted(set(record) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        return f"unknown fields {short_repr(unknown)}"
    for name, ok in (("torch_version", _text), ("code_version", _text), ("created", _iso_time),
                     ("device", lambda x: x in ("cpu", "cuda")), *OPTIONAL_FIELDS.items()):
        if name in record and not ok(record[name]):
            return f"{name} {short_repr(record[name])} is not valid"
    if record.get("epochs_trained", config.trained_epochs) != config.trained_epochs:
        return f"epochs_trained {record['epochs_trained']} differs from its config's {config.trained_epochs}"
    metrics, curves, outputs = record["metrics"], record["curves"], record["outputs"]
    if not isinstance(metrics, dict) or "test_error" not in metrics:
        return "metrics lack test_error"
    splits = ("train", "test", "val") if config.val_pairs else ("train", "test")
    allowed = {f"{s}_{m}" for s in splits for m in ERROR_METRICS}
    lacking = sorted((allowed | {"train_seconds", "wall_seconds"}) - set(metrics))
    if lacking:  # every record that training writes has them all; the tables read them
        return f"metrics lack {', '.join(lacking[:3])}{' ...' if len(lacking) > 3 else ''}"
    for name, value in metrics.items():
        if name in ("train_seconds", "wall_seconds"):
            if not (_finite(value) and value >= 0):
                return f"metrics.{name} must be a finite number >= 0, got {short_repr(value)}"
        elif name not in allowed:
            return f"metrics.{name} is not a metric of this configuration"
        elif not _percent(value):
            return f"metrics.{name} must be a percentage in [0, 100], got {short_repr(value)}"
    loss = curves.get("train_loss") if isinstance(curves, dict) else None
    if not isinstance(curves, dict) or set(curves) != {"train_loss"} or not isinstance(loss, list):
        return "curves must hold exactly train_loss, a list"
    if len(loss) != config.trained_epochs or not all(_finite(v) and v >= 0 for v in loss):
        return f"curves.train_loss must be {config.trained_epochs} finite numbers >= 0 (one per epoch)"
    if not isinstance(outputs, dict) or set(outputs) != set(OUTPUTS):
        return f"outputs must hold exactly {', '.join(OUTPUTS)}"
    for name, ok in OUTPUTS.items():
        values = outputs[name]
        if not isinstance(values, list) or len(values) != config.nb_pairs or not all(map(ok, values)):
            return f"outputs.{name} must be {config.nb_pairs} values (one per test pair) in its range"
    return None


def validate_record(record, path: Path) -> dict:
    """Every field checked against its type and range; raises CorruptRecord naming the path and the field."""
    if not isinstance(record, dict):
        raise CorruptRecord(f"{path}: not a JSON object")
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise CorruptRecord(f"{path}: missing fields {missing}")
    if record["schema_version"] != SCHEMA_VERSION or isinstance(record["schema_version"], bool):
        raise CorruptRecord(f"{path}: schema_version {short_repr(record['schema_version'])}, "
                            f"expected {SCHEMA_VERSION}")
    try:
        if not isinstance(record["config"], dict):
            raise TypeError("not a mapping")
        config = config_from_dict(record["config"])
    except (TypeError, ValueError) as exc:
        raise CorruptRecord(f"{path}: invalid config: {str(exc)[:300]}") from exc
    if not isinstance(record["device"], str) or not isinstance(record["key"], str) \
            or run_key(config, record["device"]) != record["key"] or path.stem != record["key"]:
        raise CorruptRecord(f"{path}: key does not match its configuration")
    problem = _record_problem(record, path, config)
    if problem:
        raise CorruptRecord(f"{path}: {problem}")
    if "machine" in record and fingerprint_problems(record["machine"]):  # records before fingerprints have none
        raise CorruptRecord(f"{path}: {'; '.join(fingerprint_problems(record['machine']))}")
    record["config"] = config.to_dict()  # every field, so a record stored before a field existed reads as its default
    return record


def config_from_dict(d: dict) -> RunConfig:
    """A stored configuration; one stored before a field existed ran with that field's old value."""
    augment = d.get("augment", [])
    return RunConfig(**{**KEY_OMITS_AT_DEFAULT, **d, "augment": tuple(augment) if isinstance(augment, list) else augment})


CORRUPT_HINT = "never used; delete the file to recompute that run (or rerun with --force)"


MAX_RECORD_BYTES = 20_000_000  # a record of 5000 test pairs takes about 0.3 MB


def load_record(path: Path) -> dict:
    try:
        try:
            size = Path(path).stat().st_size
            if size > MAX_RECORD_BYTES:
                raise CorruptRecord(f"{path}: {size} bytes, more than a record can hold ({MAX_RECORD_BYTES})")
            record = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptRecord(f"{path}: unreadable or truncated record ({type(exc).__name__}: {exc})") from exc
        return validate_record(record, Path(path))
    except CorruptRecord as exc:
        raise CorruptRecord(f"{exc}; {CORRUPT_HINT}") from exc.__cause__


def find_record(store_dir, config: RunConfig, device_type: str, report=None) -> dict | None:
    """The record of ``config``, None when absent. A bad one raises CorruptRecord; with ``report`` (readers
    such as the report) it is reported by path and treated as missing instead."""
    path = record_path(store_dir, run_key(config, device_type))
    if not path.exists():
        return None
    try:
        return load_record(path)
    except CorruptRecord as exc:
        if report is None:
            raise
        report(f"skipped a bad record: {exc}")
        return None


def _is_clean_store(store_dir) -> bool:
    try:
        return any(Path(store_dir).resolve() == (runs_root() / p / "store").resolve() for p in CLEAN_PROFILES)
    except OSError:
        return False


def write_record(store_dir, record: dict) -> Path:
    """Write one record into the store, atomically; the one place records are written."""
    path = record_path(store_dir, record["key"])
    if _is_clean_store(store_dir) and str(record.get("code_version", "")).endswith(DIRTY) and not dirty_allowed():
        raise UsageError(_refusal(Path(store_dir).parent.name))  # the committed record takes no uncommitted code
    text = json.dumps(record)
    validate_record(json.loads(text), path)  # never store a record that a later load would refuse
    write_atomically(path, text)
    return path


def report_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def load_records(store_dir, report=report_to_stderr) -> list[dict]:
    """All valid records. A bad one is reported by path (one line through ``report``, by default on
    stderr: the executed notebook shows it) and treated as missing: never used, never a crash."""
    store_dir = Path(store_dir)
    if not store_dir.is_dir():
        return []
    records = []
    for path in sorted(store_dir.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            records.append(load_record(path))
        except CorruptRecord as exc:
            report(f"skipped a bad record: {exc}")
    return records
