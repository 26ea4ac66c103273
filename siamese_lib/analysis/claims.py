"""The paper's claims, each judged on our numbers by the rule the profile declares (``claim_rule``).

A claim is a set of comparisons of two cells (the one the paper says is worse, the one it says is better) and,
where the paper states one, the size of the effect. Two rules:

- ``pooled_effect`` (the report's rule since the 909-run record was reviewed: post hoc): the comparisons' effects
  pooled by inverse-variance weights (a fixed-effect mean: the claim states one effect for all its settings), with
  a 95 % interval; "reproduced" when the interval lies above no effect and reaches the paper's size, "contradicted"
  when it lies below no effect, "not detected" when it holds no effect and excludes the paper's size, "smaller than
  the paper's" when it lies above no effect but below the paper's size, "inconclusive" otherwise. Where the paper
  gives no size, the smallest effect worth the claim is the profile's equivalence margin.
- ``all_comparisons`` (the rule declared before the runs): "holds" when every comparison is significant in the
  claimed direction (Welch p < ALPHA_DIFFERENCE) and the mean effect lies in the paper's range, "contradicted"
  when most are significant the other way, "does not hold" otherwise.

Effects are in points of test error; the auxiliary loss's, a ratio (the paper: "two to three times"), is pooled as
a log ratio with the delta method's variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import PAPER_MODELS
from .stats import ALPHA_DIFFERENCE, mean_std_n, pooled_effect, welch_p
from .tables import PAPER_N, PAPER_TABLE1, PAPER_TABLE2

REPRODUCED, CONTRADICTED, NOT_DETECTED = "reproduced", "contradicted", "not detected"
SMALLER, INCONCLUSIVE, NOT_EVALUABLE = "smaller than the paper's", "inconclusive", "not evaluable"
ORIGINAL_ONLY = "reproduced only under the original protocol"
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
    slower: list = field(
        default_factory=list
    )  # ResNet's training time over LeNet5's, per setting (ours only)


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
    return {
        **{("table1", k): Stat(m, s, PAPER_N) for k, (m, s) in PAPER_TABLE1.items()},
        **{("table2", k): Stat(m, s, PAPER_N) for k, (m, s) in PAPER_TABLE2.items()},
    }


def _t1(m, ws, aux):
    return ("table1", (m, ws, aux))


def _t2(ws, bn, do):
    return ("table2", (ws, bn, do))


def _yn(flag, what):
    return what if flag else f"no {what}"


def specs(stats) -> list[Spec]:
    """The seven claims of the paper's discussion; the best-model claim compares LeNet5_FullyConv with the
    runner-up model's cell in the same setting (weight sharing and auxiliary loss)."""
    ws_aux = [(ws, aux) for ws in (False, True) for aux in (False, True)]
    others = [m for m in PAPER_MODELS if m != "LeNet5_FullyConv" and _t1(m, True, True) in stats]
    runner = min(others, key=lambda m: stats[_t1(m, True, True)].mean, default="LeNet5")
    return [
        Spec(
            "Auxiliary loss",
            "Auxiliary losses lower the error two to three times, for every model.",
            tuple(
                (f"{m}, {_yn(ws, 'WS')}", _t1(m, ws, False), _t1(m, ws, True))
                for m in PAPER_MODELS
                for ws in (False, True)
            ),
            size=2.0,
            size_range=(2.0, 3.0),
            ratio=True,
        ),
        Spec(
            "Weight sharing",
            "Weight sharing lowers the error by about 1 to 3 points for all four models.",
            tuple(
                (f"{m}, {_yn(aux, 'aux')}", _t1(m, False, aux), _t1(m, True, aux))
                for m in PAPER_MODELS
                for aux in (False, True)
            ),
            size=1.0,
            size_range=(0.5, 3.5),
        ),
        Spec(
            "Net vs LeNet5",
            "LeNet5 (62 520 parameters) outperforms the smaller Net (15 460) slightly, by about 1 point.",
            tuple(
                (f"{_yn(ws, 'WS')}, {_yn(aux, 'aux')}", _t1("Net", ws, aux), _t1("LeNet5", ws, aux))
                for ws, aux in ws_aux
            ),
            size=1.0,
            size_range=(0.0, 2.0),
        ),
        Spec(
            "LeNet5_FullyConv best",
            "LeNet5_FullyConv is the best model (3.629% with weight sharing and auxiliary loss).",
            (
                (
                    f"{runner} vs LeNet5_FullyConv, WS, aux",
                    _t1(runner, True, True),
                    _t1("LeNet5_FullyConv", True, True),
                ),
            ),
        ),
        Spec(
            "ResNet vs LeNet5",
            "ResNet is slightly better than LeNet5 but much slower to train, with about the same number of "
            "parameters.",
            (
                ("WS, aux", _t1("LeNet5", True, True), _t1("ResNet", True, True)),
            ),  # the setting the paper means
            size_range=(0.0, 2.0),
        ),
        Spec(
            "Batch norm helps",
            "Batch normalisation after the convolutional layers improves LeNet5.",
            tuple(
                (f"{_yn(ws, 'WS')}, {_yn(do, 'dropout')}", _t2(ws, False, do), _t2(ws, True, do))
                for ws in (False, True)
                for do in (False, True)
            ),
        ),
        Spec(
            "Dropout hurts",
            "Dropout deteriorates LeNet5's accuracy.",
            tuple(
                (f"{_yn(ws, 'WS')}, {_yn(bn, 'BN')}", _t2(ws, bn, True), _t2(ws, bn, False))
                for ws in (False, True)
                for bn in (False, True)
            ),
        ),
    ]


def judge(lo, hi, smallest) -> str:
    """The pooled-effect verdict from a 95 % interval of the effect in the claimed direction (0: no effect) and
    the smallest effect the claim states."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return NOT_EVALUABLE
    if hi < 0:
        return CONTRADICTED
    if lo > 0:
        return REPRODUCED if hi >= smallest else SMALLER
    return NOT_DETECTED if hi < smallest else INCONCLUSIVE


def _old_rule(diffs, ps, total, mean_effect, size_range) -> str:
    if not diffs:
        return NOT_EVALUABLE
    support = sum(d > 0 and p < ALPHA_DIFFERENCE for d, p in zip(diffs, ps, strict=True))
    against = sum(d < 0 and p < ALPHA_DIFFERENCE for d, p in zip(diffs, ps, strict=True))
    in_range = size_range[0] <= round(mean_effect, 1) <= size_range[1]
    if support == total and in_range:
        return HOLDS
    return CONTRADICTED if 2 * against > total else DOES_NOT_HOLD


def evaluate(spec: Spec, stats, margin) -> Claim:
    rows, effects, variances = [], [], []
    for label, worse, better in spec.comparisons:
        a, b = stats.get(worse), stats.get(better)
        if a is None or b is None or min(a.n, b.n) < 2 or (spec.ratio and min(a.mean, b.mean) <= 0):
            continue  # not comparable: a cell missing, fewer than 2 runs, or no error to take a ratio of
        rows.append(
            {"label": label, "diff": a.mean - b.mean, "p": welch_p(a.mean, a.std, a.n, b.mean, b.std, b.n)}
        )
        if spec.ratio:  # log ratio, delta-method variance
            effects.append(math.log(a.mean / b.mean))
            variances.append(a.std**2 / (a.n * a.mean**2) + b.std**2 / (b.n * b.mean**2))
        else:
            effects.append(a.mean - b.mean)
            variances.append(a.std**2 / a.n + b.std**2 / b.n)
    est, lo, hi, p = pooled_effect(effects, variances)
    smallest = spec.size if spec.size is not None else (2.0 if spec.ratio else margin)
    if spec.ratio:
        est, lo, hi, smallest_log = math.exp(est), math.exp(lo), math.exp(hi), math.log(smallest)
        verdict = judge(math.log(lo), math.log(hi), smallest_log) if rows else NOT_EVALUABLE
        mean_effect = sum(math.exp(e) for e in effects) / len(effects) if effects else math.nan
    else:
        verdict = judge(lo, hi, smallest) if rows else NOT_EVALUABLE
        mean_effect = sum(effects) / len(effects) if effects else math.nan
    diffs = [r["diff"] for r in rows]
    old = _old_rule(diffs, [r["p"] for r in rows], len(spec.comparisons), mean_effect, spec.size_range)
    if len(rows) < len(spec.comparisons):
        verdict = old = NOT_EVALUABLE
    claim = Claim(spec.name, spec.paper, verdict, old, est, lo, hi, p, spec.size, spec.ratio, rows)
    if spec.name == "ResNet vs LeNet5":  # "much slower": ours only (the paper gives no times)
        for ws, aux in [(ws, aux) for ws in (False, True) for aux in (False, True)]:
            a, b = stats.get(_t1("ResNet", ws, aux)), stats.get(_t1("LeNet5", ws, aux))
            if a and b and math.isfinite(a.seconds) and math.isfinite(b.seconds) and b.seconds > 0:
                claim.slower.append(a.seconds / b.seconds)
        if claim.slower and min(claim.slower) <= 1:
            claim.verdict = claim.old_verdict = (
                CONTRADICTED if claim.verdict != NOT_EVALUABLE else claim.verdict
            )
    return claim


def evaluate_claims(stats, margin=1.0) -> list[Claim]:
    return [evaluate(s, stats, margin) for s in specs(stats)]


# --- failed seeds: a run that does not fit its training pairs ------------------------------------------

# percent of the training pairs left wrong at the end of training: the paper's runs fit them (its authors' logs end
# near 0 %), and so do all but a few of ours; a run above this never learned the task, whatever its test error
FAILED_TRAIN_ERROR = 10.0


def failed_seeds(cell) -> list:
    """The seeds of a complete cell whose final training error is above FAILED_TRAIN_ERROR (none where the
    training errors are not known)."""
    if not cell.complete or len(cell.train_errors) != len(cell.expected_seeds):
        return []
    return [s for s, e in zip(cell.expected_seeds, cell.train_errors, strict=True) if e > FAILED_TRAIN_ERROR]


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
    """The claims with both verdicts replaced by NOT_TESTED when ``seeds`` (the fewest per cell) or ``epochs``
    (the fewest configured in the tables) fall below the rule; the numbers stay."""
    if not size_shortfall(seeds, epochs):
        return list(claims)
    for c in claims:
        if c.verdict != NOT_EVALUABLE:
            c.verdict = c.old_verdict = NOT_TESTED
    return list(claims)


def combine(corrected: str, original: str | None) -> str:
    """The report's one verdict of a claim from its two protocols' verdicts (pooled-effect rule): the corrected
    protocol's, or "reproduced only under the original protocol" where only the authors' protocol reproduces it and
    the corrected one does not contradict it."""
    if corrected in (NOT_TESTED, NOT_EVALUABLE, REPRODUCED, CONTRADICTED) or original is None:
        return corrected
    return ORIGINAL_ONLY if original == REPRODUCED else corrected
