"""What every layer may use: the project's paths, the usage-error type, one atomic writer."""
from __future__ import annotations

import datetime
import json
import os
import re
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = ROOT / "params"
NOTEBOOKS_DIR = ROOT / "notebooks"
TEMPLATE_DIR = ROOT / "report" / "template"


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


def runs_root() -> Path:
    return Path(os.environ.get("SIAMESE_LIB_RUNS_DIR") or ROOT / "runs").resolve()


def report_root() -> Path:
    return Path(os.environ.get("SIAMESE_LIB_REPORT_DIR") or ROOT / "report").resolve()


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write through a temporary file in the same folder and rename: a reader sees the old file or
    the new one, never half of one (a crash leaves at most a dot-file, which loaders skip)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results and reports are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomically(path: Path, data) -> None:
    write_atomically(path, json.dumps(data, indent=1))


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def safe_name(text: str, limit: int = 120) -> str:
    """A file name from any text: only [A-Za-z0-9._-], no leading dot, never empty."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(text)).lstrip(".")[:limit]
    return name or "_"


def inside(path: Path, base: Path) -> Path:
    """``path`` resolved, refusing anything that resolves outside ``base``."""
    resolved, base = path.resolve(), base.resolve()
    if not resolved.is_relative_to(base):
        raise ValueError(f"{path} resolves outside {base}")
    return resolved
