"""The GPU check (`make gpu-check`): one command, within a time budget (default 9 minutes), on a machine with a GPU.

1. portable numerics: a few short runs trained in ``numerics: portable`` on this machine's CPU (a fresh
   process) and compared bit for bit with tests/fixtures/portable_bits.json, made on another machine; bit
   equality is demanded when the two machines' numerics signatures match (machine.must_be_identical), else
   the comparison is reported.
2. seeds one by one against seeds together on cuda, at the paper's sizes (benchmarks/batched_seeds.py).
3. the paper profile on cuda, as much of it as the time left allows (the runner under ``timeout``, into a
   temporary runs and report folder): runs stored, runs per second.

    PYTHONPATH=. python benchmarks/gpu_check.py [--minutes 9] [--jobs 4] [--out DIR]
    PYTHONPATH=. python benchmarks/gpu_check.py portable [--write tests/fixtures/portable_bits.json]

Exit status: 0 when every part ran (the profile stopped by the budget is expected), 1 when a part failed or
the portable bits differ where they must be identical, 2 without a GPU (``portable`` needs none).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "portable_bits.json"
# Short runs that cover the paths: the paper's setting, the original protocol (two branch calls, batch norm
# in training mode at test, no auxiliary loss), a Conv1d head with dropout (random numbers while training).
# Net keeps the linear head the fixture was made with (the original protocol now runs the authors' conv head)
PORTABLE_RUNS = [
    dict(model="LeNet5"),
    dict(model="Net", protocol="original", aux_loss=False, head="linear"),
    dict(model="LeNet5_FullyConv", dropout=True),
]
PORTABLE_SIZE = dict(nb_pairs=200, epochs=2, seed=1)


def portable_results() -> dict:
    """In a fresh process started with the portable environment: the runs' numbers and this machine."""
    from siamese_lib.machine import apply_numerics

    apply_numerics("portable")  # before torch computes anything
    import torch

    from siamese_lib.config import RunConfig
    from siamese_lib.machine import fingerprint
    from siamese_lib.training import train_run

    torch.set_num_threads(1)  # the fingerprint's thread count is the process's; the runs set 1 themselves
    runs = []
    for kw in PORTABLE_RUNS:
        config = RunConfig(**PORTABLE_SIZE, **kw)
        r = train_run(config, device="cpu", threads=1)
        runs.append(
            {
                "config": config.to_dict(),
                "train_loss": r["curves"]["train_loss"],
                "metrics": {k: v for k, v in r["metrics"].items() if not k.endswith("_seconds")},
                "outputs_sha256": hashlib.sha256(
                    json.dumps(r["outputs"], sort_keys=True).encode()
                ).hexdigest(),
            }
        )
    return {"machine": fingerprint("cpu"), "runs": runs}


def run_portable_child() -> dict:
    """portable_results() in a child process whose environment asks for portable numerics from the start."""
    from siamese_lib.machine import MODE_VAR, PORTABLE_ENV  # imports torch, runs nothing

    env = {
        **os.environ,
        **PORTABLE_ENV,
        MODE_VAR: "portable",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    proc = subprocess.run(
        [sys.executable, __file__, "portable-child"], env=env, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"portable runs failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def compare_portable(expected: dict, got: dict) -> dict:
    """Whether the runs are bit-identical to the fixture's, and whether they must be (same numerics signature)."""
    from siamese_lib.machine import NUMERICS_KEYS, must_be_identical

    a, b = expected["machine"], got["machine"]
    differing = [k for k in NUMERICS_KEYS if a.get(k) != b.get(k)]
    from siamese_lib.store import config_from_dict

    def same(e, g):  # a configuration written before a field existed reads as that field's old value
        numbers = ("train_loss", "metrics", "outputs_sha256")
        return config_from_dict(e["config"]) == config_from_dict(g["config"]) and all(
            e[k] == g[k] for k in numbers
        )

    runs = [
        {
            "model": e["config"]["model"],
            "identical": same(e, g),
            "test_error": (e["metrics"]["test_error"], g["metrics"]["test_error"]),
            "max_loss_difference": max(abs(x - y) for x, y in zip(e["train_loss"], g["train_loss"])),
        }
        for e, g in zip(expected["runs"], got["runs"])
    ]
    identical = len(expected["runs"]) == len(got["runs"]) and all(r["identical"] for r in runs)
    return {
        "must_be_identical": must_be_identical(a, b),
        "identical": identical,
        "runs": runs,
        "signature_differs_in": {k: (a.get(k), b.get(k)) for k in differing},
        "fixture_cpu": a.get("cpu_model"),
        "this_cpu": b.get("cpu_model"),
    }


def portable_part(fixture: Path) -> tuple[bool, dict]:
    result = compare_portable(json.loads(fixture.read_text()), run_portable_child())
    ok = result["identical"] or not result["must_be_identical"]
    verdict = ("bit-identical" if result["identical"] else "DIFFERENT") + (
        " (required: same numerics signature)"
        if result["must_be_identical"]
        else f" (not required: signature differs in {result['signature_differs_in']})"
    )
    print(
        f"portable numerics: {len(result['runs'])} runs on {result['this_cpu']} against {result['fixture_cpu']}: "
        f"{verdict}",
        flush=True,
    )
    return ok, result


def store_records(store: Path) -> list[dict]:
    out = []
    for path in sorted(store.glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
    return out


def planned_runs(profile: str, device: str) -> set:
    """The distinct runs the profile's notebooks ask for (the selection's final runs, planned after its choice,
    not among them): how much of the profile a stopped run covered."""
    from siamese_lib.experiments.planning import expand
    from siamese_lib.experiments.profiles import load_profile

    return {c for e in expand(load_profile(profile), tempfile.mkdtemp(), device) for c in e.configs()}


def profile_part(
    seconds: float, jobs: int, out: Path | None, profile="paper", device="cuda"
) -> tuple[bool, dict]:
    """The paper profile on cuda into a temporary folder, stopped after ``seconds``."""
    tmp = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    env = {
        **os.environ,
        "SIAMESE_LIB_RUNS_DIR": str(tmp / "runs"),
        "SIAMESE_LIB_REPORT_DIR": str(tmp / "report"),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    cmd = [
        "timeout",
        "--kill-after=60",
        str(int(seconds)),
        sys.executable,
        "-m",
        "siamese_lib",
        "run",
        "--profile",
        profile,
        "--device",
        device,
        "--allow-dirty",
        "--jobs",
        str(jobs),
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    records = store_records(tmp / "runs" / profile / "store")
    trained = sum(r.get("metrics", {}).get("train_seconds", 0) for r in records)
    planned = planned_runs(profile, device)
    done = sum(r.get("epochs_trained", r["config"]["epochs"]) * r["config"]["nb_pairs"] for r in records)
    total = sum(c.trained_epochs * c.nb_pairs for c in planned)
    result = {
        "command": " ".join(cmd),
        "exit": proc.returncode,
        "wall_s": wall,
        "runs_stored": len(records),
        "runs_planned": len(planned),
        "runs_per_s": len(records) / wall,
        "train_seconds_summed": trained,
        "epoch_pairs_done": done,
        "epoch_pairs_planned": total,
        "folder": str(tmp),
        "stderr_tail": proc.stderr[-3000:],
        "stdout_tail": proc.stdout[-3000:],
    }
    if out is not None:
        (out / "profile_stdout.txt").write_text(proc.stdout)
        (out / "profile_stderr.txt").write_text(proc.stderr)
    stopped = proc.returncode == 124
    estimate = (
        f"; the whole plan at this rate of epochs x pairs: about {wall * total / done / 60:.0f} min"
        if done and total
        else ""
    )
    print(
        f"{profile} profile on {device}, {jobs} workers: exit {proc.returncode}"
        f"{' (stopped by the budget)' if stopped else ''}, {wall:.0f} s wall, {len(records)} of {len(planned)} "
        f"planned runs stored ({result['runs_per_s']:.2f} runs/s, {trained:.0f} s of training summed over runs"
        f"{estimate}), folder {tmp}",
        flush=True,
    )
    if not stopped and proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
    return proc.returncode in (0, 124), result


def batched_part(
    seconds: float,
    out: Path | None,
    device="cuda",
    epochs=30,
    models=("LeNet5", "Net", "LeNet5_FullyConv", "ResNet"),
) -> tuple[bool, dict]:
    """Seeds one by one against together on cuda: 10 seeds, 1000 pairs, 30 epochs (the paper's Table I run)."""
    json_path = Path(tempfile.mkdtemp(prefix="gpu-check-batched-")) / "batched.json"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "batched_seeds.py"),
        "--device",
        device,
        "--epochs",
        str(epochs),
        "--reps",
        "1",
        "--models",
        *models,
        "--json",
        str(json_path),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, text=True, timeout=seconds)  # its table goes to stdout
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    print(f"batched seeds on {device}: exit {code}", flush=True)
    result = json.loads(json_path.read_text()) if json_path.exists() else {}
    if out is not None and result:
        (out / "batched.json").write_text(json.dumps(result, indent=1))
    return code == 0, result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", nargs="?", default="all", choices=("all", "portable", "portable-child"))
    p.add_argument("--minutes", type=float, default=9.0, help="the whole check's budget (default 9)")
    p.add_argument("--jobs", type=int, default=4, help="GPU workers for the profile (default 4)")
    p.add_argument("--out", type=Path, default=None, help="also write the results (JSON, logs) here")
    p.add_argument(
        "--write", type=Path, default=None, help="portable: write the fixture here instead of comparing"
    )
    args = p.parse_args(argv)
    if args.part == "portable-child":
        print(json.dumps(portable_results()))
        return 0
    if args.part == "portable":
        if args.write:
            args.write.parent.mkdir(parents=True, exist_ok=True)
            args.write.write_text(json.dumps(run_portable_child(), indent=1) + "\n")
            print(f"wrote {args.write}")
            return 0
        ok, result = portable_part(FIXTURE)
        print(json.dumps(result))
        return 0 if ok else 1
    import torch

    if not torch.cuda.is_available():
        print(
            "error: gpu-check needs a CUDA GPU and none is available here (torch.cuda.is_available() is False)",
            file=sys.stderr,
        )
        return 2
    start, budget = time.perf_counter(), args.minutes * 60
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"gpu-check: {torch.cuda.get_device_name()}, torch {torch.__version__}, budget {budget:.0f} s",
        flush=True,
    )
    summary, ok = {}, True
    part_ok, summary["portable"] = portable_part(FIXTURE)
    ok &= part_ok
    part_ok, summary["batched"] = batched_part(max(60.0, 0.35 * budget), args.out)
    ok &= part_ok
    left = (
        budget - (time.perf_counter() - start) - 45
    )  # the rest, less the runner's shutdown (SIGTERM: it stops
    # its workers and kernels, keeps the finished runs) and the summary
    if left > 30:
        part_ok, summary["profile"] = profile_part(left, args.jobs, args.out)
        ok &= part_ok
    else:
        print(f"paper profile on cuda: skipped, {left:.0f} s left of the budget", flush=True)
    summary["wall_s"] = time.perf_counter() - start
    if args.out is not None:
        (args.out / "gpu_check.json").write_text(json.dumps(summary, indent=1))
    print(f"gpu-check: {'ok' if ok else 'FAILED'}, {summary['wall_s']:.0f} s wall", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
