"""Section VI and Supplement D, beyond the paper: the variants tested against the baseline (Benjamini-Hochberg
adjusted), the comparison rules, the best variant and its ablation, the declared selections and Table VII."""

from __future__ import annotations

from ..analysis import beyond_paper as bp
from ..analysis.selection_results import headline_numbers, space_frame
from ..analysis.stats import FDR, mean_std_n
from ..experiments.variants import REFITS
from .figures import aux_weight_figure, image_src, plot_confusion, selection_figure
from .templates import macro, render


def _q_values(xdf) -> dict:
    """(metric, model, variant) -> BH-adjusted p against the baseline ("ablation:" ones: vs the recipe)."""
    return {
        (r.metric, r.model, ("ablation:" if r.baseline == "best" else "") + r.variant): r.q_vs_baseline
        for r in bp.tested_against_baseline(xdf).itertuples()
    }


def table3_html(xdf) -> str:
    """Table S5: each variant against the paper's best and our baseline, per comparison rule."""
    frames = bp.table3(xdf), bp.table3(xdf, metric="test_digit_prob_error"), bp.ensemble_errors(xdf)
    return macro("beyond_tables:table3", zip(*(f.to_dict("records") for f in frames)), _q_values(xdf))


def best_html(xdf, summary: dict) -> str:
    """The configuration chosen on validation, its test error against the target, and its ablation."""
    ablation, rows, q = bp.ablation_frame(xdf), [], {}
    if len(ablation):
        rows = bp.table3(ablation, baseline="best", metric="test_digit_prob_error").to_dict("records")
        q = _q_values(xdf)
    # the chosen variant's refit on all the training pairs: (mean, std, n, nb_pairs)
    fit = xdf[(xdf["model"] == summary["model"]) & (xdf["variant"] == REFITS.get(summary["variant"], ""))]
    refit = None if fit.empty else (*mean_std_n(fit[summary["test_metric"]]), int(fit["nb_pairs"].iloc[0]))
    return macro("beyond_tables:best", summary, refit, rows, q)


def findings_html(xdf) -> str:
    """What the variants change against our baseline, per model and rule (effects: BH-adjusted q < FDR)."""
    t = bp.tested_against_baseline(xdf)
    t = t[t["baseline"] != "best"]
    groups = t.groupby(["metric", "model"], sort=False)
    groups = [(*k, len(g), g[g["effect"]].to_dict("records")) for k, g in groups]
    n = len(t), int((t["p_vs_baseline"] < FDR).sum()), int(t["effect"].sum())
    return macro("beyond_tables:findings", groups, *n)


def supplement_html(xdf, expected: int) -> str:
    """Supplement D's variants: Table S4, the effects, Tables S5 and S6, Fig. S3, the best variant and its
    ablation, Fig. S4 (the digit errors that flip its comparisons)."""
    summary = bp.best_summary(xdf)
    counts = bp.flip_confusion(xdf, summary["model"], summary["variant"])
    aux, flips = image_src(aux_weight_figure(xdf)), image_src(plot_confusion(counts))
    text = macro("beyond_tables:intro", expected - len(xdf), expected) + findings_html(xdf) + table3_html(xdf)
    # Table S6: the three comparison rules side by side, on validation (what a choice may use) and test
    rules = zip(*(bp.rules_table(xdf, split).to_dict("records") for split in ("val", "test")))
    text += macro("beyond_tables:rules", rules) + macro("beyond_tables:aux_figure", aux)
    return text + best_html(xdf, summary) + macro("beyond_tables:flips", flips, summary, counts)


def selection_html(result, round: int = 1) -> str:
    """A declared selection round: its space, each candidate's validation scores and their figure, the choice,
    the headline and its ensembles; one line without one."""
    if result is None:
        return macro("selection_tables:selection", result, round)
    figure = None if result["missing"] else image_src(selection_figure(result["runs"]))
    headline = None if result["headline"] is None else headline_numbers(result)
    return macro("selection_tables:selection", result, round, space_frame(result["stage"]), figure, headline)


def confirmation_html(rounds: list, paper_cell, settings: dict) -> str:
    """Table VII: each headline on the test pairs and the holdouts (95 % intervals), then Fig. 4."""
    scored = [r["confirm"] for _, r in rounds if r is not None]
    pairs = next((s["pairs"] for s in [paper_cell and paper_cell["confirm"], *scored] if s), 0)
    last = next((r for _, r in reversed(rounds) if r is not None), None)
    fig4 = image_src(selection_figure(last["runs"])) if last else None
    return render(
        "confirmation.html.j2", rounds=rounds, paper_cell=paper_cell, s=settings, pairs=pairs, fig4=fig4
    )
