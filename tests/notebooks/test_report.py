"""The report: HTML tables with every cell, the notebooks, and an end-to-end render (papermill, then HTML
and PDF) from a tiny store: synthetic but valid records plus one real training run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ensure_one

from siamese_lib.experiments import planning
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.store import load_records

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_analysis import fill_store, paper_like, write_profile  # noqa: E402

from siamese_lib.analysis import stats, tables
from siamese_lib.presentation import render
from siamese_lib.presentation import sections as report_html

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = [
    "Findings",
    "I. Introduction",
    "II. Model architecture",
    "III. Methodology",
    "IV. Results",
    "V. Discussion",
    "VI. Beyond the paper",
    "VII. The reproduction in brief",
    "VIII. Conclusion",
    "References",
    "Supplement",
]
CAPTIONS = [
    "TABLE I:",
    "TABLE II:",
    "TABLE I (original protocol):",
    "TABLE II (original protocol):",
    "TABLE III:",
    "Fig. 1:",
    "Fig. 2",
    "Fig. 3",
    "Fig. S1:",
]


def skip_some(stage, p, seed):
    """Leave out the original-protocol ResNet cells of Table I and seed 3 of one Table II cell."""
    if stage == "table1" and p["protocol"] == "original" and p["model"] == "ResNet":
        return True
    return (
        stage == "table2"
        and p["protocol"] == "corrected"
        and p["weight_sharing"]
        and not p["batch_norm"]
        and p["dropout"]
        and seed == 3
    )


def cell_ids(html: str) -> dict:
    return dict(re.findall(r'data-cell="([^"]+)" data-status="(\w+)"', html))


def test_tables_show_every_cell_and_mark_the_missing(tmp_path):
    prof = load_profile(str(write_profile(tmp_path)))
    store = tmp_path / "store"
    fill_store(store, prof, paper_like, skip=skip_some)
    cells = tables.table_cells(load_records(store), planning.expand(prof, str(store)), prof.name)
    html = "".join(
        report_html.results_html(cells, "table1", p, 1.0) + report_html.results_html(cells, "table2", p, 1.0)
        for p in ("corrected", "original")
    )
    ids = cell_ids(html)
    assert len(ids) == 48
    missing = {k for k, v in ids.items() if v == "missing"}
    assert missing == {f"table1/original/ResNet/ws{ws}/aux{aux}" for ws in (0, 1) for aux in (0, 1)} | {
        "table2/corrected/ws1/bn0/do1"
    }
    assert "missing seeds 3" in html and "missing seeds 1-3" in html
    # paper_like cells have the paper's mean exactly: the difference shows as 0.00 (never -0.00 or +0.00)
    assert html.count('class="diff">0.00<') == 48 - len(missing) and "-0.00" not in html
    # the paper's best overall (LeNet5_FullyConv, WS, aux) is highlighted in the paper's column
    assert '<span class="best">3.629 ± 0.748</span>' in html
    listing = report_html.results_html(cells, "table2", "corrected", 1.0).split("Missing")[1]
    assert "weight sharing yes, batch norm no, dropout yes: seeds 3 (2/3 in the store" in listing


def test_side_by_side_numbers_in_a_cell():
    key = ("LeNet5", True, True)
    c = tables.Cell(
        "table1",
        "corrected",
        key,
        *tables.PAPER_TABLE1[key],
        expected_seeds=[1, 2, 3, 4],
        errors=[4.0, 5.0, 5.0, 6.0],
        lr=0.005,
        epochs=30,
    )
    others = tables.table_cells([], [])  # not run: only c is complete
    cells = [c if (x.table, x.protocol, x.key) == (c.table, c.protocol, key) else x for x in others]
    html = report_html.results_html(cells, "table1", "corrected", 1.0)
    # mean 5.00, std sqrt(2/3)=0.82, n 4, difference 5.00-6.08=-1.08, Welch p computed by hand in test_analysis
    assert "5.00 ± 0.82" in html and '<span class="n"> (4)</span>' in html and "-1.08" in html
    assert stats.fmt_p(c.p_value) in html and c.p_value == pytest.approx(
        stats.welch_p(5.0, (2 / 3) ** 0.5, 4, 6.08, 0.8, 10)
    )
    # 1.08 points below the paper with n = 4: neither within the 1-point margin nor shown different
    assert 'class="verdict inc"' in html


def test_rendering_never_fetches_remote_urls():
    fetcher = render._url_fetcher()
    fetch = getattr(fetcher, "fetch", fetcher)
    with pytest.raises(ValueError, match="disallowed protocol"):
        fetch("https://example.invalid/font.woff")
    fetched = fetch("data:text/plain;base64,b2s=")  # positive control: a data: URL is fetched
    body = fetched.get("string") if isinstance(fetched, dict) else fetched.read()
    assert body == b"ok"
    assert render.check_offline('<img src="https://x.invalid/a.png"><link href="//cdn.invalid/s.css">') == [
        "//cdn.invalid/s.css",
        "https://x.invalid/a.png",
    ]
    assert render.check_offline('<img src="data:image/png;base64,AAAA"><a href="../runs/x.ipynb">x</a>') == []


def pdf_text(pdf: Path) -> str | None:
    if shutil.which("pdftotext"):
        return subprocess.run(
            ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
    try:
        import pypdf
    except ImportError:
        return None
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(str(pdf)).pages)


@pytest.mark.slow
def test_report_renders_end_to_end(tmp_path):
    import papermill as pm
    import torch

    from siamese_lib.config import RunConfig

    profile_path = write_profile(tmp_path)
    prof = load_profile(str(profile_path))
    runs_dir = tmp_path / "runs" / "tiny"
    store = runs_dir / "store"
    # one real run (Net, no weight sharing, no aux loss, seed 1, corrected), the rest synthetic
    torch.set_num_threads(1)
    real = RunConfig(
        model="Net",
        weight_sharing=False,
        aux_loss=False,
        lr=0.03,
        epochs=2,
        batch_size=50,
        seed=1,
        nb_pairs=100,
    )
    record, cached = ensure_one(real, store)
    assert not cached

    def errors(stage, p, seed):  # Net with WS and aux deviates by 5 points under the corrected protocol only
        shift = (
            5.0
            if stage == "table1"
            and p["model"] == "Net"
            and p["weight_sharing"]
            and p["aux_loss"]
            and p["protocol"] == "corrected"
            else 0.0
        )
        return paper_like(stage, p, seed) + shift

    done = fill_store(
        store,
        prof,
        errors,
        skip=lambda s, p, seed: (
            skip_some(s, p, seed)
            or (
                s == "table1"
                and p["model"] == "Net"
                and not p["weight_sharing"]
                and not p["aux_loss"]
                and p["protocol"] == "corrected"
                and seed == 1
            )
        ),
    )
    assert real not in done

    report_dir = tmp_path / "report" / "tiny"
    params = dict(
        profile="tiny", store_dir=str(store), runs_dir=str(runs_dir), profile_path=str(profile_path)
    )
    executed = runs_dir / "report.ipynb"
    stored = sorted(p.name for p in store.iterdir())
    pm.execute_notebook(
        str(ROOT / "notebooks" / "report.ipynb"),
        str(executed),
        kernel_name="siamese-lib",
        parameters={**params, "report_dir": str(report_dir)},
        cwd=str(tmp_path),
        progress_bar=False,
    )
    # (figures.ipynb draws with the same plots functions; the pipeline's smoke run executes it)
    assert sorted(p.name for p in store.iterdir()) == stored  # the report reads the store, never trains

    out = render.render_report(executed, report_dir)
    html_path, pdf_path = out["html"], out["pdf"]
    assert html_path == report_dir / "report.html" and pdf_path.read_bytes()[:5] == b"%PDF-"
    assert out["pages"] >= 5
    html = html_path.read_text()

    # every cell of Tables I and II, both protocols, present or marked missing
    ids = cell_ids(html)
    assert len(ids) == 48
    assert {k for k, v in ids.items() if v == "missing"} == {
        f"table1/original/ResNet/ws{ws}/aux{aux}" for ws in (0, 1) for aux in (0, 1)
    } | {"table2/corrected/ws1/bn0/do1"}
    assert "missing seeds 1-3" in html
    # the deviating cell is listed (judged different), with what the other protocol says
    deviations = re.search(r'<table class="results deviations">(.*?)</table>', html, re.S).group(1)
    assert deviations.count("<tr>") == 2  # the header and the one cell
    assert "Net, weight sharing yes, aux. loss yes" in deviations and "different" in deviations
    # a verdict per complete cell, and cells.csv says it too
    assert re.search(r'<td class="verdict (eq|dev|inc)"', html)
    # it says what it is, and every link resolves to a file beside the report
    assert (
        "<title>Siamese networks that compare two MNIST digits: a reproduction — a reduced run (tiny), "
        "not the paper's protocol</title>" in html
    )
    assert 'class="banner reduced"' in html and "not tested at this size" in html
    for href in re.findall(r'href="([^"#][^"]*)"', html):
        assert (report_dir / href).is_file(), href
    # offline: no code, no scripts, no remote references, images inline
    assert render.check_offline(html) == [] and "<script" not in html
    assert "load_records(store_dir)" not in html
    imgs = re.findall(r'<img[^>]*src="([^"]{0,30})', html)
    assert len(imgs) >= 5 and all(s.startswith("data:image/") for s in imgs)
    for title in SECTIONS:
        assert title in html, title
    for caption in CAPTIONS:
        assert caption in html, caption
    # the data behind the report
    cells_csv = (report_dir / "cells.csv").read_text().splitlines()
    assert len(cells_csv) == 1 + 48 and cells_csv[0].endswith("epochs_trained,tost_p,verdict,counted")

    text = pdf_text(pdf_path)
    if text is None:
        pytest.skip("no PDF text extractor (pdftotext or pypdf); the HTML checks above stand for the PDF")
    # headings extract as words (no small capitals, which came out as "I. I ntroductIon")
    assert "Introduction" in text and "Findings" in text and "Supplement" in text
    flat = squash(text)
    for title in SECTIONS:
        assert squash(title) in flat, title
    for caption in (
        "TABLE I:",
        "TABLE II:",
        "TABLE III:",
        "TABLE I (original protocol):",
        "Fig. 1:",
        "Fig. 3",
    ):
        assert squash(caption) in flat, caption
    assert squash("missing seeds 1-3") in flat


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


@pytest.mark.slow
def test_the_smoke_report_shows_the_third_round_and_the_holdout(smoke_run):
    """The smoke profile declares a third round and a holdout: the supplement shows the round as it shows the
    second, Table VII and the last round's headline the holdout beside the confirmation set."""
    html = (smoke_run["report"] / "report.html").read_text()
    assert "Selection round 3, declared before any of its runs" in html and "TABLE S11a:" in html
    assert "after rounds 1 and 2 had run and their errors on the confirmation set" in html
    table7 = re.search(r"TABLE VII:.*?</table>", html, re.S).group(0)
    assert "holdout: error % [95 %]" in table7 and "round 3 choice" in table7
    # every row scored on the holdout: an interval in its last column, never the dash of a missing set
    rows = re.findall(r"<tr><td>.*?</tr>", table7, re.S)
    assert rows and all(re.search(r"<td>[\d.]+ \[[\d.]+, [\d.]+\]</td></tr>$", r) for r in rows)
    assert "20,000 pairs of the MNIST training images" in html and "data seed 201" in html
    abstract = re.search(r'<div class="abstract">.*?</div>', html, re.S).group(0)
    assert "on a holdout of unused training images" in abstract
