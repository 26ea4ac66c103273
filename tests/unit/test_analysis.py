"""Aggregation of the store into the paper's tables, the statistics against the paper, the LR rule,
the deviation reasons and the claims. Stores are built from synthetic but valid records, written
through the store's own functions (no training here)."""

from __future__ import annotations

import json
import math
import re
import textwrap
from pathlib import Path

import pytest

from siamese_lib.analysis import findings, stats, tables, verdicts
from siamese_lib.common import write_atomically
from siamese_lib.config import ERROR_METRICS, RunConfig
from siamese_lib.experiments import planning
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.store import SCHEMA_VERSION, load_records, record_path, run_key

ROOT = Path(__file__).resolve().parents[2]
PAPER_TEXT = ROOT / "tests" / "fixtures" / "paper_tables.txt"  # the paper's lines that print them, verbatim


# --- helpers shared with test_report.py ---------------------------------------------------------------


def put_record(
    store: Path,
    config: RunConfig,
    test_error: float,
    curve=None,
    train_seconds=1.0,
    device="cpu",
    created="2025-01-01T00:00:00+00:00",
) -> dict:
    """A valid record written atomically where the store would write it (load_records validates it)."""
    key = run_key(config, device)
    metrics = {f"{split}_{m}": 0.0 for split in ("train", "test") for m in ERROR_METRICS}  # every field
    metrics.update(test_error=float(test_error), train_seconds=train_seconds, wall_seconds=train_seconds)
    record = {
        "schema_version": SCHEMA_VERSION,
        "key": key,
        "config": config.to_dict(),
        "device": device,
        "metrics": metrics,
        "curves": {"train_loss": list(curve or [1.0] * config.trained_epochs)},
        "outputs": {
            k: [0.5 if k.endswith("prob") else 0] * config.nb_pairs
            for k in ("head_prob", "digit_prob", "digit1_pred", "digit2_pred")
        },
        "torch_version": "test",
        "code_version": "synthetic",
        "created": created,
        "epochs_trained": config.trained_epochs,
        "threads": 1,
        "host": "test",
        "cpu": "test",
        "python": "3.11",
    }
    write_atomically(record_path(store, key), json.dumps(record))
    return record


TINY_PROFILE = """\
description: tiny profile for tests
nb_pairs: 100
data_seed: 0
batch_size: 50
protocols: [corrected, original]
stages:
  lr_search:
    models: [Net, LeNet5, LeNet5_FullyConv, ResNet]
    lrs: [0.05, 0.005]
    seeds: [1, 2]
    epochs: 3
  table1:
    models: [Net, LeNet5, LeNet5_FullyConv, ResNet]
    weight_sharing: [false, true]
    aux_loss: [false, true]
    seeds: [1, 2, 3]
    epochs: 2
  table2:
    weight_sharing: [false, true]
    batch_norm: [false, true]
    dropout: [false, true]
    seeds: [1, 2, 3]
    epochs: 2
  figures:
  report:
"""


def write_profile(tmp_path: Path, text: str = TINY_PROFILE, name="tiny") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def fill_store(store: Path, profile, error_for, skip=()):
    """One record per configuration of the profile's Table I/II and LR search; error_for(stage, params, seed)
    gives the test error; configurations for which skip(stage, params, seed) is true are left out."""
    from siamese_lib.experiments.planning import expand

    done = set()
    for ex in expand(profile, str(store)):
        for cfg in ex.configs():
            if cfg in done or (skip and skip(ex.stage, ex.parameters, cfg.seed)):
                continue
            done.add(cfg)
            curve = [
                10.0 / (e + 1) * (1 + abs(math.log10(cfg.lr / 0.005))) for e in range(cfg.trained_epochs)
            ]
            put_record(store, cfg, error_for(ex.stage, ex.parameters, cfg.seed), curve=curve)
    return done


def paper_like(stage, p, seed):
    """The paper's mean for the cell, plus a fixed spread over seeds (mean unchanged for 3 seeds)."""
    if stage == "table1":
        mean = tables.PAPER_TABLE1[(p["model"], p["weight_sharing"], p["aux_loss"])][0]
    elif stage == "table2":
        mean = tables.PAPER_TABLE2[(p["weight_sharing"], p["batch_norm"], p["dropout"])][0]
    else:
        mean = 10.0
    return mean + {1: -0.5, 2: 0.0, 3: 0.5}.get(seed, 0.0)


# --- the paper's numbers as data -------------------------------------------------------------------------


def test_paper_numbers_are_the_printed_ones():
    text = PAPER_TEXT.read_text()
    t1 = text[text.index("TABLE I:") : text.index("TABLE II:")]
    t2 = text[text.index("TABLE II:") : text.index("V. DISCUSSION")]
    nums1 = [float(x) for x in re.findall(r"\t(\d+\.\d+)", t1)]
    expected1 = []
    for m in ("Net", "LeNet5", "LeNet5_FullyConv", "ResNet"):
        for ws in (False, True):
            no, yes = tables.PAPER_TABLE1[(m, ws, False)], tables.PAPER_TABLE1[(m, ws, True)]
            expected1 += [no[0], yes[0], no[1], yes[1]]  # printed: Mean row, then Std. dev. row
    assert nums1 == expected1
    nums2 = [float(x) for x in re.findall(r"\t(\d+\.\d+)", t2)]
    assert nums2 == [v for k in tables.TABLE2_KEYS for v in tables.PAPER_TABLE2[k]]
    assert re.findall(r"\*\*([\w ]+) \((\d+) parameters\)", text) == [
        (
            name.replace("_", " ").replace("FullyConv", "Fully Convolutional"),
            str(tables.PAPER_PARAMETERS[name]),
        )
        for name in ("LeNet5", "LeNet5_FullyConv", "Net", "ResNet")
    ]


# --- statistics --------------------------------------------------------------------------------------------


def test_welch_p_matches_hand_computation():
    # ours 5.0 ± 1.0 (n=4) against 6.08 ± 0.802 (n=10)
    v1, v2 = 1.0**2 / 4, 0.802**2 / 10
    t = (5.0 - 6.08) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / 3 + v2**2 / 9)
    assert t == pytest.approx(-1.92636, abs=1e-5)
    assert df == pytest.approx(4.63989, abs=1e-5)
    from scipy.stats import t as student_t

    by_hand = 2 * student_t.sf(abs(t), df)
    p = stats.welch_p(5.0, 1.0, 4, 6.08, 0.802, 10)
    assert p == pytest.approx(by_hand, rel=1e-9)
    assert p == pytest.approx(0.116482, abs=1e-6)
    assert math.isnan(stats.welch_p(5.0, float("nan"), 1, 6.08, 0.802, 10))


def test_seed_ranges():
    assert stats.seed_ranges([5, 1, 2, 3, 9, 10]) == "1-3, 5, 9-10"
    assert stats.seed_ranges([]) == ""


def test_cell_statistics_from_a_store(tmp_path):
    prof = load_profile(str(write_profile(tmp_path)))
    store = tmp_path / "store"
    fill_store(store, prof, lambda s, p, seed: {1: 4.0, 2: 5.0, 3: 6.0}.get(seed, 10.0))
    cells = tables.table_cells(load_records(store), planning.expand(prof, str(store)), prof.name)
    assert len(cells) == 2 * (16 + 8)
    c = next(
        c
        for c in cells
        if c.table == "table1" and c.protocol == "corrected" and c.key == ("LeNet5", True, True)
    )
    assert c.complete and c.n == 3
    assert c.mean == pytest.approx(5.0) and c.std == pytest.approx(1.0)  # sample std, ddof=1
    assert c.diff == pytest.approx(5.0 - 6.08)
    v1, v2 = 1.0 / 3, 0.8**2 / 10  # Table I prints 0.8 for this cell (Table II: 0.802)
    t = (5.0 - 6.08) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / 2 + v2**2 / 9)
    from scipy.stats import t as student_t

    assert c.p_value == pytest.approx(2 * student_t.sf(abs(t), df), rel=1e-9)
    assert c.lr == 0.005 and c.epochs == 2
    frame = verdicts.verdict_frame(cells, 1.0)
    row = frame[
        (frame.table == "Table I")
        & (frame.protocol == "corrected")
        & (frame.model == "LeNet5")
        & frame.weight_sharing
        & frame.aux_loss
    ].iloc[0]
    assert row["mean"] == pytest.approx(5.0) and row["paper_mean"] == 6.08 and row["n"] == 3
    assert row["welch_p"] == pytest.approx(c.p_value)


def test_missing_runs_are_reported_not_filled(tmp_path):
    prof = load_profile(str(write_profile(tmp_path)))
    store = tmp_path / "store"
    # drop seed 2 of one cell and the whole original-protocol Table II
    fill_store(
        store,
        prof,
        paper_like,
        skip=lambda s, p, seed: (
            (
                s == "table1"
                and p["model"] == "Net"
                and not p["weight_sharing"]
                and not p["aux_loss"]
                and p["protocol"] == "corrected"
                and seed == 2
            )
            or (s == "table2" and p["protocol"] == "original" and p["batch_norm"] is False)
        ),
    )
    cells = tables.table_cells(load_records(store), planning.expand(prof, str(store)), prof.name)
    c = next(c for c in cells if c.protocol == "corrected" and c.key == ("Net", False, False))
    assert not c.complete and c.missing_seeds == [2] and c.n == 0
    assert math.isnan(c.mean) and math.isnan(c.p_value)
    assert (
        "missing seeds 2 (2/3 runs in the store; lr 0.03, 2 epochs, corrected protocol)" == c.missing_text()
    )
    missing_t2 = [c for c in cells if c.table == "table2" and c.protocol == "original" and not c.complete]
    assert {c.key for c in missing_t2} == {k for k in tables.TABLE2_KEYS if not k[1]}
    # the best cells ignore incomplete ones
    ours_per, ours_best, _, paper_best = tables.best_cells(
        [c for c in cells if c.protocol == "corrected"], "table1"
    )
    assert ("Net", False, False) not in ours_per and paper_best == ("LeNet5_FullyConv", True, True)


def test_cells_outside_the_profile_say_so(tmp_path):
    text = TINY_PROFILE.replace(
        "models: [Net, LeNet5, LeNet5_FullyConv, ResNet]\n    weight_sharing",
        "models: [Net]\n    weight_sharing",
    ).replace("protocols: [corrected, original]", "protocols: [corrected]")
    prof = load_profile(str(write_profile(tmp_path, text)))
    cells = tables.table_cells([], planning.expand(prof, str(tmp_path / "store")), prof.name)
    other = next(c for c in cells if c.protocol == "corrected" and c.key == ("ResNet", True, True))
    assert not other.complete and "does not include" in other.missing_text()
    orig = [c for c in cells if c.protocol == "original"]
    assert orig and all("original protocol" in c.missing_text() for c in orig)


# --- the LR rule ------------------------------------------------------------------------------------------------


def test_auto_learning_rates_picks_the_lowest_final_loss(tmp_path):
    models = ("Net", "LeNet5", "LeNet5_FullyConv", "ResNet")
    search = f"{{models: [{', '.join(models)}], lrs: [0.05, 0.005, 0.0005], seeds: [1, 2], epochs: 15}}"
    table1 = "{models: [Net, LeNet5], weight_sharing: [true], aux_loss: [true], seeds: [1], epochs: 2}"
    text = f"nb_pairs: 100\nlearning_rates: auto\nstages:\n  lr_search: {search}\n  table1: {table1}\n"
    prof = load_profile(str(write_profile(tmp_path, text)))
    store = tmp_path / "store"
    losses = {0.05: 3.0, 0.005: 1.0, 0.0005: 2.0}
    for model in models:
        for lr, final in losses.items():
            for seed in (1, 2):
                curve = [50.0] * 5 + [final + 0.1 * seed] * 10  # the rule reads the last 10 epochs
                put_record(
                    store, RunConfig(model=model, lr=lr, seed=seed, epochs=15, nb_pairs=100), 5.0, curve=curve
                )
    # (a diverged rate never wins: its NaN record is refused by the store, its curve by rule_score, tested below)
    # Table I-like runs at one rate and another epoch count are not part of the search
    put_record(store, RunConfig(model="Net", lr=0.03, seed=1, epochs=2, nb_pairs=100), 5.0, curve=[0.0, 0.0])
    assert planning.learning_rates(prof, store) == {m: 0.005 for m in models}
    # the tables are planned at the chosen rates; a model the search left out has none
    assert [e.parameters["lr"] for e in planning.expand(prof, str(store), stages=["table1"])] == [
        0.005,
        0.005,
    ]
    assert planning.used_learning_rates(prof, ["Net", "VGG"], store) == {"Net": 0.005}
    narrow = load_profile(str(write_profile(tmp_path, text.replace("Net, LeNet5,", "Net,"), "narrow")))
    with pytest.raises(KeyError, match="auto needs an LR search of LeNet5"):
        planning.expand(narrow, str(store), stages=["table1"])


def test_auto_learning_rates_refuses_an_incomplete_search(tmp_path):
    prof = load_profile(str(write_profile(tmp_path)))
    store = tmp_path / "store"
    fill_store(
        store,
        prof,
        paper_like,
        skip=lambda s, p, seed: s == "lr_search" and p["model"] == "ResNet" and p["lr"] == 0.05 and seed == 2,
    )
    auto = load_profile(str(write_profile(tmp_path, "learning_rates: auto\n" + TINY_PROFILE, "auto")))
    with pytest.raises(KeyError, match="ResNet"):
        planning.learning_rates(auto, store)
    curves = planning.lr_search_curves(load_records(store), planning.expand(prof, str(store)))
    assert curves["ResNet"][0.05]["missing_seeds"] == [2]
    # the synthetic curves are lowest at 0.005 (see fill_store)
    assert planning.choose_learning_rates(curves) == {
        "Net": 0.005,
        "LeNet5": 0.005,
        "LeNet5_FullyConv": 0.005,
    }


def _search(**by_lr):
    """{model: {lr: entry}} of one model, LeNet5_FullyConv (the paper's 0.05), two seeds per rate: each seed's curve
    the given one plus a small seed offset."""
    return {
        "LeNet5_FullyConv": {
            float(lr.replace("_", ".")): {
                "curves": [[v * (1 + 0.01 * s) for v in c] for s in (1, 2)],
                "seeds": [1, 2],
                "missing_seeds": [],
            }
            for lr, c in by_lr.items()
        }
    }


# 0_3 ends lowest but lies far higher for the first half; 0_05 is flat and low; 0_005 is lowest until it diverges
LATE_WINNER = _search(
    **{"0_3": [10.0] * 10 + [0.01] * 10, "0_05": [0.1] * 20, "0_005": [0.001] * 19 + [float("nan")]}
)


def test_post_hoc_rule_reads_the_whole_curve_on_a_log_scale():
    assert planning.choose_learning_rates(LATE_WINNER) == {
        "LeNet5_FullyConv": 0.3
    }  # the last 10 epochs: 0.01 < 0.1
    # geometric means over all epochs: sqrt(10 * 0.01) = 0.32 for 0.3 against 0.1 for 0.05
    assert planning.choose_learning_rates(LATE_WINNER, planning.POST_HOC_RULE) == {"LeNet5_FullyConv": 0.05}
    assert planning.rule_score([[10.0, 0.1]], planning.POST_HOC_RULE) == pytest.approx(1.0)
    assert planning.rule_score([[1.0, 2.0], [3.0, 4.0]]) == pytest.approx(
        2.5
    )  # the seeds' mean curve, then its tail
    # an early divergence loses under the post-hoc rule even though the declared rule does not read it
    early_nan = _search(**{"0_05": [float("nan")] + [0.001] * 19, "0_005": [0.1] * 20})
    assert planning.choose_learning_rates(early_nan) == {"LeNet5_FullyConv": 0.05}
    assert planning.choose_learning_rates(early_nan, planning.POST_HOC_RULE) == {"LeNet5_FullyConv": 0.005}


def test_lr_numbers_give_both_rules_and_the_curves_evidence():
    lr = findings.lr_numbers(LATE_WINNER, {"LeNet5_FullyConv": 0.05})
    assert lr["rows"] == [
        {
            "model": "LeNet5_FullyConv",
            "paper": 0.05,
            "rule": 0.3,
            "post_hoc": 0.05,
            "used": 0.05,
            "rates": 3,
            "complete": 3,
        }
    ]
    (d,) = lr["differ"]
    assert d["rule_differs"] and not d["post_hoc_differs"] and d["faster"]
    assert d["crossing"] == {"epochs": 20, "below": 10, "since": 11}
    assert d["scores"][0.3]["rule"] == pytest.approx(0.01 * 1.015) and math.isinf(
        d["scores"][0.005]["post_hoc"]
    )
    assert lr["post_hoc_matches"] == 1 and lr["tables_use_paper"]
    agree = findings.lr_numbers(_search(**{"0_05": [0.1] * 20, "0_005": [1.0] * 20}), {})
    assert agree["differ"] == [] and agree["rows"][0]["rule"] == agree["rows"][0]["post_hoc"] == 0.05
    # LeNet5_FullyConv's evidence is shown even where both rules agree with the paper (the pick a record disputed)
    assert [e["model"] for e in agree["evidence"]] == ["LeNet5_FullyConv"] and set(
        agree["evidence"][0]["scores"]
    ) == {0.05, 0.005}


# --- deviations and claims --------------------------------------------------------------------------------------


def _cell(protocol, errors, key=("LeNet5", True, True), table="table1"):
    mean, std = tables.PAPER_TABLES[table][key]
    seeds = list(range(1, len(errors) + 1))
    return tables.Cell(
        table, protocol, key, mean, std, expected_seeds=seeds, errors=list(errors), lr=0.005, epochs=30
    )


def test_deviation_kinds_follow_the_two_protocols():
    agree = [5.2, 6.0, 6.9, 5.5, 6.6, 6.1, 5.8, 6.3, 5.9, 6.4]  # about the paper's 6.08, std 0.5
    far = [x + 4 for x in agree]  # 4 points above: different
    quirk = verdicts.deviations([_cell("corrected", far), _cell("original", agree)], 1.0)
    assert len(quirk) == 1 and quirk[0]["kind"] == "quirk"
    assert (
        verdicts.deviations([_cell("corrected", far), _cell("original", far)], 1.0)[0]["kind"]
        == "unexplained"
    )
    assert (
        verdicts.deviations([_cell("corrected", agree), _cell("original", far)], 1.0)[0]["kind"]
        == "original only"
    )
    assert (
        verdicts.deviations([_cell("corrected", far), _cell("original", [])], 1.0)[0]["kind"]
        == "undetermined"
    )
    assert verdicts.deviations([_cell("corrected", agree), _cell("original", agree)], 1.0) == []


def test_tost_on_hand_computable_cases():
    # equal means, std 1, n 10 a side: se = sqrt(0.2), Welch df = 18; p = P(T18 > 1/sqrt(0.2) = 2.236) = 0.0191
    assert stats.tost_p(5.0, 1.0, 10, 5.0, 1.0, 10, 1.0) == pytest.approx(0.01912, abs=1e-4)
    # a difference exactly at the margin: one of the one-sided tests sits at t = 0, so p = 0.5
    assert stats.tost_p(6.0, 1.0, 10, 5.0, 1.0, 10, 1.0) == pytest.approx(0.5)
    assert stats.tost_p(4.0, 1.0, 10, 5.0, 1.0, 10, 1.0) == pytest.approx(0.5)
    # far outside the margin: p near 1; undefined with one seed
    assert stats.tost_p(9.0, 1.0, 10, 5.0, 1.0, 10, 1.0) > 0.99
    assert math.isnan(stats.tost_p(5.0, 1.0, 1, 5.0, 1.0, 10, 1.0))


def test_benjamini_hochberg_on_a_known_list():
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): p * 4 / rank = 0.02, 0.02, 0.04, 0.04 (already monotone)
    out = stats.bh_adjust([0.01, 0.04, 0.03, 0.005, float("nan")])
    assert out[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02]) and math.isnan(out[4])
    # the step-up takes the minimum from above: 0.01, 0.02, 0.9 -> 0.03, 0.03, 0.9
    assert stats.bh_adjust([0.02, 0.01, 0.9]) == pytest.approx([0.03, 0.03, 0.9])


def test_cell_verdicts():
    assert verdicts.agreement(5.0, 0.5, 10, 5.1, 0.5, 10, 1.0).verdict == verdicts.EQUIVALENT
    assert verdicts.agreement(9.0, 0.5, 10, 5.0, 0.5, 10, 1.0).verdict == verdicts.DIFFERENT
    # a noisy cell near the paper's mean is neither shown equivalent nor different
    assert verdicts.agreement(6.0, 4.8, 10, 5.0, 0.6, 10, 1.0).verdict == verdicts.INCONCLUSIVE
    assert verdicts.agreement(5.0, float("nan"), 1, 5.0, 0.5, 10, 1.0).verdict == ""


def test_counts_are_over_distinct_runs():
    agree = [5.2, 6.0, 6.9, 5.5, 6.6, 6.1, 5.8, 6.3, 5.9, 6.4]
    t1 = _cell("corrected", agree)  # LeNet5, WS, aux: the same runs as ...
    t2 = _cell("corrected", agree, key=(True, True, False), table="table2")  # ... Table II's WS + BN cell
    t2_other = _cell("corrected", agree, key=(True, True, True), table="table2")
    assert tables.distinct_cells([t1, t2, t2_other], "corrected") == [t1, t2_other]
    frame = verdicts.verdict_frame([t1, t2, t2_other], 1.0)
    assert sum(verdicts.verdict_counts(frame, "corrected").values()) == 2
    assert frame["counted"].tolist() == [True, False, True]
    # a published cells.csv's summary columns give the same verdicts
    again = verdicts.verdict_frame(frame.drop(columns=["verdict", "counted", "tost_p"]), 1.0)
    assert again["verdict"].tolist() == frame["verdict"].tolist() and again["counted"].tolist() == [
        True,
        False,
        True,
    ]


def test_quirks_that_apply():
    q = tables.applicable_quirks
    assert set(q("table1", ("Net", True, False))) == {
        "25 epochs",
        "raw test input",
        "test-batch norm",
        "conv head",
        "two branch calls",
    }
    assert set(q("table1", ("LeNet5", False, True))) == {"raw test input", "test-batch norm"}
    assert set(q("table2", (True, False, True))) == {
        "raw test input",
        "test-time dropout",
        "two branch calls",
    }
    assert set(q("table2", (False, True, True))) == {"raw test input", "test-batch norm", "test-time dropout"}
    assert all(set(q("table2", k)) <= set(tables.QUIRKS) for k in tables.TABLE2_KEYS)


def test_quirk_shifts():
    per_cell, grouped = tables.quirk_shifts(
        [_cell("corrected", [5.0, 6.0, 7.0]), _cell("original", [7.0, 8.0, 9.0])]
    )
    assert per_cell["shift"].tolist() == [pytest.approx(2.0)]
    assert grouped.iloc[0]["quirks"] == "raw test input, test-batch norm, two branch calls"
    assert grouped.iloc[0]["cells"] == 1
    # Table II's cell with batch norm and no dropout is Table I's LeNet5 cell with aux loss: counted once
    twin = [
        _cell(p, e, (True, True, False), "table2")
        for p, e in (("corrected", [5, 6, 7]), ("original", [7, 8, 9]))
    ]
    per_cell, grouped = tables.quirk_shifts(
        [_cell("corrected", [5.0, 6.0, 7.0]), _cell("original", [7.0, 8.0, 9.0]), *twin]
    )
    assert len(per_cell) == 1 and grouped["cells"].sum() == 1


def test_used_learning_rates_are_the_paper_s_or_left_out_when_unknown(tmp_path):
    from siamese_lib.experiments.profiles import PAPER_LRS, load_profile

    assert planning.used_learning_rates(load_profile("paper"), list(PAPER_LRS), tmp_path) == PAPER_LRS
    auto = tmp_path / "auto.yaml"
    auto.write_text(
        "learning_rates: auto\nstages:\n  lr_search:\n    models: [Net]\n    lrs: [0.1, 0.01]\n"
        "    seeds: [1]\n    epochs: 2\n"
    )
    assert planning.used_learning_rates(load_profile(str(auto)), ["Net", "LeNet5"], tmp_path / "store") == {}


# --- the holdouts (selection_results): the confirmation set's code, parametrised by the set ---------------


def test_the_holdout_is_scored_like_the_confirmation_set_with_an_interval_for_pairs_that_share_no_image(
    monkeypatch,
):
    import numpy as np
    import pandas as pd

    from siamese_lib.analysis import selection_results as sel

    target = np.array([1, 0, 1, 1, 0])
    images = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])  # each image in one pair, as the holdout's
    monkeypatch.setattr(sel, "_holdout_set", lambda first, split: (target, images))
    probs = [[0.9, 0.6, 0.8, 0.4, 0.1], [0.7, 0.2, 0.3, 0.6, 0.2]]  # run 1 wrong on pairs 2, 4; run 2 on 3
    frame = pd.DataFrame(
        {
            "nb_pairs": 100,
            "data_seed": 0,
            "confirm_seeds": "",  # no confirmation set
            "holdout_seed": 7,
            "test_error": [4.0, 6.0],
            "holdout_error": [40.0, 20.0],
            "holdout_head_prob": probs,
        }
    )
    scored = sel.scored_runs(frame, "error")
    assert scored["confirm"] is None and scored["holdout"]["pairs"] == 5
    # by hand: the runs' spread (std of 40 and 20 over 2 runs) plus the set's sampling, which all runs share:
    # the variance of the mean of the 5 pairs' shares of wrong runs (0, .5, .5, .5, 0), as independent pairs
    shares = np.array([0, 0.5, 0.5, 0.5, 0])
    se = math.sqrt(200 / 2 + 1e4 * shares.var() / 5)
    assert scored["holdout"]["mean"] == 30.0
    assert (scored["holdout"]["lo"], scored["holdout"]["hi"]) == pytest.approx(
        (30 - 1.96 * se, 30 + 1.96 * se)
    )
    # one predictor (the ensemble, probabilities averaged: wrong on pair 3 only): the binomial interval
    ens = sel.ensemble_scores(frame, "head_prob")
    assert ens["test"] is None and ens["confirm"] is None  # no per-pair test outputs, no confirmation set
    assert ens["holdout"]["mean"] == pytest.approx(20.0)
    assert (ens["holdout"]["lo"], ens["holdout"]["hi"]) == pytest.approx(stats.error_interval([20.0], 5))
    # without a holdout_seed the run has no holdout, as a record made before it
    assert sel.scored_runs(frame.drop(columns="holdout_seed"), "error")["holdout"] is None


def test_on_the_holdout_s_own_pairs_the_shared_image_variance_is_that_of_independent_pairs():
    import numpy as np

    from siamese_lib.data import eval_indices

    images = eval_indices("holdout", 1000, 0, 201).numpy()
    assert len(np.unique(images)) == images.size == 40000  # each image in one pair only
    errors = np.random.default_rng(0).random(len(images)) < 0.02
    assert stats.shared_image_variance(errors, images) == pytest.approx(errors.var() / len(errors))
