"""The report's generated sections: title, results tables, method, the departures from the paper and the
authors' code (from the code's own settings, the effects measured), protocol, environment, data files."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from collections import Counter
from pathlib import Path

import pandas as pd
import torch

from .. import machine
from ..analysis.stats import mean_std_n, welch_p
from ..analysis.tables import best_cells
from ..analysis.verdicts import cell_agreement
from ..common import ROOT
from ..config import HEADS, PROTOCOL_SETTINGS, RunConfig
from ..experiments.profiles import PAPER_LRS
from ..experiments.variants import VARIANTS, applies_to
from ..models import build_model, count_parameters
from ..store import DIRTY, code_version
from ..training import make_optimizer
from .profile_text import profile_numbers, report_title
from .templates import macro, render, template_hash

VERSIONS = "torch torchvision numpy pandas scipy matplotlib nbconvert papermill weasyprint".split()
# The one-call against the two-call forward on the paper's best cell (LeNet5_FullyConv, weight sharing +
# auxiliary loss, corrected protocol, 10 seeds), one row per run as in runs.csv (verify can retrain them).
FORWARD_MEASUREMENT = ROOT / "docs" / "measurements" / "forward_calls.csv"
# Net's two heads on the four Net cells of Table I, original protocol, 10 seeds each, one row per run: the
# linear head's runs are the previous committed record's, the conv head's this code's.
HEAD_MEASUREMENT = ROOT / "docs" / "measurements" / "net_head.csv"


def title_html(profile, records, rendered: str) -> str:
    stamp = dict(title=report_title(profile), codes=[r["code_version"] for r in records], rendered=rendered)
    stamp.update(code=code_version(), templates=template_hash(), profile=profile_numbers(profile))
    return macro("run_tables:title", stamp) + dirty_banner_html(records)


def dirty_banner_html(records) -> str:
    """Runs trained from uncommitted code (``run --allow-dirty``) say so on the first page."""
    dirty = [r["code_version"] for r in records if str(r["code_version"]).endswith(DIRTY)]
    return macro("run_tables:dirty_banner", len(dirty), len(records), dirty) if dirty else ""


def results_html(cells, table: str, protocol: str, margin: float) -> str:
    """Table I or II in the paper's layout (its cells by key, their marks as tables.best_cells gives them, the
    complete ones' agreement), then the cells it lacks."""
    cs = {c.key: c for c in cells if c.table == table and c.protocol == protocol}
    t = dict(cells=cs, marks=best_cells(list(cs.values()), table), protocol=protocol)
    t["agree"] = {k: cell_agreement(c, margin) for k, c in cs.items() if c.complete}
    miss = [c for c in cs.values() if not c.complete]
    return macro(f"results:{table}", t) + macro("results:missing", miss, table, protocol)


def _welch(a, b) -> dict | None:
    """b against a: each side's (mean, std, n), b's mean minus a's, Welch p; None under 2 values a side."""
    (m1, s1, n1), (m2, s2, n2) = mean_std_n(a), mean_std_n(b)
    if n1 < 2 or n2 < 2:
        return None
    return {"one": (m1, s1, n1), "two": (m2, s2, n2), "diff": m2 - m1, "p": welch_p(m2, s2, n2, m1, s1, n1)}


def head_effect(csv_path: Path = HEAD_MEASUREMENT) -> list[dict]:
    """Per Net cell (ws, aux) of the original protocol: the conv head against the linear one on the test error
    (``_welch``), and each head's mean training error; [] when not measured."""
    if not Path(csv_path).is_file():
        return []
    rows = []
    for (ws, aux), cell in pd.read_csv(csv_path).groupby(["weight_sharing", "aux_loss"]):
        lin, conv = cell[cell["head"] == "linear"], cell[cell["head"] == "conv"]
        train = lin.train_error.mean(), conv.train_error.mean()
        if test := _welch(lin.test_error, conv.test_error):
            rows.append(dict(weight_sharing=bool(ws), aux_loss=bool(aux), test=test, train=train))
    return rows


def departures_html(grouped_shifts=None) -> str:
    """Supplement A: Table S1 from this code's own settings, with the effects measured where a measurement
    exists (``grouped_shifts``: tables.quirk_shifts' second frame), then Net's two heads."""
    words = dict(settings=PROTOCOL_SETTINGS, epochs=RunConfig().epochs)
    words["no_aux"] = {p: RunConfig(protocol=p, aux_loss=False).trained_epochs for p in PROTOCOL_SETTINGS}
    words["calls"] = {p: RunConfig(protocol=p).branch_calls for p in PROTOCOL_SETTINGS}
    words["nets"] = {h: count_parameters(build_model("Net", head=h)) for h in HEADS}
    words["foreach"] = make_optimizer(build_model("Net"), RunConfig()).defaults.get("foreach")
    words["measured"] = grouped_shifts is not None and len(grouped_shifts) > 0
    f = pd.read_csv(FORWARD_MEASUREMENT) if FORWARD_MEASUREMENT.is_file() else None  # two calls against one
    words["forward"] = None if f is None else _welch(*(f.test_error[f.branch_calls == k] for k in (1, 2)))
    return render("departures.html.j2", net_head=head_effect(), **words)


def _columns(records) -> dict:
    """Each run's provenance fields as columns, which the templates count."""
    fields = dict(devices="device", torch="torch_version", threads="threads", hosts="host", pythons="python")
    fields.update(codes="code_version", dates="created")
    return {k: [r.get(f) for r in records] for k, f in fields.items()}


def protocol_html(profile, records, timings) -> str:
    """Supplement B: the protocol as run, from the profile, the records and the runner's timings."""
    beyond, invocations = profile.stages.get("beyond_paper", {}), (timings or {}).get("invocations") or []
    variants = beyond.get("variants", list(VARIANTS))
    configs = sum(applies_to(v, m) for m in beyond.get("models", []) for v in variants)
    counted = invocations and all("trained" in i for i in invocations)  # older timings.json lack it
    short = {(r["config"]["epochs"], r.get("epochs_trained")) for r in records}
    p = dict(settings=profile.settings, stages=profile.stages, timings=timings, paper_lrs=PAPER_LRS)
    p.update(n=len(records), variants=len(variants), variant_configs=configs, **_columns(records))
    p.update(trained=sorted(x for x in short if x[1] not in (None, x[0])))
    p.update(compute=sum(r["metrics"].get("train_seconds", 0.0) for r in records))
    p.update(trained_in_passes=sum(i["trained"] for i in invocations) if counted else None)
    return macro("run_tables:protocol", p)


def _version(package: str) -> str:
    try:
        return f"{package} {md.version(package)}"
    except md.PackageNotFoundError:
        return f"{package} (not installed)"


def environment_html(records, verify: dict) -> str:
    """The render machine and software, the machines that trained the record (runs each), its last verify."""
    e = dict(python=platform.python_version(), versions=[_version(p) for p in VERSIONS], cpus=os.cpu_count())
    e.update(cpu=machine.cpu_model(), torch_threads=torch.get_num_threads(), runs=_columns(records))
    e.update(gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
    machines = Counter(machine.describe(r.get("machine")) for r in records).most_common()
    here = machine.describe(verify.get("machine_here")) if verify else ""
    return macro("run_tables:environment", e, machines, verify, here)
