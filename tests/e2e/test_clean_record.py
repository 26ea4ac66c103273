"""Issue 17: the paper profile's records come from a commit. In a clone of this repository: the code version
is the last commit that changed the code (a docs-only commit keeps it), an uncommitted change to the package,
a notebook or a profile stops `run --profile paper` with one line and exit 2 before anything runs, and a dirty
record cannot enter the paper store unless the developer allowed it, in which case the report says so."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, ensure_one

from siamese_lib import store
from siamese_lib.config import RunConfig
from siamese_lib.presentation.sections import dirty_banner_html

GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"]


def git(clone: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=clone, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    where = tmp_path_factory.mktemp("clone") / "repo"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(where)], check=True)
    # The code under test is this checkout's, committed or not: commit it in the clone.
    for path in store.CODE_PATHS:
        src = ROOT / path
        if src.is_dir():
            subprocess.run(["cp", "-a", f"{src}/.", str(where / path)], check=True)
        else:
            (where / path).write_bytes(src.read_bytes())
    if git(where, "status", "--porcelain"):
        git(where, "add", "-A", *store.CODE_PATHS)
        git(where, "commit", "-q", "-m", "the working tree under test")
    return where


def in_clone(clone: Path, *args: str, env_extra=None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(clone),
        "SIAMESE_LIB_RUNS_DIR": str(clone / "runs"),
        "SIAMESE_LIB_REPORT_DIR": str(clone / "report"),
        **(env_extra or {}),
    }
    env.pop(store.ALLOW_DIRTY_ENV, None)
    return subprocess.run(
        [sys.executable, *args], cwd=clone, env=env, capture_output=True, text=True, timeout=300
    )


def version_in(clone: Path) -> str:
    out = in_clone(clone, "-c", "import siamese_lib.store as s; print(s.__file__); print(s.code_version())")
    assert out.returncode == 0, out.stderr
    where, version = out.stdout.split()
    assert Path(where).is_relative_to(clone)  # the clone's package, not this checkout's
    return version


@pytest.mark.slow
def test_code_version_is_the_last_commit_that_changed_the_code(clone):
    code_commit = git(clone, "log", "-1", "--format=%H", "--", *store.CODE_PATHS)[:12]
    assert version_in(clone) == code_commit
    (clone / "docs" / "a-note.md").write_text("docs only\n")
    git(clone, "add", "docs/a-note.md")
    git(clone, "commit", "-q", "-m", "docs only")
    assert git(clone, "rev-parse", "HEAD")[:12] != code_commit
    assert version_in(clone) == code_commit  # a resumed run after a docs commit keeps one version
    profile = clone / "params" / "paper.yaml"
    profile.write_text(profile.read_text() + "\n")
    assert version_in(clone) == code_commit + store.DIRTY  # a profile is code
    git(clone, "commit", "-q", "-am", "a profile change")
    assert version_in(clone) == git(clone, "rev-parse", "HEAD")[:12]


@pytest.mark.slow
@pytest.mark.parametrize("path", ["siamese_lib/models.py", "notebooks/table1.py", "params/paper.yaml"])
def test_run_refuses_the_paper_profile_from_uncommitted_code(clone, path):
    target = clone / path
    original = target.read_text()
    target.write_text(original + "\n# an uncommitted edit\n")
    try:
        out = in_clone(clone, "-m", "siamese_lib", "run", "--profile", "paper", "--only", "table2")
    finally:
        target.write_text(original)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "refusing to write records of profile 'paper'" in lines[0] and path in lines[0]
    assert "--allow-dirty" in lines[0] and "Traceback" not in out.stderr
    assert not (clone / "runs" / "paper" / "store").exists()  # refused before anything ran


def test_only_the_committed_profiles_are_refused(monkeypatch):
    monkeypatch.setattr(store, "code_version", lambda: "0123456789ab" + store.DIRTY)
    monkeypatch.setattr(store, "uncommitted_code", lambda: ["siamese_lib/models.py"])
    monkeypatch.setenv(store.ALLOW_DIRTY_ENV, "0")  # so that monkeypatch restores it after allow=True sets it
    for reduced in ("smoke", "quick", "mine"):
        store.check_clean_code(reduced)
    with pytest.raises(store.UsageError, match=r"uncommitted changes \(siamese_lib/models.py\)"):
        store.check_clean_code("paper")
    store.check_clean_code("paper", allow=True)
    assert os.environ[store.ALLOW_DIRTY_ENV] == "1"  # for the kernels and workers the runner starts


TINY = RunConfig(model="Net", seed=1, epochs=1, nb_pairs=20, batch_size=10)


@pytest.fixture
def dirty_record(tmp_path, monkeypatch):
    record, _ = ensure_one(TINY, tmp_path / "elsewhere")
    monkeypatch.setenv("SIAMESE_LIB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv(store.ALLOW_DIRTY_ENV, "0")
    return {**record, "code_version": "0123456789ab" + store.DIRTY}


def test_a_dirty_record_cannot_enter_the_paper_store_unless_allowed(tmp_path, dirty_record, monkeypatch):
    paper_store = tmp_path / "runs" / "paper" / "store"
    with pytest.raises(store.UsageError, match="refusing to write records of profile 'paper'"):
        store.write_record(paper_store, dirty_record)
    assert not list(paper_store.glob("*.json"))
    store.write_record(tmp_path / "runs" / "quick" / "store", dirty_record)  # other profiles: experiments
    clean = {**dirty_record, "code_version": "0123456789ab"}
    assert store.write_record(paper_store, clean).exists()
    monkeypatch.setenv(store.ALLOW_DIRTY_ENV, "1")
    path = store.write_record(paper_store, dirty_record)
    assert json.loads(path.read_text())["code_version"].endswith(store.DIRTY)


def test_the_report_marks_runs_from_uncommitted_code(dirty_record):
    clean = {**dirty_record, "code_version": "0123456789ab"}
    assert dirty_banner_html([clean, clean]) == ""
    banner = dirty_banner_html([clean, dirty_record, dirty_record])
    assert "2 of 3 runs were trained from uncommitted code" in banner and "0123456789ab+dirty (2)" in banner


@pytest.mark.slow
def test_a_tree_without_git_is_treated_like_uncommitted_code(clone, tmp_path):
    """A zip download: no git history, so no code version; the paper profile refuses it unless allowed, and
    its runs carry a version that the report marks on its first page."""
    tree = tmp_path / "zip"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=clone, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    assert version_in(tree) == store.UNKNOWN + store.DIRTY
    out = in_clone(tree, "-m", "siamese_lib", "run", "--profile", "paper", "--only", "table2")
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "version cannot be established" in lines[0] and "--allow-dirty" in lines[0]
    assert not (tree / "runs" / "paper" / "store").exists()
    record = {"code_version": store.UNKNOWN + store.DIRTY}
    assert "1 of 1 runs were trained from uncommitted code" in dirty_banner_html([record])
