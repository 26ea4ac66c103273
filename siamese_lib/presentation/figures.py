"""The report's figures: sample pairs, the siamese diagram, LR-search curves, error bars.

Each function returns a matplotlib Figure and draws only what it is given: missing
data shows as absent (and is named in the caption by the caller), never invented.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..analysis.beyond_paper import aux_weight_frame
from ..analysis.tables import PAPER_TABLES, TABLE1_KEYS, TABLE2_KEYS, cell_map, yesno
from ..common import ROOT, TEMPLATE_DIR
from ..config import PAPER_MODELS
from ..experiments.profiles import PAPER_LRS

PAPER_COLOR = "#555555"
PROTOCOL_COLORS = {"corrected": "#1f77b4", "original": "#d62728"}


def sample_pairs_figure(pair_sets, n: int = 8, split: str = "train"):
    """The first n input pairs of a split with their digit classes and comparison target."""
    tr_in, tr_t, tr_c, te_in, te_t, te_c = pair_sets
    x, t, c = (tr_in, tr_t, tr_c) if split == "train" else (te_in, te_t, te_c)
    cols = 4
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.25 * rows + 0.1))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i >= n:
            continue
        pair = np.concatenate([x[i, 0].numpy(), np.full((14, 2), np.nan), x[i, 1].numpy()], axis=1)
        ax.imshow(np.ma.masked_invalid(pair), cmap="gray_r", interpolation="nearest")
        a, b = int(c[i, 0]), int(c[i, 1])
        ax.set_title(f"{a} {'≤' if a <= b else '>'} {b}: target {int(t[i])}", fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


ARCHITECTURE = TEMPLATE_DIR / "paper" / "architecture.svg"  # Fig. 2: the siamese architecture, drawn once


USED, SEARCHED = "used for the tables (dotted)", "searched only"


def lr_search_frame(curves: dict, chosen: dict, models=PAPER_MODELS) -> pd.DataFrame:
    """Tidy rows (model, rate, line, seed, epoch, loss) of the complete rates of the LR search."""
    rows = []
    for model in models:
        for lr, e in sorted(curves.get(model, {}).items(), reverse=True):
            if e["missing_seeds"] or not e["curves"]:
                continue
            used = chosen.get(model) is not None and math.isclose(lr, chosen[model])
            for seed, curve in zip(e["seeds"], e["curves"]):
                rows += [
                    {
                        "model": model,
                        "rate": f"{lr:g}",
                        "line": USED if used else SEARCHED,
                        "seed": seed,
                        "epoch": i + 1,
                        "loss": float(v),
                    }
                    for i, v in enumerate(curve)
                ]
    return pd.DataFrame(rows)


# The paper's Fig. 2 as the authors logged it: per model and rate, the seed-mean summed training loss per epoch
# (docs/measurements/authors_lr_search.md says where it comes from).
AUTHORS_LR_SEARCH = ROOT / "docs" / "measurements" / "authors_lr_search.csv"
OURS, AUTHORS = "ours", "authors' log"


def authors_lr_frame(path=AUTHORS_LR_SEARCH, models=PAPER_MODELS) -> pd.DataFrame:
    """lr_search_frame's rows for the authors' logged curves (seed 0: their log holds the seeds' mean only);
    the paper's picks dotted. Empty when the file is absent."""
    if not Path(path).is_file():
        return pd.DataFrame()
    wide = pd.read_csv(path)
    wide = wide[wide["model"].isin(models)]
    rows = wide.melt(id_vars=["model", "lr"], var_name="epoch", value_name="loss")
    rows["epoch"] = rows["epoch"].str[1:].astype(int)
    rows["rate"] = rows["lr"].map(lambda x: f"{x:g}")
    rows["line"] = [
        USED if math.isclose(lr, PAPER_LRS[m]) else SEARCHED for m, lr in zip(rows.model, rows.lr)
    ]
    return rows.assign(seed=0).drop(columns="lr")


def lr_search_figure(curves: dict, chosen: dict, models=PAPER_MODELS):
    """Fig. 3 (the paper's Fig. 2): per model, the mean over seeds of the per-epoch summed training loss, one
    line per rate, the rate used for the tables dotted; ours above, the authors' logged curves below. Rates with
    missing seeds are not drawn."""
    ours = lr_search_frame(curves, chosen, models)
    if ours.empty:
        return None
    theirs = authors_lr_frame(models=models)
    df = pd.concat([ours.assign(source=OURS), theirs.assign(source=AUTHORS)], ignore_index=True)
    order = sorted(df["rate"].unique(), key=float, reverse=True)
    # a qualitative palette: six rates must be told apart, not ordered by shade
    g = sns.relplot(
        data=df,
        x="epoch",
        y="loss",
        hue="rate",
        hue_order=order,
        style="line",
        style_order=[SEARCHED, USED],
        dashes={SEARCHED: "", USED: (1, 1)},
        col="model",
        row="source" if not theirs.empty else None,
        kind="line",
        errorbar=None,
        palette="tab10",
        height=1.75,
        aspect=1.05,
        facet_kws={"sharey": False, "sharex": False},
    )
    g.set(yscale="log")
    g.set_axis_labels("epoch", "summed training loss")
    g.set_titles("{col_name}, {row_name}" if not theirs.empty else "{col_name}", size=7)
    for ax in g.axes.flat:
        ax.grid(alpha=0.3, which="both", lw=0.4)
    return g.figure


def selection_figure(scores_runs: pd.DataFrame):
    """Validation error per candidate and rule: each selection seed a dot, the mean a bar (seaborn)."""
    if scores_runs.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * scores_runs["candidate"].nunique() + 1.2))
    sns.barplot(data=scores_runs, y="candidate", x="val_error", hue="rule", errorbar=None, alpha=0.45, ax=ax)
    np.random.seed(0)  # seaborn draws the jitter from numpy's global RNG: the same record, the same figure
    sns.stripplot(
        data=scores_runs, y="candidate", x="val_error", hue="rule", dodge=True, legend=False, size=4, ax=ax
    )
    ax.set_xlabel("validation error (%), each dot one selection seed")
    ax.set_ylabel("")
    ax.grid(axis="x", alpha=0.3, lw=0.4)
    fig.tight_layout()
    return fig


def _tick(table, key):
    if table == "table1":
        m, ws, aux = key
        return f"WS {yesno(ws)}\naux {yesno(aux)}"
    ws, bn, do = key
    return f"WS {yesno(ws)}\nBN {yesno(bn)}\nDO {yesno(do)}"


def errorbar_figure(cells, table: str = "table1", protocols=("corrected",)):
    """Mean ± std per cell: the paper's and ours (one series per protocol); missing cells are not drawn."""
    keys = TABLE1_KEYS if table == "table1" else TABLE2_KEYS
    fig, ax = plt.subplots(figsize=(7.0, 2.9 if table == "table1" else 2.6))
    series = [("paper", None)] + [(p, p) for p in protocols]
    width = 0.8 / len(series)
    x = np.arange(len(keys))
    maps = {p: cell_map(cells, p) for p in protocols}
    for j, (_name, protocol) in enumerate(series):
        xs, ys, es, miss = [], [], [], []
        for i, key in enumerate(keys):
            xi = i - 0.4 + width * (j + 0.5)
            if protocol is None:
                m, s = PAPER_TABLES[table][key]
                xs.append(xi), ys.append(m), es.append(s)
                continue
            c = maps[protocol].get((table, key))
            if c is not None and c.complete:
                xs.append(xi), ys.append(c.mean), es.append(c.std if math.isfinite(c.std) else 0)
            else:
                miss.append(xi)
        color = PAPER_COLOR if protocol is None else PROTOCOL_COLORS[protocol]
        label = "paper" if protocol is None else f"ours ({protocol})"
        ax.errorbar(
            xs,
            ys,
            yerr=es,
            fmt="o" if protocol is None else "s",
            ms=3.2,
            capsize=2,
            lw=0.9,
            color=color,
            label=label,
        )
        if miss:
            ax.plot(miss, [0.3] * len(miss), "x", color=color, ms=4, label=f"ours ({protocol}): missing")
    ax.set_xticks(x)
    ax.set_xticklabels([_tick(table, k) for k in keys], fontsize=7)
    ax.set_ylabel("test error (%)", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3, lw=0.4)
    if table == "table1":
        for i, m in enumerate(PAPER_MODELS):
            if i:
                ax.axvline(4 * i - 0.5, color="#999999", lw=0.5)
            ax.text(
                4 * i + 1.5,
                1.0,
                m,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7.5,
            )
    ax.set_xlim(-0.6, len(keys) - 0.4)
    ax.legend(
        fontsize=7, loc="upper center", ncol=len(series) * 2, frameon=False, bbox_to_anchor=(0.5, -0.32)
    )
    fig.tight_layout(pad=0.3)
    return fig


def plot_confusion(counts, title: str = ""):
    """Heat map of a flip_confusion table; returns the Figure."""
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = ax.imshow(counts.values, cmap="Reds")
    for i in range(10):
        for j in range(10):
            if counts.values[i, j]:
                dark = counts.values[i, j] > counts.values.max() / 2  # white on the dark cells
                ax.text(
                    j,
                    i,
                    str(counts.values[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if dark else "black",
                )
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def aux_weight_figure(df, metrics=("test_error", "test_digit_prob_error")):
    """Error (%) against the auxiliary weight, per model, mean +- std over seeds; the linear decay
    (from 1 to 0) drawn as an open marker at w = 1; the digit rules are left out at w = 0 (nothing
    trains the digit outputs as digits there). Returns the Figure."""
    frame = aux_weight_frame(df, metrics)
    labels = {
        "test_error": "learned head",
        "test_digit_prob_error": "P(d1 <= d2) from digits",
        "test_derived_error": "argmax digits",
    }
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for i, (model, g) in enumerate(frame.groupby("model")):
        for j, m in enumerate(metrics):
            color = f"C{i * len(metrics) + j}"
            const = g[g["schedule"] == "constant"].sort_values("aux_weight")
            if m != "test_error":  # with w = 0 the digit outputs are not trained as digits
                const = const[const["aux_weight"] > 0]
            ax.errorbar(
                const["aux_weight"],
                const[f"{m}_mean"],
                yerr=const[f"{m}_std"],
                marker="o",
                capsize=3,
                color=color,
                label=f"{model}, {labels.get(m, m)}",
            )
            decay = g[g["schedule"] == "linear_decay"]
            if not decay.empty:
                ax.errorbar(
                    decay["aux_weight"],
                    decay[f"{m}_mean"],
                    yerr=decay[f"{m}_std"],
                    marker="s",
                    mfc="none",
                    capsize=3,
                    color=color,
                    linestyle="none",
                )
    ax.set_xscale("symlog", linthresh=0.3)
    weights = sorted(frame["aux_weight"].unique())
    ax.set_xticks(weights, [f"{w:g}" for w in weights])
    ax.set_xlabel("auxiliary weight w (open squares: w decaying linearly from 1 to 0)")
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
