"""The pipeline runner: ``python -m siamese_lib run --profile NAME``.

A profile expands into notebook executions (one per configuration). Up to ``--jobs`` run at once,
longest first; each gets a Jupyter kernel of its own (a failed kernel start is retried) with one
torch thread, so the numbers do not depend on ``--jobs``, and papermill executes the notebook
into ``runs/<profile>/<stage>/<name>.ipynb``. Papermill runs in threads of this process (importing
it costs seconds, once); the training happens in the kernels. Every training run lands in the
results store ``runs/<profile>/store/`` the moment it finishes, so an interrupted run resumes
where it stopped. ``runs/<profile>/timings.json`` records the wall time of the run and of each
notebook (summed over an interrupted run and its resumes).

Environment variables:
  SIAMESE_LIB_RUNS_DIR    where ``<profile>/`` goes (default: runs/ in the repository)
  SIAMESE_LIB_REPORT_DIR  where the rendered report goes (default: report/ in the repository)
  SIAMESE_LIB_KERNEL      the Jupyter kernel the notebooks run in (default: siamese-lib)

Exit status: 0 all done; 1 a notebook (or planning, or the report rendering) failed; 2 a usage
error, or another run of the same profile holds its lock (this run refuses rather than waits);
130 interrupted (Ctrl-C or SIGTERM: kernels are stopped, finished runs stay in the store).

"""
from __future__ import annotations
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import filelock

from ..common import NOTEBOOKS_DIR, ROOT, UsageError, inside, now_iso, report_root, runs_root, safe_name, write_json_atomically
from ..common import check_run_places  # issue 15
from ..experiments.planning import expand, run_cost
from ..machine import apply_numerics
from ..experiments.profiles import STAGES, TRAINING_STAGES, ProfileError, load_profile
from ..presentation.render import render_report
from ..store import run_key
from ..training import resolve_device
from .kernels import execute_job, first_line, kernel_name, signal_group

NOTEBOOK_SECONDS = 5.0  # kernel start + imports + data, per execution (an estimate for ordering/ETA)
PRESENTATION_SECONDS = {"figures": 20.0, "report": 40.0}
PRESENTATION_STAGES = ("figures", "report")


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# --- planning ------------------------------------------------------------------------

@dataclass
class Job:
    stage: str
    name: str                 # the execution's name, made safe for a file name
    parameters: dict
    output: Path
    configs: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    status: str = "pending"   # pending, running, ok, failed, cancelled, up-to-date
    error: str | None = None
    thread: threading.Thread | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    kernel_pid: int | None = None
    result: dict | None = None
    log: Path | None = None
    started: float = 0.0
    seconds: float = 0.0
    trained: int = 0
    cached: int = 0
    kernel_start_seconds: float | None = None
    notebook_seconds: float | None = None
    attempts: int = 0
    fingerprint: str = ""

    @property
    def label(self) -> str:
        return f"{self.stage}/{self.name}"


def describe(parameters: dict) -> str:
    skip = {"store_dir", "runs_dir", "profile_path", "device", "threads", "force", "nb_pairs", "data_seed",
            "batch_size"}
    return ", ".join(f"{k}={v}" for k, v in parameters.items() if k not in skip)


class Run:
    """One invocation of ``run``: the plan, the worker pool, the progress bar and timings.json."""

    def __init__(self, args, profile, stages, device):
        self.args, self.profile, self.stages, self.device = args, profile, stages, device
        self.jobs = args.jobs or default_jobs()
        self.force = bool(args.force)
        self.name = safe_name(profile.name)
        self.base = inside(runs_root() / self.name, runs_root())
        self.store_dir = self.base / "store"
        self.report_dir = inside(report_root() / self.name, report_root())
        self.notebooks_dir = NOTEBOOKS_DIR
        self.t0 = time.time()
        self.started = now_iso()
        self.all_jobs: list[Job] = []
        self.stage_span: dict[str, list[float]] = {}
        self.workdir = Path(tempfile.mkdtemp(prefix="siamese-run-"))
        self.bar = None
        self.total_cost = 0.0
        self.total_keys: set[str] = set()
        self.key_cost: dict[str, float] = {}
        self.stop = False  # set after a failure with --no-keep-going
        self.errors: list[str] = []  # failures outside notebooks (planning, rendering)
        self.old = self.load_old_timings()

    # -- store polling
    def key_done(self, key: str) -> bool:
        path = self.store_dir / f"{key}.json"
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return False
        return not self.force or mtime >= self.t0

    # -- plan
    def make_jobs(self, executions) -> list[Job]:
        jobs, used = [], {j.output for j in self.all_jobs}
        for ex in executions:
            params = dict(ex.parameters)
            if ex.stage in PRESENTATION_STAGES:
                params.update(runs_dir=str(self.base))
                if ex.stage == "report":
                    params.update(report_dir=str(self.report_dir))
            else:
                # --force: retrain what was written before this pass, so a shared run is trained only once
                params.update(threads=1, force=self.t0 if self.force else False)
            name = safe_name(ex.name)
            output = inside(self.base / ex.stage / f"{name}.ipynb", self.base)
            if output in used:  # two names that differ only in unsafe characters
                digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
                name = safe_name(f"{name[:100]}-{digest}")
                output = inside(self.base / ex.stage / f"{name}.ipynb", self.base)
            used.add(output)
            configs = ex.configs() if ex.stage not in PRESENTATION_STAGES else []
            job = Job(ex.stage, name, params, output, configs, [run_key(c, self.device) for c in configs])
            source = (self.notebooks_dir / f"{ex.stage}.ipynb").read_bytes()
            job.fingerprint = hashlib.sha256(source + json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
            jobs.append(job)
        return jobs

    def remaining_cost(self, job: Job) -> float:
        if job.stage in PRESENTATION_STAGES:
            return PRESENTATION_SECONDS[job.stage]
        return NOTEBOOK_SECONDS + sum(run_cost(c) for c, k in zip(job.configs, job.keys) if not self.key_done(k))

    def up_to_date(self, job: Job, previous: dict) -> bool:
        """A training notebook whose executed copy already shows every one of its runs: skip it."""
        if self.force or job.stage in PRESENTATION_STAGES or not job.output.exists():
            return False
        entry = previous.get((job.stage, job.name))
        if not entry or entry.get("status") != "ok" or entry.get("fingerprint") != job.fingerprint:
            return False
        nb_mtime = job.output.stat().st_mtime
        paths = [self.store_dir / f"{k}.json" for k in job.keys]
        return all(p.exists() and p.stat().st_mtime <= nb_mtime for p in paths)

    # -- executing
    def start(self, job: Job) -> None:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        job.log = self.workdir / f"job{self.all_jobs.index(job):04d}.log"  # names may hold dots: no suffix games
        job.cached = sum(self.key_done(k) for k in job.keys)
        job.started = time.time()
        job.thread = threading.Thread(target=execute_job, name=job.label, daemon=True,
                                      args=(job, self.notebooks_dir / f"{job.stage}.ipynb", kernel_name(),
                                            self.notebooks_dir, job.log))
        job.status = "running"
        span = self.stage_span.setdefault(job.stage, [job.started, job.started])
        span[0] = min(span[0], job.started)
        job.thread.start()

    def finish(self, job: Job) -> None:
        end = time.time()
        job.seconds = end - job.started
        span = self.stage_span[job.stage]
        span[1] = max(span[1], end)
        result = job.result or {"status": "failed", "error": "the notebook thread ended without a result"}
        job.kernel_start_seconds = result.get("kernel_start_seconds", job.kernel_start_seconds)
        job.attempts = result.get("attempts", job.attempts)
        job.notebook_seconds = notebook_duration(job.output)
        job.trained = sum(self.written_since(k, job.started) for k in job.keys)
        if result["status"] == "ok":
            job.cached = len(job.keys) - job.trained
        if job.cancel.is_set():
            job.status = "cancelled"
        elif result["status"] == "ok":
            job.status = "ok"
        else:
            job.status = "failed"
            job.error = result.get("error") or "unknown error"
            if job.log and job.log.exists() and job.log.stat().st_size:
                kept = job.output.with_suffix(".log")  # the kernel's own stderr, for a kernel that died
                shutil.copyfile(job.log, kept)

    def written_since(self, key: str, since: float) -> bool:
        try:
            return (self.store_dir / f"{key}.json").stat().st_mtime >= since - 0.01
        except FileNotFoundError:
            return False

    def terminate(self, running: list[Job]) -> None:
        """Stop running notebooks: interrupt their kernels (the current run stops without writing), then kill."""
        for job in running:
            job.cancel.set()
            if job.kernel_pid:
                signal_group(job.kernel_pid, signal.SIGINT)
        for sig, wait in ((signal.SIGINT, 5.0), (signal.SIGKILL, 10.0)):
            deadline = time.time() + wait
            for job in running:
                job.thread.join(timeout=max(0.0, deadline - time.time()))
            alive = [j for j in running if j.thread.is_alive()]
            if not alive:
                break
            for job in alive:
                if sig == signal.SIGINT and job.kernel_pid:  # a kernel between cells ignores SIGINT
                    signal_group(job.kernel_pid, signal.SIGKILL)
        for job in running:
            self.finish(job)

    def execute(self, jobs: list[Job], parallel: bool = True) -> None:
        pending = [j for j in jobs if j.status == "pending"]
        running: list[Job] = []
        width = self.jobs if parallel else 1
        try:
            while pending or running:
                while pending and len(running) < width and not self.stop:
                    job = self.pick(pending, running)
                    if job is None:
                        break
                    pending.remove(job)
                    self.start(job)
                    running.append(job)
                for job in [j for j in running if not j.thread.is_alive()]:
                    running.remove(job)
                    self.finish(job)
                    self.report_job(job)
                    if job.status == "failed" and not self.args.keep_going:
                        self.stop = True
                if self.stop:
                    for job in pending:
                        job.status = "cancelled"
                    pending = []
                self.update_bar()
                time.sleep(0.2)
        except BaseException:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the clean-up
            self.terminate(running)
            for job in pending:
                job.status = "cancelled"
            raise

    def pick(self, pending: list[Job], running: list[Job]) -> Job | None:
        """The longest pending job whose missing runs no running job is training right now."""
        busy = {k for j in running for k in j.keys if not self.key_done(k)}
        ranked = sorted(pending, key=self.remaining_cost, reverse=True)
        for job in ranked:
            if not busy.intersection(k for k in job.keys if not self.key_done(k)):
                return job
        return None if running else ranked[0]

    # -- progress and reporting
    def add_to_bar(self, jobs: list[Job]) -> None:
        """Count new jobs into the progress: cost in estimated seconds of what is still to do."""
        todo = [j for j in jobs if j.status == "pending"]
        self.total_cost += sum(self.remaining_cost(j) for j in todo)
        self.total_keys.update(k for j in todo for k in j.keys if not self.key_done(k))
        self.key_cost.update({k: run_cost(c) for j in todo for c, k in zip(j.configs, j.keys)})
        if self.bar is None and sys.stderr.isatty():  # a log gets one line per notebook instead
            from tqdm import tqdm
            self.bar = tqdm(total=1, unit="s", file=sys.stderr, smoothing=0, dynamic_ncols=True, leave=True,
                            bar_format="{desc}{percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")
            self.bar.set_description_str(f"{self.name} ")
        self.update_bar()

    def progress(self) -> tuple[float, int, int, int, int]:
        """(cost done, runs done, runs to do, notebooks finished, notebooks to run)."""
        finished = [j for j in self.all_jobs if j.status in ("ok", "failed", "cancelled")]
        done_keys = [k for k in self.total_keys if self.key_done(k)]
        done = sum(self.key_cost.get(k, 0.0) for k in done_keys)
        done += sum(PRESENTATION_SECONDS.get(j.stage, NOTEBOOK_SECONDS) for j in finished)
        notebooks = sum(j.status != "up-to-date" for j in self.all_jobs)
        return done, len(done_keys), len(self.total_keys), len(finished), notebooks

    def update_bar(self) -> None:
        if self.bar is None:
            return
        done, runs, runs_total, finished, notebooks = self.progress()
        failed = sum(j.status == "failed" for j in self.all_jobs)
        self.bar.total = max(1, round(self.total_cost))
        self.bar.n = min(round(done), self.bar.total)
        postfix = f"runs {runs}/{runs_total}, notebooks {finished}/{notebooks}" + (f", {failed} failed" if failed else "")
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.refresh()

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def rel(self, path: Path) -> str:
        try:
            return str(Path(path).resolve().relative_to(ROOT))
        except ValueError:
            return str(path)

    def where(self, job: Job) -> str:
        """Where to look for what went wrong."""
        try:
            written = job.output.stat().st_mtime >= job.started - 0.01
        except FileNotFoundError:
            written = False
        if written:
            return f"executed notebook with the traceback: {self.rel(job.output)}"
        log = job.output.with_suffix(".log")
        return "no notebook was executed" + (f" (kernel log: {self.rel(log)})" if log.exists() else "")

    def report_job(self, job: Job) -> None:
        done, runs, runs_total, finished, notebooks = self.progress()
        elapsed = time.time() - self.t0
        left = elapsed * max(0.0, self.total_cost - done) / done if done else None
        head = (f"[{finished}/{notebooks} notebooks, runs {runs}/{runs_total}, {_clock(elapsed)} elapsed"
                + (f", ~{_clock(left)} left]" if left is not None else "]"))
        if job.status == "failed":
            self.write(f"{head} FAILED {job.label} ({describe(job.parameters)}): {job.error}; {self.where(job)}")
        elif job.status == "ok":
            runs = f", {job.trained} trained, {job.cached} from the store" if job.keys else ""
            self.write(f"{head} ok {job.label} ({job.seconds:.1f} s{runs})")

    # -- timings.json
    def load_old_timings(self) -> dict:
        try:
            old = json.loads((self.base / "timings.json").read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return old if isinstance(old, dict) and old.get("profile") == self.profile.name else {}

    def previous_executions(self) -> dict:
        return {(e.get("stage"), e.get("name")): e for e in self.old.get("executions", []) if isinstance(e, dict)}

    def write_timings(self, status: str) -> None:
        """Merge this invocation into runs/<profile>/timings.json (earlier invocations: a run and its resumes)."""
        old, wall = self.old, time.time() - self.t0
        invocation = {"started": self.started, "finished": now_iso(), "seconds": round(wall, 2),
                      "status": status, "jobs": self.jobs, "device": self.device, "only": self.args.only,
                      "force": self.force}
        history = list(old.get("invocations", [])) + [invocation]
        latest = {s: round(b - a, 2) for s, (a, b) in self.stage_span.items()}
        compute = {}
        for j in self.all_jobs:
            if j.status not in ("pending", "up-to-date"):
                compute[j.stage] = compute.get(j.stage, 0.0) + j.seconds
        executions = self.previous_executions()
        for j in self.all_jobs:
            if j.status == "pending" or (j.status == "up-to-date" and (j.stage, j.name) in executions):
                continue
            executions[(j.stage, j.name)] = {
                "stage": j.stage, "name": j.name, "notebook": self.rel(j.output), "status": j.status,
                "seconds": round(j.seconds, 2), "runs": len(j.keys), "trained": j.trained, "cached": j.cached,
                "kernel_start_seconds": _round(j.kernel_start_seconds),
                "notebook_seconds": _round(j.notebook_seconds), "kernel_start_attempts": j.attempts,
                "error": j.error, "fingerprint": j.fingerprint}
        data = {
            "profile": self.profile.name, "jobs": self.jobs, "device": self.device,
            "started": history[0]["started"], "finished": invocation["finished"], "status": status,
            # wall seconds of the whole run: every invocation (an interrupted run and its resumes) adds up
            "total_seconds": round(sum(i.get("seconds", 0.0) for i in history), 2),
            "stages": _add(old.get("stages", {}), latest),                       # wall, summed over invocations
            "stage_compute_seconds": _add(old.get("stage_compute_seconds", {}), compute),  # summed worker seconds
            "latest": {"seconds": round(wall, 2), "stages": latest},             # this invocation only
            "invocations": history,
            "executions": sorted(executions.values(), key=lambda e: (_stage_order(e["stage"]), e["name"])),
        }
        write_json_atomically(self.base / "timings.json", data)

    def summary(self) -> str:
        jobs = self.all_jobs
        ok = [j for j in jobs if j.status == "ok"]
        cached_only = [j for j in ok if j.keys and j.trained == 0]
        failed = [j for j in jobs if j.status == "failed"]
        cancelled = [j for j in jobs if j.status == "cancelled"]
        fresh = [j for j in jobs if j.status == "up-to-date"]
        trained = sum(j.trained for j in jobs)
        cached = sum(j.cached for j in jobs if j.status in ("ok", "up-to-date"))
        wall = time.time() - self.t0
        lines = [f"{self.name}: {len(jobs)} notebooks: {len(ok)} ok ({len(cached_only)} cached only), "
                 f"{len(failed)} failed, {len(cancelled)} cancelled, {len(fresh)} already up to date; "
                 f"runs: {trained} trained, {cached} from the store; wall {wall:.1f} s with {self.jobs} job(s)"]
        ran = [j for j in jobs if j.status not in ("pending", "up-to-date") and j.seconds]
        starts = sum(j.kernel_start_seconds or 0.0 for j in ran)
        if ran:
            busy = sum(j.seconds for j in ran)
            lines.append(f"  kernel starts: {starts:.1f} s of {busy:.1f} s spent in notebooks ({100 * starts / busy:.0f} %)")
        for stage, (a, b) in self.stage_span.items():
            n = sum(j.stage == stage and j.status not in ("pending", "up-to-date") for j in jobs)
            lines.append(f"  {stage:<11} {b - a:8.1f} s wall  ({n} notebooks)")
        for j in failed:
            lines.append(f"  failed: {j.label} ({describe(j.parameters)}): {j.error}; {self.where(j)}")
        for error in self.errors:
            lines.append(f"  failed: {error}")
        lines.append(f"  results store: {self.rel(self.store_dir)}; executed notebooks: {self.rel(self.base)}/<stage>/")
        return "\n".join(lines)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def _round(x):
    return None if x is None else round(x, 2)


def _stage_order(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def _add(a: dict, b: dict) -> dict:
    keys = sorted(set(a) | set(b), key=_stage_order)
    return {k: round(float(a.get(k, 0.0)) + float(b.get(k, 0.0)), 2) for k in keys}


def notebook_duration(path: Path) -> float | None:
    try:
        meta = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
    except (OSError, json.JSONDecodeError):
        return None
    return meta.get("duration")


# --- the command -------------------------------------------------------------------

def parse_only(text, usage_error):
    if text is None:
        return list(STAGES)
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        raise usage_error(f"run: --only {text!r}: unknown stage {', '.join(map(repr, unknown)) or '(none given)'}; "
                          f"allowed: {', '.join(STAGES)}")
    return [s for s in STAGES if s in names]


class Lock:
    """One run per profile at a time: a non-blocking file lock (filelock), and the holder's pid beside it."""

    def __init__(self, path: Path):
        self.path = path
        self.pid_path = path.with_name(path.name + ".pid")
        self.lock = filelock.FileLock(str(path), timeout=0)

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.lock.acquire()
        except filelock.Timeout:
            return False
        self.pid_path.write_text(f"{os.getpid()}\n")
        return True

    def holder(self) -> str:
        try:
            return self.pid_path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self.lock.is_locked:
            self.pid_path.unlink(missing_ok=True)
            self.lock.release()


def main(args) -> int:

    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        raise UsageError(str(exc)) from None
    wanted = parse_only(args.only, UsageError)
    # issue 15: the folders this run writes are usable (else one line, exit 2), checked before anything runs
    check_run_places(profile.name, with_report="report" in wanted and "report" in profile.stages)
    try:
        device = resolve_device(args.device).type
    except ValueError as exc:
        raise UsageError(f"run: {exc}") from None
    stages = [s for s in wanted if s in profile.stages]
    if not stages:
        raise UsageError(f"run: profile {profile.name!r} has none of the stages asked for ({', '.join(wanted)}); "
                         f"it has: {', '.join(profile.stages)}")
    for stage in stages:
        if not (NOTEBOOKS_DIR / f"{stage}.ipynb").is_file():
            raise UsageError(f"run: notebook notebooks/{stage}.ipynb is missing (the {stage!r} stage runs it); "
                             f"skip the stage with --only")

    logging.getLogger("papermill").setLevel(logging.ERROR)  # its per-notebook chatter would break the progress bar
    apply_numerics(profile.settings["numerics"])  # the kernels and workers inherit it (machine.py)
    run = Run(args, profile, stages, device)
    lock = Lock(run.base / ".lock")
    if not lock.acquire():
        shutil.rmtree(run.workdir, ignore_errors=True)
        raise UsageError(f"run: another run of profile {profile.name!r} is in progress "
                         f"(lock {run.rel(lock.path)} held by pid {lock.holder()}); wait for it to finish")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old_term, old_int = signal.signal(signal.SIGTERM, on_term), signal.getsignal(signal.SIGINT)
    try:
        try:
            shutil.copyfile(profile.path, run.base / "profile.yaml")  # what this run was asked to do
        except shutil.SameFileError:
            pass
        plan(run, expand)
        if run.bar is not None:
            run.update_bar()
            run.bar.n = run.bar.total  # everything that will run has run
            run.bar.refresh()
            run.bar.close()
        failed = any(j.status in ("failed", "cancelled") for j in run.all_jobs) or run.errors
        run.write_timings("failed" if failed else "ok")
        print(run.summary(), file=sys.stderr)
        return 1 if failed else 0
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if run.bar is not None:
            run.bar.close()
        for job in run.all_jobs:
            if job.status in ("pending", "running"):
                job.status = "cancelled"
        run.write_timings("interrupted")
        print(run.summary(), file=sys.stderr)
        print("interrupted: kernels stopped; finished runs are kept in the store; rerun the same command to "
              "resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        lock.release()
        shutil.rmtree(run.workdir, ignore_errors=True)


def plan(run: Run, expand) -> None:
    """Training stages first (longest notebooks first across them), then figures, then the report."""
    previous = run.previous_executions()
    training = [s for s in run.stages if s in TRAINING_STAGES]
    # With learning_rates: auto the later stages' rates come from this LR search: expand them after it.
    phases = [training]
    if run.profile.settings["learning_rates"] == "auto" and "lr_search" in training and len(training) > 1:
        phases = [["lr_search"], [s for s in training if s != "lr_search"]]
    if "selection" in training:  # the choice's fresh-seed runs are planned once its candidates are stored
        phases.append(["selection"])
    for phase in phases:
        if not phase or run.stop:
            continue
        try:
            executions = expand(run.profile, str(run.store_dir), run.device, stages=phase)
        except Exception as exc:  # e.g. auto learning rates while LR-search results are missing
            run.errors.append(f"planning {', '.join(phase)}: {type(exc).__name__}: {first_line(exc)}")
            run.write(f"FAILED {run.errors[-1]}")
            continue
        done = {(j.stage, j.name) for j in run.all_jobs}  # a stage expanded again runs only what is new
        jobs = run.make_jobs([e for e in executions if (e.stage, safe_name(e.name)) not in done])
        for job in jobs:
            if run.up_to_date(job, previous):
                job.status, job.cached = "up-to-date", len(job.keys)
        fresh = sum(j.status == "up-to-date" for j in jobs)
        if fresh:
            run.write(f"{fresh} of {len(jobs)} notebooks ({', '.join(phase)}) are up to date (executed after all "
                      f"their runs were stored, same notebook and parameters): not executed again")
        run.all_jobs += jobs
        run.add_to_bar(jobs)
        run.execute(jobs)
    presentation = [s for s in run.stages if s in PRESENTATION_STAGES]
    if not presentation or run.stop:
        return
    run.write_timings("running")  # the report notebook reads the training stages' times
    jobs = run.make_jobs(expand(run.profile, str(run.store_dir), run.device, stages=presentation))
    run.all_jobs += jobs
    run.add_to_bar(jobs)
    for job in jobs:  # figures, then the report (which may use what figures wrote)
        if run.stop:
            job.status = "cancelled"
            continue
        run.execute([job], parallel=False)
        if job.stage == "report" and job.status == "ok":
            render(run, job)


def render(run: Run, job: Job) -> None:
    """Render the executed report notebook to report/<profile>/ (HTML and PDF)."""
    start = time.time()
    out_dir = run.report_dir
    try:
        render_report(job.output, out_dir=out_dir)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        run.errors.append(f"rendering {run.rel(job.output)} into {run.rel(out_dir)}: "
                          f"{type(exc).__name__}: {first_line(exc)}")
        run.write(f"FAILED {run.errors[-1]}")
    finally:
        run.stage_span["report"][1] = time.time()
        job.seconds += time.time() - start
