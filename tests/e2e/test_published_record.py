"""The published record end to end: the smoke profile publishes report/smoke/records.parquet; a fresh place
(no runs folder, only the published file and its checksum) renders the report from it with nothing trained, and
runs.csv, cells.csv and the record come out byte-identical. Every run writes under tmp_path."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from siamese_lib.experiments.profiles import load_profile
from siamese_lib.pipeline import published, publishing
from siamese_lib.store import load_records


def run_smoke(base: Path, *extra, command=("run", "--profile", "smoke", "--jobs", "2", "--device", "cpu")):
    env = {"SIAMESE_LIB_RUNS_DIR": str(base / "runs"), "SIAMESE_LIB_REPORT_DIR": str(base / "report")}
    start = time.time()
    proc = run_cli(*command, *extra, env=env, timeout=3600)
    return proc, time.time() - start


@pytest.mark.slow
def test_the_report_step_publishes_every_run_and_its_checksum(smoke_run, tmp_path):
    report = smoke_run["report"]
    path = report / published.FILE_NAME
    digest = published.checksum_file(path).read_text().split()[0]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    store = smoke_run["runs"] / "store"
    assert published.read_records(path) == load_records(store)
    assert len(pd.read_parquet(path)) == len(list(store.glob("*.json")))
    derived = publishing.derive_csvs(path, tmp_path / "derived", load_profile("smoke"))
    for name in ("runs", "cells"):
        assert derived[name].read_bytes() == (report / f"{name}.csv").read_bytes(), name


def render_from_record(smoke_run, fresh: Path):
    """A fresh place holding only the published record (and its checksum), rendered from it."""
    (fresh / "report" / "smoke").mkdir(parents=True)
    for name in (published.FILE_NAME, published.FILE_NAME + ".sha256"):
        shutil.copy(smoke_run["report"] / name, fresh / "report" / "smoke" / name)
    proc, seconds = run_smoke(fresh, "--from-record")
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"smoke report from the published record: {seconds:.1f} s wall")
    return proc


@pytest.fixture(scope="module")
def fresh(smoke_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("fresh")
    return base, render_from_record(smoke_run, base)


@pytest.mark.slow
def test_a_fresh_place_renders_the_report_from_the_record_without_training(smoke_run, fresh):
    fresh, proc = fresh
    assert "runs: 0 trained" in proc.stderr and "Dask scheduler" not in proc.stderr
    assert "seeded the store from" in proc.stderr and "report (written now)" in proc.stderr
    assert "best Table I cell (corrected protocol)" in proc.stderr
    for name in ("runs.csv", "cells.csv", published.FILE_NAME, published.PAIRS_FILE):
        assert (fresh / "report" / "smoke" / name).read_bytes() == (smoke_run["report"] / name).read_bytes()
    assert (fresh / "report" / "smoke" / "report.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.slow
def test_rendering_the_record_again_writes_the_same_report_bytes(smoke_run, fresh, tmp_path):
    """make report as a reproducible build: no render clock, cell ids or temporary paths in the bytes; the
    training history shown is the record's own (so also the same as the render right after training)."""
    render_from_record(smoke_run, tmp_path)
    for name in ("report.html", "report.pdf", "explore.html"):
        again = (tmp_path / "report" / "smoke" / name).read_bytes()
        assert again == (fresh[0] / "report" / "smoke" / name).read_bytes(), name
        assert again == (smoke_run["report"] / name).read_bytes(), name


def test_from_record_without_a_record_is_a_usage_error(tmp_path):
    proc, _ = run_smoke(tmp_path, "--from-record")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no published record at ")
    assert not (tmp_path / "runs" / "smoke" / "store").exists()


@pytest.mark.slow
def test_explore_answers_from_the_smoke_record(smoke_run, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notebooks"))
    from test_explore import outputs, run_explore

    images, text = outputs(run_explore(smoke_run["report"], tmp_path / "explore.ipynb"))
    runs = len(pd.read_parquet(smoke_run["report"] / published.FILE_NAME))
    assert images == 6 and f"profile smoke: {runs} runs" in text
    # the report build executed it too: its HTML beside the report (code and figures), linked from the supplement
    page = (smoke_run["report"] / "explore.html").read_text()
    assert (
        f"profile smoke: {runs} runs" in page and page.count("data:image/png") == 6 and "read_parquet" in page
    )
    assert '<a href="explore.html">explore.html</a>' in (smoke_run["report"] / "report.html").read_text()


def one_line_exit_2(proc, *words):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and lines[-1].startswith("error: "), proc.stderr[-2000:]
    for w in words:
        assert w in lines[-1], lines[-1]


@pytest.mark.slow
def test_rendering_never_rewrites_the_record_and_publish_makes_a_new_one(smoke_run, tmp_path):
    place = tmp_path / "place"
    shutil.copytree(smoke_run["base"], place)
    report, store = place / "report" / "smoke", place / "runs" / "smoke" / "store"
    before = (report / published.FILE_NAME).read_bytes()
    path = sorted(store.glob("*.json"))[0]  # a planned run trained again here (e.g. while exploring)
    record = path.read_text()
    path.write_text(json.dumps({**json.loads(record), "created": "2030-01-01T00:00:00+00:00"}))
    proc, _ = run_smoke(place)
    one_line_exit_2(
        proc, "differs from the published record", path.stem, "siamese_lib publish --profile smoke"
    )
    assert (report / published.FILE_NAME).read_bytes() == before
    proc, _ = run_smoke(place, command=("publish", "--profile", "smoke"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (report / published.FILE_NAME).read_bytes() != before and published.read_metadata(
        report / published.FILE_NAME
    )


def test_another_profile_s_record_is_refused(tmp_path):
    report = tmp_path / "report" / "smoke"
    report.mkdir(parents=True)
    for name in (published.FILE_NAME, published.FILE_NAME + ".sha256"):
        shutil.copy(
            Path(__file__).resolve().parents[2] / "report" / "paper" / name, report / name
        )  # the paper record copied into smoke's place
    proc, _ = run_smoke(tmp_path, "--from-record")
    one_line_exit_2(proc, "a record of profile 'paper', not of 'smoke'")
    assert not list((tmp_path / "runs" / "smoke" / "store").glob("*.json"))


@pytest.mark.slow
def test_verify_full_on_the_smoke_record(smoke_run):
    """Issue 33: verify reads the smoke record back (one confirmation seed, cells.csv's "not run" rows) and every
    run retrained here is bit-identical (the same machine)."""
    proc, _ = run_smoke(smoke_run["base"], command=("verify", "--profile", "smoke", "--full", "--jobs", "2"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "criterion: bit-identical" in proc.stdout and "verdict: everything agrees" in proc.stdout
