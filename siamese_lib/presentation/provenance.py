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


def forward_effect(csv_path: Path = FORWARD_MEASUREMENT) -> dict | None:
    """Two-call minus one-call mean test error (pp), each side's (mean, std, n), Welch p; or None."""
    if not Path(csv_path).is_file():
        return None
    frame = pd.read_csv(csv_path)
    (m1, s1, n1), (m2, s2, n2) = (mean_std_n(frame.test_error[frame.branch_calls == k]) for k in (1, 2))
    if n1 < 2 or n2 < 2:
        return None
    return {"one": (m1, s1, n1), "two": (m2, s2, n2), "diff": m2 - m1, "p": welch_p(m2, s2, n2, m1, s1, n1)}


def head_effect(csv_path: Path = HEAD_MEASUREMENT) -> pd.DataFrame | None:
    """Per Net cell (ws, aux) of the original protocol: each head's mean test and train error over its seeds,
    and the conv-minus-linear test difference with its Welch p; None when not measured."""
    if not Path(csv_path).is_file():
        return None
    rows = []
    for (ws, aux), cell in pd.read_csv(csv_path).groupby(["weight_sharing", "aux_loss"]):
        lin, conv = cell[cell["head"] == "linear"], cell[cell["head"] == "conv"]
        if min(len(lin), len(conv)) < 2:
            continue
        (ml, sl, nl), (mc, sc, nc) = mean_std_n(lin.test_error), mean_std_n(conv.test_error)
        row = dict(weight_sharing=bool(ws), aux_loss=bool(aux), linear_test=ml, conv_test=mc, diff=mc - ml)
        row.update(p=welch_p(mc, sc, nc, ml, sl, nl), n=min(nl, nc))
        rows.append(row | dict(linear_train=lin.train_error.mean(), conv_train=conv.train_error.mean()))
    return pd.DataFrame(rows) if rows else None


def departures_html(grouped_shifts=None) -> str:
    """Supplement A: Table S1 from this code's own settings, with the effects measured where a measurement
    exists (``grouped_shifts``: tables.quirk_shifts' second frame), then Net's two heads."""
    words = dict(corr=PROTOCOL_SETTINGS["corrected"], orig=PROTOCOL_SETTINGS["original"])
    words["epochs"] = RunConfig().epochs
    words["no_aux"] = {p: RunConfig(protocol=p, aux_loss=False).trained_epochs for p in PROTOCOL_SETTINGS}
    words["calls"] = {p: RunConfig(protocol=p).branch_calls for p in PROTOCOL_SETTINGS}
    words["nets"] = {h: count_parameters(build_model("Net", head=h)) for h in HEADS}
    words["foreach"] = make_optimizer(build_model("Net"), RunConfig()).defaults.get("foreach")
    words["measured"] = grouped_shifts is not None and len(grouped_shifts) > 0
    heads = head_effect()
    words["net_head"] = [] if heads is None else heads.to_dict("records")
    return render("departures.html.j2", forward=forward_effect(), **words)
