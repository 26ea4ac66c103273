"""The Dask engine on real clusters: a LocalCluster of two worker processes (the same numbers as in-process,
a worker killed mid-run, a version-mismatched worker refused) and an external `dask scheduler` +
`dask worker` started as separate processes on 127.0.0.1, used through ``run --scheduler``.
The smoke profile end to end on the default LocalCluster is test_pipeline.py's smoke test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import cloudpickle
import pytest
from conftest import ROOT, external_cluster
from distributed import Client, LocalCluster

from siamese_lib.common import same_package_env
from siamese_lib.config import RunConfig
from siamese_lib.pipeline import engine, watch
from siamese_lib.pipeline.watch import train_record
from siamese_lib.store import load_record, run_key

pytestmark = pytest.mark.slow  # a Dask cluster, workers killed and restarted

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
TIMING_METRICS = {"train_seconds", "wall_seconds"}
TIMEOUT = 900


def numbers(record: dict) -> dict:
    """What must be equal wherever a run is trained (not its timings, host or creation time)."""
    return {
        "metrics": {k: v for k, v in record["metrics"].items() if k not in TIMING_METRICS},
        "curves": record["curves"],
        "outputs": record["outputs"],
        "key": record["key"],
    }


def config(seed: int, epochs: int = 1, nb_pairs: int = 100) -> RunConfig:
    return RunConfig(model="LeNet5", lr=0.005, seed=seed, nb_pairs=nb_pairs, batch_size=50, epochs=epochs)


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        env=same_package_env(),
    ) as c:
        yield c


def test_same_numbers_in_process_and_on_a_local_worker(cluster, tmp_path):
    here = train_record(config(1), "cpu")  # conftest: one torch thread, as every worker
    lines = []
    records = engine.ensure_runs(
        [config(1)], tmp_path, device="cpu", scheduler=cluster.scheduler_address, log=lines.append
    )
    assert numbers(records[0]) == numbers(here) and records[0]["threads"] == here["threads"] == 1
    assert "trained on the cluster" in lines[-1]
    assert list(records[0]) == list(here)  # the same record layout, field for field
    # a second call finds it in the store: nothing submitted
    engine.ensure_runs(
        [config(1)], tmp_path, device="cpu", scheduler=cluster.scheduler_address, log=lines.append
    )
    assert "from the store" in lines[-1]


def test_a_worker_killed_mid_run_is_retried_and_nothing_is_trained_twice(cluster, tmp_path):
    configs = [config(s, epochs=6, nb_pairs=300) for s in (11, 12, 13)]
    keys = [run_key(c, "cpu") for c in configs]
    monitor = Client(cluster.scheduler_address)
    killed = []

    def kill_a_busy_worker():
        deadline = time.time() + TIMEOUT
        while time.time() < deadline and not killed:
            busy = {w: ks for w, ks in monitor.processing().items() if ks}
            if busy:
                time.sleep(1.0)  # well into the run
                worker = next(iter(busy))
                pid = monitor.run(os.getpid, workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)
                killed.append(worker)
            time.sleep(0.2)

    thread = threading.Thread(target=kill_a_busy_worker, daemon=True)
    thread.start()
    results = []
    eng = engine.Engine(cluster.scheduler_address, device="cpu", log=lambda line: None)
    try:
        outcome = eng.train(configs, tmp_path, on_result=lambda key, error: results.append((key, error)))
    finally:
        eng.close()
        thread.join(timeout=5)
        monitor.close()
    assert killed, "no worker was killed"
    assert outcome.failed == {} and sorted(outcome.trained) == sorted(keys)
    assert sorted(k for k, _ in results) == sorted(keys)  # each run came back (and was written) once
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == sorted(keys) and not list(
        tmp_path.glob(".tmp-*")
    )
    assert numbers(load_record(tmp_path / f"{keys[0]}.json")) == numbers(train_record(configs[0], "cpu"))


def test_a_worker_with_other_versions_is_refused_with_one_line(tmp_path):
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as c,
        Client(c) as client,
    ):
        odd = sorted(client.scheduler_info()["workers"])[0]
        client.run(_pretend_other_code, workers=[odd])
        lines = []
        eng = engine.Engine(c.scheduler_address, device="cpu", log=lines.append)
        try:
            outcome = eng.train([config(3)], tmp_path)
        finally:
            eng.close()
        refused = [line for line in lines if line.startswith("refused worker")]
        assert refused == [
            f"refused worker {odd}: code 'other-commit' (client: {watch.versions()['code']!r}); "
            "install the same version there"
        ]
        assert outcome.trained == [run_key(config(3), "cpu")]
        assert odd not in client.scheduler_info()["workers"]
        # every worker different: the run refuses, in one line, before anything is submitted
        client.run(_pretend_other_code)
        eng = engine.Engine(c.scheduler_address, device="cpu", log=lambda line: None)
        with pytest.raises(engine.EngineError, match="no worker .* runs the client's versions"):
            eng.train([config(4)], tmp_path)
        eng.close()


def _pretend_other_code():
    watch.code_version = lambda: "other-commit"  # in the worker process only


# --- an external cluster: `dask scheduler` and `dask worker` as processes of their own -------------------


def test_run_with_an_external_scheduler(tmp_path):
    with external_cluster(tmp_path) as (address, env, _):
        assert address.startswith("tcp://127.0.0.1:")
        profile = tmp_path / "tiny.yaml"
        profile.write_text(
            "nb_pairs: 100\nbatch_size: 50\nstages:\n  table1: {models: [LeNet5], "
            "weight_sharing: [true], aux_loss: [true], seeds: [1, 2], epochs: 1}\n"
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "siamese_lib",
                "run",
                "--profile",
                str(profile),
                "--scheduler",
                address,
                "--device",
                "cpu",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=dict(
                env,
                SIAMESE_LIB_RUNS_DIR=str(tmp_path / "runs"),
                SIAMESE_LIB_REPORT_DIR=str(tmp_path / "report"),
            ),
            timeout=TIMEOUT,
        )
        print(proc.stderr)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"Dask scheduler {address}" in proc.stderr and "runs: 2 trained" in proc.stderr
        store = tmp_path / "runs" / "tiny" / "store"
        assert len(list(store.glob("*.json"))) == 2
        t = json.loads((tmp_path / "runs" / "tiny" / "timings.json").read_text())
        assert t["invocations"][-1]["scheduler"] == address
