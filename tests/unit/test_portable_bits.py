"""Portable numerics across machines: short runs retrained here in ``numerics: portable`` against
tests/fixtures/portable_bits.json (made on a 2-core AMD EPYC VM with `python benchmarks/gpu_check.py portable
--write tests/fixtures/portable_bits.json`). On any machine: the same runs twice in fresh processes give the same
bits, and the fixture's numbers to within rounding; bit equality with the fixture where the two fingerprints'
numerics signatures match (machine.must_be_identical: same torch, MKL, oneDNN, ISA cap, threads)."""

import copy
import importlib.util
import json
import math

import pytest
from conftest import ROOT

from siamese_lib.store import config_from_dict

FIXTURE = ROOT / "tests" / "fixtures" / "portable_bits.json"


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_portable_runs_repeat_here_and_match_the_fixture(mnist):
    check, fixture = gpu_check(), json.loads(FIXTURE.read_text())
    first = check.run_portable_child()
    result = check.compare_portable(fixture, first)
    assert [r["model"] for r in result["runs"]] == ["LeNet5", "Net", "LeNet5_FullyConv"]
    if result["must_be_identical"]:
        assert result["identical"], result
    else:  # another machine: its own bits again in a second fresh process
        again = check.compare_portable(first, check.run_portable_child())
        assert again["must_be_identical"] and again["identical"], again
    # elsewhere, other rounding: 4 optimiser steps on 200 pairs stay within 0.1% of the fixture's loss, and the
    # test error within one pair in 200 (0.5 points) of it
    for want, got, r in zip(fixture["runs"], first["runs"], result["runs"]):
        assert config_from_dict(got["config"]) == config_from_dict(want["config"])
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-3), r
        assert abs(got["metrics"]["test_error"] - want["metrics"]["test_error"]) <= 0.5 + 1e-6, r


def test_the_comparison_sees_one_changed_bit_and_a_changed_signature():
    check = gpu_check()
    fixture = json.loads(FIXTURE.read_text())
    assert fixture["machine"]["numerics"] == "portable" and fixture["machine"]["threads"] == 1
    same = check.compare_portable(fixture, copy.deepcopy(fixture))
    assert same["must_be_identical"] and same["identical"]
    changed = copy.deepcopy(fixture)
    loss = changed["runs"][1]["train_loss"]
    loss[-1] = math.nextafter(loss[-1], math.inf)  # one unit in the last place
    result = check.compare_portable(fixture, changed)
    assert result["must_be_identical"] and not result["identical"]
    assert [r["identical"] for r in result["runs"]] == [True, False, True]
    other_torch = copy.deepcopy(fixture)
    other_torch["machine"]["torch"] = "2.11.0+cu130"
    result = check.compare_portable(fixture, other_torch)
    assert not result["must_be_identical"] and result["signature_differs_in"] == {
        "torch": (fixture["machine"]["torch"], "2.11.0+cu130")
    }
