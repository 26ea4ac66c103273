"""Section VI, beyond the paper, as HTML: the variants, every test against the baseline (Benjamini-Hochberg
adjusted), the three comparison rules, the best variant and its ablation. The words are in
beyond_tables.macros.j2; this module gathers the numbers from analysis.beyond_paper."""

from __future__ import annotations

import re

from ..analysis.beyond_paper import (
    PAPER_BEST,
    RULE_LABELS,
    ablation_frame,
    ensemble_errors,
    rules_table,
    table3,
    tested_against_baseline,
)
from ..analysis.stats import FDR, mean_std_n
from ..experiments.variants import REFITS, VARIANTS
from .templates import escape, module, safe


def _macro(name: str):
    return getattr(module("beyond_tables.macros.j2"), name)


def beyond_paper_intro_html(xdf, expected: int) -> str:
    """What each variant changes, on which models, and how many of the stage's runs are in the store."""
    present = 0 if xdf is None else len(xdf)
    return str(_macro("intro")(VARIANTS, expected - present, expected))


def table3_html(xdf) -> str:
    """Table S5: each variant against the paper's best and our baseline, per comparison rule."""
    head, prob = table3(xdf, metric="test_error"), table3(xdf, metric="test_digit_prob_error")
    q = _q_values(xdf)
    rows = [
        dict(h=h, p=p, e=e, post_hoc=h["variant"] in REFITS.values())
        | dict(q_head=q.get(("test_error", h["model"], h["variant"])))
        | dict(q_prob=q.get(("test_digit_prob_error", h["model"], h["variant"])))
        for h, p, e in zip(*(f.to_dict("records") for f in (head, prob, ensemble_errors(xdf))))
    ]
    return str(_macro("table3")(rows, PAPER_BEST, FDR))


def _q_values(xdf) -> dict:
    """(metric, model, variant) -> BH-adjusted p against the baseline, or against the whole recipe in the ablation."""
    t = tested_against_baseline(xdf)
    return {
        (r.metric, r.model, r.variant if r.baseline != "best" else "ablation:" + r.variant): r.q_vs_baseline
        for r in t.itertuples()
    }


def rules_html(xdf) -> str:
    """The three comparison rules side by side, on validation (what a choice may use) and test."""
    val, test = (rules_table(xdf, split).to_dict("records") for split in ("val", "test"))
    rows = [dict(v=v, t=t, post_hoc=t["variant"] in REFITS.values()) for v, t in zip(val, test)]
    return str(_macro("rules")(rows))


def best_html(xdf, summary: dict) -> str:
    """The configuration chosen on validation, its test error against the target, and its ablation."""
    text = safe(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(summary["text"]))))  # markdown code spans
    ablation = ablation_frame(xdf)
    rows = []
    if len(ablation):
        q = _q_values(xdf)
        rows = [
            dict(r=r, change=VARIANTS.get(r["variant"], {}).get("description", ""))
            | dict(q=q.get(("test_digit_prob_error", "LeNet5", "ablation:" + r["variant"])))
            for r in table3(ablation, baseline="best", metric="test_digit_prob_error").to_dict("records")
        ]
    refit = refit_stats(xdf, summary)
    return str(_macro("best")(text, refit, REFITS.get(summary["variant"]), rows, FDR))


def findings_html(xdf) -> str:
    """What the variants change against our baseline of the same model, per rule: only the tests that survive
    Benjamini-Hochberg over the whole section are called effects."""
    t = tested_against_baseline(xdf)
    t = t[t["baseline"] != "best"]
    groups = []
    for (metric, model), g in t.groupby(["metric", "model"], sort=False):
        eff = g[g["effect"]]
        pairs = list(zip(eff["variant"], eff["vs_baseline"]))
        rule = RULE_LABELS["head" if metric == "test_error" else "digit_prob"]
        groups.append(dict(model=model, rule=rule, others=len(g) - len(eff)))
        groups[-1].update(lower=[x for x in pairs if x[1] < 0], higher=[x for x in pairs if x[1] > 0])
    n_raw, n_eff = int((t["p_vs_baseline"] < FDR).sum()), int(t["effect"].sum())
    return str(_macro("findings")(groups, len(t), n_raw, n_eff, FDR))


def refit_stats(xdf, summary: dict):
    """(mean, std, n, nb_pairs) of the chosen variant's refit on all the training pairs, or None."""
    refit = xdf[(xdf["model"] == summary["model"]) & (xdf["variant"] == REFITS.get(summary["variant"], ""))]
    if refit.empty:
        return None
    return (*mean_std_n(refit[summary["test_metric"]]), int(refit["nb_pairs"].iloc[0]))
