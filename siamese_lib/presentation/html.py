"""HTML fragments of the report: formatting, the results tables, figures inline."""

from __future__ import annotations

import base64
import html
import io
import math

import matplotlib.pyplot as plt

from ..analysis.stats import fmt_p, seed_ranges
from ..analysis.tables import TABLE_NAMES, best_cells, yesno
from ..analysis.verdicts import DIFFERENT, EQUIVALENT, cell_agreement
from ..config import PAPER_MODELS

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


VERDICT_MARK = {
    EQUIVALENT: ("equiv.", "eq"),
    DIFFERENT: ("differs", "dev"),
    "inconclusive": ("inconcl.", "inc"),
}


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
        return (
            tds
            + f'<td colspan="3" class="missing" data-cell="{_cell_id(c)}" data-status="missing">{short}</td>'
        )
    ours = f"{fmt(c.mean)} ± {fmt(c.std)}"
    if c.key == ours_best:
        ours = f'<span class="best">{ours}</span>'
    elif c.key in ours_per:
        ours = f"<b>{ours}</b>"
    a = cell_agreement(c, margin)
    word, cls = VERDICT_MARK.get(a.verdict, ("–", "na"))
    return (
        tds + f'<td class="ours" data-cell="{_cell_id(c)}" data-status="complete">{ours}'
        f'<span class="n"> ({c.n})</span></td><td class="diff">{signed(c.diff)}</td>'
        f'<td class="verdict {cls}" title="Welch p {fmt_p(a.welch_p)}, TOST p {fmt_p(a.tost_p)}">{word}</td>'
    )


def signed(x: float, digits: int = 2) -> str:
    """+1.23 / −0.45, and 0.00 (never −0.00) when it rounds to zero."""
    text = f"{x:+.{digits}f}"
    return f"{0:.{digits}f}" if float(text) == 0 else text


def table1_html(cells, protocol: str, caption: str, margin: float) -> str:
    cs = {c.key: c for c in cells if c.table == "table1" and c.protocol == protocol}
    sel = list(cs.values())
    ours_per, ours_best, paper_per, paper_best = best_cells(sel, "table1")
    sub = "<th>Paper</th><th>Ours (n)</th><th>Δ</th><th>Verdict</th>"
    out = [
        f'<table class="results table1" data-protocol="{protocol}">{caption_html(caption)}<thead>',
        '<tr><th rowspan="2">Model</th><th rowspan="2">Weight<br>sharing</th>'
        '<th colspan="4" class="group">Auxiliary loss: No</th><th colspan="4" class="group">Auxiliary loss: Yes</th></tr>',
        f"<tr>{sub}{sub}</tr></thead><tbody>",
    ]
    for m in PAPER_MODELS:
        for ws in (False, True):
            first = f'<td rowspan="2" class="model">{m}</td>' if not ws else ""
            tds = "".join(
                _cell_tds(cs[(m, ws, aux)], ours_per, ours_best, paper_per, paper_best, margin)
                for aux in (False, True)
            )
            out.append(
                f'<tr class="{"ws" if ws else "nows"}">{first}<td>{yesno(ws).capitalize()}</td>{tds}</tr>'
            )
    out.append("</tbody></table>")
    return wrap("".join(out))


def table2_html(cells, protocol: str, caption: str, margin: float) -> str:
    cs = {c.key: c for c in cells if c.table == "table2" and c.protocol == protocol}
    ours_per, ours_best, paper_per, paper_best = best_cells(list(cs.values()), "table2")
    out = [
        f'<table class="results table2" data-protocol="{protocol}">{caption_html(caption)}<thead>',
        "<tr><th>Weight sharing</th><th>Batch norm</th><th>Dropout</th>"
        "<th>Paper</th><th>Ours (n)</th><th>Δ</th><th>Verdict</th></tr></thead><tbody>",
    ]
    for ws in (False, True):
        for bn in (False, True):
            for do in (False, True):
                c = cs[(ws, bn, do)]
                lead = ""
                if not bn and not do:
                    lead += f'<td rowspan="4">{yesno(ws).capitalize()}</td>'
                if not do:
                    lead += f'<td rowspan="2">{yesno(bn).capitalize()}</td>'
                out.append(
                    f"<tr>{lead}<td>{yesno(do).capitalize()}</td>"
                    f"{_cell_tds(c, ours_per, ours_best, paper_per, paper_best, margin)}</tr>"
                )
    out.append("</tbody></table>")
    return wrap("".join(out))


def missing_html(cells, protocol: str | None = None, table: str | None = None) -> str:
    """What is missing: cells the profile does not run in one line, then each incomplete cell with its seeds;
    '' when nothing is."""
    miss = [
        c
        for c in cells
        if not c.complete
        and (protocol is None or c.protocol == protocol)
        and (table is None or c.table == table)
    ]
    if not miss:
        return ""
    scope = ", ".join(
        x for x in (TABLE_NAMES.get(table, ""), f"{protocol} protocol" if protocol else "") if x
    )
    not_run = [c for c in miss if c.note]
    out = [f'<div class="missing-list"><p><b>Missing</b> ({scope}): ']
    if not_run:
        out.append(
            f"{len(not_run)} cells not run at this size (shown as <i>not run</i> above)"
            + ("." if len(not_run) == len(miss) else "; ")
        )
    partial = [c for c in miss if not c.note]
    if partial:
        out.append(
            f"{len(partial)} cells lack runs:</p><ul>"
            + "".join(
                f"<li>{esc(c.label)}: seeds {seed_ranges(c.missing_seeds)} ({len(c.expected_seeds) - len(c.missing_seeds)}"
                f"/{len(c.expected_seeds)} in the store; lr {c.lr:g}, {c.epochs} epochs)</li>"
                for c in partial
            )
            + "</ul>"
        )
    else:
        out.append("</p>")
    return "".join(out) + "</div>"


def quirk_shift_html(per_cell, grouped) -> str:
    if per_cell.empty:
        return '<p class="note">No cell is complete under both protocols yet, so the quirks\' effect cannot be measured.</p>'
    rows = [
        [
            esc(r.table),
            esc(r.cell),
            esc(r.quirks),
            fmt(r.corrected),
            fmt(r.original),
            signed(r.shift),
            fmt_p(r.p),
        ]
        for r in per_cell.itertuples()
    ]
    t1 = html_table(
        ["Table", "Cell", "Quirks", "Corrected", "Original", "Shift", "p"],
        rows,
        caption="TABLE S2: Test error (%) under the corrected and the original protocol, per cell. "
        "Shift = original − corrected; p: Welch t-test between the two protocols.",
        cls="results shifts",
    )
    g = [
        [esc(r.quirks), str(r.cells), signed(r._3), signed(r._4), signed(r._5)] for r in grouped.itertuples()
    ]
    t2 = html_table(
        ["Quirks that apply", "Cells", "Mean shift", "Min", "Max"],
        g,
        caption="TABLE S3: Shift (original − corrected, points) by the set of quirks that apply.",
        cls="results",
    )
    return t1 + t2 + '<p class="note">The quirks are named as in <a href="#quirks">Section IV-D</a>.</p>'


# --- figures ------------------------------------------------------------------------------------------


def figure_html(fig, caption: str, width: str = "100%", dpi: int = 200) -> str:
    """A figure as an inline base64 PNG with its caption, kept together on one page."""
    if fig is None:
        return f'<figure class="empty"><figcaption>{caption} (no data yet)</figcaption></figure>'
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return (
        f'<figure><img style="width:{width}" src="data:image/png;base64,{data}" alt="{esc(caption[:80])}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )
