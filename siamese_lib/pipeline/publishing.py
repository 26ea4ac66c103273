"""Publishing the record and reading it into a store: what the profile plans decides what enters and what leaves.

``publish_record``: ``report/<profile>/records.parquet`` from the store's planned runs (the plan must be the one
the profile gives), each through the store's gate; rendering never rewrites a published record (RecordChanged,
exit 2, names the runs that differ); ``run --force`` and ``python -m siamese_lib publish`` replace it.
``seed_store``: a published file of the profile being run, its plan the profile's, its runs planned and admitted,
staged beside the store and moved in only when all pass; the store is then marked (SEEDED_MARK) so that
exploration trains elsewhere. ``derive_csvs``: runs.csv and cells.csv again from the file alone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..analysis.tables import records_frame, table_cells
from ..common import UsageError, report_root, runs_root, safe_name, write_atomically
from ..experiments.planning import Execution, PlanError, expand, load_plan, plan_document
from ..experiments.profiles import TRAINING_STAGES, ProfileError, load_profile
from ..store import (
    DIRTY,
    SEEDED_MARK,
    CorruptRecord,
    admit,
    dirty_allowed,
    is_clean_store,
    load_record,
    load_records,
    record_path,
    write_record,
)
from .dataset import pairs_table
from .published import (
    FORMAT_VERSION,
    META,
    OUTPUT_TYPES,
    PAIRS_FILE,
    RecordFileError,
    parquet_bytes,
    read_metadata,
    read_records,
    record_file,
    record_history,
    records_from_table,
    records_table,
    write_pair,
)

RUNNER_PARAMETERS = ("threads", "force")  # what the runner adds to a plan's parameters (notebooks.make_jobs)


class RecordChanged(UsageError):
    """What rendering would publish differs from the published record (one line, exit 2)."""


def profile_plan(profile, store_dir, device: str) -> dict:
    """The plan the profile gives with this store (auto learning rates and selections read it), as the runner
    writes it, less the parameters the runner adds to each notebook."""
    executions = expand(
        profile, str(store_dir), device, stages=[s for s in TRAINING_STAGES if s in profile.stages]
    )
    named = [Execution(ex.stage, safe_name(ex.name), ex.parameters, ex.configs()) for ex in executions]
    return json.loads(json.dumps(plan_document(profile.name, device, named)))


def checked_plan(text: str, profile, store_dir, where) -> dict:
    """The plan ``text`` (a plan file's or a record's metadata) less the runner's parameters, once it is the plan
    the profile gives with ``store_dir``; else RecordFileError naming the first difference."""
    try:
        plan = json.loads(text)
        device = plan["device"]
        for e in plan["executions"]:
            e["parameters"] = {k: v for k, v in e["parameters"].items() if k not in RUNNER_PARAMETERS}
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device {device!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RecordFileError(
            f"{where}: not a plan the runner writes ({type(exc).__name__}: {exc})"
        ) from None
    try:
        given = profile_plan(profile, store_dir, device)
    except Exception as exc:  # noqa: BLE001 - e.g. auto learning rates without their search: one line
        raise RecordFileError(
            f"{where}: the profile {profile.name!r} cannot be planned from it: {exc}"
        ) from None
    if plan != given:
        ours = {(e["stage"], e["name"]): e for e in given["executions"]}
        theirs = {(e["stage"], e["name"]): e for e in plan["executions"]}
        differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        what = (
            "/".join(differ[0])
            if differ
            else ("its profile" if plan.get("profile") != profile.name else "its runs")
        )
        raise RecordFileError(
            f"{where}: its plan is not the plan profile {profile.name!r} gives ({len(differ)} executions differ, "
            f"e.g. {what}); refusing it"
        )
    return given


def record_bytes(store_dir, profile, plan_path, history: dict | None = None) -> tuple[bytes, list]:
    """The published file's bytes from the store's runs that the plan (checked: the profile's) lists, each through
    the gate, with ``history`` (record_history) in its metadata; the same records give the same bytes. Returns
    (bytes, records)."""
    store_dir, plan_path = Path(store_dir), Path(plan_path)
    if not plan_path.is_file():
        raise RecordFileError(f"no plan at {plan_path}: run the profile first (python -m siamese_lib run)")
    plan = checked_plan(plan_path.read_text(), profile, store_dir, plan_path)
    planned = set(plan["runs"])
    records = []
    for key in sorted(planned):
        path = record_path(store_dir, key)
        if path.exists():
            try:
                records.append(admit(load_record(path), path, planned))
            except CorruptRecord as exc:
                raise RecordFileError(f"refusing to publish: {exc}") from None
    metadata = {
        META + "profile": profile.name,
        META + "profile_yaml": Path(profile.path).read_text(),
        # the plan as the profile gives it: no --jobs, --force or --threads of the run that wrote it
        META + "plan": json.dumps(plan, indent=1),
        **(history or {}),
    }
    table = records_table(records, metadata)
    data = parquet_bytes(
        table, [n for n in table.column_names if pa.types.is_floating(OUTPUT_TYPES.get(n, pa.null()))]
    )
    back = records_from_table(pq.read_table(pa.BufferReader(data)))
    lost = [a["key"] for a, b in zip(records, back) if a != b]
    if lost:  # e.g. outputs with more decimals than float32 keeps: never publish what reads back otherwise
        raise ValueError(
            f"{len(lost)} records would not read back as stored (e.g. {lost[0]}); nothing published"
        )
    return data, records


def publish_record(store_dir, report_dir, profile, plan_path, replace: bool = False) -> tuple[Path, str]:
    """``report_dir/records.parquet``, ``pairs.parquet`` beside it and their sha256 sidecars from the store's
    planned runs (record_bytes; the history of ``plan_path``'s folder when the record is made). A published record
    is rewritten only with ``replace`` (`run --force`, `publish`); else what would be published must be
    byte-identical to it ("unchanged") or RecordChanged names the runs that differ. Returns (path, what)."""
    path, pairs_path = record_file(report_dir), Path(report_dir) / PAIRS_FILE
    there = path.exists() or path.is_symlink()
    history = record_history(Path(plan_path).parent, report_dir, fresh=replace or not there)
    data, records = record_bytes(store_dir, profile, plan_path, history)
    pairs = parquet_bytes(
        pairs_table(records, {META + "format_version": str(FORMAT_VERSION)}), ["image1", "image2"]
    )
    if there:
        old = read_metadata(path, profile.name) and path.read_bytes()
        old_pairs = pairs_path.read_bytes() if pairs_path.is_file() and not pairs_path.is_symlink() else None
        if old == data and old_pairs in (pairs, None):  # a record published before its pairs file gains it
            if old_pairs is None:
                write_pair(pairs_path, pairs)
            return path, "unchanged"
        if not replace:
            raise RecordChanged(_changes(path, records, profile.name, old == data))
    write_pair(pairs_path, pairs)
    write_pair(path, data)
    return path, "written"


def _changes(path, records, profile_name: str, same_runs: bool = False) -> str:
    old = {r["key"]: r for r in records_from_table(pq.read_table(path))}
    new = {r["key"]: r for r in records}
    added, gone = sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys())
    changed = sorted(k for k in new.keys() & old.keys() if new[k] != old[k])
    parts = [
        f"{len(v)} {w} (e.g. {v[0]})"
        for v, w in ((added, "added"), (gone, "gone"), (changed, "changed"))
        if v
    ]
    what = ", ".join(parts) or ("its pairs file" if same_runs else "metadata")
    return (
        f"{path}: what this store would publish differs from the published record ({what}: "
        f"e.g. a run trained while exploring); not rewritten. To make a new record from this store: "
        f"python -m siamese_lib publish --profile {profile_name}; to keep the published one, reseed a fresh store "
        f"from it (move runs/{profile_name}/store away, then make report)"
    )


def seed_store(path, store_dir, profile, say=None) -> tuple[int, int]:
    """Write the published records that ``store_dir`` lacks; records already there are kept (they may be this
    machine's). The file must be ``profile``'s, its plan the one the profile gives, every record one it plans
    and admitted by the gate; else nothing is written (RecordFileError, one line). The store is marked
    (SEEDED_MARK): exploration never trains into it. Returns (written, kept)."""
    store_dir = Path(store_dir)
    meta = read_metadata(path, profile.name, say)
    records = read_records(path, profile.name)
    if "plan" not in meta:
        raise RecordFileError(f"{path}: holds no plan, so its runs cannot be checked against the profile's")
    dirty = [r["key"] for r in records if str(r.get("code_version")).endswith(DIRTY)]
    if dirty and is_clean_store(store_dir) and not dirty_allowed():
        raise RecordFileError(
            f"{path}: {len(dirty)} of its runs (e.g. {dirty[0]}) were trained from uncommitted code ({DIRTY}), "
            f"and profile {profile.name!r}'s record comes from a commit: refusing it (ALLOW_DIRTY=1 for an experiment)"
        )
    store_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".seeding-", dir=store_dir.parent))
    try:
        for record in records:
            try:
                write_record(staging, record)
            except CorruptRecord as exc:
                raise RecordFileError(
                    f"{path}: run {record['key']} is refused: {str(exc).split(': ', 1)[-1]}"
                ) from None
        planned = set(checked_plan(meta["plan"], profile, staging, f"{path} (metadata)")["runs"])
        extra = sorted(r["key"] for r in records if r["key"] not in planned)
        if extra:
            raise RecordFileError(
                f"{path}: {len(extra)} runs that profile {profile.name!r} does not plan (e.g. {extra[0]}); refusing it"
            )
        store_dir.mkdir(parents=True, exist_ok=True)
        written = kept = 0
        for record in records:
            if record_path(store_dir, record["key"]).exists():
                kept += 1
            else:
                os.replace(record_path(staging, record["key"]), record_path(store_dir, record["key"]))
                written += 1
        write_atomically(store_dir / SEEDED_MARK, f"{Path(path).resolve()}\n")
        return written, kept
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def derive_csvs(path, out_dir, profile) -> dict:
    """runs.csv and cells.csv rebuilt from a published file of ``profile`` alone (its records, checked, and its
    plan, which must be the profile's), as the report writes them; returns their paths. Nothing of the file's
    metadata becomes a path."""
    meta = read_metadata(path, profile.name)
    with tempfile.TemporaryDirectory(prefix="siamese-derive-") as tmp:
        store = Path(tmp) / "store"
        seed_store(path, store, profile)
        records = load_records(store)
        write_atomically(
            Path(tmp) / "plan.json", meta["plan"]
        )  # the cells of the plan, checked by seed_store
        try:
            plan = load_plan(tmp)
        except PlanError as exc:
            raise RecordFileError(f"{path}: {exc}") from None
        cells = table_cells(records, plan, profile.name)
        from ..presentation.sections import write_data_csvs  # matplotlib and torch: only when deriving

        return write_data_csvs(records_frame(records), cells, out_dir, profile.settings["equivalence_margin"])


def seed_from_record(run) -> None:
    """``run --from-record``: seed the store from the published record beside the report (checked, each record
    through the gate); only the runs the record lacks are trained."""
    path = record_file(run.report_dir)
    written, kept = seed_store(path, run.store_dir, run.profile, say=run.write)
    run.write(
        f"seeded the store from {run.rel(path)}: {written} records written, {kept} already there "
        f"(kept); only runs the record lacks are trained"
    )


def publish(run) -> None:
    """The report step's record: published from the store's planned runs when the profile has none yet or with
    ``--force``; else checked byte for byte against the published one (RecordChanged, exit 2, when it differs)."""
    path, what = publish_record(
        run.store_dir, run.report_dir, run.profile, run.base / "plan.json", replace=run.force
    )
    run.write(f"published record {run.rel(path)}: {what}")


def publish_profile(name: str) -> int:
    """``python -m siamese_lib publish --profile NAME``: a new record from runs/NAME/store and its plan."""
    try:
        profile = load_profile(name)
    except ProfileError as exc:
        raise UsageError(str(exc)) from None
    base = runs_root() / safe_name(profile.name)
    path, what = publish_record(
        base / "store", report_root() / safe_name(profile.name), profile, base / "plan.json", replace=True
    )
    print(f"published record {path}: {what}")
    return 0
