"""Every notebook, run with its defaults in a fresh checkout, leaves `git status` clean: defaults write
under runs/ (git-ignored); only the runner writes report/<profile>/."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # papermill kernels

ROOT = Path(__file__).resolve().parents[2]
# training notebooks first: the report and figures notebooks then find (or not) a store to show
ORDER = ("lr_search", "table1", "table2", "beyond_paper", "selection", "figures", "report", "explore")


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def fresh_checkout(dest: Path) -> Path:
    """A clone of this repository with the working tree's files (tracked and new, not ignored) committed:
    what a new user gets from a clone of this state."""
    git("clone", "-q", str(ROOT), str(dest), cwd=ROOT)
    for rel in git("ls-files", "-co", "--exclude-standard", "-z", cwd=ROOT).split("\0"):
        src = ROOT / rel
        if rel and src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
        elif rel and not src.exists() and (dest / rel).exists():
            (dest / rel).unlink()  # deleted in the working tree
    git("add", "-A", cwd=dest)
    git(
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@invalid",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "state",
        cwd=dest,
    )
    return dest


def test_every_notebook_with_defaults_leaves_git_status_clean(tmp_path, monkeypatch):
    import papermill as pm

    clone = fresh_checkout(tmp_path / "clone")
    for var in ("SIAMESE_LIB_RUNS_DIR", "SIAMESE_LIB_REPORT_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(clone))  # the kernel imports the clone's library
    names = sorted(p.stem for p in (clone / "notebooks").glob("*.ipynb"))
    assert set(names) == set(ORDER), names
    out = tmp_path / "executed"
    out.mkdir()
    for name in ORDER:
        pm.execute_notebook(
            str(clone / "notebooks" / f"{name}.ipynb"),
            str(out / f"{name}.ipynb"),
            kernel_name="siamese-lib",
            cwd=str(clone / "notebooks"),
            progress_bar=False,
        )
    assert git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""
    assert (clone / "runs" / "interactive" / "store").is_dir()  # the training notebooks' default store
    first = (out / "report.ipynb").read_text()
    assert "No results store holds runs yet" in first or "Showing profile" in first
