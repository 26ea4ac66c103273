"""Does a retrain agree with the committed record? Per run, bit for bit where the machines' fingerprints say
it must (machine.must_be_identical); per cell, elsewhere, by a two-sided Welch test at ALPHA."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import machine
from ..config import ERROR_METRICS
from .stats import fmt_p, mean_std_n, welch_p

ALPHA = 0.01  # per cell; a cell disagrees when Welch's p is below it
COMPARED_METRICS = (
    *(f"test_{m}" for m in ERROR_METRICS[:5]),
    "train_error",
)  # the errors, less the disagreement


@dataclass
class RunCheck:
    key: str
    cell: str
    seed: int
    committed: float  # test error (%), committed record
    new: float  # test error (%), retrained here
    identical: bool  # every compared metric equal, to the last bit
    must_be_identical: bool  # the fingerprints say it had to be

    @property
    def failed(self) -> bool:
        return self.must_be_identical and not self.identical


@dataclass
class CellCheck:
    cell: str
    committed_mean: float
    committed_std: float
    committed_n: int
    new_mean: float
    new_std: float
    new_n: int
    p: float

    @property
    def tested(self) -> bool:
        return not math.isnan(self.p)

    @property
    def agrees(self) -> bool:
        return not self.tested or self.p >= ALPHA


def run_check(
    key, cell, seed, committed_metrics: dict, new_metrics: dict, committed_machine, new_machine
) -> RunCheck:
    # each compared metric equal to the last bit, or absent on both sides (None, or a CSV's empty cell: NaN)
    values = [[m.get(k) for k in COMPARED_METRICS] for m in (committed_metrics, new_metrics)]
    same = np.array_equal(*np.array(values, dtype=float), equal_nan=True)
    errors = float(committed_metrics["test_error"]), float(new_metrics["test_error"])
    return RunCheck(key, cell, seed, *errors, same, machine.must_be_identical(committed_machine, new_machine))


def cell_check(cell, committed_errors, new_errors) -> CellCheck:
    """All the committed seeds of a cell against the ones retrained here (Welch, two-sided)."""
    cm, cs, cn = mean_std_n(committed_errors)
    nm, ns, nn = mean_std_n(new_errors)
    return CellCheck(cell, cm, cs, cn, nm, ns, nn, welch_p(cm, cs, cn, nm, ns, nn))


@dataclass
class Verdict:
    ok: bool
    criterion: str  # "bit-identical" or "statistical"
    failed_runs: list
    failed_cells: list
    lines: list


def verdict(runs: list[RunCheck], cells: list[CellCheck]) -> Verdict:
    exact = bool(runs) and all(r.must_be_identical for r in runs)
    failed_runs = [r for r in runs if r.failed]
    failed_cells = [c for c in cells if not c.agrees]
    lines = [f"runs: {sum(r.identical for r in runs)} of {len(runs)} bit-identical to the committed record"]
    if exact:
        lines.append(
            "criterion: bit-identical (the fingerprints say this machine must reproduce every run exactly)"
        )
    else:
        n_exact = sum(r.must_be_identical for r in runs)
        lines.append(
            f"criterion: statistical (Welch, alpha {ALPHA} per cell): the committed runs came from another "
            f"machine or numerics, or carry no fingerprint, so per-seed numbers may differ"
            + (f"; {n_exact} run(s) had to be identical" if n_exact else "")
        )
    untested = [c.cell for c in cells if not c.tested]
    if untested:
        lines.append(f"not tested (fewer than 2 seeds on a side): {', '.join(untested)}")
    for r in failed_runs:
        lines.append(
            f"FAIL run {r.key} ({r.cell}, seed {r.seed}): {r.committed:.2f} % committed, {r.new:.2f} % here, "
            "and the fingerprints say they must be identical"
        )
    for c in failed_cells:
        lines.append(
            f"FAIL cell {c.cell}: committed {c.committed_mean:.2f} % (n {c.committed_n}), here "
            f"{c.new_mean:.2f} % (n {c.new_n}), Welch p {fmt_p(c.p)} < {ALPHA}"
        )
    ok = not failed_runs and not failed_cells
    disagree = f"{len(failed_runs)} run(s) and {len(failed_cells)} cell(s) disagree"
    lines.append(f"verdict: {'everything agrees' if ok else disagree}")
    return Verdict(ok, "bit-identical" if exact else "statistical", failed_runs, failed_cells, lines)
