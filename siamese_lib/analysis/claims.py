"""The paper's claims, each checked on our numbers by a stated rule (Welch p < ALPHA_DIFFERENCE).

Per protocol a claim "holds", "does not hold", or is "contradicted" (a significant effect in the opposite
direction in most of its comparisons); ``combine`` gives the one verdict of the report from the two protocols.
Magnitudes are compared at the precision the rule states them (one decimal), and printed at that precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import PAPER_MODELS
from .stats import ALPHA_DIFFERENCE, fmt_p, welch_p
from .tables import PAPER_N, PAPER_TABLE1, PAPER_TABLE2, cell_label, yesno


@dataclass
class Claim:
    name: str
    paper: str  # what the paper says
    rule: str  # how it is checked here
    verdict: str  # HOLDS, DOES_NOT_HOLD, CONTRADICTED, NOT_EVALUABLE (one protocol); see combine()
    evidence: str


HOLDS, DOES_NOT_HOLD, CONTRADICTED, NOT_EVALUABLE = "holds", "does not hold", "contradicted", "not evaluable"
ORIGINAL_ONLY = "holds only under the original protocol"


def one_decimal(x: float) -> float:
    """A magnitude at the precision the rules state (0.5 to 3.5 points, a ratio of 2 to 3)."""
    return round(x, 1)


@dataclass
class Stat:
    mean: float
    std: float
    n: int
    seconds: float = float("nan")


def stats_from_cells(cells, protocol="corrected") -> dict:
    """(table, key) -> Stat for our complete cells."""
    return {
        (c.table, c.key): Stat(c.mean, c.std, c.n, c.mean_train_seconds)
        for c in cells
        if c.protocol == protocol and c.complete
    }


def paper_stats() -> dict:
    return {
        **{("table1", k): Stat(m, s, PAPER_N) for k, (m, s) in PAPER_TABLE1.items()},
        **{("table2", k): Stat(m, s, PAPER_N) for k, (m, s) in PAPER_TABLE2.items()},
    }


def _compare(stats, worse_key, better_key):
    """(difference worse - better, p) or None when either cell is absent."""
    a, b = stats.get(worse_key), stats.get(better_key)
    if a is None or b is None:
        return None
    return a.mean - b.mean, welch_p(a.mean, a.std, a.n, b.mean, b.std, b.n)


def _direction_verdict(results, total, magnitude_ok=True):
    """From per-pair (diff, p) in the claimed direction (diff > 0 supports): verdict and counts. It holds when
    every comparison supports it (and the magnitude fits); it is contradicted when most comparisons show a
    significant effect the other way."""
    if not results:
        return NOT_EVALUABLE, 0, 0
    support = sum(1 for d, p in results if d > 0 and p < ALPHA_DIFFERENCE)
    against = sum(1 for d, p in results if d < 0 and p < ALPHA_DIFFERENCE)
    if support == total and magnitude_ok:
        verdict = HOLDS
    elif 2 * against > total:
        verdict = CONTRADICTED
    else:
        verdict = DOES_NOT_HOLD
    return verdict, support, against


def _availability(n_avail, total):
    return "" if n_avail == total else f" Only {n_avail} of {total} comparisons have both cells complete."


def claim_aux_loss(stats) -> Claim:
    rows, ratios, items = [], [], []
    total = 0
    for m in PAPER_MODELS:
        for ws in (False, True):
            total += 1
            r = _compare(stats, ("table1", (m, ws, False)), ("table1", (m, ws, True)))
            if r is None:
                continue
            rows.append(r)
            ratio = stats[("table1", (m, ws, False))].mean / max(stats[("table1", (m, ws, True))].mean, 1e-9)
            ratios.append(ratio)
            items.append(f"{m}{' WS' if ws else ''}: {ratio:.1f}x (p={fmt_p(r[1])})")
    mean_ratio = float(np.mean(ratios)) if ratios else float("nan")
    verdict, s, a = _direction_verdict(rows, total, magnitude_ok=2 <= one_decimal(mean_ratio) <= 3)
    evidence = (
        (
            f"Error without / with auxiliary loss: {'; '.join(items)}. Lower with auxiliary loss (p<{ALPHA_DIFFERENCE}) "
            f"in {s} of {len(rows)}; mean ratio {one_decimal(mean_ratio):.1f}."
            + _availability(len(rows), total)
        )
        if rows
        else "No model has both auxiliary-loss cells complete."
    )
    return Claim(
        "Auxiliary loss",
        "Auxiliary losses lower the error two to three times, for every model.",
        f"Every model and weight-sharing setting: error lower with auxiliary loss (Welch p<{ALPHA_DIFFERENCE}), "
        "and the mean ratio no-aux/aux between 2 and 3.",
        verdict,
        evidence,
    )


def claim_weight_sharing(stats) -> Claim:
    rows, items = [], []
    total = 0
    for m in PAPER_MODELS:
        for aux in (False, True):
            total += 1
            r = _compare(stats, ("table1", (m, False, aux)), ("table1", (m, True, aux)))
            if r is None:
                continue
            rows.append(r)
            items.append(f"{m}{' aux' if aux else ''}: {r[0]:+.2f} (p={fmt_p(r[1])})")
    mean_gain = float(np.mean([d for d, _ in rows])) if rows else float("nan")
    verdict, s, a = _direction_verdict(rows, total, magnitude_ok=0.5 <= one_decimal(mean_gain) <= 3.5)
    evidence = (
        (
            f"Error without minus with weight sharing, points: {'; '.join(items)}. Lower with weight sharing "
            f"(p<{ALPHA_DIFFERENCE}) in {s} of {len(rows)}; mean gain {one_decimal(mean_gain):.1f} points."
            + _availability(len(rows), total)
        )
        if rows
        else "No model has both weight-sharing cells complete."
    )
    return Claim(
        "Weight sharing",
        "Weight sharing lowers the error by about 1 to 3 points for all four models.",
        f"Every model and auxiliary-loss setting: error lower with weight sharing (p<{ALPHA_DIFFERENCE}), and the "
        "mean gain about 1 to 3 points (0.5 to 3.5).",
        verdict,
        evidence,
    )


def claim_net_vs_lenet5(stats) -> Claim:
    rows, items = [], []
    for ws in (False, True):
        for aux in (False, True):
            r = _compare(stats, ("table1", ("Net", ws, aux)), ("table1", ("LeNet5", ws, aux)))
            if r is None:
                continue
            rows.append(r)
            items.append(f"WS {yesno(ws)}, aux {yesno(aux)}: {r[0]:+.2f} (p={fmt_p(r[1])})")
    best = _compare(stats, ("table1", ("Net", True, True)), ("table1", ("LeNet5", True, True)))
    magnitude_ok = best is not None and 0 < one_decimal(best[0]) <= 2
    verdict, s, a = _direction_verdict(rows, 4, magnitude_ok)
    evidence = (
        (
            f"Net minus LeNet5 error, points: {'; '.join(items)}; LeNet5 lower (p<{ALPHA_DIFFERENCE}) in {s} of "
            f"{len(rows)}."
            + (
                f" With weight sharing and auxiliary loss the gap is {one_decimal(best[0]):+.1f} points."
                if best
                else ""
            )
            + _availability(len(rows), 4)
        )
        if rows
        else "No setting has both Net and LeNet5 complete."
    )
    return Claim(
        "Net vs LeNet5",
        "LeNet5 (62 520 parameters) outperforms the smaller Net (15 460) slightly, by about 1 point.",
        f"In each of the four settings LeNet5's error is lower (p<{ALPHA_DIFFERENCE}); with weight "
        "sharing and auxiliary loss by more than 0 and at most 2 points.",
        verdict,
        evidence,
    )


def claim_fullyconv_best(stats) -> Claim:
    t1 = {k: v for k, v in stats.items() if k[0] == "table1"}
    rule = (
        f"The lowest Table I cell is a LeNet5_FullyConv one, and lower than the best cell of every other model "
        f"(p<{ALPHA_DIFFERENCE})."
    )
    if not t1:
        return Claim(
            "LeNet5_FullyConv best",
            "LeNet5_FullyConv is the best model (3.629% with weight sharing and auxiliary loss).",
            rule,
            NOT_EVALUABLE,
            "No Table I cell is complete.",
        )
    best_key = min(t1, key=lambda k: t1[k].mean)
    fc = {k: v for k, v in t1.items() if k[1][0] == "LeNet5_FullyConv"}
    others = {}
    for k, v in t1.items():
        m = k[1][0]
        if m != "LeNet5_FullyConv" and (m not in others or v.mean < t1[others[m]].mean):
            others[m] = k
    if not fc:
        return Claim(
            "LeNet5_FullyConv best",
            "LeNet5_FullyConv is the best model.",
            rule,
            NOT_EVALUABLE,
            "No LeNet5_FullyConv cell is complete.",
        )
    fc_key = min(fc, key=lambda k: fc[k].mean)
    items, sig, beaten = [], 0, 0
    for m, k in others.items():
        d, p = _compare(stats, k, fc_key)
        items.append(f"{m} best {t1[k].mean:.2f} ({d:+.2f}, p={fmt_p(p)})")
        sig += d > 0 and p < ALPHA_DIFFERENCE
        beaten += d < 0 and p < ALPHA_DIFFERENCE
    is_best = best_key[1][0] == "LeNet5_FullyConv"
    absent = [m for m in PAPER_MODELS if m != "LeNet5_FullyConv" and m not in others]
    verdict = (
        HOLDS if is_best and sig == len(others) and not absent else CONTRADICTED if beaten else DOES_NOT_HOLD
    )
    evidence = (
        f"Lowest cell: {cell_label(*best_key)}, {t1[best_key].mean:.2f}%. LeNet5_FullyConv best "
        f"{fc[fc_key].mean:.2f}% vs {'; '.join(items)}."
        + (f" Models with no complete cell: {', '.join(absent)}." if absent else "")
    )
    return Claim(
        "LeNet5_FullyConv best",
        "LeNet5_FullyConv is the best model (3.629% with weight sharing and auxiliary loss).",
        rule,
        verdict,
        evidence,
    )


def claim_resnet(stats) -> Claim:
    rule = (
        f"With weight sharing and auxiliary loss ResNet's error is lower than LeNet5's (p<{ALPHA_DIFFERENCE}) by at "
        "most 2 points, and its mean training time is longer in every Table I setting."
    )
    r = _compare(stats, ("table1", ("LeNet5", True, True)), ("table1", ("ResNet", True, True)))
    ratios, items = [], []
    for ws in (False, True):
        for aux in (False, True):
            a, b = stats.get(("table1", ("ResNet", ws, aux))), stats.get(("table1", ("LeNet5", ws, aux)))
            if a and b and math.isfinite(a.seconds) and math.isfinite(b.seconds) and b.seconds > 0:
                ratios.append(a.seconds / b.seconds)
                items.append(f"WS {yesno(ws)}, aux {yesno(aux)}: {a.seconds:.0f} s vs {b.seconds:.0f} s")
    if r is None and not ratios:
        return Claim(
            "ResNet vs LeNet5",
            "ResNet is slightly better than LeNet5 but much slower to train.",
            rule,
            NOT_EVALUABLE,
            "ResNet or LeNet5 cells are missing.",
        )
    parts, ok, worse = [], 0, False
    if r is not None:
        d, p = r
        better = d > 0 and p < ALPHA_DIFFERENCE and one_decimal(d) <= 2
        worse = d < 0 and p < ALPHA_DIFFERENCE
        ok += better
        parts.append(
            f"LeNet5 minus ResNet error with weight sharing and auxiliary loss: {d:+.2f} points "
            f"(p={fmt_p(p)}): ResNet {'is' if better else 'is not'} slightly better."
        )
    else:
        parts.append("The weight-sharing + auxiliary-loss cells are not both complete.")
    if ratios:
        slower = all(x > 1 for x in ratios)
        ok += slower
        parts.append(
            f"Mean training time per run, ResNet vs LeNet5 ({'; '.join(items)}): ResNet takes "
            f"{min(ratios):.1f}-{max(ratios):.1f}x as long."
        )
    else:
        parts.append("No training times to compare (training time not evaluated).")
    checked = (r is not None) + bool(ratios)
    verdict = HOLDS if ok == checked else (CONTRADICTED if worse else DOES_NOT_HOLD)
    return Claim(
        "ResNet vs LeNet5",
        "ResNet is slightly better than LeNet5 but much slower to train, with about the "
        "same number of parameters.",
        rule,
        verdict,
        " ".join(parts),
    )


def _table2_claim(stats, name, paper, flag_index, better_when) -> Claim:
    rows, items = [], []
    others = [(a, b) for a in (False, True) for b in (False, True)]
    for a, b in others:

        def key(flag):
            k = [a, b]  # noqa: B023 (called in this iteration)
            k.insert(flag_index, flag)
            return ("table2", tuple(k))

        worse, better = (key(not better_when), key(better_when))
        r = _compare(stats, worse, better)
        if r is None:
            continue
        rows.append(r)
        fixed = [n for i, n in enumerate(("WS", "BN", "dropout")) if i != flag_index]
        items.append(f"{fixed[0]} {yesno(a)}, {fixed[1]} {yesno(b)}: {r[0]:+.2f} (p={fmt_p(r[1])})")
    verdict, s, _ = _direction_verdict(rows, 4)
    what = "with" if better_when else "without"
    evidence = (
        (
            f"Error gain {what} {name.lower()}, points: {'; '.join(items)}; significant (p<{ALPHA_DIFFERENCE}) in {s} "
            f"of {len(rows)}." + _availability(len(rows), 4)
        )
        if rows
        else "Table II cells are missing."
    )
    return Claim(
        name + (" helps" if better_when else " hurts"),
        paper,
        f"In each of the four Table II settings of the other two switches, the error is lower {what} "
        f"{name.lower()} (p<{ALPHA_DIFFERENCE}).",
        verdict,
        evidence,
    )


def claim_batch_norm(stats) -> Claim:
    return _table2_claim(
        stats, "Batch norm", "Batch normalisation after the convolutional layers improves LeNet5.", 1, True
    )


def claim_dropout(stats) -> Claim:
    return _table2_claim(stats, "Dropout", "Dropout deteriorates LeNet5's accuracy.", 2, False)


CLAIMS = (
    claim_aux_loss,
    claim_weight_sharing,
    claim_net_vs_lenet5,
    claim_fullyconv_best,
    claim_resnet,
    claim_batch_norm,
    claim_dropout,
)


def evaluate_claims(stats) -> list[Claim]:
    return [f(stats) for f in CLAIMS]


# --- the power rule: a verdict only where the evidence can decide it ------------------------------

MIN_SEEDS = 5  # per cell; the paper has 10: below 5, a Welch test misses even a 2-std difference often
PAPER_EPOCHS = 30  # the paper's setting; the original protocol trains its no-aux cells 25 of them (quirk 1),
# as the authors did: those cells meet the rule, since they are trained as the paper's were
NOT_TESTED = "not tested at this size"


def size_shortfall(seeds: int, epochs: int) -> dict:
    """What falls short of the power rule: {'seeds': n} and/or {'epochs': n} (empty when it is met). ``epochs`` is
    the configured number (the paper's 30), not the 25 that quirk 1 trains."""
    out = {}
    if seeds < MIN_SEEDS:
        out["seeds"] = seeds
    if epochs < PAPER_EPOCHS:
        out["epochs"] = epochs
    return out


def apply_power_rule(claims: list[Claim], seeds: int, epochs: int) -> list[Claim]:
    """The claims with verdicts replaced by NOT_TESTED when ``seeds`` (the fewest per cell) or ``epochs``
    (the fewest configured in the tables) fall below the rule; the numbers stay in the evidence."""
    if not size_shortfall(seeds, epochs):
        return list(claims)
    return [
        Claim(c.name, c.paper, c.rule, NOT_TESTED if c.verdict != NOT_EVALUABLE else c.verdict, c.evidence)
        for c in claims
    ]


def combine(corrected: Claim, original: Claim | None) -> str:
    """The report's one verdict of a claim from its two protocols."""
    if corrected.verdict in (NOT_TESTED, NOT_EVALUABLE, HOLDS):
        return corrected.verdict
    if original is not None and original.verdict == HOLDS:
        return ORIGINAL_ONLY
    return corrected.verdict
