"""The numbers the report's words are filled with (the words live in report/template/paper/sections/).

One dict per part of the report, plain values only: verdict counts over distinct cells, the claims under
each protocol, the cells that differ from the paper. Nothing here formats a sentence.
"""
from __future__ import annotations

from ..config import ORIGINAL_NO_AUX_EPOCHS
from .claims import MIN_SEEDS, NOT_TESTED, combine
from .stats import ALPHA_DIFFERENCE, ALPHA_EQUIVALENCE, FDR
from .tables import QUIRKS, TABLE_NAMES, applicable_quirks, cell_label, cell_map
from .verdicts import VERDICTS, cell_agreement, deviations, distinct_cells, verdict_counts

PAPER_BEST_KEY = ("table1", ("LeNet5_FullyConv", True, True))


def _cell(c, margin) -> dict | None:
    if c is None or not c.complete:
        return None
    a = cell_agreement(c, margin)
    return {"label": c.label, "table": TABLE_NAMES[c.table], "mean": c.mean, "std": c.std, "n": c.n,
            "paper_mean": c.paper_mean, "paper_std": c.paper_std, "paper_n": c.paper_n, "diff": a.difference,
            "welch_p": a.welch_p, "tost_p": a.tost_p, "verdict": a.verdict, "epochs": c.epochs,
            "epochs_trained": c.epochs_trained}


def agreement_numbers(cells, protocols, margin) -> dict:
    """Per protocol: the verdict counts over distinct complete cells, how many cells the tables have and how
    many are complete; the tests' thresholds; the paper's best configuration as we measure it."""
    out = {"margin": margin, "alpha_equivalence": ALPHA_EQUIVALENCE, "alpha_difference": ALPHA_DIFFERENCE,
           "fdr": FDR, "verdicts": list(VERDICTS), "protocols": {}}
    for p in protocols:
        mine = [c for c in cells if c.protocol == p]
        out["protocols"][p] = {"counts": verdict_counts(cells, p, margin), "distinct": len(distinct_cells(cells, p)),
                               "cells": len(mine), "complete": sum(c.complete for c in mine),
                               "paper_best": _cell(cell_map(cells, p).get(PAPER_BEST_KEY), margin)}
    done = [c for c in cells if c.protocol == "corrected" and c.table == "table1" and c.complete]
    out["best"] = _cell(min(done, key=lambda c: c.mean), margin) if done else None
    return out


def claim_rows(corrected, original, paper_own) -> list[dict]:
    """One row per claim: what the paper says, the rule, the verdict under each protocol and on the paper's own
    numbers, the one combined verdict, and the evidence."""
    rows = []
    for i, c in enumerate(corrected):
        o = original[i] if original else None
        rows.append({"name": c.name, "paper": c.paper, "rule": c.rule, "corrected": c.verdict,
                     "original": o.verdict if o else None, "paper_own": paper_own[i].verdict if paper_own else None,
                     "verdict": combine(c, o), "evidence": c.evidence, "evidence_original": o.evidence if o else None,
                     "tested": c.verdict != NOT_TESTED})
    return rows


def deviation_rows(cells, margin) -> list[dict]:
    """The distinct cells judged "different" under either protocol, with both protocols' numbers and the quirks
    that touch them (by name, described once in the supplement)."""
    return [{"label": cell_label(d.table, d.key), "table": TABLE_NAMES[d.table], "kind": d.kind,
             "corrected": _cell(d.corrected, margin), "original": _cell(d.original, margin),
             "quirks": [f"quirk {q}" for q in applicable_quirks(d.table, d.key)]}
            for d in deviations(cells, margin)]


def quirk_list() -> list[dict]:
    return [{"number": q, "text": text} for q, text in QUIRKS.items()]


def report_numbers(cells, protocols, margin, claims, claims_original, claims_paper, selection=None) -> dict:
    """Everything the report's templates are filled with (agreement, claims, deviations, the rule's sizes, and the
    pre-declared selection's headline, selection_results.headline_numbers, or None)."""
    rows = claim_rows(claims, claims_original if "original" in protocols else None, claims_paper)
    return dict(agreement=agreement_numbers(cells, protocols, margin), claims=rows,
                deviations=deviation_rows(cells, margin), min_seeds=MIN_SEEDS,
                quirk1_epochs=ORIGINAL_NO_AUX_EPOCHS, has_original="original" in protocols,
                tested=bool(rows) and all(r["tested"] for r in rows), selection=selection)
