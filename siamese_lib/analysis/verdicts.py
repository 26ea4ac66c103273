"""Does a cell agree with the paper? One verdict per cell, from two tests against the paper's mean/std/n:

- equivalence (two one-sided Welch tests, stats.tost_p) with the profile's ``equivalence_margin``
  (percentage points of test error, declared before the runs);
- difference (two-sided Welch, stats.welch_p).

"equivalent within the margin" when the equivalence test rejects (the difference lies within +-margin,
whether or not it is also significantly non-zero: a difference smaller than the margin is what the margin
declares negligible); "different" when only the difference test rejects; "inconclusive" when neither does.
Counts are over distinct cells: a Table II cell made of the same runs as a Table I cell is counted once.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import tables
from .stats import ALPHA_DIFFERENCE, ALPHA_EQUIVALENCE, bh_adjust, tost_p, welch_p
from .tables import cell_map

EQUIVALENT, DIFFERENT, INCONCLUSIVE = "equivalent within the margin", "different", "inconclusive"
VERDICTS = (EQUIVALENT, DIFFERENT, INCONCLUSIVE)


@dataclass(frozen=True)
class Agreement:
    difference: float  # ours - paper, points
    welch_p: float
    tost_p: float
    verdict: str  # one of VERDICTS, '' when either side is undefined


def agreement(mean, std, n, paper_mean, paper_std, paper_n, margin) -> Agreement:
    """The verdict of one cell from summary statistics."""
    p_diff = welch_p(mean, std, n, paper_mean, paper_std, paper_n)
    p_eq = tost_p(mean, std, n, paper_mean, paper_std, paper_n, margin)
    return Agreement(mean - paper_mean, p_diff, p_eq, _verdict(p_diff, p_eq))


def _verdict(p_diff, p_eq) -> str:
    if p_diff != p_diff or p_eq != p_eq:  # NaN: fewer than 2 seeds on a side
        return ""
    if p_eq < ALPHA_EQUIVALENCE:
        return EQUIVALENT
    return DIFFERENT if p_diff < ALPHA_DIFFERENCE else INCONCLUSIVE


def cell_agreement(cell, margin) -> Agreement:
    if not cell.complete:
        return Agreement(float("nan"), float("nan"), float("nan"), "")
    return agreement(cell.mean, cell.std, cell.n, cell.paper_mean, cell.paper_std, cell.paper_n, margin)


CONFIG_COLUMNS = ["protocol", "model", "weight_sharing", "aux_loss", "batch_norm", "dropout", "lr", "epochs"]


def distinct_cells(cells, protocol) -> list:
    """The complete cells of one protocol, each set of runs once: a Table II cell made of the same runs as a
    Table I cell (LeNet5, auxiliary loss, batch norm, no dropout) is left out."""
    seen, out = set(), []
    for c in cells:
        if c.protocol == protocol and c.complete and c.config not in seen:
            seen.add(c.config)
            out.append(c)
    return out


def verdict_frame(cells, margin):
    """cells.csv: tables.cells_frame's columns, then the equivalence test's p, the verdict, the epochs as trained
    and whether the cell is counted (False for a Table II cell that repeats a Table I cell's runs)."""
    frame = tables.cells_frame(cells)
    results = [cell_agreement(c, margin) for c in cells]
    frame["epochs_trained"] = [c.epochs_trained for c in cells]
    frame["tost_p"] = [r.tost_p for r in results]
    frame["verdict"] = [r.verdict for r in results]
    frame["counted"] = ~frame.duplicated(CONFIG_COLUMNS) & frame["n"].gt(0)
    return frame


def frame_verdicts(frame, margin):
    """The verdicts recomputed from a cells.csv's summary columns (a published record's, say)."""
    out = frame.copy()
    results = [
        agreement(r.mean, r.std, r.n, r.paper_mean, r.paper_std, r.paper_n, margin)
        for r in frame.itertuples()
    ]
    out["tost_p"] = [r.tost_p for r in results]
    out["verdict"] = [r.verdict for r in results]
    out["counted"] = ~out.duplicated(CONFIG_COLUMNS) & out["n"].gt(0)
    return out


def count_verdicts(welch_ps, tost_ps, adjusted=False) -> dict:
    """verdict -> how many of the cells whose tests gave these p-values (every verdict present, zero or not);
    ``adjusted``: each test's p-values Benjamini-Hochberg adjusted over these cells (the family of the count)."""
    welch_ps, tost_ps = list(welch_ps), list(tost_ps)
    if adjusted:
        welch_ps, tost_ps = bh_adjust(welch_ps), bh_adjust(tost_ps)
    counts = dict.fromkeys(VERDICTS, 0)
    for p_diff, p_eq in zip(welch_ps, tost_ps, strict=True):
        if _verdict(p_diff, p_eq):
            counts[_verdict(p_diff, p_eq)] += 1
    return counts


def frame_counts(frame, protocol, adjusted=False) -> dict:
    """count_verdicts over the distinct cells of the protocol, from a frame with welch_p and tost_p columns."""
    rows = frame[(frame["protocol"] == protocol) & frame["counted"]]
    return count_verdicts(rows["welch_p"], rows["tost_p"], adjusted)


def verdict_counts(cells, protocol, margin, adjusted=False) -> dict:
    """count_verdicts over the distinct complete cells of the protocol."""
    results = [cell_agreement(c, margin) for c in distinct_cells(cells, protocol)]
    return count_verdicts([r.welch_p for r in results], [r.tost_p for r in results], adjusted)


# --- cells that differ from the paper, and what the other protocol says about them -----------------------


@dataclass
class Deviation:
    table: str
    key: tuple
    corrected: object  # tables.Cell
    original: object  # tables.Cell or None
    kind: str  # 'quirk', 'unexplained', 'original only', 'undetermined'

    @property
    def largest_abs_diff(self) -> float:
        return max(abs(c.diff) for c in (self.corrected, self.original) if c is not None and c.complete)


def deviations(cells, margin) -> list[Deviation]:
    """Every distinct cell judged "different" under either protocol, largest gap first, with what comparing the two
    protocols says: 'quirk' (different under the corrected protocol, equivalent under the original: the quirks
    account for the gap), 'unexplained' (different under both), 'original only', 'undetermined' (the original cell
    is missing or inconclusive)."""
    corr, orig = cell_map(cells, "corrected"), cell_map(cells, "original")
    keep = {(c.table, c.key) for p in ("corrected", "original") for c in distinct_cells(cells, p)}
    out = []
    for k, c in corr.items():
        if k not in keep:
            continue
        o = orig.get(k)
        dev_c = cell_agreement(c, margin).verdict == DIFFERENT
        dev_o = o is not None and cell_agreement(o, margin).verdict == DIFFERENT
        if not (dev_c or dev_o):
            continue
        o_equivalent = o is not None and cell_agreement(o, margin).verdict == EQUIVALENT
        kind = (
            "unexplained"
            if dev_c and dev_o
            else "original only"
            if dev_o
            else "quirk"
            if o_equivalent
            else "undetermined"
        )
        out.append(Deviation(k[0], k[1], c, o, kind))
    out.sort(key=lambda d: -d.largest_abs_diff)
    return out
