"""Sections VII and VIII: the selection rounds declared before they ran, and where every headline number was
measured (the test pairs or the confirmation set), as HTML; numbers from analysis.selection_results."""

from __future__ import annotations

from ..analysis.selection_results import headline_numbers, space_frame
from ..analysis.stats import seed_ranges
from ..experiments.selection import RULE_TEXT
from .figures import selection_figure
from .html import esc, figure_html
from .templates import fmt, html_table, render


def _interval(scored) -> str:
    if scored is None:
        return "–"
    return f"{fmt(scored['mean'])} [{fmt(scored['lo'])}, {fmt(scored['hi'])}]"


def selection_html(result, numbers: tuple = ("S8", "S9", "S5")) -> str:
    """A round's declared space, each candidate's validation scores, the choice, the headline and its declared
    ensembles; one line when the profile has no such round or its runs are not stored yet. ``numbers``: the
    captions' numbers of its space table, scores table and figure."""
    if result is None:
        return '<p class="note">This profile has no such selection round.</p>'
    space_no, scores_no, fig_no = numbers
    stage = result["stage"]
    space = space_frame(stage)
    ensembles = stage.get("ensembles") or {}
    named = "; ".join(f"{esc(k)}: {esc(' + '.join(v))}" for k, v in ensembles.items())
    out = [
        f"<p>Declared in the profile (<code>stages.{esc(result['name'])}</code>) before any of its runs: "
        f"{len(stage['candidates'])} candidates (Table {space_no}) x {len(stage['rules'])} comparison rules "
        f"({esc(', '.join(stage['rules']))}); every candidate trains on selection seeds "
        f"{seed_ranges(stage['selection_seeds'])}, hence on the same training/validation splits (20 % of the "
        f"training pairs held out). Rule: {esc(RULE_TEXT)}. The choice then trains on fresh seeds "
        f"{seed_ranges(stage['final_seeds'])} ({esc(stage['final_training'].replace('_', ' '))}), and its test "
        f"error over those seeds is the headline, computed once."
        + (
            f" Ensembles named in advance ({named}; <i>chosen</i> is the rule's choice): each averages its "
            f"members' probabilities of the chosen rule over every fresh seed."
            if ensembles
            else ""
        )
        + "</p>",
        html_table(
            list(space.columns),
            [[esc(str(v)) for v in row] for row in space.values.tolist()],
            f"TABLE {space_no}: The declared candidate space (blank: the paper's setting)",
            cls="results",
        ),
    ]
    if result["missing"]:
        return "".join(out) + (
            f'<p class="note">{len(result["missing"])} selection runs are not in the store yet '
            f"(first: {esc(result['missing'][0])}); no choice is made.</p>"
        )
    choice = result["choice"]
    rows = [
        [
            esc(r["candidate"]),
            esc(r["rule"]),
            f"{fmt(r['val_mean'])} ± {fmt(r['val_std'])}",
            str(int(r["n"])),
            "chosen" if (r["candidate"], r["rule"]) == (choice["candidate"], choice["rule"]) else "",
        ]
        for _, r in result["scores"].iterrows()
    ]
    out.append(
        html_table(
            ["candidate", "rule", "validation error %", "seeds", ""],
            rows,
            f"TABLE {scores_no}: Validation error per candidate and rule (the only columns the rule reads)",
            cls="results",
        )
    )
    out.append(
        figure_html(
            selection_figure(result["runs"]),
            f"Fig. {fig_no}: Validation error of each candidate and "
            "rule over the selection seeds (bars: means, which the rule compares).",
            width="80%",
        )
    )
    if result["headline"] is None:
        out.append(
            f'<p class="note">The choice, {esc(choice["candidate"])}, is not yet trained on its fresh seeds.</p>'
        )
        return "".join(out)
    out.append("<p>" + render("selection_headline.html.j2", selection=headline_numbers(result)) + "</p>")
    return "".join(out)


def _describe(stage: dict, name: str) -> str:
    """A candidate by what it is (model, epochs, rate), not by its name in the profile."""
    spec = stage["candidates"][name]
    return esc(f"{spec['model']}, {spec.get('epochs', '')} epochs, lr {spec.get('lr', '')}")


def confirmation_html(rounds: list, paper_cell, settings: dict) -> str:
    """Table VII: each headline on the test pairs and on the confirmation set, with 95 % intervals (``settings``:
    the profile's)."""
    rows = []
    if paper_cell is not None:
        rows.append(
            [
                "the paper's best (Table I, head)",
                "LeNet5_FullyConv, WS + aux",
                str(paper_cell["test"]["n"]),
                _interval(paper_cell["test"]),
                _interval(paper_cell["confirm"]),
            ]
        )
    for label, r in rounds:
        if r is None or r["headline"] is None:
            continue
        rows.append(
            [
                f"{label} choice ({esc(r['choice']['rule'].replace('_', ' '))})",
                _describe(r["stage"], r["choice"]["candidate"]),
                str(r["headline"]["n"]),
                _interval(r["headline"]),
                _interval(r["confirm"]),
            ]
        )
        rows += [
            [
                f"{label} ensemble of {e['runs']} runs",
                " +<br>".join(_describe(r["stage"], m) for m in e["members"]),
                str(e["runs"]),
                _interval(e["test"]),
                _interval(e["confirm"]),
            ]
            for e in r["ensembles"]
        ]
    scored = [paper_cell["confirm"] if paper_cell else None] + [
        r["confirm"] for _, r in rounds if r is not None
    ]
    pairs = next((s["pairs"] for s in scored if s), 0)
    table = (
        html_table(
            ["", "configuration", "runs", "test pairs: error % [95 %]", "confirmation set: error % [95 %]"],
            rows,
            "TABLE VII: Each headline where it was measured: the test pairs every stage has seen, and the "
            "confirmation set no decision has seen (95 % intervals: the runs' spread and the set's "
            "sampling combined, on the confirmation set with the covariance of pairs that share an image, "
            "Section III; an ensemble is one predictor)",
            cls="results",
        )
        if rows
        else '<p class="note">No run scored on the confirmation set is in the store yet.</p>'
    )
    n = settings["nb_pairs"]
    return (
        render(
            "confirmation.html.j2",
            seeds=settings["confirmation_seeds"] or [],
            pairs=pairs,
            test_pairs=n,
            data_seed=settings["data_seed"],
            se_1pct=100 * (0.01 * 0.99 / n) ** 0.5,
        )
        + table
    )
