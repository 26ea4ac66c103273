"""The published record: every run's full record in one Parquet file beside the report.

``report/<profile>/records.parquet`` holds one row per run: the configuration's fields as columns, the metrics
(float64; null where a run has no such metric, e.g. no validation split), ``train_loss`` (one float64 per epoch),
the per-test-pair outputs as list columns (``head_prob``/``digit_prob`` float32, ``digit1_pred``/``digit2_pred``
int8), the provenance (``code_version``, ``torch_version``, ``machine`` as JSON text, ``created`` ...). The file's
metadata holds the format version, the profile's name and YAML, which columns are which, and the plan when the
runner wrote one. Its checksum is a sidecar, ``records.parquet.sha256`` in ``sha256sum`` format, so anyone can
check it with ``sha256sum -c`` and no code of ours; it covers the metadata too. A reader needs pandas alone:
``pd.read_parquet("report/paper/records.parquet")``.

From it: the store is seeded (every record through ``store.write_record``, which validates), and ``runs.csv``
and ``cells.csv`` are derived again (``derive_csvs``). Records keep their own code version and machine; a cell
is never filled partly with stored runs of another code version and partly with runs trained now
(``invocation.check_code_mix`` refuses, exit 2).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..analysis.tables import TABLE_NAMES, cell_label, records_frame, table_cells
from ..common import UsageError, write_atomically
from ..config import RunConfig
from ..experiments.planning import load_plan
from ..experiments.profiles import load_profile
from ..store import CorruptRecord, load_records, record_path, write_record
from .dataset import pairs_table, placement, table_from_columns

FILE_NAME = "records.parquet"
HISTORY = {
    "timings": "timings.json",
    "verify": "verify/verify.json",
}  # kept in the record, from runs/<profile>/
PAIRS_FILE = "pairs.parquet"  # the test and confirmation pairs' targets and digits, beside the runs
FORMAT_VERSION = 1
META = "siamese_lib."  # prefix of the file-level metadata keys
OUTPUT_DECIMALS = (
    6  # training rounds the outputs to 6 decimals: float32 keeps them exactly (read back rounded)
)
OUTPUT_TYPES = {
    "head_prob": pa.float32(),
    "digit_prob": pa.float32(),
    "digit1_pred": pa.int8(),
    "digit2_pred": pa.int8(),
    "confirm_head_prob": pa.float32(),
    "confirm_digit_prob": pa.float32(),
}
PROVENANCE = {
    "schema_version": pa.int16(),
    "device": pa.string(),
    "torch_version": pa.string(),
    "code_version": pa.string(),
    "python": pa.string(),
    "host": pa.string(),
    "cpu": pa.string(),
    "threads": pa.int32(),
    "epochs_trained": pa.int32(),
    "machine": pa.string(),
    "created": pa.string(),
}


class RecordFileError(UsageError):
    """A published record that is absent, altered or of another format (one line, exit 2)."""


def record_file(report_dir) -> Path:
    return Path(report_dir) / FILE_NAME


def checksum_file(path) -> Path:
    return Path(path).with_name(Path(path).name + ".sha256")


def _config_types() -> dict:
    """Each configuration field's column type, from the type of its value in a configuration."""

    def arrow(v):
        return (
            pa.list_(arrow(v[0]) if v else pa.string())
            if isinstance(v, list)
            else pa.bool_()
            if isinstance(v, bool)
            else pa.int64()
            if isinstance(v, int)
            else pa.float64()
            if isinstance(v, float)
            else pa.string()
        )

    return {name: arrow(value) for name, value in RunConfig(confirm_seeds=(0,)).to_dict().items()}


def _metric_names(records) -> list:
    """The metric columns, in the order runs first show them (the order records_frame gives runs.csv)."""
    names = {}
    for r in records:
        names.update(dict.fromkeys(r["metrics"]))
    return list(names)


def records_table(records, metadata: dict) -> pa.Table:
    """One row per record (sorted by key, as the store lists them); ``metadata``: file-level text values (its
    plan, when there, gives the ``stage`` and ``cell`` columns)."""
    records = sorted(records, key=lambda r: r["key"])
    config, metrics = _config_types(), _metric_names(records)
    clash = set(config) & set(metrics)
    if clash:
        raise ValueError(f"metric names that are also configuration fields: {sorted(clash)}")
    keys = [r["key"] for r in records]
    stages, cells = placement(keys, metadata.get(META + "plan"))
    columns = {"key": (pa.string(), keys)}
    columns["stage"], columns["cell"] = (pa.list_(pa.string()), stages), (pa.list_(pa.string()), cells)
    columns.update({n: (t, [r["config"][n] for r in records]) for n, t in config.items()})
    columns.update({n: (pa.float64(), [r["metrics"].get(n) for r in records]) for n in metrics})
    columns["train_loss"] = (pa.list_(pa.float64()), [r["curves"]["train_loss"] for r in records])
    columns.update(
        {n: (pa.list_(t), [r["outputs"].get(n) for r in records]) for n, t in OUTPUT_TYPES.items()}
    )
    for n, t in PROVENANCE.items():
        values = [r.get(n) for r in records]
        columns[n] = (
            t,
            [json.dumps(v, sort_keys=True) if n == "machine" and v is not None else v for v in values],
        )
    layout = {
        "placement": ["stage", "cell"],
        "config": list(config),
        "metrics": metrics,
        "curves": ["train_loss"],
        "outputs": list(OUTPUT_TYPES),
        "provenance": list(PROVENANCE),
    }
    meta = {META + "format_version": str(FORMAT_VERSION), META + "columns": json.dumps(layout), **metadata}
    return table_from_columns(columns, meta)


def _parquet_bytes(table: pa.Table, floats=()) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=9,
        column_encoding=dict.fromkeys(floats, "BYTE_STREAM_SPLIT"),
        use_dictionary=[n for n in table.column_names if n not in floats],
    )
    return sink.getvalue().to_pybytes()


def _write_checked(path: Path, data: bytes) -> None:
    write_atomically(path, data)
    write_atomically(checksum_file(path), f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")


def record_history(runs_dir, report_dir) -> dict:
    """What the record keeps of its history, for its metadata: the runner's ``timings.json`` when one of its
    invocations trained runs, and the last ``verify/verify.json``; where there is none, what the published
    record already keeps (so a render from the record changes nothing)."""
    try:
        kept = read_metadata(record_file(report_dir))
    except RecordFileError:
        kept = {}
    out = {}
    for name, rel in HISTORY.items():
        try:
            data = json.loads((Path(runs_dir) / rel).read_text()) if runs_dir else None
        except (OSError, json.JSONDecodeError):
            data = None
        fresh = isinstance(data, dict) and (
            name == "verify" or any(i.get("trained") for i in data.get("invocations", []))
        )
        text = json.dumps(data) if fresh else kept.get(name)  # timings: in the runner's order (the stages')
        if text:
            out[META + name] = text
    return out


def published_history(report_dir, keys) -> dict | None:
    """The history kept in the published record (what Sections E, F and G show), ``{"timings": ..., "verify":
    ...}``, when that record holds every run of ``keys`` ({} for what it keeps not: a render never shows its
    own clock instead); None when there is no such record."""
    path = record_file(report_dir)
    try:
        meta = read_metadata(path)
    except RecordFileError:
        return None
    if not set(keys) <= set(pq.read_table(path, columns=["key"]).column("key").to_pylist()):
        return None
    return {name: json.loads(meta[name]) if meta.get(name) else {} for name in HISTORY}


def publish_record(store_dir, report_dir, profile, plan_path=None, runs_dir=None) -> Path:
    """Write ``report_dir/records.parquet`` from every valid record of ``store_dir``, ``pairs.parquet`` beside
    it, and their sha256 sidecars; the same records give the same bytes. ``profile``: the Profile whose runs
    they are (its name and YAML go into the metadata); ``plan_path``: the runner's plan, kept in the metadata
    when the file exists; ``runs_dir``: the runner's folder, whose history the record keeps (``record_history``)."""
    store_dir = Path(store_dir)
    metadata = {META + "profile": profile.name, META + "profile_yaml": Path(profile.path).read_text()}
    if plan_path and Path(plan_path).is_file():
        metadata[META + "plan"] = Path(plan_path).read_text()
    metadata.update(record_history(runs_dir, report_dir))
    records = load_records(store_dir)
    table = records_table(records, metadata)
    floats = [
        n for n, t in OUTPUT_TYPES.items() if pa.types.is_floating(t)
    ]  # byte-stream split: 18 % smaller
    data = _parquet_bytes(table, floats)
    back = records_from_table(pq.read_table(pa.BufferReader(data)))
    lost = [a["key"] for a, b in zip(sorted(records, key=lambda r: r["key"]), back) if a != b]
    if (
        lost
    ):  # e.g. outputs with more decimals than float32 keeps: never publish a record that reads back otherwise
        raise ValueError(
            f"{len(lost)} records would not read back as stored (e.g. {lost[0]}); nothing published"
        )
    _write_checked(
        Path(report_dir) / PAIRS_FILE,
        _parquet_bytes(
            pairs_table(records, {META + "format_version": str(FORMAT_VERSION)}), ["image1", "image2"]
        ),
    )
    path = record_file(report_dir)
    _write_checked(path, data)
    return path


def read_metadata(path) -> dict:
    """The file's siamese_lib metadata (keys without the prefix), after checking its checksum and format."""
    path = Path(path)
    if not path.is_file():
        raise RecordFileError(f"no published record at {path} (written by the report step of `run`)")
    sidecar = checksum_file(path)
    if not sidecar.is_file():
        raise RecordFileError(f"{path}: its checksum {sidecar.name} is missing; refusing an unchecked record")
    expected = sidecar.read_text().split()[0] if sidecar.read_text().split() else ""
    if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise RecordFileError(
            f"{path}: sha256 differs from {sidecar.name}: the file was altered or truncated"
        )
    raw = pq.read_schema(path).metadata or {}
    meta = {k.decode()[len(META) :]: v.decode() for k, v in raw.items() if k.decode().startswith(META)}
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise RecordFileError(
            f"{path}: format version {meta.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    return meta


def read_pairs(report_dir) -> pd.DataFrame:
    """The pairs file beside a published record, after checking its checksum and format."""
    path = Path(report_dir) / PAIRS_FILE
    read_metadata(path)
    return pd.read_parquet(path)


def read_records(path) -> list[dict]:
    """The store records held by a published file (checked first), in key order; each as the store holds it."""
    read_metadata(path)
    return records_from_table(pq.read_table(path))


def records_from_table(table: pa.Table) -> list[dict]:
    layout = json.loads(table.schema.metadata[(META + "columns").encode()])
    out = []
    for row in table.to_pylist():
        outputs = {
            n: [round(v, OUTPUT_DECIMALS) for v in row[n]] if OUTPUT_TYPES[n] == pa.float32() else row[n]
            for n in OUTPUT_TYPES
            if row[n] is not None
        }
        record = {
            "schema_version": row["schema_version"],
            "key": row["key"],
            "config": {n: row[n] for n in layout["config"]},
            "metrics": {n: row[n] for n in layout["metrics"] if row[n] is not None},
            "curves": {n: row[n] for n in layout["curves"]},
            "outputs": outputs,
        }
        for n in layout["provenance"]:
            if row.get(n) is not None and n != "schema_version":
                record[n] = json.loads(row[n]) if n == "machine" else row[n]
        out.append(record)
    return out


def seed_store(path, store_dir) -> tuple[int, int]:
    """Write the published records that ``store_dir`` lacks, each validated by the store's writer; records
    already there are kept (they may be this machine's). Returns (written, kept)."""
    written = kept = 0
    for record in read_records(path):
        if record_path(store_dir, record["key"]).exists():
            kept += 1
            continue
        try:
            write_record(store_dir, record)
        except CorruptRecord as exc:
            raise RecordFileError(f"{path}: run {record['key']} is not a valid record: {exc}") from None
        written += 1
    return written, kept


def derive_csvs(path, out_dir) -> dict:
    """runs.csv and cells.csv rebuilt from a published file alone (its records and its profile), as the
    report writes them; returns their paths."""
    meta = read_metadata(path)
    with tempfile.TemporaryDirectory(prefix="siamese-derive-") as tmp:
        store = Path(tmp) / "store"
        seed_store(path, store)
        profile_file = Path(tmp) / f"{meta['profile']}.yaml"
        profile_file.write_text(meta["profile_yaml"])
        records = load_records(store)
        profile = load_profile(str(profile_file))
        if "plan" not in meta:
            raise RecordFileError(f"{path}: holds no plan, so its table cells cannot be derived")
        (Path(tmp) / "plan.json").write_text(
            meta["plan"]
        )  # the cells are those of the plan the record was made by
        cells = table_cells(records, load_plan(tmp), profile.name)
        from ..presentation.sections import write_data_csvs  # matplotlib and torch: only when deriving

        return write_data_csvs(records_frame(records), cells, out_dir, profile.settings["equivalence_margin"])


def seed_from_record(run) -> None:
    """``run --from-record``: seed the store from the published record beside the report (checked, each record
    through the store's writer); only the runs the record lacks are trained."""
    path = record_file(run.report_dir)
    written, kept = seed_store(path, run.store_dir)
    run.write(
        f"seeded the store from {run.rel(path)}: {written} records written, {kept} already there "
        f"(kept); only runs the record lacks are trained"
    )


REPORT_FILES = ("report.html", "report.pdf", "runs.csv", "cells.csv", FILE_NAME, PAIRS_FILE)


def report_lines(report_dir, since: float, rel=str) -> list[str]:
    """For the end-of-run summary: the report files (those this invocation wrote, else those already there)
    and the headline: the best complete Table I cell of the corrected protocol, mean ± std over its seeds."""
    there = [p for p in (Path(report_dir) / n for n in REPORT_FILES) if p.is_file()]
    if not there:
        return []
    now = [p for p in there if p.stat().st_mtime >= since]
    lines = [
        f"  report ({'written now' if now else 'unchanged'}): {rel(Path(report_dir))}/"
        f"{{{', '.join(p.name for p in (now or there))}}}"
    ]
    try:
        cells = pd.read_csv(Path(report_dir) / "cells.csv")
        cells = cells[
            (cells["table"] == TABLE_NAMES["table1"]) & (cells["protocol"] == "corrected") & (cells["n"] > 0)
        ]
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
