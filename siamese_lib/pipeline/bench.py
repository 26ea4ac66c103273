"""Speed measurements: the library's training step against a plain reference loop, side by side.

``python -m siamese_lib bench [--smoke] [--profile NAME] [--study PART ...] [--out PATH] [--device cpu|cuda|auto]``

For each model, with and without weight sharing, and at each thread count, the two loops
below train their own copy of the same model in the same process, in alternating timed
blocks (one block = one epoch of mini-batches, order A B B A ...), and the medians are
compared. Wall time is what the issue asks for; process CPU time is recorded beside it
because it is far less sensitive to other jobs on a shared machine.

``--profile NAME`` also runs a whole profile into a temporary runs folder and splits its
wall time into kernel start-up, data loading, training, evaluation and report rendering.

``--study PART ...`` runs the ablations written up in docs/performance.md (``bench_study``).
"""
from __future__ import annotations

import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .. import machine
from ..common import ROOT, UsageError, write_json_atomically
from ..data import generate_pair_sets
from ..experiments.profiles import PAPER_LRS, TRAINING_STAGES, ProfileError, load_profile
from ..models import PAPER_MODELS, build_model
from ..config import RunConfig
from ..training import Split, make_optimizer, mini_batches, resolve_device, train_epoch

DEFAULT_OUT = ROOT / "bench" / "bench.json"

BATCH_SIZE = 100
# full: one block = one paper epoch (1000 pairs = 10 steps); smoke: seconds in all
FULL = dict(nb_pairs=1000, rounds=6, warmup=1, matmul_n=512)
SMOKE = dict(nb_pairs=100, rounds=2, warmup=1, matmul_n=256)


# --- the two training loops ------------------------------------------------------------

def two_call_forward(model, x):
    """The authors' siamese forward: the branch applied to each image in its own call."""
    d1, d2 = model.branch1(x[:, 0:1]), model.branch2(x[:, 1:2])
    return d1, d2, model.head(torch.cat((d1, d2), 1))


def reference_epoch(model, optimizer, inp, target, classes, batch_size=BATCH_SIZE):
    """One epoch written the way the original code trains: a fresh slice per batch,
    ``loss.item()`` every batch, NCHW model, default Adam, two-call forward."""
    sum_loss = 0.0
    for b in range(0, inp.size(0), batch_size):
        x = inp.narrow(0, b, batch_size)
        c = classes.narrow(0, b, batch_size)
        d1, d2, out = two_call_forward(model, x)
        loss = (F.cross_entropy(out, target.narrow(0, b, batch_size))
                + F.cross_entropy(d1, c[:, 0]) + F.cross_entropy(d2, c[:, 1]))
        sum_loss = sum_loss + loss.item()
        model.zero_grad()
        loss.backward()
        optimizer.step()
    return sum_loss


def reference_setup(config: RunConfig, dev):
    torch.manual_seed(config.seed)
    model = build_model(config.model, config.weight_sharing, config.batch_norm, config.dropout).to(dev)
    return model, torch.optim.Adam(model.parameters(), lr=config.lr)


# Mirror of training.train_run's set-up and inner loop (kept identical; tests/test_bench.py
# checks that it reproduces train_run's loss curve bit for bit). Once training.py exposes
# these steps as functions, import them here instead.

def library_model(config: RunConfig, dev):
    model = build_model(config.model, config.weight_sharing, config.batch_norm, config.dropout).to(dev)
    if dev.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model


def library_setup(config: RunConfig, train: Split, dev):
    torch.manual_seed(config.seed)
    model = library_model(config, dev)
    return model, make_optimizer(model, config), mini_batches(train, config.batch_size)


# --- measuring -----------------------------------------------------------------------------

def synthetic_split(nb_pairs: int, dev, seed: int = 0) -> Split:
    """Standardised random pairs of the real shape: step time does not depend on pixel values."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.randint(0, 10, (nb_pairs, 2), generator=g)
    split = Split(torch.randn(nb_pairs, 2, 14, 14, generator=g), (classes[:, 0] <= classes[:, 1]).long(), classes)
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
        for k in (list(blocks) if r % 2 == 0 else list(reversed(blocks))):
            _sync(dev)
            w0, c0 = time.perf_counter(), time.process_time()
            blocks[k]()
            _sync(dev)
            wall[k].append(time.perf_counter() - w0)
            cpu[k].append(time.process_time() - c0)
    return {k: {"wall": statistics.median(wall[k]), "cpu": statistics.median(cpu[k]), "best": min(wall[k]),
                "walls": wall[k]} for k in blocks}


def matmul_block(n: int, dev, reps: int):
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)

    def run():
        for _ in range(reps):
            torch.mm(a, b)
    return run, 2.0 * n ** 3 * reps


def matmul_gflops(n: int, dev, threads: int, rounds: int = 7) -> dict:
    """Dense float32 matmul rate at a thread count: median and best of timed blocks (~0.1 s each)."""
    with threads_set(threads):
        run, flops = matmul_block(n, dev, reps=max(1, int(1e10 / (2 * n ** 3))))
        run()
        _sync(dev)
        times = []
        for _ in range(rounds):
            w0 = time.perf_counter()
            run()
            _sync(dev)
            times.append(time.perf_counter() - w0)
    return {"n": n, "median": flops / statistics.median(times) / 1e9, "best": flops / min(times) / 1e9}


class threads_set:
    """Context manager: torch intra-op threads set for the block, restored after."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


def step_flops(config: RunConfig, split: Split, dev) -> int:
    """FLOPs of one training step (forward, loss, backward) counted by FlopCounterMode."""
    model, _, batches = library_setup(config, split, dev)
    xb, tb, cb = batches[0]
    with FlopCounterMode(display=False) as counter:
        d1, d2, c = model(xb)
        loss = F.cross_entropy(c, tb) + F.cross_entropy(d1, cb[:, 0]) + F.cross_entropy(d2, cb[:, 1])
        loss.backward()
    return int(counter.get_total_flops())


def peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux reports KiB


def bench_row(model_name: str, weight_sharing: bool, threads: int, dev, split: Split, s: dict) -> dict:
    """Reference vs library (and a matmul block, for a same-moment reference rate), alternating."""
    config = RunConfig(model=model_name, weight_sharing=weight_sharing, lr=PAPER_LRS[model_name],
                       nb_pairs=max(s["nb_pairs"], 2), epochs=1)
    steps = math.ceil(len(split) / BATCH_SIZE)
    with threads_set(threads):
        ref_model, ref_opt = reference_setup(config, dev)
        lib_model, lib_opt, batches = library_setup(config, split, dev)
        mm, mm_flops = matmul_block(s["matmul_n"], dev, reps=max(1, int(2e9 / (2 * s["matmul_n"] ** 3))))
        ref_model.train()
        lib_model.train()
        res = alternate({
            "reference": lambda: reference_epoch(ref_model, ref_opt, split.input, split.target, split.classes),
            "library": lambda: train_epoch(lib_model, lib_opt, batches, config, 0, split),
            "matmul": mm,
        }, rounds=s["rounds"], warmup=s["warmup"], dev=dev)
    flops = step_flops(config, split, dev)
    ref_ms = 1e3 * res["reference"]["wall"] / steps
    lib_ms = 1e3 * res["library"]["wall"] / steps
    mm_rate = mm_flops / res["matmul"]["wall"] / 1e9
    lib_rate = flops / (lib_ms / 1e3) / 1e9
    return {
        "model": model_name, "weight_sharing": weight_sharing, "threads": threads, "steps_per_block": steps,
        "reference_ms": ref_ms, "library_ms": lib_ms, "ratio": lib_ms / ref_ms,
        "reference_cpu_ms": 1e3 * res["reference"]["cpu"] / steps,
        "library_cpu_ms": 1e3 * res["library"]["cpu"] / steps,
        "cpu_ratio": res["library"]["cpu"] / res["reference"]["cpu"],
        # the fastest block of each: least disturbed by other jobs on a shared machine
        "reference_best_ms": 1e3 * res["reference"]["best"] / steps,
        "library_best_ms": 1e3 * res["library"]["best"] / steps,
        "best_ratio": res["library"]["best"] / res["reference"]["best"],
        "library_vs_matmul_best": (flops / res["library"]["best"] * steps) / (mm_flops / res["matmul"]["best"]),
        "flops_per_step": flops,
        "reference_gflops": flops / (ref_ms / 1e3) / 1e9,
        "library_gflops": lib_rate,
        "library_gflops_per_thread": lib_rate / threads,
        "matmul_gflops_interleaved": mm_rate,
        "library_vs_matmul": lib_rate / mm_rate,
        # the same two rates from CPU time: robust to other jobs taking the CPU (meaningless on a GPU)
        "library_vs_matmul_cpu": (flops / res["library"]["cpu"] * steps) / (mm_flops / res["matmul"]["cpu"]),
        "block_walls": {k: v["walls"] for k, v in res.items()},
    }


def machine_info(dev) -> dict:
    cpu_model, flags = machine.cpu_model(), set(machine.cpuinfo().get("flags", "").split())
    info = {"cpu": cpu_model, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "device": dev.type, "default_threads": torch.get_num_threads(),
            "bf16_hardware": sorted(flags & {"avx512_bf16", "amx_bf16"}),
            "loadavg_start": list(os.getloadavg())}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def run_steps(dev, smoke: bool, models=PAPER_MODELS, progress=print) -> dict:
    s = SMOKE if smoke else FULL
    all_threads = torch.get_num_threads()
    thread_counts = [1] if smoke or dev.type == "cuda" else sorted({1, all_threads})
    if dev.type == "cuda":
        thread_counts = [all_threads]
    result = {"machine": machine_info(dev), "settings": dict(s, smoke=smoke, batch_size=BATCH_SIZE,
                                                             thread_counts=thread_counts)}
    result["matmul_gflops"] = {str(t): matmul_gflops(s["matmul_n"], dev, t) for t in thread_counts}
    if not smoke and dev.type == "cpu":
        result["matmul_gflops_1024"] = {str(t): matmul_gflops(1024, dev, t) for t in thread_counts}
    split = synthetic_split(s["nb_pairs"], dev)
    rows = []
    for threads in thread_counts:
        for name in models:
            for ws in (True, False):
                row = bench_row(name, ws, threads, dev, split, s)
                row["peak_rss_mb"] = peak_rss_mb()
                rows.append(row)
                progress(f"  {name:16s} ws={int(ws)} threads={threads}: reference {row['reference_ms']:.2f} ms, "
                         f"library {row['library_ms']:.2f} ms per step")
    result["rows"] = rows
    result["peak_rss_mb"] = peak_rss_mb()
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    return result


def format_table(result: dict) -> str:
    head = (f"{'model':16s} {'ws':>2s} {'thr':>3s} {'ref ms':>8s} {'lib ms':>8s} {'lib/ref':>7s} "
            f"{'cpu l/r':>7s} {'best':>5s} {'GFLOP/st':>8s} {'GFLOP/s':>8s} {'/thread':>7s} {'vs mm':>6s} {'(cpu)':>6s} "
            f"{'(best)':>6s}")
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['model']:16s} {int(r['weight_sharing']):>2d} {r['threads']:>3d} {r['reference_ms']:8.2f} "
                     f"{r['library_ms']:8.2f} {r['ratio']:7.2f} {r['cpu_ratio']:7.2f} {r['best_ratio']:5.2f} "
                     f"{r['flops_per_step'] / 1e9:8.3f} {r['library_gflops']:8.1f} "
                     f"{r['library_gflops_per_thread']:7.1f} {100 * r['library_vs_matmul']:5.0f}% "
                     f"{100 * r['library_vs_matmul_cpu']:5.0f}% {100 * r['library_vs_matmul_best']:5.0f}%")
    mm = ", ".join(f"{t} thread{'s' if t != '1' else ''}: {v['median']:.1f} (best {v['best']:.1f})"
                   for t, v in result["matmul_gflops"].items())
    lines.append(f"dense matmul n={result['settings']['matmul_n']} GFLOP/s, {mm}")
    lines.append("lib/ref: library over reference ms per step (median wall); cpu l/r: from process CPU time; "
                 "best: from the fastest block of each")
    lines.append("vs mm: library GFLOP/s over the dense matmul rate timed in the same alternation at the same thread "
                 "count (median wall; (cpu): CPU time; (best): fastest blocks)")
    lines.append(f"peak RSS {result['peak_rss_mb']:.0f} MB; load average at start "
                 f"{result['machine']['loadavg_start'][0]:.2f}, at end {result['machine']['loadavg_end'][0]:.2f}")
    return "\n".join(lines)


# --- a whole profile, by phase ----------------------------------------------------------------

def check_profile(name: str):
    """The profile, or a usage error before any timing starts."""
    try:
        profile = load_profile(name)
    except ProfileError as exc:
        raise UsageError(f"bench: {exc}") from None
    return profile


def run_profile(name: str, device: str) -> dict:
    """Run a profile end to end into a temporary runs folder; split its wall time by phase."""
    profile = check_profile(name)
    # what each training kernel pays once: MNIST from the local cache, then the prologue's pairs
    t0 = time.perf_counter()
    generate_pair_sets(profile.settings["nb_pairs"], seed=profile.settings["data_seed"])
    data_seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="siamese-bench-") as tmp:
        env = dict(os.environ, SIAMESE_LIB_RUNS_DIR=str(Path(tmp) / "runs"),
                   SIAMESE_LIB_REPORT_DIR=str(Path(tmp) / "report"))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "siamese_lib", "run", "--profile", name, "--device", device],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"profile {name} failed (exit {proc.returncode}): " + " | ".join(tail))
        result = profile_breakdown(Path(tmp) / "runs" / profile.name, wall, data_seconds)
    result["peak_rss_mb_worker"] = peak_rss_mb(resource.RUSAGE_CHILDREN)  # the largest finished descendant
    return result


def profile_breakdown(runs_dir: Path, wall: float, data_seconds: float) -> dict:
    """Phases of a profile run from the runner's timings.json and the records' train/wall seconds.

    Kernel start-up, data loading, training and evaluation are worker-seconds (summed over the
    parallel workers); report rendering is the wall time of the figures and report stages, which
    run alone after training. Data loading happens inside each kernel's first run, so it is taken
    out of training: ``data_seconds`` (measured once) per training notebook.
    """
    timings = json.loads((runs_dir / "timings.json").read_text()) if (runs_dir / "timings.json").is_file() else {}
    executions = timings.get("executions", [])
    train = evaluate = records_wall = 0.0
    n = 0
    for path in sorted((runs_dir / "store").glob("*.json")):
        m = json.loads(path.read_text()).get("metrics", {})
        if "train_seconds" in m and "wall_seconds" in m:
            train += m["train_seconds"]
            evaluate += m["wall_seconds"] - m["train_seconds"]
            records_wall += m["wall_seconds"]
            n += 1
    training_notebooks = [e for e in executions if e.get("stage") in TRAINING_STAGES]
    data = data_seconds * len(training_notebooks)
    notebook = sum(e.get("notebook_seconds") or 0.0 for e in training_notebooks)
    stages = timings.get("stages", {})
    phases = {
        "kernel_start": sum(e.get("kernel_start_seconds") or 0.0 for e in executions),
        "data_loading": data,
        "training": train - data,
        "evaluation": evaluate,
        "notebook_other": max(0.0, notebook - records_wall),  # imports, tables, plots, store reads and writes
        "report": sum(stages.get(s, 0.0) for s in ("figures", "report")),
    }
    return {"wall_seconds": wall, "runs": n, "train_seconds": train, "evaluation_seconds": evaluate,
            "data_seconds_per_kernel": data_seconds, "notebooks": len(executions), "phases": phases,
            "stage_wall_seconds": stages, "runner_total_seconds": timings.get("total_seconds"),
            "jobs": timings.get("jobs")}


# --- entry point ---------------------------------------------------------------------------------

def main(args) -> int:
    try:
        dev = resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(f"bench: {exc}") from None
    out = Path(args.out) if args.out else DEFAULT_OUT
    if out.exists() and out.is_dir():
        raise UsageError(f"bench: --out {out} is a directory; give a file path")
    if args.profile:
        check_profile(args.profile)
    print(f"bench on {dev.type} ({'smoke' if args.smoke else 'full'}): reference loop vs library step, "
          "alternating blocks", flush=True)
    result = run_steps(dev, args.smoke, progress=lambda line: print(line, flush=True))
    print(format_table(result), flush=True)
    write_json_atomically(out, result)  # kept even if the profile run below fails or is cut short
    if args.profile:
        print(f"running profile {args.profile} end to end on {dev.type} (a temporary runs folder)", flush=True)
        try:
            result["profile"] = dict(name=args.profile, **run_profile(args.profile, dev.type))
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(format_profile(result["profile"]))
        write_json_atomically(out, result)
    print(f"wrote {out}")
    return 0


def write_json(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # still matched by .gitignore's bench/*.json
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, path)
def format_profile(p: dict) -> str:
    phases = ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in p["phases"].items())
    return (f"profile {p['name']}: {p['wall_seconds']:.1f} s wall with {p['jobs']} job(s), {p['notebooks']} notebooks, "
            f"{p['runs']} runs; worker-seconds: {phases} (report: wall); "
            f"peak RSS of one worker {p['peak_rss_mb_worker']:.0f} MB")
