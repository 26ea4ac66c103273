"""The training notebooks executed through real papermill kernels on tiny settings."""

from __future__ import annotations

import nbformat
import papermill as pm
import pytest

from siamese_lib.common import NOTEBOOKS_DIR

pytestmark = pytest.mark.slow  # a papermill kernel


def test_beyond_paper_notebook_runs_with_papermill(tmp_path):
    nb = nbformat.read(NOTEBOOKS_DIR / "beyond_paper.ipynb", as_version=4)
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    assert all(
        c.get("outputs") in (None, []) and c.get("execution_count") is None
        for c in nb.cells
        if c.cell_type == "code"
    )
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(
        str(NOTEBOOKS_DIR / "beyond_paper.ipynb"),
        str(out),
        kernel_name="siamese-lib",
        cwd=str(NOTEBOOKS_DIR),
        progress_bar=False,
        parameters=dict(
            model="LeNet5",
            variant="aug_all",
            lr=5e-3,
            seeds=[1],
            epochs=1,
            nb_pairs=20,
            store_dir=str(tmp_path / "store"),
            device="cpu",
        ),
    )
    assert len(list((tmp_path / "store").glob("*.json"))) == 1
    text = out.read_text()
    assert "The ensemble of the seeds" in text
