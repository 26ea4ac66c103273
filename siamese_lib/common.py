"""What every layer may use: the project's paths, the usage-error type, one atomic writer."""

from __future__ import annotations

import datetime
import errno
import json
import os
import re
import tempfile
from pathlib import Path

from . import PACKAGE_ENV

ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = ROOT / "params"
NOTEBOOKS_DIR = ROOT / "notebooks"
TEMPLATE_DIR = ROOT / "report" / "template"


class OneLineError(Exception):
    """An error whose message says it all: IPython shows it as one line, not a traceback."""

    def _render_traceback_(self):  # IPython's hook: these lines replace the traceback in a notebook
        return [f"{type(self).__name__}: {' '.join(str(self).split())}"]


class UsageError(OneLineError):
    """Bad input from the user: reported as one line, exit status 2."""


# Variables naming files or folders: made absolute where the user stands, once, so that every subprocess
# (the notebooks' kernels start elsewhere) reads the same place.
PATH_VARIABLES = (
    "SIAMESE_LIB_RUNS_DIR",
    "SIAMESE_LIB_REPORT_DIR",
    "SIAMESE_LIB_CACHE",
    "SIAMESE_LIB_MNIST_PKL",
    "PYTORCH_DATA_DIR",
)


def absolute_path_variables() -> None:
    for name in PATH_VARIABLES:
        value = os.environ.get(name)
        if value and not os.path.isabs(value):
            os.environ[name] = os.path.abspath(value)


def directory_problem(path, what: str = "directory") -> str | None:
    """Why ``path`` cannot serve as a folder to write in (one line naming it), or None when it can."""
    path = Path(os.path.abspath(path))
    try:
        os.stat(path)  # follows symlinks: ELOOP for a loop anywhere on the way
    except FileNotFoundError:
        if path.is_symlink():
            return f"{what} {path} is a symlink to nothing ({os.readlink(path)})"
        parent = path.parent  # absent: the nearest existing ancestor must be a directory we can write in
        while not os.path.lexists(parent) and parent != parent.parent:
            parent = parent.parent
        problem = directory_problem(parent, "its parent")
        return problem and f"{what} {path} cannot be created: {problem}"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{what} {path} cannot be used: a symlink loop"
        if exc.errno == errno.ENOTDIR:
            return f"{what} {path} cannot be created: a parent of it is a file, not a directory"
        return f"{what} {path} cannot be used: {exc.strerror or exc}"
    if not path.is_dir():
        return f"{what} {path} is a file, not a directory"
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".tmp-probe-")  # tried, not guessed from permission
    except OSError as exc:  # bits: root and read-only mounts too
        return f"{what} {path} is not writable: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(probe)
    return None


def _place(variable: str, default: Path) -> Path:
    """A folder as configured, unresolved (resolving a symlink loop raises: check_run_places reports it)."""
    return Path(os.environ.get(variable) or default)


def runs_root() -> Path:
    return _place("SIAMESE_LIB_RUNS_DIR", ROOT / "runs").resolve()


def report_root() -> Path:
    return _place("SIAMESE_LIB_REPORT_DIR", ROOT / "report").resolve()


def check_run_places(profile_name: str, with_report: bool) -> None:
    """Before a run starts, every folder it writes must be usable; else UsageError naming the place.
    Read from the variables as given (_place): runs_root() resolves, which a symlink loop would break."""
    name, runs = safe_name(profile_name), _place("SIAMESE_LIB_RUNS_DIR", ROOT / "runs")
    places = {runs / name: "runs folder (SIAMESE_LIB_RUNS_DIR)", runs / name / "store": "results store"}
    if with_report:
        report = _place("SIAMESE_LIB_REPORT_DIR", ROOT / "report")
        places[report / name] = "report folder (SIAMESE_LIB_REPORT_DIR)"
    for path, what in places.items():
        problem = directory_problem(path, what)
        if problem:
            raise UsageError(problem)


def same_package_env() -> dict:
    """For the processes the runner starts (kernels, local workers): this package's root first on their path,
    and PACKAGE_ENV, so that siamese_lib refuses (one line) to be imported from another clone."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {PACKAGE_ENV: str(ROOT / "siamese_lib"), "PYTHONPATH": path}


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write through a temporary file in the same folder and rename: a reader sees the old file or the new
    one, never half of one (a crash leaves at most a dot-file, which loaders skip)."""
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
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not exc.filename:  # e.g. a full disk: name the file it was writing
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def write_json_atomically(path: Path, data) -> None:
    write_atomically(path, json.dumps(data, indent=1))


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


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
