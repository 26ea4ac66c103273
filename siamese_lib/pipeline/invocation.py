"""One invocation of ``run``: the training executions planned from the profile, their missing runs trained on the
engine (longest first) while each notebook is executed the moment its runs are stored, then figures and the
report when what they read changed; the plan (``runs/<profile>/plan.json``), progress lines and timings."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from ..common import (
    ROOT,
    UsageError,
    inside,
    now_iso,
    report_root,
    runs_root,
    safe_name,
    write_atomically,
    write_json_atomically,
)
from ..experiments.planning import Execution, expand, notebook_count, plan_document, run_cost
from ..experiments.profiles import SELECTION_STAGES, TRAINING_STAGES
from ..store import CorruptRecord, code_version, load_record, record_path
from .engine import Engine, scheduler_address
from .kernels import first_line
from .notebooks import PRESENTATION_STAGES, Executor, Job, describe, make_jobs, presentation_state, up_to_date
from .timings import clock, load_old_timings, write_timings


class Run:
    """One invocation of ``run``: the plan, the engine, the notebooks, the progress and timings.json."""

    def __init__(self, args, profile, stages, device, jobs: int, notebooks_dir: Path):
        self.args, self.profile, self.stages, self.device = args, profile, stages, device
        self.jobs, self.notebooks_dir = jobs, notebooks_dir
        self.force = bool(args.force)
        self.name = safe_name(profile.name)
        self.base = inside(runs_root() / self.name, runs_root())
        self.store_dir = self.base / "store"
        self.report_dir = inside(report_root() / self.name, report_root())
        self.t0 = time.time()
        self.started = now_iso()
        self.all_jobs: list[Job] = []
        self.total = 0  # the notebooks of this invocation, counted before the first runs (notebook_count)
        self.unneeded = 0  # counted in the total, then not planned (a selection's finals): counted as done
        self.first_notebook = None  # when the first notebook started: the time left is paced from it
        self.stage_span: dict[str, list[float]] = {}
        self.errors: list[str] = []  # failures outside notebooks (planning, the cluster, rendering)
        self.trained: set[str] = set()  # keys trained by this invocation
        self.failed_runs: dict[str, str] = {}
        self.old = load_old_timings(self.base, profile.name)
        self.scheduler = scheduler_address(getattr(args, "scheduler", None))
        self.engine = Engine(
            self.scheduler,
            workers=self.jobs,
            device=device,
            log=self.write,
            run_timeout=getattr(args, "run_timeout", None),
        )
        self.bar = None
        self.workdir = Path(
            tempfile.mkdtemp(prefix="siamese-run-")
        )  # last: nothing after it can fail and leave it
        self.executor = Executor(
            notebooks_dir,
            self.store_dir,
            self.workdir,
            self.finished,
            keep_going=bool(args.keep_going),
            width=self.jobs,
        )

    @property
    def stop(self) -> bool:
        return self.executor.stop

    def key_done(self, key: str) -> bool:
        return (self.store_dir / f"{key}.json").exists() and (not self.force or key in self.trained)

    def span(self, stage: str, start: float, end: float) -> None:
        a, b = self.stage_span.setdefault(stage, [start, end])
        self.stage_span[stage] = [min(a, start), max(b, end)]

    # -- training on the cluster, notebooks as soon as their runs are in the store
    def train_and_execute(self, jobs: list[Job]) -> None:
        """Train the missing runs of ``jobs`` (each distinct run once); queue each notebook the moment its
        runs are all stored, so notebooks fill the cores that the last, longest runs leave idle."""
        todo, waiting = {}, {}
        for job in jobs:
            if job.status != "pending":
                continue
            job.waiting = {k for k in job.keys if not self.key_done(k)}
            check_code_mix(job.label, job.keys, job.waiting, self.store_dir)
            for key in job.waiting:
                todo.setdefault(key, job.configs[job.keys.index(key)])
                waiting.setdefault(key, []).append(job)
            if not job.waiting:
                self.submit(job)
        if not todo:
            return
        start, total, done = time.time(), len(todo), 0
        cost = left = sum(run_cost(c) for c in todo.values())
        self.write(
            f"{total} runs to train (about {clock(cost)} on one core), on "
            f"{self.scheduler or f'a local cluster of {self.jobs} worker(s)'}"
        )
        if sys.stderr.isatty():
            self.bar = tqdm(
                total=total,
                unit="run",
                file=sys.stderr,
                smoothing=0,
                dynamic_ncols=True,
                desc=f"{self.name} runs",
            )

        def on_result(key, error):
            nonlocal done, left
            done += 1
            left -= run_cost(todo[key])
            if error:
                self.failed_runs[key] = error
                self.write(f"FAILED run {key} ({describe(todo[key].to_dict())}): {error}")
            else:
                self.trained.add(key)
            if self.bar is not None:
                self.bar.update(1)
            else:
                spent = time.time() - start
                self.write(
                    f"[runs {done}/{total}, {clock(time.time() - self.t0)} elapsed, about "
                    f"{clock(spent * left / max(cost - left, 1e-9))} left to train] "
                    + ("failed" if error else "trained")
                    + f" {key}"
                )
            for job in waiting.pop(key, []):
                job.waiting.discard(key)
                if not job.waiting:
                    self.submit(job)
            self.executor.collect(block=False)

        try:
            self.engine.train(list(todo.values()), self.store_dir, on_result)
        finally:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            self.span("training", start, time.time())

    def submit(self, job: Job) -> None:
        failed = [k for k in job.keys if k in self.failed_runs]
        if failed:
            job.status = "failed"
            job.error = (
                f"{len(failed)} of its runs failed on the cluster (e.g. {failed[0]}: "
                f"{first_line(self.failed_runs[failed[0]])}); the notebook was not executed"
            )
            self.report_job(job)
            return
        self.executor.submit(job)

    def finished(self, job: Job) -> None:
        if job.started:
            self.span(job.stage, job.started, job.started + job.seconds)
        self.report_job(job)

    def attribute(self) -> None:
        """Per training job: its runs trained now (a run that several jobs share counts in the first)."""
        counted = set()
        for job in self.all_jobs:
            if job.stage in PRESENTATION_STAGES:
                continue
            job.trained = sum(k in self.trained and k not in counted for k in job.keys)
            counted.update(job.keys)
            if job.status in ("ok", "up-to-date"):
                job.cached = len(job.keys) - job.trained

    # -- output
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
            written = job.started and job.output.stat().st_mtime >= job.started - 0.01
        except FileNotFoundError:
            written = False
        if written:
            return f"executed notebook with the traceback: {self.rel(job.output)}"
        log = job.output.with_suffix(".log")
        return "no notebook was executed" + (f" (kernel log: {self.rel(log)})" if log.exists() else "")

    def report_job(self, job: Job) -> None:
        """One line per finished notebook: done of the invocation's total (up-to-date ones count as done), the
        elapsed time since the invocation started and the time left at the pace of the notebooks so far."""
        now, ended = time.time(), ("ok", "failed", "cancelled")
        finished = sum(j.status in (*ended, "up-to-date") for j in self.all_jobs) + self.unneeded
        executed = sum(j.status in ended for j in self.all_jobs)
        total = max(self.total, len(self.all_jobs), finished)
        self.first_notebook = self.first_notebook or job.started or now
        pace = (now - self.first_notebook) / max(executed, 1)
        head = (
            f"[{finished}/{total} notebooks, {clock(now - self.t0)} elapsed, "
            f"about {clock(pace * (total - finished))} left]"
        )
        if job.status == "failed":
            self.write(
                f"{head} FAILED {job.label} ({describe(job.parameters)}): {job.error}; {self.where(job)}"
            )
        elif job.status == "ok":
            self.write(f"{head} ok {job.label} ({job.seconds:.1f} s)")


# --- the command -------------------------------------------------------------------


def plan(run: Run) -> None:
    """Runs on the cluster and the training notebooks as their runs arrive; figures once every run is in
    the store (beside the last notebooks); the report last. Presentation only when something changed."""
    previous = {
        (e.get("stage"), e.get("name")): e for e in run.old.get("executions", []) if isinstance(e, dict)
    }
    training = [s for s in run.stages if s in TRAINING_STAGES]
    # With learning_rates: auto the later stages' rates come from this LR search: expand them after it.
    phases = [training]
    if run.profile.settings["learning_rates"] == "auto" and "lr_search" in training and len(training) > 1:
        phases = [["lr_search"], [s for s in training if s != "lr_search"]]
    rounds = [s for s in training if s in SELECTION_STAGES]
    if rounds:  # a choice's fresh-seed runs are planned once its candidates are stored
        phases.append(rounds)
    used, fresh = set(), 0
    run.total = notebook_count(run.profile, str(run.store_dir), run.device, run.stages)
    run.total += "report" in run.stages  # the explore notebook, executed beside the report's
    run.write(f"{run.total} notebooks to execute or check, each reading its runs from the store")
    try:
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
            executions = [e for e in executions if (e.stage, safe_name(e.name)) not in done]
            jobs = make_jobs(executions, run.base, run.device, run.notebooks_dir, used, {})
            for job in jobs:
                if not run.force and up_to_date(job, previous, run.store_dir):
                    job.status, fresh = "up-to-date", fresh + 1
            run.all_jobs += jobs
            write_plan(run)
            run.train_and_execute(jobs)
        write_plan(run)  # again: the selection's final runs are planned once its candidates are stored
        presentation = [s for s in run.stages if s in PRESENTATION_STAGES]
        if not run.stop and not run.errors:  # a choice that is an ensemble member has fewer finals: done
            planned = len(run.all_jobs) + notebook_count(run.profile, "", run.device, presentation)
            run.unneeded = max(0, run.total - planned - ("report" in presentation))
        if fresh:
            run.write(
                f"{fresh} training notebooks are up to date (executed after all their runs were stored, "
                f"same notebook and parameters): not executed again"
            )
        published = "report" in run.stages and not (run.stop or run.failed_runs or run.errors)
        if published:
            from .publishing import publish  # pyarrow: only when a record is published

            publish(run)  # a published record is never rewritten by rendering (RecordChanged, exit 2)
        jobs = []
        if presentation and not run.stop:
            extra = dict(runs_dir=str(run.base), report_dir=str(run.report_dir))
            jobs = make_jobs(
                expand(run.profile, str(run.store_dir), run.device, stages=presentation),
                run.base,
                run.device,
                run.notebooks_dir,
                used,
                extra,
            )
            state = presentation_state(run.store_dir, also=[run.base / "verify" / "verify.json"])
            for job in jobs:  # presentation fingerprints cover the store, the verification and the code
                job.fingerprint = f"{job.fingerprint}-{state}"
            run.all_jobs += jobs
        changed = False
        for job in jobs:  # ahead of the training notebooks (their inputs are complete); the report reads the
            # published record's history, else (none published) it comes after every training notebook
            report_there = job.stage != "report" or (run.report_dir / "report.html").exists()
            if not run.force and not changed and report_there and up_to_date(job, previous, run.store_dir):
                job.status = "up-to-date"
                run.unneeded += job.stage == "report"  # and so is the explore notebook's HTML
                run.write(
                    f"{job.label} is up to date (same store, notebook and parameters): not executed again"
                )
                continue
            changed = True
            if job.stage == "report" and not published:
                run.executor.collect()
                run.attribute()
                write_timings(run, "running")  # the report notebook reads the training stages' times
            run.submit(job)
            if job.stage == "report":
                params = {"record_dir": str(run.report_dir)}
                explore = Job("explore", "explore", params, job.output.with_name("explore.ipynb"))
                run.all_jobs.append(explore)
                run.submit(explore)  # the published record explored, beside the report notebook
                run.executor.collect(jobs=(job, explore))
                if job.status == explore.status == "ok":
                    render(run, job, explore)
        run.executor.collect()
    except BaseException:
        run.executor.abort()
        raise
    finally:
        run.attribute()
        run.executor.close()


def check_code_mix(label: str, keys: list, missing: set, store_dir) -> None:
    """Refuse (exit 2) to complete an execution's runs with runs trained now when its stored ones come from another
    code version (e.g. a seeded published record): one cell of a table never mixes two code versions."""
    if not missing or len(missing) == len(keys):
        return
    versions = set()
    for key in keys:
        if key not in missing:
            try:
                versions.add(load_record(record_path(store_dir, key))["code_version"])
            except CorruptRecord:
                continue  # retrained; the engine reports it
    other = sorted(versions - {code_version()})
    if other:
        raise UsageError(
            f"run: {label}: {len(keys) - len(missing)} of its {len(keys)} runs are stored from code {', '.join(other)} "
            f"(e.g. the published record) and the other {len(missing)} would be trained now by code "
            f"{code_version()}: refusing to mix two code versions in one cell; retrain every run with this code "
            f"(--force), delete this cell's stored runs, or check out code version {other[0]}"
        )


def write_plan(run: Run) -> None:
    """``runs/<profile>/plan.json`` (planning.plan_document): the profile's training executions and their runs,
    computed once here; the report reads it instead of expanding the profile again. Stages this invocation does
    not run (``--only``) are planned too, as far as the store allows (a choice not made yet is left out)."""
    executions = [
        Execution(j.stage, j.name, j.parameters, j.configs)
        for j in run.all_jobs
        if j.stage in TRAINING_STAGES
    ]
    planned = {(ex.stage, ex.name) for ex in executions}
    others = [s for s in TRAINING_STAGES if s in run.profile.stages and s not in run.stages]
    try:
        executions += [
            Execution(ex.stage, safe_name(ex.name), ex.parameters, ex.configs())
            for ex in (expand(run.profile, str(run.store_dir), run.device, stages=others) if others else [])
            if (ex.stage, safe_name(ex.name)) not in planned
        ]
    except Exception:  # noqa: BLE001 - e.g. auto learning rates before their search: planned when it has run
        pass
    write_json_atomically(run.base / "plan.json", plan_document(run.profile.name, run.device, executions))


def render(run: Run, job: Job, explore: Job) -> None:
    """Render the executed report notebook to report/<profile>/ (HTML and PDF), and the explore notebook beside it
    (explore.html, its code shown)."""
    from ..presentation.render import notebook_to_html, render_report  # nbconvert, WeasyPrint: only here

    start = time.time()
    out_dir = run.report_dir
    try:
        render_report(job.output, out_dir=out_dir)
        write_atomically(out_dir / "explore.html", notebook_to_html(explore.output, code=True).encode())
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        run.errors.append(
            f"rendering {run.rel(job.output)} into {run.rel(out_dir)}: "
            f"{type(exc).__name__}: {first_line(exc)}"
        )
        run.write(f"FAILED {run.errors[-1]}")
    finally:
        run.span("report", start, time.time())
        job.seconds += time.time() - start
