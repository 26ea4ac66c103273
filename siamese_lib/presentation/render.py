"""The executed report notebook to HTML and PDF.

HTML: nbconvert with the template in report/template/paper (code hidden, images inline as
base64, one embedded stylesheet, no script or remote reference), so the file reads offline.
PDF: WeasyPrint over that HTML with the same stylesheet's print rules; it may read data: and
file: URLs only, so rendering never touches the network.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from ..common import TEMPLATE_DIR, write_atomically

TEMPLATE_NAME = "paper"
FONT_EPOCH = "946684800"  # 2000-01-01: the embedded fonts' "modified" date, fixed


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


def report_title(nb) -> str | None:
    """The title an output declares (metadata "report_title"): the HTML <title>, hence the PDF's."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            title = out.get("metadata", {}).get("report_title")
            if title:
                return title
    return None


def notebook_to_html(executed_notebook: Path, code: bool = False) -> str:
    nb = nbformat.read(str(executed_notebook), as_version=4)
    nb.metadata["title"] = report_title(nb) or executed_notebook.stem
    if code:  # papermill's injected parameters name this machine's paths
        nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for i, cell in enumerate(nb.cells):  # the HTML carries cell ids; papermill draws its parameters cell's
        cell["id"] = f"cell-{i}"
    exporter = HTMLExporter(
        template_name=TEMPLATE_NAME,
        extra_template_basedirs=[str(TEMPLATE_DIR)],
        exclude_input=not code,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _ = exporter.from_notebook_node(nb)
    return body


def check_offline(text: str) -> list[str]:
    """Remote references that would be fetched by a reader's browser or by WeasyPrint (should be none)."""
    return sorted(
        set(
            re.findall(r'(?:src|href)\s*=\s*["\']((?:https?:)?//[^"\']+)', text)
            + re.findall(r'url\(\s*["\']?((?:https?:)?//[^)"\']+)', text)
            + re.findall(r'@import\s+["\']?((?:https?:)?//[^;"\']+)', text)
        )
    )


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
        raise ValueError(
            f"the report HTML references remote resources, so it would not read offline: {remote[:5]}"
        )
    html_path, pdf_path = out_dir / "report.html", out_dir / "report.pdf"
    write_atomically(html_path, body.encode("utf-8"))
    t1 = time.perf_counter()
    # no base URL: the links to runs.csv and cells.csv stay relative, so they work wherever the folder is copied
    # (everything else is inline: data: images, one embedded stylesheet)
    doc = weasyprint.HTML(string=body, base_url=None, url_fetcher=_url_fetcher()).render()
    # the same HTML, the same PDF: WeasyPrint writes no dates or file id, but fontTools stamps each embedded font
    # subset with the clock unless SOURCE_DATE_EPOCH fixes it (the reproducible-builds convention)
    saved = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = FONT_EPOCH
    try:
        pdf = doc.write_pdf()
    finally:
        if saved is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = saved
    write_atomically(pdf_path, pdf)
    t2 = time.perf_counter()
    return {
        "html": html_path,
        "pdf": pdf_path,
        "pages": len(doc.pages),
        "seconds": {"html": round(t1 - t0, 2), "pdf": round(t2 - t1, 2)},
    }
