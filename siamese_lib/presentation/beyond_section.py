"""Section VI and Supplement D, beyond the paper: the variants tested against the baseline (Benjamini-Hochberg
adjusted), the comparison rules, the best variant and its ablation, the declared selections and Table VII."""

from __future__ import annotations

import re

from ..analysis import beyond_paper as bp
from ..analysis.selection_results import headline_numbers, space_frame
from ..analysis.stats import FDR, mean_std_n
from ..config import HOLDOUT_PAIRS
from ..experiments.selection import RULE_TEXT
from ..experiments.variants import REFITS, VARIANTS
from .figures import aux_weight_figure, image_src, plot_confusion, selection_figure
from .templates import escape, macro, render, safe


def _q_values(xdf) -> dict:
    """(metric, model, variant) -> BH-adjusted p against the baseline ("ablation:" ones: vs the recipe)."""
    return {
        (r.metric, r.model, ("ablation:" if r.baseline == "best" else "") + r.variant): r.q_vs_baseline
        for r in bp.tested_against_baseline(xdf).itertuples()
    }


def table3_html(xdf) -> str:
    """Table S5: each variant against the paper's best and our baseline, per comparison rule."""
    head, prob, q = bp.table3(xdf), bp.table3(xdf, metric="test_digit_prob_error"), _q_values(xdf)
    rows = []
    for h, p, e in zip(*(f.to_dict("records") for f in (head, prob, bp.ensemble_errors(xdf)))):
        key = (h["model"], h["variant"])
        rows.append(dict(h=h, p=p, e=e, post_hoc=h["variant"] in REFITS.values()))
        rows[-1].update(q_head=q.get(("test_error", *key)), q_prob=q.get(("test_digit_prob_error", *key)))
    return macro("beyond_tables:table3", rows, bp.PAPER_BEST, FDR)


def rules_html(xdf) -> str:
    """The three comparison rules side by side, on validation (what a choice may use) and test."""
    val, test = (bp.rules_table(xdf, split).to_dict("records") for split in ("val", "test"))
    rows = [dict(v=v, t=t, post_hoc=t["variant"] in REFITS.values()) for v, t in zip(val, test)]
    return macro("beyond_tables:rules", rows)


def best_html(xdf, summary: dict) -> str:
    """The configuration chosen on validation, its test error against the target, and its ablation."""
    text = safe(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(summary["text"]))))  # markdown code spans
    ablation, rows = bp.ablation_frame(xdf), []
    if len(ablation):
        q = _q_values(xdf)
        for r in bp.table3(ablation, baseline="best", metric="test_digit_prob_error").to_dict("records"):
            change = VARIANTS.get(r["variant"], {}).get("description", "")
            key = ("test_digit_prob_error", "LeNet5", "ablation:" + r["variant"])
            rows.append(dict(r=r, change=change, q=q.get(key)))
    # the chosen variant's refit on all the training pairs: (mean, std, n, nb_pairs)
    fit = xdf[(xdf["model"] == summary["model"]) & (xdf["variant"] == REFITS.get(summary["variant"], ""))]
    refit = None if fit.empty else (*mean_std_n(fit[summary["test_metric"]]), int(fit["nb_pairs"].iloc[0]))
    return macro("beyond_tables:best", text, refit, REFITS.get(summary["variant"]), rows, FDR)


def findings_html(xdf) -> str:
    """What the variants change against our baseline, per model and rule (effects: BH-adjusted q < FDR)."""
    t = bp.tested_against_baseline(xdf)
    t, groups = t[t["baseline"] != "best"], []
    for (metric, model), g in t.groupby(["metric", "model"], sort=False):
        eff = list(zip(g["variant"][g["effect"]], g["vs_baseline"][g["effect"]]))
        rule = bp.RULE_LABELS["head" if metric == "test_error" else "digit_prob"]
        groups.append(dict(model=model, rule=rule, others=len(g) - len(eff)))
        groups[-1].update(lower=[x for x in eff if x[1] < 0], higher=[x for x in eff if x[1] > 0])
    n_raw, n_eff = int((t["p_vs_baseline"] < FDR).sum()), int(t["effect"].sum())
    return macro("beyond_tables:findings", groups, len(t), n_raw, n_eff, FDR)


def supplement_html(xdf, expected: int) -> str:
    """Supplement D's variants: Table S4, the effects, Tables S5 and S6, Fig. S3, the best variant and its
    ablation, Fig. S4 (the digit errors that flip its comparisons)."""
    summary = bp.best_summary(xdf)
    counts = bp.flip_confusion(xdf, summary["model"], summary["variant"])
    aux, flips = image_src(aux_weight_figure(xdf)), image_src(plot_confusion(counts))
    text = macro("beyond_tables:intro", VARIANTS, expected - len(xdf), expected)
    text += findings_html(xdf) + table3_html(xdf) + rules_html(xdf) + macro("beyond_tables:aux_figure", aux)
    return (
        text
        + best_html(xdf, summary)
        + macro("beyond_tables:flips", flips, summary, int(counts.values.sum()))
    )


def selection_html(result, round: int = 1) -> str:
    """A declared selection round: its space, each candidate's validation scores and their figure, the choice,
    the headline and its ensembles; one line without one."""
    figure = headline = None
    if result is not None and not result["missing"]:
        figure = image_src(selection_figure(result["runs"]))
    if result is not None and result["headline"] is not None:
        headline = safe(render("selection_headline.html.j2", selection=headline_numbers(result)))
    space = result and space_frame(result["stage"])
    return macro("selection_tables:selection", result, round, space, RULE_TEXT, figure, headline)


def confirmation_html(rounds: list, paper_cell, settings: dict) -> str:
    """Table VII: each headline on the test pairs and the holdouts (95 % intervals), then Fig. 4."""
    scored = [r["confirm"] for _, r in rounds if r is not None]
    pairs = next((s["pairs"] for s in [paper_cell and paper_cell["confirm"], *scored] if s), 0)
    n, seeds = settings["nb_pairs"], settings["confirmation_seeds"] or []
    words = dict(seeds=seeds, pairs=pairs, test_pairs=n, data_seed=settings["data_seed"])
    words.update(rounds=sum(r is not None for _, r in rounds), holdout_seed=settings.get("holdout_seed"))
    text = render(
        "confirmation.html.j2", se_1pct=100 * (0.01 * 0.99 / n) ** 0.5, holdout_pairs=HOLDOUT_PAIRS, **words
    )
    last = next((r for _, r in reversed(rounds) if r is not None), None)
    fig4 = image_src(selection_figure(last["runs"])) if last else None
    holdout = words["holdout_seed"] is not None
    return text + macro("selection_tables:confirmation", rounds, paper_cell, fig4, holdout)
