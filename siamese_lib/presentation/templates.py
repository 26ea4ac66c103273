"""The report's words: Jinja2 templates under report/template/paper/sections/, filled with the analysis' numbers.

A person edits the templates as documents; this module only loads them and lends them the number formats.
"""

from __future__ import annotations

import hashlib

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


def template_hash() -> str:
    """The first 12 hex digits of the sha256 over every file under report/template (path and bytes, in path
    order): the render stamp names the words as the code version names the code."""
    digest = hashlib.sha256()
    for path in sorted(p for p in TEMPLATE_DIR.rglob("*") if p.is_file()):
        digest.update(path.relative_to(TEMPLATE_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def render(name: str, **numbers) -> str:
    """The template ``name`` (e.g. "abstract.html.j2") filled with ``numbers``."""
    return _ENV.get_template(name).render(paper_epochs=PAPER_EPOCHS, **numbers)
