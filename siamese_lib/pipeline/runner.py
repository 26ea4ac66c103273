"""``python -m siamese_lib run --profile NAME`` (README, "The runner"): checks, lock, signals, exit statuses
(what it does: ``invocation.py``). Exit status: 0 all done; 1 a run, a notebook, planning, the cluster or the
rendering failed; 2 a usage error, the lock is held or (profile paper) uncommitted code; 130 interrupted.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import filelock

from ..common import NOTEBOOKS_DIR, UsageError, check_run_places, write_atomically
from ..experiments.profiles import STAGES, TRAINING_STAGES, notebook_name
from ..machine import apply_numerics, device_type
from ..store import check_clean_code
from .engine import EngineError
from .invocation import plan
from .timings import Run, summary, write_timings

FORCE_MARKER = "force-since"  # beside the store while a --force run is unfinished: when it began


def main(args, profile) -> int:
    wanted = parse_only(args.only)
    # the folders this run writes are usable (else one line, exit 2), checked before anything runs
    check_run_places(profile.name, with_report="report" in wanted and "report" in profile.stages)
    try:
        device = device_type(args.device)
    except ValueError as exc:
        raise UsageError(f"run: {exc}") from None
    stages = [s for s in wanted if s in profile.stages]
    if not stages:
        raise UsageError(
            f"run: profile {profile.name!r} has none of the stages asked for ({', '.join(wanted)}); "
            f"it has: {', '.join(profile.stages)}"
        )
    for stage in stages:
        if not (NOTEBOOKS_DIR / f"{notebook_name(stage)}.ipynb").is_file():
            raise UsageError(
                f"run: notebook notebooks/{notebook_name(stage)}.ipynb is missing (the {stage!r} "
                f"stage runs it); skip the stage with --only"
            )
    if any(s in TRAINING_STAGES for s in stages):  # the committed profile's records come from a commit
        check_clean_code(profile.name, allow=getattr(args, "allow_dirty", False))
    apply_numerics(profile.settings["numerics"])  # the kernels and workers inherit it (machine.py)
    run = Run(args, profile, stages, device, NOTEBOOKS_DIR)
    lock = Lock(run.base / ".lock")
    if not lock.acquire():
        raise UsageError(
            f"run: another run of profile {profile.name!r} is in progress (lock {run.rel(lock.path)} "
            f"held by pid {lock.holder()}); wait for it to finish"
        )
    # the first line once nothing can refuse the run in one line any more
    run.write(f"{run.name}: {', '.join(stages)}; up to {run.jobs} notebooks and runs at once")
    papermill, handler = logging.getLogger("papermill"), logging.Handler(logging.WARNING)
    # its warnings (a missing parameters cell, an unknown parameter) reach the user, with the job
    handler.emit = lambda r: run.write(f"papermill warning ({r.threadName}): {r.getMessage()}")
    papermill.setLevel(logging.WARNING)  # its info chatter would break the progress; its warnings matter
    papermill.addHandler(handler)
    papermill.propagate = False
    old_int = signal.getsignal(signal.SIGINT)
    old_term = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM ends a run as Ctrl-C does
    try:
        if run.force:  # an interrupted forced run left when it began: what it stored since is kept
            try:
                run.force_since = float((run.base / FORCE_MARKER).read_text())
                run.write(f"--force: going on with the forced run begun {time.ctime(run.force_since)}")
            except (OSError, ValueError):
                write_atomically(run.base / FORCE_MARKER, repr(run.t0))
        # what this run was asked to do; a new file, never written through a symlink that stands there
        write_atomically(run.base / "profile.yaml", Path(profile.path).read_bytes())
        if args.from_record:  # the store seeded from the published record beside the report
            from .published import record_file
            from .publishing import seed_store

            written, kept = seed_store(record_file(run.report_dir), run.store_dir, profile, say=run.write)
            run.write(
                f"seeded the store from {run.rel(record_file(run.report_dir))}: {written} records written, "
                f"{kept} already there (kept); only runs the record lacks are trained"
            )
        if "beyond_paper" in stages:  # its notebooks read the test pairs' truth there, without torch
            from .publishing import write_test_pairs  # torch: only here

            write_test_pairs(run.base, profile.settings["nb_pairs"], profile.settings["data_seed"])
        try:
            plan(run)
        except EngineError as exc:
            run.fail(str(exc))
        return end(run, "ok")
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        end(run, "interrupted")
        kept = "finished runs are kept in the store; rerun the same command to resume"
        print(f"interrupted: submitted runs cancelled, kernels stopped; {kept}", file=sys.stderr)
        return 130
    finally:
        run.engine.close()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        papermill.removeHandler(handler)
        lock.release()


def end(run: Run, status: str) -> int:
    """The one place a job that did not end is counted cancelled; timings.json and the summary."""
    for job in run.all_jobs:
        if job.status in ("pending", "running"):
            job.status = "cancelled"
    failed = bool(run.errors) or any(j.status in ("failed", "cancelled") for j in run.all_jobs)
    write_timings(run, "failed" if failed and status == "ok" else status)
    if run.force and status == "ok" and not failed:  # the forced run is complete: a next --force starts anew
        (run.base / FORCE_MARKER).unlink(missing_ok=True)
    print(summary(run), file=sys.stderr)
    return 1 if failed else 0


def parse_only(text):
    if text is None:
        return list(STAGES)
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        raise UsageError(
            f"run: --only {text!r}: unknown stage {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"allowed: {', '.join(STAGES)}"
        )
    return [s for s in STAGES if s in names]


class Lock:
    """One run per profile at a time: a non-blocking file lock (filelock), and the holder's pid beside it."""

    def __init__(self, path: Path):
        self.path, self.pid_path = path, path.with_name(path.name + ".pid")
        self.lock = filelock.FileLock(str(path), timeout=0)

    def acquire(self) -> bool:
        """False when another run holds it. A lock file that is a symlink is refused: locking through it would
        open, and may truncate, the file it points to. The pid file replaces a link."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_symlink():
            raise UsageError(
                f"run: the lock file {self.path} is a symlink (to {os.readlink(self.path)}), "
                f"not written through; remove it"
            )
        try:
            self.lock.acquire()
        except filelock.Timeout:
            return False
        write_atomically(self.pid_path, f"{os.getpid()}\n")
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
