"""Net's two comparison heads under the original protocol, the four Net cells of Table I, one row per run.

    .venv/bin/python docs/measurements/net_head.py OLD_runs.csv NEW_runs.csv docs/measurements/net_head.csv

OLD: a runs.csv of the original-protocol Net runs with the paper's linear head (issue 24: trained on the same machine
as NEW by net_head_linear_runs.py, `head="linear"`; a runs.csv without a head column, such as the record committed
before issue 24, `git show 3843b27:report/paper/runs.csv`, reads as the linear head); NEW: a runs.csv of the runs
with the authors' conv head (issue 24's code, the original protocol's default).
The rows are copied, not computed: each keeps its key, code version and machine, so `verify` can retrain it. The
report's departures table reads the result (presentation.sections.head_effect).
"""

import sys

import pandas as pd

COLUMNS = [
    "head",
    "weight_sharing",
    "aux_loss",
    "seed",
    "train_error",
    "test_error",
    "epochs_trained",
    "key",
    "code_version",
    "machine",
]


def net_original(csv_path: str, head: str) -> pd.DataFrame:
    runs = pd.read_csv(csv_path)
    runs = runs[(runs["model"] == "Net") & (runs["protocol"] == "original") & (runs["epochs"] == 30)]
    if "head" not in runs:
        runs = runs.assign(head="linear")  # stored before the field existed: the model's own head
    runs = runs[runs["head"] == head]
    if len(runs) != 40:
        raise SystemExit(
            f"{csv_path}: {len(runs)} original-protocol Net runs with the {head} head, expected 40"
        )
    return runs[COLUMNS]


if __name__ == "__main__":
    old, new, out = sys.argv[1:4]
    frame = pd.concat([net_original(old, "linear"), net_original(new, "conv")], ignore_index=True)
    frame.sort_values(["head", "weight_sharing", "aux_loss", "seed"]).to_csv(out, index=False)
    print(
        frame.groupby(["weight_sharing", "aux_loss", "head"])[["train_error", "test_error"]]
        .agg(["mean", "std"])
        .round(2)
        .to_string()
    )
