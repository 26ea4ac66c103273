"""``python -m siamese_lib verify`` against a record made here: its runs must come back bit for bit, and the
one run tampered with must fail, by name."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import run_cli

from siamese_lib.analysis.tables import records_frame
from siamese_lib.config import RunConfig
from siamese_lib.pipeline import engine

pytestmark = pytest.mark.slow  # trains runs, then retrains them in subprocesses

# two cells of two seeds, smoke-sized (100 pairs, 2 epochs): a few seconds each
CONFIGS = [
    RunConfig(model="LeNet5", nb_pairs=100, batch_size=50, epochs=2, seed=s, aux_loss=aux)
    for aux in (True, False)
    for s in (1, 2)
]


def test_verify_reproduces_a_record_made_here_and_names_a_tampered_run(tmp_path, mnist):
    assert torch.get_num_threads() == 1  # as verify's processes run (conftest), so the bits must match
    records = engine.ensure_runs(CONFIGS, tmp_path / "made", device="cpu", log=lambda *_: None)
    csv = tmp_path / "report" / "smoke" / "runs.csv"
    csv.parent.mkdir(parents=True)
    records_frame(records).to_csv(csv, index=False)
    frame = pd.read_csv(csv)
    frame.loc[0, "test_error"] += 1.0  # one seed of the first cell, as if trained elsewhere
    frame.to_csv(csv, index=False)
    env = {"SIAMESE_LIB_REPORT_DIR": str(tmp_path / "report"), "SIAMESE_LIB_RUNS_DIR": str(tmp_path / "runs")}

    out = run_cli("verify", "--profile", "smoke", "--full", env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "criterion: bit-identical" in out.stdout and "runs: 3 of 4 bit-identical" in out.stdout
    assert f"FAIL run {frame.loc[0, 'key']}" in out.stdout
    result = json.loads((tmp_path / "runs" / "smoke" / "verify" / "verify.json").read_text())
    assert not result["ok"] and all(r["must_be_identical"] for r in result["runs"])
    assert [r["identical"] for r in result["runs"] if r["key"] != frame.loc[0, "key"]] == [True] * 3
