"""``python -m siamese_lib verify``: retrain a sample of the published record here (into its own store,
``runs/<profile>/verify/store``) and say whether it agrees; each sample is new (``--seed`` repeats one)."""

from __future__ import annotations

import dataclasses
import functools
import os
import random
import tempfile
import time
from pathlib import Path

from .. import machine
from ..analysis.agreement import cell_check, run_check, verdict
from ..analysis.stats import fmt_p
from ..analysis.tables import CONFIG_COLUMNS, table_cells
from ..common import UsageError, report_root, runs_root, write_json_atomically
from ..config import RunConfig
from ..store import config_from_dict, load_record, record_path
from .engine import Engine, EngineError
from .published import record_file
from .publishing import derive_csvs, read_checked

MIN_SEEDS = 2  # per sampled cell: Welch needs two on each side


def cell_of(config: RunConfig) -> str:
    """A run's cell: the tables' CONFIG_COLUMNS, then each other training field off its default."""
    fixed = (*CONFIG_COLUMNS, "seed", "confirm_seeds", "holdout_seed")  # the holdouts: evaluated only
    c = config.to_dict()
    base = RunConfig(**{n: c[n] for n in ("protocol", "model", "weight_sharing")}).to_dict()
    names = [*CONFIG_COLUMNS, *(n for n in c if n not in fixed and c[n] != base[n])]
    return " ".join(f"{n}={int(c[n]) if isinstance(c[n], bool) else c[n]}" for n in names)


@dataclasses.dataclass
class CommittedRun:
    config: RunConfig
    key: str
    device: str
    metrics: dict
    machine: dict | None
    train_seconds: float

    @functools.cached_property
    def cell(self) -> str:
        return cell_of(self.config)


def load_committed(report_dir, profile) -> tuple[list[CommittedRun], list[str]]:
    """The published record's runs and the cells always retrained (decisive_cells); a runs.csv or cells.csv
    beside it that it does not derive byte for byte is refused, whether or not the sample holds the edit."""
    path = record_file(report_dir)
    records, executions = checked = read_checked(path, profile)
    with tempfile.TemporaryDirectory(prefix="siamese-verify-") as tmp:
        for derived in derive_csvs(path, tmp, profile, checked).values():
            ours = Path(report_dir) / derived.name
            if ours.is_file() and ours.read_bytes() != derived.read_bytes():
                raise UsageError(
                    f"verify: {ours} is not what {path.name} beside it derives (an edit?); "
                    f"python -m siamese_lib run --profile {profile.name} --from-record writes it again"
                )
    runs = []
    for r in records:
        parts = (r["key"], r["device"], r["metrics"], r.get("machine"), r["metrics"]["train_seconds"])
        runs.append(CommittedRun(config_from_dict(r["config"]), *parts))
    return runs, decisive_cells(runs, executions, table_cells(records, executions, profile.name))


def decisive_cells(runs, executions, cells) -> list[str]:
    """The headline's cell (the best complete Table I cell of the corrected protocol) and each selection
    candidate's (the runs with a validation split, whose numbers decided a choice)."""
    table1 = [c for c in cells if c.table == "table1" and c.protocol == "corrected" and c.complete]
    best = min(table1, key=lambda c: c.mean).config if table1 else None
    out = [
        cell_of(ex.configs()[0])
        for ex in executions
        if ex.stage == "table1" and tuple(getattr(ex.configs()[0], f) for f in CONFIG_COLUMNS) == best
    ]
    return list(dict.fromkeys(out + [r.cell for r in runs if r.config.val_pairs > 0]))


def by_cell(runs) -> dict[str, list[CommittedRun]]:
    out: dict[str, list[CommittedRun]] = {}
    for r in runs:
        out.setdefault(r.cell, []).append(r)
    return out


def stratified_sample(runs, budget_seconds, jobs, full, seed=0, priority=()) -> list[CommittedRun]:
    """The ``priority`` cells first, whatever the budget; then cells in turn from each stratum (beyond the
    paper or not, model, protocol), in an order drawn from ``seed``, while their committed seconds fit."""
    cells = by_cell(runs)
    if full:
        return [r for cell in cells.values() for r in sorted(cell, key=lambda r: r.config.seed)]
    chosen = [r for n in dict.fromkeys(priority) if n in cells for r in _lowest(cells.pop(n))]
    cost = sum(r.train_seconds for r in chosen) / jobs
    strata: dict[tuple, list[str]] = {}
    # the paper's cells (no validation split) first, both protocols in turn
    for name, members in cells.items():
        c = members[0].config
        strata.setdefault((c.val_pairs > 0, c.model, c.protocol), []).append(name)
    rng = random.Random(seed)
    queues = [rng.sample(sorted(strata[k]), len(strata[k])) for k in sorted(strata)]
    while any(queues):
        for q in (q for q in queues if q):
            members = _lowest(cells[q.pop(0)])
            extra = sum(r.train_seconds for r in members) / jobs
            if members and cost + extra <= budget_seconds:
                chosen += members
                cost += extra
    return chosen


def _lowest(cell: list[CommittedRun]) -> list[CommittedRun]:
    """A cell's MIN_SEEDS lowest seeds; none when it has fewer."""
    members = sorted(cell, key=lambda r: r.config.seed)[:MIN_SEEDS]
    return members if len(members) == MIN_SEEDS else []


def judged_by(run: CommittedRun, runs: list[CommittedRun], here: dict, log) -> dict | None:
    """Its own fingerprint, or its cell's other runs' where this machine is the one they all share: a row
    claiming another machine cannot choose the statistical criterion for itself (issue 33)."""
    peers = [r.machine for r in runs if r.cell == run.cell and r.key != run.key]
    if (
        len({machine.numerics_signature(m) for m in peers}) == 1
        and machine.must_be_identical(peers[0], here)
        and not machine.must_be_identical(run.machine, here)
    ):
        log(f"  run {run.key}: its machine differs from its cell's, which this machine is: judged as theirs")
        return peers[0]
    return run.machine


def retrain_within_budget(sample, store_dir, jobs, budget, log) -> dict:
    """key -> {metrics, machine} of the cells retrained on ``jobs`` fresh processes; a cell starts only while
    the measured speed (seconds here per committed second) says it ends within ``budget`` (None: no limit)."""
    cells, results, here, there = by_cell(sample), {}, 0.0, 0.0
    start, engines = time.perf_counter(), {}
    try:
        for n, cell in enumerate(cells.values()):
            ratio = here / there if there else 1.0
            expected = sum(r.train_seconds for r in cell) * ratio / jobs  # this cell's seconds here
            if budget is not None and time.perf_counter() - start + expected > budget:
                log(f"  time budget: {len(cells) - n} cell(s) left out ({ratio:.1f} s here per committed s)")
                break
            for device in sorted({r.device for r in cell}):
                if device not in engines:
                    engines[device] = Engine(None, workers=jobs, device=device, log=lambda _: None)
                outcome = engines[device].train([r.config for r in cell if r.device == device], store_dir)
                if outcome.failed:
                    r = next(r for r in cell if r.key in outcome.failed)
                    error = outcome.failed[r.key]
                    raise EngineError(f"verify: retraining {r.cell} seed {r.config.seed} failed: {error}")
            for r in cell:
                record = load_record(record_path(store_dir, r.key))
                results[r.key] = {"metrics": record["metrics"], "machine": record["machine"]}
                here += record["metrics"]["train_seconds"]
                there += r.train_seconds
                log(
                    f"  [{len(results)}/{len(sample)}] {r.cell} seed {r.config.seed}: committed "
                    f"{r.metrics['test_error']:.2f} %, here {record['metrics']['test_error']:.2f} %"
                )
    finally:
        for engine in engines.values():
            engine.close()
    return results


def verify(report_dir, profile, base, minutes, jobs, full, log=print, seed=None) -> int:
    """Retrain a sample, say per run and per cell whether it agrees (base/verify.json); 0 when all agree."""
    runs, decisive = load_committed(report_dir, profile)
    seed = random.SystemRandom().randrange(1_000_000) if seed is None else seed
    cuda = machine.device_type("auto") == "cuda"
    runnable = [r for r in runs if r.device == "cpu" or cuda]
    if len(runnable) < len(runs):
        log(f"skipping {len(runs) - len(runnable)} GPU run(s): no GPU here")
    # the committed seconds are the committing machine's; retrain_within_budget corrects for this one's speed
    start = time.perf_counter()
    sample = stratified_sample(runnable, minutes * 60, jobs, full, seed=seed, priority=decisive)
    if not sample:
        raise UsageError(
            f"verify: no cell of {MIN_SEEDS} seeds fits in {minutes:g} minutes; give more --minutes"
        )
    numerics, path = profile.settings["numerics"], record_file(report_dir)
    log(
        f"verify {path}: {len(sample)} of {len(runs)} runs in {len(by_cell(sample))} cells, "
        f"{jobs} process(es), numerics {numerics}, budget {'none (--full)' if full else f'{minutes:g} min'}, "
        f"sample seed {seed} (--seed {seed} repeats this sample)"
    )
    results = retrain_within_budget(sample, Path(base) / "store", jobs, None if full else minutes * 60, log)
    seconds = time.perf_counter() - start
    sample = [r for r in sample if r.key in results]
    if not sample:
        raise UsageError(f"verify: not one run finished within {minutes:g} minutes; give more --minutes")
    checks, cells, committed_cells = [], [], by_cell(runs)
    log("\nper run (test error %, committed -> here):")
    for r in sample:
        new, here = results[r.key]["metrics"], results[r.key]["machine"]
        c = run_check(r.key, r.cell, r.config.seed, r.metrics, new, judged_by(r, runs, here, log), here)
        checks.append(c)
        same = "identical " if c.identical else "different "
        log(f"  {same} {c.cell} seed {c.seed}: {c.committed:.2f} -> {c.new:.2f}")
    log("per cell (committed: all its seeds; here: the seeds retrained):")
    for name, members in by_cell(sample).items():
        new = [results[r.key]["metrics"]["test_error"] for r in members]
        c = cell_check(name, [r.metrics["test_error"] for r in committed_cells[name]], new)
        cells.append(c)
        log(
            f"  {'agrees   ' if c.agrees else 'DISAGREES'} {name}: {c.committed_mean:.2f} +- "
            f"{c.committed_std:.2f} (n {c.committed_n}) vs {c.new_mean:.2f} +- {c.new_std:.2f} "
            f"(n {c.new_n}), Welch p {fmt_p(c.p)}"
        )
    v = verdict(checks, cells)
    log(f"this machine: {machine.describe(here)}")
    log(f"committed machines: {', '.join(sorted({machine.describe(r.machine) for r in sample}))}")
    for line in [*v.lines, f"took {seconds:.0f} s"]:
        log(line)
    out = Path(base) / "verify.json"
    write_json_atomically(
        out,
        {
            "record": str(path),
            "sample_seed": seed,
            "numerics": numerics,
            "jobs": jobs,
            "minutes": None if full else minutes,
            "seconds": round(seconds, 1),
            "ok": v.ok,
            "criterion": v.criterion,
            "summary": v.lines,
            "machine_here": here,
            "runs": [dataclasses.asdict(c) for c in checks],
            "cells": [dataclasses.asdict(c) for c in cells],
        },
    )
    log(f"wrote {out}")
    return 0 if v.ok else 1


def main(args, profile) -> int:
    machine.apply_numerics(profile.settings["numerics"])
    jobs = args.jobs or min(2, os.cpu_count() or 1)
    base = runs_root() / profile.name / "verify"
    report = report_root() / profile.name
    return verify(report, profile, base, args.minutes, jobs, args.full, seed=getattr(args, "seed", None))
