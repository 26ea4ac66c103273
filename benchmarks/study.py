"""The ablations written up in docs/performance.md: ``python -m benchmarks.study [PART ...]`` (none: all).

Each part changes one thing in the library's training step (layout, Adam flavour, host syncs, bf16,
torch.compile, threads, evaluation mode) and times it against the unchanged step, side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from siamese_lib.common import ROOT, write_json_atomically
from siamese_lib.config import PAPER_MODELS, RunConfig
from siamese_lib.experiments.profiles import PAPER_LRS
from siamese_lib.machine import torch_threads
from siamese_lib.models import build_model
from siamese_lib.training import Split, comparison_from_digits, make_model, mini_batches, train_run

from .bench import (
    BATCH_SIZE,
    alternate,
    machine_info,
    matmul_gflops,
    peak_rss_mb,
    synthetic_split,
)

PARTS = ("layout", "bitwise", "threads", "eval", "bf16", "compile")


def variant(
    config: RunConfig,
    split: Split,
    dev,
    channels_last=True,
    adam="foreach",
    sync=False,
    two_call=False,
    bf16=False,
    compile=False,
    inplace_relu=False,
):
    """The library step with one thing changed; returns a function that trains one block (epoch)."""
    torch.manual_seed(config.seed)
    model = build_model(
        config.model,
        config.weight_sharing,
        config.batch_norm,
        config.dropout,
        branch_calls=2 if two_call else 1,
    ).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if inplace_relu:
        for m in model.modules():
            if isinstance(m, torch.nn.ReLU):
                m.inplace = True
    kwargs = {"single": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}[adam]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, **kwargs)
    forward = torch.compile(model) if compile else model
    batches = mini_batches(split, config.batch_size)

    def run():
        total = torch.zeros((), device=dev)
        for xb, tb, cb in batches:
            with torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                d1, d2, c = forward(xb)
                loss = F.cross_entropy(c, tb) + (
                    F.cross_entropy(d1, cb[:, 0]) + F.cross_entropy(d2, cb[:, 1])
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if sync:
                loss.item()
            total += loss.detach()
        return total

    run.model = model
    return run


def compare(name: str, variants: dict, split: Split, dev, rounds: int, threads=None) -> dict:
    """ms per step (wall and CPU) of library-step variants trained side by side; ratios to the first."""
    config = RunConfig(model=name, lr=PAPER_LRS[name], nb_pairs=len(split), epochs=1)
    steps = math.ceil(len(split) / BATCH_SIZE)
    blocks = {label: variant(config, split, dev, **kw) for label, kw in variants.items()}
    if threads is not None:  # labels name their thread count: each block sets its own
        blocks = {label: _with_threads(fn, threads[label]) for label, fn in blocks.items()}
    res = alternate(blocks, rounds=rounds, warmup=1, dev=dev)
    base = next(iter(res.values()))
    return {
        label: {
            "wall_ms": 1e3 * r["wall"] / steps,
            "cpu_ms": 1e3 * r["cpu"] / steps,
            "wall_ratio": r["wall"] / base["wall"],
            "cpu_ratio": r["cpu"] / base["cpu"],
        }
        for label, r in res.items()
    }


def _with_threads(fn, n):
    def run():
        with torch_threads(n):
            return fn()

    return run


def same_parameters(config: RunConfig, split: Split, dev, blocks: int, **variants) -> dict:
    """Whether variants of the step give bit-identical parameters after a few blocks (vs the library step)."""
    runs = {label: variant(config, split, dev, **kw) for label, kw in variants.items()}
    for fn in runs.values():
        for _ in range(blocks):
            fn()
    ref = [p.detach().clone() for p in runs["library"].model.parameters()]
    return {
        label: all(torch.equal(a, b) for a, b in zip(ref, fn.model.parameters()))
        for label, fn in runs.items()
        if label != "library"
    }


def _eval_pass(model, split: Split, context, batch_size=1000):
    """training.predict's loop (corrected protocol) with the autograd context as a parameter."""
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
        model = make_model(RunConfig(model=name, lr=PAPER_LRS[name]), dev)
        modes = {"inference_mode": torch.inference_mode, "no_grad": torch.no_grad, "grad": torch.enable_grad}
        res = alternate(
            {k: (lambda m=m: _eval_pass(model, split, m)) for k, m in modes.items()},  # noqa: B023 (called in this iteration)
            rounds=rounds,
            warmup=1,
            dev=dev,
        )
        out[name] = {k: {"wall_ms": 1e3 * r["wall"], "cpu_ms": 1e3 * r["cpu"]} for k, r in res.items()}
    return out


def bf16_errors(models=("LeNet5", "Net"), seeds=(1, 2), epochs=10) -> list:
    """Test error of short real runs trained and evaluated under bfloat16 autocast vs float32."""
    out = []
    for name in models:
        for seed in seeds:
            config = RunConfig(model=name, lr=PAPER_LRS[name], seed=seed, epochs=epochs)
            row = {"model": name, "seed": seed, "epochs": epochs}
            for label in ("float32", "bfloat16"):
                t0 = time.perf_counter()
                # no cast cache: it would keep the first bf16 copy of each weight for the whole run
                with (
                    torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False)
                    if label == "bfloat16"
                    else contextlib.nullcontext()
                ):
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
    res = alternate(
        {"eager": variant(config, split, dev), "compiled": compiled}, rounds=rounds, warmup=1, dev=dev
    )
    return {
        "model": name,
        "first_block": first,
        **{k: {"wall_ms": 1e3 * r["wall"] / steps, "cpu_ms": 1e3 * r["cpu"] / steps} for k, r in res.items()},
    }


def study(parts, rounds: int = 4, progress=print) -> dict:
    """The ablations of docs/performance.md, on one thread unless a part says otherwise."""
    dev = torch.device("cpu")
    torch.set_num_threads(1)
    split = synthetic_split(1000, dev)
    out = {"machine": machine_info(dev)}
    if "layout" in parts:  # channels-last, host sync, Adam flavours, one forward over both images
        out["layout"] = {}
        for name in PAPER_MODELS:
            out["layout"][name] = compare(
                name,
                {
                    "library": {},
                    "nchw": dict(channels_last=False),
                    "sync": dict(sync=True),
                    "adam_single": dict(adam="single"),
                    "adam_fused": dict(adam="fused"),
                    "two_call": dict(two_call=True),
                    "inplace_relu": dict(inplace_relu=True),
                },
                split,
                dev,
                rounds,
            )
            progress(
                f"layout {name}: "
                + ", ".join(f"{k} {v['cpu_ratio']:.2f}" for k, v in out["layout"][name].items())
            )
    if "bitwise" in parts:
        out["bitwise"] = {}
        for name in PAPER_MODELS:
            config = RunConfig(model=name, lr=PAPER_LRS[name], nb_pairs=len(split), epochs=1)
            out["bitwise"][name] = same_parameters(
                config,
                split,
                dev,
                2,
                library={},
                adam_fused=dict(adam="fused"),
                adam_single=dict(adam="single"),
                sync=dict(sync=True),
                inplace_relu=dict(inplace_relu=True),
            )
            progress(f"bitwise {name}: {out['bitwise'][name]}")
    if "threads" in parts and os.cpu_count() > 1:
        n = os.cpu_count()
        out["threads"] = {}
        for name in ("LeNet5", "ResNet"):
            out["threads"][name] = compare(
                name, {"1": {}, str(n): {}}, split, dev, rounds, threads={"1": 1, str(n): n}
            )
            progress(f"threads {name}: {out['threads'][name]}")
        out["threads"]["matmul"] = {str(t): matmul_gflops(512, dev, t) for t in (1, n)}
    if "eval" in parts:
        out["eval"] = evaluation_modes(dev, rounds)
        progress(f"eval: {out['eval']}")
    if "bf16" in parts:
        out["bf16_speed"] = {
            name: compare(name, {"float32": {}, "bfloat16": dict(bf16=True)}, split, dev, rounds)
            for name in ("LeNet5", "ResNet")
        }
        progress(f"bf16 speed: {out['bf16_speed']}")
        out["bf16_error"] = bf16_errors()
        progress(f"bf16 error: {out['bf16_error']}")
    if "compile" in parts:
        out["compile"] = [compile_cost(name, split, dev, rounds) for name in ("ResNet", "LeNet5")]
        progress(f"compile: {out['compile']}")
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.study", description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"any of {', '.join(PARTS)} (none: all)")
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds per block")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "study.json", help="JSON output path")
    args = parser.parse_args(argv)
    if unknown := [p for p in args.parts if p not in PARTS]:
        parser.error(f"unknown part {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    result = study(args.parts or PARTS, rounds=args.rounds, progress=lambda s: print(s, flush=True))
    write_json_atomically(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
