"""The published record, ``report/<profile>/records.parquet``: one row per run, its plan and column layout in
the metadata, checksummed by ``records.parquet.sha256`` (``sha256sum -c``); pandas reads it. Untrusted."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..common import UsageError, write_atomically
from ..config import RunConfig
from .dataset import placement, table_from_columns

FILE_NAME = "records.parquet"
PAIRS_FILE = "pairs.parquet"  # the test and confirmation pairs' targets and digits, beside the runs
HISTORY = {
    "timings": "timings.json",
    "verify": "verify/verify.json",
}  # kept in the record, from runs/<profile>
FORMAT_VERSION = 1
META = "siamese_lib."  # prefix of the file-level metadata keys
# training rounds the outputs to 6 decimals: float32 keeps them exactly (read back rounded)
OUTPUT_DECIMALS = 6
PROBS = ("head_prob", "digit_prob")
OUTPUT_TYPES = dict.fromkeys(PROBS, pa.float32()) | dict.fromkeys(["digit1_pred", "digit2_pred"], pa.int8())
OUTPUT_TYPES |= {f"{split}_{n}": pa.float32() for split in ("confirm", "val", "holdout") for n in PROBS}
LEGACY_OUTPUTS = list(OUTPUT_TYPES)[:6]  # always columns; the validation outputs only once a run has them
# read from the footer before anything else: a small file can claim billions of values (issue 33)
MAX_FILE_BYTES, MAX_ROWS, MAX_VALUES = 500_000_000, 100_000, 200_000_000
PROVENANCE = {
    "schema_version": pa.int16(),
    **dict.fromkeys(["device", "torch_version", "code_version", "python", "host", "cpu"], pa.string()),
    **dict.fromkeys(["threads", "epochs_trained"], pa.int32()),
    **dict.fromkeys(["machine", "created"], pa.string()),
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
        if isinstance(v, list):
            return pa.list_(arrow(v[0]) if v else pa.string())
        return {bool: pa.bool_(), int: pa.int64(), float: pa.float64()}.get(type(v), pa.string())

    return {name: arrow(v) for name, v in RunConfig(confirm_seeds=(0,), holdout_seed=0).to_dict().items()}


def column_types(metrics, outputs=OUTPUT_TYPES) -> dict:
    """Each column's type, in the file's order."""
    return {
        "key": pa.string(),
        "stage": pa.list_(pa.string()),
        "cell": pa.list_(pa.string()),
        **_config_types(),
        **dict.fromkeys(metrics, pa.float64()),
        "train_loss": pa.list_(pa.float64()),
        **{n: pa.list_(OUTPUT_TYPES[n]) for n in outputs},
        **PROVENANCE,
    }


def records_table(records, metadata: dict) -> pa.Table:
    """One row per record, sorted by key; ``metadata``: file-level texts (its plan gives stage and cell)."""
    records = sorted(records, key=lambda r: r["key"])
    # holdout_seed: a column once a run has one (a record made before it keeps its bytes)
    config = [n for n in _config_types() if n != "holdout_seed" or any(n in r["config"] for r in records)]
    metrics = list(dict.fromkeys(n for r in records for n in r["metrics"]))  # as runs first show them
    clash = sorted(set(config) & set(metrics))
    if clash:
        raise ValueError(f"metric names that are also configuration fields: {clash}")
    outputs = [n for n in OUTPUT_TYPES if n in LEGACY_OUTPUTS or any(n in r["outputs"] for r in records)]
    keys = [r["key"] for r in records]
    stages, cells = placement(keys, metadata.get(META + "plan"))
    values = {"key": keys, "stage": stages, "cell": cells}
    values |= {n: [r["config"].get(n) for r in records] for n in config}
    values |= {n: [r["metrics"].get(n) for r in records] for n in metrics}
    values["train_loss"] = [r["curves"]["train_loss"] for r in records]
    values |= {n: [r["outputs"].get(n) for r in records] for n in outputs}
    values |= {n: [r.get(n) for r in records] for n in PROVENANCE}
    values["machine"] = [json.dumps(m, sort_keys=True) if m is not None else None for m in values["machine"]]
    layout = {
        "placement": ["stage", "cell"],
        "config": config,
        "metrics": metrics,
        "curves": ["train_loss"],
        "outputs": outputs,
        "provenance": list(PROVENANCE),
    }
    meta = {META + "format_version": str(FORMAT_VERSION), META + "columns": json.dumps(layout), **metadata}
    types = column_types(metrics, outputs)
    return table_from_columns({n: (types[n], v) for n, v in values.items()}, meta)


def parquet_bytes(table: pa.Table, floats=()) -> bytes:
    """A table's file bytes, the same for the same table (``floats``: list columns by byte-stream split)."""
    sink, enc = pa.BufferOutputStream(), dict.fromkeys(floats, "BYTE_STREAM_SPLIT")
    dic = [n for n in table.column_names if n not in floats]
    pq.write_table(
        table, sink, compression="zstd", compression_level=9, column_encoding=enc, use_dictionary=dic
    )
    return sink.getvalue().to_pybytes()


def write_pair(path: Path, data: bytes) -> None:
    """The record and its checksum: a kill leaves the old pair, the new pair, or the new checksum waiting
    (``.sha256.new``) beside one of them, which the next read completes or drops (recover)."""
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
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _expected(sidecar) -> str:
    words = Path(sidecar).read_text(errors="replace").split()
    return words[0].lower() if words else ""  # sha256sum -c accepts upper-case hex too


def read_metadata(path, profile_name: str | None = None, say=None, layout: bool = True) -> dict:
    """The file's siamese_lib metadata (keys unprefixed) once it passes, each refusal one line: no symlink,
    its size, its checksum (recover first, said to ``say``), its footer's counts, format, layout, profile."""
    path, sidecar = Path(path), checksum_file(path)
    for p in (path, sidecar):
        if p.is_symlink():
            raise RecordFileError(f"{p} is a symlink (to {os.readlink(p)}); a published record is a file")
    if not path.is_file():
        raise RecordFileError(f"no published record at {path} (written by the report step of `run`)")
    note = recover(path)
    if note and say:
        say(note)
    if not sidecar.is_file():
        raise RecordFileError(f"{path}: its checksum {sidecar.name} is missing; refusing an unchecked record")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise RecordFileError(f"{path}: {size} bytes, more than a record may hold ({MAX_FILE_BYTES})")
    if _digest(path) != _expected(sidecar):
        raise RecordFileError(f"{path}: sha256 differs from {sidecar.name}: the file was altered or cut")
    try:
        footer = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError, ValueError) as exc:
        why = " ".join(str(exc).split())[:200]
        raise RecordFileError(f"{path}: not a readable Parquet file ({why})") from None
    groups = [footer.row_group(g) for g in range(footer.num_row_groups)]
    values = sum(g.column(c).num_values for g in groups for c in range(footer.num_columns))
    if footer.num_rows > MAX_ROWS or values > MAX_VALUES:
        raise RecordFileError(
            f"{path}: {footer.num_rows} rows and {values} values, more than a record may hold "
            f"({MAX_ROWS} rows, {MAX_VALUES} values); not read"
        )
    raw = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (footer.metadata or {}).items()}
    meta = {k[len(META) :]: v for k, v in raw.items() if k.startswith(META)}
    if meta.get("format_version") != str(FORMAT_VERSION):
        version = meta.get("format_version")
        raise RecordFileError(f"{path}: format version {version!r}, this code reads {FORMAT_VERSION}")
    if profile_name is not None and meta.get("profile") != profile_name:
        theirs = str(meta.get("profile"))[:60]
        raise RecordFileError(f"{path}: a record of profile {theirs!r}, not of {profile_name!r}; refusing it")
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
        why = f"{type(exc).__name__}: {exc}"
        raise RecordFileError(f"{path}: its metadata's columns are not this format's ({why})") from None
    expected = column_types(layout["metrics"])
    for n in ["key", *names]:
        if n not in expected:
            raise RecordFileError(f"{path}: column {n[:60]!r} is not one this format has")
        if schema.get_field_index(n) < 0:
            raise RecordFileError(f"{path}: its metadata names column {n[:60]!r}, which the file lacks")
        if schema.field(n).type != expected[n]:
            raise RecordFileError(f"{path}: column {n!r} is {schema.field(n).type}, not {expected[n]}")


def read_records(path, profile_name: str | None = None, say=None) -> list[dict]:
    return read_published(path, profile_name, say)[1]


def read_published(path, profile_name: str | None = None, say=None) -> tuple[dict, list[dict]]:
    """(its metadata, its records): read_metadata, then its rows (a key twice is refused), in key order."""
    meta = read_metadata(path, profile_name, say)
    try:
        records = records_from_table(pq.read_table(path))
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as exc:
        raise RecordFileError(f"{path}: its rows cannot be read ({type(exc).__name__}: {exc})") from None
    twice = [f"{k} ({n} times)" for k, n in Counter(r["key"] for r in records).items() if n > 1]
    if twice:
        raise RecordFileError(f"{path}: duplicated rows: {', '.join(twice[:5])}; refusing it")
    return meta, records


def records_from_table(table: pa.Table) -> list[dict]:
    layout = json.loads(table.schema.metadata[(META + "columns").encode()])
    out = []
    for row in table.to_pylist():
        record = {"schema_version": row["schema_version"], "key": row["key"]}
        # holdout_seed None: a run without one (RunConfig.to_dict leaves it out)
        record["config"] = {n: row[n] for n in layout["config"] if row[n] is not None or n != "holdout_seed"}
        record["metrics"] = {n: row[n] for n in layout["metrics"] if row[n] is not None}
        record["curves"] = {n: row[n] for n in layout["curves"]}
        outputs = {n: row[n] for n in layout["outputs"] if row[n] is not None}
        floats = {n for n in outputs if OUTPUT_TYPES[n] == pa.float32()}
        record["outputs"] = {
            n: [round(v, OUTPUT_DECIMALS) for v in o] if n in floats else o for n, o in outputs.items()
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


def published_history(report_dir, keys) -> dict | None:
    """``{"timings": ..., "verify": ...}`` kept in the published record when it holds every run of ``keys``
    ({} for what it keeps not: a render never shows its own clock); None when there is no such record."""
    path = record_file(report_dir)
    try:
        meta = read_metadata(path)
    except RecordFileError:
        return None
    if not set(keys) <= set(pq.read_table(path, columns=["key"]).column("key").to_pylist()):
        return None
    return {name: json.loads(meta[name]) if meta.get(name) else {} for name in HISTORY}
