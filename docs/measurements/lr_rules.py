"""Which learning-rate rules reproduce the paper's four picks, read on the authors' own LR-search log.

    git -C MIRROR show HEAD:Projects/Proj1/stored_results/lr_results.pt > /tmp/lr/lr_results.pt
    PYTHONPATH=. .venv/bin/python docs/measurements/lr_rules.py /tmp/lr/lr_results.pt [PROFILE.yaml STORE_DIR]

MIRROR is a clone of github.com/RaphaelUebersax/Deep-Learning-course. The file is a float32 tensor [4 models, 6 rates,
100 epochs]: the summed training loss per epoch, the mean over the authors' 3 seeds (their readme.txt and
setting_learning_rate.py). Every rule is a ``planning.LossRule`` scored by ``planning.rule_score``, the library's own
scoring, with the log's seed-mean curve as the one curve. Prints the markdown tables of docs/measurements/lr_rules.md;
with a profile and its store, also both rules' picks and scores on our own search's curves.
"""

import sys
from pathlib import Path

import numpy as np
import torch

from siamese_lib.experiments import planning
from siamese_lib.experiments.planning import (
    DECLARED_RULE,
    POST_HOC_RULE,
    LossRule,
    choose_learning_rates,
    rule_score,
)
from siamese_lib.experiments.profiles import PAPER_LRS, load_profile
from siamese_lib.store import load_records

MODELS = ["Net", "LeNet5", "LeNet5_FullyConv", "ResNet"]  # the log's order (readme.txt)
RATES = [3e-1, 5e-2, 3e-2, 5e-3, 3e-3, 5e-4]


def family() -> dict[str, LossRule]:
    rules = {}
    for log, mean in ((False, "mean"), (True, "geometric mean")):
        for k in (5, 10, 20, 50):
            rules[f"{mean} of the last {k} epochs"] = LossRule(start=-k, log=log)
        for e in (10, 20, 30, 50):
            rules[f"{mean} of the first {e} epochs"] = LossRule(stop=e, log=log)
        rules[f"{mean} of all 100 epochs"] = LossRule(log=log)
    rules["last epoch (100)"] = LossRule(start=-1)
    for e in (10, 20, 30):
        rules[f"epoch {e} alone"] = LossRule(start=e - 1, stop=e)
    return rules


def main(path: str) -> None:
    log = torch.load(path, weights_only=True).double().numpy()
    assert log.shape == (len(MODELS), len(RATES), 100), log.shape
    print("| Rule | " + " | ".join(MODELS) + " | Paper's picks matched | Smallest margin |")
    print("|---|" + "---|" * (len(MODELS) + 2))
    print("| *the paper* | " + " | ".join(f"{PAPER_LRS[m]:g}" for m in MODELS) + " | | |")
    for name, rule in family().items():
        picks, margins = [], []
        for i, _ in enumerate(MODELS):
            score = sorted((rule_score([log[i, j]], rule), lr) for j, lr in enumerate(RATES))
            picks.append(score[0][1])
            margins.append(score[1][0] / score[0][0])  # the runner-up's score over the winner's
        hits = sum(p == PAPER_LRS[m] for p, m in zip(picks, MODELS))
        tag = " (declared)" if rule == DECLARED_RULE else " (post hoc)" if rule == POST_HOC_RULE else ""
        print(
            f"| {name}{tag} | "
            + " | ".join(f"{p:g}" for p in picks)
            + f" | {hits} of 4 | "
            + (f"x{min(margins):.2f} ({MODELS[margins.index(min(margins))]})" if hits == 4 else "")
            + " |"
        )
    evidence(
        {
            m: {lr: [log[i, j]] for j, lr in enumerate(RATES)}
            for i, m in enumerate(MODELS)
            if m in ("Net", "LeNet5_FullyConv")
        }
    )


def evidence(curves: dict) -> None:
    """Per model and rate: each rule's score, the last epoch's and epoch 30's loss of the seeds' mean curve."""
    print(
        "\n| Model | Rate | Mean of the last 10 epochs (declared) | Last epoch | Epoch 30 | Geometric mean of all "
        "epochs (post hoc) |\n|---|---|---|---|---|---|"
    )
    for m, by_lr in curves.items():
        for lr in sorted(by_lr, reverse=True):
            c, mean = by_lr[lr], np.mean(by_lr[lr], axis=0)
            print(
                f"| {m} | {lr:g}{' (paper)' if lr == PAPER_LRS[m] else ''} | {rule_score(c):.4g} | {mean[-1]:.4g} | "
                f"{mean[29]:.4g} | {rule_score(c, POST_HOC_RULE):.4g} |"
            )


def ours(profile: str, store: str) -> None:
    curves = planning.lr_search_curves(
        load_records(Path(store)), planning.expand(load_profile(profile), "", stages=("lr_search",))
    )
    print(
        f"\nOur search: declared rule {choose_learning_rates(curves)}; post-hoc rule {choose_learning_rates(curves, POST_HOC_RULE)}"
    )
    evidence({m: {lr: e["curves"] for lr, e in by_lr.items()} for m, by_lr in curves.items()})


if __name__ == "__main__":
    main(sys.argv[1])
    if len(sys.argv) == 4:
        ours(sys.argv[2], sys.argv[3])
