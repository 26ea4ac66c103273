"""Seeds one by one (training.train_run) against seeds together (batched.train_seeds): wall time and numbers.

For each model: the same seeds trained both ways, alternating, ``--reps`` times; prints the median wall
seconds of each, their ratio and runs per second, and how far the batched numbers are from the one-by-one
ones (loss curves, test head probabilities, test errors). One torch thread unless ``--threads``.

    PYTHONPATH=. python benchmarks/batched_seeds.py                      # CPU: 10 seeds, 1000 pairs, 3 epochs
    PYTHONPATH=. python benchmarks/batched_seeds.py --device cuda --epochs 30 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from siamese_lib.batched import train_seeds
from siamese_lib.config import RunConfig
from siamese_lib.machine import cpu_model
from siamese_lib.training import train_run

PAPER_LRS = {"Net": 3e-2, "LeNet5": 5e-3, "LeNet5_FullyConv": 5e-2, "ResNet": 5e-3}


def differences(seq: list[dict], bat: list[dict]) -> dict:
    """Largest differences between the two paths' results, over the seeds."""

    def most(f):
        return max(max((abs(x - y) for x, y in zip(f(a), f(b))), default=0.0) for a, b in zip(seq, bat))

    return {
        "train_loss": most(lambda r: r["curves"]["train_loss"]),
        "head_prob": most(lambda r: r["outputs"]["head_prob"]),
        "test_error": most(lambda r: [r["metrics"]["test_error"]]),
        "bit_identical": all(
            a["curves"] == b["curves"] and a["outputs"] == b["outputs"] for a, b in zip(seq, bat)
        ),
    }


def compare(model: str, args) -> dict:
    configs = [
        RunConfig(
            model=model,
            lr=PAPER_LRS.get(model, 5e-3),
            nb_pairs=args.pairs,
            epochs=args.epochs,
            seed=s,
            weight_sharing=not args.no_weight_sharing,
        )
        for s in range(1, args.seeds + 1)
    ]
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    times, last = {"one_by_one": [], "batched": []}, {}
    for _ in range(args.reps):
        for name in times:
            sync()
            start = time.perf_counter()
            if name == "one_by_one":
                results = [train_run(c, args.device, threads=args.threads) for c in configs]
            else:
                results = train_seeds(configs, args.device, threads=args.threads)
            sync()
            times[name].append(time.perf_counter() - start)
            last[name] = results
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": model,
        "seeds": args.seeds,
        "pairs": args.pairs,
        "epochs": args.epochs,
        "weight_sharing": not args.no_weight_sharing,
        "seconds": times,
        "median_s": med,
        "speedup": med["one_by_one"] / med["batched"],
        "runs_per_s": {k: args.seeds / v for k, v in med.items()},
        "max_difference": differences(last["one_by_one"], last["batched"]),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["LeNet5", "Net"])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--no-weight-sharing", action="store_true")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    train_run(
        RunConfig(nb_pairs=args.pairs, epochs=1), args.device, threads=args.threads
    )  # load MNIST, warm up
    where = torch.cuda.get_device_name() if args.device == "cuda" else cpu_model()
    print(
        f"{where}, torch {torch.__version__}, {args.threads} thread(s), {args.seeds} seeds x {args.pairs} pairs x "
        f"{args.epochs} epochs, median of {args.reps}"
    )
    print(
        f"{'model':8s} {'one-by-one s':>12s} {'batched s':>10s} {'speedup':>8s} {'runs/s 1x1':>10s} "
        f"{'runs/s bat':>10s} {'max dloss':>9s} {'max dprob':>9s} {'max derr':>8s}"
    )
    rows = []
    for model in args.models:
        r = compare(model, args)
        rows.append(r)
        d = r["max_difference"]
        print(
            f"{model:8s} {r['median_s']['one_by_one']:12.2f} {r['median_s']['batched']:10.2f} {r['speedup']:8.2f} "
            f"{r['runs_per_s']['one_by_one']:10.2f} {r['runs_per_s']['batched']:10.2f} {d['train_loss']:9.2g} "
            f"{d['head_prob']:9.2g} {d['test_error']:8.2f}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"machine": where, "torch": torch.__version__, "device": args.device, "rows": rows},
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
