"""The learning-rate rules of the LR search: ``DECLARED_RULE``, declared before the search ran (``auto``
rates plan with it), and ``POST_HOC_RULE``, found after seeing the paper's picks and only reported."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FINAL_EPOCHS = 10  # the declared rule averages the summed training loss over this many last epochs


@dataclass(frozen=True)
class LossRule:
    """Scores a rate by the seeds' mean curve of summed training loss at epochs ``curve[start:stop]``,
    averaged arithmetically, or geometrically when ``log`` (the curve's mean height on a log scale)."""

    start: int | None = None
    stop: int | None = None
    log: bool = False


DECLARED_RULE = LossRule(start=-FINAL_EPOCHS)
# POST HOC: of the rules measured on the authors' own log it reproduces all four picks, with the widest
# margin, and has no free parameter.
POST_HOC_RULE = LossRule(log=True)


def rule_score(curves, rule: LossRule = DECLARED_RULE) -> float:
    """The score of one rate from its seeds' curves; a non-finite value where the rule reads (a diverged run)
    scores +inf, so it never wins."""
    read = np.mean(np.asarray(curves, dtype=float), axis=0)[rule.start : rule.stop]
    if read.size == 0 or not np.all(np.isfinite(read)):
        return math.inf
    if rule.log:
        with np.errstate(divide="ignore"):
            return float(np.exp(np.mean(np.log(read))))
    return float(np.mean(read))


def choose_learning_rates(curves_by_model: dict, rule: LossRule = DECLARED_RULE) -> dict:
    """Per model, the rate with the lowest ``rule_score`` (by default the declared rule); only rates with all
    their seeds are compared, and a model with an incomplete search is left out."""
    chosen = {}
    for model, by_lr in curves_by_model.items():
        if not by_lr or any(e["missing_seeds"] for e in by_lr.values()):
            continue
        score = {lr: rule_score(e["curves"], rule) for lr, e in by_lr.items()}
        chosen[model] = min(sorted(score), key=lambda lr: score[lr])
    return chosen


def post_hoc_learning_rates(curves_by_model: dict) -> dict:
    """POST HOC (found after seeing the paper's picks): the rates POST_HOC_RULE chooses; reported only."""
    return choose_learning_rates(curves_by_model, POST_HOC_RULE)
