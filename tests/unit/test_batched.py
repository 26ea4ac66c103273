"""Seeds trained together (batched.train_seeds) against the same seeds trained one by one (training.train_run)."""

import dataclasses

import pytest
import torch

from siamese_lib import batched, training
from siamese_lib.batched import train_seeds
from siamese_lib.config import RunConfig
from siamese_lib.training import train_run

TIMING = ("train_seconds", "wall_seconds")
SEEDS = (1, 2, 3)
# what the batched path must reproduce: the paper's setting, the original protocol (branch calls 2, batch norm
# in training mode at test), no weight sharing / batch norm with L1, L2, a cosine schedule and
# pairs held out for validation (each seed normalised with its own training pairs' statistics)
SETTINGS = {
    "LeNet5": dict(model="LeNet5"),
    "Net-original": dict(model="Net", protocol="original", aux_loss=False),
    "LeNet5-plain": dict(
        model="LeNet5",
        weight_sharing=False,
        batch_norm=False,
        l1=1e-4,
        weight_decay=1e-3,
        lr_schedule="cosine",
        aux_schedule="linear_decay",
        val_pairs=20,
    ),
}


def group(**kw):
    return [RunConfig(**{"nb_pairs": 100, "epochs": 2, "seed": s, **kw}) for s in SEEDS]


def without_timing(result):
    return {**result, "metrics": {k: v for k, v in result["metrics"].items() if k not in TIMING}}


def same_shape(a, b):
    assert set(a) == set(b) and set(a["metrics"]) == set(b["metrics"])
    assert {k: len(v) for k, v in a["outputs"].items()} == {k: len(v) for k, v in b["outputs"].items()}
    assert len(a["curves"]["train_loss"]) == len(b["curves"]["train_loss"])
    assert (a["device"], a["epochs_trained"], a["threads"]) == (
        b["device"],
        b["epochs_trained"],
        b["threads"],
    )


@pytest.fixture
def float64(monkeypatch):
    """Models and inputs in float64: rounding then stays far below what the results keep (6 decimals)."""
    real = training.pair_sets

    def pairs64(nb_pairs, data_seed):
        tr_in, tr_t, tr_c, te_in, te_t, te_c = real(nb_pairs, data_seed)
        return tr_in.double(), tr_t, tr_c, te_in.double(), te_t, te_c

    monkeypatch.setattr(training, "pair_sets", pairs64)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.parametrize("setting", SETTINGS)
def test_in_float64_the_batched_seeds_equal_the_one_by_one_seeds(mnist, float64, setting):
    """The same computation, only the kernels' summation order differs: in float64 (measured: loss curves
    within 1.7e-15 relative; 3.5e-12 with the Conv1d + BatchNorm1d head of Net under the original protocol)
    every metric and every stored output (6 decimals) is equal."""
    configs = group(**SETTINGS[setting])
    for one, together in zip([train_run(c, "cpu") for c in configs], train_seeds(configs, "cpu")):
        same_shape(one, together)
        assert together["curves"]["train_loss"] == pytest.approx(one["curves"]["train_loss"], rel=1e-10)
        assert without_timing(together)["metrics"] == without_timing(one)["metrics"]
        assert together["outputs"] == one["outputs"]


@pytest.mark.parametrize("model", ["LeNet5", "Net"])
def test_in_float32_the_batched_seeds_stay_within_rounding_noise(mnist, model):
    """Not the same bits in float32: the vmapped step runs other kernels (grouped convolutions, batched
    matrix products) than one run's step (channels-last convolutions), so the last bits differ from the first
    forward pass on, and Adam turns rounding noise in near-zero gradients (batch norm makes the biases before
    it exactly such) into steps of size lr. Training the same seed one by one with the model in the
    contiguous memory layout instead of channels-last moves its numbers as much (measured at 200 pairs,
    2 epochs: probabilities 3.7e-3 / 3.7e-2 apart for LeNet5 / Net against 3.5e-3 / 3.7e-2 for batched).

    Measured here (AMD EPYC, AVX2, 1 thread, torch 2.14.1; seeds 1-3, 100 pairs, 2 epochs): the first
    epoch's loss (one forward pass at the initial weights) within 7.1e-7 relative, the second within 4.0e-5;
    probabilities within 9.4e-4; a head decision flips only for pairs within 2.2e-4 of 0.5. The bounds below
    leave 10-25x that margin; the decisions may differ only where the probabilities are that close to 0.5.
    """
    configs = group(model=model)
    for one, together in zip([train_run(c, "cpu") for c in configs], train_seeds(configs, "cpu")):
        same_shape(one, together)
        (first1, second1), (first2, second2) = one["curves"]["train_loss"], together["curves"]["train_loss"]
        assert first2 == pytest.approx(first1, rel=1e-5) and second2 == pytest.approx(second1, rel=1e-3)
        gap = max(
            abs(x - y)
            for k in ("head_prob", "digit_prob")
            for x, y in zip(one["outputs"][k], together["outputs"][k])
        )
        assert gap <= 1e-2
        for x, y in zip(one["outputs"]["head_prob"], together["outputs"]["head_prob"]):
            assert (x > 0.5) == (y > 0.5) or abs(x - 0.5) <= gap


def test_each_seed_gets_its_own_result(mnist):
    configs = group(model="Net")
    results = train_seeds(configs, "cpu")
    assert len(results) == 3 and len({tuple(r["outputs"]["head_prob"]) for r in results}) == 3
    for r in results:
        assert r["metrics"]["wall_seconds"] >= r["metrics"]["train_seconds"] > 0


def test_configurations_that_draw_random_numbers_fall_back_to_one_by_one(mnist, monkeypatch):
    configs = group(model="Net", dropout=True)
    expected = [without_timing(train_run(c, "cpu")) for c in configs]
    monkeypatch.setattr(batched, "_train_together", lambda *a: pytest.fail("batched a config with dropout"))
    assert [without_timing(r) for r in train_seeds(configs, "cpu")] == expected
    augmented = [dataclasses.replace(c, dropout=False, augment=("swap",)) for c in configs]
    assert len(train_seeds(augmented, "cpu")) == 3


@pytest.mark.parametrize(
    "configs, words",
    [
        ([], "non-empty list"),
        ([RunConfig(seed=1), {"seed": 2}], "non-empty list of RunConfigs"),
        ([RunConfig(seed=1), RunConfig(seed=2, lr=1e-3)], "differ only in seed; these also differ in lr"),
        ([RunConfig(seed=1), RunConfig(seed=1, model="Net", epochs=3)], "also differ in model, epochs"),
    ],
)
def test_anything_but_the_seed_differing_is_refused(configs, words):
    with pytest.raises(ValueError, match=words):
        train_seeds(configs, "cpu")


def test_the_engine_hands_out_a_configurations_seeds_together_on_a_gpu_only():
    from siamese_lib.pipeline.watch import units

    def cfg(seed, **kw):
        return RunConfig(model="LeNet5", lr=0.005, seed=seed, nb_pairs=100, batch_size=50, epochs=2, **kw)

    runs = [cfg(1), cfg(2), cfg(3), cfg(1, dropout=True), cfg(2, dropout=True), cfg(1, aux_loss=False)]
    assert all(len(u) == 1 for u in units(runs, "cpu")) and len(units(runs, "cpu")) == 6
    gpu = units(runs, "cuda")
    assert sorted(len(u) for u in gpu) == [1, 1, 1, 3]  # dropout draws random numbers: one by one
    assert [c.seed for c in max(gpu, key=len)] == [1, 2, 3]
    assert sorted(c.seed for u in gpu for c in u) == sorted(c.seed for c in runs)  # every run once


def test_a_unit_of_seeds_comes_back_as_records_the_client_accepts(tmp_path):
    from siamese_lib.pipeline.watch import check_result, train_task, versions
    from siamese_lib.store import load_record, record_path, write_record

    unit = [RunConfig(model="Net", lr=0.03, seed=s, nb_pairs=100, batch_size=50, epochs=1) for s in (1, 2)]
    records = train_task(unit, "cpu", versions())  # what a GPU worker runs, here on the CPU
    for config, record in zip(unit, records):
        write_record(tmp_path, check_result(record, config, "cpu"))
        assert load_record(record_path(tmp_path, record["key"]))["config"]["seed"] == config.seed
