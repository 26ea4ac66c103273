"""``python -m siamese_lib verify`` against a record made here (the smoke profile's): its runs must come back bit for
bit, and the one run published as if trained elsewhere must fail, by name."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import run_cli

from siamese_lib.common import write_atomically
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.pipeline import publishing
from siamese_lib.store import load_records, record_path
from siamese_lib.training import pair_errors, pair_sets

pytestmark = pytest.mark.slow  # retrains the smoke profile's runs in subprocesses


def test_verify_reproduces_a_record_made_here_and_names_a_tampered_run(smoke_run, tmp_path):
    assert torch.get_num_threads() == 1  # as verify's processes run (conftest), so the bits must match
    runs, report = tmp_path / "runs" / "smoke", tmp_path / "report" / "smoke"
    shutil.copytree(smoke_run["runs"] / "store", runs / "store")
    shutil.copy(smoke_run["runs"] / "plan.json", runs / "plan.json")
    # one seed of a table cell as if trained elsewhere: one pair's head output flipped, its metrics following
    r = next(
        r
        for r in load_records(runs / "store")
        if r["config"]["aux_loss"] and r["outputs"]["head_prob"][0] != 0.5
    )
    r["outputs"]["head_prob"][0] = round(1 - r["outputs"]["head_prob"][0], 6)
    _, _, _, _, target, classes = pair_sets(r["config"]["nb_pairs"], r["config"]["data_seed"])
    outputs = {k: torch.tensor(v) for k, v in r["outputs"].items() if not k.startswith("confirm_")}
    wrong = pair_errors(
        outputs["head_prob"],
        outputs["digit_prob"],
        target,
        classes,
        outputs["digit1_pred"],
        outputs["digit2_pred"],
    )
    for name in ("error", "head_vs_digits_disagreement"):
        r["metrics"][f"test_{name}"] = 100.0 * wrong[name].double().mean().item()
    write_atomically(record_path(runs / "store", r["key"]), json.dumps(r))
    profile = load_profile("smoke")
    publishing.publish_record(runs / "store", report, profile, runs / "plan.json", replace=True)
    env = {"SIAMESE_LIB_REPORT_DIR": str(tmp_path / "report"), "SIAMESE_LIB_RUNS_DIR": str(tmp_path / "runs")}

    out = run_cli("verify", "--profile", "smoke", "--full", env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    n = len(load_records(runs / "store"))
    assert "criterion: bit-identical" in out.stdout and f"runs: {n - 1} of {n} bit-identical" in out.stdout
    assert f"FAIL run {r['key']}" in out.stdout
    result = json.loads((runs / "verify" / "verify.json").read_text())
    assert not result["ok"] and all(c["must_be_identical"] for c in result["runs"])
    assert [c["key"] for c in result["runs"] if not c["identical"]] == [r["key"]]
