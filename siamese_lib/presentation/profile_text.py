"""What a report is, said from its profile: the title and the facts the templates state (seeds, epochs,
protocols, stages, pairs), so a reduced run never speaks of the paper's ten seeds or 30 epochs."""

from __future__ import annotations

from pathlib import Path

from .templates import escape

TITLE = "Siamese networks that compare two MNIST digits: a reproduction"
DEFAULT_ORDER = ("paper", "quick", "smoke")  # the profile a notebook shows by default: the first with runs


def report_title(profile) -> str:
    """The title, in the HTML <title>, the PDF metadata and the first page."""
    if profile.name != "paper":
        return f"{TITLE} — a reduced run ({profile.name}), not the paper's protocol"
    return f"{TITLE}, under the paper's full protocol"


def _tables(profile, stages=("lr_search", "table1", "table2")) -> list:
    return [profile.stages[x] for x in stages if x in profile.stages]


def profile_numbers(profile) -> dict:
    """What the templates say about the run (profile.macros.j2 words its size)."""
    s, tables = profile.settings, _tables(profile)
    numbers = {k: s[k] for k in ("nb_pairs", "batch_size", "learning_rates")}
    numbers.update(name=profile.name, reduced=profile.name != "paper", stages=profile.stages)
    numbers.update(protocols=list(s["protocols"]), confirmation_seeds=s.get("confirmation_seeds") or [])
    numbers.update(holdout_seed=s.get("holdout_seed"))
    numbers.update(table_seeds=[len(g["seeds"]) for g in tables], table_epochs=[g["epochs"] for g in tables])
    return numbers


def claims_size(profile) -> tuple[int, int]:
    """(fewest seeds per cell, fewest epochs) over the tables the claims compare."""
    tables = _tables(profile, ("table1", "table2"))
    return (min(len(g["seeds"]) for g in tables), min(g["epochs"] for g in tables)) if tables else (0, 0)


def _has_runs(store: Path) -> bool:
    return store.is_dir() and any(store.glob("*.json"))


def pick_profile(requested: str, runs: Path) -> tuple[str, str]:
    """(profile, note for the first output). ``requested`` empty: the first of DEFAULT_ORDER whose store under
    ``runs`` holds records, else smoke, the note saying which stores are empty and how to fill one."""
    if requested:
        store = escape(runs / requested / "store")
        fill = f"fill it with <code>python -m siamese_lib run --profile {escape(requested)}</code>"
        empty = f"The results store <code>{store}</code> is empty: {fill}, then run this notebook again."
        return requested, "" if _has_runs(runs / requested / "store") else empty
    order = ", ".join(DEFAULT_ORDER)
    for name in DEFAULT_ORDER:
        if _has_runs(runs / name / "store"):
            return name, f"Showing profile <i>{name}</i>: the first of {order} with runs in its store."
    looked = ", ".join(f"<code>{escape(runs / n / 'store')}</code>" for n in DEFAULT_ORDER)
    note = f"No results store holds runs yet (looked in {looked}): showing the empty smoke profile; "
    note += "fill one with <code>python -m siamese_lib run --profile smoke</code> (about a minute) or <code>"
    note += "make report PROFILE=quick</code> (about 5 minutes on 2 cores), then run this notebook again."
    return "smoke", note
