"""Speed measurements: the library's training step against a plain reference loop, side by side.

``python -m siamese_lib bench [--smoke] [--profile NAME] [--out PATH] [--device cpu|cuda|auto]``

For each model, with and without weight sharing, and at each thread count, the two loops
below train their own copy of the same model in the same process, in alternating timed
blocks (one block = one epoch of mini-batches, order A B B A ...), and the medians are
compared. Wall time is what the issue asks for; process CPU time is recorded beside it
because it is far less sensitive to other jobs on a shared machine.

``--profile NAME`` also runs a whole profile into a temporary runs folder and splits its
wall time into kernel start-up, data loading, training, evaluation and report rendering.

``python -m siamese_lib.bench study`` runs the ablations written up in docs/performance.md.
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

from .models import MODEL_NAMES, build_model
from .profiles import PAPER_LRS
from .training import RunConfig, Split, make_optimizer, mini_batches, resolve_device, train_epoch

ROOT = Path(__file__).resolve().parent.parent
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
    from torch.utils.flop_counter import FlopCounterMode
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
    cpu_model, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:  # not Linux: the model name from platform, no flags
        pass
    info = {"cpu": cpu_model, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "device": dev.type, "default_threads": torch.get_num_threads(),
            "bf16_hardware": sorted(flags & {"avx512_bf16", "amx_bf16"}),
            "loadavg_start": list(os.getloadavg())}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def run_steps(dev, smoke: bool, models=MODEL_NAMES, progress=print) -> dict:
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


# --- ablations for docs/performance.md (python -m siamese_lib.bench study) ---------------------------

def variant(config: RunConfig, split: Split, dev, channels_last=True, adam="foreach", sync=False, two_call=False,
            bf16=False, compile=False, inplace_relu=False):
    """The library step with one thing changed; returns a function that trains one block (epoch)."""
    import contextlib
    import functools
    torch.manual_seed(config.seed)
    model = build_model(config.model, config.weight_sharing, config.batch_norm, config.dropout).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if inplace_relu:
        for m in model.modules():
            if isinstance(m, torch.nn.ReLU):
                m.inplace = True
    kwargs = {"single": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}[adam]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, **kwargs)
    forward = functools.partial(two_call_forward, model) if two_call else model
    if compile:
        forward = torch.compile(forward)
    batches = mini_batches(split, config.batch_size)

    def autocast():
        return torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def run():
        total = torch.zeros((), device=dev)
        for xb, tb, cb in batches:
            with autocast():
                d1, d2, c = forward(xb)
                loss = F.cross_entropy(c, tb) + (F.cross_entropy(d1, cb[:, 0]) + F.cross_entropy(d2, cb[:, 1]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if sync:
                loss.item()
            total += loss.detach()
        return total
    run.model, run.optimizer = model, optimizer
    return run


def compare(name: str, variants: dict, split: Split, dev, rounds: int, ws=True, threads=None) -> dict:
    """ms per step (wall and CPU) of library-step variants trained side by side; ratios to the first."""
    config = RunConfig(model=name, weight_sharing=ws, lr=PAPER_LRS[name], nb_pairs=len(split), epochs=1)
    steps = math.ceil(len(split) / BATCH_SIZE)
    blocks = {label: variant(config, split, dev, **kw) for label, kw in variants.items()}
    if threads is not None:  # labels name their thread count: each block sets its own
        blocks = {label: _with_threads(fn, threads[label]) for label, fn in blocks.items()}
    res = alternate(blocks, rounds=rounds, warmup=1, dev=dev)
    base = next(iter(res.values()))
    return {label: {"wall_ms": 1e3 * r["wall"] / steps, "cpu_ms": 1e3 * r["cpu"] / steps,
                    "wall_ratio": r["wall"] / base["wall"], "cpu_ratio": r["cpu"] / base["cpu"]}
            for label, r in res.items()}


def _with_threads(fn, n):
    def run():
        with threads_set(n):
            return fn()
    return run


def same_parameters(config: RunConfig, split: Split, dev, steps_blocks: int, **variants) -> dict:
    """Whether variants of the step give bit-identical parameters after a few blocks (vs the library step)."""
    runs = {label: variant(config, split, dev, **kw) for label, kw in variants.items()}
    for fn in runs.values():
        for _ in range(steps_blocks):
            fn()
    ref = [p.detach().clone() for p in runs["library"].model.parameters()]
    return {label: all(torch.equal(a, b) for a, b in zip(ref, fn.model.parameters()))
            for label, fn in runs.items() if label != "library"}


def _eval_pass(model, split: Split, context, batch_size=1000):
    """training.predict's loop (corrected protocol) with the autograd context as a parameter."""
    from .training import comparison_from_digits
    model.train(False)
    outs = []
    with context():
        for xb in torch.split(split.input, batch_size):
            d1, d2, c = model(xb)
            outs.append((F.softmax(c, 1)[:, 1], comparison_from_digits(d1, d2), d1.argmax(1), d2.argmax(1)))
    return [torch.cat(t) for t in zip(*outs)]


def evaluation_modes(dev, rounds: int) -> dict:
    """One evaluation pass over 1000 pairs under inference_mode (the library's), no_grad and grad enabled."""
    split = synthetic_split(1000, dev, seed=1)
    out = {}
    for name in ("LeNet5", "ResNet"):
        model = library_model(RunConfig(model=name, lr=PAPER_LRS[name]), dev)
        modes = {"inference_mode": torch.inference_mode, "no_grad": torch.no_grad, "grad": torch.enable_grad}
        res = alternate({k: (lambda m=m: _eval_pass(model, split, m)) for k, m in modes.items()},
                        rounds=rounds, warmup=1, dev=dev)
        out[name] = {k: {"wall_ms": 1e3 * r["wall"], "cpu_ms": 1e3 * r["cpu"]} for k, r in res.items()}
    return out


def bf16_errors(models=("LeNet5", "Net"), seeds=(1, 2), epochs=10) -> dict:
    """Test error of short real runs trained and evaluated under bfloat16 autocast vs float32."""
    from .training import train_run
    out = []
    for name in models:
        for seed in seeds:
            config = RunConfig(model=name, lr=PAPER_LRS[name], seed=seed, epochs=epochs)
            row = {"model": name, "seed": seed, "epochs": epochs}
            for label in ("float32", "bfloat16"):
                t0 = time.perf_counter()
                if label == "bfloat16":
                    # no cast cache: it would keep the first bf16 copy of each weight for the whole run
                    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
                        r = train_run(config, device="cpu")
                else:
                    r = train_run(config, device="cpu")
                row[label] = {"test_error": r["metrics"]["test_error"], "seconds": time.perf_counter() - t0}
            out.append(row)
    return out


def compile_cost(name: str, split: Split, dev, rounds: int) -> dict:
    """torch.compile: first-block seconds (compile included, cold cache) and steady ms per step vs eager."""
    config = RunConfig(model=name, lr=PAPER_LRS[name], nb_pairs=len(split), epochs=1)
    steps = math.ceil(len(split) / BATCH_SIZE)
    compiled = variant(config, split, dev, compile=True)
    t0, c0 = time.perf_counter(), time.process_time()
    compiled()
    first = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    res = alternate({"eager": variant(config, split, dev), "compiled": compiled}, rounds=rounds, warmup=1, dev=dev)
    return {"model": name, "first_block": first,
            **{k: {"wall_ms": 1e3 * r["wall"] / steps, "cpu_ms": 1e3 * r["cpu"] / steps} for k, r in res.items()}}


MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824"


def probe_steps(name: str, blocks: int) -> dict:
    """Per-step costs of the library step in this process (run in a child with a given environment)."""
    torch.set_num_threads(1)
    dev = torch.device("cpu")
    split = synthetic_split(1000, dev)
    config = RunConfig(model=name, lr=PAPER_LRS[name], epochs=1)
    model, optimizer, batches = library_setup(config, split, dev)
    train_epoch(model, optimizer, batches, config, 0, split)  # warm-up
    r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(blocks):
        train_epoch(model, optimizer, batches, config, 0, split)
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - w0
    steps = blocks * len(batches)
    return {"wall_ms": 1e3 * wall / steps, "user_ms": 1e3 * (r1.ru_utime - r0.ru_utime) / steps,
            "sys_ms": 1e3 * (r1.ru_stime - r0.ru_stime) / steps,
            "cpu_ms": 1e3 * (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / steps,
            "minor_faults": (r1.ru_minflt - r0.ru_minflt) / steps, "peak_rss_mb": r1.ru_maxrss / 1024.0}


def probe_record_hash() -> str:
    """A digest of short real runs' curves, test outputs and metrics (times left out): equal digests, equal numbers."""
    import hashlib
    from .training import train_run
    torch.set_num_threads(1)
    digest = hashlib.sha256()
    for config in (RunConfig(model="ResNet", nb_pairs=200, epochs=2, seed=2),
                   RunConfig(model="LeNet5", nb_pairs=300, epochs=3, seed=5, dropout=True)):
        r = train_run(config, device="cpu")
        metrics = {k: v for k, v in r["metrics"].items() if "seconds" not in k}
        digest.update(json.dumps([r["curves"], r["outputs"], metrics], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def malloc_effect(models=("LeNet5", "ResNet"), repeats: int = 3, blocks: int = 2) -> dict:
    """glibc malloc that keeps freed memory (no page faults per step) vs the default, in alternating children."""
    envs = {"default": {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}}
    envs["tuned"] = dict(envs["default"], GLIBC_TUNABLES=MALLOC_TUNABLES)
    out = {}
    for name in models:
        samples = {label: [] for label in envs}
        for rep in range(repeats):
            for label in (list(envs) if rep % 2 == 0 else list(reversed(envs))):
                proc = subprocess.run([sys.executable, "-m", "siamese_lib.bench", "_probe", name, str(blocks)],
                                      cwd=ROOT, env=envs[label], capture_output=True, text=True, check=True)
                samples[label].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        out[name] = {label: {k: statistics.median(x[k] for x in xs) for k in xs[0]} for label, xs in samples.items()}
    digests = {label: subprocess.run([sys.executable, "-m", "siamese_lib.bench", "_hash"], cwd=ROOT, env=env,
                                     capture_output=True, text=True, check=True).stdout.split()[-1]
               for label, env in envs.items()}
    out["same_numbers"] = len(set(digests.values())) == 1
    out["digests"] = digests
    return out


def simulate(jobs: list[float], workers: int) -> float:
    """Makespan of jobs (seconds) taken in the given order by the first free of ``workers`` workers."""
    import heapq
    free = [0.0] * workers
    for cost in jobs:
        heapq.heappush(free, heapq.heappop(free) + cost)
    return max(free)


def profile_estimate(epoch_seconds: dict, eval_seconds: dict, notebook_seconds: float, workers: int = 2,
                     profile: str = "paper") -> dict:
    """Core-seconds and 2-worker wall time of a profile's training from per-epoch costs.

    ``epoch_seconds[(model, weight_sharing)]``: one training epoch of 1000 pairs on one thread;
    ``eval_seconds[model]``: a run's evaluation; ``notebook_seconds``: a notebook's start-up and overhead.
    Each notebook (one configuration, several seeds) is one job; a run shared by two notebooks
    is trained by the first. Scheduling: the expansion order (first come, first served) against
    longest first, as the runner does.
    """
    from .profiles import expand, load_profile
    executions = [e for e in expand(load_profile(profile), "/nonexistent-store", "cpu")
                  if e.stage not in ("figures", "report")]
    seen, jobs, runs = set(), [], []
    for e in executions:
        cost = notebook_seconds
        for c in e.configs():
            if c in seen:
                continue
            seen.add(c)
            run = c.trained_epochs * epoch_seconds[(c.model, c.weight_sharing)] + eval_seconds[c.model]
            runs.append((c, run))
            cost += run
        jobs.append((e, cost))

    def summary(selected_jobs, selected_runs):
        costs = [cost for _, cost in selected_jobs]
        total = sum(costs)
        return {"notebooks": len(costs), "runs": len(selected_runs),
                "epochs": sum(c.trained_epochs for c, _ in selected_runs),
                "core_seconds": total,
                "core_seconds_by_model": {m: sum(r for c, r in selected_runs if c.model == m) for m in MODEL_NAMES},
                "wall_in_order": simulate(costs, workers),
                "wall_longest_first": simulate(sorted(costs, reverse=True), workers),
                "wall_lower_bound": max(total / workers, max(costs, default=0.0))}
    corrected = [(e, c) for e, c in jobs if e.parameters.get("protocol", "corrected") == "corrected"]
    return {"workers": workers, "all": summary(jobs, runs),
            "corrected_only": summary(corrected, [(c, r) for c, r in runs if c.protocol == "corrected"])}


def record_costs(store_dir) -> tuple[dict, dict]:
    """Per-epoch training seconds (median and fastest, by model and weight sharing) and median
    evaluation seconds by model, from a results store's records."""
    per_epoch, evaluation = {}, {}
    for path in sorted(Path(store_dir).glob("*.json")):
        r = json.loads(path.read_text())
        c, m = r["config"], r["metrics"]
        epochs = r.get("epochs_trained") or c["epochs"]
        per_epoch.setdefault((c["model"], c["weight_sharing"]), []).append(m["train_seconds"] / epochs)
        evaluation.setdefault(c["model"], []).append(m["wall_seconds"] - m["train_seconds"])
    costs = {"median": {k: statistics.median(v) for k, v in per_epoch.items()},
             "fastest": {k: min(v) for k, v in per_epoch.items()}}
    return costs, {k: statistics.median(v) for k, v in evaluation.items()}


def estimates(store_dir, notebook_seconds: float = 7.0) -> dict:
    """The paper and quick profiles' cost on 2 and 8 workers, from a store's per-epoch costs."""
    costs, evaluation = record_costs(store_dir)
    if not costs["median"]:
        raise ValueError(f"no records in {store_dir}")
    out = {"per_epoch_seconds": {label: {f"{m}/ws{int(ws)}": v for (m, ws), v in c.items()}
                                 for label, c in costs.items()},
           "evaluation_seconds": evaluation, "notebook_seconds": notebook_seconds}
    for label, c in costs.items():
        for profile in ("paper", "quick"):
            for workers in (2, 8):
                out[f"{profile}/{label}/{workers}"] = profile_estimate(c, evaluation, notebook_seconds, workers,
                                                                       profile)
    return out


def study(parts, rounds: int = 4, progress=print) -> dict:
    """The ablations of docs/performance.md, on one thread unless a part says otherwise."""
    dev = torch.device("cpu")
    torch.set_num_threads(1)
    split = synthetic_split(1000, dev)
    out = {"machine": machine_info(dev)}
    models = list(MODEL_NAMES)
    if "layout" in parts:  # channels-last, host sync, Adam flavours, one forward over both images
        out["layout"] = {}
        for name in models:
            out["layout"][name] = compare(name, {
                "library": {}, "nchw": dict(channels_last=False), "sync": dict(sync=True),
                "adam_single": dict(adam="single"), "adam_fused": dict(adam="fused"),
                "two_call": dict(two_call=True), "inplace_relu": dict(inplace_relu=True)}, split, dev, rounds)
            progress(f"layout {name}: " + ", ".join(f"{k} {v['cpu_ratio']:.2f}" for k, v in out["layout"][name].items()))
    if "bitwise" in parts:
        out["bitwise"] = {}
        for name in models:
            config = RunConfig(model=name, lr=PAPER_LRS[name], nb_pairs=len(split), epochs=1)
            out["bitwise"][name] = same_parameters(config, split, dev, 2, library={}, adam_fused=dict(adam="fused"),
                                                   adam_single=dict(adam="single"), sync=dict(sync=True),
                                                   inplace_relu=dict(inplace_relu=True))
            progress(f"bitwise {name}: {out['bitwise'][name]}")
    if "threads" in parts and os.cpu_count() > 1:
        n = os.cpu_count()
        out["threads"] = {}
        for name in ("LeNet5", "ResNet"):
            out["threads"][name] = compare(name, {"1": {}, str(n): {}}, split, dev, rounds,
                                           threads={"1": 1, str(n): n})
            progress(f"threads {name}: {out['threads'][name]}")
        out["threads"]["matmul"] = {str(t): matmul_gflops(512, dev, t) for t in (1, n)}
    if "eval" in parts:
        out["eval"] = evaluation_modes(dev, rounds)
        progress(f"eval: {out['eval']}")
    if "bf16" in parts:
        out["bf16_speed"] = {name: compare(name, {"float32": {}, "bfloat16": dict(bf16=True)}, split, dev, rounds)
                             for name in ("LeNet5", "ResNet")}
        progress(f"bf16 speed: {out['bf16_speed']}")
        out["bf16_error"] = bf16_errors()
        progress(f"bf16 error: {out['bf16_error']}")
    if "malloc" in parts:
        out["malloc"] = malloc_effect(repeats=rounds)
        progress(f"malloc: {out['malloc']}")
    if "estimate" in parts:
        out["estimate"] = estimates(ROOT / "runs" / "paper" / "store")
        for key, e in out["estimate"].items():
            if "/" in key:
                progress(f"estimate {key}: " + "; ".join(
                    f"{part} {e[part]['core_seconds']:.0f} core-s, {e[part]['wall_in_order']:.0f} s in order, "
                    f"{e[part]['wall_longest_first']:.0f} s longest first" for part in ("all", "corrected_only")))
    if "compile" in parts:
        out["compile"] = [compile_cost(name, split, dev, rounds) for name in ("ResNet", "LeNet5")]
        progress(f"compile: {out['compile']}")
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def study_main(argv=None) -> int:
    import argparse
    parts = ("layout", "bitwise", "threads", "eval", "bf16", "malloc", "estimate", "compile")
    p = argparse.ArgumentParser(prog="python -m siamese_lib.bench study", description="ablations for docs/performance.md")
    p.add_argument("parts", nargs="*", help=f"any of {', '.join(parts)} (default: all)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--out", default=str(ROOT / "bench" / "study.json"))
    args = p.parse_args(argv)
    unknown = [x for x in args.parts if x not in parts]
    if unknown:
        p.error(f"unknown parts {unknown}; allowed: {', '.join(parts)}")
    args.parts = args.parts or list(parts)
    result = study(args.parts, rounds=args.rounds, progress=lambda s: print(s, flush=True))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


# --- a whole profile, by phase ----------------------------------------------------------------

def check_profile(name: str):
    """The profile, or a usage error before any timing starts."""
    from .cli import UsageError
    from .profiles import ProfileError, load_profile
    try:
        profile = load_profile(name)
    except ProfileError as exc:
        raise UsageError(f"bench: {exc}") from None
    if not (ROOT / "siamese_lib" / "runner.py").is_file():
        raise UsageError("bench: --profile needs siamese_lib/runner.py, which is not present")
    return profile


def run_profile(name: str, device: str) -> dict:
    """Run a profile end to end into a temporary runs folder; split its wall time by phase."""
    from .data import generate_pair_sets
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
    from .profiles import TRAINING_STAGES
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
    from .cli import UsageError
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
    write_json(out, result)  # kept even if the profile run below fails or is cut short
    if args.profile:
        print(f"running profile {args.profile} end to end on {dev.type} (a temporary runs folder)", flush=True)
        try:
            result["profile"] = dict(name=args.profile, **run_profile(args.profile, dev.type))
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(format_profile(result["profile"]))
        write_json(out, result)
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


if __name__ == "__main__":
    if sys.argv[1:2] == ["study"]:
        sys.exit(study_main(sys.argv[2:]))
    if sys.argv[1:2] == ["_probe"] and len(sys.argv) == 4:  # a child of malloc_effect
        print(json.dumps(probe_steps(sys.argv[2], int(sys.argv[3]))))
        sys.exit(0)
    if sys.argv[1:] == ["_hash"]:
        print(probe_record_hash())
        sys.exit(0)
    print("usage: python -m siamese_lib bench [--smoke] ...; python -m siamese_lib.bench study [PART ...]",
          file=sys.stderr)
    sys.exit(2)
