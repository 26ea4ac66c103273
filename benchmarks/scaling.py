"""A model of a profile's training makespan on N single-thread workers, for docs/performance.md.

The engine hands out runs longest first (by ``planning.run_cost``) to whichever worker is free: list
scheduling. Fed the per-run wall times of a finished profile (``runs.csv``) and the engine's per-task
overhead, this replays that schedule for N = 1, 2, 4, ... and reports the makespan, the speed-up, the
efficiency and the lower bound that limits it (the critical path: the longest single run, since runs
are independent). ``python -m benchmarks.scaling report/paper/runs.csv [--overhead 0.05] [--workers]``
"""

from __future__ import annotations

import argparse
import heapq
import tempfile
import time
from pathlib import Path

from distributed import Client, LocalCluster, as_completed

from siamese_lib.common import UsageError, now_iso
from siamese_lib.config import ERROR_METRICS, RunConfig
from siamese_lib.experiments.planning import run_cost
from siamese_lib.pipeline.engine import Engine
from siamese_lib.pipeline.published import read_records, record_file
from siamese_lib.store import SCHEMA_VERSION, config_from_dict, run_key, write_record


def list_schedule(seconds: list[float], workers: int) -> dict:
    """Jobs handed out in the given order, each to the first free of ``workers`` workers: the makespan, and
    the lower bound no order can beat, max(total work / workers, longest job), with which of the two it is."""
    free = [0.0] * workers
    for cost in seconds:
        heapq.heappush(free, heapq.heappop(free) + cost)
    total, longest = sum(seconds), max(seconds, default=0.0)
    return {
        "makespan": max(free),
        "lower_bound": max(total / workers, longest),
        "limit": "longest run" if longest >= total / workers else "total work",
    }


def table(
    runs: list[tuple[float, float]], overhead: float, counts=(1, 2, 4, 8, 16, 32, 64, 128, 256)
) -> list[dict]:
    """``runs``: (estimated cost the engine orders by, measured wall seconds); every task pays ``overhead``."""
    seconds = [s + overhead for _, s in sorted(runs, key=lambda r: r[0], reverse=True)]
    one = list_schedule(seconds, 1)["makespan"]
    rows = []
    for n in counts:
        row = list_schedule(seconds, n)
        rows.append(
            {"workers": n, **row, "speedup": one / row["makespan"], "efficiency": one / row["makespan"] / n}
        )
    return rows


def fake_record(seed: int) -> dict:
    """On a worker: a valid record the size of a paper run's (1000 test pairs, 30 epochs), no training."""
    config = RunConfig(model="Net", lr=0.1, seed=seed)
    n = config.nb_pairs
    return {
        "schema_version": SCHEMA_VERSION,
        "key": run_key(config, "cpu"),
        "config": config.to_dict(),
        "device": "cpu",
        "torch_version": "-",
        "code_version": "-",
        "created": now_iso(),
        "metrics": {
            **{f"{s}_{m}": 10.0 for s in ("train", "test") for m in ERROR_METRICS},
            "train_seconds": 1.0,
            "wall_seconds": 1.0,
        },
        "curves": {"train_loss": [0.5] * config.trained_epochs},
        "outputs": {
            "head_prob": [0.5] * n,
            "digit_prob": [0.5] * n,
            "digit1_pred": [1] * n,
            "digit2_pred": [2] * n,
        },
    }


def measure_overhead(tasks: int = 300) -> float:
    """Seconds per task of the engine's path with no training: submit, schedule, run, return, write the
    record in the client; one single-thread worker, so nothing overlaps."""
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
        tempfile.TemporaryDirectory() as store,
    ):
        client.submit(fake_record, tasks, pure=False).result()  # warm up
        start = time.perf_counter()
        futures = [client.submit(fake_record, i, pure=False) for i in range(tasks)]
        for future in as_completed(futures):
            write_record(store, future.result())
        return (time.perf_counter() - start) / tasks


def measure_workers(counts=(1, 2), runs: int = 8) -> dict:
    """Wall seconds of the engine training the same ``runs`` small LeNet5 runs on 1 and on 2 local workers
    (the cluster started and its workers warmed up with one run first, so only the training is timed)."""
    configs = [
        RunConfig(model="LeNet5", lr=0.005, seed=s, nb_pairs=500, batch_size=100, epochs=3)
        for s in range(1, runs + 1)
    ]
    out = {}
    for n in counts:
        engine = Engine(workers=n, device="cpu", log=lambda line: None)
        try:
            with tempfile.TemporaryDirectory() as store:
                warm = [
                    RunConfig(model="LeNet5", lr=0.005, seed=100 + i, nb_pairs=100, epochs=1)
                    for i in range(n)
                ]
                engine.train(warm, store)  # the workers have imported torch and loaded MNIST
                start = time.perf_counter()
                engine.train(configs, store)
                out[n] = time.perf_counter() - start
        finally:
            engine.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("runs_csv", type=Path)
    parser.add_argument(
        "--overhead",
        type=float,
        default=None,
        help="engine seconds per task (default: measured now on a local one-worker cluster)",
    )
    parser.add_argument(
        "--workers", action="store_true", help="instead: time 8 runs on 1 and on 2 local workers"
    )
    args = parser.parse_args(argv)
    if args.workers:
        walls = measure_workers()
        print(
            f"8 LeNet5 runs (500 pairs, 3 epochs): 1 worker {walls[1]:.1f} s, 2 workers {walls[2]:.1f} s, "
            f"speed-up {walls[1] / walls[2]:.2f}"
        )
        return 0
    try:
        records = read_records(record_file(args.runs_csv.parent))  # the published record beside runs.csv
        runs = [
            (run_cost(config_from_dict(r["config"])), float(r["metrics"]["wall_seconds"])) for r in records
        ]
    except UsageError as exc:
        parser.error(str(exc))
    if args.overhead is None:
        args.overhead = measure_overhead()
    print(
        f"{len(runs)} runs, {sum(s for _, s in runs) / 3600:.2f} h of single-thread work, longest run "
        f"{max(s for _, s in runs):.0f} s, overhead {args.overhead * 1000:.0f} ms per task"
    )
    print("| workers | makespan | speed-up | efficiency | lower bound (limit) |")
    print("|---:|---:|---:|---:|---|")
    for r in table(runs, args.overhead):
        print(
            f"| {r['workers']} | {r['makespan'] / 60:.1f} min | {r['speedup']:.1f} | {100 * r['efficiency']:.0f} % "
            f"| {r['lower_bound'] / 60:.1f} min ({r['limit']}) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
