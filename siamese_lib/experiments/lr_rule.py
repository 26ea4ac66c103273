"""The learning-rate rule of the LR search (part of the protocol: ``learning_rates: auto`` plans the tables with it).

Per model, the rate whose final-epochs training loss is lowest; records are matched to configurations by
``config_id``.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np

from ..config import RunConfig

FINAL_EPOCHS = 10        # the LR rule averages the summed training loss over this many last epochs
VARIANT_FIELDS = ("aux_weight", "aux_schedule", "weight_decay", "l1", "augment", "val_pairs", "lr_schedule")


def is_paper_setting(config: dict) -> bool:
    """True when a record's variant fields are at the paper's defaults."""
    d = RunConfig()
    return all(list(config.get(k, ())) == list(d.augment) if k == "augment" else config.get(k, getattr(d, k)) == getattr(d, k)
               for k in VARIANT_FIELDS)


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


def _final_loss(curve) -> float:
    tail = [float(v) for v in curve[-FINAL_EPOCHS:]]
    if not tail or not all(math.isfinite(v) for v in tail):
        return float("inf")  # a diverged run never wins
    return float(np.mean(tail))


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


def infer_lr_search(records) -> dict:
    """Without a profile: the LR-search runs are the corrected, weight-sharing + aux + batch-norm, no-dropout
    runs with the variant fields at their defaults; per model, the epoch count with the most distinct
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
