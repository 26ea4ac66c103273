"""What a report is, said from its profile: the title, and the facts the templates state (seeds, epochs,
protocols, stages, pairs), so a reduced run can never speak of the paper's ten seeds or 30 epochs.
"""

from __future__ import annotations

from pathlib import Path

from .html import esc

PAPER_PROFILE = "paper"
TITLE = "Siamese networks that compare two MNIST digits: a reproduction"


def is_reduced(profile) -> bool:
    return profile.name != PAPER_PROFILE


def report_title(profile) -> str:
    """The title, in the HTML <title>, the PDF metadata and the first page."""
    if is_reduced(profile):
        return f"{TITLE} — a reduced run ({profile.name}), not the paper's protocol"
    return f"{TITLE}, under the paper's full protocol"


def profile_numbers(profile) -> dict:
    """What the templates say about the run, from its profile (a reduced run never speaks of the paper's size;
    profile.macros.j2 words its size)."""
    s = profile.settings
    tables = [profile.stages[x] for x in ("lr_search", "table1", "table2") if x in profile.stages]
    return {
        "name": profile.name,
        "reduced": is_reduced(profile),
        "nb_pairs": s["nb_pairs"],
        "batch_size": s["batch_size"],
        "learning_rates": s["learning_rates"],
        "protocols": list(s["protocols"]),
        "stages": profile.stages,
        "confirmation_seeds": s.get("confirmation_seeds") or [],
        "table_seeds": [len(g["seeds"]) for g in tables],
        "table_epochs": [g["epochs"] for g in tables],
    }


def claims_size(profile) -> tuple[int, int]:
    """(fewest seeds per cell, fewest epochs) over the tables the claims compare."""
    tables = [profile.stages[s] for s in ("table1", "table2") if s in profile.stages]
    if not tables:
        return 0, 0
    return min(len(g["seeds"]) for g in tables), min(g["epochs"] for g in tables)


# --- which profile a notebook shows by default ----------------------------------------------------

DEFAULT_ORDER = ("paper", "quick", "smoke")


def _has_runs(store: Path) -> bool:
    return store.is_dir() and any(store.glob("*.json"))


def pick_profile(requested: str, runs: Path) -> tuple[str, str]:
    """(profile, note for the first output). ``requested`` empty: the first of DEFAULT_ORDER whose store under
    ``runs`` holds records, else smoke; the note then says which stores are empty and how to fill one."""
    fill = (
        "fill one with <code>python -m siamese_lib run --profile smoke</code> (about a minute) or "
        "<code>make report PROFILE=quick</code> (about 5 minutes on 2 cores), then run this notebook again"
    )
    if requested:
        store = runs / requested / "store"
        note = (
            ""
            if _has_runs(store)
            else (
                f"The results store <code>{esc(str(store))}</code> is empty: "
                f"fill it with <code>python -m siamese_lib run --profile "
                f"{esc(requested)}</code>, then run this notebook again."
            )
        )
        return requested, note
    for name in DEFAULT_ORDER:
        if _has_runs(runs / name / "store"):
            return (
                name,
                f"Showing profile <i>{name}</i>: the first of {', '.join(DEFAULT_ORDER)} with runs in its store.",
            )
    looked = ", ".join(f"<code>{esc(str(runs / n / 'store'))}</code>" for n in DEFAULT_ORDER)
    return (
        "smoke",
        f"No results store holds runs yet (looked in {looked}): showing the empty smoke profile; {fill}.",
    )
