"""From the results store to the paper's tables: aggregation, comparison with the paper, claims.

The paper's published numbers are data here (and the only numbers typed anywhere in the
report). A table cell is computed only when every run its configuration asks for is in
the store; otherwise it is reported as missing, with the missing seeds, never filled in.
Statistics: mean and sample std (ddof=1) over seeds; Welch's t-test against the paper's
mean/std with n=10 (the paper's ten folds).
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .models import MODEL_NAMES
from .training import RunConfig

# --- the paper's published numbers (ee559-project1-report.txt) -------------------------

PAPER_N = 10  # "mean and standard deviation over ten fold repetitions"
# Table I: (model, weight_sharing, aux_loss) -> (mean, std) test error %, batch norm on.
PAPER_TABLE1 = {
    ("Net", False, False): (17.7, 1.217), ("Net", False, True): (8.719, 1.12),
    ("Net", True, False): (15.91, 1.627), ("Net", True, True): (6.909, 0.914),
    ("LeNet5", False, False): (16.459, 1.921), ("LeNet5", False, True): (6.149, 0.91),
    ("LeNet5", True, False): (13.63, 1.161), ("LeNet5", True, True): (6.08, 0.8),
    ("LeNet5_FullyConv", False, False): (17.2, 1.061), ("LeNet5_FullyConv", False, True): (5.109, 0.737),
    ("LeNet5_FullyConv", True, False): (13.49, 1.127), ("LeNet5_FullyConv", True, True): (3.629, 0.748),
    ("ResNet", False, False): (17.469, 0.5696), ("ResNet", False, True): (6.98, 0.625),
    ("ResNet", True, False): (14.97, 1.666), ("ResNet", True, True): (5.159, 0.579),
}
# Table II, LeNet5 with auxiliary loss: (weight_sharing, batch_norm, dropout) -> (mean, std).
PAPER_TABLE2 = {
    (False, False, False): (9.619, 2.737), (False, False, True): (10.12, 1.637),
    (False, True, False): (6.149, 0.91), (False, True, True): (8.59, 0.79),
    (True, False, False): (7.02, 1.512), (True, False, True): (7.32, 1.005),
    (True, True, False): (6.08, 0.802), (True, True, True): (6.71, 0.879),
}
# Section II: parameter counts "calculated for the models including weight sharing".
PAPER_PARAMETERS = {"Net": 15460, "LeNet5": 62520, "LeNet5_FullyConv": 63092, "ResNet": 58244}
TABLE1_KEYS = [(m, ws, aux) for m in MODEL_NAMES for ws in (False, True) for aux in (False, True)]
TABLE2_KEYS = [(ws, bn, do) for ws in (False, True) for bn in (False, True) for do in (False, True)]
PAPER_TABLES = {"table1": PAPER_TABLE1, "table2": PAPER_TABLE2}
TABLE_NAMES = {"table1": "Table I", "table2": "Table II"}

# The original protocol's quirks (reference/original-implementation.md) and where each applies.
QUIRKS = {
    1: "no-auxiliary-loss runs trained 25 epochs instead of 30",
    2: "test input not normalised",
    3: "no model.eval(): batch norm on test mini-batch statistics",
    4: "no model.eval(): dropout active at test time",
}
ALPHA_DEVIATION = 0.01   # issue 5: cells whose Welch p vs the paper is below this are explained
ALPHA_EFFECT = 0.05      # claims: a difference between two of our cells counts when p is below this
FINAL_EPOCHS = 10        # the LR rule averages the summed training loss over this many last epochs


EXTENSION_FIELDS = ("aux_weight", "aux_schedule", "weight_decay", "l1", "augment", "val_pairs", "lr_schedule")


def is_paper_setting(config: dict) -> bool:
    """True when a record's extension fields are at the paper's defaults."""
    d = RunConfig()
    return all(list(config.get(k, ())) == list(d.augment) if k == "augment" else config.get(k, getattr(d, k)) == getattr(d, k)
               for k in EXTENSION_FIELDS)


def yesno(b: bool) -> str:
    return "yes" if b else "no"


def cell_label(table: str, key: tuple) -> str:
    if table == "table1":
        m, ws, aux = key
        return f"{m}, weight sharing {yesno(ws)}, aux. loss {yesno(aux)}"
    ws, bn, do = key
    return f"LeNet5 (aux. loss), weight sharing {yesno(ws)}, batch norm {yesno(bn)}, dropout {yesno(do)}"


def applicable_quirks(table: str, key: tuple) -> list[int]:
    """The quirks of the original protocol that touch a cell (quirk 2 touches all)."""
    if table == "table1":
        _, _, aux = key
        return ([1] if not aux else []) + [2, 3]
    _, bn, do = key
    return [2] + ([3] if bn else []) + ([4] if do else [])


# --- statistics ------------------------------------------------------------------------

def welch_p(mean1, std1, n1, mean2, std2, n2) -> float:
    """Two-sided Welch t-test p-value from summary statistics; NaN when it is undefined."""
    from scipy.stats import ttest_ind_from_stats
    vals = (mean1, std1, n1, mean2, std2, n2)
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals) or n1 < 2 or n2 < 2:
        return float("nan")
    if std1 == 0 and std2 == 0:
        return 0.0 if mean1 != mean2 else 1.0
    return float(ttest_ind_from_stats(mean1, std1, n1, mean2, std2, n2, equal_var=False).pvalue)


def mean_std(values) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else float("nan"))


def seed_ranges(seeds) -> str:
    """[1,2,3,5] -> '1-3, 5'."""
    seeds = sorted(seeds)
    out, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        out.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ", ".join(out)


# --- the store, indexed by configuration -------------------------------------------------

def config_id(config) -> str:
    d = config.to_dict() if isinstance(config, RunConfig) else dict(config)
    d["augment"] = list(d.get("augment", []))
    return json.dumps(d, sort_keys=True)


def index_records(records) -> dict[str, list[dict]]:
    """Configuration -> its records (several only if the same run was made on several devices)."""
    idx = defaultdict(list)
    for r in records:
        idx[config_id(r["config"])].append(r)
    for rs in idx.values():
        rs.sort(key=lambda r: r["created"], reverse=True)  # the newest first
    return dict(idx)


@dataclass
class Cell:
    """One cell of Table I or II under one protocol: the paper's numbers and ours."""
    table: str
    protocol: str
    key: tuple
    paper_mean: float
    paper_std: float
    paper_n: int = PAPER_N
    expected_seeds: list = field(default_factory=list)
    missing_seeds: list = field(default_factory=list)
    lr: float | None = None
    epochs: int | None = None
    errors: list = field(default_factory=list)      # our per-seed test errors, in seed order
    train_seconds: list = field(default_factory=list)
    note: str = ""                                   # why a cell has no configuration (not in the profile...)

    @property
    def label(self) -> str:
        return cell_label(self.table, self.key)

    @property
    def complete(self) -> bool:
        return bool(self.expected_seeds) and not self.missing_seeds

    @property
    def n(self) -> int:
        return len(self.errors) if self.complete else 0

    @property
    def mean(self) -> float:
        return mean_std(self.errors)[0] if self.complete else float("nan")

    @property
    def std(self) -> float:
        return mean_std(self.errors)[1] if self.complete else float("nan")

    @property
    def diff(self) -> float:
        return self.mean - self.paper_mean

    @property
    def p_value(self) -> float:
        if not self.complete:
            return float("nan")
        return welch_p(self.mean, self.std, self.n, self.paper_mean, self.paper_std, self.paper_n)

    @property
    def mean_train_seconds(self) -> float:
        return float(np.mean(self.train_seconds)) if self.complete and self.train_seconds else float("nan")

    def missing_text(self) -> str:
        """Exactly what is missing, in words ('' when complete)."""
        if self.note:
            return self.note
        if self.complete:
            return ""
        have = len(self.expected_seeds) - len(self.missing_seeds)
        return (f"missing seeds {seed_ranges(self.missing_seeds)} ({have}/{len(self.expected_seeds)} runs in the "
                f"store; lr {self.lr:g}, {self.epochs} epochs, {self.protocol} protocol)")


def _cell_key(stage: str, p: dict) -> tuple:
    if stage == "table1":
        return (p["model"], p["weight_sharing"], p["aux_loss"])
    return (p["weight_sharing"], p["batch_norm"], p["dropout"])


def table_cells(records, profile, store_dir=None) -> list[Cell]:
    """Every cell of Tables I and II, under both protocols, in the paper's order.

    A cell's runs are the profile's configurations for it (profiles.expand). Cells the profile
    does not run are kept, with a note, so the report can say exactly what is absent.
    """
    from .profiles import expand
    idx = index_records(records)
    cells = {}
    try:
        executions = expand(profile, str(store_dir or ""), stages=("table1", "table2"))
        lr_problem = ""
    except (KeyError, ValueError) as exc:  # learning_rates: auto with an incomplete LR search
        executions, lr_problem = [], f"learning rates unavailable: {exc}"
    for ex in executions:
        configs = ex.configs()
        key = _cell_key(ex.stage, ex.parameters)
        cell = Cell(ex.stage, ex.parameters["protocol"], key, *PAPER_TABLES[ex.stage][key],
                    lr=ex.parameters["lr"], epochs=ex.parameters["epochs"])
        for cfg in configs:
            cell.expected_seeds.append(cfg.seed)
            found = idx.get(config_id(cfg))
            if found:
                cell.errors.append(found[0]["metrics"]["test_error"])
                cell.train_seconds.append(found[0]["metrics"].get("train_seconds", float("nan")))
            else:
                cell.missing_seeds.append(cfg.seed)
        cells[(ex.stage, cell.protocol, key)] = cell
    out = []
    for protocol in ("corrected", "original"):
        for stage, keys in (("table1", TABLE1_KEYS), ("table2", TABLE2_KEYS)):
            for key in keys:
                c = cells.get((stage, protocol, key))
                if c is None:
                    why = lr_problem or (f"not run: the profile '{profile.name}' does not include this "
                                         f"configuration under the {protocol} protocol")
                    c = Cell(stage, protocol, key, *PAPER_TABLES[stage][key], note=why)
                out.append(c)
    return out


def select(cells, table=None, protocol=None) -> list[Cell]:
    return [c for c in cells if (table is None or c.table == table) and (protocol is None or c.protocol == protocol)]


def cell_map(cells, protocol) -> dict:
    return {(c.table, c.key): c for c in cells if c.protocol == protocol}


def cells_frame(cells):
    """One row per cell (the CSV behind the tables): the paper's and our statistics."""
    import pandas as pd
    rows = []
    for c in cells:
        row = {"table": TABLE_NAMES[c.table], "protocol": c.protocol}
        if c.table == "table1":
            row.update(model=c.key[0], weight_sharing=c.key[1], aux_loss=c.key[2], batch_norm=True, dropout=False)
        else:
            row.update(model="LeNet5", weight_sharing=c.key[0], aux_loss=True, batch_norm=c.key[1], dropout=c.key[2])
        row.update(lr=c.lr, epochs=c.epochs, paper_mean=c.paper_mean, paper_std=c.paper_std, paper_n=c.paper_n,
                   mean=c.mean, std=c.std, n=c.n, difference=c.diff, welch_p=c.p_value,
                   mean_train_seconds=c.mean_train_seconds, missing=c.missing_text())
        rows.append(row)
    return pd.DataFrame(rows)


def best_cells(cells, table) -> tuple[set, tuple | None, set, tuple | None]:
    """(ours best per model, ours best overall, paper best per model, paper best overall) as cell keys.

    Table II has a single model, so its per-model best is the overall best.
    """
    cs = [c for c in cells if c.table == table]
    group = (lambda c: c.key[0]) if table == "table1" else (lambda c: "LeNet5")

    def bests(value, usable):
        per, overall = {}, None
        for c in cs:
            if not usable(c):
                continue
            g = group(c)
            if g not in per or value(c) < value(per[g]):
                per[g] = c
            if overall is None or value(c) < value(overall):
                overall = c
        return {c.key for c in per.values()}, (overall.key if overall else None)

    ours_per, ours_best = bests(lambda c: c.mean, lambda c: c.complete)
    paper_per, paper_best = bests(lambda c: c.paper_mean, lambda c: True)
    return ours_per, ours_best, paper_per, paper_best


# --- LR search -----------------------------------------------------------------------------

def _final_loss(curve) -> float:
    tail = [float(v) for v in curve[-FINAL_EPOCHS:]]
    if not tail or not all(math.isfinite(v) for v in tail):
        return float("inf")  # a diverged run never wins
    return float(np.mean(tail))


def used_learning_rates(profile, models, store_dir) -> dict:
    """The rate the tables use per model; a model whose rate is not known yet (auto, search incomplete) is left out."""
    from .profiles import learning_rate
    used = {}
    for m in models:
        try:
            used[m] = learning_rate(profile, m, store_dir)
        except (KeyError, ValueError):
            pass
    return used


def lr_search_curves(records, profile) -> dict:
    """{model: {lr: {"curves": [per-seed lists], "missing_seeds": [...], "seeds": [...]}}} for the profile's LR search."""
    from .profiles import expand
    idx = index_records(records)
    out = {}
    if "lr_search" not in profile.stages:
        return out
    for ex in expand(profile, "", stages=("lr_search",)):
        entry = {"curves": [], "seeds": [], "missing_seeds": []}
        for cfg in ex.configs():
            found = idx.get(config_id(cfg))
            if found:
                entry["curves"].append(found[0]["curves"]["train_loss"])
                entry["seeds"].append(cfg.seed)
            else:
                entry["missing_seeds"].append(cfg.seed)
        out.setdefault(ex.parameters["model"], {})[ex.parameters["lr"]] = entry
    return out


def choose_learning_rates(curves_by_model: dict) -> dict:
    """The rule: per model, the rate whose final-epochs training loss (the summed loss averaged over the
    last FINAL_EPOCHS epochs, then over seeds) is lowest; diverged (non-finite) runs never win.
    Only rates with all their seeds are compared; a model with an incomplete search is left out."""
    chosen = {}
    for model, by_lr in curves_by_model.items():
        if not by_lr or any(e["missing_seeds"] for e in by_lr.values()):
            continue
        score = {lr: float(np.mean([_final_loss(c) for c in e["curves"]])) for lr, e in by_lr.items()}
        chosen[model] = min(sorted(score), key=lambda lr: score[lr])
    return chosen


def _infer_lr_search(records) -> dict:
    """Without a profile: the LR-search runs are the corrected, weight-sharing + aux + batch-norm, no-dropout
    runs with the extension fields at their defaults; per model, the epoch count with the most distinct
    rates (ties: the most epochs) is the search."""
    groups = defaultdict(lambda: defaultdict(list))  # (model, epochs, nb_pairs, data_seed, batch) -> lr -> runs
    seeds = defaultdict(set)
    for r in records:
        c = r["config"]
        if not (c["protocol"] == "corrected" and c["weight_sharing"] and c["aux_loss"] and c["batch_norm"]
                and not c["dropout"] and is_paper_setting(c)):
            continue
        g = (c["model"], c["epochs"], c["nb_pairs"], c["data_seed"], c["batch_size"])
        groups[g][c["lr"]].append((c["seed"], r["curves"]["train_loss"]))
        seeds[g].add(c["seed"])
    out = {}
    for g in sorted(groups, key=lambda g: (len(groups[g]), g[1]), reverse=True):
        model = g[0]
        if model in out or len(groups[g]) < 2:
            continue
        out[model] = {lr: {"curves": [c for _, c in runs], "seeds": sorted(s for s, _ in runs),
                           "missing_seeds": sorted(seeds[g] - {s for s, _ in runs})}
                      for lr, runs in groups[g].items()}
    return out


def auto_learning_rates(store_dir, profile=None) -> dict:
    """{model: lr} chosen from the store's LR search by ``choose_learning_rates``'s rule.

    With a profile, its lr_search stage defines the runs; without, they are inferred (see
    ``_infer_lr_search``). Raises KeyError naming the models whose search is absent or incomplete.
    """
    from .store import load_records
    records = load_records(store_dir)
    curves = lr_search_curves(records, profile) if profile is not None else _infer_lr_search(records)
    chosen = choose_learning_rates(curves)
    wanted = profile.stages["lr_search"]["models"] if profile is not None and "lr_search" in profile.stages \
        else list(MODEL_NAMES)
    lacking = [m for m in wanted if m not in chosen]
    if lacking:
        raise KeyError(f"no complete LR search in {store_dir} for {', '.join(lacking)}: run the lr_search stage first")
    return chosen


# --- deviations from the paper (issue 5) -----------------------------------------------------

@dataclass
class Deviation:
    table: str
    key: tuple
    protocols: list        # the protocols under which p < ALPHA_DEVIATION
    corrected: Cell
    original: Cell | None
    reason: str
    kind: str              # 'quirk', 'unexplained', 'original only', 'undetermined'

    @property
    def label(self) -> str:
        return cell_label(self.table, self.key)

    @property
    def largest_abs_diff(self) -> float:
        return max(abs(c.diff) for c in (self.corrected, self.original) if c is not None and c.complete)


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def quirk_text(table, key) -> str:
    return "; ".join(f"{q}: {QUIRKS[q]}" for q in applicable_quirks(table, key))


def deviations(cells, alpha: float = ALPHA_DEVIATION) -> list[Deviation]:
    """Every cell whose Welch p vs the paper is below alpha under either protocol, with a reason drawn
    from comparing the two protocols; largest gap first."""
    corr, orig = cell_map(cells, "corrected"), cell_map(cells, "original")
    out = []
    for k, c in corr.items():
        o = orig.get(k)
        dev_c = c.complete and c.p_value < alpha
        dev_o = o is not None and o.complete and o.p_value < alpha
        if not (dev_c or dev_o):
            continue
        table, key = k
        quirks = quirk_text(table, key)

        def side(x):
            return f"{x.mean:.2f} vs the paper's {x.paper_mean:g} (p={_fmt_p(x.p_value)})"
        if dev_c and o is not None and o.complete and not dev_o:
            kind = "quirk"
            reason = (f"A quirk of the original protocol: corrected {side(c)}, but the original protocol gives "
                      f"{side(o)}, in agreement with the paper; the quirks move this cell by "
                      f"{o.mean - c.mean:+.2f} points (quirks that apply: {quirks}).")
        elif dev_c and dev_o:
            kind = "unexplained"
            closer = "closer to" if abs(o.diff) < abs(c.diff) else "no closer to"
            reason = (f"Unexplained gap (a difference in data, software or an unreported detail): it deviates under "
                      f"both protocols, corrected {side(c)}, original {side(o)}; the original protocol is {closer} "
                      f"the paper, so the quirks alone do not account for it.")
        elif dev_o and not dev_c:
            kind = "original only"
            reason = (f"The corrected protocol agrees with the paper ({side(c)}); the original protocol does not "
                      f"({side(o)}): the quirks ({quirks}) move this cell by {o.mean - c.mean:+.2f} points away "
                      f"from the published value, which the quirky code path therefore does not explain.")
        else:
            kind = "undetermined"
            missing = o.missing_text() if o is not None else "not run"
            reason = (f"Deviates under the corrected protocol ({side(c)}); the original-protocol cell is missing "
                      f"({missing}), so a quirk cannot be told apart from a real gap.")
        protocols = [p for p, d in (("corrected", dev_c), ("original", dev_o)) if d]
        out.append(Deviation(table, key, protocols, c, o, reason, kind))
    out.sort(key=lambda d: -d.largest_abs_diff)
    return out


def quirk_shifts(cells):
    """Original minus corrected, per cell where both are complete, with the Welch p between the two;
    and the mean shift per set of applicable quirks (how much the quirks moved the numbers)."""
    import pandas as pd
    corr, orig = cell_map(cells, "corrected"), cell_map(cells, "original")
    rows = []
    for k, c in corr.items():
        o = orig.get(k)
        if o is None or not (c.complete and o.complete):
            continue
        rows.append({"table": TABLE_NAMES[k[0]], "cell": cell_label(*k),
                     "quirks": ", ".join(map(str, applicable_quirks(*k))),
                     "corrected": c.mean, "original": o.mean, "shift": o.mean - c.mean,
                     "p": welch_p(o.mean, o.std, o.n, c.mean, c.std, c.n)})
    per_cell = pd.DataFrame(rows, columns=["table", "cell", "quirks", "corrected", "original", "shift", "p"])
    if per_cell.empty:
        return per_cell, pd.DataFrame(columns=["quirks", "cells", "mean shift", "min shift", "max shift"])
    grouped = per_cell.groupby("quirks")["shift"].agg(["count", "mean", "min", "max"]).reset_index()
    grouped.columns = ["quirks", "cells", "mean shift", "min shift", "max shift"]
    return per_cell, grouped


# --- the paper's claims, evaluated on numbers --------------------------------------------------

@dataclass
class Claim:
    name: str
    paper: str          # what the paper says
    rule: str           # how it is checked here
    verdict: str        # 'confirmed', 'partly', 'not confirmed', 'not evaluable'
    evidence: str


@dataclass
class Stat:
    mean: float
    std: float
    n: int
    seconds: float = float("nan")


def stats_from_cells(cells, protocol="corrected") -> dict:
    """(table, key) -> Stat for our complete cells."""
    return {(c.table, c.key): Stat(c.mean, c.std, c.n, c.mean_train_seconds)
            for c in cells if c.protocol == protocol and c.complete}


def paper_stats() -> dict:
    return {**{("table1", k): Stat(m, s, PAPER_N) for k, (m, s) in PAPER_TABLE1.items()},
            **{("table2", k): Stat(m, s, PAPER_N) for k, (m, s) in PAPER_TABLE2.items()}}


def _compare(stats, worse_key, better_key):
    """(difference worse - better, p) or None when either cell is absent."""
    a, b = stats.get(worse_key), stats.get(better_key)
    if a is None or b is None:
        return None
    return a.mean - b.mean, welch_p(a.mean, a.std, a.n, b.mean, b.std, b.n)


def _direction_verdict(results, total, magnitude_ok=True):
    """From per-pair (diff, p) in the claimed direction (diff > 0 supports): verdict and counts."""
    if not results:
        return "not evaluable", 0, 0
    support = sum(1 for d, p in results if d > 0 and p < ALPHA_EFFECT)
    against = sum(1 for d, p in results if d < 0 and p < ALPHA_EFFECT)
    if support == total and magnitude_ok:
        verdict = "confirmed"
    elif support > against and support > 0:
        verdict = "partly"
    else:
        verdict = "not confirmed"
    return verdict, support, against


def _pairs_text(items):
    return "; ".join(items)


def _availability(n_avail, total):
    return "" if n_avail == total else f" Only {n_avail} of {total} comparisons have both cells complete."


def claim_aux_loss(stats) -> Claim:
    rows, ratios, items = [], [], []
    total = 0
    for m in MODEL_NAMES:
        for ws in (False, True):
            total += 1
            r = _compare(stats, ("table1", (m, ws, False)), ("table1", (m, ws, True)))
            if r is None:
                continue
            rows.append(r)
            ratio = stats[("table1", (m, ws, False))].mean / max(stats[("table1", (m, ws, True))].mean, 1e-9)
            ratios.append(ratio)
            items.append(f"{m}{' WS' if ws else ''}: {ratio:.1f}x (p={_fmt_p(r[1])})")
    mean_ratio = float(np.mean(ratios)) if ratios else float("nan")
    verdict, s, a = _direction_verdict(rows, total, magnitude_ok=2 <= mean_ratio <= 3)
    evidence = (f"Error without / with auxiliary loss: {_pairs_text(items)}. Lower with auxiliary loss (p<{ALPHA_EFFECT}) "
                f"in {s} of {len(rows)}; mean ratio {mean_ratio:.2f}." + _availability(len(rows), total)) if rows else \
        "No model has both auxiliary-loss cells complete."
    return Claim("Auxiliary loss", "Auxiliary losses lower the error two to three times, for every model.",
                 f"Every model and weight-sharing setting: error lower with auxiliary loss (Welch p<{ALPHA_EFFECT}), "
                 "and the mean ratio no-aux/aux between 2 and 3.", verdict, evidence)


def claim_weight_sharing(stats) -> Claim:
    rows, items = [], []
    total = 0
    for m in MODEL_NAMES:
        for aux in (False, True):
            total += 1
            r = _compare(stats, ("table1", (m, False, aux)), ("table1", (m, True, aux)))
            if r is None:
                continue
            rows.append(r)
            items.append(f"{m}{' aux' if aux else ''}: {r[0]:+.2f} (p={_fmt_p(r[1])})")
    mean_gain = float(np.mean([d for d, _ in rows])) if rows else float("nan")
    verdict, s, a = _direction_verdict(rows, total, magnitude_ok=0.5 <= mean_gain <= 3.5)
    evidence = (f"Error without minus with weight sharing, points: {_pairs_text(items)}. Lower with weight sharing "
                f"(p<{ALPHA_EFFECT}) in {s} of {len(rows)}; mean gain {mean_gain:.2f} points."
                + _availability(len(rows), total)) if rows else "No model has both weight-sharing cells complete."
    return Claim("Weight sharing", "Weight sharing lowers the error by about 1 to 3 points for all four models.",
                 f"Every model and auxiliary-loss setting: error lower with weight sharing (p<{ALPHA_EFFECT}), and the "
                 "mean gain about 1 to 3 points (0.5 to 3.5).", verdict, evidence)


def claim_net_vs_lenet5(stats) -> Claim:
    rows, items = [], []
    for ws in (False, True):
        for aux in (False, True):
            r = _compare(stats, ("table1", ("Net", ws, aux)), ("table1", ("LeNet5", ws, aux)))
            if r is None:
                continue
            rows.append(r)
            items.append(f"WS {yesno(ws)}, aux {yesno(aux)}: {r[0]:+.2f} (p={_fmt_p(r[1])})")
    best = _compare(stats, ("table1", ("Net", True, True)), ("table1", ("LeNet5", True, True)))
    magnitude_ok = best is not None and 0 < best[0] <= 2
    verdict, s, a = _direction_verdict(rows, 4, magnitude_ok)
    evidence = (f"Net minus LeNet5 error, points: {_pairs_text(items)}; LeNet5 lower (p<{ALPHA_EFFECT}) in {s} of "
                f"{len(rows)}." + (f" With weight sharing and auxiliary loss the gap is {best[0]:+.2f} points."
                                   if best else "") + _availability(len(rows), 4)) if rows else \
        "No setting has both Net and LeNet5 complete."
    return Claim("Net vs LeNet5", "LeNet5 (62 520 parameters) outperforms the smaller Net (15 460) slightly, by about "
                 "1 point.", f"In each of the four settings LeNet5's error is lower (p<{ALPHA_EFFECT}); with weight "
                 "sharing and auxiliary loss by more than 0 and at most 2 points.", verdict, evidence)


def claim_fullyconv_best(stats) -> Claim:
    t1 = {k: v for k, v in stats.items() if k[0] == "table1"}
    rule = (f"The lowest Table I cell is a LeNet5_FullyConv one, and lower than the best cell of every other model "
            f"(p<{ALPHA_EFFECT}).")
    if not t1:
        return Claim("LeNet5_FullyConv best", "LeNet5_FullyConv is the best model (3.629% with weight sharing and "
                     "auxiliary loss).", rule, "not evaluable", "No Table I cell is complete.")
    best_key = min(t1, key=lambda k: t1[k].mean)
    fc = {k: v for k, v in t1.items() if k[1][0] == "LeNet5_FullyConv"}
    others = {}
    for k, v in t1.items():
        m = k[1][0]
        if m != "LeNet5_FullyConv" and (m not in others or v.mean < t1[others[m]].mean):
            others[m] = k
    if not fc:
        return Claim("LeNet5_FullyConv best", "LeNet5_FullyConv is the best model.", rule, "not evaluable",
                     "No LeNet5_FullyConv cell is complete.")
    fc_key = min(fc, key=lambda k: fc[k].mean)
    items, sig = [], 0
    for m, k in others.items():
        d, p = _compare(stats, k, fc_key)
        items.append(f"{m} best {t1[k].mean:.2f} ({d:+.2f}, p={_fmt_p(p)})")
        sig += d > 0 and p < ALPHA_EFFECT
    is_best = best_key[1][0] == "LeNet5_FullyConv"
    absent = [m for m in MODEL_NAMES if m != "LeNet5_FullyConv" and m not in others]
    if is_best and sig == len(others) and not absent:
        verdict = "confirmed"
    elif is_best:
        verdict = "partly"
    else:
        verdict = "not confirmed"
    evidence = (f"Lowest cell: {cell_label(*best_key)}, {t1[best_key].mean:.2f}%. LeNet5_FullyConv best "
                f"{fc[fc_key].mean:.2f}% vs {_pairs_text(items)}."
                + (f" Models with no complete cell: {', '.join(absent)}." if absent else ""))
    return Claim("LeNet5_FullyConv best", "LeNet5_FullyConv is the best model (3.629% with weight sharing and "
                 "auxiliary loss).", rule, verdict, evidence)


def claim_resnet(stats) -> Claim:
    rule = (f"With weight sharing and auxiliary loss ResNet's error is lower than LeNet5's (p<{ALPHA_EFFECT}) by at "
            "most 2 points, and its mean training time is longer in every Table I setting.")
    r = _compare(stats, ("table1", ("LeNet5", True, True)), ("table1", ("ResNet", True, True)))
    ratios, items = [], []
    for ws in (False, True):
        for aux in (False, True):
            a, b = stats.get(("table1", ("ResNet", ws, aux))), stats.get(("table1", ("LeNet5", ws, aux)))
            if a and b and math.isfinite(a.seconds) and math.isfinite(b.seconds) and b.seconds > 0:
                ratios.append(a.seconds / b.seconds)
                items.append(f"WS {yesno(ws)}, aux {yesno(aux)}: {a.seconds:.0f} s vs {b.seconds:.0f} s")
    if r is None and not ratios:
        return Claim("ResNet vs LeNet5", "ResNet is slightly better than LeNet5 but much slower to train.", rule,
                     "not evaluable", "ResNet or LeNet5 cells are missing.")
    parts, ok = [], 0
    if r is not None:
        d, p = r
        better = d > 0 and p < ALPHA_EFFECT and d <= 2
        ok += better
        parts.append(f"LeNet5 minus ResNet error with weight sharing and auxiliary loss: {d:+.2f} points "
                     f"(p={_fmt_p(p)}): ResNet {'is' if better else 'is not'} slightly better.")
    else:
        parts.append("The weight-sharing + auxiliary-loss cells are not both complete.")
    if ratios:
        slower = all(x > 1 for x in ratios)
        ok += slower
        parts.append(f"Mean training time per run, ResNet vs LeNet5 ({_pairs_text(items)}): ResNet takes "
                     f"{min(ratios):.1f}-{max(ratios):.1f}x as long.")
    else:
        parts.append("No training times to compare (training time not evaluated).")
    checked = (r is not None) + bool(ratios)
    verdict = "confirmed" if ok == checked else ("partly" if ok else "not confirmed")
    return Claim("ResNet vs LeNet5", "ResNet is slightly better than LeNet5 but much slower to train, with about the "
                 "same number of parameters.", rule, verdict, " ".join(parts))


def _table2_claim(stats, name, paper, flag_index, better_when) -> Claim:
    rows, items = [], []
    others = [(a, b) for a in (False, True) for b in (False, True)]
    for a, b in others:
        def key(flag):
            k = [a, b]
            k.insert(flag_index, flag)
            return ("table2", tuple(k))
        worse, better = (key(not better_when), key(better_when))
        r = _compare(stats, worse, better)
        if r is None:
            continue
        rows.append(r)
        fixed = [n for i, n in enumerate(("WS", "BN", "dropout")) if i != flag_index]
        items.append(f"{fixed[0]} {yesno(a)}, {fixed[1]} {yesno(b)}: {r[0]:+.2f} (p={_fmt_p(r[1])})")
    verdict, s, _ = _direction_verdict(rows, 4)
    what = "with" if better_when else "without"
    evidence = (f"Error gain {what} {name.lower()}, points: {_pairs_text(items)}; significant (p<{ALPHA_EFFECT}) in {s} "
                f"of {len(rows)}." + _availability(len(rows), 4)) if rows else "Table II cells are missing."
    return Claim(name + (" helps" if better_when else " hurts"), paper,
                 f"In each of the four Table II settings of the other two switches, the error is lower {what} "
                 f"{name.lower()} (p<{ALPHA_EFFECT}).", verdict, evidence)


def claim_batch_norm(stats) -> Claim:
    return _table2_claim(stats, "Batch norm", "Batch normalisation after the convolutional layers improves LeNet5.",
                         1, True)


def claim_dropout(stats) -> Claim:
    return _table2_claim(stats, "Dropout", "Dropout deteriorates LeNet5's accuracy.", 2, False)


CLAIMS = (claim_aux_loss, claim_weight_sharing, claim_net_vs_lenet5, claim_fullyconv_best, claim_resnet,
          claim_batch_norm, claim_dropout)


def evaluate_claims(stats) -> list[Claim]:
    return [f(stats) for f in CLAIMS]


# --- provenance --------------------------------------------------------------------------------

def load_timings(runs_dir) -> dict | None:
    path = Path(runs_dir) / "timings.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
