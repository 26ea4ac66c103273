"""HTML fragments of the report: formatting, the results tables, figures inline, Section VI's tables."""
from __future__ import annotations

import base64
import html
import io
import math
import re

import matplotlib.pyplot as plt

from ..analysis.stats import fmt_p, mean_std_n, seed_ranges
from ..analysis.tables import QUIRKS, TABLE_NAMES, best_cells, yesno
from ..analysis.verdicts import DIFFERENT, EQUIVALENT, cell_agreement
from ..analysis.beyond_paper import (PAPER_BEST, RULE_LABELS, ablation_frame, ensemble_errors,
                                    rules_table, table3, tested_against_baseline)
from ..analysis.stats import FDR
from ..experiments.variants import REFITS
from ..experiments.variants import VARIANTS
from ..models import PAPER_MODELS


# --- formatting ------------------------------------------------------------------------------------

def esc(x) -> str:
    return html.escape(str(x))


def fmt(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def paper_num(x) -> str:
    """A published number as the paper printed it."""
    return f"{x:g}"


def caption_html(text: str) -> str:
    """'TABLE III: text' -> the label in small capitals, the text plain (as the paper sets captions)."""
    if text.startswith("TABLE") and ":" in text:
        label, rest = text.split(":", 1)
        return f'<caption><span class="label">{label}:</span>{rest}</caption>'
    return f"<caption>{text}</caption>"


def wrap(table: str) -> str:
    """Keeps a table and its caption on one page (WeasyPrint honours break-inside on the wrapper)."""
    return f'<div class="table-wrap">{table}</div>'


def html_table(header, rows, caption=None, cls="plain", col_classes=None) -> str:
    """A simple table from strings (already escaped where needed)."""
    wrapper = "table-wrap long" if "long" in cls.split() else "table-wrap"
    out = [f'<div class="{wrapper}"><table class="{cls}">']
    if caption:
        out.append(caption_html(caption))
    out.append("<thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead><tbody>")
    for r in rows:
        tds = []
        for i, v in enumerate(r):
            c = f' class="{col_classes[i]}"' if col_classes and col_classes[i] else ""
            tds.append(f"<td{c}>{v}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


# --- the results tables ---------------------------------------------------------------------------

def _cell_id(c) -> str:
    key = c.key
    if c.table == "table1":
        return f"{c.table}/{c.protocol}/{key[0]}/ws{int(key[1])}/aux{int(key[2])}"
    return f"{c.table}/{c.protocol}/ws{int(key[0])}/bn{int(key[1])}/do{int(key[2])}"


VERDICT_MARK = {EQUIVALENT: ("equiv.", "eq"), DIFFERENT: ("differs", "dev"), "inconclusive": ("inconcl.", "inc")}


def _cell_tds(c, ours_per, ours_best, paper_per, paper_best, margin) -> str:
    """Paper | ours (n) | difference | verdict, or paper | 'missing' spanning the rest."""
    paper = f"{paper_num(c.paper_mean)} ± {paper_num(c.paper_std)}"
    if c.key == paper_best:
        paper = f'<span class="best">{paper}</span>'
    elif c.key in paper_per:
        paper = f"<b>{paper}</b>"
    tds = f'<td class="paper">{paper}</td>'
    if not c.complete:
        short = "not run" if c.note else f"missing seeds {esc(seed_ranges(c.missing_seeds))}"
        return tds + f'<td colspan="3" class="missing" data-cell="{_cell_id(c)}" data-status="missing">{short}</td>'
    ours = f"{fmt(c.mean)} ± {fmt(c.std)}"
    if c.key == ours_best:
        ours = f'<span class="best">{ours}</span>'
    elif c.key in ours_per:
        ours = f"<b>{ours}</b>"
    a = cell_agreement(c, margin)
    word, cls = VERDICT_MARK.get(a.verdict, ("–", "na"))
    return (tds + f'<td class="ours" data-cell="{_cell_id(c)}" data-status="complete">{ours}'
            f'<span class="n"> ({c.n})</span></td><td class="diff">{signed(c.diff)}</td>'
            f'<td class="verdict {cls}" title="Welch p {fmt_p(a.welch_p)}, TOST p {fmt_p(a.tost_p)}">{word}</td>')


def signed(x: float, digits: int = 2) -> str:
    """+1.23 / −0.45, and 0.00 (never −0.00) when it rounds to zero."""
    text = f"{x:+.{digits}f}"
    return f"{0:.{digits}f}" if float(text) == 0 else text


def table1_html(cells, protocol: str, caption: str, margin: float) -> str:
    cs = {c.key: c for c in cells if c.table == "table1" and c.protocol == protocol}
    sel = list(cs.values())
    ours_per, ours_best, paper_per, paper_best = best_cells(sel, "table1")
    sub = "<th>Paper</th><th>Ours (n)</th><th>Δ</th><th>Verdict</th>"
    out = [f'<table class="results table1" data-protocol="{protocol}">{caption_html(caption)}<thead>',
           '<tr><th rowspan="2">Model</th><th rowspan="2">Weight<br>sharing</th>'
           '<th colspan="4" class="group">Auxiliary loss: No</th><th colspan="4" class="group">Auxiliary loss: Yes</th></tr>',
           f"<tr>{sub}{sub}</tr></thead><tbody>"]
    for m in PAPER_MODELS:
        for ws in (False, True):
            first = f'<td rowspan="2" class="model">{m}</td>' if not ws else ""
            tds = "".join(_cell_tds(cs[(m, ws, aux)], ours_per, ours_best, paper_per, paper_best, margin) for aux in (False, True))
            out.append(f'<tr class="{"ws" if ws else "nows"}">{first}<td>{yesno(ws).capitalize()}</td>{tds}</tr>')
    out.append("</tbody></table>")
    return wrap("".join(out))


def table2_html(cells, protocol: str, caption: str, margin: float) -> str:
    cs = {c.key: c for c in cells if c.table == "table2" and c.protocol == protocol}
    ours_per, ours_best, paper_per, paper_best = best_cells(list(cs.values()), "table2")
    out = [f'<table class="results table2" data-protocol="{protocol}">{caption_html(caption)}<thead>',
           "<tr><th>Weight sharing</th><th>Batch norm</th><th>Dropout</th>"
           "<th>Paper</th><th>Ours (n)</th><th>Δ</th><th>Verdict</th></tr></thead><tbody>"]
    for ws in (False, True):
        for bn in (False, True):
            for do in (False, True):
                c = cs[(ws, bn, do)]
                lead = ""
                if not bn and not do:
                    lead += f'<td rowspan="4">{yesno(ws).capitalize()}</td>'
                if not do:
                    lead += f'<td rowspan="2">{yesno(bn).capitalize()}</td>'
                out.append(f"<tr>{lead}<td>{yesno(do).capitalize()}</td>"
                           f"{_cell_tds(c, ours_per, ours_best, paper_per, paper_best, margin)}</tr>")
    out.append("</tbody></table>")
    return wrap("".join(out))


def missing_html(cells, protocol: str | None = None, table: str | None = None) -> str:
    """What is missing: cells the profile does not run in one line, then each incomplete cell with its seeds;
    '' when nothing is."""
    miss = [c for c in cells if not c.complete and (protocol is None or c.protocol == protocol)
            and (table is None or c.table == table)]
    if not miss:
        return ""
    scope = ", ".join(x for x in (TABLE_NAMES.get(table, ""), f"{protocol} protocol" if protocol else "") if x)
    not_run = [c for c in miss if c.note]
    out = [f'<div class="missing-list"><p><b>Missing</b> ({scope}): ']
    if not_run:
        out.append(f"{len(not_run)} cells not run at this size (shown as <i>not run</i> above)"
                   + ("." if len(not_run) == len(miss) else "; "))
    partial = [c for c in miss if not c.note]
    if partial:
        out.append(f"{len(partial)} cells lack runs:</p><ul>" + "".join(
            f"<li>{esc(c.label)}: seeds {seed_ranges(c.missing_seeds)} ({len(c.expected_seeds) - len(c.missing_seeds)}"
            f"/{len(c.expected_seeds)} in the store; lr {c.lr:g}, {c.epochs} epochs)</li>" for c in partial) + "</ul>")
    else:
        out.append("</p>")
    return "".join(out) + "</div>"


def quirk_shift_html(per_cell, grouped) -> str:
    if per_cell.empty:
        return '<p class="note">No cell is complete under both protocols yet, so the quirks\' effect cannot be measured.</p>'
    rows = [[esc(r.table), esc(r.cell), esc(r.quirks), fmt(r.corrected), fmt(r.original), signed(r.shift), fmt_p(r.p)]
            for r in per_cell.itertuples()]
    t1 = html_table(["Table", "Cell", "Quirks", "Corrected", "Original", "Shift", "p"], rows,
                    caption="TABLE V: Test error (%) under the corrected and the original protocol, per cell. "
                            "Shift = original − corrected; p: Welch t-test between the two protocols.",
                    cls="results shifts")
    g = [[esc(r.quirks), str(r.cells), signed(r._3), signed(r._4), signed(r._5)] for r in grouped.itertuples()]
    legend = "; ".join(f"{k}: {esc(v)}" for k, v in QUIRKS.items())
    t2 = html_table(["Quirks that apply", "Cells", "Mean shift", "Min", "Max"], g,
                    caption="TABLE VI: Shift (original − corrected, points) by the set of quirks that apply.",
                    cls="results")
    return t1 + t2 + f'<p class="note">Quirks: {legend}.</p>'


VERDICT_CLASS = {"holds": "ok", "holds only under the original protocol": "partly", "does not hold": "no",
                 "contradicted": "no", "not evaluable": "na", "not tested at this size": "na"}


# --- figures ------------------------------------------------------------------------------------------

def figure_html(fig, caption: str, width: str = "100%", dpi: int = 200) -> str:
    """A figure as an inline base64 PNG with its caption, kept together on one page."""
    if fig is None:
        return f'<figure class="empty"><figcaption>{caption} (no data yet)</figcaption></figure>'
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return (f'<figure><img style="width:{width}" src="data:image/png;base64,{data}" alt="{esc(caption[:80])}">'
            f"<figcaption>{caption}</figcaption></figure>")


# --- Section VI: beyond the paper ---------------------------------------------------------------


def beyond_paper_intro_html(xdf, expected: int) -> str:
    """What each variant changes, on which models, and how many of the stage's runs are in the store."""
    present = 0 if xdf is None else len(xdf)
    rows = []
    for name, spec in VARIANTS.items():
        models = ", ".join(spec.get("models", ())) or "both"
        rows.append([f"<code>{esc(name)}</code>", esc(spec["description"]), esc(models)])
    note = ("" if present >= expected else f'<p class="note">{expected - present} of the {expected} runs are missing '
            f'and left out of every number below; rerun the profile to fill them.</p>')
    return note + html_table(["variant", "what it changes from the paper's setting", "models"], rows,
                             "TABLE VIII: The variants of the beyond-the-paper stage", cls="plain")


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
        rows.append([esc(h["model"]), variant_cell(h["variant"]), str(int(h["n"])),
                     f"{fmt(h['mean'])} ± {fmt(h['std'])}", fmt_p(h["p_vs_paper"]),
                     fmt_p(q.get(("test_error",) + key)),
                     f"{fmt(p['mean'])} ± {fmt(p['std'])}", fmt_p(p["p_vs_paper"]),
                     fmt_p(q.get(("test_digit_prob_error",) + key)),
                     fmt(e["head_error"]), fmt(e["digit_prob_error"])])
    caption = (f"TABLE IX: Test error (%) of each variant, mean ± std over seeds, with the learned comparison head "
               f"and with P(d1 ≤ d2) from the two digit softmaxes; Welch p against the paper's best "
               f"({PAPER_BEST['mean']} ± {PAPER_BEST['std']}, n = {PAPER_BEST['n']}); q base: Welch p against our "
               f"baseline of the same model, Benjamini-Hochberg adjusted over every such test of the section (an "
               f"effect where q < {FDR}); last two columns: the ensemble of the seeds (averaged outputs)")
    return html_table(["model", "variant", "n", "head", "p paper", "q base", "P(d1≤d2)", "p paper", "q base",
                       "ens. head", "ens. P"], rows, caption, cls="results long",
                      col_classes=["model", None, None, None, None, None, None, None, None, None, None])


def _q_values(xdf) -> dict:
    """(metric, model, variant) -> BH-adjusted p against the baseline, or against the whole recipe in the ablation."""
    t = tested_against_baseline(xdf)
    return {(r.metric, r.model, r.variant if r.baseline != "best" else "ablation:" + r.variant): r.q_vs_baseline
            for r in t.itertuples()}


def rules_html(xdf) -> str:
    """The three comparison rules side by side, on validation (what a choice may use) and test."""
    val, test = rules_table(xdf, "val"), rules_table(xdf, "test")
    rows = []
    for i in range(len(test)):
        v, t = val.iloc[i], test.iloc[i]
        rows.append([esc(t["model"]), variant_cell(t["variant"])]
                    + [fmt(v[f"{r}_mean"]) for r in ("head", "digits", "digit_prob")]
                    + [fmt(t[f"{r}_mean"]) for r in ("head", "digits", "digit_prob")])
    return html_table(["model", "variant", "val: head", "val: argmax", "val: P", "test: head", "test: argmax",
                       "test: P"], rows,
                      "TABLE X: Mean error (%) of the three comparison rules: the learned head, the argmax digits "
                      "compared, and P(d1 ≤ d2) > 0.5 from the digit softmaxes", cls="results long",
                      col_classes=["model"] + [None] * 7)


def best_html(xdf, summary: dict) -> str:
    """The configuration chosen on validation, its test error against the target, and its ablation."""
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(summary["text"]))  # the summary's markdown code spans
    mean, final = summary["test_mean"], "held-out-split runs'"
    refit = refit_stats(xdf, summary)
    if refit is not None:
        mean, std, n, nb_pairs = refit
        final = "refit's"
        text += (f" <i>Post hoc</i> (added after the held-out-split runs' test errors had been seen): trained again "
                 f"with the same settings on all {nb_pairs} training pairs "
                 f"(<code>{esc(REFITS[summary['variant']])}</code>, no split held out, nothing tuned): "
                 f"{fmt(mean)} ± {fmt(std)} % over {n} seeds, same rule.")
    out = [f"<p>{text}</p>"]
    ablation = ablation_frame(xdf)
    if len(ablation):
        t = table3(ablation, baseline="best", metric="test_digit_prob_error")
        q = _q_values(xdf)
        rows = [[f"<code>{esc(r['variant'])}</code>", "the whole recipe" if r["variant"] == "best" else
                 esc(VARIANTS.get(r["variant"], {}).get("description", "")),
                 str(int(r["n"])), f"{fmt(r['mean'])} ± {fmt(r['std'])}",
                 "–" if r["variant"] == "best" else signed(r["vs_baseline"]), fmt_p(r["p_vs_baseline"]),
                 fmt_p(q.get(("test_digit_prob_error", "LeNet5", "ablation:" + r["variant"])))]
                for _, r in t.iterrows()]
        out.append(html_table(["variant", "change", "n", "P(d1≤d2) error %", "Δ vs best", "p vs best", "q"], rows,
                              "TABLE XI: Ablation of the best recipe (LeNet5): each row removes one ingredient; "
                              f"q: p adjusted by Benjamini-Hochberg with Table IX's tests; an ingredient matters "
                              f"where removing it raises the error with q < {FDR}",
                              cls="results", col_classes=[None, "wrap", None, None, None, None, None]))
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
        lower = ", ".join(f"<code>{esc(v)}</code> ({signed(d)})" for v, d in zip(eff["variant"], eff["vs_baseline"])
                          if d < 0) or "none"
        higher = ", ".join(f"<code>{esc(v)}</code> ({signed(d)})" for v, d in zip(eff["variant"], eff["vs_baseline"])
                           if d > 0) or "none"
        items.append(f"<li>{esc(model)}, {esc(RULE_LABELS[rule])}: lower error with {lower}; higher with {higher}; "
                     f"no effect for the other {len(g) - len(eff)}.</li>")
    n_raw, n_eff = int((t["p_vs_baseline"] < FDR).sum()), int(t["effect"].sum())
    return (f"<p>Effects against our baseline of the same model, in points: of the {len(t)} tests, {n_raw} have "
            f"Welch p &lt; {FDR} and {n_eff} survive the Benjamini-Hochberg correction (q &lt; {FDR}):</p>"
            f"<ul>{''.join(items)}</ul>")


def variant_cell(variant: str) -> str:
    """A variant's name for a table; the refits, added after test errors were seen, marked post hoc."""
    return f"<code>{esc(variant)}</code>" + (" <i>(post hoc)</i>" if variant in REFITS.values() else "")


def refit_stats(xdf, summary: dict):
    """(mean, std, n, nb_pairs) of the chosen variant's refit on all the training pairs, or None."""
    refit = xdf[(xdf["model"] == summary["model"]) & (xdf["variant"] == REFITS.get(summary["variant"], ""))]
    if refit.empty:
        return None
    return (*mean_std_n(refit[summary["test_metric"]]), int(refit["nb_pairs"].iloc[0]))
