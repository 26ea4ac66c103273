"""The library's training step against a plain reference loop, side by side (``make bench``).

``python -m benchmarks.bench [--smoke] [--out PATH] [--device cpu|cuda|auto]``

For each model, with and without weight sharing, and at each thread count, the two loops below train
their own copy of the same model in the same process, in alternating timed blocks (one block = one
epoch of mini-batches, order A B B A ...), and the medians are compared. Wall time is what matters;
process CPU time is recorded beside it because it is far less sensitive to other jobs on a shared machine.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from siamese_lib import machine
from siamese_lib.common import ROOT, write_json_atomically
from siamese_lib.config import PAPER_MODELS, RunConfig
from siamese_lib.experiments.profiles import PAPER_LRS
from siamese_lib.machine import torch_threads
from siamese_lib.models import build_model
from siamese_lib.training import Split, make_model, make_optimizer, mini_batches, resolve_device, train_epoch

BATCH_SIZE = 100
# full: one block = one paper epoch (1000 pairs = 10 steps); smoke: seconds in all
FULL = dict(nb_pairs=1000, rounds=6, warmup=1, matmul_n=512)
SMOKE = dict(nb_pairs=100, rounds=2, warmup=1, matmul_n=256)


# --- the two training loops ------------------------------------------------------------


def reference_setup(config: RunConfig, dev):
    """The original code's model and optimizer: NCHW, default (single-tensor) Adam, one branch call per image."""
    torch.manual_seed(config.seed)
    model = build_model(
        config.model,
        config.weight_sharing,
        config.batch_norm,
        config.dropout,
        branch_calls=2 if config.weight_sharing else 1,
    ).to(dev)
    return model, torch.optim.Adam(model.parameters(), lr=config.lr)


def reference_epoch(model, optimizer, split: Split, batch_size=BATCH_SIZE):
    """One epoch written the way the original code trains: a fresh slice per batch, ``loss.item()`` every batch."""
    sum_loss = 0.0
    for b in range(0, len(split), batch_size):
        x, t, c = (s.narrow(0, b, batch_size) for s in (split.input, split.target, split.classes))
        d1, d2, out = model(x)
        loss = F.cross_entropy(out, t) + F.cross_entropy(d1, c[:, 0]) + F.cross_entropy(d2, c[:, 1])
        sum_loss = sum_loss + loss.item()
        model.zero_grad()
        loss.backward()
        optimizer.step()
    return sum_loss


def library_setup(config: RunConfig, split: Split, dev):
    torch.manual_seed(config.seed)
    model = make_model(config, dev)
    return model, make_optimizer(model, config), mini_batches(split, config.batch_size)


# --- measuring -----------------------------------------------------------------------------


def synthetic_split(nb_pairs: int, dev, seed: int = 0) -> Split:
    """Standardised random pairs of the real shape: step time does not depend on pixel values."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.randint(0, 10, (nb_pairs, 2), generator=g)
    split = Split(
        torch.randn(nb_pairs, 2, 14, 14, generator=g), (classes[:, 0] <= classes[:, 1]).long(), classes
    )
    return split.to(dev)


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def alternate(blocks: dict, rounds: int, warmup: int, dev) -> dict:
    """Median wall and CPU seconds per call of each block, calls interleaved A B .. B A (drift cancels)."""
    for _ in range(warmup):
        for fn in blocks.values():
            fn()
    _sync(dev)
    wall = {k: [] for k in blocks}
    cpu = {k: [] for k in blocks}
    for r in range(rounds):
        for k in list(blocks) if r % 2 == 0 else list(reversed(blocks)):
            _sync(dev)
            w0, c0 = time.perf_counter(), time.process_time()
            blocks[k]()
            _sync(dev)
            wall[k].append(time.perf_counter() - w0)
            cpu[k].append(time.process_time() - c0)
    return {
        k: {"wall": statistics.median(wall[k]), "cpu": statistics.median(cpu[k]), "best": min(wall[k])}
        for k in blocks
    }


def matmul_block(n: int, dev, reps: int):
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)

    def run():
        for _ in range(reps):
            torch.mm(a, b)

    return run, 2.0 * n**3 * reps


def matmul_gflops(n: int, dev, threads: int, rounds: int = 7) -> dict:
    """Dense float32 matmul rate at a thread count: median and best of timed blocks (~0.1 s each)."""
    with torch_threads(threads):
        run, flops = matmul_block(n, dev, reps=max(1, int(1e10 / (2 * n**3))))
        res = alternate({"mm": run}, rounds=rounds, warmup=1, dev=dev)["mm"]
    return {"n": n, "median": flops / res["wall"] / 1e9, "best": flops / res["best"] / 1e9}


def step_flops(config: RunConfig, split: Split, dev) -> int:
    """FLOPs of one training step (forward, loss, backward) counted by FlopCounterMode."""
    model, _, batches = library_setup(config, split, dev)
    xb, tb, cb = batches[0]
    with FlopCounterMode(display=False) as counter:
        d1, d2, c = model(xb)
        loss = F.cross_entropy(c, tb) + F.cross_entropy(d1, cb[:, 0]) + F.cross_entropy(d2, cb[:, 1])
        loss.backward()
    return int(counter.get_total_flops())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def bench_row(model_name: str, weight_sharing: bool, threads: int, dev, split: Split, s: dict) -> dict:
    """Reference vs library (and a matmul block, for a same-moment reference rate), alternating."""
    config = RunConfig(
        model=model_name,
        weight_sharing=weight_sharing,
        lr=PAPER_LRS[model_name],
        nb_pairs=max(s["nb_pairs"], 2),
        epochs=1,
    )
    steps = math.ceil(len(split) / BATCH_SIZE)
    with torch_threads(threads):
        ref_model, ref_opt = reference_setup(config, dev)
        lib_model, lib_opt, batches = library_setup(config, split, dev)
        mm, mm_flops = matmul_block(s["matmul_n"], dev, reps=max(1, int(2e9 / (2 * s["matmul_n"] ** 3))))
        ref_model.train()
        lib_model.train()
        res = alternate(
            {
                "reference": lambda: reference_epoch(ref_model, ref_opt, split),
                "library": lambda: train_epoch(lib_model, lib_opt, batches, config, 0, split),
                "matmul": mm,
            },
            rounds=s["rounds"],
            warmup=s["warmup"],
            dev=dev,
        )
    flops = step_flops(config, split, dev)
    ref, lib, mm_res = res["reference"], res["library"], res["matmul"]

    def vs_matmul(kind):  # the library's FLOP rate over the matmul's, from the same kind of time
        return (flops * steps / lib[kind]) / (mm_flops / mm_res[kind])

    lib_rate = flops * steps / lib["wall"] / 1e9
    return {
        "model": model_name,
        "weight_sharing": weight_sharing,
        "threads": threads,
        "steps_per_block": steps,
        "reference_ms": 1e3 * ref["wall"] / steps,
        "library_ms": 1e3 * lib["wall"] / steps,
        "ratio": lib["wall"] / ref["wall"],
        "reference_cpu_ms": 1e3 * ref["cpu"] / steps,
        "library_cpu_ms": 1e3 * lib["cpu"] / steps,
        "cpu_ratio": lib["cpu"] / ref["cpu"],
        # the fastest block of each: least disturbed by other jobs on a shared machine
        "best_ratio": lib["best"] / ref["best"],
        "flops_per_step": flops,
        "library_gflops": lib_rate,
        "library_gflops_per_thread": lib_rate / threads,
        "matmul_gflops_interleaved": mm_flops / mm_res["wall"] / 1e9,
        "library_vs_matmul": vs_matmul("wall"),
        "library_vs_matmul_cpu": vs_matmul(
            "cpu"
        ),  # robust to other jobs taking the CPU (meaningless on a GPU)
        "library_vs_matmul_best": vs_matmul("best"),
        "peak_rss_mb": peak_rss_mb(),
    }


def machine_info(dev) -> dict:
    flags = set(machine.cpuinfo().get("flags", "").split())
    return {
        **machine.fingerprint(dev.type),
        "cores": os.cpu_count(),
        "bf16_hardware": sorted(flags & {"avx512_bf16", "amx_bf16"}),
        "loadavg_start": list(os.getloadavg()),
    }


def run_steps(dev, smoke: bool, models=PAPER_MODELS, progress=print) -> dict:
    s = SMOKE if smoke else FULL
    all_threads = torch.get_num_threads()
    thread_counts = [all_threads] if dev.type == "cuda" else [1] if smoke else sorted({1, all_threads})
    result = {
        "machine": machine_info(dev),
        "settings": dict(s, smoke=smoke, batch_size=BATCH_SIZE, thread_counts=thread_counts),
    }
    result["matmul_gflops"] = {str(t): matmul_gflops(s["matmul_n"], dev, t) for t in thread_counts}
    if not smoke and dev.type == "cpu":
        result["matmul_gflops_1024"] = {str(t): matmul_gflops(1024, dev, t) for t in thread_counts}
    split = synthetic_split(s["nb_pairs"], dev)
    rows = []
    for threads in thread_counts:
        for name in models:
            for ws in (True, False):
                rows.append(row := bench_row(name, ws, threads, dev, split, s))
                progress(
                    f"  {name:16s} ws={int(ws)} threads={threads}: reference {row['reference_ms']:.2f} ms, "
                    f"library {row['library_ms']:.2f} ms per step"
                )
    result["rows"] = rows
    result["peak_rss_mb"] = peak_rss_mb()
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    return result


def format_table(result: dict) -> str:
    head = (
        f"{'model':16s} {'ws':>2s} {'thr':>3s} {'ref ms':>8s} {'lib ms':>8s} {'lib/ref':>7s} "
        f"{'cpu l/r':>7s} {'best':>5s} {'GFLOP/st':>8s} {'GFLOP/s':>8s} {'/thread':>7s} {'vs mm':>6s} {'(cpu)':>6s} "
        f"{'(best)':>6s}"
    )
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(
            f"{r['model']:16s} {int(r['weight_sharing']):>2d} {r['threads']:>3d} {r['reference_ms']:8.2f} "
            f"{r['library_ms']:8.2f} {r['ratio']:7.2f} {r['cpu_ratio']:7.2f} {r['best_ratio']:5.2f} "
            f"{r['flops_per_step'] / 1e9:8.3f} {r['library_gflops']:8.1f} "
            f"{r['library_gflops_per_thread']:7.1f} {100 * r['library_vs_matmul']:5.0f}% "
            f"{100 * r['library_vs_matmul_cpu']:5.0f}% {100 * r['library_vs_matmul_best']:5.0f}%"
        )
    mm = ", ".join(
        f"{t} thread{'s' if t != '1' else ''}: {v['median']:.1f} (best {v['best']:.1f})"
        for t, v in result["matmul_gflops"].items()
    )
    lines.append(f"dense matmul n={result['settings']['matmul_n']} GFLOP/s, {mm}")
    lines.append(
        "lib/ref: library over reference ms per step (median wall); cpu l/r: from process CPU time; "
        "best: from the fastest block of each"
    )
    lines.append(
        "vs mm: library GFLOP/s over the dense matmul rate timed in the same alternation at the same thread "
        "count (median wall; (cpu): CPU time; (best): fastest blocks)"
    )
    lines.append(
        f"peak RSS {result['peak_rss_mb']:.0f} MB; load average at start "
        f"{result['machine']['loadavg_start'][0]:.2f}, at end {result['machine']['loadavg_end'][0]:.2f}"
    )
    return "\n".join(lines)


def usage_error(message: str):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few steps only (seconds; what the tests run)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "bench.json", help="JSON output path")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    try:
        dev = resolve_device(args.device)
    except ValueError as exc:
        usage_error(str(exc))
    if args.out.is_dir():
        usage_error(f"--out {args.out} is a directory; give a file path")
    print(
        f"bench on {dev.type} ({'smoke' if args.smoke else 'full'}): reference loop vs library step, "
        "alternating blocks",
        flush=True,
    )
    result = run_steps(dev, args.smoke, progress=lambda line: print(line, flush=True))
    print(format_table(result))
    write_json_atomically(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
