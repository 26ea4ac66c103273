"""The numbers the report's words (report/template/paper/sections/) are filled with: plain values, one dict
per part of the report; nothing here formats a sentence."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from ..config import ORIGINAL_NO_AUX_EPOCHS, PAPER_MODELS
from ..experiments import planning
from ..experiments.profiles import PAPER_LRS
from . import claims
from .stats import ALPHA_DIFFERENCE, ALPHA_EQUIVALENCE, FDR
from .tables import PAPER_BEST_KEY, QUIRKS, TABLE_NAMES, cell_map, distinct_cells
from .verdicts import VERDICTS, cell_numbers, deviations, verdict_counts, verdict_frame


def agreement_numbers(cells, protocols, margin) -> dict:
    """Per protocol: the verdict counts over distinct complete cells, how many cells the tables have and how
    many are complete; the tests' thresholds; the paper's best configuration as we measure it."""
    out = dict(margin=margin, alpha_equivalence=ALPHA_EQUIVALENCE, alpha_difference=ALPHA_DIFFERENCE, fdr=FDR)
    out.update(verdicts=list(VERDICTS), protocols={})
    frame = verdict_frame(cells, margin)
    for p in protocols:
        mine = [c for c in cells if c.protocol == p]
        numbers = dict(counts=verdict_counts(frame, p), adjusted=verdict_counts(frame, p, adjusted=True))
        numbers.update(distinct=len(distinct_cells(cells, p)), cells=len(mine))
        numbers.update(complete=sum(c.complete for c in mine))
        best = cell_numbers(cell_map(cells, p).get(PAPER_BEST_KEY), margin)
        out["protocols"][p] = dict(numbers, paper_best=best)
    done = [c for c in cells if c.protocol == "corrected" and c.table == "table1" and c.complete]
    out["best"] = cell_numbers(min(done, key=lambda c: c.mean), margin) if done else None
    return out


def claim_rows(corrected, original, paper_own, rule="pooled_effect", without_failed=None) -> list[dict]:
    """One row per claim: its judgement under each protocol, on the paper's own numbers and without failed
    seeds; each rule's one verdict, and ``verdict``: that of the profile's ``rule``."""
    rows = []
    for i, c in enumerate(corrected):
        o = original[i] if original else None
        new = claims.combine(c.verdict, o and o.verdict)
        old = claims.combine(c.old_verdict, o and o.old_verdict, claims.HOLDS)
        row = dict(name=c.name, paper=c.paper, corrected=asdict(c), original=asdict(o) if o else None)
        row.update(paper_own=asdict(paper_own[i]) if paper_own else None)
        row.update(without_failed=asdict(without_failed[i]) if without_failed else None)
        row.update(pooled_verdict=new, old_verdict=old, verdict=new if rule == "pooled_effect" else old)
        rows.append(dict(row, tested=c.verdict != claims.NOT_TESTED))
    return rows


def _crossing(ours, paper) -> dict:
    """Where the seeds' mean curve of one rate (``ours``) lies below another's (``paper``): in how many
    epochs, and from which epoch (1-based) on it stays below to the end (None when it ends above)."""
    a, b = (np.mean(np.asarray(e["curves"], dtype=float), axis=0) for e in (ours, paper))
    below = a < b
    since = len(below) - int(np.argmin(below[::-1])) + 1 if not below.all() else 1
    return {"epochs": len(below), "below": int(below.sum()), "since": since if below[-1] else None}


EVIDENCE_ALWAYS = "LeNet5_FullyConv"  # the model whose pick our previous record disputed: always shown


def lr_numbers(curves, used) -> dict:
    """Table IV and the discussion's numbers: per searched model the paper's rate, both rules' picks (None
    while the search is incomplete) and the rate used; where a pick differs from the paper's (``differ``;
    ``evidence`` adds EVIDENCE_ALWAYS) every rate's scores, and where the pick's curve is lower."""
    declared = planning.choose_learning_rates(curves)
    post_hoc = planning.choose_learning_rates(curves, planning.POST_HOC_RULE)
    rows, differ, evidence = [], [], []
    for m in (m for m in PAPER_MODELS if m in curves):
        by_lr, paper = curves[m], PAPER_LRS[m]
        row = dict(model=m, paper=paper, rule=declared.get(m), post_hoc=post_hoc.get(m), used=used.get(m))
        rows.append(dict(row, rates=len(by_lr), complete=sum(not e["missing_seeds"] for e in by_lr.values())))
        if m not in declared or (declared[m] == post_hoc[m] == paper and m != EVIDENCE_ALWAYS):
            continue
        rules = {"rule": planning.DECLARED_RULE, "post_hoc": planning.POST_HOC_RULE}
        scores = {
            lr: {name: planning.rule_score(by_lr[lr]["curves"], rule) for name, rule in rules.items()}
            for lr in sorted(by_lr, reverse=True)
        }
        entry = {"model": m, "rule": declared[m], "post_hoc": post_hoc[m], "paper": paper, "scores": scores}
        evidence.append(entry)
        if declared[m] == post_hoc[m] == paper:
            continue
        crossing = (
            _crossing(by_lr[declared[m]], by_lr[paper]) if paper in by_lr and declared[m] != paper else None
        )
        entry = dict(entry, rule_differs=declared[m] != paper, post_hoc_differs=post_hoc[m] != paper)
        differ.append(
            dict(entry, faster=declared[m] > paper, paper_searched=paper in by_lr, crossing=crossing)
        )
    return {
        "final_epochs": planning.FINAL_EPOCHS,
        "rows": rows,
        "differ": differ,
        "evidence": evidence,
        "post_hoc_matches": sum(r["post_hoc"] == r["paper"] for r in rows),
        "tables_use_paper": bool(used) and all(used[m] == PAPER_LRS[m] for m in used if m in PAPER_LRS),
    }


def quirk_list() -> list[dict]:
    return [{"name": q, "text": text} for q, text in QUIRKS.items()]


def failed_rows(cells) -> list[dict]:
    """The cells with failed seeds (claims.failed_seeds): which seeds, their training and test errors, and the
    cell's mean, median and std with and without them."""
    out = []
    for c in cells:
        bad = claims.failed_seeds(c)
        if not bad:
            continue
        seeds = list(zip(c.expected_seeds, c.train_errors, c.errors, strict=True))
        kept = [e for s, _, e in seeds if s not in bad]
        row = dict(protocol=c.protocol, label=c.label, table=TABLE_NAMES[c.table])
        row["seeds"] = [{"seed": s, "train": t, "test": e} for s, t, e in seeds if s in bad]
        row.update(mean=c.mean, std=c.std, median=float(np.median(c.errors)), paper_mean=c.paper_mean)
        row.update(kept_mean=float(np.mean(kept)) if kept else math.nan)
        out.append(dict(row, kept_median=float(np.median(kept)) if kept else math.nan))
    return out


def report_numbers(cells, protocols, margin, rule, size, selection=None) -> dict:
    """All the report's templates are filled with; ``size`` (fewest seeds, fewest epochs) for the claims'
    power rule; ``selection``: selection_results.headline_numbers."""

    def judged(protocol, without_failed=False):
        stats = claims.stats_from_cells(cells, protocol, without_failed)
        return claims.apply_power_rule(claims.evaluate_claims(stats, margin), *size)

    original = judged("original") if "original" in protocols else None
    paper_own = claims.evaluate_claims(claims.paper_stats(), margin)
    rows = claim_rows(
        judged("corrected"), original, paper_own, rule, judged("corrected", without_failed=True)
    )
    out = dict(agreement=agreement_numbers(cells, protocols, margin), claims=rows, claim_rule=rule)
    out.update(failed=failed_rows(cells), failed_threshold=claims.FAILED_TRAIN_ERROR)
    out.update(deviations=deviations(cells, margin), min_seeds=claims.MIN_SEEDS)
    out.update(quirk1_epochs=ORIGINAL_NO_AUX_EPOCHS, has_original="original" in protocols)
    return dict(out, tested=bool(rows) and all(r["tested"] for r in rows), selection=selection)
