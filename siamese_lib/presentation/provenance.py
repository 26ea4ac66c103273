"""Provenance fragments for the report: every departure from the paper and from the authors' code (generated
from the code's own settings, with its measured effect where one was measured), the machines that trained the
record, and the last ``verify`` of it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from .. import machine
from ..analysis.stats import mean_std_n, welch_p
from ..common import ROOT
from ..config import HEADS, PROTOCOL_SETTINGS, RunConfig
from ..models import build_model, count_parameters
from ..training import make_optimizer
from .html import esc, html_table
from .templates import render

# The one-call against the two-call forward on the paper's best cell (LeNet5_FullyConv, weight sharing +
# auxiliary loss, corrected protocol, 10 seeds), one row per run as in runs.csv: measured on the machine its
# rows name, through the store (python -m siamese_lib verify can retrain them like any record).
FORWARD_MEASUREMENT = ROOT / "docs" / "measurements" / "forward_calls.csv"
# Net's two heads under the original protocol, the four Net cells of Table I, 10 seeds each, one row per run as in
# runs.csv: the linear head's runs are the previous committed record's, the conv head's this code's.
HEAD_MEASUREMENT = ROOT / "docs" / "measurements" / "net_head.csv"


def forward_effect(csv_path: Path = FORWARD_MEASUREMENT) -> dict | None:
    """Two-call minus one-call mean test error (pp), each side's mean, std, n, Welch p; None when not measured."""
    if not Path(csv_path).is_file():
        return None
    frame = pd.read_csv(csv_path)
    sides = {calls: mean_std_n(frame.loc[frame["branch_calls"] == calls, "test_error"]) for calls in (1, 2)}
    (m1, s1, n1), (m2, s2, n2) = sides[1], sides[2]
    if n1 < 2 or n2 < 2:
        return None
    return {"one": (m1, s1, n1), "two": (m2, s2, n2), "diff": m2 - m1, "p": welch_p(m2, s2, n2, m1, s1, n1)}


def head_effect(csv_path: Path = HEAD_MEASUREMENT) -> pd.DataFrame | None:
    """Per Net cell (ws, aux) of the original protocol: mean test and train error of each head over its seeds,
    and the conv-minus-linear test difference with its Welch p; None when not measured."""
    if not Path(csv_path).is_file():
        return None
    rows = []
    for (ws, aux), cell in pd.read_csv(csv_path).groupby(["weight_sharing", "aux_loss"]):
        side = {h: cell[cell["head"] == h] for h in HEADS}
        if min(len(s) for s in side.values()) < 2:
            continue
        (ml, sl, nl), (mc, sc, nc) = (mean_std_n(side[h]["test_error"]) for h in ("linear", "conv"))
        rows.append(
            {
                "weight_sharing": bool(ws),
                "aux_loss": bool(aux),
                "linear_test": ml,
                "conv_test": mc,
                "diff": mc - ml,
                "p": welch_p(mc, sc, nc, ml, sl, nl),
                "n": min(nl, nc),
                "linear_train": side["linear"]["train_error"].mean(),
                "conv_train": side["conv"]["train_error"].mean(),
            }
        )
    return pd.DataFrame(rows) if rows else None


def departures_html(grouped_shifts=None) -> str:
    """Table S1: every departure from the paper and from the authors' code, read from this code's own settings
    (the protocols' settings, the run configuration, the models), with the effects measured where a measurement
    exists (``grouped_shifts``: tables.quirk_shifts' second frame); the words are in departures.html.j2."""
    return render(
        "departures.html.j2",
        epochs=RunConfig().epochs,
        corr=PROTOCOL_SETTINGS["corrected"],
        orig=PROTOCOL_SETTINGS["original"],
        no_aux={p: RunConfig(protocol=p, aux_loss=False).trained_epochs for p in PROTOCOL_SETTINGS},
        calls={p: RunConfig(protocol=p).branch_calls for p in PROTOCOL_SETTINGS},
        nets={h: count_parameters(build_model("Net", head=h)) for h in HEADS},
        foreach=make_optimizer(build_model("Net"), RunConfig()).defaults.get("foreach"),
        measured=grouped_shifts is not None and len(grouped_shifts) > 0,
        forward=forward_effect(),
    )


def machines_html(records) -> str:
    """The machines (and numerics) that trained the record, with how many runs each."""
    counts = Counter(machine.describe(r.get("machine")) for r in records)
    rows = [[esc(m), str(n)] for m, n in counts.most_common()]
    note = (
        "<p class='note'>Per-seed numbers depend on the machine (CPU vector width, oneDNN and MKL code paths) "
        "unless the numerics are portable (docs/reproducibility.md). <code>python -m siamese_lib verify</code> "
        "retrains a sample on the reader's machine and tests whether runs and cell means agree.</p>"
    )
    return (
        html_table(
            ["Machine and numerics", "Runs"],
            rows,
            caption="The machines that produced this record",
            cls="plain",
            col_classes=[None, "num"],
        )
        + note
    )


def verify_html(v: dict) -> str:
    """The last verification of this record (verify.json's content, as the record keeps it), if one was run."""
    if not v:
        return "<p class='note'>No verification run yet (<code>make verify</code>).</p>"
    lines = "".join(f"<li>{esc(line)}</li>" for line in v.get("summary", []))
    return (
        f"<p>Last <code>verify</code>: {len(v.get('runs', []))} runs, {len(v.get('cells', []))} cells, "
        f"{v.get('seconds')} s on {esc(machine.describe(v.get('machine_here')))}:</p><ul>{lines}</ul>"
    )
