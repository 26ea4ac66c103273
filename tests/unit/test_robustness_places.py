"""Hostile places (issue 15, class 4) and paths relative to where the user stands (class 7).

A runs, report or store folder that is a file, read-only, a symlink loop or a dangling link: one line naming
the place and what is wrong, exit 2 before anything runs, no temp folder left. A disk that fills mid-run:
one line, exit 1, finished runs kept. An executed notebook is renamed into place only when complete.
"""

import errno
import json
import os
import tempfile
from pathlib import Path

import pytest

from siamese_lib import cli, common
from siamese_lib.common import directory_problem
from siamese_lib.pipeline import notebooks, runner


@pytest.fixture
def places(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    return tmp_path


def test_directory_problem_names_the_place_and_what_is_wrong(places):
    cases = {
        "a_file": "is a file, not a directory",
        "a_file/sub": "a parent of it is a file",
        "loop1": "a symlink loop",
        "loop1/runs": "a symlink loop",
        "dangling": "is a symlink to nothing",
    }
    for rel, words in cases.items():
        line = directory_problem(places / rel, "runs folder")
        assert line.startswith(f"runs folder {places / rel}") and words in line and "\n" not in line, line
    line = directory_problem("/proc/version/x", "store")  # read-only even for root
    assert "store /proc/version/x" in line
    assert "not writable" in directory_problem("/proc", "store")
    assert directory_problem(places / "new" / "deeper") is None  # absent but creatable: fine, nothing created
    assert not (places / "new").exists()
    assert directory_problem(places) is None and sorted(p.name for p in places.iterdir()) == [
        "a_file",
        "dangling",
        "loop1",
        "loop2",
    ]  # the write probe leaves nothing


def _temp_folders():
    return {p.name for p in Path(tempfile.gettempdir()).glob("siamese-run-*")}


HOSTILE = {  # variable -> (value relative to the places fixture, words of the one line)
    "runs is a file": ("SIAMESE_LIB_RUNS_DIR", "a_file", "is a file, not a directory"),
    "runs is a symlink loop": ("SIAMESE_LIB_RUNS_DIR", "loop1", "a symlink loop"),
    "runs under a dangling link": ("SIAMESE_LIB_RUNS_DIR", "dangling", "symlink to nothing"),
    "runs read-only": ("SIAMESE_LIB_RUNS_DIR", "/proc", "not writable"),
    "report is a file": ("SIAMESE_LIB_REPORT_DIR", "a_file", "report folder (SIAMESE_LIB_REPORT_DIR)"),
    "report is a symlink loop": ("SIAMESE_LIB_REPORT_DIR", "loop1", "a symlink loop"),
    "report read-only": ("SIAMESE_LIB_REPORT_DIR", "/proc", "not writable"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_place_stops_the_run_before_anything_runs(case, places, monkeypatch, capsys):
    variable, value, words = HOSTILE[case]
    monkeypatch.setenv("SIAMESE_LIB_RUNS_DIR", str(places / "runs"))
    monkeypatch.setenv("SIAMESE_LIB_REPORT_DIR", str(places / "report"))
    monkeypatch.setenv(variable, value if value.startswith("/") else str(places / value))
    monkeypatch.setattr(runner, "plan", lambda *a: pytest.fail("the run started"))
    before = _temp_folders()
    assert cli.main(["run", "--profile", "smoke", "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], captured.err
    assert "smoke" in lines[0]  # the place itself: <folder>/smoke
    assert _temp_folders() == before
    assert not (places / "runs").exists() and not (places / "report").exists()


def test_a_store_that_is_a_file_stops_the_run(places, monkeypatch, capsys):
    (places / "runs" / "smoke").mkdir(parents=True)
    (places / "runs" / "smoke" / "store").write_text("not a folder")
    monkeypatch.setenv("SIAMESE_LIB_RUNS_DIR", str(places / "runs"))
    monkeypatch.setenv("SIAMESE_LIB_REPORT_DIR", str(places / "report"))
    monkeypatch.setattr(runner, "plan", lambda *a: pytest.fail("the run started"))
    assert cli.main(["run", "--profile", "smoke", "--device", "cpu", "--only", "table1"]) == 2
    assert "results store" in capsys.readouterr().err


def test_a_disk_that_fills_mid_run_is_one_line_exit_1_and_no_temp_folder(places, monkeypatch, capsys):
    monkeypatch.setenv("SIAMESE_LIB_RUNS_DIR", str(places / "runs"))
    monkeypatch.setenv("SIAMESE_LIB_REPORT_DIR", str(places / "report"))
    target = places / "runs" / "smoke" / "timings.json"

    def fills(run, *_):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(runner, "plan", fills)
    before = _temp_folders()
    assert cli.main(["run", "--profile", "smoke", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()  # the run's first progress line, then the failure in one line
    assert len(lines) == 2 and "Traceback" not in err, lines
    assert str(target) in lines[-1] and "No space left on device" in lines[-1], lines
    assert "finished runs are kept" in lines[-1]
    assert _temp_folders() == before
    lock = runner.Lock(places / "runs" / "smoke" / ".lock")
    assert lock.acquire()  # released: the next run may start
    lock.release()


def test_an_executed_notebook_is_renamed_into_place_only_when_complete(tmp_path):
    output = tmp_path / "table1" / "x.ipynb"
    output.parent.mkdir()
    output.write_text(json.dumps({"cells": [], "previous": True}))
    partial = output.with_name(f".tmp-{output.name}")
    partial.write_text('{"cells": [{"source": "trun')  # the disk filled while papermill saved
    notebooks.publish(partial, output)
    assert json.loads(output.read_text())["previous"] and not partial.exists()
    partial.write_text(json.dumps({"cells": [1]}))
    notebooks.publish(partial, output)
    assert json.loads(output.read_text()) == {"cells": [1]} and not partial.exists()
    notebooks.publish(partial, output)  # nothing to publish: nothing happens
    assert sorted(p.name for p in output.parent.iterdir()) == ["x.ipynb"]


def test_path_variables_are_made_absolute_where_the_user_stands(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in common.PATH_VARIABLES:
        monkeypatch.setenv(name, f"rel/{name}")
    common.absolute_path_variables()
    for name in common.PATH_VARIABLES:
        assert os.environ[name] == str(tmp_path / "rel" / name)


def test_file_flags_resolve_from_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("stages: {}\n")
    assert cli.main(["run", "--profile", "mine.yaml"]) == 2
    assert f"error: {tmp_path / 'mine.yaml'}: " in capsys.readouterr().err  # the file where the user stands
    args = cli.build_parser().parse_args(["train", "--model", "Net", "--data-dir", "data"])
    assert args.data_dir == str(tmp_path / "data")
    args = cli.build_parser().parse_args(["run", "--profile", "sub/p.yaml"])
    assert args.profile == str(tmp_path / "sub" / "p.yaml")
    assert (
        cli.build_parser().parse_args(["run", "--profile", "smoke"]).profile == "smoke"
    )  # a name stays a name


def test_a_failed_atomic_write_names_its_file(tmp_path, monkeypatch):
    """Issue 33: a full disk's message names the file being written (the CLI prints exc.filename)."""
    import errno
    import os

    from siamese_lib.common import write_atomically

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as err:
        write_atomically(tmp_path / "records.parquet", b"x" * 10)
    assert err.value.filename == str(tmp_path / "records.parquet") and err.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []
