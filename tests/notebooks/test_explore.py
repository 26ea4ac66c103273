"""The exploration notebook answers from a published record alone: run by papermill on the committed paper
record (the smoke record's run is in tests/e2e/test_published_record.py, beside the record it publishes)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from unittest import mock

import nbformat

ROOT = Path(__file__).resolve().parents[2]


def run_explore(record_dir: Path, out: Path) -> nbformat.NotebookNode:
    """Execute notebooks/explore.ipynb on ``record_dir``; the executed notebook (images, printed lines)."""
    import papermill as pm

    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with mock.patch.dict(os.environ, PYTHONPATH=path):  # the kernel imports this checkout's library
        pm.execute_notebook(
            str(ROOT / "notebooks" / "explore.ipynb"),
            str(out),
            kernel_name="siamese-lib",
            parameters={"record_dir": str(record_dir)},
            cwd=str(out.parent),
            progress_bar=False,
        )
    return nbformat.read(out, as_version=4)


def outputs(nb) -> tuple[int, str]:
    """(images drawn, every printed or displayed text)."""
    images, text = 0, []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            images += "image/png" in o.get("data", {})
            text.append(o.get("text", "") + o.get("data", {}).get("text/plain", ""))
    return images, "\n".join(text)


def test_explore_answers_from_the_committed_paper_record(tmp_path):
    images, text = outputs(run_explore(ROOT / "report" / "paper", tmp_path / "explore.ipynb"))
    assert (
        images == 6
    )  # Tables I and II, a loss curve, the most-missed pairs, the two rules, the confirmation set and holdout
    assert "profile paper: 948 runs; 1000 test pairs" in text
    assert re.search(r"holdout +20000", text) and re.search(r"confirm +12000", text)  # pairs per set
    assert "missed" in text and "rules_disagree" in text
