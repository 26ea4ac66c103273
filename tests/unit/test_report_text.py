"""What a report says about itself: generated protocol sentences, the power rule for verdicts,
the default profile of the presentation notebooks."""
from __future__ import annotations

from pathlib import Path

from siamese_lib.analysis.claims import (MIN_SEEDS, NOT_TESTED, PAPER_EPOCHS, Claim, apply_power_rule,
                                         size_shortfall)
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.presentation import profile_text as pt


def test_quick_profile_speaks_of_its_own_size_never_the_papers():
    quick = load_profile("quick")
    for text in (pt.methodology_html(quick), pt.intro_html(quick), pt.abstract_opening(quick)):
        assert "As in the paper" not in text and "same seeds, learning rates and epochs" not in text
        assert "30 epochs," not in text and "for 30 epochs" not in text and "under both" not in text
    method = pt.methodology_html(quick)
    assert "2 seeds (1-2)" in method and "6 epochs (the paper: 30)" in method
    assert "One protocol is run" in method and "original protocol" in method
    assert "a reduced run, not the paper's protocol" in pt.report_title(quick)
    for text in (pt.banner_html(quick), pt.abstract_opening(quick)):
        assert "a reduced run, not the paper's protocol" in text and "1000 training" in text
        assert "profile quick" in text.lower().replace("<i>", "").replace("</i>", "").replace("<b>", "")
    assert "both" not in pt.abstract_opening(quick) and "the authors' original protocol" not in pt.abstract_opening(quick)


def test_paper_profile_states_the_papers_protocol():
    paper = load_profile("paper")
    method = pt.methodology_html(paper)
    assert "As in the paper, each configuration is trained with 10 seeds (1-10)" in method
    assert "30 epochs" in method and "(the paper: 30)" not in method and "Two protocols are run" in method
    assert pt.report_title(paper).endswith("profile paper: the paper's protocol")
    assert "reduced" not in pt.banner_html(paper) + pt.abstract_opening(paper)
    assert "a corrected protocol and under the authors' original protocol" in pt.abstract_opening(paper)
    assert "selection: 6 candidates on 3 seeds, the choice on 10 fresh seeds" in pt.size_text(paper)


def claim(verdict="confirmed"):
    return Claim("Aux loss helps", "it helps", "p < 0.05", verdict, "diff 9 points")


def test_power_rule_withholds_verdicts_below_its_size():
    assert size_shortfall(10, 30) == ""
    assert size_shortfall(2, 6) == (f"2 seeds per cell (the rule needs at least {MIN_SEEDS}) and 6 epochs "
                                    f"(the paper's setting: {PAPER_EPOCHS})")
    kept = apply_power_rule([claim(), claim("not confirmed")], 10, 30)
    assert [c.verdict for c in kept] == ["confirmed", "not confirmed"]
    for seeds, epochs in ((2, 30), (10, 6), (MIN_SEEDS - 1, 100)):
        out = apply_power_rule([claim(), claim("not confirmed"), claim("not evaluable")], seeds, epochs)
        assert [c.verdict for c in out] == [NOT_TESTED, NOT_TESTED, "not evaluable"]
        assert out[0].evidence.startswith("Not tested: ") and "diff 9 points" in out[0].evidence
    assert apply_power_rule([claim()], MIN_SEEDS, PAPER_EPOCHS)[0].verdict == "confirmed"


def test_quick_profile_claims_are_not_tested():
    assert pt.claims_size(load_profile("quick")) == (2, 6)
    assert "not tested at this size" in pt.claims_intro(load_profile("quick"))
    assert "not tested at this size" not in pt.claims_intro(load_profile("paper")).split("otherwise")[1][20:]


def test_pick_profile_prefers_a_store_with_runs(tmp_path: Path):
    name, note = pt.pick_profile("", tmp_path)
    assert name == "smoke" and "No results store holds runs yet" in note and "--profile smoke" in note
    (tmp_path / "quick" / "store").mkdir(parents=True)
    (tmp_path / "quick" / "store" / "abc.json").write_text("{}")
    assert pt.pick_profile("", tmp_path)[0] == "quick"
    name, note = pt.pick_profile("paper", tmp_path)
    assert name == "paper" and "is empty" in note and "--profile paper" in note


def _cell(p_value):
    from types import SimpleNamespace
    return SimpleNamespace(protocol="corrected", complete=True, p_value=p_value, table="table1", mean=5.0, std=1.0,
                           n=2, label="LeNet5 WS aux", paper_mean=6.08, paper_std=0.5)


def test_the_abstract_counts_agreeing_cells_only_at_the_rules_size():
    from siamese_lib.presentation.sections import abstract_html
    cells = [_cell(0.5), _cell(0.5), _cell(0.001)]
    quick = abstract_html(load_profile("quick"), cells, [])
    assert "3 cells of Tables I and II are complete; their agreement with the paper is not tested at this size " \
           "(2 seeds per cell" in quick and "agree with" not in quick
    paper = abstract_html(load_profile("paper"), cells, [])
    assert "2 of the 3 complete cells of Tables I and II agree with the paper" in paper


def test_the_wall_time_of_a_resumed_run_adds_up_its_invocations():
    from siamese_lib.presentation.sections import timings_html
    one = {"profile": "paper", "stages": {"training": 90.0}, "total_seconds": 100.0,
           "invocations": [{"started": "2026-11-27T17:10:00", "seconds": 100.0, "status": "ok", "trained": 3}]}
    assert "total: the whole command<" in timings_html(one) and "invocations of this run" not in timings_html(one)
    two = {**one, "total_seconds": 160.0, "invocations": one["invocations"] + [
        {"started": "2026-11-28T09:00:00", "seconds": 60.0, "status": "running", "trained": 2, "cpu": "Intel Xeon",
         "cores": 2}]}
    text = timings_html(two)
    assert "total: the whole command, 2 invocations added up" in text and "160 s (0.04 h)" in text
    assert "<td>1</td><td>2026-11-27T17:10:00</td><td>ok</td><td class=\"num\">3</td><td>?</td>" in text
    assert "<td>running when this report was rendered</td><td class=\"num\">2</td><td>Intel Xeon (2 cores)</td>" \
           "<td class=\"num\">60 s</td>" in text


def test_the_wall_time_says_how_many_runs_its_passes_trained():
    from siamese_lib.presentation.sections import _runs_trained_in_passes
    passes = {"invocations": [{"seconds": 100.0, "trained": 247}, {"seconds": 60.0, "trained": 623}]}
    assert _runs_trained_in_passes(passes, 870) == "; all 870 runs were trained in these passes"
    assert _runs_trained_in_passes(passes, 900) == ("; 870 of the 900 runs were trained in these passes, the other "
                                                   "30 read back from the store, trained before them")
    assert _runs_trained_in_passes({"invocations": [{"seconds": 1.0}]}, 5) == ""  # not counted: say nothing
    assert _runs_trained_in_passes({}, 5) == ""
