"""The report's words: Jinja2 templates under report/template/paper/sections/, filled with the analysis' numbers.

A person edits the templates as documents; this module only loads them and lends them the number formats.
"""

from __future__ import annotations

import jinja2

from ..analysis.claims import PAPER_EPOCHS
from ..analysis.stats import fmt_p, seed_ranges
from ..common import TEMPLATE_DIR
from .html import fmt, paper_num, signed

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR / "paper" / "sections")),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
_ENV.filters.update(
    fmt=fmt,
    p=fmt_p,
    signed=signed,
    paper=paper_num,
    seeds=seed_ranges,
    n=lambda k, word: f"{k} {word}{'' if k == 1 else 's'}",
)


def render(name: str, **numbers) -> str:
    """The template ``name`` (e.g. "abstract.html.j2") filled with ``numbers``."""
    return _ENV.get_template(name).render(paper_epochs=PAPER_EPOCHS, **numbers)
