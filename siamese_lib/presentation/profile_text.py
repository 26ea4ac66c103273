"""What a report is, said from its profile: the title and the facts the templates state (seeds, epochs,
protocols, stages, pairs), so a reduced run never speaks of the paper's ten seeds or 30 epochs."""

from __future__ import annotations

from pathlib import Path

from .templates import macro

DEFAULT_ORDER = ("paper", "quick", "smoke")  # the profile a notebook shows by default: the first with runs


def report_title(profile) -> str:
    """The title, in the HTML <title>, the PDF metadata and the first page."""
    return macro("profile:title", profile.name)


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


def pick_profile(requested: str, runs: Path) -> tuple[str, str]:
    """(profile, note for the first output). ``requested`` empty: the first of DEFAULT_ORDER whose store under
    ``runs`` holds records, else smoke, the note saying which stores are empty and how to fill one."""
    stores = {name: runs / name / "store" for name in ([requested] if requested else DEFAULT_ORDER)}
    found = next((name for name, s in stores.items() if s.is_dir() and any(s.glob("*.json"))), None)
    return requested or found or "smoke", macro("profile:picked", requested, found, stores)
