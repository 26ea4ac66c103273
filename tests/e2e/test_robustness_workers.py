"""Workers that lie or stop: a LocalCluster of two worker processes, tiny runs. A result that is not the record
asked for fails that run only (one line) and the others are stored; a SIGSTOPped worker's run is reported with
its worker after --run-timeout and the others finish."""

from __future__ import annotations

import os
import signal
import sys

import cloudpickle
import pytest
from conftest import external_cluster
from distributed import Client, LocalCluster

from siamese_lib.common import same_package_env
from siamese_lib.config import RunConfig
from siamese_lib.pipeline import engine, watch
from siamese_lib.store import run_key

pytestmark = pytest.mark.slow  # Dask clusters and workers

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module


def tiny(seed: int) -> RunConfig:
    return RunConfig(model="LeNet5", lr=0.005, seed=seed, nb_pairs=100, batch_size=50, epochs=1)


@pytest.fixture()
def cluster():
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            env=same_package_env(),
        ) as c,
        Client(c) as client,
    ):
        pids = client.run(os.getpid)
        client.run(_warm)  # torch and the pairs loaded once per worker, so the tiny runs take a second or two
        try:
            yield c, pids
        finally:
            for pid in pids.values():
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass


def _warm():
    from siamese_lib.training import pair_sets

    pair_sets(100, 0)


def _lying_task(unit, device, expected):
    """Seed 1 answers with seed 9's record; seed 2 with every error 0.0; the others honestly (a unit: one run on the CPU)."""
    (config,) = unit
    if config.seed == 1:
        return [watch.train_record(RunConfig(**{**config.to_dict(), "seed": 9, "augment": ()}), device)]
    record = watch.train_record(config, device)
    if config.seed == 2:
        record["metrics"].update({k: 0.0 for k in record["metrics"] if k.endswith("error")})
    return [record]


def stopping_task(marker):
    """The first worker to train seed 1 stops answering (as a hung GPU or a dead mount would); later ones train it."""

    def task(unit, device, expected):
        (config,) = unit
        if config.seed == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGSTOP)
        return [watch.train_record(config, device)]

    return task


def run_engine(cluster, tmp_path, seeds, run_timeout=None):
    lines, results = [], []
    eng = engine.Engine(cluster.scheduler_address, device="cpu", log=lines.append, run_timeout=run_timeout)
    try:
        outcome = eng.train([tiny(s) for s in seeds], tmp_path, on_result=lambda k, e: results.append((k, e)))
    finally:
        eng.close()
    return outcome, lines, results


def test_a_lying_worker_fails_its_runs_only(cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(watch, "train_task", _lying_task)
    outcome, _, results = run_engine(cluster[0], tmp_path, (1, 2, 3))
    key = {s: run_key(tiny(s), "cpu") for s in (1, 2, 3)}
    assert outcome.trained == [key[3]]
    assert "record of another run" in outcome.failed[key[1]]
    assert "does not follow from the record's own outputs" in outcome.failed[key[2]]
    assert all("\n" not in e for e in outcome.failed.values())
    assert sorted(k for k, _ in results) == sorted(key.values())
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == [key[3]]


def test_a_stopped_worker_is_named_and_its_runs_are_retried_elsewhere(cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(watch, "train_task", stopping_task(str(tmp_path / "stopped-once")))
    c, pids = cluster
    outcome, lines, results = run_engine(c, tmp_path / "store", (1, 2, 3, 4), run_timeout=15)
    assert outcome.failed == {}
    assert sorted(outcome.trained) == sorted(run_key(tiny(s), "cpu") for s in (1, 2, 3, 4))
    removed = [line for line in lines if line.startswith("worker ")]
    assert len(removed) == 1 and "removed from the cluster; its runs are retried elsewhere" in removed[0]
    assert removed[0].split()[1] in pids and f"run {run_key(tiny(1), 'cpu')}" in removed[0]
    with Client(c) as client:
        assert len(client.scheduler_info()["workers"]) == 1


def test_a_lost_scheduler_is_one_line_and_keeps_what_finished(tmp_path):
    with external_cluster(tmp_path) as (address, _, scheduler):
        eng = engine.Engine(address, device="cpu", log=lambda line: None)
        try:
            with pytest.raises(
                engine.EngineError, match=r"lost the Dask scheduler at .*: 1 of 3 runs finished"
            ):
                eng.train(
                    [tiny(s) for s in (1, 2, 3)], tmp_path / "store", on_result=lambda k, e: scheduler.kill()
                )
        finally:
            eng.close()
        assert len(list((tmp_path / "store").glob("*.json"))) == 1
