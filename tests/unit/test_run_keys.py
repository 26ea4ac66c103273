"""Run keys never change (issue 22): RunConfig's validation moved to pydantic; the key of every configuration
the shipped profiles imply, and of every run of the committed paper record, is the one main's code gave."""

import csv
import hashlib
import json
from pathlib import Path

import pytest

from siamese_lib import store
from siamese_lib.config import RunConfig, key_defaults
from siamese_lib.experiments import planning, profiles, selection

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = json.loads((Path(__file__).with_name("run_keys_main.json")).read_text())


def _all_configs(name):
    """Every run a profile implies; the selection stage's without the store (candidates and finals of each)."""
    p = profiles.load_profile(name)
    stages = [s for s in profiles.TRAINING_STAGES if s not in profiles.SELECTION_STAGES]
    out = [c for e in planning.expand(p, "", stages=stages) for c in e.configs()]
    for stage in profiles.SELECTION_STAGES:
        sel = p.stages.get(stage)
        for cand in (sel or {}).get("candidates", {}):
            out += selection.candidate_configs(sel, p.settings, cand) + selection.final_configs(
                sel, p.settings, cand
            )
    return out


@pytest.mark.parametrize("name", ["paper", "quick", "smoke"])
def test_every_run_of_a_shipped_profile_keeps_its_key(name):
    keys = sorted({store.run_key(c, d) for c in _all_configs(name) for d in ("cpu", "cuda")})
    expected = EXPECTED["profiles"][name]
    assert (len(keys), hashlib.sha256(" ".join(keys).encode()).hexdigest()) == (
        expected["keys"],
        expected["sha256"],
    )


def test_sampled_runs_keep_their_dict_and_key():
    for s in EXPECTED["sample"]:
        given = s.get("given")
        config = store.config_from_dict(s["config"]) if given is None else RunConfig(**given)
        d = config.to_dict()
        later = {
            k: d.pop(k) for k in list(d) if k not in s["config"]
        }  # fields added after the sample was taken
        assert later == {k: v for k, v in key_defaults(d).items() if k in later}, later  # at their old values
        assert json.dumps(d) == json.dumps(s["config"]), s  # same values, same types, same order
        assert store.run_key(config, s["device"]) == s["key"]
        assert store.config_from_dict(d) == config


BOOLS = ("weight_sharing", "aux_loss", "batch_norm", "dropout")
INTS = ("epochs", "batch_size", "seed", "nb_pairs", "data_seed", "val_pairs", "branch_calls")
FLOATS = ("lr", "aux_weight", "weight_decay", "l1")


def test_every_committed_paper_run_keeps_its_key():
    rows = list(csv.DictReader((ROOT / "report" / "paper" / "runs.csv").open()))
    assert rows
    names = list(RunConfig().to_dict())
    for row in rows:
        d = {k: row[k] for k in names if k in row}  # head, confirm_seeds: after this record
        d.update(
            {k: d[k] == "True" for k in BOOLS},
            **{k: int(d[k]) for k in INTS},
            **{k: float(d[k]) for k in FLOATS},
            augment=[a for a in d["augment"].split(",") if a],
        )
        if row.get("holdout_seed"):  # issue 37; a float column in runs.csv ("301.0"), "" where a run has none
            d["holdout_seed"] = int(float(row["holdout_seed"]))
        if "confirm_seeds" in d:  # a list column, written as "101,102,103" ("" when empty)
            d["confirm_seeds"] = [int(a) for a in d["confirm_seeds"].split(",") if a]
        assert store.run_key(store.config_from_dict(d), row["device"]) == row["key"], row["key"]


# plan_document of each shipped profile on cpu (no store: a selection's candidates only), as 445328e planned it
PLANS = {
    # issue 37: the paper profile gained a holdout and a third round (119 executions)
    "paper": (119, "48bc5b1df682a71ddaa72e4b92e3210fa05188b2a7bf0eafb0d0d26dfdb24515"),
    "quick": (42, "3ce301b538e7c6c8fa3625f7375624055bfe2a9a21083095a33dce808ca02d4c"),
    # issue 37: the smoke profile gained a holdout and a third round (paper and quick: unchanged)
    "smoke": (15, "34291da799edea786d53776979256f33f572558fd966573443d9ef3a0e0e2ba8"),
}


@pytest.mark.parametrize("name", list(PLANS))
def test_every_shipped_plan_keeps_its_executions_names_and_parameters(name):
    executions = planning.expand(profiles.load_profile(name), "/nonexistent/store", "cpu")
    plan = json.dumps(planning.plan_document(name, "cpu", executions))
    assert (len(executions), hashlib.sha256(plan.encode()).hexdigest()) == PLANS[name]
