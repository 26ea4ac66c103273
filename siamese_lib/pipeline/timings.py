"""``runs/<profile>/timings.json`` and the final summary of a run: wall times per stage and per notebook,
summed over an interrupted run and its resumes."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from ..common import now_iso, write_json_atomically
from ..experiments.profiles import STAGES
from ..machine import cpu_model
from .notebooks import describe


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


def _round(x):
    return None if x is None else round(x, 2)


def _stage_order(stage: str) -> int:
    # the engine's "training" span comes before the notebooks that read its runs
    return -1 if stage == "training" else STAGES.index(stage) if stage in STAGES else len(STAGES)


def _add(a: dict, b: dict) -> dict:
    keys = sorted(set(a) | set(b), key=_stage_order)
    return {k: round(float(a.get(k, 0.0)) + float(b.get(k, 0.0)), 2) for k in keys}


def load_old_timings(base: Path, profile_name: str) -> dict:
    try:
        old = json.loads((base / "timings.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return old if isinstance(old, dict) and old.get("profile") == profile_name else {}


def write_timings(run, status: str) -> None:
    """Merge this invocation into runs/<profile>/timings.json (earlier invocations: a run and its resumes)."""
    old, wall = run.old, time.time() - run.t0
    invocation = {
        "started": run.started,
        "finished": now_iso(),
        "seconds": round(wall, 2),
        "status": status,
        "jobs": run.jobs,
        "device": run.device,
        "only": run.args.only,
        "force": run.force,
        "scheduler": run.scheduler,
        "trained": len(run.trained),
        # where it ran: a run resumed in another session may be on another machine
        "host": platform.node(),
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
    }
    history = list(old.get("invocations", [])) + [invocation]
    latest = {s: round(b - a, 2) for s, (a, b) in run.stage_span.items()}
    compute = {}
    for j in run.all_jobs:
        if j.status not in ("pending", "up-to-date"):
            compute[j.stage] = compute.get(j.stage, 0.0) + j.seconds
    executions = {
        (e.get("stage"), e.get("name")): e for e in old.get("executions", []) if isinstance(e, dict)
    }
    for j in run.all_jobs:
        if j.status == "pending" or (j.status == "up-to-date" and (j.stage, j.name) in executions):
            continue
        executions[(j.stage, j.name)] = {
            "stage": j.stage,
            "name": j.name,
            "notebook": run.rel(j.output),
            "status": j.status,
            "seconds": round(j.seconds, 2),
            "runs": len(j.keys),
            "trained": j.trained,
            "cached": j.cached,
            "kernel_start_seconds": _round(j.kernel_start_seconds),
            "notebook_seconds": _round(j.notebook_seconds),
            "kernel_start_attempts": j.attempts,
            "error": j.error,
            "fingerprint": j.fingerprint,
        }
    data = {
        "profile": run.profile.name,
        "jobs": run.jobs,
        "device": run.device,
        "started": history[0]["started"],
        "finished": invocation["finished"],
        "status": status,
        # wall seconds of the whole run: every invocation (an interrupted run and its resumes) adds up
        "total_seconds": round(sum(i.get("seconds", 0.0) for i in history), 2),
        "stages": _add(old.get("stages", {}), latest),  # wall, summed over invocations
        "stage_compute_seconds": _add(
            old.get("stage_compute_seconds", {}), compute
        ),  # summed notebook seconds
        "latest": {"seconds": round(wall, 2), "stages": latest},  # this invocation only
        "invocations": history,
        "executions": sorted(executions.values(), key=lambda e: (_stage_order(e["stage"]), e["name"])),
    }
    write_json_atomically(run.base / "timings.json", data)


def summary(run) -> str:
    jobs = run.all_jobs
    ok = [j for j in jobs if j.status == "ok"]
    failed = [j for j in jobs if j.status == "failed"]
    cancelled = [j for j in jobs if j.status == "cancelled"]
    fresh = [j for j in jobs if j.status == "up-to-date"]
    keys = {k for j in jobs for k in j.keys}
    trained = sum(j.trained for j in jobs)
    cached = sum(j.cached for j in jobs if j.status in ("ok", "up-to-date"))
    wall = time.time() - run.t0
    where = run.scheduler or f"{run.jobs} local worker(s)"
    lines = [
        f"{run.name}: {len(jobs)} notebooks: {len(ok)} ok, {len(failed)} failed, {len(cancelled)} cancelled, "
        f"{len(fresh)} already up to date; runs: {trained} trained, {cached} from the store "
        f"({len(keys)} distinct, {len(run.failed_runs)} failed); wall {wall:.1f} s with {where}"
    ]
    ran = [j for j in jobs if j.status not in ("pending", "up-to-date") and j.seconds]
    starts = sum(j.kernel_start_seconds or 0.0 for j in ran)
    if ran:
        busy = sum(j.seconds for j in ran)
        lines.append(
            f"  kernel starts: {starts:.1f} s of {busy:.1f} s spent in notebooks ({100 * starts / busy:.0f} %)"
        )
    for stage, (a, b) in sorted(run.stage_span.items(), key=lambda kv: _stage_order(kv[0])):
        n = sum(j.stage == stage and j.status not in ("pending", "up-to-date") for j in jobs)
        what = f"({len(run.trained)} runs)" if stage == "training" else f"({n} notebooks)"
        lines.append(f"  {stage:<12} {b - a:8.1f} s wall  {what}")
    for j in failed:
        lines.append(f"  failed: {j.label} ({describe(j.parameters)}): {j.error}; {run.where(j)}")
    for error in run.errors:
        lines.append(f"  failed: {error}")
    lines.append(
        f"  results store: {run.rel(run.store_dir)}; executed notebooks: {run.rel(run.base)}/<stage>/"
    )
    from .published import report_lines  # pandas: only for the summary's last lines

    lines += report_lines(run.report_dir, run.t0, run.rel)  # the report files and the headline cell
    return "\n".join(lines)
