"""Publishing the record from a store's planned runs, seeding a store from it (all or nothing), deriving the
CSVs from it alone: what the profile plans decides what enters and leaves."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import store
from ..analysis.tables import TABLE_NAMES, cell_label, records_frame, table_cells
from ..analysis.verdicts import verdict_frame
from ..common import UsageError, report_root, runs_root, safe_name, write_atomically
from ..experiments.planning import Execution, PlanError, expand, load_plan, plan_document
from ..experiments.profiles import TRAINING_STAGES
from . import published as pub
from .dataset import pairs_table

RUN_ORDER = "model protocol weight_sharing aux_loss batch_norm dropout lr epochs seed".split()  # runs.csv
RUNNER_PARAMETERS = ("threads", "force")  # what the runner adds to a plan's parameters (notebooks.make_jobs)


class RecordChanged(UsageError):
    """What rendering would publish differs from the published record (one line, exit 2)."""


def profile_plan(profile, store_dir, device: str) -> dict:
    """The plan the profile gives with this store, as the runner writes it less RUNNER_PARAMETERS."""
    stages = [s for s in TRAINING_STAGES if s in profile.stages]
    executions = expand(profile, str(store_dir), device, stages=stages)
    named = [Execution(ex.stage, safe_name(ex.name), ex.parameters, ex.configs()) for ex in executions]
    return json.loads(json.dumps(plan_document(profile.name, device, named)))


def checked_plan(text: str, profile, store_dir, where) -> dict:
    """The plan ``text`` less RUNNER_PARAMETERS, once it is the one the profile gives with ``store_dir``; else
    RecordFileError naming the first difference."""
    try:
        plan = json.loads(text)
        device = plan["device"]
        for e in plan["executions"]:
            e["parameters"] = {k: v for k, v in e["parameters"].items() if k not in RUNNER_PARAMETERS}
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device {device!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        why = f"not a plan the runner writes ({type(exc).__name__}: {exc})"
        raise pub.RecordFileError(f"{where}: {why}") from None
    try:
        given = profile_plan(profile, store_dir, device)
    except Exception as exc:  # noqa: BLE001 - e.g. auto learning rates without their search: one line
        why = f"the profile {profile.name!r} cannot be planned from it: {exc}"
        raise pub.RecordFileError(f"{where}: {why}") from None
    if plan != given:
        ours = {(e["stage"], e["name"]): e for e in given["executions"]}
        theirs = {(e["stage"], e["name"]): e for e in plan["executions"]}
        differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        what = "its profile" if plan.get("profile") != profile.name else "its runs"
        what = "/".join(differ[0]) if differ else what
        raise pub.RecordFileError(
            f"{where}: its plan is not the plan profile {profile.name!r} gives ({len(differ)} executions "
            f"differ, e.g. {what}); refusing it"
        )
    return given


def record_history(runs_dir, report_dir, fresh: bool) -> dict:
    """The history for a record's metadata: with ``fresh`` (a record made on purpose, or the first one)
    ``runs_dir``'s timings.json and last verify.json; else what the published record keeps."""
    try:
        kept = pub.read_metadata(pub.record_file(report_dir))
    except pub.RecordFileError:
        kept = {}
    out = {}
    for name, rel in pub.HISTORY.items():
        try:
            data = json.loads((Path(runs_dir) / rel).read_text()) if fresh else None
        except (OSError, json.JSONDecodeError):
            data = None
        text = json.dumps(data) if isinstance(data, dict) else kept.get(name)
        if text:
            out[pub.META + name] = text
    return out


def record_bytes(store_dir, profile, plan_path, history: dict | None = None) -> tuple[bytes, list]:
    """(the published file's bytes, its records): the store's runs that the plan (the profile's) lists, each
    through the gate, ``history`` (record_history) in the metadata; the same records give the same bytes."""
    store_dir, plan_path = Path(store_dir), Path(plan_path)
    if not plan_path.is_file():
        why = "run the profile first (python -m siamese_lib run)"
        raise pub.RecordFileError(f"no plan at {plan_path}: {why}")
    plan = checked_plan(plan_path.read_text(), profile, store_dir, plan_path)
    planned, records = set(plan["runs"]), []
    for path in (store.record_path(store_dir, key) for key in sorted(planned)):
        try:
            if path.exists():
                records.append(store.admit(store.load_record(path), path, planned))
        except store.CorruptRecord as exc:
            raise pub.RecordFileError(f"refusing to publish: {exc}") from None
    metadata = {
        pub.META + "profile": profile.name,
        pub.META + "profile_yaml": Path(profile.path).read_text(),
        # the plan as the profile gives it: no --jobs, --force or --threads of the run that wrote it
        pub.META + "plan": json.dumps(plan, indent=1),
        **(history or {}),
    }
    table = pub.records_table(records, metadata)
    floats = [n for n in table.column_names if pa.types.is_floating(pub.OUTPUT_TYPES.get(n, pa.null()))]
    data = pub.parquet_bytes(table, floats)
    back = pub.records_from_table(pq.read_table(pa.BufferReader(data)))
    lost = [a["key"] for a, b in zip(records, back) if a != b]
    if lost:  # e.g. outputs with more decimals than float32 keeps: never publish what reads back otherwise
        why = f"{len(lost)} records would not read back as stored (e.g. {lost[0]})"
        raise ValueError(f"{why}; nothing published")
    return data, records


def publish_record(store_dir, report_dir, profile, plan_path, replace: bool = False) -> tuple[Path, str]:
    """(path, "written" or "unchanged"): the record and ``pairs.parquet`` from the store (record_bytes); an
    existing record is rewritten only with ``replace`` (`run --force`, `publish`), else RecordChanged."""
    path, pairs_path = pub.record_file(report_dir), Path(report_dir) / pub.PAIRS_FILE
    there = path.exists() or path.is_symlink()
    history = record_history(Path(plan_path).parent, report_dir, fresh=replace or not there)
    data, records = record_bytes(store_dir, profile, plan_path, history)
    pairs_meta = {pub.META + "format_version": str(pub.FORMAT_VERSION)}
    pairs = pub.parquet_bytes(pairs_table(records, pairs_meta), ["image1", "image2"])
    if there:
        old = pub.read_metadata(path, profile.name) and path.read_bytes()
        old_pairs = pairs_path.read_bytes() if pairs_path.is_file() and not pairs_path.is_symlink() else None
        if old == data and old_pairs in (pairs, None):  # a record published before its pairs file gains it
            if old_pairs is None:
                pub.write_pair(pairs_path, pairs)
            return path, "unchanged"
        if not replace:
            raise RecordChanged(_changes(path, records, profile.name, old == data))
    pub.write_pair(pairs_path, pairs)
    pub.write_pair(path, data)
    return path, "written"


def _changes(path, records, profile_name: str, same_runs: bool = False) -> str:
    old = {r["key"]: r for r in pub.records_from_table(pq.read_table(path))}
    new = {r["key"]: r for r in records}
    added, gone = sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys())
    changed = sorted(k for k in new.keys() & old.keys() if new[k] != old[k])
    kinds = ((added, "added"), (gone, "gone"), (changed, "changed"))
    parts = [f"{len(v)} {w} (e.g. {v[0]})" for v, w in kinds if v]
    what = ", ".join(parts) or ("its pairs file" if same_runs else "metadata")
    return (
        f"{path}: what this store would publish differs from the published record ({what}: e.g. a run "
        f"trained while exploring); not rewritten. To make a new record from this store: python -m "
        f"siamese_lib publish --profile {profile_name}; to keep the published one, reseed a fresh store from "
        f"it (move runs/{profile_name}/store away, then make report)"
    )


def seed_store(path, store_dir, profile, say=None) -> tuple[int, int]:
    """Write the published records that ``store_dir`` lacks (those there are kept: they may be this machine's)
    once all pass (admitted): else nothing. The store is marked (SEEDED_MARK). Returns (written, kept)."""
    store_dir = Path(store_dir)
    store_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".seeding-", dir=store_dir.parent) as staging:
        records = admitted(path, profile, Path(staging), store.is_clean_store(store_dir), say)[0]
        store_dir.mkdir(parents=True, exist_ok=True)
        kept = [r["key"] for r in records if store.record_path(store_dir, r["key"]).exists()]
        for key in {r["key"] for r in records} - set(kept):
            os.replace(store.record_path(staging, key), store.record_path(store_dir, key))
        write_atomically(store_dir / store.SEEDED_MARK, f"{Path(path).resolve()}\n")
        return len(records) - len(kept), len(kept)


def admitted(path, profile, staging: Path, clean: bool, say=None) -> tuple[list, str]:
    """(records, plan text) of a file of ``profile``: each record written into ``staging`` by the gate and
    planned by its plan, the profile's (``clean``: no run from uncommitted code); else RecordFileError."""
    meta, records = pub.read_published(path, profile.name, say)
    if "plan" not in meta:
        why = "holds no plan, so its runs cannot be checked against the profile's"
        raise pub.RecordFileError(f"{path}: {why}")
    dirty = [r["key"] for r in records if str(r.get("code_version")).endswith(store.DIRTY)]
    if dirty and clean and not store.dirty_allowed():
        raise pub.RecordFileError(
            f"{path}: {len(dirty)} of its runs (e.g. {dirty[0]}) were trained from uncommitted code "
            f"({store.DIRTY}), and profile {profile.name!r}'s record comes from a commit: refusing it "
            f"(ALLOW_DIRTY=1 for an experiment)"
        )
    for record in records:
        try:
            store.write_record(staging, record)
        except store.CorruptRecord as exc:
            why = str(exc).split(": ", 1)[-1]
            raise pub.RecordFileError(f"{path}: run {record['key']} is refused: {why}") from None
    planned = set(checked_plan(meta["plan"], profile, staging, f"{path} (metadata)")["runs"])
    extra = sorted(r["key"] for r in records if r["key"] not in planned)
    if extra:
        n = f"{len(extra)} runs that profile {profile.name!r} does not plan (e.g. {extra[0]})"
        raise pub.RecordFileError(f"{path}: {n}; refusing it")
    return records, meta["plan"]


def read_checked(path, profile) -> tuple[list, list]:
    """A published file of ``profile`` read as a store holds it (admitted): (records, the plan's executions).
    Nothing of its metadata becomes a path."""
    with tempfile.TemporaryDirectory(prefix="siamese-derive-") as tmp:
        plan = admitted(path, profile, Path(tmp) / "store", clean=False)[1]
        write_atomically(Path(tmp) / "plan.json", plan)
        try:
            return store.load_records(Path(tmp) / "store"), load_plan(tmp)
        except PlanError as exc:
            raise pub.RecordFileError(f"{path}: {exc}") from None


def write_data_csvs(frame, cells, out_dir, margin: float) -> dict:
    """runs.csv (a row per run, with its record's path) and cells.csv (a row per cell, tests and verdict)."""
    runs, table = Path(out_dir) / "runs.csv", Path(out_dir) / "cells.csv"
    data = b""
    if not frame.empty:  # no text a spreadsheet runs:
        frame = frame.assign(record=[f"store/{k}.json" for k in frame["key"]])
        frame = frame.map(lambda v: f"'{v}" if isinstance(v, str) and v[:1] in tuple("=+-@\t\r") else v)
        data = frame.sort_values(RUN_ORDER).to_csv(index=False).encode()
    write_atomically(runs, data)
    write_atomically(table, verdict_frame(cells, margin).to_csv(index=False).encode())
    return {"runs": runs, "cells": table}


def derive_csvs(path, out_dir, profile, checked=None) -> dict:
    """runs.csv and cells.csv as the report writes them, from a published file alone (``checked``: its
    read_checked, when read already); returns their paths."""
    records, executions = checked or read_checked(path, profile)
    cells = table_cells(records, executions, profile.name)
    return write_data_csvs(records_frame(records), cells, out_dir, profile.settings["equivalence_margin"])


def write_test_pairs(base, nb_pairs: int, data_seed: int) -> None:
    """``base/pairs.parquet``: the test pairs' targets and digits, drawn once per run, so that the notebooks
    read them without torch (analysis.beyond_paper.test_truth)."""
    table = pairs_table([{"config": {"nb_pairs": nb_pairs, "data_seed": data_seed, "confirm_seeds": []}}], {})
    write_atomically(Path(base) / pub.PAIRS_FILE, pub.parquet_bytes(table, ["image1", "image2"]))


def publish_profile(profile) -> int:
    """``python -m siamese_lib publish --profile NAME``: a new record from runs/NAME/store and its plan."""
    base, report = runs_root() / safe_name(profile.name), report_root() / safe_name(profile.name)
    path, what = publish_record(base / "store", report, profile, base / "plan.json", replace=True)
    print(f"published record {path}: {what}")
    return 0


REPORT_FILES = ("report.html", "report.pdf", "runs.csv", "cells.csv", pub.FILE_NAME, pub.PAIRS_FILE)


def report_lines(report_dir, since: float, rel=str) -> list[str]:
    """End-of-run lines: the report files (written now, else there) and the best corrected Table I cell."""
    there = [p for p in (Path(report_dir) / n for n in REPORT_FILES) if p.is_file()]
    if not there:
        return []
    now = [p for p in there if p.stat().st_mtime >= since]
    names = ", ".join(p.name for p in (now or there))
    lines = [f"  report ({'written now' if now else 'unchanged'}): {rel(Path(report_dir))}/{{{names}}}"]
    try:
        cells = pd.read_csv(Path(report_dir) / "cells.csv")
        table1 = cells["table"] == TABLE_NAMES["table1"]
        cells = cells[table1 & (cells["protocol"] == "corrected") & (cells["n"] > 0)]
    except (OSError, KeyError, ValueError, pd.errors.EmptyDataError):
        return lines
    if not cells.empty:
        c = cells.loc[cells["mean"].idxmin()]
        label = cell_label("table1", (c["model"], bool(c["weight_sharing"]), bool(c["aux_loss"])))
        lines.append(
            f"  best Table I cell (corrected protocol): {label}: {c['mean']:.2f} ± {c['std']:.2f} % test "
            f"error (n = {c['n']}; the paper: {c['paper_mean']:g} ± {c['paper_std']:g} %)"
        )
    return lines
