"""What a worker sends back is checked against what was asked (watch.check_result), on every path."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from siamese_lib.config import RunConfig
from siamese_lib.pipeline import engine, watch
from siamese_lib.pipeline.watch import BadResult, check_result, train_record


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
    # a value out of range is the schema's refusal; any other, the outputs'
    why = "must be" if value < 0 else "does not follow from the record's own outputs"
    with pytest.raises(BadResult, match=f"metrics.{metric}.*{why}"):
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
        watch, "train_record", lambda config, device, progress=None, threads=1: copy.deepcopy(record)
    )
    with pytest.raises(BadResult, match="record of another run"):
        engine.ensure_runs([tiny(2)], tmp_path, device="cpu", log=lambda line: None)
    assert not list(tmp_path.glob("*.json"))


@pytest.fixture(scope="module")
def held_out_record():
    """A run with validation pairs and a confirmation set: their per-pair outputs are recorded too."""
    config = dataclasses.replace(tiny(3), val_pairs=20, confirm_seeds=(7,))
    return config, train_record(config, "cpu")


def test_validation_outputs_are_recorded_and_are_the_held_out_pairs(held_out_record):
    from siamese_lib.training import prepare_data, val_order

    config, record = held_out_record
    assert len(record["outputs"]["val_head_prob"]) == 20 and len(record["outputs"]["val_digit_prob"]) == 20
    import torch

    torch.manual_seed(config.seed)
    val = prepare_data(config, torch.device("cpu")).val
    from siamese_lib.training import pair_sets

    tr_t = pair_sets(config.nb_pairs, config.data_seed)[1]
    assert torch.equal(tr_t[val_order(config)[:20]], val.target)  # the gate's targets are training's


@pytest.mark.parametrize("split", ["val", "confirm"])
def test_validation_and_confirmation_metrics_follow_from_their_outputs(held_out_record, split):
    config, record = held_out_record
    check_result(copy.deepcopy(record), config, "cpu")
    flipped = copy.deepcopy(record)  # every output flipped: the recorded error no longer follows
    flipped["outputs"][f"{split}_head_prob"] = [
        round(1 - v, 6) for v in record["outputs"][f"{split}_head_prob"]
    ]
    with pytest.raises(BadResult, match=f"metrics.{split}_error .* does not follow"):
        check_result(flipped, config, "cpu")
    edited = copy.deepcopy(record)
    edited["metrics"][f"{split}_error"] = 0.5 if record["metrics"][f"{split}_error"] != 0.5 else 1.0
    with pytest.raises(BadResult, match=f"metrics.{split}_error"):
        check_result(edited, config, "cpu")


def test_a_record_without_validation_outputs_is_still_valid(held_out_record, tmp_path):
    from siamese_lib.store import load_record, write_record

    config, record = held_out_record
    old = copy.deepcopy(record)
    del old["outputs"]["val_head_prob"], old["outputs"]["val_digit_prob"]  # trained before issue 33
    assert load_record(write_record(tmp_path, old))["metrics"] == record["metrics"]


def test_the_gate_refuses_a_tampered_record_at_the_store_s_door(record, tmp_path):
    from siamese_lib.store import CorruptRecord, write_record

    bad = copy.deepcopy(record)
    bad["metrics"]["test_error"] = 1.0 if record["metrics"]["test_error"] != 1.0 else 2.0
    with pytest.raises(CorruptRecord, match="test_error .* does not follow"):
        write_record(tmp_path, bad)
    with pytest.raises(CorruptRecord, match="not one the profile plans"):
        write_record(tmp_path, copy.deepcopy(record), planned={"another"})
    typed = copy.deepcopy(record)
    typed["machine"]["cpu_model"] = {"name": "forged"}
    with pytest.raises(CorruptRecord, match="machine.cpu_model must be str"):
        write_record(tmp_path, typed)
    assert not list(tmp_path.glob("*.json"))


def test_a_silent_worker_is_noticed_from_what_runs_cost_here():
    """Issue 33: once runs have come back, a unit may go without a result a few times what the slowest took
    (at least a minute), not 20 x its estimate + 5 min."""
    import time
    from types import SimpleNamespace

    from siamese_lib.experiments.planning import run_cost

    unit = [tiny(1)]
    before = watch.stall_bound(unit)
    assert before == watch.STALL_FACTOR * run_cost(tiny(1)) + watch.STALL_FLOOR
    w = watch.Watch(None)
    future = SimpleNamespace(key="k")
    w.held["k"] = ("worker-a", time.monotonic() - 5.0)  # a unit that took 5 s on a worker
    w.came_back(future, unit)
    assert watch.stall_bound(unit, None, w.rate) == pytest.approx(watch.SEEN_FLOOR)  # 4 x 5 s: the floor
    w.held["k"] = ("worker-b", time.monotonic() - 100.0)  # a slower one: 4 x 100 s
    w.came_back(future, unit)
    assert watch.stall_bound(unit, None, w.rate) == pytest.approx(400.0, rel=0.01)
    assert watch.stall_bound(unit, 30.0, w.rate) == 30.0  # --run-timeout decides when given
