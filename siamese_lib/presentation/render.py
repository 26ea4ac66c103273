"""The executed report notebook to HTML (nbconvert, the template in report/template/paper: code hidden,
images inline, one embedded stylesheet, nothing remote) and PDF (WeasyPrint, fetching data: and file:)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from unittest import mock

import nbformat
from nbconvert import HTMLExporter

from ..common import TEMPLATE_DIR, write_atomically

FONT_EPOCH = "946684800"  # 2000-01-01: the embedded fonts' "modified" date, fixed
REMOTE = (  # references a reader's browser or WeasyPrint would fetch
    r'(?:src|href)\s*=\s*["\']((?:https?:)?//[^"\']+)',
    r'url\(\s*["\']?((?:https?:)?//[^)"\']+)',
    r'@import\s+["\']?((?:https?:)?//[^;"\']+)',
)


def _url_fetcher():
    """Only data: and file: URLs; anything remote is refused (rendering stays offline)."""
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols={"data", "file"})


def notebook_to_html(executed_notebook: Path, code: bool = False) -> str:
    nb = nbformat.read(str(executed_notebook), as_version=4)
    # the title an output declares (metadata "report_title"): the HTML <title>, hence the PDF's
    titles = (out.get("metadata", {}).get("report_title") for c in nb.cells for out in c.get("outputs", []))
    nb.metadata["title"] = next((t for t in titles if t), executed_notebook.stem)
    if code:  # papermill's injected parameters name this machine's paths
        nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for i, cell in enumerate(nb.cells):  # the HTML carries cell ids; papermill draws its parameters cell's
        cell["id"] = f"cell-{i}"
        if "outputs" in cell:  # warnings stay in the executed notebook: they name paths, may depend on timing
            cell["outputs"] = [out for out in cell["outputs"] if out.get("name") != "stderr"]
    hide = dict(exclude_input=not code, exclude_input_prompt=True, exclude_output_prompt=True)
    exporter = HTMLExporter(template_name="paper", extra_template_basedirs=[str(TEMPLATE_DIR)], **hide)
    return exporter.from_notebook_node(nb)[0]


def check_offline(text: str) -> list[str]:
    """Remote references that would be fetched by a reader's browser or by WeasyPrint (should be none)."""
    return sorted({url for pattern in REMOTE for url in re.findall(pattern, text)})


def render_report(executed_notebook: Path, out_dir: Path) -> dict:
    """The executed report notebook to out_dir/report.html and report.pdf: {"html": path, "pdf": path,
    "pages": n}. ValueError if the HTML references anything remote."""
    import weasyprint

    body = notebook_to_html(Path(executed_notebook))
    if remote := check_offline(body):
        raise ValueError(f"the report HTML references remote resources (unreadable offline): {remote[:5]}")
    html_path, pdf_path = Path(out_dir) / "report.html", Path(out_dir) / "report.pdf"
    write_atomically(html_path, body.encode("utf-8"))
    # no base URL: the links to runs.csv and cells.csv stay relative, wherever the folder is copied
    doc = weasyprint.HTML(string=body, base_url=None, url_fetcher=_url_fetcher()).render()
    # the same HTML, the same PDF: fontTools stamps each embedded font subset with the clock unless
    # SOURCE_DATE_EPOCH fixes it (the reproducible-builds convention)
    with mock.patch.dict(os.environ, SOURCE_DATE_EPOCH=FONT_EPOCH):
        write_atomically(pdf_path, doc.write_pdf())
    return {"html": html_path, "pdf": pdf_path, "pages": len(doc.pages)}
