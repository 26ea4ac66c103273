"""Does a cell agree with the paper? "equivalent within the margin" when the equivalence test (stats.tost_p,
the profile's ``equivalence_margin``) rejects, "different" when only the two-sided Welch test does,
"inconclusive" when neither does. Counts are over distinct cells (a Table II cell that is a Table I cell)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from .stats import ALPHA_DIFFERENCE, ALPHA_EQUIVALENCE, bh_adjust, tost_p, welch_p
from .tables import CONFIG_COLUMNS, TABLE_NAMES, applicable_quirks, cell_label, cell_map, distinct_cells

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
    return agreement(cell.mean, cell.std, cell.n, cell.paper_mean, cell.paper_std, cell.paper_n, margin)


def verdict_frame(cells, margin) -> pd.DataFrame:
    """cells.csv: one row per cell (tables.Cell, or a published cells.csv frame) with the paper's and our
    statistics, then the equivalence test's p, the verdict and whether the cell is counted (distinct, run)."""
    frame = cells.copy() if isinstance(cells, pd.DataFrame) else pd.DataFrame([_row(c) for c in cells])
    results = [
        agreement(r.mean, r.std, r.n, r.paper_mean, r.paper_std, r.paper_n, margin)
        for r in frame.itertuples()
    ]
    frame["tost_p"] = [r.tost_p for r in results]
    frame["verdict"] = [r.verdict for r in results]
    frame["counted"] = ~frame.duplicated(CONFIG_COLUMNS) & frame["n"].gt(0)
    return frame


def _row(c) -> dict:
    """A cell's row of cells.csv: its identity (CONFIG_COLUMNS), the paper's statistics and ours."""
    row = {"table": TABLE_NAMES[c.table], **dict(zip(CONFIG_COLUMNS, c.config, strict=True))}
    row.update({k: getattr(c, k) for k in ("paper_mean", "paper_std", "paper_n", "mean", "std", "n")})
    row.update(difference=c.diff, welch_p=c.p_value, mean_train_seconds=c.mean_train_seconds)
    return dict(row, missing=c.missing_text(), epochs_trained=c.epochs_trained)


def verdict_counts(frame, protocol, adjusted=False) -> dict:
    """verdict -> how many counted cells of the protocol (verdict_frame) have it, every verdict present;
    ``adjusted``: each test's p-values Benjamini-Hochberg adjusted over these cells."""
    rows = frame[(frame["protocol"] == protocol) & frame["counted"]]
    welch_ps, tost_ps = list(rows["welch_p"]), list(rows["tost_p"])
    if adjusted:
        welch_ps, tost_ps = bh_adjust(welch_ps), bh_adjust(tost_ps)
    found = Counter(map(_verdict, welch_ps, tost_ps))
    return {verdict: found[verdict] for verdict in VERDICTS}


def cell_numbers(c, margin) -> dict | None:
    """A complete cell's row of cells.csv with its label and agreement; None for a cell not complete."""
    if c is None or not c.complete:
        return None
    a = cell_agreement(c, margin)
    return {**_row(c), "label": c.label, "diff": a.difference, "tost_p": a.tost_p, "verdict": a.verdict}


def deviations(cells, margin) -> list[dict]:
    """Every distinct cell "different" under either protocol, largest gap first, with both protocols' numbers
    and the quirks that touch it. ``kind``: 'quirk' (different corrected, equivalent original), 'unexplained'
    (both different), 'original only', 'undetermined' (original missing or inconclusive)."""
    corr, orig = cell_map(cells, "corrected"), cell_map(cells, "original")
    keep = {(c.table, c.key) for p in ("corrected", "original") for c in distinct_cells(cells, p)}
    out = []
    for k, c in corr.items():
        o = orig.get(k)
        verdict_o = cell_agreement(o, margin).verdict if o is not None else ""
        dev_c, dev_o = cell_agreement(c, margin).verdict == DIFFERENT, verdict_o == DIFFERENT
        if k not in keep or not (dev_c or dev_o):
            continue
        kinds = {(True, True): "unexplained", (False, True): "original only"}
        kind = kinds.get((dev_c, dev_o), "quirk" if verdict_o == EQUIVALENT else "undetermined")
        row = {"label": cell_label(*k), "table": TABLE_NAMES[k[0]], "kind": kind}
        row.update(corrected=cell_numbers(c, margin), original=cell_numbers(o, margin))
        gap = max(abs(x.diff) for x in (c, o) if x is not None and x.complete)
        out.append((-gap, len(out), {**row, "quirks": applicable_quirks(*k)}))
    return [row for *_, row in sorted(out)]
