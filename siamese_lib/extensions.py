"""Beyond the paper: its further work (auxiliary-loss weighting, L1/L2) and public tricks.

The paper's setting stays the base; each variant changes a few RunConfig fields
(``VARIANTS``). The analysis helpers below read the stage's records and give
Table IX of the report (the extensions table), the three comparison rules, the ensembles of the seeds, the figure of
error against the auxiliary weight and the confusion of the digit errors that flip
the comparison.

Fairness rule: only the training pairs (their 2000 images and labels) train and
choose; every variant holds out a validation split carved from them (``val_pairs``,
drawn per seed from the fold's shuffle); ``select_best`` ranks on ``val_*`` columns
only and refuses ``test_*`` ones. The test pairs give the final numbers, once.
"""
from __future__ import annotations

import math

from .analysis import welch_p
from .training import RunConfig

VAL_FRACTION = 0.2  # of the training pairs, held out per seed for model choice (200 of the paper's 1000)
# The paper's best (Table I): LeNet5_FullyConv, weight sharing + auxiliary loss, 10 seeds.
PAPER_BEST = {"label": "paper: LeNet5_FullyConv", "mean": 3.629, "std": 0.748, "n": 10}
RULES = {"head": "error", "digits": "derived_error", "digit_prob": "digit_prob_error"}
RULE_LABELS = {"head": "learned head", "digits": "argmax digits, d1 <= d2",
               "digit_prob": "exact P(d1 <= d2) from the two softmaxes"}
AUG_ALL = ("repair", "swap", "shift")

# name -> description and RunConfig overrides. Augmentations use only the trained-on pairs:
# repair draws new pairs from any two of their digits (target from the classes), swap exchanges the
# two images of a pair (target recomputed), shift moves each image by up to one pixel, affine rotates
# (up to 12 degrees), rescales (up to 10 %) and moves (up to 1.5 pixels) each image.
VARIANTS = {
    "baseline": {"description": "the paper's setting (aux weight 1, no penalty, no augmentation)",
                 "overrides": {}},
    "aux_w0": {"description": "auxiliary weight 0: the comparison loss alone",
               "overrides": {"aux_weight": 0.0}},
    "aux_w0_3": {"description": "auxiliary weight 0.3", "overrides": {"aux_weight": 0.3}},
    "aux_w3": {"description": "auxiliary weight 3", "overrides": {"aux_weight": 3.0}},
    "aux_decay": {"description": "auxiliary weight decaying linearly from 1 (first epoch) to 0 (last)",
                  "overrides": {"aux_schedule": "linear_decay"}},
    "l2_1e_4": {"description": "L2: Adam weight decay 1e-4", "overrides": {"weight_decay": 1e-4}},
    "l2_1e_3": {"description": "L2: Adam weight decay 1e-3", "overrides": {"weight_decay": 1e-3}},
    "l1_1e_5": {"description": "L1: 1e-5 x sum of |parameters| added to the loss", "overrides": {"l1": 1e-5}},
    "l1_1e_4": {"description": "L1: 1e-4 x sum of |parameters| added to the loss", "overrides": {"l1": 1e-4}},
    "aug_repair": {"description": "re-pairing: new pairs from any two training digits",
                   "overrides": {"augment": ("repair",)}},
    "aug_swap": {"description": "swapping the two images of a pair", "overrides": {"augment": ("swap",)}},
    "aug_shift": {"description": "shifts of up to one pixel", "overrides": {"augment": ("shift",)}},
    "aug_all": {"description": "re-pairing + swapping + shifts", "overrides": {"augment": AUG_ALL}},
}
# The recipe for a new best, fixed from small explorations (LeNet5, seeds 1-3) judged on the
# validation splits: augmentation that draws on all 1600 trained-on digits, a cosine learning-rate
# decay and 100 epochs, with the exact digit-probability rule. Each "best_no_*" variant removes one
# ingredient, so the report's Table XI shows what each is worth. Defined on LeNet5 only ("models").
BEST_RECIPE = {"augment": ("repair", "swap", "affine"), "lr": 2e-3, "lr_schedule": "cosine", "epochs": 100}
VARIANTS.update({
    "best": {"description": "re-pairing + swapping + small affine moves, Adam lr 2e-3 with cosine decay, "
                            "100 epochs", "overrides": BEST_RECIPE, "models": ("LeNet5",)},
    "best_no_repair": {"description": "best without re-pairing",
                       "overrides": {**BEST_RECIPE, "augment": ("swap", "affine")}, "models": ("LeNet5",)},
    "best_no_swap": {"description": "best without swapping",
                     "overrides": {**BEST_RECIPE, "augment": ("repair", "affine")}, "models": ("LeNet5",)},
    "best_no_affine": {"description": "best without the affine moves",
                       "overrides": {**BEST_RECIPE, "augment": ("repair", "swap")}, "models": ("LeNet5",)},
    "best_constant_lr": {"description": "best with a constant learning rate",
                         "overrides": {**BEST_RECIPE, "lr_schedule": "constant"}, "models": ("LeNet5",)},
    "best_30_epochs": {"description": "best trained 30 epochs (the paper's length)",
                       "overrides": {**BEST_RECIPE, "epochs": 30}, "models": ("LeNet5",)},
    # Once the recipe is chosen on validation, the usual last step: train it again on all the training
    # pairs (no split held out, so nothing left to choose with). Same settings, nothing tuned.
    "best_refit": {"description": "best, refit on all the training pairs (no validation split)",
                   "overrides": {**BEST_RECIPE, "val_pairs": 0}, "models": ("LeNet5",)},
})
REFITS = {"best": "best_refit"}  # a chosen variant -> its refit on all the training pairs
BASELINE = "baseline"
OUTPUT_COLUMNS = ("head_prob", "digit_prob", "digit1_pred", "digit2_pred")


def val_pairs_for(nb_pairs: int) -> int:
    """The validation split's size: VAL_FRACTION of the training pairs, at least 1 and leaving 1 to train."""
    return min(max(1, round(VAL_FRACTION * nb_pairs)), nb_pairs - 1) if nb_pairs > 1 else 0


def applies_to(variant: str, model: str) -> bool:
    """Whether a variant is defined for the model (most are; the best recipe's are LeNet5's)."""
    return model in VARIANTS[variant].get("models", (model,))


def variant_configs(variant, model, lr, seeds, nb_pairs, data_seed, batch_size, epochs) -> list[RunConfig]:
    """One RunConfig per seed: the paper's setting (corrected protocol), a validation split, and the
    variant's overrides (which may replace the learning rate: see the variant's description)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    spec = VARIANTS[variant]
    if model not in spec.get("models", (model,)):
        raise ValueError(f"variant {variant!r} is defined for {', '.join(spec['models'])} only, not {model}")
    fields = dict(model=model, lr=lr, nb_pairs=nb_pairs, data_seed=data_seed, batch_size=batch_size,
                  epochs=epochs, protocol="corrected",
                  val_pairs=val_pairs_for(nb_pairs))
    fields.update(spec["overrides"])
    return [RunConfig(**fields, seed=s) for s in seeds]


# --- reading the stage's records --------------------------------------------------

def load_extensions(profile="paper", store_dir=None, missing="raise"):
    """One row per run of the profile's extensions stage: model, variant, seed, metrics, test outputs.

    Records are matched exactly (by run key) to the configurations the profile expands to.
    ``missing``: "raise" (default) names how many runs are absent; "skip" leaves them out.
    """
    import pandas as pd
    from .profiles import ROOT, Profile, expand, load_profile
    from .store import find_record

    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    store_dir = store_dir or ROOT / "runs" / prof.name / "store"
    rows, absent = [], []
    for ex in expand(prof, store_dir, device="cpu", stages=("extensions",)):
        for config in ex.configs():
            record = find_record(store_dir, config, "cpu") or find_record(store_dir, config, "cuda")
            if record is None:
                absent.append(f"{ex.name} seed {config.seed}")
                continue
            rows.append(record_row(record, ex.parameters["variant"]))
    if absent and missing == "raise":
        raise LookupError(f"{len(absent)} extension runs are not in {store_dir} (first: {absent[0]}); "
                          f"run the profile's extensions stage first")
    return pd.DataFrame(rows)


def record_row(record: dict, variant: str) -> dict:
    """A flat row: the configuration, the variant's name, the metrics and the per-test-pair outputs."""
    row = {**record["config"], **record["metrics"], "variant": variant, "key": record["key"],
           "device": record["device"]}
    row["augment"] = ",".join(record["config"].get("augment", []))
    for k in OUTPUT_COLUMNS:
        row[k] = record["outputs"][k]
    return row


def _stats(values):
    values = [float(v) for v in values if v == v]  # NaN-free
    n = len(values)
    mean = sum(values) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std, n


def _ordered(df, keys=("model", "variant")):
    """Groups in VARIANTS order (then name) so tables read like the stage's list."""
    order = {v: i for i, v in enumerate(VARIANTS)}
    groups = sorted(df.groupby(list(keys), sort=False), key=lambda g: (g[0][0], order.get(g[0][1], len(order)),
                                                                        g[0][1]))
    return groups


def table3(df, baseline: str = BASELINE, metric: str = "test_error", paper: dict = PAPER_BEST):
    """Table IX of the report: per (model, variant), mean +- std over seeds, n, and Welch p-values
    against the paper's best (summary numbers) and against our baseline variant of the same model.

    ``metric`` picks the comparison rule: test_error (head), test_derived_error, test_digit_prob_error.
    """
    import pandas as pd
    base = {m: _stats(g[metric]) for m, g in df[df["variant"] == baseline].groupby("model")}
    rows = []
    for (model, variant), g in _ordered(df):
        mean, std, n = _stats(g[metric])
        bm, bs, bn = base.get(model, (math.nan, math.nan, 0))
        rows.append({"model": model, "variant": variant,
                     "description": VARIANTS.get(variant, {}).get("description", ""),
                     "mean": mean, "std": std, "n": n,
                     "vs_paper": mean - paper["mean"],
                     "p_vs_paper": welch_p(mean, std, n, paper["mean"], paper["std"], paper["n"]),
                     "vs_baseline": mean - bm if variant != baseline else math.nan,
                     "p_vs_baseline": welch_p(mean, std, n, bm, bs, bn) if variant != baseline else math.nan})
    return pd.DataFrame(rows)


def rules_table(df, split: str = "test"):
    """The three comparison rules per (model, variant): mean and std of the error over seeds."""
    import pandas as pd
    rows = []
    for (model, variant), g in _ordered(df):
        row = {"model": model, "variant": variant, "n": len(g)}
        for rule, suffix in RULES.items():
            mean, std, _ = _stats(g[f"{split}_{suffix}"]) if f"{split}_{suffix}" in g else (math.nan,) * 3
            row[f"{rule}_mean"], row[f"{rule}_std"] = mean, std
        rows.append(row)
    return pd.DataFrame(rows)


# --- ensembles ----------------------------------------------------------------------

def test_truth(nb_pairs: int, data_seed: int):
    """(target [n], classes [n, 2]) of the test pairs, as lists, from the prologue's pairs."""
    from .data import generate_pair_sets
    *_, te_t, te_c = generate_pair_sets(nb_pairs, seed=data_seed)
    return te_t.tolist(), te_c.tolist()


def _truth_for(g, truth):
    if truth is not None:
        return truth
    nb, ds = int(g["nb_pairs"].iloc[0]), int(g["data_seed"].iloc[0])
    return test_truth(nb, ds)


def ensemble_predictions(g):
    """Per test pair, averaged over the rows (seeds): head prob, digit prob, and the vote of the argmax rule."""
    import numpy as np
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
    import numpy as np
    import pandas as pd
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
        row["mean_single_digit_prob_error"] = (float(g["test_digit_prob_error"].mean())
                                               if "test_digit_prob_error" in g else math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


# --- model choice (fairness rule) ----------------------------------------------------

def select_best(df, metrics=("val_error", "val_derived_error", "val_digit_prob_error"), by=("model", "variant")):
    """The (group, rule) with the lowest mean validation error, and only then its test numbers.

    Raises ValueError if any ranking column is not a validation column (fairness rule: the
    test pairs never take part in a choice) or if no run has validation metrics.
    Returns a dict: the group's keys, metric, val_mean, and test_metric with test_mean, test_std, n.
    """
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    bad = [m for m in metrics if not str(m).startswith("val_")]
    if bad:
        raise ValueError(f"select_best ranks on validation columns only (val_*), got {bad}: "
                         "the test pairs are used once, for the final numbers")
    missing = [m for m in metrics if m not in df]
    if missing:
        raise ValueError(f"no validation metrics {missing} in the runs: train with val_pairs > 0")
    best = None
    for keys, g in df.groupby(list(by), sort=True):
        for m in metrics:
            mean, _, n = _stats(g[m])
            if n and (best is None or mean < best[0]):
                best = (mean, keys, m)
    if best is None:
        raise ValueError("no run has validation metrics: train with val_pairs > 0")
    val_mean, keys, m = best
    keys = keys if isinstance(keys, tuple) else (keys,)
    g = df
    for k, v in zip(by, keys):
        g = g[g[k] == v]
    test_metric = "test_" + m[len("val_"):]
    t_mean, t_std, n = _stats(g[test_metric])
    return {**dict(zip(by, keys)), "metric": m, "val_mean": val_mean, "test_metric": test_metric,
            "test_mean": t_mean, "test_std": t_std, "n": n}


# --- digit errors that flip the comparison --------------------------------------------

def flip_confusion(df, model: str, variant: str, truth=None):
    """10 x 10 counts (true digit -> predicted digit), over all seeds of (model, variant), of the digit
    errors that alone flip the comparison: with the other image's true class, the predicted digit
    gives the other answer to d1 <= d2.
    """
    import numpy as np
    import pandas as pd
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


def plot_confusion(counts, title: str = ""):
    """Heat map of a flip_confusion table; returns the Figure."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = ax.imshow(counts.values, cmap="Reds")
    for i in range(10):
        for j in range(10):
            if counts.values[i, j]:
                dark = counts.values[i, j] > counts.values.max() / 2  # white on the dark cells
                ax.text(j, i, str(counts.values[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


# --- the auxiliary weight ---------------------------------------------------------------

def aux_weight_frame(df, metrics=("test_error", "test_digit_prob_error")):
    """Mean and std per (model, aux weight) over the variants that change nothing but the weight
    (constant schedule), plus the linear-decay variant (schedule 'linear_decay')."""
    import pandas as pd
    plain = df[(df["weight_decay"] == 0) & (df["l1"] == 0) & (df["augment"] == "")]
    base_epochs = plain[plain["variant"] == BASELINE].groupby("model")["epochs"].first()
    rows = []
    for (model, w, schedule), g in plain.groupby(["model", "aux_weight", "aux_schedule"]):
        if model in base_epochs and (g["epochs"] != base_epochs[model]).any():
            continue
        row = {"model": model, "aux_weight": w, "schedule": schedule, "n": len(g)}
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_std"], _ = _stats(g[m])
        rows.append(row)
    return pd.DataFrame(rows)


def aux_weight_figure(df, metrics=("test_error", "test_digit_prob_error")):
    """Error (%) against the auxiliary weight, per model, mean +- std over seeds; the linear decay
    (from 1 to 0) drawn as an open marker at w = 1; the digit rules are left out at w = 0 (nothing
    trains the digit outputs as digits there). Returns the Figure."""
    import matplotlib.pyplot as plt
    frame = aux_weight_frame(df, metrics)
    labels = {"test_error": "learned head", "test_digit_prob_error": "P(d1 <= d2) from digits",
              "test_derived_error": "argmax digits"}
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for i, (model, g) in enumerate(frame.groupby("model")):
        for j, m in enumerate(metrics):
            color = f"C{i * len(metrics) + j}"
            const = g[g["schedule"] == "constant"].sort_values("aux_weight")
            if m != "test_error":  # with w = 0 the digit outputs are not trained as digits
                const = const[const["aux_weight"] > 0]
            ax.errorbar(const["aux_weight"], const[f"{m}_mean"], yerr=const[f"{m}_std"], marker="o", capsize=3,
                        color=color, label=f"{model}, {labels.get(m, m)}")
            decay = g[g["schedule"] == "linear_decay"]
            if not decay.empty:
                ax.errorbar(decay["aux_weight"], decay[f"{m}_mean"], yerr=decay[f"{m}_std"], marker="s",
                            mfc="none", capsize=3, color=color, linestyle="none")
    ax.set_xscale("symlog", linthresh=0.3)
    weights = sorted(frame["aux_weight"].unique())
    ax.set_xticks(weights, [f"{w:g}" for w in weights])
    ax.set_xlabel("auxiliary weight w (open squares: w decaying linearly from 1 to 0)")
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- for the report ----------------------------------------------------------------------

def best_summary(df, truth=None) -> dict:
    """The configuration chosen on validation (select_best), its final test numbers and its ensemble
    (with the chosen rule), plus a one-paragraph text for the report."""
    choice = select_best(df)
    rule = next(r for r, suffix in RULES.items() if choice["metric"] == f"val_{suffix}")
    g = df[(df["model"] == choice["model"]) & (df["variant"] == choice["variant"])]
    ens = ensemble_errors(g, truth).iloc[0]
    ens_error = ens[{"head": "head_error", "digits": "digits_vote_error", "digit_prob": "digit_prob_error"}[rule]]
    text = (f"Chosen on the validation splits alone: {choice['model']}, variant `{choice['variant']}` "
            f"({VARIANTS.get(choice['variant'], {}).get('description', '')}), rule: {RULE_LABELS[rule]} "
            f"(validation error {choice['val_mean']:.2f} %). On the test pairs, scored once: "
            f"{choice['test_mean']:.2f} ± {choice['test_std']:.2f} % over {choice['n']} seeds; the ensemble of "
            f"those {int(ens['n_seeds'])} runs: {ens_error:.2f} %. The paper's best: {PAPER_BEST['mean']} ± "
            f"{PAPER_BEST['std']} % (n = {PAPER_BEST['n']}).")
    return {**choice, "rule": rule, "ensemble_error": float(ens_error), "text": text}
