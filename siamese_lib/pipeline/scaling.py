"""A model of a profile's training makespan on N single-thread workers, for docs/performance.md.

The engine hands out runs longest first (by ``planning.run_cost``) to whichever worker is free: list
scheduling. Fed the per-run wall times of a finished profile (``runs.csv``) and the engine's per-task
overhead, this replays that schedule for N = 1, 2, 4, ... and reports the makespan, the speed-up, the
efficiency and the lower bound that limits it (the critical path: the longest single run, since runs
are independent). ``python -m siamese_lib.pipeline.scaling report/paper/runs.csv --overhead 0.05``
"""
from __future__ import annotations

import argparse
import csv
import heapq
import tempfile
import time
from pathlib import Path

from distributed import Client, LocalCluster, as_completed

from ..experiments.planning import run_cost
from ..store import config_from_dict, write_record
from ..config import RunConfig
from .engine import Engine

CONFIG_COLUMNS = ("model", "weight_sharing", "aux_loss", "batch_norm", "dropout", "lr", "epochs", "batch_size",
                  "seed", "protocol", "nb_pairs", "data_seed")


def read_runs(path: Path) -> list[tuple[float, float]]:
    """(estimated cost the engine orders by, measured wall seconds) per run of a runs.csv."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            d = {k: row[k] for k in CONFIG_COLUMNS}
            d.update(weight_sharing=d["weight_sharing"] == "True", aux_loss=d["aux_loss"] == "True",
                     batch_norm=d["batch_norm"] == "True", dropout=d["dropout"] == "True", lr=float(d["lr"]),
                     epochs=int(d["epochs"]), batch_size=int(d["batch_size"]), seed=int(d["seed"]),
                     nb_pairs=int(d["nb_pairs"]), data_seed=int(d["data_seed"]))
            cost = run_cost(config_from_dict(d)) if row.get("epochs_trained") else 0.0
            out.append((cost, float(row["wall_seconds"])))
    return out


def makespan(runs: list[tuple[float, float]], workers: int, overhead: float) -> float:
    """List scheduling in the engine's order (estimated cost, longest first): each run to the first free worker."""
    free = [0.0] * workers
    for _, seconds in sorted(runs, key=lambda r: r[0], reverse=True):
        start = heapq.heappop(free)
        heapq.heappush(free, start + seconds + overhead)
    return max(free)


def table(runs, overhead: float, counts=(1, 2, 4, 8, 16, 32, 64, 128, 256)) -> list[dict]:
    total = sum(s for _, s in runs) + overhead * len(runs)
    longest = max(s for _, s in runs) + overhead
    one = makespan(runs, 1, overhead)
    rows = []
    for n in counts:
        span = makespan(runs, n, overhead)
        bound = max(total / n, longest)
        rows.append({"workers": n, "makespan": span, "speedup": one / span, "efficiency": one / span / n,
                     "lower_bound": bound, "limit": "longest run" if longest >= total / n else "total work"})
    return rows


def fake_record(i: int) -> dict:
    """On a worker: a record-sized result (curves of 100 epochs), no training."""
    curve = [0.1 * j for j in range(100)]
    return {"key": f"overhead-{i:06d}", "metrics": {"test_error": 1.0},
            "curves": {"train_loss": curve, "test_error": curve, "train_error": curve}}


def measure_overhead(tasks: int = 300) -> float:
    """Seconds per task of the engine's path with no training: submit, schedule, run, return, write the
    record in the client; one single-thread worker, so nothing overlaps."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client, \
            tempfile.TemporaryDirectory() as store:
        client.submit(fake_record, -1, pure=False).result()  # warm up
        start = time.perf_counter()
        futures = [client.submit(fake_record, i, pure=False) for i in range(tasks)]
        for future in as_completed(futures):
            write_record(store, future.result())
        return (time.perf_counter() - start) / tasks


def measure_workers(counts=(1, 2), runs: int = 8) -> dict:
    """Wall seconds of the engine training the same ``runs`` small LeNet5 runs on 1 and on 2 local workers
    (the cluster started and its workers warmed up with one run first, so only the training is timed)."""
    configs = [RunConfig(model="LeNet5", lr=0.005, seed=s, nb_pairs=500, batch_size=100, epochs=3)
               for s in range(1, runs + 1)]
    out = {}
    for n in counts:
        engine = Engine(workers=n, device="cpu", log=lambda line: None)
        try:
            with tempfile.TemporaryDirectory() as store:
                warm = [RunConfig(model="LeNet5", lr=0.005, seed=100 + i, nb_pairs=100, epochs=1) for i in range(n)]
                engine.train(warm, store)  # the workers have imported torch and loaded MNIST
                start = time.perf_counter()
                engine.train(configs, store)
                out[n] = time.perf_counter() - start
        finally:
            engine.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_csv", type=Path)
    parser.add_argument("--overhead", type=float, default=None,
                        help="engine seconds per task (default: measured now on a local one-worker cluster)")
    parser.add_argument("--workers", action="store_true", help="instead: time 8 runs on 1 and on 2 local workers")
    args = parser.parse_args(argv)
    if args.workers:
        walls = measure_workers()
        print(f"8 LeNet5 runs (500 pairs, 3 epochs): 1 worker {walls[1]:.1f} s, 2 workers {walls[2]:.1f} s, "
              f"speed-up {walls[1] / walls[2]:.2f}")
        return 0
    if args.overhead is None:
        args.overhead = measure_overhead()
    runs = read_runs(args.runs_csv)
    longest = max(s for _, s in runs)
    print(f"{len(runs)} runs, {sum(s for _, s in runs) / 3600:.2f} h of single-thread work, longest run "
          f"{longest:.0f} s, overhead {args.overhead * 1000:.0f} ms per task")
    print("| workers | makespan | speed-up | efficiency | lower bound (limit) |")
    print("|---:|---:|---:|---:|---|")
    for r in table(runs, args.overhead):
        print(f"| {r['workers']} | {r['makespan'] / 60:.1f} min | {r['speedup']:.1f} | {100 * r['efficiency']:.0f} % "
              f"| {r['lower_bound'] / 60:.1f} min ({r['limit']}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
