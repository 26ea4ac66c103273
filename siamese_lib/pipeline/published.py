"""The published record: every run's full record in one Parquet file beside the report.

``report/<profile>/records.parquet`` holds one row per run: the configuration's fields as columns, the metrics
(float64; null where a run has no such metric, e.g. no validation split), ``train_loss`` (one float64 per epoch),
the per-pair outputs as list columns (test pairs: ``head_prob``/``digit_prob`` float32, ``digit1_pred``/
``digit2_pred`` int8; ``confirm_*`` and, for runs trained since issue 33, ``val_*`` probabilities), the provenance
(``code_version``, ``torch_version``, ``machine`` as JSON text, ``created`` ...). The file's metadata holds the
format version, the profile's name and YAML, which columns are which, and the plan. Its checksum is a sidecar,
``records.parquet.sha256`` in ``sha256sum`` format (``sha256sum -c`` checks it; it covers the metadata too).
A reader needs pandas alone: ``pd.read_parquet("report/paper/records.parquet")``.

Here: the format, and the file read as untrusted input (read_metadata: no symlink, the checksum, the footer's
sizes before anything is read, the layout and column types, the profile it names), and written with its checksum
as a pair that a kill leaves recoverable (write_pair, recover). What enters a store from it and what is published
is pipeline/publishing.py's.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..analysis.tables import TABLE_NAMES, cell_label
from ..common import UsageError, write_atomically
from ..config import RunConfig
from .dataset import pairs_table, placement, table_from_columns

FILE_NAME = "records.parquet"
PAIRS_FILE = "pairs.parquet"  # the test and confirmation pairs' targets and digits, beside the runs
HISTORY = {
    "timings": "timings.json",
    "verify": "verify/verify.json",
}  # kept in the record, from runs/<profile>/
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
    "val_head_prob": pa.float32(),
    "val_digit_prob": pa.float32(),
}
# read from the footer before anything else: a small file can claim billions of values (issue 33)
MAX_FILE_BYTES, MAX_ROWS, MAX_VALUES = 500_000_000, 100_000, 200_000_000
LEGACY_OUTPUTS = list(OUTPUT_TYPES)[:6]  # always columns; the validation outputs only once a run has them
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
    outputs = [n for n in OUTPUT_TYPES if n in LEGACY_OUTPUTS or any(n in r["outputs"] for r in records)]
    columns.update({n: (pa.list_(OUTPUT_TYPES[n]), [r["outputs"].get(n) for r in records]) for n in outputs})
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
        "outputs": outputs,
        "provenance": list(PROVENANCE),
    }
    meta = {META + "format_version": str(FORMAT_VERSION), META + "columns": json.dumps(layout), **metadata}
    return table_from_columns(columns, meta)


def parquet_bytes(table: pa.Table, floats=()) -> bytes:
    """A table's file bytes (the same table gives the same bytes); ``floats``: list columns of floats, stored by
    byte-stream split (18 % smaller)."""
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


def write_pair(path: Path, data: bytes) -> None:
    """The record and its checksum, so that a kill at any moment leaves the old pair, the new pair, or the new
    checksum waiting beside one of them (``.sha256.new``), which the next read completes or drops (recover)."""
    pending = Path(f"{checksum_file(path)}.new")
    write_atomically(pending, f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
    write_atomically(path, data)
    os.replace(pending, checksum_file(path))


def recover(path: Path) -> str | None:
    """Finish or undo a write_pair that a kill interrupted; returns what was done (None: nothing pending)."""
    pending = Path(f"{checksum_file(path)}.new")
    if not pending.is_file() or pending.is_symlink() or not path.is_file():
        return None
    if _digest(path) == _expected(pending):
        os.replace(pending, checksum_file(path))
        return f"{path}: a write of the record was interrupted after the file: its new checksum put in place"
    pending.unlink()
    return f"{path}: a write of the record was interrupted before the file: the old record and checksum kept"


def _digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected(sidecar) -> str:
    words = Path(sidecar).read_text(errors="replace").split()
    return words[0].lower() if words else ""  # sha256sum -c accepts upper-case hex too


def read_metadata(path, profile_name: str | None = None, say=None, layout: bool = True) -> dict:
    """The file's siamese_lib metadata (keys without the prefix), after checking (one line each, exit 2): no
    symlink, its size, its checksum (an interrupted write completed first, said through ``say``), a Parquet
    footer within the limits, the format, the layout naming the file's columns, and with ``profile_name`` the
    profile it was made by."""
    path = Path(path)
    for p in (path, checksum_file(path)):
        if p.is_symlink():
            raise RecordFileError(
                f"{p} is a symlink (to {os.readlink(p)}); a published record is a plain file"
            )
    if not path.is_file():
        raise RecordFileError(f"no published record at {path} (written by the report step of `run`)")
    note = recover(path)
    if note and say:
        say(note)
    sidecar = checksum_file(path)
    if not sidecar.is_file():
        raise RecordFileError(f"{path}: its checksum {sidecar.name} is missing; refusing an unchecked record")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise RecordFileError(f"{path}: {size} bytes, more than a record may hold ({MAX_FILE_BYTES})")
    if _digest(path) != _expected(sidecar):
        raise RecordFileError(
            f"{path}: sha256 differs from {sidecar.name}: the file was altered or truncated"
        )
    try:
        footer = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise RecordFileError(
            f"{path}: not a readable Parquet file ({' '.join(str(exc).split())[:200]})"
        ) from None
    values = sum(
        footer.row_group(g).column(c).num_values
        for g in range(footer.num_row_groups)
        for c in range(footer.num_columns)
    )
    if footer.num_rows > MAX_ROWS or values > MAX_VALUES:
        raise RecordFileError(
            f"{path}: {footer.num_rows} rows and {values} values, more than a record may hold "
            f"({MAX_ROWS} rows, {MAX_VALUES} values); not read"
        )
    raw = footer.metadata or {}
    meta = {
        k.decode()[len(META) :]: v.decode(errors="replace")
        for k, v in raw.items()
        if k.decode(errors="replace").startswith(META)
    }
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise RecordFileError(
            f"{path}: format version {meta.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    if profile_name is not None and meta.get("profile") != profile_name:
        raise RecordFileError(
            f"{path}: a record of profile {str(meta.get('profile'))[:60]!r}, not of {profile_name!r}; refusing it"
        )
    if layout:  # the pairs file has no records' layout
        _check_layout(path, meta, footer.schema.to_arrow_schema())
    return meta


def _check_layout(path, meta: dict, schema: pa.Schema) -> None:
    """The metadata's ``columns``: JSON naming columns of the file, each of the type this code reads."""
    try:
        layout = json.loads(meta["columns"])
        parts = ("config", "metrics", "curves", "outputs", "provenance")
        names = [n for part in parts for n in layout[part]] + list(layout.get("placement", []))
        if not all(isinstance(n, str) for n in names):
            raise ValueError("a column name that is not a text")
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordFileError(
            f"{path}: its metadata's columns are not this format's ({type(exc).__name__}: {exc})"
        ) from None
    expected = {
        **_config_types(),
        **dict.fromkeys(layout["metrics"], pa.float64()),
        "train_loss": pa.list_(pa.float64()),
        **{n: pa.list_(t) for n, t in OUTPUT_TYPES.items()},
        **PROVENANCE,
        "key": pa.string(),
        "stage": pa.list_(pa.string()),
        "cell": pa.list_(pa.string()),
    }
    for n in ["key", *names]:
        if n not in expected:
            raise RecordFileError(f"{path}: column {n[:60]!r} is not one this format has")
        if schema.get_field_index(n) < 0:
            raise RecordFileError(f"{path}: its metadata names column {n[:60]!r}, which the file lacks")
        if schema.field(n).type != expected[n]:
            raise RecordFileError(f"{path}: column {n!r} is {schema.field(n).type}, not {expected[n]}")


def read_records(path, profile_name: str | None = None, say=None) -> list[dict]:
    """The store records held by a published file (checked first), in key order; each as the store holds it."""
    read_metadata(path, profile_name, say)
    try:
        return records_from_table(pq.read_table(path))
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as exc:
        raise RecordFileError(f"{path}: its rows cannot be read ({type(exc).__name__}: {exc})") from None


def records_from_table(table: pa.Table) -> list[dict]:
    layout = json.loads(table.schema.metadata[(META + "columns").encode()])
    out = []
    for row in table.to_pylist():
        outputs = {
            n: [round(v, OUTPUT_DECIMALS) for v in row[n]] if OUTPUT_TYPES[n] == pa.float32() else row[n]
            for n in layout["outputs"]
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


def read_pairs(report_dir) -> pd.DataFrame:
    """The pairs file beside a published record, after checking its checksum and format."""
    path = Path(report_dir) / PAIRS_FILE
    read_metadata(path, layout=False)
    return pd.read_parquet(path)


def write_test_pairs(base, nb_pairs: int, data_seed: int) -> None:
    """``base/pairs.parquet``: the test pairs' targets and digits, drawn once per run so that notebooks read
    them without torch (analysis.beyond_paper.test_truth, beside the store)."""
    table = pairs_table([{"config": {"nb_pairs": nb_pairs, "data_seed": data_seed, "confirm_seeds": []}}], {})
    write_atomically(Path(base) / PAIRS_FILE, parquet_bytes(table, ["image1", "image2"]))


def record_history(runs_dir, report_dir, fresh: bool) -> dict:
    """What the record keeps of its history, for its metadata: with ``fresh`` (a record made on purpose, or the
    first one) the runner's ``timings.json`` and the last ``verify/verify.json`` of ``runs_dir``; else what the
    published record already keeps, so that rendering changes nothing."""
    try:
        kept = read_metadata(record_file(report_dir))
    except RecordFileError:
        kept = {}
    out = {}
    for name, rel in HISTORY.items():
        try:
            data = json.loads((Path(runs_dir) / rel).read_text()) if fresh else None
        except (OSError, json.JSONDecodeError):
            data = None
        text = json.dumps(data) if isinstance(data, dict) else kept.get(name)
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
