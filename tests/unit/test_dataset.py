"""The published record as a dataset: each run's stages and cells from the plan, the pairs file (targets and
digit classes of the test and confirmation pairs), the data dictionary in the schema and in docs/, the
record's own training history, and the README's pandas example on the committed record."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import ROOT
from test_published import made  # noqa: F401 - the fixture: a tiny profile's store, plan, record

from siamese_lib.analysis.beyond_paper import test_truth as truth_of
from siamese_lib.data import eval_set, generate_pair_sets
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.pipeline import dataset, published, publishing


def test_each_run_names_every_stage_and_cell_it_serves(made):
    profile, store, plan_path, path = made
    plan = json.loads(plan_path.read_text())
    runs = pd.read_parquet(path)
    exploded = runs.explode(["stage", "cell"])
    served = exploded.groupby(["stage", "cell"])["key"].apply(set).to_dict()
    assert served == {(e["stage"], e["name"]): set(e["runs"]) for e in plan["executions"] if e["runs"]}
    shared = runs[runs["stage"].map(len) > 1]  # a Table II cell that is a Table I cell: one row, both named
    assert len(shared) > 0 and all(set(s) == {"table1", "table2"} for s in shared["stage"])
    assert published.read_records(path) == published.records_from_table(pq.read_table(path))


def test_the_pairs_file_holds_the_targets_and_digits_of_the_runs_outputs(tmp_path):
    configs = [{"nb_pairs": 20, "data_seed": 0, "confirm_seeds": []}] * 2
    configs.append({"nb_pairs": 20, "data_seed": 0, "confirm_seeds": [101]})
    pairs = dataset.pairs_table([{"config": c} for c in configs], {}).to_pandas()
    test, confirm = pairs[pairs["set"] == "test"], pairs[pairs["set"] == "confirm"]
    *_, test_input, target, classes = generate_pair_sets(20, 0)
    assert test["pair"].tolist() == list(range(20)) and test["target"].tolist() == target.tolist()
    assert test[["digit1", "digit2"]].to_numpy().tolist() == classes.tolist()
    assert np.array_equal(np.stack(test["image1"]), test_input[:, 0].reshape(20, 196).numpy())
    _, c_target, c_classes = eval_set("confirm", 20, 0, [101])
    assert confirm["target"].tolist() == c_target.tolist() and len(confirm) == (10000 - 40) // 2
    assert confirm["digit2"].tolist() == c_classes[:, 1].tolist() and confirm["image1"].isna().all()
    assert (test["target"] == (test["digit1"] <= test["digit2"])).all()


def test_the_runner_draws_the_test_pairs_once_and_notebooks_read_them_without_torch(tmp_path):
    publishing.write_test_pairs(tmp_path, 20, 0)
    *_, target, classes = generate_pair_sets(20, 0)
    code = (
        "import sys; from siamese_lib.analysis.beyond_paper import test_truth; "
        f"print(test_truth(20, 0, {str(tmp_path / 'pairs.parquet')!r}), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"({target.tolist()}, {classes.tolist()}) False"
    # a set the table lacks is drawn again
    assert truth_of(20, 1, tmp_path / "pairs.parquet") == truth_of(20, 1) != truth_of(20, 0)


def test_the_pairs_file_is_published_beside_the_record_and_checked(made):
    profile, store, plan, record = made
    pairs = published.read_pairs(record.parent)
    nb = {r["config"]["nb_pairs"] for r in published.read_records(record)}
    assert pairs["set"].unique().tolist() == ["test"] and len(pairs) == sum(nb)
    path = record.parent / published.PAIRS_FILE
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(published.RecordFileError, match="sha256 differs"):
        published.read_pairs(record.parent)


def test_every_column_has_its_meaning_and_unit_in_the_schema_and_in_the_docs(made):
    report = made[3].parent
    for name in (published.FILE_NAME, published.PAIRS_FILE):
        for field in pq.read_schema(report / name):
            assert field.metadata[b"description"], field.name
    schema = pq.read_schema(report / published.FILE_NAME)
    assert schema.field("test_error").metadata[b"unit"] == b"%"
    assert (ROOT / "docs" / "data-dictionary.md").read_text() == dataset.markdown()
    with pytest.raises(KeyError, match="no entry"):
        dataset.describe("test_accuracy")


def test_the_record_keeps_its_training_history_and_last_verification(made, tmp_path):
    """The history is the runner's when a record is made (the first, or on purpose); a render keeps the record's."""
    profile, store, plan, bare = made
    keys = [r["key"] for r in published.read_records(bare)]
    trained, rendered = tmp_path / "trained", tmp_path / "rendered"
    (trained / "verify").mkdir(parents=True)
    rendered.mkdir()
    history = {"invocations": [{"started": "2026-01-01T00:00:00+00:00", "seconds": 8738.0, "trained": 2}]}
    verify = {"runs": [{"key": keys[0]}], "summary": ["runs: 1 of 1 bit-identical"]}
    (trained / "timings.json").write_text(json.dumps(history))
    (trained / "verify" / "verify.json").write_text(json.dumps(verify))
    (rendered / "timings.json").write_text(json.dumps({"invocations": [{"seconds": 474.0, "trained": 0}]}))
    for folder in (trained, rendered):
        (folder / "plan.json").write_text(plan.read_text())
    report = tmp_path / "made_here"  # no record there yet: this one is made, with the runner's history
    publishing.publish_record(store, report, profile, trained / "plan.json")
    first = published.record_file(report).read_bytes()
    assert published.published_history(report, keys) == {"timings": history, "verify": verify}
    assert publishing.publish_record(store, report, profile, rendered / "plan.json")[1] == "unchanged"
    assert published.record_file(report).read_bytes() == first  # a render from the record keeps its history
    assert published.published_history(report, keys + ["another"]) is None  # a record without that run
    kept_none = {"timings": {}, "verify": {}}  # never this render's clock instead
    assert published.published_history(bare.parent, keys) == kept_none


@pytest.mark.slow
def test_the_readme_example_reproduces_the_headline_cell_from_the_committed_runs(tmp_path, monkeypatch):
    """The committed record republished with its own plan (nothing retrained), then the README's snippet."""
    source = ROOT / "report" / "paper" / published.FILE_NAME
    meta = published.read_metadata(source)
    (tmp_path / "plan.json").write_text(meta["plan"])
    profile = load_profile("paper")
    publishing.seed_store(source, tmp_path / "store", profile)
    report = tmp_path / "report" / "paper"
    publishing.publish_record(tmp_path / "store", report, profile, tmp_path / "plan.json")
    snippet = re.search(r"```python\n(import pandas as pd\n.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = snippet.group(1).strip().splitlines()
    assert len(lines) == 3
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec("\n".join(lines[:-1]) + "\nresult = " + lines[-1], scope)
    cells = pd.read_csv(ROOT / "report" / "paper" / "cells.csv")  # the report's Table I, corrected
    cells = cells[(cells["table"] == "Table I") & (cells["protocol"] == "corrected")]
    assert len(scope["result"]) == len(cells) == 16
    for c in cells.itertuples():
        row = scope["result"].loc[(c.model, bool(c.weight_sharing), bool(c.aux_loss))]
        assert (row["mean"], row["std"], row["count"]) == pytest.approx((c.mean, c.std, c.n), abs=5e-3)
