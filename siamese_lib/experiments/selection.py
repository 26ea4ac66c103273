"""The selection stage, declared in the profile before anything runs: candidates trained on the same selection
seeds, a rule that chooses on validation columns only, and the choice trained on fresh final seeds."""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
from pydantic import BeforeValidator, Field, StrictStr, create_model, field_validator, model_validator

from ..config import FIELD_TYPES, RunConfig, Seed
from ..rules import Listed, OneOf, Refusal, Strict, ruled
from ..store import find_record
from .variants import val_pairs_for

DATA = ("nb_pairs", "data_seed", "batch_size")  # the profile's settings every run takes
# Comparison rules a candidate may be judged with -> the metric suffix (val_<suffix>, test_<suffix>).
RULE_COLUMNS = {"head": "error", "digit_prob": "digit_prob_error"}
# RunConfig fields a candidate may set; the data (pairs, data seed, batch size) and protocol are the profile's
CANDIDATE_FIELDS = tuple(
    "model lr epochs lr_schedule augment dropout batch_norm aux_weight weight_decay".split()
)
FINAL_TRAINING = ("all_pairs", "same_split")
CHOSEN = "chosen"  # in a round's ensembles: the candidate its rule chooses
RULE_TEXT = (
    "the (candidate, comparison rule) with the lowest mean validation error over the selection "
    "seeds; ties go to the candidate listed first"
)

# a candidate: RunConfig fields (CANDIDATE_FIELDS); those it leaves out are the paper's setting
Candidate = create_model(
    "Candidate", __base__=Strict, **{f: (FIELD_TYPES[f], None) for f in CANDIDATE_FIELDS}
)
Name = ruled(
    StrictStr, "names must use letters, digits, '_', '-' or '.'", Field(pattern=r"^[A-Za-z0-9_.-]+$")
)


def _candidates(value):
    if not isinstance(value, dict) or not value:
        raise Refusal("must be a non-empty mapping of name -> fields")
    return {name: {} if spec is None else spec for name, spec in value.items()}


class Selection(Strict):  # a round's schema in a profile (stages.selection, .selection_round2, _round3)
    candidates: Annotated[dict[Name, Candidate], BeforeValidator(_candidates)]
    rules: Listed(OneOf(*RULE_COLUMNS))
    selection_seeds: Listed(Seed)
    final_seeds: Listed(Seed)
    final_training: OneOf(*FINAL_TRAINING)
    # named in advance: each averages its members' final runs (every final seed); a member is a candidate of
    # this round or "chosen" (the rule's choice)
    ensembles: dict[Name, Listed(StrictStr)] = None

    @model_validator(mode="after")
    def _members(self):
        if CHOSEN in self.candidates:  # an ensemble's "chosen" would mean two things (issue 33)
            raise ValueError(
                f"candidates: {CHOSEN!r} names the rule's choice in ensembles; name the candidate otherwise"
            )
        for name, members in (self.ensembles or {}).items():
            unknown = [m for m in members if m != CHOSEN and m not in self.candidates]
            if unknown:
                raise ValueError(
                    f"ensembles.{name}: {unknown[0]!r} is neither a candidate of this round nor {CHOSEN!r}; "
                    f"candidates: {', '.join(self.candidates)}"
                )
        return self

    @field_validator("final_seeds")
    @classmethod
    def _fresh(cls, seeds, info):
        shared = sorted(set(seeds) & set(info.data.get("selection_seeds", ())))
        if shared:
            raise Refusal(f"must be fresh seeds, none of the selection seeds (shared: {shared})")
        return seeds


class SelectionError(ValueError):
    """A choice that would use what it must not (test columns) or lacks what it needs."""


def candidate_config(
    spec: dict, seed: int, settings: dict, val_pairs=None, holdouts: bool = False
) -> RunConfig:
    """One run of a candidate: the profile's data, the corrected protocol, a validation split (by default the
    stage's 20 %), the holdouts (final runs only: ``settings``' confirmation and holdout seeds) and the
    candidate's fields."""
    val = val_pairs_for(settings["nb_pairs"]) if val_pairs is None else val_pairs
    fields = {k: settings[k] for k in DATA}
    fields.update(protocol="corrected", val_pairs=val)
    if holdouts:
        confirm, holdout = settings.get("confirmation_seeds") or (), settings.get("holdout_seed")
        fields.update(confirm_seeds=tuple(confirm), holdout_seed=holdout)
    fields.update({k: tuple(v) if k == "augment" else v for k, v in spec.items()})
    return RunConfig(**fields, seed=seed)


def candidate_configs(stage: dict, settings: dict, name: str) -> list[RunConfig]:
    return [candidate_config(stage["candidates"][name], s, settings) for s in stage["selection_seeds"]]


def final_configs(stage: dict, settings: dict, name: str, seeds=None) -> list[RunConfig]:
    """A candidate on the final seeds: on every training pair with ``final_training: all_pairs``, scored on
    the holdouts that ``settings`` declares too."""
    val = 0 if stage["final_training"] == "all_pairs" else None
    return [
        candidate_config(stage["candidates"][name], s, settings, val_pairs=val, holdouts=True)
        for s in (stage["final_seeds"] if seeds is None else seeds)
    ]


def choose(scores: list[dict]) -> dict:
    """The rule. ``scores``: one dict per (candidate, rule) in the profile's order, with ``column``
    and ``values`` (per selection seed). Refuses any column that is not a validation column."""
    if not scores:
        raise SelectionError("no candidate to choose from")
    for s in scores:
        if not str(s["column"]).startswith("val_"):
            raise SelectionError(f"the selection rule may use validation columns only, got {s['column']!r}")
    values = [np.asarray(s["values"], dtype=float) for s in scores]
    means = [float(v.mean()) if v.size and np.isfinite(v).all() else math.inf for v in values]
    best = int(np.argmin(means))  # the first listed on ties
    if means[best] == math.inf:
        raise SelectionError("every candidate's validation error is missing or not finite")
    return {**scores[best], "mean": means[best]}


def candidate_scores(stage: dict, settings: dict, store_dir) -> tuple[list, list]:
    """(scores for ``choose``, the runs still missing) from the store's selection runs."""
    scores, missing = [], []
    for name in stage["candidates"]:
        records = [(c.seed, find_record(store_dir, c)) for c in candidate_configs(stage, settings, name)]
        missing += [f"{name} seed {seed}" for seed, r in records if r is None]
        found = [r for _, r in records if r is not None]
        # runs recorded before their per-pair validation outputs (issue 33): their errors are unchecked
        unchecked = sum("val_head_prob" not in r["outputs"] for r in found)
        for rule in stage["rules"]:
            column = f"val_{RULE_COLUMNS[rule]}"
            values = [r["metrics"][column] for r in found]
            scores.append(dict(candidate=name, rule=rule, column=column, values=values, unchecked=unchecked))
    return scores, missing


def chosen_candidate(stage: dict, settings: dict, store_dir) -> dict | None:
    """The rule's choice once every selection run is in the store; None before."""
    scores, missing = candidate_scores(stage, settings, store_dir)
    return None if missing else choose(scores)


def final_candidates(stage: dict, chosen: str) -> list[str]:
    """Trained on the final seeds: the choice, then each other member of a declared ensemble."""
    members = [chosen if m == CHOSEN else m for ms in (stage.get("ensembles") or {}).values() for m in ms]
    return list(dict.fromkeys([chosen, *members]))
