"""What one ``run`` does: the plan (``runs/<profile>/plan.json``); the missing runs trained, each notebook
executed the moment its runs are stored; figures and the report last, only when what they read changed."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from ..common import UsageError, safe_name, write_atomically, write_json_atomically
from ..experiments.planning import Execution, expand, notebook_count, plan_document, run_cost
from ..experiments.profiles import SELECTION_STAGES, TRAINING_STAGES
from ..store import CorruptRecord, code_version, load_record, record_path
from . import notebooks as nb
from .timings import Run, clock, presentation_state, up_to_date, write_timings


def plan(run: Run) -> None:
    """The training stages in phases, each trained and executed as its runs arrive; figures once every run is
    stored (beside the last notebooks); the report last."""
    training = [s for s in run.stages if s in TRAINING_STAGES]
    phases = [training]  # with learning_rates: auto the later stages' rates come from the LR search: after it
    if run.profile.settings["learning_rates"] == "auto" and "lr_search" in training and len(training) > 1:
        phases = [["lr_search"], [s for s in training if s != "lr_search"]]
    phases.append([s for s in training if s in SELECTION_STAGES])  # a choice's finals: after its candidates
    run.total = notebook_count(run.profile, str(run.store_dir), run.device, run.stages)
    run.total += "report" in run.stages  # the explore notebook, executed beside the report's
    run.write(f"{run.total} notebooks to execute or check, each reading its runs from the store")
    try:
        for phase in phases:
            if phase and not run.executor.stop:
                train_and_execute(run, phase)
        write_plan(run)  # again: the selection's finals are planned once its candidates are stored
        presentation = [s for s in run.stages if s in nb.PRESENTATION_STAGES]
        if not run.executor.stop and not run.errors:  # a choice that is an ensemble member has fewer finals
            planned = len(run.all_jobs) + notebook_count(run.profile, "", run.device, presentation)
            run.unneeded = max(0, run.total - planned - ("report" in presentation))
        if fresh := sum(j.status == "up-to-date" for j in run.all_jobs):
            why = "executed after all their runs were stored, same notebook and parameters"
            run.write(f"{fresh} training notebooks are up to date ({why}): not executed again")
        published = "report" in run.stages and not (run.executor.stop or run.failed_runs or run.errors)
        if published:  # when the profile has none yet or with --force; else rendering must not change it
            from .publishing import publish_record  # pyarrow: only when a record is published

            where = (run.store_dir, run.report_dir, run.profile, run.base / "plan.json")
            path, what = publish_record(*where, replace=run.force)
            run.write(f"published record {run.rel(path)}: {what}")
        if presentation and not run.executor.stop:
            present(run, presentation, published)
        run.executor.wait()
    except BaseException:
        run.executor.abort()
        raise
    finally:
        run.executor.close()


def train_and_execute(run: Run, stages: list) -> None:
    """The stages' executions not planned yet; their missing runs trained (each once), each notebook submitted
    the moment its runs are all stored, so notebooks fill the cores that the last, longest runs leave idle."""
    try:
        executions = expand(run.profile, str(run.store_dir), run.device, stages=stages)
    except Exception as exc:  # e.g. auto learning rates while LR-search results are missing
        return run.fail(f"planning {', '.join(stages)}: {type(exc).__name__}: {nb.first_line(exc)}")
    done = {(j.stage, j.name) for j in run.all_jobs}  # a stage expanded again runs only what is new
    executions = [e for e in executions if (e.stage, safe_name(e.name)) not in done]
    jobs = nb.make_jobs(executions, run.base, run.device, run.notebooks_dir, run.used, {})
    run.all_jobs += jobs
    write_plan(run)
    todo, waiting = {}, {}
    for job in jobs:
        if not run.force and up_to_date(job, run.previous, run.store_dir):
            job.status = "up-to-date"
            continue
        job.waiting = {k for k in job.keys if not run.key_done(k)}
        check_code_mix(job.label, job.keys, job.waiting, run.store_dir)
        for key in job.waiting:
            todo.setdefault(key, job.configs[job.keys.index(key)])
            waiting.setdefault(key, []).append(job)
        if not job.waiting:
            run.submit(job)
    if not todo:
        return
    start, total, done = time.time(), len(todo), 0
    cost = left = sum(run_cost(c) for c in todo.values())
    where = run.scheduler or f"a local cluster of {run.jobs} worker(s)"
    run.write(f"{total} runs to train (about {clock(cost)} on one core), on {where}")
    if sys.stderr.isatty():
        run.bar = tqdm(
            total=total, unit="run", file=sys.stderr, smoothing=0, dynamic_ncols=True, desc=f"{run.name} runs"
        )

    def on_result(key, error):
        nonlocal done, left
        done, left = done + 1, left - run_cost(todo[key])
        if error:
            run.failed_runs[key] = error
            run.write(f"FAILED run {key} ({nb.describe(todo[key].to_dict())}): {error}")
        else:
            run.trained.add(key)
        if run.bar is not None:
            run.bar.update(1)
        else:
            eta = clock((time.time() - start) * left / max(cost - left, 1e-9))
            head = f"[runs {done}/{total}, {clock(time.time() - run.t0)} elapsed, about {eta} left to train]"
            run.write(f"{head} {'failed' if error else 'trained'} {key}")
        for job in waiting.pop(key, []):
            job.waiting.discard(key)
            if not job.waiting:
                run.submit(job)

    try:
        run.engine.train(list(todo.values()), run.store_dir, on_result)
    finally:
        if run.bar is not None:
            run.bar.close()
            run.bar = None
        run.span("training", start, time.time())


def present(run: Run, stages: list, published: bool) -> None:
    """Figures beside the last training notebooks, the report (and explore, on a published record) last; each
    only when the store, the verification, the code, the notebook or its parameters changed."""
    extra = dict(runs_dir=str(run.base), report_dir=str(run.report_dir))
    executions = expand(run.profile, str(run.store_dir), run.device, stages=stages)
    jobs = nb.make_jobs(executions, run.base, run.device, run.notebooks_dir, run.used, extra)
    state = presentation_state(run.store_dir, also=[run.base / "verify" / "verify.json"])
    run.all_jobs += jobs
    changed, shown = False, ("report.html", "explore.html") if published else ("report.html",)
    for job in jobs:
        job.fingerprint = f"{job.fingerprint}-{state}"
        explore = None
        if job.stage == "report" and published:  # the published record explored, beside the report notebook
            params = {"record_dir": str(run.report_dir)}
            explore = nb.Job("explore", "explore", params, job.output.with_name("explore.ipynb"))
            explore.fingerprint = f"{nb.fingerprint(run.notebooks_dir, 'explore', params)}-{state}"
            run.all_jobs.append(explore)
        run.unneeded += job.stage == "report" and not published  # explore: counted in the total
        there = job.stage != "report" or all((run.report_dir / name).exists() for name in shown)
        same = explore is None or up_to_date(explore, run.previous, run.store_dir)  # explore.html: both
        if not (run.force or changed) and there and same and up_to_date(job, run.previous, run.store_dir):
            job.status = "up-to-date"
            if explore is not None:
                explore.status = "up-to-date"
            run.write(f"{job.label} is up to date (same store, notebook and parameters): not executed again")
            continue
        changed = True
        if job.stage == "report" and not published:  # a published record keeps the history the report shows
            run.executor.wait()
            write_timings(run, "running")  # else the report notebook reads the training stages' times
        run.submit(job)
        if explore is not None:
            run.submit(explore)
        if job.stage == "report":
            run.executor.wait(jobs=(job, explore))  # rendered while training notebooks may still run
            if job.status == "ok" and (explore is None or explore.status == "ok"):
                render(run, job, explore)


def check_code_mix(label: str, keys: list, missing: set, store_dir) -> None:
    """Refuse (exit 2) to complete an execution's runs with runs trained now when its stored ones come from
    another code version (e.g. a seeded published record): one cell never mixes two code versions."""
    if not missing or len(missing) == len(keys):
        return
    versions = set()
    for key in set(keys) - missing:
        try:
            versions.add(load_record(record_path(store_dir, key))["code_version"])
        except CorruptRecord:
            continue  # retrained; the engine reports it
    if other := sorted(versions - {code_version()}):
        stored = f"{len(keys) - len(missing)} of its {len(keys)} runs are stored from code {', '.join(other)}"
        now = f"the other {len(missing)} would be trained now by code {code_version()}"
        raise UsageError(
            f"run: {label}: {stored} (e.g. the published record) and {now}: refusing to mix two code "
            f"versions in one cell; retrain every run with this code (--force), delete this cell's stored "
            f"runs, or check out code version {other[0]}"
        )


def write_plan(run: Run) -> None:
    """``runs/<profile>/plan.json``: the profile's training executions and their runs, computed once here; the
    report reads it. Stages not run now (``--only``) are planned too, as far as the store allows."""
    jobs = [j for j in run.all_jobs if j.stage in TRAINING_STAGES]
    executions = [Execution(j.stage, j.name, j.parameters, j.configs) for j in jobs]
    others = [s for s in TRAINING_STAGES if s in run.profile.stages and s not in run.stages]
    try:
        expanded = expand(run.profile, str(run.store_dir), run.device, stages=others) if others else []
    except Exception:  # noqa: BLE001 - e.g. auto learning rates before their search: planned when it has run
        expanded = []
    planned = {(j.stage, j.name) for j in jobs}
    for ex in (ex for ex in expanded if (ex.stage, safe_name(ex.name)) not in planned):
        executions.append(Execution(ex.stage, safe_name(ex.name), ex.parameters, ex.configs()))
    write_json_atomically(run.base / "plan.json", plan_document(run.profile.name, run.device, executions))


def render(run: Run, job: nb.Job, explore: nb.Job | None) -> None:
    """Render the executed report notebook to report/<profile>/ (HTML and PDF), and explore.html beside it."""
    from ..presentation.render import notebook_to_html, render_report  # nbconvert, WeasyPrint: only here

    start = time.time()
    try:
        render_report(job.output, out_dir=run.report_dir)
        if explore is not None:
            html = notebook_to_html(explore.output, code=True).encode()
            write_atomically(run.report_dir / "explore.html", html)
    except Exception as exc:
        where = f"{run.rel(job.output)} into {run.rel(run.report_dir)}"
        run.fail(f"rendering {where}: {type(exc).__name__}: {nb.first_line(exc)}")
    finally:
        run.span("report", start, time.time())
        job.seconds += time.time() - start
