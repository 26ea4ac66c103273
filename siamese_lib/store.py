"""The results store: one JSON record per run, keyed by a hash of what determines it; it stores, never trains.

Records are written atomically, so the store never holds a partial one; a record that fails to parse or
validate is reported by path, never used.
"""

import datetime
import functools
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
    model_validator,
)

from .common import ROOT, OneLineError, UsageError, runs_root, write_atomically
from .config import ERROR_METRICS, Int, Number, OneOf, RunConfig, Strict, key_defaults, one_line, ruled
from .machine import fingerprint_problems

SCHEMA_VERSION = 1


class CorruptRecord(OneLineError):
    """A record on disk that cannot be trusted (shown as one line in a notebook, not a traceback)."""


def run_key(config: RunConfig, device_type: str) -> str:
    """Stable across processes and sessions: sorted JSON of the configuration and the device type."""
    d = config.to_dict()
    for name, value in key_defaults(d).items():
        if d[name] == value:
            del d[name]
    payload = json.dumps({"config": d, "device": device_type}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


# What decides a run's numbers: a change under these paths is a new code version (docs and tests are not).
CODE_PATHS = ("siamese_lib", "notebooks", "params", "pyproject.toml", "constraints.txt")
DIRTY = "+dirty"
ALLOW_DIRTY_ENV = "SIAMESE_LIB_ALLOW_DIRTY"  # set by `run --allow-dirty`; the kernels and workers inherit it
CLEAN_PROFILES = ("paper",)  # the profiles whose record is committed
UNKNOWN = "unknown"  # no git history here (e.g. a zip download): provenance cannot be established


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout


def uncommitted_code() -> list[str]:
    """The paths under CODE_PATHS that differ from the last commit (modified, added or untracked)."""
    try:
        lines = _git("status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS).splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    return [line[3:] for line in lines if line.strip()]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The last commit that changed CODE_PATHS (12 hex digits), + DIRTY while any of them is uncommitted;
    UNKNOWN + DIRTY where no version can be established."""
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
    """Refuse (UsageError) to train a committed profile's runs from uncommitted code, unless allowed;
    ``allow`` holds for this process and the kernels and workers it starts."""
    if allow:
        os.environ[ALLOW_DIRTY_ENV] = "1"
    if profile_name in CLEAN_PROFILES and not dirty_allowed() and code_version().endswith(DIRTY):
        raise UsageError(_refusal(profile_name))


def _refusal(profile_name: str) -> str:
    if code_version().startswith(UNKNOWN):
        why = "code whose version cannot be established (no git history here, e.g. a zip download): clone it"
    else:
        changed = uncommitted_code()
        shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
        why = f"uncommitted changes ({shown or 'see git status'}): commit them"
    return (
        f"refusing to write records of profile {profile_name!r} from {why} first, or pass --allow-dirty "
        f"(make report ALLOW_DIRTY=1) for an experiment; its runs are then marked {DIRTY} in the report"
    )


SEEDED_MARK = (
    ".seeded-from-record"  # written by seeding from a published record: exploration trains elsewhere
)


def check_not_seeded(store_dir, missing: int) -> None:
    """Refuse (UsageError) to train ``missing`` runs by hand (a notebook) into a store seeded from a published
    record: they would enter its next record. The runner trains the plan's runs on its own path."""
    mark = Path(store_dir) / SEEDED_MARK
    if missing and mark.is_file():
        raise UsageError(
            f"{store_dir} is seeded from the published record {mark.read_text().strip()}: {missing} new"
            " run(s) are not trained into it (they would enter its next record); give the notebook a store of"
            " its own, e.g. store_dir='runs/explore/store' (copy this store's *.json files there to reuse)"
        )


def record_path(store_dir: Path, key: str) -> Path:
    return Path(store_dir) / f"{key}.json"


# --- a record's schema: every field's type and range, checked on every load -----------------------
Percent, Seconds = Number(0, 100), Number(0)
Text = ruled(StrictStr, "must be a text of 1..200 characters", Field(min_length=1, max_length=200))
# the long lists: pydantic-core's own checks and words (a per-value rule in Python took longer than the load)
Probabilities = list[Annotated[StrictFloat, Field(ge=0, le=1, allow_inf_nan=False)]]
Digits = list[Annotated[StrictInt, Field(ge=0, le=9)]]
# val_*: when the configuration holds out validation pairs; confirm_*: when it has confirmation seeds
OPTIONAL_SPLITS = {"val": lambda c: c.val_pairs > 0, "confirm": lambda c: bool(c.confirm_seeds)}
Metrics = create_model(
    "Metrics",
    __base__=Strict,
    train_seconds=(Seconds, ...),
    wall_seconds=(Seconds, ...),
    **{
        f"{s}_{m}": (Percent, None if s in OPTIONAL_SPLITS else ...)
        for s in ("train", "test", *OPTIONAL_SPLITS)
        for m in ERROR_METRICS
    },
)


class Curves(Strict):
    train_loss: list[Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]]  # one per epoch


class Outputs(Strict):  # one value per test pair
    head_prob: Probabilities
    digit_prob: Probabilities
    digit1_pred: Digits
    digit2_pred: Digits
    confirm_head_prob: Probabilities = None  # one value per confirmation pair (with confirm_seeds)
    confirm_digit_prob: Probabilities = None
    # one value per validation pair (with val_pairs); runs trained before issue 33 have none: unchecked
    val_head_prob: Probabilities = None
    val_digit_prob: Probabilities = None


def _config(value) -> RunConfig:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping")
    return config_from_dict(value)  # a ValueError names the config's field


class Record(Strict):
    schema_version: ruled(StrictInt, f"must be {SCHEMA_VERSION}", Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION))
    config: Annotated[RunConfig, PlainValidator(_config)]
    key: StrictStr
    device: OneOf("cpu", "cuda")
    metrics: Metrics
    curves: Curves
    outputs: Outputs
    torch_version: Text
    code_version: Text
    created: Annotated[StrictStr, AfterValidator(lambda v: datetime.datetime.fromisoformat(v) and v)]
    # optional; ``machine``: the fingerprint of the machine that trained the run (machine.fingerprint)
    python: Text = None
    host: ruled(StrictStr, "must be a text of at most 200 characters", Field(max_length=200)) = None
    cpu: Text = None
    threads: Int(1, 4096) = None
    epochs_trained: StrictInt = None
    machine: dict = None

    @model_validator(mode="after")
    def _as_its_config(self):
        c, given = self.config, self.metrics.model_fields_set | self.outputs.model_fields_set
        wanted = {split: has(c) for split, has in OPTIONAL_SPLITS.items()}
        names = {s: {f"{s}_{m}" for m in (*ERROR_METRICS, "head_prob", "digit_prob")} for s in wanted}
        optional = {"val_head_prob", "val_digit_prob"}
        lacking = sorted(set().union(*(names[s] for s in wanted if wanted[s])) - given - optional)
        extra = sorted(set().union(*(names[s] for s in wanted if not wanted[s])) & given)
        per = {"confirm": (c.confirm_pairs, "confirmation pair"), "val": (c.val_pairs, "validation pair")}
        lengths = {"curves.train_loss": (self.curves.train_loss, c.trained_epochs, "epoch")}
        for k, v in self.outputs:
            if v is not None:
                lengths[f"outputs.{k}"] = (v, *per.get(k.split("_")[0], (c.nb_pairs, "test pair")))
        problems = [f"metrics lack {', '.join(lacking)}"] if lacking else []
        if extra:
            where = "outputs" if extra[0] in self.outputs.model_fields_set else "metrics"
            problems.append(f"{where}.{extra[0]} is not a metric of this configuration")
        problems += [
            f"{k} must be {n} values (one per {per})" for k, (v, n, per) in lengths.items() if len(v) != n
        ]
        if self.epochs_trained not in (None, c.trained_epochs):
            problems.append(
                f"epochs_trained {self.epochs_trained} differs from its config's {c.trained_epochs}"
            )
        if run_key(c, self.device) != self.key:
            problems.append("key does not match its configuration")
        problems += fingerprint_problems(self.machine, typed=True) if self.machine is not None else []
        if problems:
            raise ValueError(problems[0])
        return self


def validate_record(record, path: Path) -> dict:
    """Every field checked against its type and range (Record); else CorruptRecord naming path and field."""
    try:
        config = Record.model_validate(record).config
    except ValidationError as exc:
        raise CorruptRecord(f"{path}: {one_line(exc)}") from None
    if path.stem != record["key"]:
        raise CorruptRecord(f"{path}: key does not match its configuration")
    record["config"] = config.to_dict()  # every field: a record stored before a field existed has its default
    return record


def check_metrics(record: dict) -> None:
    """Every metric stored with per-pair outputs follows from them and the pairs' targets by
    training.pair_errors (6 decimals: a stored 0.5 may count either way); else CorruptRecord."""
    import torch

    from .training import pair_errors, pair_sets, val_order

    c = config_from_dict(record["config"])
    outputs, metrics = record["outputs"], record["metrics"]
    _, tr_t, tr_c, _, te_t, te_c = pair_sets(c.nb_pairs, c.data_seed)
    splits = {"test": ("", te_t, te_c)}
    if "confirm_head_prob" in outputs:
        splits["confirm"] = ("confirm_", *_confirm_targets(c.nb_pairs, c.data_seed, tuple(c.confirm_seeds)))
    if "val_head_prob" in outputs:
        held = val_order(c)[: c.val_pairs]
        splits["val"] = ("val_", tr_t[held], tr_c[held])
    for split, (prefix, target, classes) in splits.items():
        head, prob = (
            torch.tensor(outputs[prefix + k], dtype=torch.float64) for k in ("head_prob", "digit_prob")
        )
        p1, p2 = (
            (torch.tensor(outputs[k]) for k in ("digit1_pred", "digit2_pred")) if not prefix else (None, None)
        )
        ties = {
            "error": head == 0.5,
            "digit_prob_error": prob == 0.5,
            "head_vs_digits_disagreement": head == 0.5,
        }
        n = len(target)
        for m, w in pair_errors(head, prob, target, classes, p1, p2).items():
            undecided = ties.get(m, torch.zeros(n, dtype=torch.bool))
            low, high = int((w & ~undecided).sum()), int((w | undecided).sum())
            value = metrics[f"{split}_{m}"]
            count = value * n / 100
            if not (abs(count - round(count)) < 1e-3 and low <= round(count) <= high):
                shown = f"{100 * low / n:.2f} %" + (f" to {100 * high / n:.2f} %" if high > low else "")
                why = f"does not follow from the record's own outputs ({shown})"
                raise CorruptRecord(f"metrics.{split}_{m} {value:.4g} % {why}")


@functools.lru_cache(maxsize=4)
def _confirm_targets(nb_pairs: int, data_seed: int, seeds: tuple):
    from .data import confirmation_pairs

    return confirmation_pairs(nb_pairs, data_seed, seeds)[1:]


def admit(record, path: Path, planned=None) -> dict:
    """The gate every record passes to enter a store: its schema (Record), its metrics from its outputs
    (check_metrics) and, with ``planned`` (the keys the profile plans), a planned run; else CorruptRecord."""
    record = validate_record(record, path)
    if planned is not None and record["key"] not in planned:
        raise CorruptRecord(f"{path}: run {record['key']} is not one the profile plans")
    try:
        check_metrics(record)
    except CorruptRecord as exc:
        raise CorruptRecord(f"{path}: {exc}") from None
    return record


def config_from_dict(d: dict) -> RunConfig:
    """A stored configuration; one stored before a field existed ran with that field's old value."""
    return RunConfig(**{**key_defaults(d), **d})


CORRUPT_HINT = "never used; delete the file to recompute that run (or rerun with --force)"
MAX_RECORD_BYTES = 20_000_000  # a record of 5000 test pairs takes about 0.3 MB


def load_record(path: Path) -> dict:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise CorruptRecord(f"{path}: {size} bytes, more than a record can hold ({MAX_RECORD_BYTES})")
        return validate_record(json.loads(path.read_text()), path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = f"unreadable or truncated record ({type(exc).__name__}: {exc})"
        raise CorruptRecord(f"{path}: {why}; {CORRUPT_HINT}") from exc
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


def is_clean_store(store_dir) -> bool:
    try:
        return any(Path(store_dir).resolve() == (runs_root() / p / "store").resolve() for p in CLEAN_PROFILES)
    except OSError:
        return False


def write_record(store_dir, record: dict, planned=None) -> Path:
    """Write one record, atomically, once the gate (admit) passed it: the one place records are written.
    ``planned``: the keys the profile plans, where it is known."""
    path = record_path(store_dir, record["key"])
    dirty = str(record.get("code_version", "")).endswith(DIRTY)
    if dirty and is_clean_store(store_dir) and not dirty_allowed():  # the committed record takes no such code
        raise UsageError(_refusal(Path(store_dir).parent.name))
    text = json.dumps(record)
    admit(json.loads(text), path, planned)  # the gate: never store a record that it refuses
    write_atomically(path, text)
    return path


def report_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def load_records(store_dir, report=report_to_stderr) -> list[dict]:
    """All valid records; a bad one is reported by path (``report``: stderr, which an executed notebook
    shows) and treated as missing."""
    records = []
    for path in sorted(Path(store_dir).glob("*.json")) if Path(store_dir).is_dir() else []:
        try:
            if not path.name.startswith("."):
                records.append(load_record(path))
        except CorruptRecord as exc:
            report(f"skipped a bad record: {exc}")
    return records
