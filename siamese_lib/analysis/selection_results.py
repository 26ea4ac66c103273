"""Reading the selection stage: the declared space, each candidate's validation scores, the choice,
and the chosen configuration's test error on the fresh seeds (the headline) with its ensemble."""
from __future__ import annotations

import math

import pandas as pd

from ..experiments.selection import (RULE_COLUMNS, RULE_TEXT, candidate_scores, choose, final_configs)
from ..store import find_record
from .stats import mean_std_n
from .beyond_paper import PAPER_BEST, ensemble_errors, record_row

FIELD_ORDER = ("model", "lr", "lr_schedule", "epochs", "augment", "dropout", "batch_norm", "aux_weight", "weight_decay")


def space_frame(stage: dict) -> pd.DataFrame:
    """One row per declared candidate: the fields it sets (blank: the paper's default)."""
    rows = []
    for name, spec in stage["candidates"].items():
        row = {"candidate": name}
        for k in FIELD_ORDER:
            v = spec.get(k, "")
            row[k] = "+".join(v) if isinstance(v, (list, tuple)) else v
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.loc[:, [c for c in df if c == "candidate" or (df[c] != "").any()]]


def space_markdown(stage: dict, settings: dict) -> str:
    n = len(stage["candidates"]) * len(stage["rules"])
    return (f"Declared space: {len(stage['candidates'])} candidates x {len(stage['rules'])} comparison rules "
            f"({', '.join(stage['rules'])}) = {n} choices, each on selection seeds "
            f"{', '.join(map(str, stage['selection_seeds']))}; the choice trains on fresh seeds "
            f"{', '.join(map(str, stage['final_seeds']))} ({stage['final_training'].replace('_', ' ')}); "
            f"{settings['nb_pairs']} training pairs. Rule: {RULE_TEXT}.")


def scores_frame(stage: dict, settings: dict, store_dir) -> tuple[pd.DataFrame, list[str]]:
    """Per (candidate, rule): mean, std and n of the validation error over the selection seeds."""
    scores, missing = candidate_scores(stage, settings, store_dir)
    rows = []
    for s in scores:
        mean, std, n = mean_std_n(s["values"])
        rows.append({"candidate": s["candidate"], "rule": s["rule"], "val_mean": mean, "val_std": std, "n": n})
    return pd.DataFrame(rows), missing


def scores_runs(scores: list[dict]) -> pd.DataFrame:
    """Tidy rows (candidate, rule, val_error): one per selection run and rule, for the figure."""
    return pd.DataFrame([{"candidate": s["candidate"], "rule": s["rule"], "val_error": float(v)}
                         for s in scores for v in s["values"]])


def load_selection(profile, store_dir) -> dict | None:
    """Everything the report shows of the stage; None when the profile has no selection stage.

    Keys: stage, scores (frame), missing (selection runs absent), choice (None until every
    candidate is stored), final (frame of the chosen configuration's fresh-seed runs), final_missing,
    headline (mean, std, n of the chosen rule's test error) and ensemble (its error, %)."""
    stage = profile.stages.get("selection")
    if stage is None:
        return None
    settings = profile.settings
    scores, missing = scores_frame(stage, settings, store_dir)
    out = {"stage": stage, "scores": scores, "missing": missing,
           "runs": scores_runs(candidate_scores(stage, settings, store_dir)[0]), "choice": None, "final": pd.DataFrame(),
           "final_missing": [], "headline": None, "ensemble": math.nan}
    if missing:
        return out
    choice = choose(candidate_scores(stage, settings, store_dir)[0])
    out["choice"] = choice
    rows = []
    for config in final_configs(stage, settings, choice["candidate"]):
        rec = find_record(store_dir, config, "cpu") or find_record(store_dir, config, "cuda")
        if rec is None:
            out["final_missing"].append(config.seed)
        else:
            rows.append(record_row(rec, choice["candidate"]))
    if rows:
        final = pd.DataFrame(rows)
        column = f"test_{RULE_COLUMNS[choice['rule']]}"
        out["final"] = final
        out["headline"] = dict(zip(("mean", "std", "n"), mean_std_n(final[column])), column=column)
        ens = ensemble_errors(final).iloc[0]
        out["ensemble"] = float(ens["head_error" if choice["rule"] == "head" else "digit_prob_error"])
    return out


def headline_numbers(result: dict) -> dict | None:
    """The pre-declared selection's headline for the templates; None without one."""
    if not result or result["headline"] is None:
        return None
    h, c = result["headline"], result["choice"]
    return {"candidates": len(result["stage"]["candidates"]), "candidate": c["candidate"],
            "rule": c["rule"].replace("_", " "), "mean": h["mean"], "std": h["std"], "n": h["n"],
            "ensemble": result["ensemble"], "missing": len(result["final_missing"]), "paper_best": PAPER_BEST["mean"]}
