# ---
# jupyter:
#   kernelspec:
#     display_name: Python (siamese-lib)
#     language: python
#     name: siamese-lib
# ---

# %% [markdown]
# # Exploring the published record
#
# The questions a reader brings, answered from the published record alone (`records.parquet`, one row per run,
# and `pairs.parquet`, one row per test or confirmation pair): nothing is trained here. Every column's meaning
# and unit: `docs/data-dictionary.md`. To train runs of your own, use a store of your own (`python -m
# siamese_lib run --profile quick`, or `train_run` in a notebook), never the published record.

# %% tags=["parameters"]
# fmt: off
# Parameters (papermill overrides them): the folder holding records.parquet and pairs.parquet.
record_dir = "report/paper"
# fmt: on

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from siamese_lib.common import ROOT
from siamese_lib.pipeline.dataset import pairs_table, placement
from siamese_lib.pipeline.published import FILE_NAME, PAIRS_FILE, read_metadata, read_pairs

record_dir = Path(record_dir) if Path(record_dir).is_absolute() else ROOT / record_dir
meta = read_metadata(record_dir / FILE_NAME)  # checks the checksum and the format first
runs = pd.read_parquet(record_dir / FILE_NAME)
if "stage" not in runs:  # a record published before these columns: derived as publishing does, from its plan
    runs["stage"], runs["cell"] = placement(runs["key"].tolist(), meta.get("plan"))
if (record_dir / PAIRS_FILE).is_file():
    pairs = read_pairs(record_dir)
else:  # likewise: the pairs follow from the runs' data seeds
    seeds = [
        {
            "config": {
                "nb_pairs": int(r.nb_pairs),
                "data_seed": int(r.data_seed),
                "confirm_seeds": [int(x) for x in r.confirm_seeds],
            }
        }
        for r in runs.itertuples()
    ]
    pairs = pairs_table(seeds, {}).to_pandas()
by_stage = runs.explode(["stage", "cell"])  # one row per (run, stage it serves)
test = pairs[pairs["set"] == "test"].sort_values("pair")
print(f"profile {meta['profile']}: {len(runs)} runs; {len(test)} test pairs")
by_stage.groupby("stage", sort=False).size().rename("runs")

# %% [markdown]
# ## Tables I and II with their seeds
#
# Each dot is one seed's test error (`test_error`, the comparison head's, in %), the bar the mean over seeds:
# what the report's tables summarise as mean ± std.


# %%
def label(row, stage):
    if stage == "table1":
        return f"{row.model} ws{int(row.weight_sharing)} aux{int(row.aux_loss)}"
    return f"ws{int(row.weight_sharing)} bn{int(row.batch_norm)} do{int(row.dropout)}"


for stage in ("table1", "table2"):
    rows = by_stage[by_stage["stage"] == stage].copy()
    if rows.empty:
        continue
    rows["configuration"] = [label(r, stage) for r in rows.itertuples()]
    order = sorted(rows["configuration"].unique())
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(order) + 1.5))
    axes = dict(data=rows, y="configuration", x="test_error", hue="protocol", order=order, ax=ax)
    sns.barplot(**axes, errorbar=None, alpha=0.4)
    np.random.seed(0)  # the dots' jitter
    sns.stripplot(
        **axes,
        dodge=True,
        legend=False,
        size=3,
    )
    ax.set(
        title=f"{stage}: test error of each seed (n = {rows.groupby(['configuration', 'protocol']).size().max()} per cell)",
        xlabel="test error (%)",
        ylabel="",
    )
    plt.show()

# %% [markdown]
# ## A loss curve
#
# The summed training loss per epoch of the best Table I cell (corrected protocol), one line per seed.

# %%
t1 = by_stage[(by_stage["stage"] == "table1") & (by_stage["protocol"] == "corrected")]
if not t1.empty:
    cell = t1.groupby("cell")["test_error"].mean().idxmin()
    curves = t1[t1["cell"] == cell][["seed", "train_loss"]].explode("train_loss")
    curves["epoch"] = curves.groupby("seed").cumcount() + 1
    curves["train_loss"] = curves["train_loss"].astype(float)
    ax = sns.lineplot(data=curves, x="epoch", y="train_loss", hue="seed", palette="viridis", legend="full")
    ax.set(title=f"{cell}: summed training loss per epoch", yscale="log")
    # legends placed, not "best": matplotlib warns (into the page) when searching takes a loaded machine long
    sns.move_legend(ax, "upper right", ncol=2)
    plt.show()

# %% [markdown]
# ## The test pairs missed most often
#
# Over the Table I runs of the corrected protocol: per test pair, how many runs' heads get it wrong. Each row of
# pictures is one pair: its two digits and its target (1: first digit <= second).

# %%
scope = t1.drop_duplicates("key") if not t1.empty else runs
wrong = np.stack([(np.asarray(h) > 0.5) != test["target"].to_numpy() for h in scope["head_prob"]])
test = test.assign(missed=wrong.sum(axis=0))
worst = test.nlargest(6, "missed")
fig, axes = plt.subplots(len(worst), 2, figsize=(3, 1.6 * len(worst)))
for (_, p), row in zip(worst.iterrows(), np.atleast_2d(axes)):
    for i, ax in enumerate(row):
        ax.imshow(np.asarray(p[f"image{i + 1}"]).reshape(14, 14), cmap="gray_r")
        ax.set_axis_off()
        ax.set_title(f"digit {p[f'digit{i + 1}']}", fontsize=8)
    row[0].text(
        -4,
        7,
        f"pair {p['pair']}: target {p['target']},\nmissed by {p['missed']} of {len(scope)}",
        ha="right",
        va="center",
        fontsize=8,
    )
plt.show()
worst.drop(columns=["image1", "image2"])

# %% [markdown]
# ## Where the head and the digit rule disagree
#
# Every run has two answers per pair: its comparison head's and the one its digit classifier implies (the exact
# P(d1 <= d2) from the two digit distributions). Their errors, run by run (`test_error` against
# `test_digit_prob_error`), and the share of pairs on which they disagree.

# %%
runs["rules_disagree"] = [
    100 * np.mean((np.asarray(h) > 0.5) != (np.asarray(d) > 0.5))
    for h, d in zip(runs["head_prob"], runs["digit_prob"])
]
first_stage = runs["stage"].map(lambda s: s[0] if len(s) else "none")
ax = sns.scatterplot(x=runs["test_error"], y=runs["test_digit_prob_error"], hue=first_stage, s=12)
top = max(runs["test_error"].max(), runs["test_digit_prob_error"].max())
ax.plot([0, top], [0, top], color="grey", lw=0.5)
ax.set(xlabel="head: test error (%)", ylabel="digit rule: test error (%)", title="each dot one run")
sns.move_legend(ax, "lower right")
plt.show()
runs.groupby(first_stage)[["test_error", "test_digit_prob_error", "rules_disagree"]].mean().round(2)

# %% [markdown]
# ## The confirmation set and the holdout
#
# The selection rounds' runs are also evaluated on pairs never used for training or choosing (`confirm_*`),
# and those of a record with a holdout (`holdout_*`, 20,000 pairs of MNIST training images no training pair
# uses) on that too: their error there against their test error, per stage and cell (a selection's final: one
# dot per seed).

# %%
sets = ["test_digit_prob_error", "confirm_digit_prob_error", "holdout_digit_prob_error"]
confirm = by_stage[by_stage["confirm_error"].notna()]
confirm = confirm.assign(cell=confirm["cell"].str.replace(r"-seed\d+$", "", regex=True))  # one dot per seed
if confirm.empty:
    print("no run of this record has a confirmation set")
else:
    long = confirm.melt(
        id_vars=["stage", "cell"],
        value_vars=[c for c in sets if c in confirm],
        var_name="pairs",
        value_name="error",
    )
    g = sns.catplot(
        data=long,
        y="cell",
        x="error",
        hue="pairs",
        col="stage",
        col_order=sorted(long["stage"].unique()),
        kind="strip",
        sharey=False,
        height=3,
        aspect=1.4,
    )
    g.set_axis_labels("digit rule error (%)", "")
    plt.show()
    print(pairs["set"].value_counts().rename("pairs").to_string())
