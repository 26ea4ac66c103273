"""``python -m siamese_lib verify``: retrain a sample of a committed record here and say whether it agrees.

The record is ``report/<profile>/runs.csv`` (one row per run; a duplicated row or a cells.csv row that does not
follow from it, a table cell's row removed say, is an error naming them). The sample is stratified: cells (a
configuration over its seeds) are taken in turn from each (paper or beyond, model, protocol) stratum, each with at
least MIN_SEEDS seeds so its mean can be tested, until the time budget is spent (``--full``: every run). It is drawn
anew each time (its seed printed; ``--seed`` repeats one), so an edit outside one sample is caught by another.
Runs are retrained on the engine's local cluster (fresh processes, one torch thread each, the profile's
numerics) into a store of their own, ``runs/<profile>/verify/store``, so the record that was checked and the retrains stay apart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path

import pandas as pd

from .. import machine
from ..analysis.agreement import cell_check, run_check, verdict
from ..analysis.stats import fmt_p, mean_std_n
from ..common import UsageError, report_root, runs_root, write_json_atomically
from ..config import RunConfig, key_defaults
from ..experiments.profiles import ProfileError, load_profile
from ..store import load_record, record_path, run_key
from .engine import Engine, EngineError

MIN_SEEDS = 2  # per sampled cell: Welch needs two on each side
DEFAULT_MINUTES = 10.0
CELL_FIELDS = (
    "protocol",
    "model",
    "weight_sharing",
    "aux_loss",
    "batch_norm",
    "dropout",
    "lr",
    "epochs",
)  # cells.csv


@dataclasses.dataclass
class CommittedRun:
    config: RunConfig
    key: str
    device: str
    metrics: dict
    machine: dict | None
    train_seconds: float

    @property
    def cell(self) -> str:
        c = self.config
        extra = "".join(
            f" {f}={getattr(c, f)}"
            for f in (
                "aux_weight",
                "aux_schedule",
                "weight_decay",
                "l1",
                "augment",
                "val_pairs",
                "lr_schedule",
                "branch_calls",
            )
            if getattr(c, f) != getattr(RunConfig(protocol=c.protocol, weight_sharing=c.weight_sharing), f)
        )
        return (
            f"{c.protocol} {c.model} ws{int(c.weight_sharing)} aux{int(c.aux_loss)} bn{int(c.batch_norm)} "
            f"do{int(c.dropout)} lr {c.lr:g} {c.epochs} ep{extra}"
        )


def config_from_row(row: dict) -> RunConfig:
    """A runs.csv row's configuration (a column absent from an older CSV: the value those runs had)."""
    values = {}
    for f in dataclasses.fields(RunConfig):
        v = row.get(f.name, key_defaults(row).get(f.name))
        if f.name in (
            "augment",
            "confirm_seeds",
        ):  # a single seed reads back as a number (a float beside NaN)
            v = int(v) if isinstance(v, float) and v.is_integer() else v
            text = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) if _present(v) else ""
            items = tuple(a for a in text.split(",") if a)
            values[f.name] = tuple(map(int, items)) if f.name == "confirm_seeds" else items
        elif _present(v):
            default = getattr(RunConfig, f.name)
            kind = type(default) if default is not None else str if f.name == "head" else int
            values[f.name] = bool(v) if kind is bool else kind(v)
    return RunConfig(**values)


def _present(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def load_committed(csv_path: Path, log=print) -> list[CommittedRun]:
    """The runs of a committed runs.csv, each row checked (one line naming the row and what is wrong)."""
    if not csv_path.is_file():
        raise UsageError(
            f"verify: no committed record at {csv_path} (run the profile first, or name another)"
        )
    runs = []
    try:
        rows = pd.read_csv(csv_path).to_dict("records")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise UsageError(f"verify: {csv_path}: not a runs.csv ({' '.join(str(exc).split())[:200]})") from None
    for i, row in enumerate(rows, 2):
        try:
            config = config_from_row(row)
            key, device = row["key"], row["device"]
            fp = row.get("machine")
            run = CommittedRun(
                config,
                key,
                device,
                row,
                json.loads(fp) if isinstance(fp, str) and fp else None,
                float(row.get("train_seconds") or 0.0),
            )
            if not 0 <= float(row["test_error"]) <= 100:  # NaN too (pandas reads "n/a" as NaN)
                raise ValueError(f"test_error {row['test_error']!r} is not a percentage")
        except KeyError as exc:
            raise UsageError(f"verify: {csv_path}: no column {exc} (line {i})") from None
        except (ValueError, TypeError) as exc:
            raise UsageError(f"verify: {csv_path}: line {i}: {' '.join(str(exc).split())[:200]}") from None
        if run_key(config, device) != key:
            raise UsageError(f"verify: {csv_path}: cannot rebuild the configuration of run {key} (line {i})")
        runs.append(run)
    cells_csv = csv_path.with_name("cells.csv")
    if not cells_csv.is_file():
        log(f"no {cells_csv.name} beside {csv_path}: its cells are not checked against the runs")
    problem = rows_problem(runs) or cells_problem(cells_csv, runs)
    if problem:
        raise UsageError(f"verify: {csv_path}: {problem}")
    return runs


def cell_name(row) -> str:
    """A cells.csv row's cell: its fields typed as runs.csv's, the rest at their defaults (the tables' configs)."""
    typed = config_from_row({f: row[f] for f in CELL_FIELDS})
    return CommittedRun(RunConfig(**{f: getattr(typed, f) for f in CELL_FIELDS}), "", "", {}, None, 0.0).cell


def rows_problem(runs: list[CommittedRun]) -> str | None:
    """Duplicated rows (a key twice), named; None when there are none. A row missing from a table cell is
    cells_problem's to find: a cell's seeds need not be one range (two stages may share a configuration, each with
    its own seeds)."""
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.key] = seen.get(r.key, 0) + 1
    twice = [f"{k} ({n} times)" for k, n in seen.items() if n > 1]
    return twice and f"duplicated rows: {', '.join(twice[:5])}" or None


def cells_problem(cells_csv: Path, runs: list[CommittedRun]) -> str | None:
    """The cells.csv rows (beside runs.csv) whose n, mean or std do not follow from runs.csv, named."""
    if not cells_csv.is_file():
        return None
    errors = {}
    for r in sorted(runs, key=lambda r: r.config.seed):
        errors.setdefault(r.cell, []).append(float(r.metrics["test_error"]))
    wrong = []
    for row in pd.read_csv(cells_csv).to_dict("records"):
        if not _present(row.get("n")) or not row["n"]:  # a cell not run: nothing to follow
            continue
        cell = cell_name(row)
        # a table cell's seeds are its configuration's lowest (a later stage may train it on further seeds, as
        # a selection's final runs of the same configuration do)
        mean, std, n = mean_std_n(errors.get(cell, [])[: int(row["n"])])
        if n != row["n"] or not (
            math.isclose(mean, row["mean"], abs_tol=1e-6)
            and (n < 2 or math.isclose(std, row["std"], abs_tol=1e-6))
        ):
            wrong.append(
                f"{row['table']} {cell} (cells.csv: mean {row['mean']:.4f}, n {row['n']}; "
                f"runs.csv: mean {mean:.4f}, n {n})"
            )
    return wrong and f"cells.csv does not follow from runs.csv: {'; '.join(wrong[:3])}" or None


def stratified_sample(
    runs: list[CommittedRun],
    budget_seconds: float,
    jobs: int,
    full: bool,
    slowdown: float = 1.0,
    seed: int = 0,
    priority=(),
) -> list[CommittedRun]:
    """The ``priority`` cells first, whatever the budget (the headline's and the selection candidates'); then
    cells taken in turn from each stratum (beyond-the-paper or not, model, protocol), in an order drawn from
    ``seed``, MIN_SEEDS seeds each (the lowest seeds), while the estimated cost (committed train seconds x
    ``slowdown``) fits the budget."""
    cells: dict[str, list[CommittedRun]] = {}
    for r in runs:
        cells.setdefault(r.cell, []).append(r)
    if full:
        return [r for cell in cells.values() for r in sorted(cell, key=lambda r: r.config.seed)]
    chosen = [r for n in dict.fromkeys(priority) if n in cells for r in _lowest(cells.pop(n))]
    cost = sum(r.train_seconds for r in chosen) * slowdown / jobs  # the headline's and the candidates' cells
    strata: dict[tuple, list[str]] = {}
    for name, members in cells.items():
        c = members[0].config
        # the paper's cells (no validation split) first, and each model under both protocols in turn
        strata.setdefault((c.val_pairs > 0, c.model, c.protocol), []).append(name)
    rng = random.Random(seed)
    queues = []
    for key in sorted(strata):
        names = sorted(strata[key])
        rng.shuffle(names)
        queues.append(names)
    while any(queues):
        for q in queues:
            if not q:
                continue
            members = _lowest(cells[q.pop(0)])
            extra = sum(r.train_seconds for r in members) * slowdown / jobs
            if members and cost + extra <= budget_seconds:
                chosen += members
                cost += extra
    return chosen


def _lowest(cell: list[CommittedRun]) -> list[CommittedRun]:
    """A cell's MIN_SEEDS lowest seeds; none when it has fewer (Welch needs two on each side)."""
    members = sorted(cell, key=lambda r: r.config.seed)[:MIN_SEEDS]
    return members if len(members) == MIN_SEEDS else []


def decisive_cells(runs: list[CommittedRun], csv_path: Path) -> list[str]:
    """The cells verify always retrains: the headline's (the best corrected Table I cell of cells.csv) and each
    selection candidate's (the runs with a validation split, whose numbers decided a choice)."""
    out = [r.cell for r in runs if r.config.val_pairs > 0]
    try:
        cells = pd.read_csv(csv_path.with_name("cells.csv"))
        best = cells[(cells["table"] == "Table I") & (cells["protocol"] == "corrected") & (cells["n"] > 0)]
        best = best.loc[best["mean"].idxmin()] if not best.empty else None
    except (OSError, KeyError, ValueError, TypeError, pd.errors.EmptyDataError):
        best = None
    if best is not None:
        out.insert(0, cell_name(best))
    return list(dict.fromkeys(out))


def judged_by(run: CommittedRun, runs: list[CommittedRun], here: dict, log) -> dict | None:
    """The fingerprint a run is judged by: its own, or, where this machine is the one its cell's other runs all
    share (by machine.numerics_signature), theirs: a row that claims another machine than its cell's cannot choose
    the statistical criterion for itself (issue 33)."""
    peers = {machine.numerics_signature(r.machine) for r in runs if r.cell == run.cell and r.key != run.key}
    peer = next((r.machine for r in runs if r.cell == run.cell and r.key != run.key), None)
    if (
        len(peers) == 1
        and machine.must_be_identical(peer, here)
        and not machine.must_be_identical(run.machine, here)
    ):
        log(
            f"  run {run.key}: its machine field differs from its cell's other runs', which this machine matches: "
            f"judged as theirs (bit for bit)"
        )
        return peer
    return run.machine


def retrain_within_budget(sample, store_dir, numerics, jobs, budget, log) -> dict:
    """Retrain the sample cell by cell on the engine (a local cluster of ``jobs`` fresh processes, which inherit
    the profile's numerics); a cell is started only while the measured speed (seconds here per committed second)
    says it ends within ``budget`` (None: no limit). Returns key -> {metrics, machine} of the complete cells."""
    cells: dict[str, list] = {}
    for r in sample:
        cells.setdefault(r.cell, []).append(r)
    results, spent = {}, {"here": 0.0, "there": 0.0}
    start = time.perf_counter()
    engines = {}
    try:
        for n, cell in enumerate(cells.values()):
            ratio = spent["here"] / spent["there"] if spent["there"] else 1.0
            left = sum(r.train_seconds for r in cell) * ratio / jobs
            if budget is not None and time.perf_counter() - start + left > budget:
                log(
                    f"  time budget: {len(cells) - n} cell(s) left out ({ratio:.1f} s here per committed second)"
                )
                break
            by_key = {r.key: r for r in cell}
            for device in sorted({r.device for r in cell}):
                engine = engines.setdefault(
                    device, Engine(None, workers=jobs, device=device, log=lambda line: None)
                )
                outcome = engine.train([r.config for r in cell if r.device == device], store_dir)
                if outcome.failed:
                    key, error = next(iter(outcome.failed.items()))
                    raise EngineError(
                        f"verify: retraining {by_key[key].cell} seed {by_key[key].config.seed} "
                        f"failed: {error}"
                    )
            for r in cell:
                record = load_record(record_path(store_dir, r.key))
                results[r.key] = {"metrics": record["metrics"], "machine": record["machine"]}
                spent["here"] += record["metrics"]["train_seconds"]
                spent["there"] += r.train_seconds
                log(
                    f"  [{len(results)}/{len(sample)}] {r.cell} seed {r.config.seed}: committed "
                    f"{r.metrics['test_error']:.2f} %, here {record['metrics']['test_error']:.2f} %"
                )
    finally:
        for engine in engines.values():
            engine.close()
    return results


def verify(
    csv_path: Path,
    store_dir: Path,
    out_path: Path,
    numerics: str,
    minutes: float,
    jobs: int,
    full: bool,
    log=print,
    seed: int | None = None,
) -> int:
    runs = load_committed(csv_path, log)
    seed = random.SystemRandom().randrange(1_000_000) if seed is None else seed
    cuda = machine.device_type("auto") == "cuda"
    runnable = [r for r in runs if r.device == "cpu" or cuda]
    if len(runnable) < len(runs):
        log(f"skipping {len(runs) - len(runnable)} GPU run(s): no GPU here")
    # the committed seconds come from the committing machine; the plan assumes this one as fast, and
    # retrain_within_budget drops the cells that the measured speed leaves no time for
    start = time.perf_counter()
    sample = stratified_sample(
        runnable, minutes * 60, jobs, full, seed=seed, priority=decisive_cells(runnable, csv_path)
    )
    if not sample:
        raise UsageError(
            f"verify: no cell of {MIN_SEEDS} seeds fits in {minutes:g} minutes; give more --minutes"
        )
    log(
        f"verify {csv_path}: {len(sample)} of {len(runs)} runs in {len({r.cell for r in sample})} cells, "
        f"{jobs} process(es), numerics {numerics}, budget {'none (--full)' if full else f'{minutes:g} min'}, "
        f"sample seed {seed} (--seed {seed} repeats this sample)"
    )
    results = retrain_within_budget(sample, store_dir, numerics, jobs, None if full else minutes * 60, log)
    seconds = time.perf_counter() - start
    sample = [r for r in sample if r.key in results]
    if not sample:
        raise UsageError(f"verify: not one run finished within {minutes:g} minutes; give more --minutes")
    checks = [
        run_check(
            r.key,
            r.cell,
            r.config.seed,
            r.metrics,
            results[r.key]["metrics"],
            judged_by(r, runs, results[r.key]["machine"], log),
            results[r.key]["machine"],
        )
        for r in sample
    ]
    by_cell = {}
    for r in sample:
        by_cell.setdefault(r.cell, []).append(results[r.key]["metrics"]["test_error"])
    cells = [
        cell_check(name, [r.metrics["test_error"] for r in runs if r.cell == name], new)
        for name, new in by_cell.items()
    ]
    v = verdict(checks, cells)
    log("\nper run (test error %, committed -> here):")
    for c in checks:
        log(
            f"  {'identical ' if c.identical else 'different '} {c.cell} seed {c.seed}: {c.committed:.2f} -> {c.new:.2f}"
        )
    log("per cell (committed: all its seeds; here: the seeds retrained):")
    for c in cells:
        log(
            f"  {'agrees   ' if c.agrees else 'DISAGREES'} {c.cell}: {c.committed_mean:.2f} +- {c.committed_std:.2f} "
            f"(n {c.committed_n}) vs {c.new_mean:.2f} +- {c.new_std:.2f} (n {c.new_n}), Welch p {fmt_p(c.p)}"
        )
    log(f"this machine: {machine.describe(next(iter(results.values()))['machine'])}")
    log(f"committed machines: {', '.join(sorted({machine.describe(r.machine) for r in sample}))}")
    for line in v.lines:
        log(line)
    log(f"took {seconds:.0f} s")
    write_json_atomically(
        out_path,
        {
            "record": str(csv_path),
            "sample_seed": seed,
            "numerics": numerics,
            "jobs": jobs,
            "minutes": None if full else minutes,
            "seconds": round(seconds, 1),
            "ok": v.ok,
            "criterion": v.criterion,
            "summary": v.lines,
            "machine_here": next(iter(results.values()))["machine"],
            "runs": [dataclasses.asdict(c) for c in checks],
            "cells": [dataclasses.asdict(c) for c in cells],
        },
    )
    log(f"wrote {out_path}")
    return 0 if v.ok else 1


def check_against_record(csv_path: Path, profile, log=print) -> None:
    """runs.csv and cells.csv must be what the published record beside them (checksum-checked, every run through
    the gate) derives, byte for byte: an edited cell is refused whether or not the sample holds it."""
    from .published import record_file
    from .publishing import derive_csvs

    record = record_file(csv_path.parent)
    if not record.exists():
        log(f"no published record beside {csv_path}: runs.csv is not checked against one")
        return
    with tempfile.TemporaryDirectory(prefix="siamese-verify-") as tmp:
        derived = derive_csvs(record, tmp, profile)
        for name in ("runs", "cells"):
            ours = csv_path.with_name(f"{name}.csv")
            if ours.is_file() and ours.read_bytes() != derived[name].read_bytes():
                raise UsageError(
                    f"verify: {ours} is not what {record.name} beside it derives (an edit?); "
                    f"python -m siamese_lib run --profile {profile.name} --from-record writes it again"
                )


def main(args) -> int:
    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        raise UsageError(str(exc)) from None
    numerics = profile.settings["numerics"]
    machine.apply_numerics(numerics)
    base = runs_root() / profile.name / "verify"
    check_against_record(report_root() / profile.name / "runs.csv", profile)
    return verify(
        report_root() / profile.name / "runs.csv",
        base / "store",
        base / "verify.json",
        numerics,
        args.minutes,
        args.jobs or min(2, os.cpu_count() or 1),
        args.full,
        seed=getattr(args, "seed", None),
    )
