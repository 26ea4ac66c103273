"""The committed notebooks are clean and parameterised the way the runner drives them."""

from __future__ import annotations

import shutil
import subprocess
import sys

import jupytext
import nbformat
import pytest

from siamese_lib.common import NOTEBOOKS_DIR
from siamese_lib.experiments.planning import expand
from siamese_lib.experiments.profiles import STAGES, TRAINING_STAGES, load_profile, notebook_name

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def parameters_cell(nb):
    return [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]


def test_every_stage_has_its_notebook():
    assert {p.stem for p in NOTEBOOKS} >= {notebook_name(s) for s in STAGES}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "siamese-lib"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    assert [c for c in code if c.outputs] == [], "outputs committed"
    assert [c for c in code if c.execution_count is not None] == [], "execution counts committed"
    tagged = parameters_cell(nb)
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    # no papermill leftovers from an executed copy
    assert "papermill" not in nb.metadata
    assert not [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]


def test_parameters_cells_declare_what_the_runner_passes():
    """Every parameter the runner injects (from the profiles' expansion) is declared with a default."""
    import papermill as pm

    declared = {p.stem: set(pm.inspect_notebook(str(p))) for p in NOTEBOOKS}
    passed = {}
    for name in ("smoke", "quick", "paper"):
        for ex in expand(load_profile(name), "/abs/store", "cpu"):
            extra = {"threads", "force"} if ex.stage in TRAINING_STAGES else {"runs_dir"}
            if ex.stage == "report":
                extra.add("report_dir")
            passed.setdefault(notebook_name(ex.stage), set()).update(ex.parameters, extra)
    for stage, keys in passed.items():
        assert keys <= declared[stage], f"{stage}.ipynb lacks parameters {sorted(keys - declared[stage])}"


def test_every_notebook_has_its_paired_script():
    """One way to author a notebook: the percent script and the .ipynb, paired by notebooks/jupytext.toml."""
    scripts = {p.stem for p in NOTEBOOKS_DIR.glob("*.py")}
    assert scripts == {p.stem for p in NOTEBOOKS}
    assert 'formats = "ipynb,py:percent"' in (NOTEBOOKS_DIR / "jupytext.toml").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_pair_is_in_sync(path):
    """The .ipynb holds exactly the cells of its .py (sources, kinds and tags): edit either, then sync."""
    script = jupytext.read(path.with_suffix(".py"))
    notebook = nbformat.read(path, as_version=4)

    def cells(nb):
        return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]

    assert cells(script) == cells(notebook), (
        f"{path.name} and {path.stem}.py differ: run jupytext --sync {path.stem}.py"
    )


def test_an_edit_in_jupyter_reaches_the_script(tmp_path):
    """Round trip as JupyterLab does it: change a cell of the .ipynb, save through the pairing, the .py changes."""
    for name in ("table1.ipynb", "table1.py", "jupytext.toml"):
        shutil.copy(NOTEBOOKS_DIR / name, tmp_path / name)
    nb = nbformat.read(tmp_path / "table1.ipynb", as_version=4)
    nb.cells[-1].source += "\nprint('edited in Jupyter')"
    nbformat.write(nb, tmp_path / "table1.ipynb")
    proc = subprocess.run(
        [sys.executable, "-m", "jupytext", "--sync", str(tmp_path / "table1.ipynb")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    script = (tmp_path / "table1.py").read_text()
    assert "print('edited in Jupyter')" in script
    assert script.startswith((NOTEBOOKS_DIR / "table1.py").read_text().split("# %%")[0])  # header kept
