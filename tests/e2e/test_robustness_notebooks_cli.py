"""Issue 15 end to end: typed notebook parameters, one error line in the executed notebook for a bad value
or a poisoned record, and file flags taken from where the user stands (also in subprocesses)."""

import json
import subprocess
import sys

import papermill as pm
import pytest
from conftest import ROOT, ensure_one, run_cli

from siamese_lib import store
from siamese_lib.config import RunConfig

pytestmark = pytest.mark.slow  # papermill and CLI subprocesses, kernels

NOTEBOOKS = ROOT / "notebooks"


def _errors(path):
    nb = json.loads(path.read_text())
    return [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.parametrize("notebook", ["lr_search", "table1", "table2", "beyond_paper"])
def test_help_notebook_shows_typed_parameters(notebook):
    out = subprocess.run(
        [sys.executable, "-m", "papermill", "--help-notebook", str(NOTEBOOKS / f"{notebook}.ipynb")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    for typed in (
        "seeds: list[int] (default [1, 2])",
        "epochs: int",
        "store_dir: str",
        "force: Union[bool, float]",
    ):
        assert typed in out.stdout, (typed, out.stdout)
    assert "None (default" not in out.stdout  # every parameter carries its type


def test_a_bad_parameter_and_a_poisoned_record_end_in_one_line(tmp_path, mnist):
    out = tmp_path / "bad.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(
            str(NOTEBOOKS / "table1.ipynb"),
            str(out),
            kernel_name="siamese-lib",
            progress_bar=False,
            parameters=dict(model="LeNet6", store_dir=str(tmp_path / "store")),
        )
    assert info.value.ename == "ParameterError"
    (error,) = _errors(out)
    assert error["traceback"] == [f"ParameterError: {error['evalue']}"]  # one line, no KeyError traceback
    assert "parameter model: must be one of" in error["evalue"] and "'LeNet6'" in error["evalue"]
    # a misspelt name (papermill itself only warns) is refused with a hint, before anything trains
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(
            str(NOTEBOOKS / "table1.ipynb"),
            str(out),
            kernel_name="siamese-lib",
            progress_bar=False,
            parameters=dict(epoch=2, store_dir=str(tmp_path / "store")),
        )
    (error,) = _errors(out)
    assert error["ename"] == "ParameterError" and len(error["traceback"]) == 1
    assert "unknown parameter epoch (did you mean 'epochs'?)" in error["evalue"], error["evalue"]

    # a record of this very run, poisoned: the notebook names its path in one line and keeps it as evidence
    config = RunConfig(
        model="Net", lr=3e-2, nb_pairs=20, batch_size=10, epochs=1, seed=1
    )  # as table1 makes it
    record, _ = ensure_one(config, tmp_path / "store")
    path = store.record_path(tmp_path / "store", record["key"])
    path.write_text(json.dumps({**record, "metrics": {**record["metrics"], "test_error": "12.5"}}))
    with pytest.raises(pm.PapermillExecutionError):
        pm.execute_notebook(
            str(NOTEBOOKS / "table1.ipynb"),
            str(out),
            kernel_name="siamese-lib",
            progress_bar=False,
            parameters=dict(
                model="Net",
                seeds=[1],
                epochs=1,
                nb_pairs=20,
                batch_size=10,
                device="cpu",
                store_dir=str(tmp_path / "store"),
            ),
        )
    (error,) = _errors(out)
    assert error["ename"] == "CorruptRecord" and str(path) in error["evalue"] and len(error["traceback"]) == 1
    assert "metrics.test_error" in error["evalue"]


def test_train_resolves_a_relative_data_dir_from_where_the_user_stands(tmp_path):
    here = tmp_path / "elsewhere"
    (here / "photos").mkdir(parents=True)
    proc = run_cli(
        "train",
        "--model",
        "Net",
        "--epochs",
        "1",
        "--nb-pairs",
        "20",
        "--batch-size",
        "10",
        "--device",
        "cpu",
        "--data-dir",
        "photos",
        cwd=here,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert str(here / "photos") in line and "MNIST" in line, line
