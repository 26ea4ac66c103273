"""The paper's claims, each a set of comparisons of two cells (the paper's worse, its better) and, where the
paper states one, the size of the effect (points; the auxiliary loss's a ratio, pooled as a log ratio with the
delta method's variance). Two rules, the profile's ``claim_rule`` picks the report's:

- ``pooled_effect`` (post hoc): the effects pooled by inverse-variance weights with a 95 % interval, judged by
  ``judge``; where the paper gives no size, the smallest effect worth the claim is the equivalence margin.
- ``all_comparisons`` (declared before the runs): "holds" when every comparison is significant in the claimed
  direction and the mean effect lies in the paper's range, "contradicted" when most are significant the other
  way, "does not hold" otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import PAPER_MODELS
from .stats import ALPHA_DIFFERENCE, mean_std_n, pooled_effect, welch_p
from .tables import PAPER_N, PAPER_TABLES, TABLE1_KEYS, TABLE2_KEYS

REPRODUCED, CONTRADICTED, NOT_DETECTED = "reproduced", "contradicted", "not detected"
SMALLER, INCONCLUSIVE, NOT_EVALUABLE = "smaller than the paper's", "inconclusive", "not evaluable"
ORIGINAL_ONLY = f"{REPRODUCED} only under the original protocol"  # combine's
HOLDS, DOES_NOT_HOLD = "holds", "does not hold"  # the all-comparisons rule
RULES = ("pooled_effect", "all_comparisons")


@dataclass
class Stat:
    mean: float
    std: float
    n: int
    seconds: float = float("nan")


@dataclass(frozen=True)
class Spec:
    name: str
    paper: str  # what the paper says
    comparisons: tuple  # ((label, worse (table, key), better (table, key)), ...)
    size: float | None = None  # the paper's size (points, or the ratio); None: direction only
    size_range: tuple = (0.0, math.inf)  # the all-comparisons rule's range of the mean effect
    ratio: bool = False


@dataclass
class Claim:
    name: str
    paper: str
    verdict: str  # the pooled-effect rule
    old_verdict: str  # the all-comparisons rule
    estimate: float = math.nan  # pooled effect in the claimed direction (points, or the ratio)
    lo: float = math.nan
    hi: float = math.nan
    p: float = math.nan
    size: float | None = None
    ratio: bool = False
    comparisons: list = field(default_factory=list)  # {label, diff, p} per comparison, diff in points
    slower: list = field(default_factory=list)  # ResNet's training time over LeNet5's, per setting


def stats_from_cells(cells, protocol="corrected", without_failed=False) -> dict:
    """(table, key) -> Stat for our complete cells; ``without_failed``: each cell without its failed seeds."""
    out = {}
    for c in cells:
        if c.protocol == protocol and c.complete:
            bad = set(failed_seeds(c)) if without_failed else set()
            errors = [e for s, e in zip(c.expected_seeds, c.errors, strict=True) if s not in bad]
            out[(c.table, c.key)] = Stat(*mean_std_n(errors), c.mean_train_seconds)
    return out


def paper_stats() -> dict:
    return {(t, k): Stat(m, s, PAPER_N) for t, cells in PAPER_TABLES.items() for k, (m, s) in cells.items()}


def _t1(m, ws, aux):
    return ("table1", (m, ws, aux))


FLAG_NAMES = {"table1": (None, "WS", "aux"), "table2": ("WS", "BN", "dropout")}  # labels of a key's fields


def _directional(table: str, field: int, worse, better) -> tuple:
    """Each cell whose key's ``field`` is ``worse`` against the same cell at ``better``, labelled by the other
    fields: the claims that one setting is better than another."""
    out = []
    for key in TABLE1_KEYS if table == "table1" else TABLE2_KEYS:
        if key[field] == worse:
            names = zip(key, FLAG_NAMES[table], strict=True)
            label = ", ".join(
                v if n is None else n if v else f"no {n}" for i, (v, n) in enumerate(names) if i != field
            )
            out.append((label, (table, key), (table, (*key[:field], better, *key[field + 1 :]))))
    return tuple(out)


def specs(stats) -> list[Spec]:
    """The seven claims of the paper's discussion; the best-model claim compares LeNet5_FullyConv with the
    runner-up model's cell in the same setting (weight sharing and auxiliary loss)."""
    others = [m for m in PAPER_MODELS if m != "LeNet5_FullyConv" and _t1(m, True, True) in stats]
    runner = min(others, key=lambda m: stats[_t1(m, True, True)].mean, default="LeNet5")
    best = (
        f"{runner} vs LeNet5_FullyConv, WS, aux",
        _t1(runner, True, True),
        _t1("LeNet5_FullyConv", True, True),
    )
    return [
        Spec(
            "Auxiliary loss",
            "Auxiliary losses lower the error two to three times, for every model.",
            _directional("table1", 2, False, True),
            size=2.0,
            size_range=(2.0, 3.0),
            ratio=True,
        ),
        Spec(
            "Weight sharing",
            "Weight sharing lowers the error by about 1 to 3 points for all four models.",
            _directional("table1", 1, False, True),
            size=1.0,
            size_range=(0.5, 3.5),
        ),
        Spec(
            "Net vs LeNet5",
            "LeNet5 (62 520 parameters) outperforms the smaller Net (15 460) slightly, by about 1 point.",
            _directional("table1", 0, "Net", "LeNet5"),
            size=1.0,
            size_range=(0.0, 2.0),
        ),
        Spec(
            "LeNet5_FullyConv best",
            "LeNet5_FullyConv is the best model (3.629% with weight sharing and auxiliary loss).",
            (best,),
        ),
        Spec(
            "ResNet vs LeNet5",
            "ResNet is slightly better than LeNet5 but much slower to train, with about the same number of "
            "parameters.",
            (("WS, aux", _t1("LeNet5", True, True), _t1("ResNet", True, True)),),  # the paper's setting
            size_range=(0.0, 2.0),
        ),
        Spec(
            "Batch norm helps",
            "Batch normalisation after the convolutional layers improves LeNet5.",
            _directional("table2", 1, False, True),
        ),
        Spec(
            "Dropout hurts", "Dropout deteriorates LeNet5's accuracy.", _directional("table2", 2, True, False)
        ),
    ]


def judge(lo, hi, smallest) -> str:
    """The pooled-effect verdict from a 95 % interval of the effect in the claimed direction (0: none) and
    the smallest effect the claim states."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return NOT_EVALUABLE
    if hi < 0:
        return CONTRADICTED
    if lo > 0:
        return REPRODUCED if hi >= smallest else SMALLER
    return NOT_DETECTED if hi < smallest else INCONCLUSIVE


def evaluate(spec: Spec, stats, margin) -> Claim:
    rows, effects, variances = [], [], []
    for label, worse, better in spec.comparisons:
        a, b = stats.get(worse), stats.get(better)
        if a is None or b is None or min(a.n, b.n) < 2 or (spec.ratio and min(a.mean, b.mean) <= 0):
            continue  # not comparable: a cell missing, fewer than 2 runs, or no error to take a ratio of
        p = welch_p(a.mean, a.std, a.n, b.mean, b.std, b.n)
        rows.append({"label": label, "diff": a.mean - b.mean, "p": p})
        if spec.ratio:  # log ratio, delta-method variance
            effects.append(math.log(a.mean / b.mean))
            variances.append(a.std**2 / (a.n * a.mean**2) + b.std**2 / (b.n * b.mean**2))
        else:
            effects.append(a.mean - b.mean)
            variances.append(a.std**2 / a.n + b.std**2 / b.n)
    est, lo, hi, p = pooled_effect(effects, variances)
    smallest = spec.size if spec.size is not None else (2.0 if spec.ratio else margin)
    if spec.ratio:
        est, lo, hi = math.exp(est), math.exp(lo), math.exp(hi)
    verdict = old = NOT_EVALUABLE  # unless every comparison can be made
    if rows and len(rows) == len(spec.comparisons):
        judged = (math.log(lo), math.log(hi), math.log(smallest)) if spec.ratio else (lo, hi, smallest)
        mean_effect = round(sum(map(math.exp, effects) if spec.ratio else effects) / len(effects), 1)
        support = sum(r["diff"] > 0 and r["p"] < ALPHA_DIFFERENCE for r in rows)  # the all-comparisons rule
        against = sum(r["diff"] < 0 and r["p"] < ALPHA_DIFFERENCE for r in rows)
        verdict, old = judge(*judged), CONTRADICTED if 2 * against > len(rows) else DOES_NOT_HOLD
        if support == len(rows) and spec.size_range[0] <= mean_effect <= spec.size_range[1]:
            old = HOLDS
    claim = Claim(spec.name, spec.paper, verdict, old, est, lo, hi, p, spec.size, spec.ratio, rows)
    if spec.name == "ResNet vs LeNet5":  # "much slower": ours only (the paper gives no times)
        for _, ws, aux in TABLE1_KEYS[:4]:  # one model's four settings
            a, b = stats.get(_t1("ResNet", ws, aux)), stats.get(_t1("LeNet5", ws, aux))
            if a and b and math.isfinite(a.seconds) and math.isfinite(b.seconds) and b.seconds > 0:
                claim.slower.append(a.seconds / b.seconds)
        if claim.slower and min(claim.slower) <= 1:
            claim.verdict = claim.old_verdict = (
                CONTRADICTED if claim.verdict != NOT_EVALUABLE else NOT_EVALUABLE
            )
    return claim


def evaluate_claims(stats, margin=1.0) -> list[Claim]:
    return [evaluate(s, stats, margin) for s in specs(stats)]


# a failed seed leaves more than this percent of its training pairs wrong (it never learned the task); the
# paper's runs fit them (its authors' logs end near 0 %), and so do all but a few of ours
FAILED_TRAIN_ERROR = 10.0


def failed_seeds(cell) -> list:
    """The seeds of a complete cell whose final training error is above FAILED_TRAIN_ERROR."""
    if not cell.complete or len(cell.train_errors) != len(cell.expected_seeds):
        return []
    return [s for s, e in zip(cell.expected_seeds, cell.train_errors, strict=True) if e > FAILED_TRAIN_ERROR]


# the power rule: a verdict only where the evidence can decide it
MIN_SEEDS = 5  # per cell; the paper has 10: below 5, a Welch test misses even a 2-std difference often
# as configured: the original protocol's no-aux cells train 25, as the paper's did (quirk 1)
PAPER_EPOCHS = 30
NOT_TESTED = "not tested at this size"


def apply_power_rule(claims: list[Claim], seeds: int, epochs: int) -> list[Claim]:
    """The claims with both verdicts replaced by NOT_TESTED when ``seeds`` (the fewest per cell) or ``epochs``
    (the fewest configured in the tables) fall below the rule; the numbers stay."""
    if seeds < MIN_SEEDS or epochs < PAPER_EPOCHS:
        for c in claims:
            if c.verdict != NOT_EVALUABLE:
                c.verdict = c.old_verdict = NOT_TESTED
    return list(claims)


def combine(corrected: str, original: str | None, holds: str = REPRODUCED) -> str:
    """A claim's one verdict under a rule whose verdict ``holds`` says the claim stands (REPRODUCED: the
    pooled-effect rule, HOLDS: the all-comparisons rule): the corrected protocol's, or '<holds> only under the
    original protocol' where only the original protocol's holds and the corrected one does not settle it (the
    pooled-effect rule's CONTRADICTED does)."""
    if corrected in (NOT_TESTED, NOT_EVALUABLE, holds) or original != holds:
        return corrected
    if corrected == CONTRADICTED and holds == REPRODUCED:
        return corrected
    return f"{holds} only under the original protocol"
