"""Provenance fragments for the report: every departure from the paper and from the authors' code (generated
from the code's own settings, with its measured effect where one was measured), the machines that trained the
record, and the last ``verify`` of it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from .. import machine
from ..analysis.stats import fmt_p, mean_std_n, welch_p
from ..common import ROOT
from ..config import HEADS, PROTOCOL_SETTINGS, RunConfig
from ..models import build_model, count_parameters
from ..training import make_optimizer
from .html import esc, html_table

# The one-call against the two-call forward on the paper's best cell (LeNet5_FullyConv, weight sharing +
# auxiliary loss, corrected protocol, 10 seeds), one row per run as in runs.csv: measured on the machine its
# rows name, through the store (python -m siamese_lib verify can retrain them like any record).
FORWARD_MEASUREMENT = ROOT / "docs" / "measurements" / "forward_calls.csv"
# Net's two heads under the original protocol, the four Net cells of Table I, 10 seeds each, one row per run as in
# runs.csv: the linear head's runs are the previous committed record's, the conv head's this code's.
HEAD_MEASUREMENT = ROOT / "docs" / "measurements" / "net_head.csv"


def _yes(b) -> str:
    return "yes" if b else "no"


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


def _forward_text(effect) -> str:
    if effect is None:
        return "not measured"
    (m1, s1, n1), (m2, s2, n2) = effect["one"], effect["two"]
    return (
        f"LeNet5_FullyConv, ws + aux, corrected: one call {m1:.2f} ± {s1:.2f} %, two calls {m2:.2f} ± {s2:.2f} % "
        f"(n {n1}, {n2}); Δ {effect['diff']:+.2f} pp, Welch p {fmt_p(effect['p'])}"
    )


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


def _head_text(effect) -> str:
    if effect is None:
        return "not measured"
    cells = "; ".join(
        f"ws{int(r.weight_sharing)} aux{int(r.aux_loss)}: test {r.linear_test:.2f} -> {r.conv_test:.2f} % "
        f"(Welch p {fmt_p(r.p)}), train {r.linear_train:.2f} -> {r.conv_train:.2f} %"
        for r in effect.itertuples()
    )
    return f"Net, original protocol, linear -> conv head, mean of {int(effect['n'].min())} seeds: {cells}"


def _shift_text(grouped, quirk: int) -> str:
    """The mean original-minus-corrected shift of the cells a quirk touches (jointly with the others)."""
    if grouped is None or len(grouped) == 0:
        return "not measured (no original-protocol cells)"
    rows = grouped[grouped["quirks"].apply(lambda q: str(quirk) in q.split(", "))]
    if rows.empty:
        return "no cell isolates it"
    parts = [
        f"cells with quirks {r['quirks']}: {r['mean shift']:+.2f} pp (n {int(r['cells'])})"
        for _, r in rows.iterrows()
    ]
    return "jointly, original − corrected: " + "; ".join(parts)


def departures(grouped_shifts=None) -> list[list[str]]:
    """[departure, paper, authors' code, corrected protocol, original protocol, measured effect] per row."""
    corr, orig = PROTOCOL_SETTINGS["corrected"], PROTOCOL_SETTINGS["original"]
    epochs = RunConfig().epochs
    no_aux = {p: RunConfig(protocol=p, aux_loss=False).trained_epochs for p in PROTOCOL_SETTINGS}
    ws = {p: RunConfig(protocol=p).branch_calls for p in PROTOCOL_SETTINGS}
    nets = {h: count_parameters(build_model("Net", head=h)) for h in HEADS}
    adam = make_optimizer(build_model("Net"), RunConfig()).defaults
    return [
        [
            "1. Epochs without the auxiliary loss",
            f"{epochs}",
            f"{orig.no_aux_epochs} (hard-coded)",
            f"{no_aux['corrected']}",
            f"{no_aux['original']}",
            _shift_text(grouped_shifts, 1),
        ],
        [
            "2. Test input normalised with the training mean/std",
            "yes",
            _yes(orig.normalize_test),
            _yes(corr.normalize_test),
            _yes(orig.normalize_test),
            _shift_text(grouped_shifts, 2),
        ],
        [
            "3. model.eval() at test time (batch-norm running statistics, no dropout)",
            "yes (implied)",
            _yes(orig.eval_mode),
            _yes(corr.eval_mode),
            _yes(orig.eval_mode),
            _shift_text(grouped_shifts, 3),
        ],
        [
            "4. The 'last layer benchmark' error",
            "an error",
            "head vs digits disagreement",
            "both reported: test_derived_error (vs labels), test_head_vs_digits_disagreement",
            "same as corrected",
            "a different quantity: both columns in runs.csv",
        ],
        [
            "5. Net's comparison head",
            f"Linear(20,72)-ReLU-Linear(72,2): {nets['linear']:,} parameters",
            f"Conv1d(20,72,1)-ReLU-BN1d-Conv1d(72,2,1): {nets['conv']:,} parameters",
            f"{corr.net_head} head ({nets[corr.net_head]:,}), the one whose count the paper reports",
            f"{orig.net_head} head ({nets[orig.net_head]:,}), the authors' last code",
            _head_text(head_effect()),
        ],
        [
            "6. Shared branch with weight sharing: calls per step (batch-norm statistics)",
            "not stated",
            f"{orig.shared_branch_calls} (once per image)",
            f"{ws['corrected']} "
            f"({'both images pooled in one call' if ws['corrected'] == 1 else 'once per image'})",
            f"{ws['original']} (the authors')",
            _forward_text(forward_effect()),
        ],
        [
            "7. CPU memory layout",
            "–",
            "contiguous",
            "channels_last on CPU",
            "channels_last on CPU",
            "numerics only (the last bits); same model",
        ],
        [
            "8. Adam implementation",
            "–",
            "PyTorch default of their version",
            f"foreach={adam.get('foreach')}",
            f"foreach={adam.get('foreach')}",
            "numerics only; same update",
        ],
        [
            "9. Test-time batch",
            "–",
            "100",
            "1000 (eval mode: no effect but the last bits)",
            "the training batch (train mode: it changes batch-norm statistics, as theirs)",
            "numerics only",
        ],
    ]


def departures_html(grouped_shifts=None) -> str:
    return html_table(
        ["Departure", "Paper", "Authors' code", "Corrected protocol", "Original protocol", "Measured effect"],
        [[esc(c) for c in row] for row in departures(grouped_shifts)],
        caption="TABLE S1: Every departure from the paper and from the authors' code, read from "
        "this code's own settings (the protocols' settings, the run configuration, the models); "
        "effects measured where a measurement exists",
        cls="plain departures",
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
