"""What a report is, said from its profile: the title, and the facts the templates state (seeds, epochs,
protocols, stages, pairs), so a reduced run can never speak of the paper's ten seeds or 30 epochs.
"""

from __future__ import annotations

from pathlib import Path

from ..analysis.stats import seed_ranges
from .html import esc

PAPER_PROFILE = "paper"
TITLE = "Siamese networks that compare two MNIST digits: a reproduction"
STAGE_LABELS = {
    "lr_search": "LR search",
    "table1": "Table I",
    "table2": "Table II",
    "beyond_paper": "beyond the paper",
    "selection": "selection (declared in advance)",
}
PROTOCOL_LABELS = {"corrected": "a corrected protocol", "original": "the authors' original protocol"}


def is_reduced(profile) -> bool:
    return profile.name != PAPER_PROFILE


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def stage_size(profile, stage: str) -> str:
    """'2 seeds (1-2), 6 epochs' for a stage of the profile; '' when absent."""
    g = profile.stages.get(stage)
    if not g or "seeds" not in g:
        return ""
    return f"{_n(len(g['seeds']), 'seed')} ({seed_ranges(g['seeds'])}), {_n(g['epochs'], 'epoch')}"


def size_text(profile) -> str:
    """Seeds, epochs and pairs of every training stage, in one line."""
    parts = [f"{profile.settings['nb_pairs']} training and {profile.settings['nb_pairs']} test pairs"]
    for stage in ("lr_search", "table1", "table2", "beyond_paper"):
        if stage_size(profile, stage):
            parts.append(f"{STAGE_LABELS[stage]}: {stage_size(profile, stage)}")
    for stage, label in (("selection", "selection"), ("selection_round2", "second selection round")):
        sel = profile.stages.get(stage)
        if sel:
            parts.append(
                f"{label}: {_n(len(sel['candidates']), 'candidate')} on {_n(len(sel['selection_seeds']), 'seed')}"
                f", the choice on {_n(len(sel['final_seeds']), 'fresh seed')}"
            )
    if profile.settings.get("confirmation_seeds"):
        parts.append(f"a confirmation set of {_n(len(profile.settings['confirmation_seeds']), 'data seed')}")
    return "; ".join(parts)


def protocols_text(profile) -> str:
    labels = [PROTOCOL_LABELS[p] for p in profile.settings["protocols"]]
    return labels[0] if len(labels) == 1 else " and under ".join(labels)


def report_title(profile) -> str:
    """The title, in the HTML <title>, the PDF metadata and the first page."""
    if is_reduced(profile):
        return f"{TITLE} — a reduced run ({profile.name}), not the paper's protocol"
    return f"{TITLE}, under the paper's full protocol"


def short_size(profile) -> str:
    """'100 pairs; 2 seeds and 2 epochs per configuration' over the paper's stages (ranges where they differ)."""
    gs = [profile.stages[s] for s in ("lr_search", "table1", "table2") if s in profile.stages]

    def span(values, word):
        lo, hi = min(values), max(values)
        return f"{lo} {word}{'' if hi == 1 else 's'}" if lo == hi else f"{lo}-{hi} {word}s"

    per = (
        (
            f"; {span([len(g['seeds']) for g in gs], 'seed')} and {span([g['epochs'] for g in gs], 'epoch')} per "
            f"configuration"
        )
        if gs
        else ""
    )
    return f"{profile.settings['nb_pairs']} training pairs{per}"


def profile_numbers(profile) -> dict:
    """What the templates say about the run, from its profile (a reduced run never speaks of the paper's size)."""
    s = profile.settings
    return {
        "name": profile.name,
        "reduced": is_reduced(profile),
        "nb_pairs": s["nb_pairs"],
        "batch_size": s["batch_size"],
        "learning_rates": s["learning_rates"],
        "protocols": list(s["protocols"]),
        "protocols_text": protocols_text(profile),
        "stages": profile.stages,
        "size_text": size_text(profile),
        "short_size": short_size(profile),
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
