"""The selection stage read back: the declared space, the candidates' validation scores, the choice and the
chosen configuration's test error on fresh seeds (the headline) with its ensembles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..experiments import selection
from ..experiments.planning import record_finder
from ..store import find_record, report_to_stderr
from .beyond_paper import ensemble_wrong, runs_frame, test_truth
from .stats import error_interval, mean_std_n
from .tables import PAPER_BEST

PROB_COLUMNS = {"error": "head_prob", "digit_prob_error": "digit_prob"}  # the rule's error -> its outputs


def space_frame(stage: dict) -> pd.DataFrame:
    """One row per declared candidate: the fields it sets (blank: the paper's default)."""
    rows = []
    for name, spec in stage["candidates"].items():
        row = {"candidate": name}
        for k in selection.CANDIDATE_FIELDS:
            v = spec.get(k, "")
            row[k] = "+".join(v) if isinstance(v, (list, tuple)) else v
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.loc[:, [c for c in df if c == "candidate" or (df[c] != "").any()]]


def _scored(values, pairs: int, pair_errors=None, images=None) -> dict:
    """Mean, std, n and 95 % interval (stats.error_interval) of errors (%) on a set of ``pairs`` pairs."""
    mean, std, n = mean_std_n(values)
    lo, hi = error_interval(values, pairs, pair_errors, images)
    return {"mean": mean, "std": std, "n": n, "lo": lo, "hi": hi, "pairs": pairs}


HOLDOUTS = ("confirm", "holdout")  # the sets no choice reads: the confirmation set and the holdout


def _holdout_seeds(run, split: str):
    """A run's seeds (a frame row) of a holdout: the confirmation seeds (records_frame joins them with commas)
    or the holdout's seed; None when it has none."""
    if split == "confirm":
        return [int(s) for s in str(run.get("confirm_seeds", "")).split(",") if s] or None
    seed = run.get("holdout_seed")
    return None if seed is None or pd.isna(seed) else int(seed)


def _holdout_set(first, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A holdout of a run (a frame row): its pairs' targets and their two images' ids."""
    from .. import data  # torch: only here

    args = (split, int(first["nb_pairs"]), int(first["data_seed"]), _holdout_seeds(first, split))
    return data.eval_set(*args)[1].numpy(), data.eval_indices(*args).numpy()


def scored_runs(frame: pd.DataFrame, suffix: str) -> dict:
    """The runs' mean error (column ``<set>_<suffix>``) on the test pairs and on each holdout (None without
    it), whose interval counts the images its pairs share (stats.shared_image_variance)."""
    first = frame.iloc[0]
    out = {"test": _scored(frame[f"test_{suffix}"], int(first["nb_pairs"]))}
    for split in HOLDOUTS:
        out[split] = None
        if _holdout_seeds(first, split) is not None:
            target, images = _holdout_set(first, split)
            # per pair, the share of the runs whose probability gives the wrong answer
            outputs = np.stack(frame[f"{split}_{PROB_COLUMNS[suffix]}"].map(np.asarray))
            errors = np.mean((outputs > 0.5) != target, axis=0)
            out[split] = _scored(frame[f"{split}_{suffix}"], len(target), errors, images)
    return out


def ensemble_scores(frame: pd.DataFrame, prob: str) -> dict:
    """The error of the ensemble of ``frame``'s runs (their ``prob`` outputs) on the test pairs (binomial
    interval) and, when every run has it, on each holdout (shared-image interval)."""
    first = frame.iloc[0]
    out = dict.fromkeys(("test", *HOLDOUTS))
    for name in out:
        column = prob if name == "test" else f"{name}_{prob}"
        if column not in frame or frame[column].isna().any():
            continue
        if name == "test":
            target, images = np.asarray(test_truth(int(first["nb_pairs"]), int(first["data_seed"]))[0]), None
        else:
            target, images = _holdout_set(first, name)
        wrong = ensemble_wrong(frame[column], target).astype(float)
        out[name] = _scored([100 * wrong.mean()], len(target), None if images is None else wrong, images)
    return out


def load_selection(profile, store_dir, name: str = "selection") -> dict | None:
    """Everything the report shows of a selection round (``name``: its stage); None when the profile has none.
    ``unchecked``: (runs without per-pair validation outputs, selection runs); ``choice`` is None until every
    candidate is stored; ``headline``, ``confirm``, ``holdout``: the chosen rule's error on each set."""
    stage = profile.stages.get(name)
    if stage is None:
        return None
    settings = profile.settings
    scores, missing = selection.candidate_scores(stage, settings, store_dir)
    rows = [(*mean_std_n(s["values"]), s["candidate"], s["rule"]) for s in scores]
    frame = pd.DataFrame(rows, columns=["val_mean", "val_std", "n", "candidate", "rule"])
    per_candidate = {x["candidate"]: (x["unchecked"], len(x["values"])) for x in scores}
    tidy = [(s["candidate"], s["rule"], float(v)) for s in scores for v in s["values"]]  # for the figure
    tidy = pd.DataFrame(tidy, columns=["candidate", "rule", "val_error"])
    out = dict(name=name, stage=stage, scores=frame, missing=missing, runs=tidy, ensembles=[])
    out.update(unchecked=tuple(map(sum, zip(*per_candidate.values()))) if per_candidate else (0, 0))
    out.update(final=pd.DataFrame(), final_missing=[], ensemble=math.nan)
    out.update(dict.fromkeys(("choice", "headline", "confirm", "holdout")))
    if missing:
        return out
    choice = selection.choose(scores)
    out["choice"] = choice
    finals = {}
    for c in selection.final_candidates(stage, choice["candidate"]):  # the choice first: its seeds
        configs = selection.final_configs(stage, settings, c)
        found = {x.seed: find_record(store_dir, x, report=report_to_stderr) for x in configs}
        finals[c] = runs_frame([r for r in found.values() if r is not None], c)
        lacking = [seed for seed, r in found.items() if r is None]
        out["final_missing"] += lacking if c == choice["candidate"] else [f"{c} seed {s}" for s in lacking]
    final = finals[choice["candidate"]]
    if final.empty:
        return out
    suffix = selection.RULE_COLUMNS[choice["rule"]]
    prob = PROB_COLUMNS[suffix]
    scored = scored_runs(final, suffix)
    out["final"] = final
    out["headline"] = dict(scored["test"], column=f"test_{suffix}")
    out["confirm"], out["holdout"] = scored["confirm"], scored["holdout"]
    out["ensemble"] = ensemble_scores(final, prob)["test"]["mean"]
    for ens, members in (stage.get("ensembles") or {}).items():
        names = list(dict.fromkeys(choice["candidate"] if m == selection.CHOSEN else m for m in members))
        runs = pd.concat([finals[m] for m in names if not finals[m].empty], ignore_index=True)
        complete = all(len(finals[m]) == len(stage["final_seeds"]) for m in names)
        found = ensemble_scores(runs, prob) if complete else dict.fromkeys(("test", *HOLDOUTS))
        out["ensembles"].append(dict(name=ens, members=names, runs=len(runs), complete=complete, **found))
    return out


def cell_confirmation(records, executions) -> dict | None:
    """The table cell scored on the holdouts too (the paper's best, corrected protocol): its label and its
    head's errors (scored_runs); None when no cell has it or a run is missing."""
    find = record_finder(records)
    for ex in executions:
        configs = ex.configs()
        if ex.stage != "table1" or not configs or not configs[0].confirm_seeds:
            continue
        found = [r for r in map(find, configs) if r]
        if len(found) < len(configs):
            return None
        return {"label": ex.name, **scored_runs(runs_frame(found, ex.name), "error")}
    return None


def headline_numbers(result: dict) -> dict | None:
    """A selection round's headline for the templates; None without one."""
    if not result or result["headline"] is None:
        return None
    c, candidates = result["choice"], result["stage"]["candidates"]
    spec = candidates[c["candidate"]]
    out = dict(candidates=len(candidates), candidate=c["candidate"], model=spec["model"])
    out.update(epochs=spec.get("epochs", RunConfig().epochs), rule=c["rule"].replace("_", " "))
    out.update({k: result["headline"][k] for k in ("mean", "std", "n", "lo", "hi")})
    out.update({k: result[k] for k in ("confirm", "holdout", "ensemble")})
    return dict(out, missing=len(result["final_missing"]), paper_best=PAPER_BEST["mean"])
