"""The published record end to end: the smoke profile publishes report/smoke/records.parquet; a fresh place
(no runs folder, only the published file and its checksum) renders the report from it with nothing trained, and
runs.csv, cells.csv and the record come out byte-identical. Every run writes under tmp_path."""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from siamese_lib.pipeline import published
from siamese_lib.store import load_records


def run_smoke(base: Path, *extra):
    env = {"SIAMESE_LIB_RUNS_DIR": str(base / "runs"), "SIAMESE_LIB_REPORT_DIR": str(base / "report")}
    start = time.time()
    proc = run_cli(
        "run", "--profile", "smoke", "--jobs", "2", "--device", "cpu", *extra, env=env, timeout=3600
    )
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
    derived = published.derive_csvs(path, tmp_path / "derived")
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
    for name in ("report.html", "report.pdf"):
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
