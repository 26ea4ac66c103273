"""Rendering the report: HTML fragments for the report notebook, and the executed notebook to HTML and PDF.

HTML: nbconvert with the template in report/template/paper (code hidden, images inline as
base64, one embedded stylesheet, no script or remote reference), so the file reads offline.
PDF: WeasyPrint over that HTML with the same stylesheet's print rules; it may read data: and
file: URLs only, so rendering never touches the network.
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
import re
import time
from pathlib import Path

from .analysis import ALPHA_DEVIATION, QUIRKS, TABLE_NAMES, best_cells, seed_ranges, yesno
from .models import MODEL_NAMES
from .store import write_atomically

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = ROOT / "report" / "template"
TEMPLATE_NAME = "paper"


# --- formatting ------------------------------------------------------------------------------------

def esc(x) -> str:
    return html.escape(str(x))


def fmt(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    if p < 1e-3:
        return f"{p:.0e}".replace("e-0", "e-")
    return f"{p:.2g}" if p < 0.1 else f"{p:.2f}"


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


def _cell_tds(c, ours_per, ours_best, paper_per, paper_best) -> str:
    """Paper | ours (n) | difference | p, or paper | 'missing' spanning the rest."""
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
    dev = ' dev' if c.p_value < ALPHA_DEVIATION else ''
    return (tds + f'<td class="ours" data-cell="{_cell_id(c)}" data-status="complete">{ours}'
            f'<span class="n"> ({c.n})</span></td><td class="diff">{c.diff:+.2f}</td>'
            f'<td class="p{dev}">{fmt_p(c.p_value)}</td>')


def table1_html(cells, protocol: str, caption: str) -> str:
    cs = {c.key: c for c in cells if c.table == "table1" and c.protocol == protocol}
    sel = list(cs.values())
    ours_per, ours_best, paper_per, paper_best = best_cells(sel, "table1")
    sub = "<th>Paper</th><th>Ours (n)</th><th>Δ</th><th>p</th>"
    out = [f'<table class="results table1" data-protocol="{protocol}">{caption_html(caption)}<thead>',
           '<tr><th rowspan="2">Model</th><th rowspan="2">Weight<br>sharing</th>'
           '<th colspan="4" class="group">Auxiliary loss: No</th><th colspan="4" class="group">Auxiliary loss: Yes</th></tr>',
           f"<tr>{sub}{sub}</tr></thead><tbody>"]
    for m in MODEL_NAMES:
        for ws in (False, True):
            first = f'<td rowspan="2" class="model">{m}</td>' if not ws else ""
            tds = "".join(_cell_tds(cs[(m, ws, aux)], ours_per, ours_best, paper_per, paper_best) for aux in (False, True))
            out.append(f'<tr class="{"ws" if ws else "nows"}">{first}<td>{yesno(ws).capitalize()}</td>{tds}</tr>')
    out.append("</tbody></table>")
    return wrap("".join(out))


def table2_html(cells, protocol: str, caption: str) -> str:
    cs = {c.key: c for c in cells if c.table == "table2" and c.protocol == protocol}
    ours_per, ours_best, paper_per, paper_best = best_cells(list(cs.values()), "table2")
    out = [f'<table class="results table2" data-protocol="{protocol}">{caption_html(caption)}<thead>',
           "<tr><th>Weight sharing</th><th>Batch norm</th><th>Dropout</th>"
           "<th>Paper</th><th>Ours (n)</th><th>Δ</th><th>p</th></tr></thead><tbody>"]
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
                           f"{_cell_tds(c, ours_per, ours_best, paper_per, paper_best)}</tr>")
    out.append("</tbody></table>")
    return wrap("".join(out))


def missing_html(cells, protocol: str | None = None, table: str | None = None) -> str:
    """The exact list of what is missing (configuration and seeds), or '' when nothing is."""
    miss = [c for c in cells if not c.complete and (protocol is None or c.protocol == protocol)
            and (table is None or c.table == table)]
    if not miss:
        return ""
    def what(c):
        if c.note:
            return esc(c.note)
        have = len(c.expected_seeds) - len(c.missing_seeds)
        return (f"seeds {seed_ranges(c.missing_seeds)} ({have}/{len(c.expected_seeds)} in the store; "
                f"lr {c.lr:g}, {c.epochs} epochs)")
    items = "".join(f"<li>{esc(c.label)}: {what(c)}</li>" for c in miss)
    scope = ", ".join(x for x in (TABLE_NAMES.get(table, ""), f"{protocol} protocol" if protocol else "") if x)
    return (f'<div class="missing-list"><p><b>Missing runs</b> ({scope}; {len(miss)} cells, shown as missing '
            f'above):</p><ul>{items}</ul></div>')


def quirk_shift_html(per_cell, grouped) -> str:
    if per_cell.empty:
        return '<p class="note">No cell is complete under both protocols yet, so the quirks\' effect cannot be measured.</p>'
    rows = [[esc(r.table), esc(r.cell), esc(r.quirks), fmt(r.corrected), fmt(r.original), f"{r.shift:+.2f}", fmt_p(r.p)]
            for r in per_cell.itertuples()]
    t1 = html_table(["Table", "Cell", "Quirks", "Corrected", "Original", "Shift", "p"], rows,
                    caption="TABLE V: Test error (%) under the corrected and the original protocol, per cell. "
                            "Shift = original − corrected; p: Welch t-test between the two protocols.",
                    cls="results shifts")
    g = [[esc(r.quirks), str(r.cells), f"{r._3:+.2f}", f"{r._4:+.2f}", f"{r._5:+.2f}"] for r in grouped.itertuples()]
    legend = "; ".join(f"{k}: {esc(v)}" for k, v in QUIRKS.items())
    t2 = html_table(["Quirks that apply", "Cells", "Mean shift", "Min", "Max"], g,
                    caption="TABLE VI: Shift (original − corrected, points) by the set of quirks that apply.",
                    cls="results")
    return t1 + t2 + f'<p class="note">Quirks: {legend}.</p>'


def deviations_html(devs) -> str:
    if not devs:
        return (f'<p>No complete cell differs from the paper at p &lt; {ALPHA_DEVIATION:g} under either protocol.</p>')
    items = []
    for d in devs:
        items.append(f'<li><b>{TABLE_NAMES[d.table]}, {esc(d.label)}</b> (p &lt; {ALPHA_DEVIATION:g} under '
                     f'{" and ".join(d.protocols)}; {esc(d.kind)}): {esc(d.reason)}</li>')
    return f'<ol class="deviations">{"".join(items)}</ol>'


VERDICT_CLASS = {"confirmed": "ok", "partly": "partly", "not confirmed": "no", "not evaluable": "na"}


def claims_html(claims, paper_claims=None, original_claims=None) -> str:
    """The verdict table (ours under each protocol, and the same rule applied to the paper's own numbers),
    then each claim with its rule and evidence."""
    header = ["Claim", "Corrected"] + (["Original"] if original_claims else []) + (["Paper's own numbers"] if paper_claims else [])
    rows = []
    for i, c in enumerate(claims):
        r = [esc(c.name), f'<span class="verdict {VERDICT_CLASS[c.verdict]}">{c.verdict}</span>']
        if original_claims:
            o = original_claims[i]
            r.append(f'<span class="verdict {VERDICT_CLASS[o.verdict]}">{o.verdict}</span>')
        if paper_claims:
            p = paper_claims[i]
            r.append(f'<span class="verdict {VERDICT_CLASS[p.verdict]}">{p.verdict}</span>')
        rows.append(r)
    table = html_table(header, rows, caption="TABLE VII: The paper's claims checked on the numbers (rules below).",
                       cls="results claims")
    blocks = "".join(f'<div class="claim"><p><b>{esc(c.name)}: {c.verdict}.</b> <i>The paper:</i> {esc(c.paper)} '
                     f'<i>Rule:</i> {esc(c.rule)}</p><p class="evidence">{esc(c.evidence)}</p></div>' for c in claims)
    return table + blocks


# --- figures ------------------------------------------------------------------------------------------

def figure_html(fig, caption: str, width: str = "100%", dpi: int = 200) -> str:
    """A figure as an inline base64 PNG with its caption, kept together on one page."""
    import matplotlib.pyplot as plt
    if fig is None:
        return f'<figure class="empty"><figcaption>{caption} (no data yet)</figcaption></figure>'
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return (f'<figure><img style="width:{width}" src="data:image/png;base64,{data}" alt="{esc(caption[:80])}">'
            f"<figcaption>{caption}</figcaption></figure>")


# --- rendering -----------------------------------------------------------------------------------------

class RemoteURLRefused(Exception):
    pass


def _url_fetcher():
    """Only data: and file: URLs; anything remote is refused (rendering stays offline)."""
    try:
        from weasyprint.urls import URLFetcher  # WeasyPrint >= 68
        return URLFetcher(allowed_protocols={"data", "file"})
    except ImportError:  # older WeasyPrint: a function fetcher
        from weasyprint import default_url_fetcher

        def fetch(url, *args, **kwargs):
            if not url.startswith(("data:", "file:")):
                raise RemoteURLRefused(f"refusing to fetch {url}: the report renders offline")
            return default_url_fetcher(url, *args, **kwargs)
        return fetch


def notebook_to_html(executed_notebook: Path) -> str:
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(str(executed_notebook), as_version=4)
    exporter = HTMLExporter(template_name=TEMPLATE_NAME, extra_template_basedirs=[str(TEMPLATE_DIR)],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    return body


def check_offline(text: str) -> list[str]:
    """Remote references that would be fetched by a reader's browser or by WeasyPrint (should be none)."""
    import re
    return sorted(set(re.findall(r'(?:src|href)\s*=\s*["\']((?:https?:)?//[^"\']+)', text)
                      + re.findall(r'url\(\s*["\']?((?:https?:)?//[^)"\']+)', text)
                      + re.findall(r'@import\s+["\']?((?:https?:)?//[^;"\']+)', text)))


def render_report(executed_notebook: Path, out_dir: Path) -> dict:
    """The executed report notebook to out_dir/report.html (code hidden, images inline) and out_dir/report.pdf.

    Returns {"html": path, "pdf": path, "pages": n, "seconds": {"html": s, "pdf": s}}. Raises ValueError if
    the HTML references anything remote (it must read offline).
    """
    import weasyprint
    executed_notebook, out_dir = Path(executed_notebook), Path(out_dir)
    t0 = time.perf_counter()
    body = notebook_to_html(executed_notebook)
    remote = check_offline(body)
    if remote:
        raise ValueError(f"the report HTML references remote resources, so it would not read offline: {remote[:5]}")
    html_path, pdf_path = out_dir / "report.html", out_dir / "report.pdf"
    write_atomically(html_path, body.encode("utf-8"))
    t1 = time.perf_counter()
    doc = weasyprint.HTML(string=body, base_url=str(out_dir.resolve()) + "/", url_fetcher=_url_fetcher()).render()
    pdf = doc.write_pdf()
    write_atomically(pdf_path, pdf)
    t2 = time.perf_counter()
    return {"html": html_path, "pdf": pdf_path, "pages": len(doc.pages),
            "seconds": {"html": round(t1 - t0, 2), "pdf": round(t2 - t1, 2)}}


# --- the report's generated sections ------------------------------------------------------------------

def _counts(values) -> str:
    from collections import Counter
    c = Counter(v for v in values if v is not None)
    return ", ".join(f"{esc(k)} ({n})" for k, n in c.most_common()) or "–"


def title_html(profile, records, rendered: str) -> str:
    return ('<div class="title-block"><h1>Siamese networks that compare two MNIST digits: a reproduction</h1>'
            '<p class="subtitle">of “EE-559 Deep Learning: Project 1” by R. Uebersax, P. Bedmar López and '
            'J. Perolini (EPFL)</p>'
            f'<p class="meta">Generated from the results store of profile <i>{esc(profile.name)}</i> '
            f'({len(records)} training runs; code {_counts(r["code_version"] for r in records)}); '
            f'rendered {esc(rendered)}.</p></div>')


def _agreement(cells, protocol):
    done = [c for c in cells if c.protocol == protocol and c.complete]
    agree = [c for c in done if not c.p_value < ALPHA_DEVIATION]
    return len(agree), len(done), len([c for c in cells if c.protocol == protocol])


def _best(cells, protocol, table="table1"):
    done = [c for c in cells if c.protocol == protocol and c.table == table and c.complete]
    return min(done, key=lambda c: c.mean) if done else None


def abstract_html(cells, claims, beyond: str = "") -> str:
    """The abstract; ``beyond``: a sentence on Section VII's result (beyond_sentence), or empty."""
    parts = ["<b>Abstract</b>—We re-ran the paper's experiments (four siamese CNNs that decide whether the first "
             "of two 14×14 MNIST digits is at most the second, with and without weight sharing and auxiliary loss; "
             "a LeNet5 ablation of batch norm and dropout) under a corrected protocol and under the authors' "
             "original one, and compare every number with the published one."]
    best = _best(cells, "corrected")
    if best is not None:
        parts.append(f"Our best Table I configuration is {esc(best.label)}: {best.mean:.2f} ± {best.std:.2f}% over "
                     f"{best.n} seeds, against the paper's {paper_num(best.paper_mean)} ± {paper_num(best.paper_std)}% "
                     f"for the same configuration (the paper's best is LeNet5_FullyConv with weight sharing and "
                     f"auxiliary loss, 3.629%).")
    for protocol in ("corrected", "original"):
        a, d, t = _agreement(cells, protocol)
        if d:
            parts.append(f"Under the {protocol} protocol, {a} of the {d} complete cells of Tables I and II agree with "
                         f"the paper (Welch p ≥ {ALPHA_DEVIATION:g})" + (f"; {t - d} cells are missing." if t > d else "."))
        else:
            parts.append(f"No cell is complete yet under the {protocol} protocol.")
    if claims:
        from collections import Counter
        v = Counter(c.verdict for c in claims)
        parts.append("Of the paper's " + str(len(claims)) + " claims checked here, "
                     + ", ".join(f"{n} {k}" for k, n in v.most_common()) + " (corrected protocol).")
    if beyond:
        parts.append(beyond)
    return f'<div class="abstract"><p>{" ".join(parts)}</p></div>'


def parameters_html() -> str:
    from .analysis import PAPER_PARAMETERS
    from .models import build_model, count_parameters
    rows = []
    for m in MODEL_NAMES:
        shared = count_parameters(build_model(m, weight_sharing=True))
        separate = count_parameters(build_model(m, weight_sharing=False))
        paper = PAPER_PARAMETERS[m]
        rows.append([m, f"{paper:,}", f"{shared:,}", "yes" if shared == paper else f"no ({shared - paper:+,})",
                     "not stated", f"{separate:,}"])
    return html_table(["Model", "Paper, shared", "Ours, shared", "Same", "Paper, not shared", "Ours, not shared"], rows,
                      caption="TABLE III: Parameters of the four siamese models (batch norm on), with weight sharing "
                              "(one branch for both images) and without (two branches); counted with "
                              "<code>count_parameters</code> on the models as built.", cls="results")


def lr_choice_html(curves, used: dict) -> str:
    from .analysis import FINAL_EPOCHS, choose_learning_rates
    from .profiles import PAPER_LRS
    rule = choose_learning_rates(curves)
    rows = []
    for m in MODEL_NAMES:
        if m not in curves:
            continue
        incomplete = {lr: e["missing_seeds"] for lr, e in curves[m].items() if e["missing_seeds"]}
        pick = f"{rule[m]:g}" if m in rule else (f"search incomplete ({len(curves[m]) - len(incomplete)} of "
                                                 f"{len(curves[m])} rates complete)")
        rows.append([m, f"{PAPER_LRS[m]:g}", pick, f"{used[m]:g}" if m in used else "–"])
    if not rows:
        return '<p class="note">The profile has no LR search stage.</p>'
    return html_table(["Model", "Paper's choice", f"Lowest final loss (last {FINAL_EPOCHS} epochs)", "Used for the tables"],
                      rows, cls="results",
                      caption="TABLE IV: Learning rates: the paper's, the rate our rule picks from the search, and the one the "
                              "tables used.")


def protocol_html(profile, records, timings) -> str:
    from .profiles import PAPER_LRS
    s, st = profile.settings, profile.stages
    rows = [["Data", f"{s['nb_pairs']} training and {s['nb_pairs']} test pairs, drawn once by the course prologue's "
                     f"<code>generate_pair_sets</code> with data seed {s['data_seed']} (verified MNIST)"],
            ["Protocols", ", ".join(s["protocols"])]]
    for stage, name in (("lr_search", "LR search"), ("table1", "Table I"), ("table2", "Table II")):
        if stage in st:
            g = st[stage]
            extra = f"; rates {', '.join(f'{x:g}' for x in g['lrs'])}" if stage == "lr_search" else ""
            rows.append([name, f"seeds {seed_ranges(g['seeds'])} ({len(g['seeds'])} runs per configuration), "
                               f"{g['epochs']} epochs{extra}"])
    if "extensions" in st:
        from .extensions import VARIANTS, applies_to
        g = st["extensions"]
        variants = g.get("variants", list(VARIANTS))
        n = sum(applies_to(v, m) for m in g["models"] for v in variants)
        rows.append(["Extensions", f"{len(variants)} variants, {n} (model, variant) configurations over "
                                   f"{', '.join(g['models'])}; seeds {seed_ranges(g['seeds'])}, "
                                   f"{g['epochs']} epochs unless a variant sets its own (Section VII)"])
    trained = sorted({(r["config"]["epochs"], r.get("epochs_trained")) for r in records
                      if r.get("epochs_trained") not in (None, r["config"]["epochs"])})
    if trained:
        rows.append(["Epochs actually trained", "; ".join(f"{t} instead of {e} (original protocol, no auxiliary loss)"
                                                         for e, t in trained)])
    rows += [["Mini-batch", f"{s['batch_size']} pairs, fixed order (the training pairs are shuffled once per seed)"],
             ["Optimiser", "Adam (PyTorch defaults besides the rate), cross-entropy; auxiliary loss = CE(digit 1) + "
                           "CE(digit 2) + CE(comparison), weights 1"],
             ["Learning rates", "the paper's: " + ", ".join(f"{m} {lr:g}" for m, lr in PAPER_LRS.items())
              if s["learning_rates"] == "paper" else "chosen from this LR search by the rule in section IV-A"],
             ["Device", _counts(r["device"] for r in records)],
             ["Torch", _counts(r["torch_version"] for r in records)],
             ["Threads per run", _counts(r.get("threads") for r in records)]]
    compute = sum(r["metrics"].get("train_seconds", 0.0) for r in records)
    rows.append(["Training time", f"{compute / 3600:.2f} h summed over the {len(records)} runs"])
    if timings:
        ex = timings.get("executions", [])
        trained, cached = sum(e.get("trained") or 0 for e in ex), sum(e.get("cached") or 0 for e in ex)
        # a runner pass over a store filled earlier reads its runs back: say so, or the wall time misleads
        rows.append(["Wall time", f"{timings.get('total_seconds', float('nan')) / 3600:.2f} h in the runner's passes "
                                  f"({timings.get('jobs', '?')} parallel jobs, device {esc(timings.get('device', '?'))})"
                                  + (f"; the notebooks trained {trained} runs in these passes and read {cached} back "
                                     f"from the store, trained before them" if cached else "")])
    else:
        rows.append(["Wall time", "not recorded (no timings.json from the runner)"])
    return html_table(["", ""], rows, caption="The protocol as run (from the profile and the records)", cls="plain")


def environment_html(records) -> str:
    import importlib.metadata as md
    import platform
    import torch
    pkgs = ["torch", "torchvision", "numpy", "pandas", "scipy", "matplotlib", "nbconvert", "papermill", "weasyprint"]
    versions = []
    for p in pkgs:
        try:
            versions.append(f"{p} {md.version(p)}")
        except md.PackageNotFoundError:
            versions.append(f"{p} (not installed)")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows = [["Rendered with", f"Python {platform.python_version()}; " + ", ".join(versions)],
            ["Render machine", f"{esc(cpu)}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, "
                               f"GPU {esc(gpu)}"],
            ["Runs trained on", "hosts " + _counts(r.get("host") for r in records) + "; CPUs " +
             _counts(r.get("cpu") for r in records) + "; devices " + _counts(r["device"] for r in records)],
            ["Runs' software", "Python " + _counts(r.get("python") for r in records) + "; torch " +
             _counts(r["torch_version"] for r in records) + "; threads " + _counts(r.get("threads") for r in records)],
            ["Git commit of the code (per run)", _counts(r["code_version"] for r in records)],
            ["Runs' dates", (min(r["created"] for r in records) + " to " + max(r["created"] for r in records))
             if records else "–"]]
    return html_table(["", ""], rows, caption="Environment", cls="plain")


def timings_html(timings) -> str:
    if not timings:
        return ('<p class="note">No <code>timings.json</code> in the runs folder: this report was rendered outside '
                'the runner, so the wall time per stage is not known.</p>')
    rows = [[esc(k), f"{v:.0f} s ({v / 3600:.2f} h)"] for k, v in timings.get("stages", {}).items()]
    total = timings.get("total_seconds")
    if total is not None:
        rows.append(["<b>total</b>", f"<b>{total:.0f} s ({total / 3600:.2f} h)</b>"])
    return html_table(["Stage", "Wall time"], rows, cls="plain",
                      caption=f"Wall time per stage: profile {esc(timings.get('profile', '?'))}, "
                              f"{esc(timings.get('jobs', '?'))} jobs, device {esc(timings.get('device', '?'))}, "
                              f"{esc(timings.get('started', '?'))} to {esc(timings.get('finished', '?'))}")


def notebooks_html(timings, runs_dir, report_dir) -> str:
    """Links to every executed notebook named in timings.json, relative to the report's folder."""
    if not timings or not timings.get("executions"):
        return '<p class="note">No executed notebooks are listed (no <code>timings.json</code>).</p>'
    rows = []
    for e in timings["executions"]:
        nb = Path(e.get("notebook", ""))
        candidates = [nb] if nb.is_absolute() else [Path(runs_dir) / nb, ROOT / nb]
        target = next((c for c in candidates if c.exists()), candidates[-1])
        href = os.path.relpath(target, report_dir)
        rows.append([esc(e.get("stage", "")), f'<a href="{esc(href)}">{esc(e.get("name", nb.name))}</a>',
                     esc(e.get("status", "")), f"{e.get('seconds', 0):.0f}", str(e.get("runs", "")),
                     str(e.get("trained", "")), str(e.get("cached", ""))])
    return html_table(["Stage", "Notebook", "Status", "Seconds", "Runs", "Trained", "Cached"], rows,
                      caption="Executed notebooks, one per configuration", cls="plain long")


def conclusion_html(cells, claims) -> str:
    best = _best(cells, "corrected")
    paper_best = min((c for c in cells if c.table == "table1" and c.protocol == "corrected"), key=lambda c: c.paper_mean)
    out = []
    if best is None:
        out.append("No Table I cell is complete yet, so no conclusion can be drawn from our numbers.")
    else:
        same = best.key == paper_best.key
        out.append(f"Our best configuration is {esc(best.label)} with {best.mean:.2f}% test error "
                   f"({'the same configuration as' if same else 'where'} the paper's best, "
                   f"{esc(paper_best.label)}, reports {paper_num(paper_best.paper_mean)}%).")
        pb = next((c for c in cells if c.protocol == "corrected" and c.key == paper_best.key and c.table == "table1"), None)
        if pb is not None and pb.complete and not same:
            out.append(f"That configuration gives {pb.mean:.2f} ± {pb.std:.2f}% here (p={fmt_p(pb.p_value)} vs the paper).")
    for protocol in ("corrected", "original"):
        a, d, t = _agreement(cells, protocol)
        if d:
            out.append(f"Under the {protocol} protocol {a} of {d} complete cells agree with the paper at the "
                       f"{ALPHA_DEVIATION:g} level.")
    confirmed = [c.name for c in claims if c.verdict == "confirmed"]
    partly = [c.name for c in claims if c.verdict == "partly"]
    notc = [c.name for c in claims if c.verdict == "not confirmed"]
    na = [c.name for c in claims if c.verdict == "not evaluable"]
    for names, what in ((confirmed, "confirmed"), (partly, "partly confirmed"), (notc, "not confirmed"),
                        (na, "not evaluable for lack of data")):
        if names:
            out.append(f"Claims {what}: {esc(', '.join(names))}.")
    missing = [c for c in cells if not c.complete and not c.note]
    if missing:
        out.append(f"{len(missing)} table cells still lack runs (listed under the tables); the conclusions above use "
                   "only complete cells.")
    return "<p>" + " ".join(out) + "</p>"


def write_data_csvs(frame, cells, out_dir) -> dict:
    """The data behind the report: runs.csv (one row per training run) and cells.csv (one row per table
    cell: paper's and our statistics), written atomically."""
    from .analysis import cells_frame
    out_dir = Path(out_dir)
    runs = out_dir / "runs.csv"
    table = out_dir / "cells.csv"
    write_atomically(runs, frame.sort_values(["model", "protocol", "weight_sharing", "aux_loss", "batch_norm",
                                               "dropout", "lr", "epochs", "seed"]).to_csv(index=False).encode()
                      if not frame.empty else b"")
    write_atomically(table, cells_frame(cells).to_csv(index=False).encode())
    return {"runs": runs, "cells": table}


# --- Section VII: beyond the paper ---------------------------------------------------------------

TARGET_ERROR = 1.5  # the goal for a new best: mean test error over 10 seeds, same 1000/1000 pairs


def extensions_intro_html(xdf, expected: int) -> str:
    """What each variant changes, on which models, and how many of the stage's runs are in the store."""
    from .extensions import VARIANTS
    present = 0 if xdf is None else len(xdf)
    rows = []
    for name, spec in VARIANTS.items():
        models = ", ".join(spec.get("models", ())) or "both"
        rows.append([f"<code>{esc(name)}</code>", esc(spec["description"]), esc(models)])
    note = (f'<p class="note">{present} of the stage\'s {expected} runs are in the store.'
            + (" Missing runs are left out of every number below; rerun the profile to fill them.</p>"
               if present < expected else "</p>"))
    return note + html_table(["variant", "what it changes from the paper's setting", "models"], rows,
                             "TABLE VIII: The variants of the extensions stage", cls="plain")


def table3_html(xdf) -> str:
    """Table III: each variant against the paper's best and our baseline, per comparison rule."""
    from .extensions import PAPER_BEST, ensemble_errors, table3
    head = table3(xdf, metric="test_error")
    prob = table3(xdf, metric="test_digit_prob_error")
    ens = ensemble_errors(xdf)
    rows = []
    for i in range(len(head)):
        h, p, e = head.iloc[i], prob.iloc[i], ens.iloc[i]
        rows.append([esc(h["model"]), f"<code>{esc(h['variant'])}</code>", str(int(h["n"])),
                     f"{fmt(h['mean'])} ± {fmt(h['std'])}", fmt_p(h["p_vs_paper"]), fmt_p(h["p_vs_baseline"]),
                     f"{fmt(p['mean'])} ± {fmt(p['std'])}", fmt_p(p["p_vs_paper"]), fmt_p(p["p_vs_baseline"]),
                     fmt(e["head_error"]), fmt(e["digit_prob_error"])])
    caption = (f"TABLE IX: Test error (%) of each variant, mean ± std over seeds, with the learned comparison head "
               f"and with P(d1 ≤ d2) from the two digit softmaxes; Welch p against the paper's best "
               f"({PAPER_BEST['mean']} ± {PAPER_BEST['std']}, n = {PAPER_BEST['n']}) and against our baseline of "
               f"the same model; last two columns: the ensemble of the seeds (averaged outputs)")
    return html_table(["model", "variant", "n", "head", "p paper", "p base", "P(d1≤d2)", "p paper", "p base",
                       "ens. head", "ens. P"], rows, caption, cls="results long",
                      col_classes=["model", None, None, None, None, None, None, None, None, None, None])


def rules_html(xdf) -> str:
    """The three comparison rules side by side, on validation (what a choice may use) and test."""
    from .extensions import rules_table
    val, test = rules_table(xdf, "val"), rules_table(xdf, "test")
    rows = []
    for i in range(len(test)):
        v, t = val.iloc[i], test.iloc[i]
        rows.append([esc(t["model"]), f"<code>{esc(t['variant'])}</code>"]
                    + [fmt(v[f"{r}_mean"]) for r in ("head", "digits", "digit_prob")]
                    + [fmt(t[f"{r}_mean"]) for r in ("head", "digits", "digit_prob")])
    return html_table(["model", "variant", "val: head", "val: argmax", "val: P", "test: head", "test: argmax",
                       "test: P"], rows,
                      "TABLE X: Mean error (%) of the three comparison rules: the learned head, the argmax digits "
                      "compared, and P(d1 ≤ d2) > 0.5 from the digit softmaxes", cls="results long",
                      col_classes=["model"] + [None] * 7)


def best_html(xdf, summary: dict) -> str:
    """The configuration chosen on validation, its test error against the target, and its ablation."""
    from .extensions import REFITS, VARIANTS, table3
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(summary["text"]))  # the summary's markdown code spans
    mean, final = summary["test_mean"], "held-out-split runs'"
    refit = refit_stats(xdf, summary)
    if refit is not None:
        mean, std, n, nb_pairs = refit
        final = "refit's"
        text += (f" Trained again with the same settings on all {nb_pairs} training pairs "
                 f"(<code>{esc(REFITS[summary['variant']])}</code>, no split held out, nothing tuned): "
                 f"<b>{fmt(mean)} ± {fmt(std)} %</b> over {n} seeds, same rule.")
    verdict = (f"The {final} mean meets the target of {TARGET_ERROR} % or lower." if mean <= TARGET_ERROR else
               f"The {final} mean misses the target of {TARGET_ERROR} % by {mean - TARGET_ERROR:.2f} points.")
    out = [f"<p>{text} {verdict}</p>"]
    ablation = xdf[(xdf["model"] == "LeNet5") & xdf["variant"].str.startswith("best")
                   & ~xdf["variant"].isin(list(REFITS.values()))]
    if "best" in set(ablation["variant"]) and len(set(ablation["variant"])) > 1:
        t = table3(ablation, baseline="best", metric="test_digit_prob_error")
        rows = [[f"<code>{esc(r['variant'])}</code>", "the whole recipe" if r["variant"] == "best" else
                 esc(VARIANTS.get(r["variant"], {}).get("description", "")),
                 str(int(r["n"])), f"{fmt(r['mean'])} ± {fmt(r['std'])}",
                 "–" if r["variant"] == "best" else f"{r['vs_baseline']:+.2f}", fmt_p(r["p_vs_baseline"])]
                for _, r in t.iterrows()]
        out.append(html_table(["variant", "change", "n", "P(d1≤d2) error %", "Δ vs best", "p vs best"], rows,
                              "TABLE XI: Ablation of the best recipe (LeNet5): each row removes one ingredient; "
                              "an ingredient matters where removing it raises the error with p < 0.05",
                              cls="results", col_classes=[None, "wrap", None, None, None, None]))
    return "".join(out)


def findings_html(xdf, alpha: float = 0.05) -> str:
    """What the variants change against our baseline of the same model (Welch p < alpha), per rule:
    generated from the numbers, so it can never disagree with Table IX."""
    from .extensions import REFITS, RULE_LABELS, table3
    items = []
    for metric, rule in (("test_error", "head"), ("test_digit_prob_error", "digit_prob")):
        t = table3(xdf, metric=metric)
        t = t[~t["variant"].str.startswith("best") & ~t["variant"].isin(list(REFITS.values()))]
        for model, g in t.groupby("model", sort=False):
            sig = g[g["p_vs_baseline"] < alpha]
            lower = ", ".join(f"<code>{esc(v)}</code> ({d:+.2f})" for v, d in zip(sig["variant"], sig["vs_baseline"])
                              if d < 0) or "none"
            higher = ", ".join(f"<code>{esc(v)}</code> ({d:+.2f})" for v, d in zip(sig["variant"], sig["vs_baseline"])
                               if d > 0) or "none"
            base = g[g["variant"] == "baseline"]["mean"]
            items.append(f"<li>{esc(model)}, {esc(RULE_LABELS[rule])} (baseline "
                         f"{fmt(base.iloc[0]) if len(base) else '–'} %): lower error with {lower}; higher with "
                         f"{higher}; no difference at p &lt; {alpha} for the other {len(g) - len(sig) - len(base)}.</li>")
    return (f"<p>Differences in points against our baseline of the same model, where Welch p &lt; {alpha}:</p>"
            f"<ul>{''.join(items)}</ul>")


def refit_stats(xdf, summary: dict):
    """(mean, std, n, nb_pairs) of the chosen variant's refit on all the training pairs, or None."""
    from .extensions import REFITS, _stats
    refit = xdf[(xdf["model"] == summary["model"]) & (xdf["variant"] == REFITS.get(summary["variant"], ""))]
    if refit.empty:
        return None
    return (*_stats(refit[summary["test_metric"]]), int(refit["nb_pairs"].iloc[0]))


def beyond_sentence(profile, store_dir) -> str:
    """One sentence for the abstract on Section VII's chosen configuration (empty without extension runs)."""
    from .extensions import PAPER_BEST, RULE_LABELS, best_summary, load_extensions
    if "extensions" not in profile.stages:
        return ""
    xdf = load_extensions(profile, store_dir, missing="skip")
    if xdf.empty:
        return ""
    summary = best_summary(xdf)
    refit = refit_stats(xdf, summary)
    mean, std, n = (refit[:3] if refit is not None else (summary["test_mean"], summary["test_std"], summary["n"]))
    how = " after a refit on all the training pairs" if refit is not None else ""
    return (f"Beyond the paper (Section VII), {esc(summary['model'])} with the variant chosen on validation splits "
            f"(<code>{esc(summary['variant'])}</code>, rule: {esc(RULE_LABELS[summary['rule']])}) reaches "
            f"{mean:.2f} ± {std:.2f}% over {n} seeds{how}, against the paper's best {PAPER_BEST['mean']}%.")
