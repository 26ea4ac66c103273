"""The selection stage: declared in the profile, chosen on validation columns only, final seeds fresh."""

from __future__ import annotations

import pytest

from siamese_lib.experiments import planning
from siamese_lib.experiments.profiles import ProfileError, load_profile, notebook_name
from siamese_lib.experiments.selection import SelectionError, choose, final_configs

SETTINGS = dict(nb_pairs=1000, data_seed=0, batch_size=100)


def test_rule_refuses_test_columns():
    scores = [
        {"candidate": "a", "rule": "head", "column": "val_error", "values": [3.0, 3.0]},
        {"candidate": "b", "rule": "head", "column": "test_error", "values": [1.0, 1.0]},
    ]
    with pytest.raises(SelectionError, match="validation columns only"):
        choose(scores)


def test_rule_takes_the_lowest_mean_validation_error_first_listed_on_ties():
    scores = [
        {"candidate": "a", "rule": "head", "column": "val_error", "values": [2.0, 4.0]},
        {"candidate": "b", "rule": "digit_prob", "column": "val_digit_prob_error", "values": [3.0, 3.0]},
        {"candidate": "c", "rule": "head", "column": "val_error", "values": [1.0, float("nan")]},
    ]
    choice = choose(scores)
    assert (choice["candidate"], choice["rule"], choice["mean"]) == ("a", "head", 3.0)


def test_paper_selection_is_declared_and_its_final_seeds_are_fresh():
    stage = load_profile("paper").stages["selection"]
    assert not set(stage["selection_seeds"]) & set(stage["final_seeds"]) and len(stage["final_seeds"]) == 10
    ex = planning.expand(load_profile("paper"), "", stages=("selection",))  # no store: candidates only
    assert [e.name for e in ex] == [f"candidate-{n}" for n in stage["candidates"]]
    configs = [c for e in ex for c in e.configs()]
    assert {c.seed for c in configs} == set(stage["selection_seeds"])
    assert all(c.val_pairs == 200 and c.protocol == "corrected" for c in configs)
    final = final_configs(stage, SETTINGS, "vgg_lr2e-3")
    assert [c.seed for c in final] == stage["final_seeds"] and all(c.val_pairs == 0 for c in final)
    budget = sum(planning.run_cost(c) for c in configs) / 60
    assert budget <= 45, f"selection costs {budget:.0f} CPU-minutes by the planner's estimate"


def write(tmp_path, body):
    p = tmp_path / "p.yaml"
    p.write_text("stages:\n  selection:\n" + body)
    return str(p)


BASE = (
    "    candidates: {a: {model: LeNet5, lr: 0.002}}\n    rules: [head]\n    selection_seeds: [1, 2]\n"
    "    final_training: all_pairs\n"
)


def test_profile_refuses_final_seeds_used_for_selection(tmp_path):
    with pytest.raises(ProfileError, match="fresh seeds"):
        load_profile(write(tmp_path, BASE + "    final_seeds: [2, 3]\n"))
    assert load_profile(write(tmp_path, BASE + "    final_seeds: [3, 4]\n")).stages["selection"][
        "final_seeds"
    ] == [3, 4]


def test_profile_refuses_unknown_candidate_fields_and_bad_values(tmp_path):
    with pytest.raises(ProfileError, match="unknown key 'stages.selection.candidates.a.test_pairs'"):
        load_profile(write(tmp_path, BASE.replace("lr: 0.002", "test_pairs: 5") + "    final_seeds: [3]\n"))
    with pytest.raises(ProfileError, match="'stages.selection.candidates.a.lr': must be a finite number > 0"):
        load_profile(write(tmp_path, BASE.replace("lr: 0.002", "lr: -1") + "    final_seeds: [3]\n"))


def write_rounds(tmp_path, round2: str, top: str = ""):
    p = tmp_path / "r.yaml"
    p.write_text(
        top + "stages:\n  selection:\n" + BASE + "    final_seeds: [3, 4]\n  selection_round2:\n" + round2
    )
    return str(p)


ROUND2 = (
    "    candidates: {a: {model: LeNet5, lr: 0.002}, b: {model: VGG, lr: 0.002}}\n    rules: [head]\n"
    "    selection_seeds: [5, 6]\n    final_seeds: [7, 8]\n    final_training: all_pairs\n"
)


def test_a_second_round_needs_fresh_seeds_and_declared_ensemble_members(tmp_path):
    with pytest.raises(
        ProfileError, match=r"fresh seeds, none of an earlier round's \(shared: \[4\], of selection\)"
    ):
        load_profile(write_rounds(tmp_path, ROUND2.replace("final_seeds: [7, 8]", "final_seeds: [4, 8]")))
    round3 = "  selection_round3:\n" + ROUND2.replace("[5, 6]", "[9, 10]").replace("[7, 8]", "[8, 11]")
    with pytest.raises(
        ProfileError, match=r"selection_round3 must use fresh .* \(shared: \[8\], of selection_round2\)"
    ):
        load_profile(write_rounds(tmp_path, ROUND2 + round3))
    with pytest.raises(ProfileError, match="'c' is neither a candidate of this round nor 'chosen'"):
        load_profile(write_rounds(tmp_path, ROUND2 + "    ensembles: {mixed: [a, c]}\n"))
    with pytest.raises(ProfileError, match="candidates: 'chosen' names the rule's choice"):  # issue 33
        load_profile(write_rounds(tmp_path, ROUND2.replace("{a: {", "{chosen: {")))
    p = load_profile(
        write_rounds(
            tmp_path,
            ROUND2 + "    ensembles: {mixed: [a, b], seeds: [chosen]}\n",
            top="confirmation_seeds: [101]\n",
        )
    )
    assert p.stages["selection_round2"]["ensembles"] == {"mixed": ["a", "b"], "seeds": ["chosen"]}
    ex = planning.expand(p, "", stages=("selection_round2",))
    assert [e.name for e in ex] == ["candidate-a", "candidate-b"] and notebook_name(
        ex[0].stage
    ) == "selection"
    assert all(not c.confirm_seeds for e in ex for c in e.configs())  # the choice is never scored on it


def test_final_runs_train_the_choice_and_every_ensemble_member_scored_on_the_confirmation_set():
    from siamese_lib.experiments.selection import final_candidates

    stage = {"ensembles": {"seeds": ["chosen"], "mixed": ["b", "a", "chosen"]}}
    assert final_candidates(stage, "a") == ["a", "b"] and final_candidates({}, "b") == ["b"]
    stage = load_profile("paper").stages["selection_round2"]
    final = final_configs(stage, {**SETTINGS, "confirmation_seeds": [101, 102, 103]}, "vgg_100ep")
    assert all(
        c.confirm_seeds == (101, 102, 103) and c.confirm_pairs == 12000 and c.val_pairs == 0 for c in final
    )
