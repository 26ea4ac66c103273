"""The report's generated sections: title, abstract, method, provenance, conclusion, data files."""

from __future__ import annotations

import importlib.metadata as md
import math
import os
import platform
from pathlib import Path

import torch

from .. import machine
from ..analysis.tables import PAPER_PARAMETERS
from ..analysis.verdicts import verdict_frame
from ..common import write_atomically
from ..config import MODEL_NAMES
from ..experiments.profiles import PAPER_LRS
from ..experiments.variants import VARIANTS, applies_to
from ..models import build_model, count_parameters
from ..store import DIRTY, code_version
from .profile_text import profile_numbers, report_title
from .templates import module, render, template_hash


def _macro(name: str):
    return getattr(module("run_tables.macros.j2"), name)


def title_html(profile, records, rendered: str) -> str:
    codes = [r["code_version"] for r in records]
    stamp = dict(title=report_title(profile), n=len(records), codes=codes, rendered=rendered)
    stamp.update(code=code_version(), templates=template_hash())
    return (
        str(_macro("title")(stamp))
        + render("banner.html.j2", profile=profile_numbers(profile))
        + dirty_banner_html(records)
    )


def dirty_banner_html(records) -> str:
    """Runs trained from uncommitted code (``run --allow-dirty``) say so on the first page."""
    dirty = [r["code_version"] for r in records if str(r["code_version"]).endswith(DIRTY)]
    return str(_macro("dirty_banner")(len(dirty), len(records), dirty)) if dirty else ""


def parameters_html() -> str:
    """Table III: each model's parameters with and without weight sharing, beside the paper's count."""
    models = [
        dict(
            name=m,
            paper=PAPER_PARAMETERS.get(m),
            shared=count_parameters(build_model(m, weight_sharing=True)),
            separate=count_parameters(build_model(m, weight_sharing=False)),
        )
        for m in MODEL_NAMES
    ]
    return str(_macro("parameters")(models))


def lr_choice_html(lr: dict, evidence: bool = False) -> str:
    """Table IV from ``findings.lr_numbers``: the rates per model; with ``evidence``, Table S13 instead: the curves'
    evidence where a pick differs."""
    if not lr["rows"]:
        return '<p class="note">The profile has no LR search stage.</p>'
    if not evidence:
        return str(_macro("lr_choice")(lr))
    return str(_macro("lr_evidence")(lr)) if lr["evidence"] else ""


def protocol_html(profile, records, timings) -> str:
    st = profile.stages
    variants = st.get("beyond_paper", {}).get("variants", list(VARIANTS))
    models = st.get("beyond_paper", {}).get("models", [])
    invocations = (timings or {}).get("invocations") or []
    counted = invocations and all(
        "trained" in i for i in invocations
    )  # older timings.json did not count them
    p = dict(settings=profile.settings, stages=st, n=len(records), timings=timings, paper_lrs=PAPER_LRS)
    p.update(
        variants=len(variants),
        variant_configs=sum(applies_to(v, m) for m in models for v in variants),
        trained=sorted(
            {
                (r["config"]["epochs"], r.get("epochs_trained"))
                for r in records
                if r.get("epochs_trained") not in (None, r["config"]["epochs"])
            }
        ),
        devices=[r["device"] for r in records],
        torch=[r["torch_version"] for r in records],
        threads=[r.get("threads") for r in records],
        compute=sum(r["metrics"].get("train_seconds", 0.0) for r in records),
        wall_h=(timings or {}).get("total_seconds", math.nan) / 3600,
        trained_in_passes=sum(i["trained"] for i in invocations) if counted else None,
    )
    return str(_macro("protocol")(p))


def environment_html(records) -> str:
    versions = []
    for p in (
        "torch",
        "torchvision",
        "numpy",
        "pandas",
        "scipy",
        "matplotlib",
        "nbconvert",
        "papermill",
        "weasyprint",
    ):
        try:
            versions.append(f"{p} {md.version(p)}")
        except md.PackageNotFoundError:
            versions.append(f"{p} (not installed)")
    e = dict(
        python=platform.python_version(), versions=versions, cpu=machine.cpu_model(), cpus=os.cpu_count()
    )
    e.update(
        threads=torch.get_num_threads(),
        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        hosts=[r.get("host") for r in records],
        devices=[r["device"] for r in records],
        pythons=[r.get("python") for r in records],
        torch=[r["torch_version"] for r in records],
        run_threads=[r.get("threads") for r in records],
        codes=[r["code_version"] for r in records],
        dates=[r["created"] for r in records],
    )
    return str(_macro("environment")(e))


def timings_html(timings) -> str:
    return str(_macro("timings")(timings))


def notebooks_html(timings, runs_dir) -> str:
    """Every executed notebook named in timings.json, by its path under the runs folder (not a link:
    runs/ is not committed). The evidence for each number is its run's record: runs.csv gives each
    run's key and the record's path in the store."""
    return str(_macro("notebooks")(timings, Path(runs_dir).name))


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
