"""The results store: one JSON record per run (record.py), keyed by what determines it, written atomically;
it never trains. A record that fails its checks is reported by path, never used. Code versions live here."""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

from .common import ROOT, UsageError, runs_root, write_atomically
from .config import RunConfig
from .record import (  # noqa: F401 (the store's names for what a record is)
    SCHEMA_VERSION,
    CorruptRecord,
    admit,
    config_from_dict,
    run_key,
    validate_record,
)

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
        why = (
            "code whose version cannot be established (no git history here, e.g. a zip download): "
            "clone the repository with git"
        )
    else:
        changed = uncommitted_code()
        shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
        why = f"uncommitted changes ({shown or 'see git status'}): commit them"
    return (
        f"refusing to write records of profile {profile_name!r} from {why} first, or pass --allow-dirty "
        f"(make report ALLOW_DIRTY=1) for an experiment; its runs are then marked {DIRTY} in the report"
    )


# written by seeding from a published record: exploration trains elsewhere
SEEDED_MARK = ".seeded-from-record"


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


def find_record(store_dir, config: RunConfig, device_type: str | None = None, report=None) -> dict | None:
    """The record of ``config`` trained on ``device_type`` (None: cpu, else cuda), None when absent. A bad one
    raises CorruptRecord; with ``report`` (readers such as the report) it is reported by path and skipped."""
    for device in [device_type] if device_type else ["cpu", "cuda"]:
        path = record_path(store_dir, run_key(config, device))
        if not path.exists():
            continue
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
    """The one place records are written: atomically, once the gate (admit, with ``planned``) passed it."""
    path = record_path(store_dir, record["key"])
    dirty = str(record.get("code_version", "")).endswith(DIRTY)
    if dirty and is_clean_store(store_dir) and not dirty_allowed():  # the committed record takes no such code
        raise UsageError(_refusal(Path(store_dir).parent.name))
    text = json.dumps(record)
    admit(json.loads(text), path, planned)  # the gate: never store a record that it refuses
    write_atomically(path, text)
    return path


def report_to_stderr(line: str) -> None:  # sys.stderr looked up when called (a test may have replaced it)
    print(line, file=sys.stderr, flush=True)


def load_records(store_dir, report=report_to_stderr) -> list[dict]:
    """All valid records; a bad one is reported by path (stderr: a notebook shows it), treated as missing."""
    records = []
    for path in sorted(Path(store_dir).glob("*.json")) if Path(store_dir).is_dir() else []:
        try:
            if not path.name.startswith("."):
                records.append(load_record(path))
        except CorruptRecord as exc:
            report(f"skipped a bad record: {exc}")
    return records
