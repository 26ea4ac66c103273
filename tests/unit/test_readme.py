"""The README's headline numbers are the committed record's (report/paper/cells.csv): a new record that
changes them fails here until the README says what the record says."""

import re

import pandas as pd
import pytest
from conftest import ROOT

from siamese_lib.analysis.verdicts import verdict_counts, verdict_frame
from siamese_lib.experiments.profiles import load_profile

README = (ROOT / "README.md").read_text()
CELLS = ROOT / "report" / "paper" / "cells.csv"
COLUMNS = [(False, False), (False, True), (True, False), (True, True)]  # (weight sharing, aux loss)


@pytest.fixture(scope="module")
def cells() -> pd.DataFrame:
    if not CELLS.is_file():
        pytest.skip("no committed record")
    return pd.read_csv(CELLS)


def readme_table1() -> dict:
    """{(model, ws, aux): (mean, std, paper)} from the README's Table I in brief."""
    out = {}
    for line in README.splitlines():
        m = re.fullmatch(r"\| (\w+) \|(.+)\|", line.strip())
        if not m or m.group(1) == "model":
            continue
        values = re.findall(r"([\d.]+) ± ([\d.]+) \(([\d.]+)\)", m.group(2))
        if len(values) == 4:
            for (ws, aux), (mean, std, paper) in zip(COLUMNS, values):
                out[(m.group(1), ws, aux)] = (mean, std, paper)
    return out


def test_the_readme_table_is_the_records_corrected_table1(cells):
    table = readme_table1()
    ours = cells[(cells.table == "Table I") & (cells.protocol == "corrected")]
    assert len(table) == len(ours) == 16
    for row in ours.itertuples():
        mean, std, paper = table[(row.model, bool(row.weight_sharing), bool(row.aux_loss))]
        assert (mean, std) == (f"{row.mean:.2f}", f"{row.std:.2f}"), row.model
        assert float(paper) == pytest.approx(row.paper_mean)


def test_the_readme_verdict_counts_are_the_records(cells):
    """The README's per-cell verdicts, recomputed from the record's summary columns with the paper profile's margin."""
    text = " ".join(README.split())
    margin = load_profile("paper").settings["equivalence_margin"]
    said = re.search(
        r"equivalence margin ([\d.]+) point.*?under the corrected protocol, of (\d+) distinct cells (\d+) "
        r"(?:is|are) equivalent, (\d+) (?:is|are) different and (\d+) (?:is|are) inconclusive; under the "
        r"authors' original protocol \(their quirks reproduced\), (\d+) (?:is|are) equivalent, (\d+) "
        r"different and (\d+) inconclusive",
        text,
    )
    assert said, "the README's verdict line is missing"
    assert float(said.group(1)) == margin
    judged = verdict_frame(cells, margin)
    corrected, original = verdict_counts(judged, "corrected"), verdict_counts(judged, "original")
    assert (
        int(said.group(2))
        == sum(corrected.values())
        == int(judged[(judged.protocol == "corrected") & judged.counted].shape[0])
    )
    assert [int(x) for x in said.groups()[2:5]] == list(corrected.values())
    assert [int(x) for x in said.groups()[5:8]] == list(original.values())


def test_the_readme_reproduction_headline_is_the_records_best_paper_cell(cells):
    said = re.search(
        r"LeNet5_FullyConv, weight sharing \+ auxiliary\s+loss: \*\*([\d.]+) ± ([\d.]+) % test error "
        r"\(n = (\d+)\)",
        README,
    )
    assert said, "the README's reproduction headline is missing"
    row = cells[
        (cells.table == "Table I")
        & (cells.protocol == "corrected")
        & (cells.model == "LeNet5_FullyConv")
        & cells.weight_sharing
        & cells.aux_loss
    ].iloc[0]
    assert said.groups() == (f"{row['mean']:.2f}", f"{row['std']:.2f}", str(row["n"]))
