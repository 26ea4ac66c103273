"""What a report is, said from its profile: title, banner, the protocol sentences.

Every sentence that states a protocol fact (seeds, epochs, protocols, stages, pairs) is generated
here from the profile, so a reduced run can never speak of the paper's ten seeds or 30 epochs.
"""
from __future__ import annotations

from pathlib import Path

from ..analysis.claims import PAPER_EPOCHS
from ..analysis.stats import seed_ranges
from .html import esc

PAPER_PROFILE = "paper"
TITLE = "Siamese networks that compare two MNIST digits: a reproduction"
STAGE_LABELS = {"lr_search": "LR search", "table1": "Table I", "table2": "Table II",
                "beyond_paper": "beyond the paper", "selection": "selection (declared in advance)"}
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
    sel = profile.stages.get("selection")
    if sel:
        parts.append(f"selection: {_n(len(sel['candidates']), 'candidate')} on {_n(len(sel['selection_seeds']), 'seed')}"
                     f", the choice on {_n(len(sel['final_seeds']), 'fresh seed')}")
    return "; ".join(parts)


def protocols_text(profile) -> str:
    labels = [PROTOCOL_LABELS[p] for p in profile.settings["protocols"]]
    return labels[0] if len(labels) == 1 else " and under ".join(labels)


def report_title(profile) -> str:
    """The title, in the HTML <title>, the PDF metadata and the first page."""
    if is_reduced(profile):
        return f"{TITLE} — a reduced run ({profile.name}), not the paper's protocol"
    return f"{TITLE}, under the paper's full protocol"


def banner_html(profile) -> str:
    """The first page's box: which profile, and for a reduced one, what it leaves out."""
    if is_reduced(profile):
        return (f'<div class="banner reduced"><b>Profile {esc(profile.name)}: a reduced run, not the paper\'s '
                f'protocol.</b> {esc(size_text(profile))}. The paper trains ten seeds for {PAPER_EPOCHS} epochs per '
                f'configuration; numbers at this size do not reproduce or refute it, and the paper\'s claims are '
                f'not tested here (rule in Section V).</div>')
    return (f'<div class="banner paper"><b>Profile {esc(profile.name)}: the paper\'s protocol.</b> '
            f'{esc(size_text(profile))}.</div>')


def abstract_opening(profile) -> str:
    """The abstract's first sentence."""
    stages = [s for s in ("table1", "table2") if s in profile.stages]
    what = {"table1": "four siamese CNNs that decide whether the first of two 14×14 MNIST digits is at most the "
                      "second, with and without weight sharing and auxiliary loss",
            "table2": "a LeNet5 ablation of batch norm and dropout"}
    did = "; ".join(what[s] for s in stages) or "no table of the paper"
    if is_reduced(profile):
        return (f"<b>Abstract</b>—Profile <i>{esc(profile.name)}</i>: a reduced run, not the paper's protocol "
                f"({esc(short_size(profile))}), of the paper's experiments ({did}) under {protocols_text(profile)}; "
                f"every number is set beside the published one, but at this size none confirms or refutes it.")
    return (f"<b>Abstract</b>—We re-ran the paper's experiments ({did}) under {protocols_text(profile)}, "
            f"and compare every number with the published one.")


def short_size(profile) -> str:
    """'100 pairs; 2 seeds and 2 epochs per configuration' over the paper's stages (ranges where they differ)."""
    gs = [profile.stages[s] for s in ("lr_search", "table1", "table2") if s in profile.stages]

    def span(values, word):
        lo, hi = min(values), max(values)
        return f"{lo} {word}{'' if hi == 1 else 's'}" if lo == hi else f"{lo}-{hi} {word}s"
    per = (f"; {span([len(g['seeds']) for g in gs], 'seed')} and {span([g['epochs'] for g in gs], 'epoch')} per "
           f"configuration") if gs else ""
    return f"{profile.settings['nb_pairs']} training pairs{per}"


def intro_html(profile) -> str:
    """Section I: the task, with this run's numbers of pairs, and what this report re-runs."""
    nb = profile.settings["nb_pairs"]
    same = ("This report re-runs every one of those experiments with the same data generator, the same seeds, "
            "learning rates and epochs" if not is_reduced(profile) else
            f"This report runs those experiments at a reduced size ({esc(short_size(profile))}; the paper: 1000 pairs, "
            f"ten seeds, {PAPER_EPOCHS} epochs)")
    return (f"<p>The task: given a pair of 14×14 grayscale digits from a down-scaled MNIST (a 2×14×14 tensor), predict "
            f"whether the first digit is less than or equal to the second. The class of each digit is given for "
            f"training as well, so a network may learn to recognise the digits first and compare them second. This "
            f"run draws {nb} training pairs and {nb} test pairs (the paper: 1000 and 1000; Fig. 1).</p>"
            f"<p>The paper compares four siamese convolutional networks with and without <i>weight sharing</i> and "
            f"<i>auxiliary losses</i> (Table I), and then studies <i>batch normalisation</i> and <i>dropout</i> on "
            f"LeNet5 (Table II). {same}, and sets our numbers next to the published ones, section by section as in the "
            f"paper. Every number shown is computed from the results store of this run, except the paper's published "
            f"values, which are quoted as printed.</p>")


def methodology_html(profile) -> str:
    """Section III's first paragraph, from the profile."""
    s = profile.settings
    out = []
    t1 = profile.stages.get("table1") or profile.stages.get("table2")
    if t1:
        k = len(t1["seeds"])
        paper_like = k == 10 and t1["epochs"] == PAPER_EPOCHS
        out.append(f"{'As in the paper, each' if paper_like else 'Each'} configuration is trained with "
                   f"{_n(k, 'seed')} ({seed_ranges(t1['seeds'])}){'' if k == 10 else '; the paper uses ten'}. A seed "
                   f"fixes the one shuffle of the {s['nb_pairs']} training pairs (the mini-batches then keep the same "
                   f"order every epoch) and the initialisation. Every model is trained with Adam and a cross-entropy "
                   f"loss, mini-batches of {s['batch_size']}, for {_n(t1['epochs'], 'epoch')}"
                   f"{'' if t1['epochs'] == PAPER_EPOCHS else f' (the paper: {PAPER_EPOCHS})'}, with "
                   f"{'the learning rate the paper chose for it from its LR search' if s['learning_rates'] == 'paper' else 'the learning rate this run chose from its own LR search'}"
                   f" (Fig. 3). We report the mean and standard deviation of the test error over the seeds.")
    protos = s["protocols"]
    if protos == ["corrected"]:
        out.append("One protocol is run: the <b>corrected</b> one, which does what the paper describes (both inputs "
                   "normalised with the training set's statistics, evaluation mode at test time, the same number of "
                   "epochs for every configuration). The authors' original protocol (Section IV-D) is not run.")
    elif protos == ["original"]:
        out.append("One protocol is run: the authors' <b>original</b> one, quirks included (Section IV-D).")
    else:
        out.append("Two protocols are run. The <b>corrected</b> protocol does what the paper describes: both the "
                   "training and the test input are normalised with the training set's mean and standard deviation, "
                   "the model is put in evaluation mode at test time, and every configuration trains the same number "
                   "of epochs. The <b>original</b> protocol reproduces the quirks of the authors' code and nothing "
                   "else: the runs without auxiliary loss train at most 25 epochs, the test input is left "
                   "un-normalised, and the model is never put in evaluation mode. The corrected tables are the main "
                   "result; section IV-D shows the original ones.")
    return "".join(f"<p>{p}</p>" for p in out)


def lr_search_intro(profile) -> str:
    g = profile.stages.get("lr_search")
    if not g:
        return '<p class="note">This profile runs no learning-rate search.</p>'
    return (f"<p>For each model the paper trained weight sharing + auxiliary loss + batch norm with six learning rates "
            f"for 100 epochs and three seeds, and picked one rate per model from the curves of the summed training "
            f"loss (Fig. 3, the paper's Fig. 2). This run searched {_n(len(g['lrs']), 'rate')} "
            f"({', '.join(f'{x:g}' for x in g['lrs'])}) for {_n(g['epochs'], 'epoch')} with "
            f"{_n(len(g['seeds']), 'seed')}. Our rule for the same choice is stated in Table IV: the lowest training "
            f"loss averaged over the last epochs.</p>")


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
    fill = ("fill one with <code>python -m siamese_lib run --profile smoke</code> (about a minute) or "
            "<code>make report PROFILE=quick</code> (about 5 minutes on 2 cores), then run this notebook again")
    if requested:
        store = runs / requested / "store"
        note = "" if _has_runs(store) else (f"The results store <code>{esc(str(store))}</code> is empty: "
                                             f"fill it with <code>python -m siamese_lib run --profile "
                                             f"{esc(requested)}</code>, then run this notebook again.")
        return requested, note
    for name in DEFAULT_ORDER:
        if _has_runs(runs / name / "store"):
            return name, f"Showing profile <i>{name}</i>: the first of {', '.join(DEFAULT_ORDER)} with runs in its store."
    looked = ", ".join(f"<code>{esc(str(runs / n / 'store'))}</code>" for n in DEFAULT_ORDER)
    return "smoke", f"No results store holds runs yet (looked in {looked}): showing the empty smoke profile; {fill}."
