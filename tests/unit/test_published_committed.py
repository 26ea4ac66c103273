"""The committed paper record read as a user's clone reads it: its checksum holds, it is the paper profile's and its
plan is the one the profile gives, every key is planned, every run passes the gate, runs.csv and cells.csv derive
from it byte for byte, and a store seeded from it republishes the same bytes (nothing to republish by rendering)."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from conftest import ROOT

from siamese_lib.experiments.profiles import load_profile
from siamese_lib.pipeline import published, publishing

RECORD = ROOT / "report" / "paper" / published.FILE_NAME
pytestmark = pytest.mark.slow  # about a minute: 909 runs through the gate, the paper profile planned twice


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    base = tmp_path_factory.mktemp("paper")
    profile = load_profile("paper")
    written, kept = publishing.seed_store(RECORD, base / "store", profile)  # the checksum, the plan, the gate
    return base, profile, written, kept


def test_the_checksum_holds_and_every_run_is_planned_and_admitted(seeded):
    base, profile, written, kept = seeded
    expected = published.checksum_file(RECORD).read_text().split()[0]
    assert hashlib.sha256(RECORD.read_bytes()).hexdigest() == expected
    planned = publishing.checked_plan(
        published.read_metadata(RECORD)["plan"], profile, base / "store", "plan"
    )["runs"].keys()
    keys = {p.stem for p in (base / "store").glob("*.json")}
    assert (written, kept) == (948, 0) and keys <= planned and len(keys) == 948
    assert (base / "store" / publishing.store.SEEDED_MARK).is_file()


def test_a_store_seeded_from_it_republishes_the_same_bytes(seeded, tmp_path):
    base, profile, _, _ = seeded
    report = tmp_path / "report"
    report.mkdir()
    for name in (published.FILE_NAME, published.FILE_NAME + ".sha256"):
        shutil.copy(RECORD.with_name(name), report / name)
    (base / "plan.json").write_text(published.read_metadata(RECORD)["plan"])
    assert publishing.publish_record(base / "store", report, profile, base / "plan.json") == (
        report / published.FILE_NAME,
        "unchanged",
    )


def test_runs_and_cells_csv_derive_from_it_byte_for_byte(tmp_path):
    derived = publishing.derive_csvs(RECORD, tmp_path, load_profile("paper"))
    for name in ("runs", "cells"):
        assert derived[name].read_bytes() == (RECORD.parent / f"{name}.csv").read_bytes(), name


def test_it_is_refused_as_another_profile_s_record():
    with pytest.raises(published.RecordFileError, match="a record of profile 'paper', not of 'smoke'"):
        publishing.seed_store(RECORD, ROOT / "never-written", load_profile("smoke"))
    assert not (ROOT / "never-written").exists()


def test_its_selection_runs_carry_validation_outputs_that_check_their_errors(seeded):
    """The record of issue 37 keeps per-pair validation outputs: every selection run's validation error is
    checked against them, in every round (the 909-run record before it could not be checked)."""
    from siamese_lib.analysis.selection_results import load_selection
    from siamese_lib.presentation.beyond_section import selection_html

    base, profile, _, _ = seeded
    for stage in ("selection", "selection_round2", "selection_round3"):
        result = load_selection(profile, base / "store", stage)
        unchecked, runs = result["unchecked"]
        assert runs == sum(len(v) for v in result["scores"].groupby("candidate")["n"].first().map(range))
        assert unchecked == 0 and runs > 0
        assert "validation outputs" not in selection_html(result)
