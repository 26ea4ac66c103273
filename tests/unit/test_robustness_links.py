"""Writes in the runs folder never follow a symlink to another file, and no temporary folder outlives a
failed start: runs/<profile>/profile.yaml and .lock.pid linked elsewhere are replaced, not written through;
a symlinked .lock is refused in one line."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from siamese_lib import cli
from siamese_lib.pipeline import runner

VICTIM = "precious data\n"


def _temp_folders():
    return {p.name for p in Path(tempfile.gettempdir()).glob("siamese-run-*")}


@pytest.fixture
def smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("SIAMESE_LIB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("SIAMESE_LIB_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.setattr(runner, "plan", lambda run: None)  # the run itself is not what is tested
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM)
    base = tmp_path / "runs" / "smoke"
    base.mkdir(parents=True)
    return base, victim


@pytest.mark.parametrize("name", ["profile.yaml", ".lock.pid"])
def test_a_linked_file_in_the_runs_folder_is_replaced_not_written_through(smoke, name, capsys):
    base, victim = smoke
    (base / name).symlink_to(victim)
    assert cli.main(["run", "--profile", "smoke", "--device", "cpu", "--only", "table1"]) == 0, (
        capsys.readouterr()
    )
    assert victim.read_text() == VICTIM
    assert not (base / name).is_symlink()
    if name == "profile.yaml":
        assert "stages" in (base / name).read_text()


def test_a_linked_lock_is_refused_in_one_line_and_leaves_no_temporary_folder(smoke, capsys):
    base, victim = smoke
    (base / ".lock").symlink_to(victim)
    before = _temp_folders()
    for _ in range(2):
        assert cli.main(["run", "--profile", "smoke", "--device", "cpu", "--only", "table1"]) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and "is a symlink" in lines[0] and ".lock" in lines[0], lines
    assert _temp_folders() == before and victim.read_text() == VICTIM


def test_a_failed_start_after_the_work_folder_leaves_none(smoke, monkeypatch, capsys):
    monkeypatch.setattr(runner.Lock, "acquire", lambda self: (_ for _ in ()).throw(OSError(5, "I/O error")))
    before = _temp_folders()
    assert cli.main(["run", "--profile", "smoke", "--device", "cpu", "--only", "table1"]) == 1
    assert _temp_folders() == before
