"""The notebook executions of a run: planned from the profile, executed by papermill (each in a kernel of
its own, up to ``--jobs`` at once). An execution succeeds when papermill says so and every run the plan names
for it is in the store afterwards; a notebook without a cell tagged 'parameters' is not executed (it would
run on its own defaults)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..common import TEMPLATE_DIR, inside, safe_name
from ..experiments.profiles import notebook_name
from ..store import run_key
from .kernels import execute_job, kernel_name, signal_group

PRESENTATION_STAGES = ("figures", "report")
PACKAGE_DIR = Path(__file__).resolve().parent.parent
HIDDEN_PARAMETERS = {
    "store_dir",
    "runs_dir",
    "profile_path",
    "device",
    "threads",
    "force",
    "nb_pairs",
    "data_seed",
    "batch_size",
    "scheduler",
}


@dataclass(eq=False)
class Job:
    """One notebook execution and what became of it."""

    stage: str
    name: str  # the execution's name, made safe for a file name
    parameters: dict
    output: Path
    configs: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    status: str = "pending"  # pending, running, ok, failed, cancelled, up-to-date
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    kernel_pid: int | None = None
    result: dict | None = None
    log: Path | None = None
    started: float = 0.0
    seconds: float = 0.0
    trained: int = 0  # runs of this execution trained by this invocation (a shared run counts once)
    cached: int = 0
    kernel_start_seconds: float | None = None
    notebook_seconds: float | None = None
    attempts: int = 0
    fingerprint: str = ""
    waiting: set = field(default_factory=set)  # its runs still being trained

    @property
    def label(self) -> str:
        return f"{self.stage}/{self.name}"


def describe(parameters: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in parameters.items() if k not in HIDDEN_PARAMETERS)


def make_jobs(executions, base: Path, device: str, notebooks_dir: Path, used: set, extra: dict) -> list[Job]:
    """Jobs of the executions; ``extra`` adds parameters to the presentation stages (runs_dir, report_dir)."""
    jobs = []
    for ex in executions:
        params = dict(ex.parameters)
        if ex.stage in PRESENTATION_STAGES:
            params.update({k: v for k, v in extra.items() if k != "report_dir" or ex.stage == "report"})
        else:
            params.update(threads=1, force=False)  # the runs are in the store before the notebook starts
        name = safe_name(ex.name)
        output = inside(base / ex.stage / f"{name}.ipynb", base)
        if output in used:  # two names that differ only in unsafe characters
            digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
            name = safe_name(f"{name[:100]}-{digest}")
            output = inside(base / ex.stage / f"{name}.ipynb", base)
        used.add(output)
        configs = ex.configs() if ex.stage not in PRESENTATION_STAGES else []
        job = Job(ex.stage, name, params, output, configs, [run_key(c, device) for c in configs])
        source = (notebooks_dir / f"{notebook_name(ex.stage)}.ipynb").read_bytes()
        job.fingerprint = hashlib.sha256(source + json.dumps(params, sort_keys=True).encode()).hexdigest()[
            :16
        ]
        jobs.append(job)
    return jobs


def presentation_state(store_dir: Path, also=()) -> str:
    """A digest of what the presentation notebooks read: the store's records (names, sizes, times), the files
    in ``also`` (the verification's result) and the package's source (the code that draws figures and tables)."""
    h = hashlib.sha256(_package_digest().encode())
    for path in [*sorted(Path(store_dir).glob("[!.]*.json")), *also]:
        if path.exists():
            st = path.stat()
            h.update(
                f"{path.name} {st.st_size} {st.st_mtime_ns}\n".encode()
            )  # names: a moved folder is the same
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _package_digest() -> str:
    """The package's code and the report's templates (its words): what presentation reads besides the store."""
    h = hashlib.sha256()
    for base, pattern in ((PACKAGE_DIR, "*.py"), (TEMPLATE_DIR, "*")):
        for path in sorted(p for p in base.rglob(pattern) if p.is_file()):
            h.update(path.relative_to(base).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def up_to_date(job: Job, previous: dict, store_dir: Path) -> bool:
    """Executed before with the same notebook and parameters, and nothing it reads has changed since."""
    if not job.output.exists():
        return False
    entry = previous.get((job.stage, job.name))
    if not entry or entry.get("status") != "ok" or entry.get("fingerprint") != job.fingerprint:
        return False
    nb_mtime = job.output.stat().st_mtime
    paths = [store_dir / f"{k}.json" for k in job.keys]
    return all(p.exists() and p.stat().st_mtime <= nb_mtime for p in paths)


def notebook_duration(path: Path) -> float | None:
    try:
        meta = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
    except (OSError, json.JSONDecodeError):
        return None
    return meta.get("duration")


def parameters_problem(notebook: Path) -> str | None:
    """Why papermill could not give ``notebook`` its parameters (no cell tagged 'parameters': it would run on its
    own defaults and must not pass as a success), or None."""
    try:
        cells = json.loads(notebook.read_text()).get("cells", [])
    except (OSError, ValueError) as exc:
        return f"cannot read {notebook.name}: {exc}"
    if any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells):
        return None
    return f"{notebook.name} has no cell tagged 'parameters': it would run on its own defaults, not on its parameters"


def runs_check(job: Job, store_dir: Path) -> str | None:
    """None when every run the plan names for the execution is in the store after it; else which is absent."""
    absent = [k for k in job.keys if not (store_dir / f"{k}.json").exists()]
    if not absent:
        return None
    return f"{len(absent)} of its {len(job.keys)} runs are not in the store afterwards (e.g. {absent[0]})"


class PapermillWarnings(logging.Handler):
    """Papermill's warnings (a missing parameters cell, an unknown parameter) reach the user, with the job."""

    def __init__(self, write):
        super().__init__(logging.WARNING)
        self.write = write

    def emit(self, record):
        self.write(f"papermill warning ({threading.current_thread().name}): {record.getMessage()}")


class Executor:
    """Executes jobs, up to ``width`` at once, in threads of this process (papermill imported once); figures,
    the report and explore ahead of queued training notebooks (their inputs are complete when queued).

    ``submit`` queues a job (the runner does so the moment its runs are in the store, while the cluster
    trains the others); ``collect`` finishes the executions that have ended, or waits for all of them."""

    def __init__(
        self, notebooks_dir: Path, store_dir: Path, workdir: Path, on_finish, keep_going: bool, width: int
    ):
        self.notebooks_dir, self.store_dir, self.workdir = notebooks_dir, store_dir, workdir
        self.on_finish, self.keep_going = on_finish, keep_going
        self.gate, self.busy, self.waiting, self.width = threading.Condition(), 0, 0, max(1, width)
        self.pool, self.ahead = ThreadPoolExecutor(self.width), ThreadPoolExecutor(3)  # ahead: presentation
        self.futures: dict = {}
        self.stop = False  # set after a failure with --no-keep-going
        self.count = 0

    def submit(self, job: Job) -> None:
        if job.status != "pending":
            return
        if self.stop:
            job.status = "cancelled"
            return
        job.log = self.workdir / f"job{self.count:04d}.log"  # names may hold dots: no suffix games
        self.count += 1
        first = job.stage in (*PRESENTATION_STAGES, "explore")
        with self.gate:
            self.waiting += first
        self.futures[(self.ahead if first else self.pool).submit(self.execute_one, job, first)] = job

    def execute_one(self, job: Job, first: bool = False) -> None:
        threading.current_thread().name = job.label  # papermill's warnings name their job
        with self.gate:  # up to width kernels busy at once; presentation jobs waiting go first
            self.gate.wait_for(lambda: self.busy < self.width and (first or not self.waiting))
            self.busy, self.waiting = self.busy + 1, self.waiting - first
        try:
            if job.cancel.is_set() or self.stop:
                return  # stays pending: collect() counts it cancelled
            job.output.parent.mkdir(parents=True, exist_ok=True)
            job.started = time.time()
            job.status = "running"
            notebook = self.notebooks_dir / f"{notebook_name(job.stage)}.ipynb"
            problem = parameters_problem(notebook)
            if problem:
                job.result = {"status": "failed", "error": problem}
            else:
                execute_job(job, notebook, kernel_name(), self.notebooks_dir, job.log)
            self.finish(job)
            if job.status == "failed" and not self.keep_going:
                self.stop = True  # decided here, so a queued job cannot start in between
        finally:
            with self.gate:
                self.busy -= 1
                self.gate.notify_all()

    def finish(self, job: Job) -> None:
        job.seconds = time.time() - job.started if job.started else 0.0
        result = job.result or {"status": "failed", "error": "the notebook thread ended without a result"}
        job.kernel_start_seconds = result.get("kernel_start_seconds", job.kernel_start_seconds)
        job.attempts = result.get("attempts", job.attempts)
        job.notebook_seconds = notebook_duration(job.output)
        if result["status"] == "ok":
            result = (
                {"status": "failed", "error": problem}
                if (problem := runs_check(job, self.store_dir))
                else result
            )
        if job.cancel.is_set():
            job.status = "cancelled"
        elif result["status"] == "ok":
            job.status = "ok"
        else:
            job.status, job.error = "failed", result.get("error") or "unknown error"
            if job.log and job.log.exists() and job.log.stat().st_size:
                shutil.copyfile(
                    job.log, job.output.with_suffix(".log")
                )  # the kernel's stderr, for a dead kernel

    def collect(self, block: bool = True, jobs=None) -> None:
        """Finish the executions that have ended (``block``: wait for all submitted, or for ``jobs``)."""
        try:
            ended = as_completed(list(self.futures)) if block else [f for f in list(self.futures) if f.done()]
            for future in ended:
                job = self.futures.pop(future)
                if job.status == "pending":  # cancelled before it started
                    job.status = "cancelled"
                else:
                    if job.status == "running":  # its thread ended without finishing it (should not happen)
                        self.finish(job)
                    self.on_finish(job)
                if self.stop:
                    for other in self.futures.values():
                        if other.status == "pending":
                            other.cancel.set()
                            other.status = "cancelled"
                if jobs is not None and not any(j in jobs for j in self.futures.values()):
                    break  # those asked for are finished
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop every execution: pending ones never start; running kernels are interrupted, then killed."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the clean-up
        jobs = list(self.futures.values())
        self.futures = {}
        for job in jobs:
            job.cancel.set()
            if job.status == "pending":
                job.status = "cancelled"
        running = [j for j in jobs if j.status == "running"]
        for sig, wait in ((signal.SIGINT, 3.0), (signal.SIGKILL, 10.0)):
            for job in running:
                if job.kernel_pid and job.status == "running":
                    signal_group(job.kernel_pid, sig)
            deadline = time.time() + wait
            while time.time() < deadline and any(j.status == "running" for j in running):
                time.sleep(0.1)  # the job's thread finishes it once papermill returns
        for job in running:
            job.status = "cancelled"

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.ahead.shutdown(wait=True, cancel_futures=True)
