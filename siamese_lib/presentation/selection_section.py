"""Supplement D's selection rounds, declared before they ran, and Table VII, where every headline number was
measured (the test pairs or the confirmation set); the words in selection_tables.macros.j2, the numbers from
analysis.selection_results."""

from __future__ import annotations

from ..analysis.selection_results import headline_numbers, space_frame
from ..experiments.selection import RULE_TEXT
from .figures import selection_figure
from .html import figure_html
from .templates import module, render, safe


def _macro(name: str):
    return getattr(module("selection_tables.macros.j2"), name)


def selection_html(result, numbers: tuple = ("S8", "S9", "S5")) -> str:
    """A round's declared space, each candidate's validation scores, the choice, the headline and its declared
    ensembles; one line when the profile has no such round or its runs are not stored yet. ``numbers``: the
    captions' numbers of its space table, scores table and figure."""
    if result is None:
        return '<p class="note">This profile has no such selection round.</p>'
    figure = headline = None
    if not result["missing"]:
        caption = f"Fig. {numbers[2]}: Validation error of each candidate and rule over the selection seeds (bars: means, "
        figure = safe(
            figure_html(selection_figure(result["runs"]), caption + "which the rule compares).", "80%")
        )
    if result["headline"] is not None:
        headline = safe(render("selection_headline.html.j2", selection=headline_numbers(result)))
    return str(
        _macro("selection")(result, space_frame(result["stage"]), RULE_TEXT, numbers, figure, headline)
    )


def confirmation_html(rounds: list, paper_cell, settings: dict) -> str:
    """Table VII: each headline on the test pairs and on the confirmation set, with 95 % intervals (``settings``:
    the profile's)."""
    scored = [paper_cell["confirm"] if paper_cell else None] + [
        r["confirm"] for _, r in rounds if r is not None
    ]
    n = settings["nb_pairs"]
    words = render(
        "confirmation.html.j2",
        seeds=settings["confirmation_seeds"] or [],
        pairs=next((s["pairs"] for s in scored if s), 0),
        test_pairs=n,
        data_seed=settings["data_seed"],
        se_1pct=100 * (0.01 * 0.99 / n) ** 0.5,
    )
    return words + str(_macro("confirmation")(rounds, paper_cell))
