"""The committed record holds together: cells.csv re-derives from runs.csv, and a runs.csv with a duplicated or a
missing row (or a cells.csv edited by hand) is an error naming them, before verify retrains anything."""

from __future__ import annotations

import dataclasses
import shutil

import pandas as pd
import pytest
from conftest import ROOT

from siamese_lib.common import UsageError
from siamese_lib.config import RunConfig
from siamese_lib.pipeline import verify

RECORD = ROOT / "report" / "paper"
CELL = ["protocol", "model", "weight_sharing", "aux_loss", "batch_norm", "dropout", "lr", "epochs"]


def test_cells_csv_rederives_from_runs_csv():
    runs, cells = pd.read_csv(RECORD / "runs.csv"), pd.read_csv(RECORD / "cells.csv")
    # the tables' cells: every other field at its default (branch_calls: the protocol's own default)
    defaults = RunConfig().to_dict()
    for name in (
        "nb_pairs",
        "batch_size",
        "data_seed",
        "aux_weight",
        "aux_schedule",
        "weight_decay",
        "l1",
        "val_pairs",
        "lr_schedule",
    ):
        runs = runs[runs[name] == defaults[name]]
    runs = runs[runs["augment"].isna()]
    derived = runs.groupby(CELL)["test_error"].agg(["mean", "std", "count"])
    done = cells[cells["n"] > 0]
    assert len(done) == 48
    for row in done.to_dict("records"):
        mean, std, n = derived.loc[tuple(row[c] for c in CELL)]
        assert (
            n == row["n"]
            and mean == pytest.approx(row["mean"], abs=1e-9)
            and std == pytest.approx(row["std"], abs=1e-9)
        ), row


@pytest.fixture
def copy(tmp_path):
    shutil.copy(RECORD / "runs.csv", tmp_path / "runs.csv")
    return tmp_path / "runs.csv"


def test_a_duplicated_and_a_missing_row_are_named(copy):
    frame = pd.read_csv(copy)
    table_cell = frame.index[
        (frame["model"] == "Net")
        & (frame["protocol"] == "corrected")
        & frame["augment"].isna()
        & (frame["val_pairs"] == 0)
        & (frame["epochs"] == 30)
    ]
    dropped, doubled = frame.loc[table_cell[0]], frame.iloc[20]
    frame = pd.concat([frame.drop(index=table_cell[0]), frame.iloc[[20]]])  # as many rows as before
    frame.to_csv(copy, index=False)
    with pytest.raises(UsageError) as err:
        verify.load_committed(copy)
    assert f"duplicated rows: {doubled['key']} (2 times)" in str(err.value)
    frame.drop_duplicates("key").to_csv(copy, index=False)
    shutil.copy(RECORD / "cells.csv", copy.with_name("cells.csv"))  # the removed row's cell no longer follows
    with pytest.raises(
        UsageError, match="cells.csv does not follow from runs.csv: Table I corrected Net"
    ) as err:
        verify.load_committed(copy)
    assert "n 10; runs.csv: mean" in str(err.value) and ", n 9)" in str(err.value), dropped["key"]


def test_the_committed_record_loads_though_two_stages_share_a_configuration():
    """The earlier stage's best_refit and round 2's lenet5_100ep are one configuration on two seed ranges."""
    runs = verify.load_committed(RECORD / "runs.csv")
    seeds: dict[str, set] = {}
    for r in runs:
        seeds.setdefault(r.cell, set()).add(r.config.seed)
    assert any(len(s) != max(s) - min(s) + 1 for s in seeds.values())


def test_a_cells_csv_changed_by_hand_is_named(copy):
    cells = pd.read_csv(RECORD / "cells.csv")
    cells.loc[0, "mean"] -= 0.5
    cells.to_csv(copy.with_name("cells.csv"), index=False)
    with pytest.raises(UsageError, match="cells.csv does not follow from runs.csv: Table I corrected Net"):
        verify.load_committed(copy)
    shutil.copy(RECORD / "cells.csv", copy.with_name("cells.csv"))
    assert len(verify.load_committed(copy)) == len(pd.read_csv(copy))


@pytest.mark.parametrize("version", ['=HYPERLINK("http://x","y")', "+1+1", "@SUM(A1)", "-2+3"])
def test_a_version_string_never_reaches_runs_csv_as_a_formula(tmp_path, version):
    from siamese_lib.presentation.sections import write_data_csvs

    frame = pd.read_csv(RECORD / "runs.csv").head(3).drop(columns=["record"])
    frame["code_version"] = version
    from siamese_lib.analysis.tables import table_cells

    write_data_csvs(frame, table_cells([], []), tmp_path, 1.0)  # the cells: none run
    written = pd.read_csv(tmp_path / "runs.csv")
    assert list(written["code_version"]) == [f"'{version}"] * 3
    assert list(written["torch_version"]) == list(frame["torch_version"])  # ordinary text as it was


@pytest.mark.parametrize(
    "change, why",
    [
        (lambda f: f.drop(columns=["key"]), "no column 'key'"),
        (lambda f: f.drop(columns=["device"]), "no column 'device'"),
        (lambda f: f.assign(test_error=["x"] * len(f)), "line 2: could not convert string to float"),
        (lambda f: f.assign(epochs=["many"] * len(f)), "line 2: invalid literal"),
        (lambda f: f.assign(test_error=["n/a"] * len(f)), "line 2: test_error nan is not a percentage"),
    ],
)
def test_a_bad_runs_csv_is_one_line(copy, change, why):
    """Issue 33: verify on a runs.csv missing key/device or with text in a numeric column (was a traceback)."""
    change(pd.read_csv(copy)).to_csv(copy, index=False)
    with pytest.raises(UsageError, match=why) as err:
        verify.load_committed(copy, log=lambda line: None)
    assert "\n" not in str(err.value)


def test_a_missing_cells_csv_is_said(copy):
    copy.with_name("cells.csv").unlink(missing_ok=True)
    said = []
    verify.load_committed(copy, log=said.append)
    assert said and "no cells.csv beside" in said[0] and "not checked" in said[0]


def test_a_single_confirmation_seed_reads_back_as_the_run_s_configuration():
    """A runs.csv whose confirm_seeds column holds one seed is read by pandas as a number (the smoke record)."""
    config = RunConfig(confirm_seeds=(101,))
    for seed in (101, 101.0):  # 101.0 where other rows have none (NaN)
        row = {**config.to_dict(), "confirm_seeds": seed, "augment": float("nan")}
        assert verify.config_from_row(row) == config


def test_the_sample_always_holds_the_headline_and_the_selection_candidates():
    runs = verify.load_committed(RECORD / "runs.csv", log=lambda line: None)
    decisive = verify.decisive_cells(runs, RECORD / "runs.csv")
    best = pd.read_csv(RECORD / "cells.csv").query("table == 'Table I' and protocol == 'corrected' and n > 0")
    assert decisive[0].startswith(f"corrected {best.loc[best['mean'].idxmin(), 'model']} ")
    assert {r.cell for r in runs if r.config.val_pairs > 0} <= set(decisive)
    for seed in range(5):  # whatever the draw and a budget that nothing else fits in
        sample = verify.stratified_sample(runs, 1.0, 2, full=False, seed=seed, priority=decisive)
        assert {r.cell for r in sample} == set(decisive)


def test_a_row_claiming_another_machine_than_its_cell_is_judged_as_its_cell():
    """Issue 33: a tampered row that also claims another CPU must not choose the statistical criterion."""
    runs = verify.load_committed(RECORD / "runs.csv", log=lambda line: None)
    here = dict(runs[0].machine)  # this machine as the one that trained the record
    forged = dataclasses.replace(runs[0], machine={**runs[0].machine, "cpu_model": "Another CPU"})
    said = []
    assert verify.judged_by(forged, runs, here, said.append) == runs[1].machine or said
    assert said and "judged as theirs" in said[0]
    assert verify.judged_by(runs[0], runs, here, said.append) == runs[0].machine
