"""Section VI, beyond the paper, as HTML: the variants, every test against the baseline (Benjamini-Hochberg
adjusted), the three comparison rules, the best variant and its ablation."""

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
from ..analysis.stats import FDR, fmt_p, mean_std_n
from ..experiments.variants import REFITS, VARIANTS
from .html import esc
from .templates import fmt, html_table, signed


def beyond_paper_intro_html(xdf, expected: int) -> str:
    """What each variant changes, on which models, and how many of the stage's runs are in the store."""
    present = 0 if xdf is None else len(xdf)
    rows = []
    for name, spec in VARIANTS.items():
        models = ", ".join(spec.get("models", ())) or "both"
        rows.append([f"<code>{esc(name)}</code>", esc(spec["description"]), esc(models)])
    note = (
        ""
        if present >= expected
        else f'<p class="note">{expected - present} of the {expected} runs are missing '
        f"and left out of every number below; rerun the profile to fill them.</p>"
    )
    return note + html_table(
        ["variant", "what it changes from the paper's setting", "models"],
        rows,
        "TABLE S4: The variants of the beyond-the-paper stage",
        cls="plain",
    )


def table3_html(xdf) -> str:
    """Table III: each variant against the paper's best and our baseline, per comparison rule."""
    head = table3(xdf, metric="test_error")
    prob = table3(xdf, metric="test_digit_prob_error")
    ens = ensemble_errors(xdf)
    q = _q_values(xdf)
    rows = []
    for i in range(len(head)):
        h, p, e = head.iloc[i], prob.iloc[i], ens.iloc[i]
        key = (h["model"], h["variant"])
        rows.append(
            [
                esc(h["model"]),
                variant_cell(h["variant"]),
                str(int(h["n"])),
                f"{fmt(h['mean'])} ± {fmt(h['std'])}",
                fmt_p(h["p_vs_paper"]),
                fmt_p(q.get(("test_error",) + key)),
                f"{fmt(p['mean'])} ± {fmt(p['std'])}",
                fmt_p(p["p_vs_paper"]),
                fmt_p(q.get(("test_digit_prob_error",) + key)),
                fmt(e["head_error"]),
                fmt(e["digit_prob_error"]),
            ]
        )
    caption = (
        f"TABLE S5: Test error (%) of each variant, mean ± std over seeds, with the learned comparison head "
        f"and with P(d1 ≤ d2) from the two digit softmaxes; Welch p against the paper's best "
        f"({PAPER_BEST['mean']} ± {PAPER_BEST['std']}, n = {PAPER_BEST['n']}); q base: Welch p against our "
        f"baseline of the same model, Benjamini-Hochberg adjusted over every such test of the section (an "
        f"effect where q < {FDR}); last two columns: the ensemble of the seeds (averaged outputs)"
    )
    return html_table(
        [
            "model",
            "variant",
            "n",
            "head",
            "p paper",
            "q base",
            "P(d1≤d2)",
            "p paper",
            "q base",
            "ens. head",
            "ens. P",
        ],
        rows,
        caption,
        cls="results long",
        col_classes=["model", None, None, None, None, None, None, None, None, None, None],
    )


def _q_values(xdf) -> dict:
    """(metric, model, variant) -> BH-adjusted p against the baseline, or against the whole recipe in the ablation."""
    t = tested_against_baseline(xdf)
    return {
        (r.metric, r.model, r.variant if r.baseline != "best" else "ablation:" + r.variant): r.q_vs_baseline
        for r in t.itertuples()
    }


def rules_html(xdf) -> str:
    """The three comparison rules side by side, on validation (what a choice may use) and test."""
    val, test = rules_table(xdf, "val"), rules_table(xdf, "test")
    rows = []
    for i in range(len(test)):
        v, t = val.iloc[i], test.iloc[i]
        rows.append(
            [esc(t["model"]), variant_cell(t["variant"])]
            + [fmt(v[f"{r}_mean"]) for r in ("head", "digits", "digit_prob")]
            + [fmt(t[f"{r}_mean"]) for r in ("head", "digits", "digit_prob")]
        )
    return html_table(
        ["model", "variant", "val: head", "val: argmax", "val: P", "test: head", "test: argmax", "test: P"],
        rows,
        "TABLE S6: Mean error (%) of the three comparison rules: the learned head, the argmax digits "
        "compared, and P(d1 ≤ d2) > 0.5 from the digit softmaxes",
        cls="results long",
        col_classes=["model"] + [None] * 7,
    )


def best_html(xdf, summary: dict) -> str:
    """The configuration chosen on validation, its test error against the target, and its ablation."""
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(summary["text"]))  # the summary's markdown code spans
    mean = summary["test_mean"]
    refit = refit_stats(xdf, summary)
    if refit is not None:
        mean, std, n, nb_pairs = refit
        text += (
            f" <i>Post hoc</i> (added after the held-out-split runs' test errors had been seen): trained again "
            f"with the same settings on all {nb_pairs} training pairs "
            f"(<code>{esc(REFITS[summary['variant']])}</code>, no split held out, nothing tuned): "
            f"{fmt(mean)} ± {fmt(std)} % over {n} seeds, same rule."
        )
    out = [f"<p>{text}</p>"]
    ablation = ablation_frame(xdf)
    if len(ablation):
        t = table3(ablation, baseline="best", metric="test_digit_prob_error")
        q = _q_values(xdf)
        rows = [
            [
                f"<code>{esc(r['variant'])}</code>",
                "the whole recipe"
                if r["variant"] == "best"
                else esc(VARIANTS.get(r["variant"], {}).get("description", "")),
                str(int(r["n"])),
                f"{fmt(r['mean'])} ± {fmt(r['std'])}",
                "–" if r["variant"] == "best" else signed(r["vs_baseline"]),
                fmt_p(r["p_vs_baseline"]),
                fmt_p(q.get(("test_digit_prob_error", "LeNet5", "ablation:" + r["variant"]))),
            ]
            for _, r in t.iterrows()
        ]
        out.append(
            html_table(
                ["variant", "change", "n", "P(d1≤d2) error %", "Δ vs best", "p vs best", "q"],
                rows,
                "TABLE S7: Ablation of the best recipe (LeNet5): each row removes one ingredient; "
                f"q: p adjusted by Benjamini-Hochberg with Table IX's tests; an ingredient matters "
                f"where removing it raises the error with q < {FDR}",
                cls="results",
                col_classes=[None, "wrap", None, None, None, None, None],
            )
        )
    return "".join(out)


def findings_html(xdf) -> str:
    """What the variants change against our baseline of the same model, per rule: only the tests that survive
    Benjamini-Hochberg over the whole section are called effects."""
    t = tested_against_baseline(xdf)
    t = t[t["baseline"] != "best"]
    items = []
    for (metric, model), g in t.groupby(["metric", "model"], sort=False):
        rule = "head" if metric == "test_error" else "digit_prob"
        eff = g[g["effect"]]
        lower = (
            ", ".join(
                f"<code>{esc(v)}</code> ({signed(d)})"
                for v, d in zip(eff["variant"], eff["vs_baseline"])
                if d < 0
            )
            or "none"
        )
        higher = (
            ", ".join(
                f"<code>{esc(v)}</code> ({signed(d)})"
                for v, d in zip(eff["variant"], eff["vs_baseline"])
                if d > 0
            )
            or "none"
        )
        items.append(
            f"<li>{esc(model)}, {esc(RULE_LABELS[rule])}: lower error with {lower}; higher with {higher}; "
            f"no effect for the other {len(g) - len(eff)}.</li>"
        )
    n_raw, n_eff = int((t["p_vs_baseline"] < FDR).sum()), int(t["effect"].sum())
    return (
        f"<p>Effects against our baseline of the same model, in points: of the {len(t)} tests, {n_raw} have "
        f"Welch p &lt; {FDR} and {n_eff} survive the Benjamini-Hochberg correction (q &lt; {FDR}):</p>"
        f"<ul>{''.join(items)}</ul>"
    )


def variant_cell(variant: str) -> str:
    """A variant's name for a table; the refits, added after test errors were seen, marked post hoc."""
    return f"<code>{esc(variant)}</code>" + (" <i>(post hoc)</i>" if variant in REFITS.values() else "")


def refit_stats(xdf, summary: dict):
    """(mean, std, n, nb_pairs) of the chosen variant's refit on all the training pairs, or None."""
    refit = xdf[(xdf["model"] == summary["model"]) & (xdf["variant"] == REFITS.get(summary["variant"], ""))]
    if refit.empty:
        return None
    return (*mean_std_n(refit[summary["test_metric"]]), int(refit["nb_pairs"].iloc[0]))
