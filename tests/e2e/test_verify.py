"""``python -m siamese_lib verify`` against a record made here: its runs must come back bit for bit, and the one run
published as if trained elsewhere must fail, by name."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_cli

from siamese_lib.common import write_atomically
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.pipeline import engine, publishing
from siamese_lib.store import config_from_dict, load_record, record_path
from siamese_lib.training import pair_errors, pair_sets

pytestmark = pytest.mark.slow  # trains runs, then retrains them in subprocesses

# two cells of two seeds, smoke-sized (100 pairs, 2 epochs): a few seconds each
PROFILE = """\
description: two Table I cells, smoke-sized
nb_pairs: 100
data_seed: 0
batch_size: 50
protocols: [corrected]
stages:
  table1:
    models: [LeNet5]
    weight_sharing: [true]
    aux_loss: [false, true]
    seeds: [1, 2]
    epochs: 2
"""


def as_if_trained_elsewhere(path):
    """One pair's head output flipped, the metrics following (so the record still passes the gate)."""
    r = load_record(path)
    head = r["outputs"]["head_prob"]
    i = next(i for i, p in enumerate(head) if p != 0.5)
    head[i] = round(1 - head[i], 6)
    _, _, _, _, target, classes = pair_sets(r["config"]["nb_pairs"], r["config"]["data_seed"])
    o = {k: torch.tensor(r["outputs"][k]) for k in ("head_prob", "digit_prob", "digit1_pred", "digit2_pred")}
    wrong = pair_errors(o["head_prob"], o["digit_prob"], target, classes, o["digit1_pred"], o["digit2_pred"])
    for name in ("error", "head_vs_digits_disagreement"):
        r["metrics"][f"test_{name}"] = 100.0 * wrong[name].double().mean().item()
    write_atomically(path, json.dumps(r))
    return r["key"]


def test_verify_reproduces_a_record_made_here_and_names_a_tampered_run(tmp_path, mnist):
    assert torch.get_num_threads() == 1  # as verify's processes run (conftest), so the bits must match
    (tmp_path / "tiny.yaml").write_text(PROFILE)
    profile, store = load_profile(str(tmp_path / "tiny.yaml")), tmp_path / "made" / "store"
    plan = publishing.profile_plan(profile, store, "cpu")
    configs = [config_from_dict(c) for c in plan["runs"].values()]
    records = engine.ensure_runs(configs, store, device="cpu", log=lambda *_: None)
    assert len(records) == 4
    tampered = as_if_trained_elsewhere(record_path(store, records[0]["key"]))
    write_atomically(tmp_path / "made" / "plan.json", json.dumps(plan))
    publishing.publish_record(store, tmp_path / "report" / "tiny", profile, tmp_path / "made" / "plan.json")
    env = {"SIAMESE_LIB_REPORT_DIR": str(tmp_path / "report"), "SIAMESE_LIB_RUNS_DIR": str(tmp_path / "runs")}

    out = run_cli("verify", "--profile", tmp_path / "tiny.yaml", "--full", env=env, timeout=900)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "criterion: bit-identical" in out.stdout and "runs: 3 of 4 bit-identical" in out.stdout
    assert f"FAIL run {tampered}" in out.stdout
    result = json.loads((tmp_path / "runs" / "tiny" / "verify" / "verify.json").read_text())
    assert not result["ok"] and all(c["must_be_identical"] for c in result["runs"])
    assert [c["key"] for c in result["runs"] if not c["identical"]] == [tampered]
