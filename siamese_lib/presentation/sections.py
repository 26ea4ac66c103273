"""The report's generated sections: title, abstract, method, provenance, conclusion, data files."""

from __future__ import annotations

import importlib.metadata as md
import math
import os
import platform
from collections import Counter
from pathlib import Path

import torch

from .. import machine
from ..analysis.stats import seed_ranges
from ..analysis.tables import PAPER_PARAMETERS
from ..analysis.verdicts import verdict_frame
from ..common import write_atomically
from ..config import MODEL_NAMES
from ..experiments.profiles import PAPER_LRS
from ..experiments.variants import VARIANTS, applies_to
from ..models import build_model, count_parameters
from ..store import DIRTY, code_version
from .html import esc, html_table
from .profile_text import profile_numbers, report_title
from .templates import render, template_hash

# --- the report's generated sections ------------------------------------------------------------------


def _counts(values) -> str:
    c = Counter(v for v in values if v is not None)
    return ", ".join(f"{esc(k)} ({n})" for k, n in c.most_common()) or "–"


def title_html(profile, records, rendered: str) -> str:
    return (
        f'<div class="title-block"><h1>{esc(report_title(profile))}</h1>'
        '<p class="subtitle">of “EE-559 Deep Learning: Project 1” by R. Uebersax, P. Bedmar López and '
        "J. Perolini (EPFL)</p>"
        f'<p class="meta">{len(records)} training runs (code {_counts(r["code_version"] for r in records)}); '
        f"rendered {esc(rendered)} by code {esc(code_version())} with templates {template_hash()}.</p></div>"
        + render("banner.html.j2", profile=profile_numbers(profile))
        + dirty_banner_html(records)
    )


def dirty_banner_html(records) -> str:
    """Runs trained from uncommitted code (``run --allow-dirty``) say so on the first page."""
    dirty = Counter(r["code_version"] for r in records if str(r["code_version"]).endswith(DIRTY))
    if not dirty:
        return ""
    return (
        f'<div class="banner reduced"><b>{sum(dirty.values())} of {len(records)} runs were trained from '
        f"uncommitted code</b> ({_counts(r['code_version'] for r in records if r['code_version'] in dirty)}): "
        f"no commit reproduces them, so this report is an experiment, not a record.</div>"
    )


def parameters_html() -> str:
    rows = []
    for m in MODEL_NAMES:
        shared = count_parameters(build_model(m, weight_sharing=True))
        separate = count_parameters(build_model(m, weight_sharing=False))
        paper = PAPER_PARAMETERS.get(m)
        same = "–" if paper is None else "yes" if shared == paper else f"no ({shared - paper:+,})"
        rows.append(
            [
                m,
                "beyond the paper" if paper is None else f"{paper:,}",
                f"{shared:,}",
                same,
                "–" if paper is None else "not stated",
                f"{separate:,}",
            ]
        )
    return html_table(
        ["Model", "Paper, shared", "Ours, shared", "Same", "Paper, not shared", "Ours, not shared"],
        rows,
        caption="TABLE III: Parameters of the siamese models (batch norm on), with weight sharing "
        "(one branch for both images) and without (two branches), counted on the models as "
        "built; VGG is used only beyond the paper (Section VI).",
        cls="results",
    )


def lr_choice_html(lr: dict, evidence: bool = False) -> str:
    """Table IV from ``findings.lr_numbers``: the rates per model; with ``evidence``, Table S13 instead: the curves'
    evidence where a pick differs."""
    if not lr["rows"]:
        return '<p class="note">The profile has no LR search stage.</p>'
    pending = "search incomplete ({complete} of {rates} rates complete)"
    rows = [
        [
            r["model"],
            f"{r['paper']:g}",
            f"{r['rule']:g}" if r["rule"] is not None else pending.format(**r),
            f"{r['post_hoc']:g}" if r["post_hoc"] is not None else "–",
            f"{r['used']:g}" if r["used"] is not None else "–",
        ]
        for r in lr["rows"]
    ]
    out = html_table(
        [
            "Model",
            "Paper's choice",
            f"Our rule (last {lr['final_epochs']} epochs)",
            "Post-hoc rule (whole curve, log scale)",
            "Used for the tables",
        ],
        rows,
        cls="results",
        caption="TABLE IV: Learning rates: the paper's; the rate our rule, declared before the search ran, "
        f"picks (the lowest summed training loss averaged over the last {lr['final_epochs']} epochs "
        "and over seeds); the rate a post-hoc rule picks, found after seeing the paper's picks (the "
        "lowest geometric mean over every epoch of the seeds' mean curve: the lowest curve as the "
        "log-scale Fig. 3 draws it; reported only, it plans no run); and the rate the tables used.",
    )
    if not evidence:
        return out
    if not lr["evidence"]:
        return ""

    def bold(x, pick):
        text = f"{x:.3g}" if math.isfinite(x) else "diverged"
        return f"<b>{text}</b>" if pick else text

    ev = [
        [
            d["model"],
            f"{rate:g}" + (" (paper)" if rate == d["paper"] else ""),
            bold(s["rule"], rate == d["rule"]),
            bold(s["post_hoc"], rate == d["post_hoc"]),
        ]
        for d in lr["evidence"]
        for rate, s in d["scores"].items()
    ]
    return html_table(
        [
            "Model",
            "Rate",
            f"Our rule: mean of the last {lr['final_epochs']} epochs",
            "Post-hoc rule: geometric mean of every epoch",
        ],
        ev,
        cls="results",
        caption="TABLE S13: The curves' evidence for LeNet5_FullyConv and for every model where "
        "a rule's pick differs from the paper's: each rate's score under each rule, from "
        "the summed training "
        "loss averaged over seeds (lower wins; bold: the rule's pick; diverged: a "
        "non-finite loss at an epoch the rule reads).",
    )


def _runs_trained_in_passes(timings, n_records: int) -> str:
    """A pass over a store filled earlier reads its runs back: say how many, or the wall time misleads."""
    invocations = timings.get("invocations") or []
    if not invocations or any("trained" not in i for i in invocations):
        return ""  # older timings.json: the passes did not count their runs
    trained = sum(i["trained"] for i in invocations)
    if trained >= n_records:
        return f"; all {n_records} runs were trained in these passes"
    return (
        f"; {trained} of the {n_records} runs were trained in these passes, the other {n_records - trained} "
        f"read back from the store, trained before them"
    )


def protocol_html(profile, records, timings) -> str:
    s, st = profile.settings, profile.stages
    rows = [
        [
            "Data",
            f"{s['nb_pairs']} training and {s['nb_pairs']} test pairs, drawn once by the course prologue's "
            f"<code>generate_pair_sets</code> with data seed {s['data_seed']} (verified MNIST)",
        ],
        ["Protocols", ", ".join(s["protocols"])],
    ]
    for stage, name in (("lr_search", "LR search"), ("table1", "Table I"), ("table2", "Table II")):
        if stage in st:
            g = st[stage]
            extra = f"; rates {', '.join(f'{x:g}' for x in g['lrs'])}" if stage == "lr_search" else ""
            rows.append(
                [
                    name,
                    f"seeds {seed_ranges(g['seeds'])} ({len(g['seeds'])} runs per configuration), "
                    f"{g['epochs']} epochs{extra}",
                ]
            )
    if "beyond_paper" in st:
        g = st["beyond_paper"]
        variants = g.get("variants", list(VARIANTS))
        n = sum(applies_to(v, m) for m in g["models"] for v in variants)
        rows.append(
            [
                "Beyond the paper",
                f"{len(variants)} variants, {n} (model, variant) configurations over "
                f"{', '.join(g['models'])}; seeds {seed_ranges(g['seeds'])}, "
                f"{g['epochs']} epochs unless a variant sets its own (Supplement D)",
            ]
        )
    for stage, name in (("selection", "Selection"), ("selection_round2", "Second selection round")):
        if stage in st:
            g = st[stage]
            rows.append(
                [
                    name,
                    f"{len(g['candidates'])} declared candidates x {len(g['rules'])} comparison rules on "
                    f"selection seeds {seed_ranges(g['selection_seeds'])}; the choice on fresh seeds "
                    f"{seed_ranges(g['final_seeds'])} ({g['final_training'].replace('_', ' ')}; Supplement D)",
                ]
            )
    if s.get("confirmation_seeds"):
        rows.append(
            [
                "Confirmation set",
                f"data seeds {seed_ranges(s['confirmation_seeds'])}: the test images no test pair uses, paired "
                "afresh per seed; the selections' final runs and the paper's best cell are scored on it (Section VI)",
            ]
        )
    trained = sorted(
        {
            (r["config"]["epochs"], r.get("epochs_trained"))
            for r in records
            if r.get("epochs_trained") not in (None, r["config"]["epochs"])
        }
    )
    if trained:
        rows.append(
            [
                "Epochs actually trained",
                "; ".join(f"{t} instead of {e} (original protocol, no auxiliary loss)" for e, t in trained),
            ]
        )
    rows += [
        [
            "Mini-batch",
            f"{s['batch_size']} pairs, fixed order (the training pairs are shuffled once per seed)",
        ],
        [
            "Optimiser",
            "Adam (PyTorch defaults besides the rate), cross-entropy; auxiliary loss = CE(digit 1) + "
            "CE(digit 2) + CE(comparison), weights 1",
        ],
        [
            "Learning rates",
            "the paper's: " + ", ".join(f"{m} {lr:g}" for m, lr in PAPER_LRS.items())
            if s["learning_rates"] == "paper"
            else "chosen from this LR search by the rule in section IV-A",
        ],
        ["Device", _counts(r["device"] for r in records)],
        ["Torch", _counts(r["torch_version"] for r in records)],
        ["Threads per run", _counts(r.get("threads") for r in records)],
    ]
    compute = sum(r["metrics"].get("train_seconds", 0.0) for r in records)
    rows.append(["Training time", f"{compute / 3600:.2f} h summed over the {len(records)} runs"])
    if timings:
        rows.append(
            [
                "Wall time",
                f"{timings.get('total_seconds', float('nan')) / 3600:.2f} h in the runner's passes "
                f"({timings.get('jobs', '?')} parallel jobs, device {esc(timings.get('device', '?'))})"
                + _runs_trained_in_passes(timings, len(records)),
            ]
        )
    else:
        rows.append(["Wall time", "not recorded (no timings.json from the runner)"])
    return html_table(
        ["", ""], rows, caption="The protocol as run (from the profile and the records)", cls="plain"
    )


def environment_html(records) -> str:
    pkgs = [
        "torch",
        "torchvision",
        "numpy",
        "pandas",
        "scipy",
        "matplotlib",
        "nbconvert",
        "papermill",
        "weasyprint",
    ]
    versions = []
    for p in pkgs:
        try:
            versions.append(f"{p} {md.version(p)}")
        except md.PackageNotFoundError:
            versions.append(f"{p} (not installed)")
    cpu = machine.cpu_model()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows = [
        ["Rendered with", f"Python {platform.python_version()}; " + ", ".join(versions)],
        [
            "Render machine",
            f"{esc(cpu)}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, "
            f"GPU {esc(gpu)}",
        ],
        [
            "Runs trained on",
            "hosts "
            + _counts(r.get("host") for r in records)
            + "; devices "
            + _counts(r["device"] for r in records)
            + " (CPUs: the machines below)",
        ],
        [
            "Runs' software",
            "Python "
            + _counts(r.get("python") for r in records)
            + "; torch "
            + _counts(r["torch_version"] for r in records)
            + "; threads "
            + _counts(r.get("threads") for r in records),
        ],
        ["Git commit of the code (per run)", _counts(r["code_version"] for r in records)],
        [
            "Runs' dates",
            (min(r["created"] for r in records) + " to " + max(r["created"] for r in records))
            if records
            else "–",
        ],
    ]
    return html_table(["", ""], rows, caption="Environment", cls="plain")


def timings_html(timings) -> str:
    if not timings:
        return (
            '<p class="note">No <code>timings.json</code> in the runs folder: this report was rendered outside '
            "the runner, so the wall time per stage is not known.</p>"
        )
    rows = [[esc(k), f"{v:.0f} s ({v / 3600:.2f} h)"] for k, v in timings.get("stages", {}).items()]
    total, calls = timings.get("total_seconds"), timings.get("invocations", [])
    if total is not None:
        how = f", {len(calls)} invocations added up" if len(calls) > 1 else ""
        rows.append([f"total: the whole command{how}", f"<b>{total:.0f} s ({total / 3600:.2f} h)</b>"])
    out = html_table(
        ["Stage", "Wall time"],
        rows,
        cls="plain",
        col_classes=[None, "num"],
        caption=f"Wall time per stage: profile {esc(timings.get('profile', '?'))}, "
        f"{esc(timings.get('jobs', '?'))} jobs, device {esc(timings.get('device', '?'))}, "
        f"{esc(timings.get('started', '?'))} to {esc(timings.get('finished', '?'))}",
    )
    if len(calls) > 1:  # an interrupted run and its resumes: when and where each ran, what it trained
        rows = [
            [
                str(i),
                esc(c.get("started", "?")),
                "running when this report was rendered"
                if c.get("status") == "running"
                else esc(c.get("status", "?")),
                esc(c.get("trained", "?")),
                esc(f"{c['cpu']} ({c.get('cores', '?')} cores)" if c.get("cpu") else "?"),
                f"{float(c.get('seconds', 0)):.0f} s",
            ]
            for i, c in enumerate(calls, 1)
        ]
        out += html_table(
            ["", "Started", "Status", "Runs trained", "CPU", "Wall time"],
            rows,
            cls="plain",
            col_classes=[None, None, None, "num", None, "num"],
            caption="The invocations of this run: an interrupted run and its resumes",
        )
    return out


def notebooks_html(timings, runs_dir) -> str:
    """Every executed notebook named in timings.json, by its path under the runs folder (not a link:
    runs/ is not committed). The evidence for each number is its run's record: runs.csv gives each
    run's key and the record's path in the store."""
    if not timings or not timings.get("executions"):
        return '<p class="note">No executed notebooks are listed (no <code>timings.json</code>).</p>'
    rows = []
    for e in timings["executions"]:
        nb = Path(e.get("notebook", ""))
        rows.append(
            [
                esc(e.get("stage", "")),
                f"<code>{esc(nb.as_posix())}</code>",
                esc(e.get("status", "")),
                f"{e.get('seconds', 0):.0f}",
                str(e.get("runs", "")),
                str(e.get("trained", "")),
                str(e.get("cached", "")),
            ]
        )
    return html_table(
        [
            "Stage",
            "Executed notebook (under the runs folder)",
            "Status",
            "Seconds",
            "Runs",
            "Trained",
            "Cached",
        ],
        rows,
        cls="plain long",
        caption=f"Executed notebooks, one per configuration, written by the runner under "
        f"<code>{esc(Path(runs_dir).name)}/</code> of the runs folder (not committed; "
        f"<code>make report</code> writes them again). The record behind every number is "
        f"listed in runs.csv (column <code>record</code>).",
    )


def write_data_csvs(frame, cells, out_dir, margin: float) -> dict:
    """The data behind the report: runs.csv (one row per training run) and cells.csv (one row per table
    cell: paper's and our statistics, the equivalence test and the verdict), written atomically."""
    out_dir = Path(out_dir)
    runs = out_dir / "runs.csv"
    table = out_dir / "cells.csv"
    if not frame.empty:  # where each run's record lives: the evidence for every number built from it
        frame = frame.assign(
            record=[f"store/{k}.json" for k in frame["key"]]
        )  # and no text a spreadsheet runs:
        frame = frame.map(lambda v: f"'{v}" if isinstance(v, str) and v[:1] in tuple("=+-@\t\r") else v)
    write_atomically(
        runs,
        frame.sort_values(
            [
                "model",
                "protocol",
                "weight_sharing",
                "aux_loss",
                "batch_norm",
                "dropout",
                "lr",
                "epochs",
                "seed",
            ]
        )
        .to_csv(index=False)
        .encode()
        if not frame.empty
        else b"",
    )
    write_atomically(table, verdict_frame(cells, margin).to_csv(index=False).encode())
    return {"runs": runs, "cells": table}
