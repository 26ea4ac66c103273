"""The results store: one JSON record per training run, keyed by a hash of what determines it.

Records are written atomically (temp file, fsync, rename), so the store never holds a
partial record; a record that fails to parse or validate is reported by path, never used.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from .common import write_atomically
from .training import KEY_OMITS_AT_DEFAULT, RunConfig, resolve_device, train_run

SCHEMA_VERSION = 1
REQUIRED_FIELDS = ("schema_version", "key", "config", "device", "metrics", "curves", "outputs",
                   "torch_version", "code_version", "created")


class CorruptRecord(Exception):
    """A record on disk that cannot be trusted."""


def run_key(config: RunConfig, device_type: str) -> str:
    """Stable across processes and sessions: sorted JSON of the configuration and the device type."""
    d = config.to_dict()
    for name in KEY_OMITS_AT_DEFAULT:
        if d[name] == getattr(RunConfig, name):
            del d[name]
    payload = json.dumps({"config": d, "device": device_type}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the library's checkout, '+dirty' when library files are modified."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "siamese_lib"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + ("+dirty" if dirty else "")


def record_path(store_dir: Path, key: str) -> Path:
    return Path(store_dir) / f"{key}.json"


def validate_record(record, path: Path) -> dict:
    if not isinstance(record, dict):
        raise CorruptRecord(f"{path}: not a JSON object")
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise CorruptRecord(f"{path}: missing fields {missing}")
    if record["schema_version"] != SCHEMA_VERSION:
        raise CorruptRecord(f"{path}: schema_version {record['schema_version']!r}, expected {SCHEMA_VERSION}")
    try:
        config = config_from_dict(record["config"])
    except (TypeError, ValueError) as exc:
        raise CorruptRecord(f"{path}: invalid config: {exc}") from exc
    if run_key(config, record["device"]) != record["key"] or path.stem != record["key"]:
        raise CorruptRecord(f"{path}: key does not match its configuration")
    if not isinstance(record["metrics"], dict) or "test_error" not in record["metrics"]:
        raise CorruptRecord(f"{path}: metrics lack test_error")
    record["config"] = config.to_dict()  # every field, so a record stored before a field existed reads as its default
    return record


def config_from_dict(d: dict) -> RunConfig:
    return RunConfig(**{**d, "augment": tuple(d.get("augment", ()))})


CORRUPT_HINT = "never used; delete the file to recompute that run (or rerun with --force)"


def load_record(path: Path) -> dict:
    try:
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptRecord(f"{path}: unreadable or truncated record ({type(exc).__name__}: {exc})") from exc
        return validate_record(record, Path(path))
    except CorruptRecord as exc:
        raise CorruptRecord(f"{exc}; {CORRUPT_HINT}") from exc.__cause__


def find_record(store_dir, config: RunConfig, device_type: str) -> dict | None:
    path = record_path(store_dir, run_key(config, device_type))
    return load_record(path) if path.exists() else None


def must_retrain(path: Path, force) -> bool:
    """``force``: False, True (always retrain), or a time.time() stamp: retrain a record written before it.
    The runner's --force passes its start time, so a run that two notebooks share is retrained once."""
    if isinstance(force, bool):
        return force
    return path.stat().st_mtime < float(force)


def train_record(config: RunConfig, device: str = "auto", progress=None) -> dict:
    """Train ``config`` and return its record (not written): what a Dask worker computes for the client."""
    dev = resolve_device(device).type
    body = train_run(config, device=dev, progress=progress)
    return {
        "schema_version": SCHEMA_VERSION, "key": run_key(config, dev), "config": config.to_dict(), **body,
        "torch_version": torch.__version__, "code_version": code_version(),
        "python": platform.python_version(), "threads": torch.get_num_threads(),
        "host": platform.node(), "cpu": platform.processor() or platform.machine(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_record(store_dir, record: dict) -> Path:
    """Write one record into the store, atomically; the one place records are written."""
    path = record_path(store_dir, record["key"])
    write_atomically(path, json.dumps(record))
    return path


def ensure_run(config: RunConfig, store_dir, device: str = "auto", force: bool | float = False,
               progress=None) -> tuple[dict, bool]:
    """The record for ``config``: from the store when present, else trained and saved. Returns (record, cached)."""
    dev = resolve_device(device).type
    path = record_path(store_dir, run_key(config, dev))
    if path.exists() and not must_retrain(path, force):
        return load_record(path), True
    record = train_record(config, dev, progress=progress)
    write_record(store_dir, record)
    return record, False


def load_records(store_dir) -> list[dict]:
    """All records; raises CorruptRecord naming the first bad file (never skips one silently)."""
    store_dir = Path(store_dir)
    if not store_dir.is_dir():
        return []
    return [load_record(p) for p in sorted(store_dir.glob("*.json")) if not p.name.startswith(".")]


def ensure_runs(configs, store_dir, device="auto", force=False, log=print) -> list[dict]:
    """Each configuration's record, from the store or trained now; one progress line per run.
    ``force``: as in store.ensure_run (True, or a time stamp before which records are retrained)."""
    records = []
    for i, config in enumerate(configs, 1):
        start = time.perf_counter()
        record, cached = ensure_run(config, store_dir, device=device, force=force)
        how = "from the store" if cached else f"trained in {time.perf_counter() - start:.1f} s"
        log(f"[{i}/{len(configs)}] seed {config.seed}: test error {record['metrics']['test_error']:.2f} % "
            f"({how}; key {record['key']})")
        records.append(record)
    return records
