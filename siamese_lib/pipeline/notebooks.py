"""A run's notebook executions: papermill in threads of the runner, each in a kernel of its own. One succeeds
when papermill says so and every run the plan names for it is in the store afterwards."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from ..common import inside, safe_name, same_package_env
from ..experiments.profiles import notebook_name
from ..store import run_key

PRESENTATION_STAGES = ("figures", "report")
AHEAD = (*PRESENTATION_STAGES, "explore")  # inputs complete when queued: ahead of training notebooks
# the parameters the progress lines leave out: places and settings, not what names an execution
HIDDEN_PARAMETERS = set(
    "store_dir runs_dir profile_path device threads force nb_pairs data_seed batch_size scheduler".split()
)
KERNEL_NAME = "siamese-lib"
KERNEL_START_ATTEMPTS = 3  # several kernels starting at once can race for ports; retry the start
RETRY_PAUSE = (0.5, 1.5)  # seconds (times the attempt number) before a retry, random to spread the starts


@dataclass(eq=False)
class Job:
    """One notebook execution and what became of it."""

    stage: str
    name: str  # the execution's name, made safe for a file name
    parameters: dict
    output: Path
    configs: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    fingerprint: str = ""
    status: str = "pending"  # pending, running, ok, failed, cancelled, up-to-date
    error: str | None = None
    kernel_pid: int | None = None
    started: float = 0.0
    seconds: float = 0.0
    trained: int = 0  # runs of this execution trained by this invocation (a shared run counts once)
    cached: int = 0
    kernel_start_seconds: float | None = None
    notebook_seconds: float | None = None
    attempts: int = 0
    waiting: set = field(default_factory=set)  # its runs still being trained

    @property
    def label(self) -> str:
        return f"{self.stage}/{self.name}"

    @property
    def log(self) -> Path:
        return self.output.with_suffix(".log")  # the kernel's output, kept when the execution failed


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
        keys = [run_key(c, device) for c in configs]
        jobs.append(
            Job(ex.stage, name, params, output, configs, keys, fingerprint(notebooks_dir, ex.stage, params))
        )
    return jobs


def fingerprint(notebooks_dir: Path, stage: str, params: dict) -> str:
    """What an execution's result follows from: its notebook's bytes and its parameters."""
    source = (notebooks_dir / f"{notebook_name(stage)}.ipynb").read_bytes()
    return hashlib.sha256(source + json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def parameters_problem(notebook: Path) -> str | None:
    """Why papermill could not give ``notebook`` its parameters, or None."""
    try:
        cells = json.loads(notebook.read_text()).get("cells", [])
    except (OSError, ValueError) as exc:
        return f"cannot read {notebook.name}: {exc}"
    if any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells):
        return None
    why = "it would run on its own defaults, not on its parameters"
    return f"{notebook.name} has no cell tagged 'parameters': {why}"


class Executor:
    """Executes jobs, up to ``width`` at once, in threads of this process; each ends in ``on_finish``, under
    one lock. After a failure without ``keep_going`` no job starts."""

    def __init__(self, notebooks_dir: Path, store_dir: Path, on_finish, keep_going: bool, width: int):
        self.notebooks_dir, self.store_dir = notebooks_dir, store_dir
        self.on_finish, self.keep_going = on_finish, keep_going
        self.width, self.busy, self.waiting, self.gate = max(1, width), 0, 0, threading.Condition()
        self.pool, self.ahead = ThreadPoolExecutor(self.width), ThreadPoolExecutor(len(AHEAD))
        self.futures: dict = {}
        self.lock = threading.Lock()
        self.stop = False
        self.aborted = threading.Event()

    def submit(self, job: Job) -> None:
        if job.status == "pending" and not self.stop:
            first = job.stage in AHEAD
            with self.gate:
                self.waiting += first
            self.futures[(self.ahead if first else self.pool).submit(self.execute, job, first)] = job

    def execute(self, job: Job, first: bool) -> None:
        threading.current_thread().name = job.label  # papermill's warnings name their job
        with self.gate:  # at most width kernels at once; the jobs ahead that wait start first
            self.gate.wait_for(lambda: self.busy < self.width and (first or not self.waiting))
            self.busy, self.waiting = self.busy + 1, self.waiting - first
        try:
            if not self.stop:  # else never started: the runner counts it cancelled
                self.run_job(job)
        finally:
            with self.gate:
                self.busy -= 1
                self.gate.notify_all()

    def run_job(self, job: Job) -> None:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        job.started, job.status = time.time(), "running"
        notebook = self.notebooks_dir / f"{notebook_name(job.stage)}.ipynb"
        error = parameters_problem(notebook) or execute_job(job, notebook, self.aborted)
        job.seconds = time.time() - job.started
        with contextlib.suppress(OSError, ValueError, KeyError):
            job.notebook_seconds = json.loads(job.output.read_text())["metadata"]["papermill"]["duration"]
        absent = [k for k in job.keys if not (self.store_dir / f"{k}.json").exists()]
        if absent and not error:  # the plan's runs are all in the store afterwards
            which = f"{len(absent)} of its {len(job.keys)} runs"
            error = f"{which} are not in the store afterwards (e.g. {absent[0]})"
        if not error or (job.log.exists() and not job.log.stat().st_size):
            job.log.unlink(missing_ok=True)
        with self.lock:
            if self.aborted.is_set():
                return  # the runner counts it cancelled
            job.status, job.error = ("failed", error) if error else ("ok", None)
            if error and not self.keep_going:
                self.stop = True  # decided here, so a queued job cannot start in between
            self.on_finish(job)

    def wait(self, jobs=None) -> None:
        """Wait for every execution submitted, or those of ``jobs`` (an error in a thread is raised here)."""
        for future, job in list(self.futures.items()):
            if jobs is None or any(job is j for j in jobs):
                future.result()

    def abort(self) -> None:
        """Stop every execution: queued ones never start; running kernels are interrupted, then killed."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the clean-up
        self.stop = True
        self.aborted.set()
        for sig, seconds in ((signal.SIGINT, 3.0), (signal.SIGKILL, 10.0)):
            running = {f: j for f, j in self.futures.items() if not f.done()}
            for job in running.values():
                if job.kernel_pid:
                    signal_group(job.kernel_pid, sig)
            wait(list(running), timeout=seconds)  # the job's thread ends once papermill returns

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.ahead.shutdown(wait=True, cancel_futures=True)


def execute_job(job: Job, notebook: Path, aborted: threading.Event) -> str | None:
    """A kernel started, papermill executes the notebook in it, the kernel stopped: None when it ran through,
    else why not (one line). The executed notebook is renamed into place when whole."""
    import papermill as pm
    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import DeadKernelError

    kernel, km = os.environ.get("SIAMESE_LIB_KERNEL") or KERNEL_NAME, None
    partial = job.output.with_name(f".tmp-{job.output.name}")  # papermill saves as it goes
    # one torch thread per kernel: the same numbers whatever --jobs is, and no oversubscription
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **same_package_env())
    with open(job.log, "wb") as log:
        try:
            km, job.kernel_start_seconds, job.attempts = start_kernel(kernel, str(notebook.parent), env, log)
            job.kernel_pid = kernel_pid(km)
            # an async client lets nbclient notice a kernel killed mid-cell (a blocking one waited for ever)
            km.client_factory = AsyncKernelClient
            if aborted.is_set():
                raise KeyboardInterrupt
            options = dict(kernel_name=kernel, km=km, progress_bar=False, start_timeout=120)
            pm.execute_notebook(str(notebook), str(partial), parameters=job.parameters, **options)
            return None
        except pm.PapermillExecutionError as exc:
            return f"cell [{exc.exec_count}] raised {exc.ename}: {first_line(exc.evalue)}"
        except NoSuchKernel:
            return f"Jupyter kernel {kernel!r} is not installed (run `make setup`, or set SIAMESE_LIB_KERNEL)"
        except DeadKernelError as exc:
            return f"the kernel died: {first_line(exc)}"
        except KernelStartError as exc:
            return str(exc)
        except BaseException as exc:  # noqa: BLE001 - whatever happens, the job must end with a reason
            return f"{type(exc).__name__}: {first_line(exc)}"
        finally:
            if km is not None:
                stop_kernel(km)
            publish(partial, job.output)


class KernelStartError(RuntimeError):
    pass


def start_kernel(name: str, cwd: str, env: dict | None = None, log=None):
    """A started, ready kernel manager; returns (km, seconds of the successful start, attempts used)."""
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import KernelManager

    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        km, start = KernelManager(kernel_name=name), time.perf_counter()
        try:
            km.start_kernel(cwd=cwd, env=env or dict(os.environ), stdout=log, stderr=log)
            kc = km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=120)
            finally:
                kc.stop_channels()
            return km, time.perf_counter() - start, attempt
        except NoSuchKernel:
            raise
        except Exception as exc:  # a port race or a kernel dying at start: try a fresh one
            last = f"{type(exc).__name__}: {first_line(exc)}"
            stop_kernel(km)
            if attempt < KERNEL_START_ATTEMPTS:
                time.sleep(random.uniform(*RETRY_PAUSE) * attempt)
    raise KernelStartError(f"kernel {name!r} failed to start {attempt} times; last error: {last}")


def kernel_pid(km):
    return getattr(getattr(km, "provisioner", None), "pid", None)


def stop_kernel(km) -> None:
    pid = kernel_pid(km)
    with contextlib.suppress(Exception):
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    if pid:  # the kernel leads its own process group; make sure nothing of it survives
        signal_group(pid, signal.SIGKILL)


def signal_group(pid: int, sig) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def first_line(text, limit: int = 300) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text)).strip()
    return (text.splitlines()[0] if text else "")[:limit]


def publish(partial: Path, output: Path) -> None:
    """Rename papermill's last save into place if it is a whole notebook; remove a truncated one."""
    try:
        with open(partial, "rb") as f:
            json.load(f)
        os.replace(partial, output)
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            partial.unlink()
