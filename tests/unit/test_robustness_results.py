"""What a worker sends back is checked against what was asked (engine.check_result), on every path."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from siamese_lib.config import RunConfig
from siamese_lib.pipeline import engine
from siamese_lib.pipeline.engine import BadResult, check_result, train_record


def tiny(seed: int) -> RunConfig:
    return RunConfig(model="LeNet5", lr=0.005, seed=seed, nb_pairs=100, batch_size=50, epochs=1)


@pytest.fixture(scope="module")
def record():
    return train_record(tiny(1), "cpu")


def test_a_true_record_passes(record):
    assert check_result(copy.deepcopy(record), tiny(1), "cpu")["key"] == record["key"]


def test_another_runs_record_is_refused(record):
    with pytest.raises(BadResult, match="record of another run"):
        check_result(copy.deepcopy(record), tiny(2), "cpu")
    other = copy.deepcopy(record)
    other["config"] = dataclasses.replace(tiny(1), lr=0.01).to_dict()  # the asked key, another configuration
    with pytest.raises(BadResult, match="record of another run"):
        check_result(other, tiny(1), "cpu")


@pytest.mark.parametrize(
    "metric, value",
    [
        ("test_error", 0.0),
        ("test_error", -1.0),
        ("test_digit1_error", 0.0),
        ("test_derived_error", 50.0),
        ("test_digit_prob_error", 0.5),
    ],
)
def test_metrics_that_the_outputs_refute_are_refused(record, metric, value):
    bad = copy.deepcopy(record)
    if bad["metrics"][metric] == value:
        value += 1.0
    bad["metrics"][metric] = value
    with pytest.raises(BadResult, match=f"metrics.{metric} .* does not follow from the record's own outputs"):
        check_result(bad, tiny(1), "cpu")


def test_every_error_zero_is_refused(record):
    bad = copy.deepcopy(record)
    bad["metrics"].update({k: 0.0 for k in bad["metrics"] if k.endswith(("error", "disagreement"))})
    with pytest.raises(BadResult, match="does not follow"):
        check_result(bad, tiny(1), "cpu")


def test_a_stored_one_half_may_count_either_way_and_no_more(record):
    from siamese_lib.training import pair_sets

    target = pair_sets(100, 0)[4]
    step = 100 / len(target)  # one pair, in percent
    tie = copy.deepcopy(record)
    right = int(tie["outputs"]["head_prob"][0] > 0.5) == int(target[0])
    tie["outputs"]["head_prob"][0] = 0.5  # stored to 6 decimals: the trained value was on either side of 0.5
    other_side = record["metrics"]["test_error"] + (step if right else -step)
    for value in (record["metrics"]["test_error"], other_side):
        t = copy.deepcopy(tie)
        t["metrics"]["test_error"] = value
        check_result(t, tiny(1), "cpu")
    for value in (record["metrics"]["test_error"] + (-step if right else step), other_side + 2 * step):
        t = copy.deepcopy(tie)
        t["metrics"]["test_error"] = value
        with pytest.raises(BadResult, match="test_error"):
            check_result(t, tiny(1), "cpu")


def test_in_process_a_bad_result_is_one_line_error(record, tmp_path, monkeypatch):
    monkeypatch.setattr(
        engine, "train_record", lambda config, device, progress=None, threads=1: copy.deepcopy(record)
    )
    with pytest.raises(BadResult, match="record of another run"):
        engine.ensure_runs([tiny(2)], tmp_path, device="cpu", log=lambda line: None)
    assert not list(tmp_path.glob("*.json"))
