"""The README's headline numbers are the committed record's (report/paper/cells.csv): a new record that
changes them fails here until the README says what the record says."""
import re

import pandas as pd
import pytest

from conftest import ROOT
from siamese_lib.analysis.tables import ALPHA_DEVIATION

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


def test_the_readme_agreement_counts_are_the_records(cells):
    said = re.search(r"Cells agreeing with the paper \(Welch p >= ([\d.]+)\): (\d+) of (\d+) under the corrected "
                     r"protocol, (\d+) of (\d+) under", README)
    assert said, "the README's agreement line is missing"
    assert float(said.group(1)) == ALPHA_DEVIATION
    for protocol, agree, total in (("corrected", said.group(2), said.group(3)), ("original", said.group(4),
                                                                                 said.group(5))):
        mine = cells[cells.protocol == protocol]
        assert (int(agree), int(total)) == ((mine.welch_p >= ALPHA_DEVIATION).sum(), len(mine)), protocol


def test_the_readme_reproduction_headline_is_the_records_best_paper_cell(cells):
    said = re.search(r"LeNet5_FullyConv, weight sharing \+ auxiliary\s+loss: \*\*([\d.]+) ± ([\d.]+) % test error "
                     r"\(n = (\d+)\)", README)
    assert said, "the README's reproduction headline is missing"
    row = cells[(cells.table == "Table I") & (cells.protocol == "corrected") & (cells.model == "LeNet5_FullyConv")
                & cells.weight_sharing & cells.aux_loss].iloc[0]
    assert said.groups() == (f"{row['mean']:.2f}", f"{row['std']:.2f}", str(row["n"]))
