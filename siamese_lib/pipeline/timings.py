"""One invocation's state and its one clock: the progress lines, ``runs/<profile>/timings.json`` (wall times
summed over a run and its resumes) and the summary."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

from ..common import (
    ROOT,
    TEMPLATE_DIR,
    inside,
    now_iso,
    report_root,
    runs_root,
    safe_name,
    write_json_atomically,
)
from ..experiments.profiles import STAGES
from ..machine import cpu_model
from ..store import code_version
from .engine import Engine, scheduler_address
from .notebooks import PRESENTATION_STAGES, Executor, Job, describe, first_line

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def presentation_state(store_dir: Path, also=()) -> str:
    """A digest of what the presentation notebooks read: the store's records (names, sizes, times), the files
    in ``also`` (the verification's result), the package's source and templates, and the code version the
    report stamps (pyproject.toml, params/ and notebooks/ count there too)."""
    h = hashlib.sha256((_package_digest() + code_version()).encode())
    for path in [*sorted(Path(store_dir).glob("[!.]*.json")), *also]:
        if path.exists():  # names, not paths: a moved folder is the same
            h.update(f"{path.name} {path.stat().st_size} {path.stat().st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _package_digest() -> str:
    h = hashlib.sha256()
    for base, pattern in ((PACKAGE_DIR, "*.py"), (TEMPLATE_DIR, "*")):
        for path in sorted(p for p in base.rglob(pattern) if p.is_file()):
            h.update(path.relative_to(base).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def up_to_date(job: Job, previous: dict, store_dir: Path) -> bool:
    """Executed before with the same notebook and parameters, and nothing it reads has changed since."""
    entry = previous.get((job.stage, job.name)) or {}
    if not job.output.exists() or entry.get("status") != "ok" or entry.get("fingerprint") != job.fingerprint:
        return False
    paths, mtime = [store_dir / f"{k}.json" for k in job.keys], job.output.stat().st_mtime
    return all(p.exists() and p.stat().st_mtime <= mtime for p in paths)


class Run:
    """One invocation: the plan's jobs, the engine, the notebooks' executor and the progress."""

    def __init__(self, args, profile, stages, device, notebooks_dir: Path):
        self.args, self.profile, self.stages, self.device = args, profile, stages, device
        # from a record nothing trains and a notebook waits on its kernel part of the time: one more than the
        # cores (the paper's render on 2 cores: 128-139 s, against 146-176 s with one per core)
        self.jobs = args.jobs or len(os.sched_getaffinity(0)) + bool(getattr(args, "from_record", False))
        self.notebooks_dir, self.force, self.name = notebooks_dir, bool(args.force), safe_name(profile.name)
        self.base = inside(runs_root() / self.name, runs_root())
        self.store_dir = self.base / "store"
        self.report_dir = inside(report_root() / self.name, report_root())
        self.t0, self.started = time.time(), now_iso()
        self.all_jobs: list[Job] = []
        self.total = 0  # the notebooks of this invocation, counted before the first runs (notebook_count)
        self.unneeded = 0  # counted in the total, then not planned (a selection's finals): counted as done
        self.first_notebook = None  # when the first notebook started: the time left is paced from it
        self.stage_span: dict[str, list[float]] = {}
        self.errors: list[str] = []  # failures outside notebooks (planning, the cluster, rendering)
        self.trained: set[str] = set()  # keys trained by this invocation
        self.force_since = self.t0  # --force: runs stored before it are retrained (runner.main)
        self.failed_runs: dict[str, str] = {}
        try:
            old = json.loads((self.base / "timings.json").read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        self.old = old if isinstance(old, dict) and old.get("profile") == profile.name else {}
        self.previous = previous_executions(self.old)  # (stage, name) -> its last execution: up to date?
        self.used: set = set()  # the executed notebooks' paths: two executions never share one
        self.scheduler = scheduler_address(getattr(args, "scheduler", None))
        timeout = getattr(args, "run_timeout", None)
        self.engine = Engine(self.scheduler, self.jobs, device, log=self.write, run_timeout=timeout)
        self.executor = Executor(notebooks_dir, self.store_dir, self.finished, args.keep_going, self.jobs)
        self.bar = None  # the runs' progress bar, on a terminal

    def key_done(self, key: str) -> bool:
        """Stored, and with --force trained now or since the forced run began."""
        path = self.store_dir / f"{key}.json"
        if not path.exists():
            return False
        return not self.force or key in self.trained or path.stat().st_mtime >= self.force_since

    def span(self, stage: str, start: float, end: float) -> None:
        a, b = self.stage_span.setdefault(stage, [start, end])
        self.stage_span[stage] = [min(a, start), max(b, end)]

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def fail(self, error: str) -> None:
        self.errors.append(error)
        self.write(f"FAILED {error}")

    def rel(self, path: Path) -> str:
        try:
            return str(Path(path).resolve().relative_to(ROOT))
        except ValueError:
            return str(path)

    def failure(self, job: Job) -> str:
        """A failed job, why, and where to look for what went wrong."""
        try:
            written = job.started and job.output.stat().st_mtime >= job.started - 0.01
        except FileNotFoundError:
            written = False
        log = f" (kernel log: {self.rel(job.log)})" if job.log.exists() else ""
        where = f"executed notebook with the traceback: {self.rel(job.output)}" if written else ""
        where = where or f"no notebook was executed{log}"
        return f"{job.label} ({describe(job.parameters)}): {job.error}; {where}"

    def submit(self, job: Job) -> None:
        failed = [k for k in job.keys if k in self.failed_runs]
        if failed:
            job.status = "failed"
            job.error = (
                f"{len(failed)} of its runs failed on the cluster (e.g. {failed[0]}: "
                f"{first_line(self.failed_runs[failed[0]])}); the notebook was not executed"
            )
            self.finished(job)
        else:
            self.executor.submit(job)

    def finished(self, job: Job) -> None:
        """One line per finished notebook: done of the invocation's total (up-to-date ones count as done), the
        time since the invocation started and the time left at the pace of the notebooks so far."""
        if job.started:
            self.span(job.stage, job.started, job.started + job.seconds)
        now, ended = time.time(), ("ok", "failed", "cancelled")
        finished = sum(j.status in (*ended, "up-to-date") for j in self.all_jobs) + self.unneeded
        total = max(self.total, len(self.all_jobs), finished)
        self.first_notebook = self.first_notebook or job.started or now
        pace = (now - self.first_notebook) / max(sum(j.status in ended for j in self.all_jobs), 1)
        head = f"[{finished}/{total} notebooks, {clock(now - self.t0)} elapsed, about "
        head += f"{clock(pace * (total - finished))} left]"
        ok = f"ok {job.label} ({job.seconds:.1f} s)"
        self.write(f"{head} {f'FAILED {self.failure(job)}' if job.status == 'failed' else ok}")


def clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _stage_order(stage: str) -> int:
    # the engine's "training" span comes before the notebooks that read its runs
    return -1 if stage == "training" else STAGES.index(stage) if stage in STAGES else len(STAGES)


def _add(a: dict, b: dict) -> dict:
    keys = sorted(set(a) | set(b), key=_stage_order)
    return {k: round(float(a.get(k, 0.0)) + float(b.get(k, 0.0)), 2) for k in keys}


def previous_executions(old: dict) -> dict:
    return {(e.get("stage"), e.get("name")): e for e in old.get("executions", []) if isinstance(e, dict)}


def write_timings(run, status: str) -> None:
    """Merge this invocation into runs/<profile>/timings.json (earlier invocations: a run and its resumes)."""
    counted = set()  # per training job its runs trained now; a run that jobs share counts in the first
    for job in (j for j in run.all_jobs if j.stage not in PRESENTATION_STAGES):
        job.trained = sum(k in run.trained and k not in counted for k in job.keys)
        counted.update(job.keys)
        job.cached = len(job.keys) - job.trained if job.status in ("ok", "up-to-date") else 0
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
    compute = Counter()
    for j in (j for j in run.all_jobs if j.status not in ("pending", "up-to-date")):
        compute[j.stage] += j.seconds
    executions = previous_executions(old)
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
            "kernel_start_seconds": j.kernel_start_seconds and round(j.kernel_start_seconds, 2),
            "notebook_seconds": j.notebook_seconds and round(j.notebook_seconds, 2),
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
        "stage_compute_seconds": _add(old.get("stage_compute_seconds", {}), compute),  # notebook seconds
        "latest": {"seconds": round(wall, 2), "stages": latest},  # this invocation only
        "invocations": history,
        "executions": sorted(executions.values(), key=lambda e: (_stage_order(e["stage"]), e["name"])),
    }
    write_json_atomically(run.base / "timings.json", data)


def summary(run) -> str:
    jobs, n = run.all_jobs, Counter(j.status for j in run.all_jobs)
    keys = {k for j in jobs for k in j.keys}
    trained = sum(j.trained for j in jobs)
    cached = sum(j.cached for j in jobs if j.status in ("ok", "up-to-date"))
    where, wall = run.scheduler or f"{run.jobs} local worker(s)", time.time() - run.t0
    lines = [
        f"{run.name}: {len(jobs)} notebooks: {n['ok']} ok, {n['failed']} failed, {n['cancelled']} cancelled, "
        f"{n['up-to-date']} already up to date; runs: {trained} trained, {cached} from the store "
        f"({len(keys)} distinct, {len(run.failed_runs)} failed); wall {wall:.1f} s with {where}"
    ]
    ran = [j for j in jobs if j.status not in ("pending", "up-to-date") and j.seconds]
    starts, busy = sum(j.kernel_start_seconds or 0.0 for j in ran), sum(j.seconds for j in ran)
    if ran:
        share = f"{starts:.1f} s of {busy:.1f} s spent in notebooks ({100 * starts / busy:.0f} %)"
        lines.append(f"  kernel starts: {share}")
    for stage, (a, b) in sorted(run.stage_span.items(), key=lambda kv: _stage_order(kv[0])):
        count = sum(j.stage == stage and j.status not in ("pending", "up-to-date") for j in jobs)
        what = f"({len(run.trained)} runs)" if stage == "training" else f"({count} notebooks)"
        lines.append(f"  {stage:<12} {b - a:8.1f} s wall  {what}")
    for j in (j for j in jobs if j.status == "failed"):
        lines.append(f"  failed: {run.failure(j)}")
    lines += [f"  failed: {error}" for error in run.errors]
    notebooks = f"executed notebooks: {run.rel(run.base)}/<stage>/"
    lines.append(f"  results store: {run.rel(run.store_dir)}; {notebooks}")
    from .publishing import report_lines  # pandas: only for the summary's last lines

    lines += report_lines(run.report_dir, run.t0, run.rel)  # the report files and the headline cell
    return "\n".join(lines)
