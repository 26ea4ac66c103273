"""The paper's published numbers (the only numbers typed in the report) and our cells of its tables. A cell
is computed only when every run it asks for is in the store; otherwise its missing seeds are named."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import machine
from ..experiments.grid import GRIDS, PAPER_BEST_CELL
from ..experiments.planning import record_finder
from .stats import mean_std_n, seed_ranges, welch_p

# The paper's published numbers (ee559-project1-report.txt)

PAPER_N = 10  # "mean and standard deviation over ten fold repetitions"
# Table I: (model, weight_sharing, aux_loss) -> (mean, std) test error %, batch norm on.
PAPER_TABLE1 = {
    ("Net", False, False): (17.7, 1.217),
    ("Net", False, True): (8.719, 1.12),
    ("Net", True, False): (15.91, 1.627),
    ("Net", True, True): (6.909, 0.914),
    ("LeNet5", False, False): (16.459, 1.921),
    ("LeNet5", False, True): (6.149, 0.91),
    ("LeNet5", True, False): (13.63, 1.161),
    ("LeNet5", True, True): (6.08, 0.8),
    ("LeNet5_FullyConv", False, False): (17.2, 1.061),
    ("LeNet5_FullyConv", False, True): (5.109, 0.737),
    ("LeNet5_FullyConv", True, False): (13.49, 1.127),
    ("LeNet5_FullyConv", True, True): (3.629, 0.748),
    ("ResNet", False, False): (17.469, 0.5696),
    ("ResNet", False, True): (6.98, 0.625),
    ("ResNet", True, False): (14.97, 1.666),
    ("ResNet", True, True): (5.159, 0.579),
}
# Table II, LeNet5 with auxiliary loss: (weight_sharing, batch_norm, dropout) -> (mean, std).
PAPER_TABLE2 = {
    (False, False, False): (9.619, 2.737),
    (False, False, True): (10.12, 1.637),
    (False, True, False): (6.149, 0.91),
    (False, True, True): (8.59, 0.79),
    (True, False, False): (7.02, 1.512),
    (True, False, True): (7.32, 1.005),
    (True, True, False): (6.08, 0.802),
    (True, True, True): (6.71, 0.879),
}
# Section II: parameter counts "calculated for the models including weight sharing".
PAPER_PARAMETERS = {"Net": 15460, "LeNet5": 62520, "LeNet5_FullyConv": 63092, "ResNet": 58244}
# the paper's best cell (Table I), its key and its numbers
PAPER_BEST_KEY = ("table1", tuple(PAPER_BEST_CELL[k] for k in GRIDS["table1"].values()))
_best = PAPER_TABLE1[PAPER_BEST_KEY[1]]
PAPER_BEST = {"label": f"paper: {PAPER_BEST_CELL['model']}", "mean": _best[0], "std": _best[1], "n": PAPER_N}
TABLE1_KEYS, TABLE2_KEYS = list(PAPER_TABLE1), list(PAPER_TABLE2)  # the cells in the paper's order
PAPER_TABLES = {"table1": PAPER_TABLE1, "table2": PAPER_TABLE2}
TABLE_NAMES = {"table1": "Table I", "table2": "Table II"}

# The authors' quirks that the original protocol reproduces (reference/original-implementation.md)
QUIRKS = {
    "25 epochs": "without the auxiliary loss the runs train 25 epochs instead of 30 (hard-coded)",
    "raw test input": "the test input is not normalised with the training mean and std",
    "test-batch norm": "no model.eval(): batch norm normalises each test mini-batch with its own statistics",
    "test-time dropout": "no model.eval(): dropout stays on at test time",
    "conv head": "Net's comparison head is 1x1 convolutions with a batch norm, not the paper's linear layers",
    "two branch calls": (
        "with weight sharing the branch is called once per image, so batch norm sees each apart"
    ),
}


def yesno(b: bool) -> str:
    return "yes" if b else "no"


def cell_label(table: str, key: tuple) -> str:
    if table == "table1":
        m, ws, aux = key
        return f"{m}, weight sharing {yesno(ws)}, aux. loss {yesno(aux)}"
    ws, bn, do = key
    return f"LeNet5 (aux. loss), weight sharing {yesno(ws)}, batch norm {yesno(bn)}, dropout {yesno(do)}"


def setting(table: str, key: tuple) -> tuple:
    """A cell's (model, weight sharing, aux. loss, batch norm, dropout)."""
    return (*key, True, False) if table == "table1" else ("LeNet5", key[0], True, key[1], key[2])


def applicable_quirks(table: str, key: tuple) -> list[str]:
    """The quirks of the original protocol that touch a cell, by QUIRKS' names."""
    m, ws, aux, bn, do = setting(table, key)
    named = {
        "25 epochs": not aux,
        "raw test input": True,
        "test-batch norm": bn,
        "test-time dropout": do,
        "conv head": m == "Net",
        "two branch calls": ws,
    }
    return [q for q in QUIRKS if named[q]]


# a cell's identity: what determines its runs (Cell.config, in this order)
CONFIG_COLUMNS = ["protocol", "model", "weight_sharing", "aux_loss", "batch_norm", "dropout", "lr", "epochs"]


@dataclass
class Cell:
    """One cell of Table I or II under one protocol: the paper's numbers and ours, made once its runs are
    looked up (our statistics are computed then)."""

    table: str
    protocol: str
    key: tuple
    paper_mean: float
    paper_std: float
    paper_n: int = PAPER_N
    expected_seeds: list = field(default_factory=list)
    missing_seeds: list = field(default_factory=list)
    lr: float | None = None
    epochs: int | None = None  # as configured (the paper's 30)
    epochs_trained: int | None = None  # as trained: 25 for no-aux cells of the original protocol (quirk 1)
    errors: list = field(default_factory=list)  # our per-seed test errors, in seed order
    train_seconds: list = field(default_factory=list)
    train_errors: list = field(default_factory=list)  # our per-seed training errors (%), in seed order
    note: str = ""  # why a cell has no configuration (not in the profile...)

    def __post_init__(self):  # our statistics, once every seed is in (NaN and n 0 before)
        self.label = cell_label(self.table, self.key)
        self.config = (self.protocol, *setting(self.table, self.key), self.lr, self.epochs)  # CONFIG_COLUMNS
        self.complete = bool(self.expected_seeds) and not self.missing_seeds
        self.mean, self.std, _ = mean_std_n(self.errors) if self.complete else (math.nan, math.nan, 0)
        self.n = len(self.errors) if self.complete else 0
        self.diff = self.mean - self.paper_mean
        self.p_value = welch_p(self.mean, self.std, self.n, self.paper_mean, self.paper_std, self.paper_n)
        timed = self.complete and self.train_seconds
        self.mean_train_seconds = float(np.mean(self.train_seconds)) if timed else math.nan

    def missing_text(self) -> str:
        """Exactly what is missing, in words ('' when complete)."""
        if self.note or self.complete:
            return self.note
        have = len(self.expected_seeds) - len(self.missing_seeds)
        return (
            f"missing seeds {seed_ranges(self.missing_seeds)} ({have}/{len(self.expected_seeds)} runs in the "
            f"store; lr {self.lr:g}, {self.epochs} epochs, {self.protocol} protocol)"
        )


def table_cells(records, executions, profile_name: str = "") -> list[Cell]:
    """Every cell of Tables I and II under both protocols, in the paper's order, from the runs each execution
    of the plan lists; cells the profile does not run are kept, with a note saying so."""
    find, cells = record_finder(records), {}
    for ex in (ex for ex in executions if ex.stage in ("table1", "table2")):
        configs, p = ex.configs(), ex.parameters
        key = tuple(p[k] for k in GRIDS[ex.stage].values())  # the cell's key: its grid's fields, in order
        found = [find(cfg) for cfg in configs]
        metrics = [r["metrics"] for r in found if r]
        cells[(ex.stage, p["protocol"], key)] = Cell(
            ex.stage,
            p["protocol"],
            key,
            *PAPER_TABLES[ex.stage][key],
            expected_seeds=[cfg.seed for cfg in configs],
            missing_seeds=[cfg.seed for cfg, r in zip(configs, found, strict=True) if not r],
            lr=p["lr"],
            epochs=p["epochs"],
            epochs_trained=min((cfg.trained_epochs for cfg in configs), default=None),
            errors=[m["test_error"] for m in metrics],
            train_seconds=[m.get("train_seconds", math.nan) for m in metrics],
            train_errors=[m.get("train_error", math.nan) for m in metrics],
        )
    out, why = [], f"not run: the profile '{profile_name}' does not include this configuration under the"
    for protocol in ("corrected", "original"):
        for stage, paper in PAPER_TABLES.items():
            for key, numbers in paper.items():
                default = Cell(stage, protocol, key, *numbers, note=f"{why} {protocol} protocol")
                out.append(cells.get((stage, protocol, key), default))
    return out


def cell_map(cells, protocol) -> dict:
    return {(c.table, c.key): c for c in cells if c.protocol == protocol}


def distinct_cells(cells, protocol) -> list:
    """The complete cells of one protocol, each set of runs once (a Table II cell that is a Table I cell)."""
    first = {}
    for c in cells:
        if c.protocol == protocol and c.complete:
            first.setdefault(c.config, c)
    return list(first.values())


def best_cells(cells, table) -> tuple[set, tuple | None, set, tuple | None]:
    """(ours best per model, ours best overall, paper best per model, paper best overall) as cell keys."""
    cs = [c for c in cells if c.table == table]

    def bests(value, usable):
        per = {}
        for c in filter(usable, cs):
            model = c.key[0] if table == "table1" else "LeNet5"
            per[model] = min(per.get(model, c), c, key=value)
        overall = min(filter(usable, cs), key=value, default=None)
        return {c.key for c in per.values()}, (overall.key if overall else None)

    return (*bests(lambda c: c.mean, lambda c: c.complete), *bests(lambda c: c.paper_mean, lambda c: True))


def quirk_shifts(cells):
    """Original minus corrected per distinct cell where both are complete, with the Welch p between them; and
    the shift per set of applicable quirks (count, mean, min, max)."""
    orig, rows = cell_map(cells, "original"), []
    for c in distinct_cells(cells, "corrected"):
        o = orig.get((c.table, c.key))
        if o is None or not o.complete:
            continue
        quirks = ", ".join(applicable_quirks(c.table, c.key))
        row = dict(table=TABLE_NAMES[c.table], cell=c.label, quirks=quirks, corrected=c.mean, original=o.mean)
        rows.append(dict(row, shift=o.mean - c.mean, p=welch_p(o.mean, o.std, o.n, c.mean, c.std, c.n)))
    per_cell = pd.DataFrame(rows, columns=["table", "cell", "quirks", "corrected", "original", "shift", "p"])
    columns = ["quirks", "cells", "mean shift", "min shift", "max shift"]
    if per_cell.empty:
        return per_cell, pd.DataFrame(columns=columns)
    grouped = per_cell.groupby("quirks")["shift"].agg(["count", "mean", "min", "max"]).reset_index()
    grouped.columns = columns
    return per_cell, grouped


def records_frame(records, outputs: bool = False):
    """One row per run (runs.csv): configuration, metrics, provenance; ``outputs``: per-pair outputs too."""
    rows = []
    for r in records:
        row = {**r["config"], **r["metrics"]}
        row["augment"] = ",".join(r["config"].get("augment", []))
        row["confirm_seeds"] = ",".join(map(str, r["config"].get("confirm_seeds", [])))
        row.update({k: r.get(k) for k in ("key", "device", "torch_version", "code_version")})
        row.update(epochs_trained=r.get("epochs_trained"), created=r["created"])
        row["machine"] = json.dumps(r["machine"], sort_keys=True) if r.get("machine") else ""
        rows.append({**row, **r["outputs"]} if outputs else row)
    return pd.DataFrame(rows)


def seed_table(records):
    """Per-seed errors (%) with mean and std (over seeds, ddof 1) rows, and the machine of each seed."""
    cols = ["test_error", "test_derived_error", "test_digit1_error", "test_digit2_error", "train_error"]
    rows = {r["config"]["seed"]: {c: r["metrics"].get(c) for c in (*cols, "train_seconds")} for r in records}
    frame = pd.DataFrame.from_dict(rows, orient="index").rename_axis("seed")
    summary = pd.DataFrame({"mean": frame.mean(), "std": frame.std()}).T
    table = pd.concat([frame, summary]).round(3)
    machines = {r["config"]["seed"]: machine.short(r.get("machine")) for r in records}
    table["machine"] = [machines[s] for s in frame.index] + ["", ""]
    return table


def load_timings(runs_dir) -> dict | None:
    path = Path(runs_dir) / "timings.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None
