"""The report's words: Jinja2 templates under report/template/paper/sections/, lent the number formats."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter

import jinja2
from markupsafe import Markup, escape

from ..analysis.beyond_paper import PAPER_BEST, RULE_LABELS
from ..analysis.claims import PAPER_EPOCHS
from ..analysis.stats import FDR, fmt_p, seed_ranges
from ..analysis.tables import TABLE_NAMES
from ..common import TEMPLATE_DIR
from ..config import HOLDOUT_PAIRS, ORIGINAL_NO_AUX_EPOCHS, PAPER_MODELS
from ..experiments.selection import RULE_TEXT
from ..experiments.variants import REFITS, VARIANTS


def fmt(x, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def signed(x: float, digits: int = 2) -> str:
    """+1.23 / −0.45, and 0.00 (never −0.00) when it rounds to zero."""
    text = f"{x:+.{digits}f}"
    return f"{0:.{digits}f}" if float(text) == 0 else text


def counts(values) -> str:
    """'a (3), b (1)': each value with how often it occurs, most frequent first."""
    found = Counter(v for v in values if v is not None).most_common()
    return ", ".join(f"{k} ({n})" for k, n in found) or "–"


_OPTIONS = dict(autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR / "paper" / "sections"), **_OPTIONS)
_ENV.filters.update(fmt=fmt, p=fmt_p, signed=signed, paper="{:g}".format, seeds=seed_ranges, counts=counts)
_ENV.filters.update(
    n=lambda k, word: f"{k} {word}{'' if k == 1 else 's'}", finite=lambda x: x if math.isfinite(x) else None
)
# markdown code spans (`x`) as <code>x</code>, the rest escaped
_ENV.filters["code"] = lambda text: Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))
_ENV.globals.update(paper_epochs=PAPER_EPOCHS, no_aux_epochs=ORIGINAL_NO_AUX_EPOCHS, fdr=FDR, refits=REFITS)
_ENV.globals.update(variants=VARIANTS, paper_best=PAPER_BEST, rule_labels=RULE_LABELS, rule_text=RULE_TEXT)
_ENV.globals.update(holdout_pairs=HOLDOUT_PAIRS, paper_models=PAPER_MODELS, table_names=TABLE_NAMES)


def template_hash() -> str:
    """12 hex digits of the sha256 of report/template's files (paths and bytes): the words' version."""
    digest = hashlib.sha256()
    for path in sorted(p for p in TEMPLATE_DIR.rglob("*") if p.is_file()):
        digest.update(path.relative_to(TEMPLATE_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def render(name: str, **numbers) -> str:
    """The template ``name`` (e.g. "abstract.html.j2") filled with ``numbers``."""
    return _ENV.get_template(name).render(**numbers)


def macro(name: str, *args, **kwargs) -> str:
    """Macro ``file:macro`` (e.g. "run_tables:timings") called with the arguments, as HTML."""
    file, _, call = name.partition(":")
    return str(getattr(_ENV.get_template(f"{file}.macros.j2").module, call)(*args, **kwargs))
