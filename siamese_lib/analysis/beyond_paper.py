"""The beyond-the-paper stage: its tables, the three comparison rules, ensembles, the choice on validation."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..experiments.selection import choose
from ..experiments.variants import BASELINE, REFITS, VARIANTS
from ..store import find_record, report_to_stderr
from .stats import FDR, bh_adjust, mean_std_n, welch_p
from .tables import PAPER_BEST, records_frame

RULES = {"head": "error", "digits": "derived_error", "digit_prob": "digit_prob_error"}
RULE_LABELS = {
    "head": "learned head",
    "digits": "argmax digits, d1 <= d2",
    "digit_prob": "exact P(d1 <= d2) from the two softmaxes",
}


def runs_frame(records, name: str):
    """records_frame of the runs with their per-pair outputs, and ``variant``: the stage's name for them."""
    return records_frame(records, outputs=True).assign(variant=name)


def load_beyond_paper(executions, store_dir, missing="raise"):
    """One row per planned run of the beyond_paper stage (runs_frame); ``missing``: "raise" names how many
    runs are absent, "skip" leaves them out."""
    frames, absent = [], []
    for ex in (e for e in executions if e.stage == "beyond_paper"):
        records = [(c, find_record(store_dir, c, report=report_to_stderr)) for c in ex.configs()]
        absent += [f"{ex.name} seed {c.seed}" for c, r in records if r is None]
        frames.append(runs_frame([r for _, r in records if r is not None], ex.parameters["variant"]))
    if absent and missing == "raise":
        raise LookupError(
            f"{len(absent)} beyond-the-paper runs are not in {store_dir} (first: {absent[0]}); "
            f"run the profile's beyond_paper stage first"
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _ordered(df, keys=("model", "variant")):
    """Groups in VARIANTS order (then name) so tables read like the stage's list."""
    order = {v: i for i, v in enumerate(VARIANTS)}
    groups = df.groupby(list(keys), sort=False)
    return sorted(groups, key=lambda g: (g[0][0], order.get(g[0][1], len(order)), g[0][1]))


def table3(df, baseline: str = BASELINE, metric: str = "test_error", paper: dict = PAPER_BEST):
    """Table IX: per (model, variant) the ``metric`` (a rule's test error) over seeds, with Welch p-values
    against the paper's best and against our baseline variant of the same model."""
    base = {m: mean_std_n(g[metric]) for m, g in df[df["variant"] == baseline].groupby("model")}
    rows = []
    for (model, variant), g in _ordered(df):
        mean, std, n = mean_std_n(g[metric])
        bm, bs, bn = base.get(model, (math.nan, math.nan, 0))
        row = dict(model=model, variant=variant, description=VARIANTS.get(variant, {}).get("description", ""))
        row.update(mean=mean, std=std, n=n, vs_paper=mean - paper["mean"])
        row["p_vs_paper"] = welch_p(mean, std, n, paper["mean"], paper["std"], paper["n"])
        own = variant == baseline
        row["vs_baseline"] = math.nan if own else mean - bm
        row["p_vs_baseline"] = math.nan if own else welch_p(mean, std, n, bm, bs, bn)
        rows.append(row)
    return pd.DataFrame(rows)


def ablation_frame(df):
    """The runs of the best recipe's ablation (LeNet5, variants 'best*' but refits); empty without one."""
    refit = df["variant"].isin(list(REFITS.values()))
    ab = df[(df["model"] == "LeNet5") & df["variant"].str.startswith("best") & ~refit]
    return ab if "best" in set(ab["variant"]) and len(set(ab["variant"])) > 1 else ab.iloc[0:0]


def tested_against_baseline(df) -> pd.DataFrame:
    """Every difference test of the stage as one family (each variant against its model's baseline, each
    ablation against the whole recipe), with Benjamini-Hochberg adjusted p-values (q); ``effect``: q < FDR."""
    parts = []
    for metric in ("test_error", "test_digit_prob_error"):
        t = table3(df, metric=metric)
        keep = ~t["variant"].str.startswith("best") & ~t["variant"].isin(list(REFITS.values()))
        parts.append(t[keep].assign(metric=metric, baseline=BASELINE))
    ab = ablation_frame(df)
    if len(ab):
        t = table3(ab, baseline="best", metric="test_digit_prob_error")
        parts.append(t.assign(metric="test_digit_prob_error", baseline="best"))
    out = pd.concat(parts, ignore_index=True)
    out = out[out["p_vs_baseline"].notna()].reset_index(drop=True)
    out["q_vs_baseline"] = bh_adjust(out["p_vs_baseline"])
    out["effect"] = out["q_vs_baseline"] < FDR
    return out


def rules_table(df, split: str = "test"):
    """The three comparison rules per (model, variant): mean and std of the error over seeds."""
    rows = []
    for (model, variant), g in _ordered(df):
        row = {"model": model, "variant": variant, "n": len(g)}
        for rule, suffix in RULES.items():
            mean, std, _ = mean_std_n(g[f"{split}_{suffix}"]) if f"{split}_{suffix}" in g else (math.nan,) * 3
            row[f"{rule}_mean"], row[f"{rule}_std"] = mean, std
        rows.append(row)
    return pd.DataFrame(rows)


@functools.lru_cache(maxsize=4)
def test_truth(nb_pairs: int, data_seed: int, pairs=None):
    """(target [n], classes [n, 2]) of the test pairs, as lists: read from ``pairs`` (a pairs.parquet holding
    them, as the runner writes beside the store: no torch), else drawn again by the prologue."""
    if pairs is not None and Path(pairs).is_file():
        keep = [("set", "==", "test"), ("nb_pairs", "==", nb_pairs), ("data_seed", "==", data_seed)]
        t = pd.read_parquet(pairs, columns=["target", "digit1", "digit2"], filters=keep)  # in pair order
        if len(t):
            return t["target"].tolist(), t[["digit1", "digit2"]].values.tolist()
    from ..data import generate_pair_sets  # torch: only here

    *_, te_t, te_c = generate_pair_sets(nb_pairs, seed=data_seed)
    return te_t.tolist(), te_c.tolist()


def _truth_for(g, truth):
    if truth is not None:
        return truth
    return test_truth(int(g["nb_pairs"].iloc[0]), int(g["data_seed"].iloc[0]))


def ensemble_wrong(outputs, target) -> np.ndarray:
    """Per pair, whether the ensemble is wrong: the runs' ``outputs`` averaged, > 0.5 predicting d1 <= d2."""
    return (np.mean(np.stack([np.asarray(o) for o in outputs]), axis=0) > 0.5) != np.asarray(target)


def ensemble_errors(df, truth=None):
    """Error (%) of the ensemble of each (model, variant)'s seeds per rule (argmax rule: the share of votes),
    ``se`` its binomial standard error over test pairs. ``truth``: (target, classes), default regenerated."""
    rows = []
    for (model, variant), g in _ordered(df):
        target = _truth_for(g, truth)[0]
        votes = [np.asarray(a) <= np.asarray(b) for a, b in zip(g["digit1_pred"], g["digit2_pred"])]
        row = {"model": model, "variant": variant, "n_seeds": len(g)}
        for name, outputs in {
            "head": g["head_prob"],
            "digit_prob": g["digit_prob"],
            "digits_vote": votes,
        }.items():
            err = float(np.mean(ensemble_wrong(outputs, target)))
            row[f"{name}_error"] = 100 * err
            row[f"{name}_se"] = 100 * math.sqrt(err * (1 - err) / len(target))
        for rule in ("head", "digit_prob"):
            column = f"test_{RULES[rule]}"
            row[f"mean_single_{rule}_error"] = float(g[column].mean()) if column in g else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def chosen(df) -> dict:
    """The (model, variant, rule) with the lowest mean validation error (experiments.selection.choose: test
    columns refused), then its test numbers (test_mean, test_std, n)."""
    groups = dict(list(df.groupby(["model", "variant"], sort=True)))
    columns = [f"val_{suffix}" for suffix in RULES.values() if f"val_{suffix}" in df]
    scores = [{"candidate": k, "column": c, "values": list(g[c])} for k, g in groups.items() for c in columns]
    choice = choose(scores)
    (model, variant), metric = choice["candidate"], choice["column"]
    test_metric = "test_" + metric.removeprefix("val_")
    t_mean, t_std, n = mean_std_n(groups[model, variant][test_metric])
    out = dict(model=model, variant=variant, metric=metric, val_mean=choice["mean"], test_metric=test_metric)
    return dict(out, test_mean=t_mean, test_std=t_std, n=n)


def flip_confusion(df, model: str, variant: str, truth=None):
    """10 x 10 counts (true digit -> predicted digit) over all seeds of (model, variant) of the digit errors
    that alone flip the comparison: with the other image's true class, the answer to d1 <= d2 changes."""
    g = df[(df["model"] == model) & (df["variant"] == variant)]
    if g.empty:
        raise ValueError(f"no runs of model {model!r}, variant {variant!r}")
    classes = np.asarray(_truth_for(g, truth)[1])
    c1, c2 = classes[:, 0], classes[:, 1]
    counts = np.zeros((10, 10), dtype=int)
    for p1, p2 in zip(g["digit1_pred"], g["digit2_pred"]):
        p1, p2 = np.asarray(p1), np.asarray(p2)
        flip1 = (p1 != c1) & ((p1 <= c2) != (c1 <= c2))
        flip2 = (p2 != c2) & ((c1 <= p2) != (c1 <= c2))
        np.add.at(counts, (c1[flip1], p1[flip1]), 1)
        np.add.at(counts, (c2[flip2], p2[flip2]), 1)
    idx = pd.Index(range(10), name="true digit")
    return pd.DataFrame(counts, index=idx, columns=pd.Index(range(10), name="predicted digit"))


def aux_weight_frame(df, metrics=("test_error", "test_digit_prob_error")):
    """Mean and std per (model, aux weight) over the variants that change nothing but the weight
    (constant schedule), plus the linear-decay variant (schedule 'linear_decay')."""
    plain = df[(df["weight_decay"] == 0) & (df["l1"] == 0) & (df["augment"] == "")]
    base_epochs = plain[plain["variant"] == BASELINE].groupby("model")["epochs"].first()
    rows = []
    for (model, w, schedule), g in plain.groupby(["model", "aux_weight", "aux_schedule"]):
        if model in base_epochs and (g["epochs"] != base_epochs[model]).any():
            continue
        row = {"model": model, "aux_weight": w, "schedule": schedule, "n": len(g)}
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_std"], _ = mean_std_n(g[m])
        rows.append(row)
    return pd.DataFrame(rows)


def best_summary(df, truth=None) -> dict:
    """The configuration chosen on validation (``chosen``), its test numbers, its ensemble's error under the
    chosen rule, and a paragraph for the report."""
    choice = chosen(df)
    rule = next(r for r, suffix in RULES.items() if choice["metric"] == f"val_{suffix}")
    g = df[(df["model"] == choice["model"]) & (df["variant"] == choice["variant"])]
    ens = ensemble_errors(g, truth).iloc[0]
    column = {"head": "head_error", "digits": "digits_vote_error", "digit_prob": "digit_prob_error"}[rule]
    ens_error = ens[column]
    text = (
        f"Chosen on the validation splits alone: {choice['model']}, variant `{choice['variant']}` "
        f"({VARIANTS.get(choice['variant'], {}).get('description', '')}), rule: {RULE_LABELS[rule]} "
        f"(validation error {choice['val_mean']:.2f} %). On the test pairs, scored once: "
        f"{choice['test_mean']:.2f} ± {choice['test_std']:.2f} % over {choice['n']} seeds; the ensemble of "
        f"those {int(ens['n_seeds'])} runs: {ens_error:.2f} %. The paper's best: {PAPER_BEST['mean']} ± "
        f"{PAPER_BEST['std']} % (n = {PAPER_BEST['n']})."
    )
    return {**choice, "rule": rule, "ensemble_error": float(ens_error), "text": text}
