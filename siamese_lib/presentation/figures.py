"""The report's figures (matplotlib, seaborn), each drawing only what it is given: missing data shows as
absent (the caller's caption names it), never invented; and image_src, a figure as a data: URL."""

from __future__ import annotations

import base64
import io
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
ARCHITECTURE = TEMPLATE_DIR / "paper" / "architecture.svg"  # Fig. 2: the siamese architecture, drawn once
USED, SEARCHED = "used for the tables (dotted)", "searched only"
# The paper's Fig. 2 as the authors logged it: per model and rate, the seed-mean summed training loss per
# epoch (docs/measurements/authors_lr_search.md says where it comes from).
AUTHORS_LR_SEARCH = ROOT / "docs" / "measurements" / "authors_lr_search.csv"


def image_src(fig, dpi: int = 200) -> str | None:
    """A figure (matplotlib, or a committed SVG's path) as a base64 data: URL; None for no figure."""
    if isinstance(fig, Path):
        return "data:image/svg+xml;base64," + base64.b64encode(fig.read_bytes()).decode()
    if fig is None:
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def sample_pairs_figure(pair_sets, n: int = 8, split: str = "train"):
    """The first n input pairs of a split with their digit classes and comparison target."""
    x, t, c = pair_sets[:3] if split == "train" else pair_sets[3:]
    cols, rows = 4, math.ceil(n / 4)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.25 * rows + 0.1))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i < n:
            pair = np.concatenate([x[i, 0].numpy(), np.full((14, 2), np.nan), x[i, 1].numpy()], axis=1)
            ax.imshow(np.ma.masked_invalid(pair), cmap="gray_r", interpolation="nearest")
            a, b = int(c[i, 0]), int(c[i, 1])
            ax.set_title(f"{a} {'≤' if a <= b else '>'} {b}: target {int(t[i])}", fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def _lr_search_frame(curves: dict, chosen: dict, models) -> pd.DataFrame:
    """Tidy rows (model, rate, line, seed, epoch, loss) of the LR search's complete rates."""
    rows = []
    for model in models:
        for lr, e in sorted(curves.get(model, {}).items(), reverse=True):
            line = USED if chosen.get(model) is not None and math.isclose(lr, chosen[model]) else SEARCHED
            for seed, curve in zip(e["seeds"], e["curves"]) if not e["missing_seeds"] else ():
                rows += [(model, f"{lr:g}", line, seed, i + 1, float(v)) for i, v in enumerate(curve)]
    return pd.DataFrame(rows, columns=["model", "rate", "line", "seed", "epoch", "loss"] if rows else None)


def _authors_lr_frame(models, path=AUTHORS_LR_SEARCH) -> pd.DataFrame:
    """The same rows for the authors' logged curves (seed 0: their log holds the seeds' mean), the paper's
    picks dotted; empty without the file."""
    if not Path(path).is_file():
        return pd.DataFrame()
    wide = pd.read_csv(path)
    rows = wide[wide["model"].isin(models)].melt(id_vars=["model", "lr"], var_name="epoch", value_name="loss")
    rows["epoch"], rows["rate"] = rows["epoch"].str[1:].astype(int), rows["lr"].map("{:g}".format)
    rows["line"] = [USED if math.isclose(x, PAPER_LRS[m]) else SEARCHED for m, x in zip(rows.model, rows.lr)]
    return rows.assign(seed=0).drop(columns="lr")


def lr_search_figure(curves: dict, chosen: dict, models=PAPER_MODELS):
    """Fig. 3 (the paper's Fig. 2): per model, the seeds' mean summed training loss per epoch, one line per
    rate, the rate used dotted; ours above, the authors' logged curves below; rates missing seeds left out."""
    ours = _lr_search_frame(curves, chosen, models)
    if ours.empty:
        return None
    theirs = _authors_lr_frame(models)
    df = pd.concat([ours.assign(source="ours"), theirs.assign(source="authors' log")], ignore_index=True)
    order = sorted(df["rate"].unique(), key=float, reverse=True)
    # a qualitative palette: six rates must be told apart, not ordered by shade
    lines = dict(hue="rate", hue_order=order, palette="tab10", style="line", style_order=[SEARCHED, USED])
    lines.update(dashes={SEARCHED: "", USED: (1, 1)}, kind="line", errorbar=None, height=1.75, aspect=1.05)
    facets = dict(sharey=False, sharex=False)
    grid = dict(col="model", row="source" if not theirs.empty else None, facet_kws=facets)
    g = sns.relplot(data=df, x="epoch", y="loss", **lines, **grid)
    g.set(yscale="log")
    g.set_axis_labels("epoch", "summed training loss")
    g.set_titles("{col_name}, {row_name}" if not theirs.empty else "{col_name}", size=7)
    for ax in g.axes.flat:
        ax.grid(alpha=0.3, which="both", lw=0.4)
    return g.figure


def selection_figure(scores_runs: pd.DataFrame):
    """Validation error per candidate and rule: each selection seed a dot, the mean a bar."""
    if scores_runs.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * scores_runs["candidate"].nunique() + 1.2))
    axes = dict(data=scores_runs, y="candidate", x="val_error", hue="rule", ax=ax)
    sns.barplot(**axes, errorbar=None, alpha=0.45)
    np.random.seed(0)  # seaborn draws the jitter from numpy's global RNG: the same record, the same figure
    sns.stripplot(**axes, dodge=True, legend=False, size=4)
    ax.set(xlabel="validation error (%), each dot one selection seed", ylabel="")
    ax.grid(axis="x", alpha=0.3, lw=0.4)
    fig.tight_layout()
    return fig


def errorbar_figure(cells, table: str = "table1", protocols=("corrected",)):
    """Mean ± std per cell: the paper's and ours (one series per protocol); missing cells are not drawn."""
    keys = TABLE1_KEYS if table == "table1" else TABLE2_KEYS
    fig, ax = plt.subplots(figsize=(7.0, 2.9 if table == "table1" else 2.6))
    series, x = [None, *protocols], np.arange(len(keys))
    width = 0.8 / len(series)
    for j, protocol in enumerate(series):
        cs = cell_map(cells, protocol) if protocol else {}
        found = dict(enumerate(PAPER_TABLES[table][k] for k in keys)) if protocol is None else {}
        for i, c in enumerate(cs.get((table, k)) for k in keys):
            if c is not None and c.complete:
                found[i] = (c.mean, c.std if math.isfinite(c.std) else 0)
        xs = x - 0.4 + width * (j + 0.5)
        color = PAPER_COLOR if protocol is None else PROTOCOL_COLORS[protocol]
        label, mark = ("paper", "o") if protocol is None else (f"ours ({protocol})", "s")
        m, s = zip(*found.values()) if found else ((), ())
        ax.errorbar(xs[list(found)], m, yerr=s, fmt=mark, ms=3.2, capsize=2, lw=0.9, color=color, label=label)
        miss = [xs[i] for i in range(len(keys)) if i not in found]
        if miss:
            ax.plot(miss, [0.3] * len(miss), "x", color=color, ms=4, label=f"ours ({protocol}): missing")
    names = ("WS", "aux") if table == "table1" else ("WS", "BN", "DO")
    ticks = ["\n".join(f"{n} {yesno(v)}" for n, v in zip(names, k[-len(names) :])) for k in keys]
    ax.set_xticks(x, ticks, fontsize=7)
    ax.set_ylabel("test error (%)", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3, lw=0.4)
    above = dict(transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=7.5)
    for i, m in enumerate(PAPER_MODELS if table == "table1" else []):
        if i:
            ax.axvline(4 * i - 0.5, color="#999999", lw=0.5)
        ax.text(4 * i + 1.5, 1.0, m, **above)
    ax.set_xlim(-0.6, len(keys) - 0.4)
    legend = dict(loc="upper center", ncol=len(series) * 2, frameon=False, bbox_to_anchor=(0.5, -0.32))
    ax.legend(fontsize=7, **legend)
    fig.tight_layout(pad=0.3)
    return fig


def plot_confusion(counts, title: str = ""):
    """Heat map of a flip_confusion table, each non-zero count written on its cell; returns the Figure."""
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    labels = counts.astype(str).where(counts > 0, "")
    sns.heatmap(counts, cmap="Reds", annot=labels, fmt="", annot_kws=dict(fontsize=7), ax=ax, square=True)
    ax.set(xlabel="predicted digit", ylabel="true digit")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def aux_weight_figure(df, metrics=("test_error", "test_digit_prob_error")):
    """Error (%) against the auxiliary weight per model, mean +- std over seeds; the linear decay (1 to 0) an
    open marker at w = 1; the digit rules left out at w = 0 (nothing trains the digit outputs as digits)."""
    frame = aux_weight_frame(df, metrics)
    labels = dict(test_error="learned head", test_digit_prob_error="P(d1 <= d2) from digits")
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for i, (model, g) in enumerate(frame.groupby("model")):
        for j, m in enumerate(metrics):
            color = f"C{i * len(metrics) + j}"
            const = g[g["schedule"] == "constant"].sort_values("aux_weight")
            const = const if m == "test_error" else const[const["aux_weight"] > 0]
            x, y, e = const["aux_weight"], const[f"{m}_mean"], const[f"{m}_std"]
            label = f"{model}, {labels.get(m, m)}"
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, color=color, label=label)
            decay = g[g["schedule"] == "linear_decay"]
            if not decay.empty:
                x, y, e = decay["aux_weight"], decay[f"{m}_mean"], decay[f"{m}_std"]
                ax.errorbar(x, y, yerr=e, marker="s", mfc="none", capsize=3, color=color, linestyle="none")
    ax.set_xscale("symlog", linthresh=0.3)
    weights = sorted(frame["aux_weight"].unique())
    ax.set_xticks(weights, [f"{w:g}" for w in weights])
    ax.set_xlabel("auxiliary weight w (open squares: w decaying linearly from 1 to 0)")
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
