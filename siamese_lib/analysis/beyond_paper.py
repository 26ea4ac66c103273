"""Reading the beyond-the-paper stage: its tables, the three comparison rules, ensembles, the choice.

Fairness rule: ``select_best`` ranks on ``val_*`` columns only and refuses ``test_*`` ones; the test
pairs give the final numbers, once.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..experiments.variants import BASELINE, REFITS, VARIANTS
from ..store import find_record, report_to_stderr
from .stats import FDR, bh_adjust, mean_std_n, welch_p

# The paper's best (Table I): LeNet5_FullyConv, weight sharing + auxiliary loss, 10 seeds.
PAPER_BEST = {"label": "paper: LeNet5_FullyConv", "mean": 3.629, "std": 0.748, "n": 10}
RULES = {"head": "error", "digits": "derived_error", "digit_prob": "digit_prob_error"}
RULE_LABELS = {
    "head": "learned head",
    "digits": "argmax digits, d1 <= d2",
    "digit_prob": "exact P(d1 <= d2) from the two softmaxes",
}
OUTPUT_COLUMNS = ("head_prob", "digit_prob", "digit1_pred", "digit2_pred")


# --- reading the stage's records --------------------------------------------------


def load_beyond_paper(executions, store_dir, missing="raise"):
    """One row per run of the beyond_paper stage's executions (a plan's): model, variant, seed, metrics, outputs.

    Records are matched exactly (by run key) to the planned configurations.
    ``missing``: "raise" (default) names how many runs are absent; "skip" leaves them out.
    """
    rows, absent = [], []
    for ex in (e for e in executions if e.stage == "beyond_paper"):
        for config in ex.configs():
            # a bad record is reported on stderr and counts as absent (store.load_records does the same)
            record = find_record(store_dir, config, "cpu", report_to_stderr) or find_record(
                store_dir, config, "cuda", report_to_stderr
            )
            if record is None:
                absent.append(f"{ex.name} seed {config.seed}")
                continue
            rows.append(record_row(record, ex.parameters["variant"]))
    if absent and missing == "raise":
        raise LookupError(
            f"{len(absent)} beyond-the-paper runs are not in {store_dir} (first: {absent[0]}); "
            f"run the profile's beyond_paper stage first"
        )
    return pd.DataFrame(rows)


def record_row(record: dict, variant: str) -> dict:
    """A flat row: the configuration, the variant's name, the metrics and the per-test-pair outputs."""
    row = {
        **record["config"],
        **record["metrics"],
        "variant": variant,
        "key": record["key"],
        "device": record["device"],
    }
    row["augment"] = ",".join(record["config"].get("augment", []))
    for k in OUTPUT_COLUMNS:
        row[k] = record["outputs"][k]
    row.update({k: v for k, v in record["outputs"].items() if k.startswith("confirm_")})
    return row


def _ordered(df, keys=("model", "variant")):
    """Groups in VARIANTS order (then name) so tables read like the stage's list."""
    order = {v: i for i, v in enumerate(VARIANTS)}
    groups = sorted(
        df.groupby(list(keys), sort=False), key=lambda g: (g[0][0], order.get(g[0][1], len(order)), g[0][1])
    )
    return groups


def table3(df, baseline: str = BASELINE, metric: str = "test_error", paper: dict = PAPER_BEST):
    """Table IX of the report: per (model, variant), mean +- std over seeds, n, and Welch p-values
    against the paper's best (summary numbers) and against our baseline variant of the same model.

    ``metric`` picks the comparison rule: test_error (head), test_derived_error, test_digit_prob_error.
    """
    base = {m: mean_std_n(g[metric]) for m, g in df[df["variant"] == baseline].groupby("model")}
    rows = []
    for (model, variant), g in _ordered(df):
        mean, std, n = mean_std_n(g[metric])
        bm, bs, bn = base.get(model, (math.nan, math.nan, 0))
        rows.append(
            {
                "model": model,
                "variant": variant,
                "description": VARIANTS.get(variant, {}).get("description", ""),
                "mean": mean,
                "std": std,
                "n": n,
                "vs_paper": mean - paper["mean"],
                "p_vs_paper": welch_p(mean, std, n, paper["mean"], paper["std"], paper["n"]),
                "vs_baseline": mean - bm if variant != baseline else math.nan,
                "p_vs_baseline": welch_p(mean, std, n, bm, bs, bn) if variant != baseline else math.nan,
            }
        )
    return pd.DataFrame(rows)


def ablation_frame(df):
    """The runs of the best recipe's ablation (LeNet5, variants 'best*', refits left out); empty without one."""
    ab = df[
        (df["model"] == "LeNet5")
        & df["variant"].str.startswith("best")
        & ~df["variant"].isin(list(REFITS.values()))
    ]
    return ab if "best" in set(ab["variant"]) and len(set(ab["variant"])) > 1 else ab.iloc[0:0]


def tested_against_baseline(df) -> pd.DataFrame:
    """Every difference test of the stage, as one family: each variant against our baseline of the same model
    (Table IX, both rules; the best recipe's variants left to the ablation) and each ablation against the whole
    recipe; with Benjamini-Hochberg adjusted p-values (q) and ``effect`` where q < FDR."""
    parts = []
    for metric in ("test_error", "test_digit_prob_error"):
        t = table3(df, metric=metric)
        parts.append(
            t[~t["variant"].str.startswith("best") & ~t["variant"].isin(list(REFITS.values()))].assign(
                metric=metric, baseline=BASELINE
            )
        )
    ab = ablation_frame(df)
    if len(ab):
        parts.append(
            table3(ab, baseline="best", metric="test_digit_prob_error").assign(
                metric="test_digit_prob_error", baseline="best"
            )
        )
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


# --- ensembles ----------------------------------------------------------------------


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
    nb, ds = int(g["nb_pairs"].iloc[0]), int(g["data_seed"].iloc[0])
    return test_truth(nb, ds)


def ensemble_predictions(g):
    """Per test pair, averaged over the rows (seeds): head prob, digit prob, and the vote of the argmax rule."""
    head = np.mean(np.array(list(g["head_prob"]), dtype=float), axis=0)
    prob = np.mean(np.array(list(g["digit_prob"]), dtype=float), axis=0)
    derived = np.array(list(g["digit1_pred"])) <= np.array(list(g["digit2_pred"]))
    vote = derived.mean(axis=0)
    return {"head": head, "digit_prob": prob, "digits_vote": vote}


def ensemble_errors(df, truth=None):
    """Error (%) of the ensemble of each (model, variant)'s seeds: the averaged probability (or the
    share of votes) > 0.5 predicts d1 <= d2. ``se`` is the binomial standard error over test pairs.

    ``truth``: (target, classes) of the test pairs; default: regenerated from nb_pairs and data_seed.
    """
    rows = []
    for (model, variant), g in _ordered(df):
        target = np.asarray(_truth_for(g, truth)[0])
        ens = ensemble_predictions(g)
        row = {"model": model, "variant": variant, "n_seeds": len(g)}
        for name, p in ens.items():
            err = float(np.mean((p > 0.5).astype(int) != target))
            row[f"{name}_error"] = 100 * err
            row[f"{name}_se"] = 100 * math.sqrt(err * (1 - err) / len(target))
        row["mean_single_head_error"] = float(g["test_error"].mean()) if "test_error" in g else math.nan
        row["mean_single_digit_prob_error"] = (
            float(g["test_digit_prob_error"].mean()) if "test_digit_prob_error" in g else math.nan
        )
        rows.append(row)
    return pd.DataFrame(rows)


# --- model choice (fairness rule) ----------------------------------------------------


def select_best(
    df, metrics=("val_error", "val_derived_error", "val_digit_prob_error"), by=("model", "variant")
):
    """The (group, rule) with the lowest mean validation error, and only then its test numbers.

    Raises ValueError if any ranking column is not a validation column (fairness rule: the
    test pairs never take part in a choice) or if no run has validation metrics.
    Returns a dict: the group's keys, metric, val_mean, and test_metric with test_mean, test_std, n.
    """
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    bad = [m for m in metrics if not str(m).startswith("val_")]
    if bad:
        raise ValueError(
            f"select_best ranks on validation columns only (val_*), got {bad}: "
            "the test pairs are used once, for the final numbers"
        )
    missing = [m for m in metrics if m not in df]
    if missing:
        raise ValueError(f"no validation metrics {missing} in the runs: train with val_pairs > 0")
    best = None
    for keys, g in df.groupby(list(by), sort=True):
        for m in metrics:
            mean, _, n = mean_std_n(g[m])
            if n and (best is None or mean < best[0]):
                best = (mean, keys, m)
    if best is None:
        raise ValueError("no run has validation metrics: train with val_pairs > 0")
    val_mean, keys, m = best
    keys = keys if isinstance(keys, tuple) else (keys,)
    g = df
    for k, v in zip(by, keys):
        g = g[g[k] == v]
    test_metric = "test_" + m[len("val_") :]
    t_mean, t_std, n = mean_std_n(g[test_metric])
    return {
        **dict(zip(by, keys)),
        "metric": m,
        "val_mean": val_mean,
        "test_metric": test_metric,
        "test_mean": t_mean,
        "test_std": t_std,
        "n": n,
    }


# --- digit errors that flip the comparison --------------------------------------------


def flip_confusion(df, model: str, variant: str, truth=None):
    """10 x 10 counts (true digit -> predicted digit), over all seeds of (model, variant), of the digit
    errors that alone flip the comparison: with the other image's true class, the predicted digit
    gives the other answer to d1 <= d2.
    """
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


# --- the auxiliary weight ---------------------------------------------------------------


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


# --- for the report ----------------------------------------------------------------------


def best_summary(df, truth=None) -> dict:
    """The configuration chosen on validation (select_best), its final test numbers and its ensemble
    (with the chosen rule), plus a one-paragraph text for the report."""
    choice = select_best(df)
    rule = next(r for r, suffix in RULES.items() if choice["metric"] == f"val_{suffix}")
    g = df[(df["model"] == choice["model"]) & (df["variant"] == choice["variant"])]
    ens = ensemble_errors(g, truth).iloc[0]
    ens_error = ens[
        {"head": "head_error", "digits": "digits_vote_error", "digit_prob": "digit_prob_error"}[rule]
    ]
    text = (
        f"Chosen on the validation splits alone: {choice['model']}, variant `{choice['variant']}` "
        f"({VARIANTS.get(choice['variant'], {}).get('description', '')}), rule: {RULE_LABELS[rule]} "
        f"(validation error {choice['val_mean']:.2f} %). On the test pairs, scored once: "
        f"{choice['test_mean']:.2f} ± {choice['test_std']:.2f} % over {choice['n']} seeds; the ensemble of "
        f"those {int(ens['n_seeds'])} runs: {ens_error:.2f} %. The paper's best: {PAPER_BEST['mean']} ± "
        f"{PAPER_BEST['std']} % (n = {PAPER_BEST['n']})."
    )
    return {**choice, "rule": rule, "ensemble_error": float(ens_error), "text": text}
