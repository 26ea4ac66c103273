"""The committed record holds together: cells.csv re-derives from runs.csv; verify reads the published record (its
CSVs refused unless derived from it: tests/unit/test_published.py) and samples its headline and candidates."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from conftest import ROOT

from siamese_lib.config import RunConfig
from siamese_lib.experiments.profiles import load_profile
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


@pytest.mark.parametrize("version", ['=HYPERLINK("http://x","y")', "+1+1", "@SUM(A1)", "-2+3"])
def test_a_version_string_never_reaches_runs_csv_as_a_formula(tmp_path, version):
    from siamese_lib.pipeline.publishing import write_data_csvs

    frame = pd.read_csv(RECORD / "runs.csv").head(3).drop(columns=["record"])
    frame["code_version"] = version
    from siamese_lib.analysis.tables import table_cells

    write_data_csvs(frame, table_cells([], []), tmp_path, 1.0)  # the cells: none run
    written = pd.read_csv(tmp_path / "runs.csv")
    assert list(written["code_version"]) == [f"'{version}"] * 3
    assert list(written["torch_version"]) == list(frame["torch_version"])  # ordinary text as it was


@pytest.fixture(scope="module")
def paper():
    """The committed paper record as verify reads it: about a minute (909 runs through the gate)."""
    return verify.load_committed(RECORD, load_profile("paper"))


@pytest.mark.slow
def test_the_committed_record_loads_though_two_stages_share_a_configuration(paper):
    """The earlier stage's best_refit and round 2's lenet5_100ep are one configuration on two seed ranges."""
    runs, _ = paper
    seeds: dict[str, set] = {}
    for r in runs:
        seeds.setdefault(r.cell, set()).add(r.config.seed)
    assert len(runs) == len(pd.read_csv(RECORD / "runs.csv"))
    assert any(len(s) != max(s) - min(s) + 1 for s in seeds.values())


@pytest.mark.slow
def test_the_sample_always_holds_the_headline_and_the_selection_candidates(paper):
    runs, decisive = paper
    best = pd.read_csv(RECORD / "cells.csv").query("table == 'Table I' and protocol == 'corrected' and n > 0")
    best = best.loc[best["mean"].idxmin()]
    headline = [r for r in runs if r.cell == decisive[0]]
    assert {tuple(getattr(r.config, f) for f in CELL) for r in headline} == {tuple(best[f] for f in CELL)}
    assert len(headline) >= best["n"]
    assert {r.cell for r in runs if r.config.val_pairs > 0} <= set(decisive)
    for seed in range(5):  # whatever the draw and a budget that nothing else fits in
        sample = verify.stratified_sample(runs, 1.0, 2, full=False, seed=seed, priority=decisive)
        assert {r.cell for r in sample} == set(decisive)


@pytest.mark.slow
def test_a_row_claiming_another_machine_than_its_cell_is_judged_as_its_cell(paper):
    """Issue 33: a tampered row that also claims another CPU must not choose the statistical criterion."""
    runs, _ = paper
    here = dict(runs[0].machine)  # this machine as the one that trained the record
    forged = dataclasses.replace(runs[0], machine={**runs[0].machine, "cpu_model": "Another CPU"})
    said = []
    peer = next(r for r in runs if r.cell == runs[0].cell and r.key != runs[0].key)
    assert verify.judged_by(forged, runs, here, said.append) == peer.machine
    assert said and "judged as theirs" in said[0]
    assert verify.judged_by(runs[0], runs, here, said.append) == runs[0].machine
