"""The committed record holds together: cells.csv re-derives from runs.csv, and a runs.csv with a duplicated or a
missing row (or a cells.csv edited by hand) is an error naming them, before verify retrains anything."""

from __future__ import annotations

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
