"""What a report says about itself: generated protocol sentences, the power rule for verdicts,
the default profile of the presentation notebooks."""

from __future__ import annotations

import html
import re
from pathlib import Path

from siamese_lib.analysis import findings, tables
from siamese_lib.analysis.claims import (
    MIN_SEEDS,
    NOT_TESTED,
    PAPER_EPOCHS,
    Claim,
    apply_power_rule,
)
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.presentation import profile_text as pt
from siamese_lib.presentation import templates


def _say(template, profile):
    return " ".join(html.unescape(templates.render(template, **_words("holds", profile.name))).split())


def test_quick_profile_speaks_of_its_own_size_never_the_papers():
    quick = load_profile("quick")
    for t in ("methodology.html.j2", "intro.html.j2", "abstract.html.j2"):
        text = _say(t, quick)
        assert "As in the paper" not in text and "same seeds, learning rates and epochs" not in text
        assert "30 epochs," not in text and "for 30 epochs" not in text and "under both" not in text
    method = _say("methodology.html.j2", quick)
    assert "2 seeds (1-2)" in method and "6 epochs (the paper: 30)" in method
    assert "One protocol is run" in method and "original protocol" in method
    assert "a reduced run (quick), not the paper's protocol" in pt.report_title(quick)
    assert "A reduced run (quick), not the paper's protocol" in _say("banner.html.j2", quick)
    assert "A reduced run (1000 training pairs" in _say("abstract.html.j2", quick)
    assert "1000 training" in _say("banner.html.j2", quick)
    assert "both" not in _say("abstract.html.j2", quick).split("Under the")[0]
    assert "the authors' original protocol" not in _say("abstract.html.j2", quick)


def test_paper_profile_states_the_papers_protocol():
    paper = load_profile("paper")
    method = _say("methodology.html.j2", paper)
    assert "As in the paper, each configuration is trained with 10 seeds (1-10)" in method
    assert "30 epochs" in method and "(the paper: 30)" not in method and "Two protocols are run" in method
    assert pt.report_title(paper).endswith(
        "under the paper's full protocol"
    ) and "profile" not in pt.report_title(paper)
    assert "reduced" not in _say("banner.html.j2", paper) + _say("abstract.html.j2", paper)
    assert "a corrected protocol and under the authors' original protocol" in _say("abstract.html.j2", paper)
    assert "selection: 6 candidates on 3 seeds, the choice on 10 fresh seeds" in _say("banner.html.j2", paper)


def claim(verdict="reproduced"):
    return Claim("Aux loss helps", "it helps", verdict, "holds", 2.5, 1.0, 4.0, 0.01)


def test_power_rule_withholds_verdicts_below_its_size():
    kept = apply_power_rule([claim(), claim("not detected")], 10, 30)
    assert [c.verdict for c in kept] == ["reproduced", "not detected"]
    for seeds, epochs in ((2, 30), (10, 6), (MIN_SEEDS - 1, 100)):
        out = apply_power_rule([claim(), claim("not detected"), claim("not evaluable")], seeds, epochs)
        assert [c.verdict for c in out] == [NOT_TESTED, NOT_TESTED, "not evaluable"]
        assert [c.old_verdict for c in out[:2]] == [NOT_TESTED, NOT_TESTED] and out[0].estimate == 2.5
    assert apply_power_rule([claim()], MIN_SEEDS, PAPER_EPOCHS)[0].verdict == "reproduced"


def test_quick_profile_claims_are_not_tested():
    assert pt.claims_size(load_profile("quick")) == (2, 6)


def test_pick_profile_prefers_a_store_with_runs(tmp_path: Path):
    name, note = pt.pick_profile("", tmp_path)
    assert name == "smoke" and "No results store holds runs yet" in note and "--profile smoke" in note
    (tmp_path / "quick" / "store").mkdir(parents=True)
    (tmp_path / "quick" / "store" / "abc.json").write_text("{}")
    assert pt.pick_profile("", tmp_path)[0] == "quick"
    name, note = pt.pick_profile("paper", tmp_path)
    assert name == "paper" and "is empty" in note and "--profile paper" in note


def _cell(errors, key=("LeNet5", True, True)):
    mean, std = tables.PAPER_TABLE1[key]
    return tables.Cell(
        "table1",
        "corrected",
        key,
        mean,
        std,
        expected_seeds=list(range(1, len(errors) + 1)),
        errors=list(errors),
        lr=0.005,
        epochs=30,
    )


def _words(claim_verdict, profile="paper"):
    near = [5.9, 6.0, 6.1, 6.2, 5.8, 6.0, 6.1, 6.0, 5.9, 6.2]  # the paper's 6.08: equivalent
    far = [x + 5 for x in near]  # 5 points off: different
    cells = [_cell(near), _cell(far, ("Net", True, True)), _cell([6.0, 9.0], ("ResNet", True, True))]
    words = findings.report_numbers(cells, ["corrected"], 1.0, "pooled_effect", (10, 30))
    words["claims"] = findings.claim_rows([claim(claim_verdict)], None, [claim()])
    words["tested"] = claim_verdict != NOT_TESTED
    return {**words, "profile": pt.profile_numbers(load_profile(profile))}


def _text(template, **words):
    return " ".join(html.unescape(templates.render(template, **words)).split())


def test_the_abstract_counts_verdicts_only_at_the_rules_size():
    tested = _text("abstract.html.j2", beyond="", **_words("reproduced"))
    # 3 distinct cells: one equivalent, one different, one inconclusive (n = 2), the counts adjusted over 3
    said = re.search(
        r"(\d+) of (\d+) distinct cells are equivalent.*?(\d+) differ and (\d+) are inconclusive", tested
    )
    assert said and said.groups() == ("1", "3", "1", "1")
    assert "Aux loss helps" in tested.split("reproduced")[1]
    reduced = _text("abstract.html.j2", beyond="", **_words(NOT_TESTED))
    assert "equivalent" not in reduced and "Aux loss helps" not in reduced


def test_the_findings_give_each_claims_verdict_and_effect():
    text = _text("findings.html.j2", beyond_headline="", **_words("contradicted"))
    item = text.split("Aux loss helps")[1].split("</li>")[0]
    assert "contradicted" in item and "+2.50 [+1.00, +4.00]" in item  # the pooled effect and its interval


def test_the_claims_table_sets_both_rules_beside_each_other():
    words = _words("not detected")
    table = _text("claims_detail.html.j2", **words)
    assert re.search(
        r"holds /(<br>)?\s*not detected", table
    )  # the old rule's verdict, then the pooled effect's
    assert "+2.50 [+1.00, +4.00]" in _text("discussion.html.j2", lr=None, **words)


def test_the_wall_time_of_a_resumed_run_adds_up_its_invocations():
    def timings_html(timings):
        return templates.macro("run_tables:timings", timings)

    one = {
        "profile": "paper",
        "stages": {"training": 90.0},
        "total_seconds": 100.0,
        "invocations": [{"started": "2026-11-27T17:10:00", "seconds": 100.0, "status": "ok", "trained": 3}],
    }
    assert "total: the whole command<" in timings_html(one) and "invocations of this run" not in timings_html(
        one
    )
    two = {
        **one,
        "total_seconds": 160.0,
        "invocations": one["invocations"]
        + [
            {
                "started": "2026-11-28T09:00:00",
                "seconds": 60.0,
                "status": "running",
                "trained": 2,
                "cpu": "Intel Xeon",
                "cores": 2,
            }
        ],
    }
    text = timings_html(two)
    assert "total: the whole command, 2 invocations added up" in text and "160 s (0.04 h)" in text
    assert '<td>1</td><td>2026-11-27T17:10:00</td><td>ok</td><td class="num">3</td><td>?</td>' in text
    assert (
        '<td>running when this report was rendered</td><td class="num">2</td><td>Intel Xeon (2 cores)</td>'
        '<td class="num">60 s</td>' in text
    )


def test_the_wall_time_says_how_many_runs_its_passes_trained():
    from siamese_lib.presentation.sections import protocol_html

    smoke = load_profile("smoke")

    def wall_time(timings, n):
        records = [{"config": {"epochs": 1}, "device": "cpu", "torch_version": "2", "metrics": {}}] * n
        return " ".join(html.unescape(protocol_html(smoke, records, timings)).split()).split("Wall time")[1]

    passes = {"total_seconds": 160.0, "invocations": [{"seconds": 100.0, "trained": 247}, {"trained": 623}]}
    assert "0.04 h in the runner's passes" in wall_time(passes, 870)
    assert "; all 870 runs were trained in these passes" in wall_time(passes, 870)
    assert (
        "; 870 of the 900 runs were trained in these passes, the other 30 read back from the store, trained "
        "before them" in wall_time(passes, 900)
    )
    uncounted = {"total_seconds": 1.0, "invocations": [{"seconds": 1.0}]}
    assert "passes" in wall_time(uncounted, 5) and "trained in these passes" not in wall_time(uncounted, 5)
    assert "not recorded" in wall_time({}, 5)


def test_table_iv_sets_the_post_hoc_rule_beside_ours_and_the_discussion_says_why_they_differ():
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_analysis import LATE_WINNER

    lr = findings.lr_numbers(LATE_WINNER, {"LeNet5_FullyConv": 0.05})
    table = " ".join(templates.macro("run_tables:lr_choice", lr).split())
    assert (
        "<th>Post-hoc rule (whole curve, log scale)</th>" in table
        and "found after seeing the paper's picks" in table
    )
    assert "<td>LeNet5_FullyConv</td><td>0.05</td><td>0.3</td><td>0.05</td><td>0.05</td>" in table
    evidence = " ".join(templates.macro("run_tables:lr_evidence", lr).split())
    assert "<td>0.3</td><td><b>0.0101</b></td><td>0.321</td>" in evidence and "0.0101" not in table
    assert "<td>0.005</td><td>diverged</td><td>diverged</td>" in evidence
    text = " ".join(templates.render("lr_detail.html.j2", lr=lr, **_words("holds")).split())
    assert "For LeNet5_FullyConv it picks 0.3 against the paper's 0.05" in text
    assert "lies below the 0.05 one in 10 of the 20 epochs (from epoch 11 to the end)" in text
    assert "it agrees with the paper for 1 of 1 models" in text and "against 0.321 at our rule's 0.3" in text
    assert "the tables use the paper's rates" in text


def test_the_discussion_names_a_post_hoc_pick_where_our_rule_agrees_with_the_paper():
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_analysis import _search

    # the paper's 0.05 ends lowest; 0.005 lies lower over the search as a whole (on a log scale)
    lr = findings.lr_numbers(_search(**{"0_05": [100.0] * 10 + [0.01] * 10, "0_005": [0.1] * 20}), {})
    text = " ".join(templates.render("lr_detail.html.j2", lr=lr, **_words("holds")).split())
    assert "On our curves it picks the paper's rate for every model searched." in text
    assert "it agrees with the paper for 0 of 1 models: for LeNet5_FullyConv it picks 0.005" in text
    assert "at the paper's and our rule's 0.05)" in text and "the tables use the rates Table IV lists" in text


def test_a_published_page_leaves_out_the_notebooks_warnings(tmp_path: Path):
    """stderr (a warning naming this machine's paths, or one only a loaded machine prints) stays in the executed
    notebook; what the cell prints and shows is published."""
    import nbformat

    from siamese_lib.presentation.render import notebook_to_html

    cell = nbformat.v4.new_code_cell("print('shown')")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="shown on the page\n"),
        nbformat.v4.new_output("stream", name="stderr", text="/home/someone/.venv/x.py: UserWarning: slow\n"),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), cell]), str(path))
    page = notebook_to_html(path, code=True)
    assert "shown on the page" in page and ">print<" in page  # the output and the code (highlighted)
    assert "UserWarning" not in page and "/home/someone" not in page
