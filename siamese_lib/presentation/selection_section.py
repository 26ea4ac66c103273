"""Section VII: the selection declared before it ran, as HTML (numbers from analysis.selection_results)."""
from __future__ import annotations

from ..analysis.selection_results import headline_numbers, space_frame
from ..analysis.stats import seed_ranges
from ..experiments.selection import RULE_TEXT
from .figures import selection_figure
from .html import esc, fmt, figure_html, html_table
from .templates import render


def selection_html(result) -> str:
    """The declared space, each candidate's validation scores, the choice and the headline; one line when
    the profile has no selection stage or its runs are not stored yet."""
    if result is None:
        return '<p class="note">This profile has no selection stage.</p>'
    stage = result["stage"]
    space = space_frame(stage)
    out = [f"<p>Declared in the profile before anything ran: {len(stage['candidates'])} candidates (Table XII) x "
           f"{len(stage['rules'])} comparison rules ({esc(', '.join(stage['rules']))}); every candidate trains on "
           f"selection seeds {seed_ranges(stage['selection_seeds'])}, hence on the same training/validation splits "
           f"(20 % of the training pairs held out). Rule: {esc(RULE_TEXT)}. The choice then trains on fresh seeds "
           f"{seed_ranges(stage['final_seeds'])} ({esc(stage['final_training'].replace('_', ' '))}), and its test "
           f"error over those seeds is the headline, computed once.</p>",
           html_table(list(space.columns), [[esc(str(v)) for v in row] for row in space.values.tolist()],
                      "TABLE XII: The declared candidate space (blank: the paper's setting)", cls="results")]
    scores = result["scores"]
    if result["missing"]:
        return "".join(out) + (f'<p class="note">{len(result["missing"])} selection runs are not in the store yet '
                               f'(first: {esc(result["missing"][0])}); no choice is made.</p>')
    choice = result["choice"]
    rows = [[esc(r["candidate"]), esc(r["rule"]), f"{fmt(r['val_mean'])} ± {fmt(r['val_std'])}", str(int(r["n"])),
             "chosen" if (r["candidate"], r["rule"]) == (choice["candidate"], choice["rule"]) else ""]
            for _, r in scores.iterrows()]
    out.append(html_table(["candidate", "rule", "validation error %", "seeds", ""], rows,
                          "TABLE XIII: Validation error per candidate and rule (the only columns the rule reads)",
                          cls="results"))
    out.append(figure_html(selection_figure(result["runs"]), "Fig. 4: Validation error of each candidate and rule "
                           "over the selection seeds (bars: means, which the rule compares).", width="80%"))
    if result["headline"] is None:
        out.append(f'<p class="note">The choice, {esc(choice["candidate"])}, is not yet trained on its fresh seeds.</p>')
        return "".join(out)
    out.append("<p>Pre-declared selection: " + render("selection_headline.html.j2", selection=headline_numbers(result))
               + "</p>")
    return "".join(out)
