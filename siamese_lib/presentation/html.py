"""HTML fragments of the report: formatting, the results tables, figures inline."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib.pyplot as plt

from ..analysis.tables import TABLE_NAMES, best_cells
from ..analysis.verdicts import DIFFERENT, EQUIVALENT, cell_agreement
from ..config import PAPER_MODELS
from . import templates
from .templates import html_table, safe  # noqa: F401 (html_table: provenance's import)


def esc(x) -> str:
    return html.escape(str(x))


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


def results_cells(cells, table: str, protocol: str, margin: float) -> dict:
    """The cells of one table and protocol by key, each with what its template shows: its id, the marks (best
    overall, best per model) on the paper's numbers and ours, its agreement and verdict word."""
    cs = {c.key: c for c in cells if c.table == table and c.protocol == protocol}
    ours_per, ours_best, paper_per, paper_best = best_cells(list(cs.values()), table)
    out = {}
    for key, c in cs.items():
        x = {"c": c, "id": _cell_id(c)}
        x["paper_mark"] = "best" if key == paper_best else "bold" if key in paper_per else ""
        x["ours_mark"] = "best" if key == ours_best else "bold" if key in ours_per else ""
        if c.complete:
            x["a"] = cell_agreement(c, margin)
            x["word"], x["cls"] = VERDICT_MARK.get(x["a"].verdict, ("–", "na"))
        out[key] = x
    return out


def _macro(name: str):
    return getattr(templates.module("results.macros.j2"), name)


def table1_html(cells, protocol: str, caption: str, margin: float) -> str:
    cs = results_cells(cells, "table1", protocol, margin)
    return str(_macro("table1")(cs, protocol, safe(caption), PAPER_MODELS))


def table2_html(cells, protocol: str, caption: str, margin: float) -> str:
    return str(_macro("table2")(results_cells(cells, "table2", protocol, margin), protocol, safe(caption)))


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
    return str(_macro("missing")(miss, scope))


def quirk_shift_html(per_cell, grouped) -> str:
    """Tables S2 and S3 from ``tables.quirk_shifts``."""
    rows = [list(f.itertuples(index=False)) for f in (per_cell, grouped)]
    return str(_macro("quirk_shifts")(*rows))


# --- figures ------------------------------------------------------------------------------------------


def figure_html(fig, caption: str, width: str = "100%", dpi: int = 200) -> str:
    """A figure (a matplotlib figure, or the path of a committed SVG) inline in base64 with its caption, kept
    together on one page."""
    if fig is None:
        return f'<figure class="empty"><figcaption>{caption} (no data yet)</figcaption></figure>'
    if isinstance(fig, Path):
        data, kind = fig.read_bytes(), "svg+xml"
    else:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        plt.close(fig)
        data, kind = buf.getvalue(), "png"
    return (
        f'<figure><img style="width:{width}" src="data:image/{kind};base64,{base64.b64encode(data).decode()}" '
        f'alt="{esc(caption[:80])}"><figcaption>{caption}</figcaption></figure>'
    )
