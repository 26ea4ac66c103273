"""The committed notebooks are clean and parameterised the way the runner drives them."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

from siamese_lib.profiles import NOTEBOOKS_DIR, STAGES, TRAINING_STAGES, expand, load_profile

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
GENERATED = ("lr_search", "table1", "table2")  # written by notebooks/make_notebooks.py


def parameters_cell(nb):
    return [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]


def test_every_stage_has_its_notebook():
    assert {p.stem for p in NOTEBOOKS} >= set(STAGES)


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
            passed.setdefault(ex.stage, set()).update(ex.parameters, extra)
    for stage, keys in passed.items():
        assert keys <= declared[stage], f"{stage}.ipynb lacks parameters {sorted(keys - declared[stage])}"


def test_generated_notebooks_match_their_generator():
    """notebooks/make_notebooks.py is the source of the training notebooks: regenerate after editing it."""
    spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS_DIR / "make_notebooks.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    cells = {"lr_search": gen.LR_SEARCH, "table1": gen.TABLE1, "table2": gen.TABLE2}
    for stem in GENERATED:
        built = json.loads(nbformat.writes(gen.notebook(stem, cells[stem])))
        committed = json.loads(Path(NOTEBOOKS_DIR / f"{stem}.ipynb").read_text())
        assert built == committed, f"notebooks/{stem}.ipynb differs from make_notebooks.py: regenerate it"
