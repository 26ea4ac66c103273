"""Provenance for the report: every departure from the paper and from the authors' code (read from the code's
own settings, with its measured effect where one was measured)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analysis.stats import mean_std_n, welch_p
from ..common import ROOT
from ..config import HEADS, PROTOCOL_SETTINGS, RunConfig
from ..models import build_model, count_parameters
from ..training import make_optimizer
from .templates import render

# The one-call against the two-call forward on the paper's best cell (LeNet5_FullyConv, weight sharing +
# auxiliary loss, corrected protocol, 10 seeds), one row per run as in runs.csv (verify can retrain them).
FORWARD_MEASUREMENT = ROOT / "docs" / "measurements" / "forward_calls.csv"
# Net's two heads on the four Net cells of Table I, original protocol, 10 seeds each, one row per run: the
# linear head's runs are the previous committed record's, the conv head's this code's.
HEAD_MEASUREMENT = ROOT / "docs" / "measurements" / "net_head.csv"


def _welch(a, b) -> dict | None:
    """b against a: each side's (mean, std, n), b's mean minus a's, Welch p; None under 2 values a side."""
    (m1, s1, n1), (m2, s2, n2) = mean_std_n(a), mean_std_n(b)
    if n1 < 2 or n2 < 2:
        return None
    return {"one": (m1, s1, n1), "two": (m2, s2, n2), "diff": m2 - m1, "p": welch_p(m2, s2, n2, m1, s1, n1)}


def forward_effect(csv_path: Path = FORWARD_MEASUREMENT) -> dict | None:
    """Two calls against one (``_welch`` on the test error, pp); None when not measured."""
    if not Path(csv_path).is_file():
        return None
    frame = pd.read_csv(csv_path)
    return _welch(*(frame.test_error[frame.branch_calls == k] for k in (1, 2)))


def head_effect(csv_path: Path = HEAD_MEASUREMENT) -> list[dict]:
    """Per Net cell (ws, aux) of the original protocol: the conv head against the linear one on the test error
    (``_welch``), and each head's mean training error; [] when not measured."""
    if not Path(csv_path).is_file():
        return []
    rows = []
    for (ws, aux), cell in pd.read_csv(csv_path).groupby(["weight_sharing", "aux_loss"]):
        lin, conv = cell[cell["head"] == "linear"], cell[cell["head"] == "conv"]
        train = lin.train_error.mean(), conv.train_error.mean()
        if test := _welch(lin.test_error, conv.test_error):
            rows.append(dict(weight_sharing=bool(ws), aux_loss=bool(aux), test=test, train=train))
    return rows


def departures_html(grouped_shifts=None) -> str:
    """Supplement A: Table S1 from this code's own settings, with the effects measured where a measurement
    exists (``grouped_shifts``: tables.quirk_shifts' second frame), then Net's two heads."""
    words = dict(settings=PROTOCOL_SETTINGS, epochs=RunConfig().epochs)
    words["no_aux"] = {p: RunConfig(protocol=p, aux_loss=False).trained_epochs for p in PROTOCOL_SETTINGS}
    words["calls"] = {p: RunConfig(protocol=p).branch_calls for p in PROTOCOL_SETTINGS}
    words["nets"] = {h: count_parameters(build_model("Net", head=h)) for h in HEADS}
    words["foreach"] = make_optimizer(build_model("Net"), RunConfig()).defaults.get("foreach")
    words["measured"] = grouped_shifts is not None and len(grouped_shifts) > 0
    return render("departures.html.j2", forward=forward_effect(), net_head=head_effect(), **words)
