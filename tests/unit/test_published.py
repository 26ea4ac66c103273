"""The published record (pipeline/published.py): one Parquet file holding the store's planned runs, read back
equal to the store, checked by its sha256 and the gate, seeding a store, deriving runs.csv and cells.csv byte for
byte, never rewritten by rendering, and every untrusted case of issue 33 refused in one line. Synthetic stores
(records whose metrics follow from their outputs), no training."""

from __future__ import annotations

import hashlib
import json
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from test_analysis import fill_store, paper_like, put_record, write_profile

from siamese_lib.analysis.tables import records_frame, table_cells
from siamese_lib.common import UsageError, write_atomically
from siamese_lib.experiments.planning import expand
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.pipeline import published, publishing
from siamese_lib.pipeline.publishing import write_data_csvs
from siamese_lib.store import SEEDED_MARK, config_from_dict, load_record, load_records, record_path, run_key
from siamese_lib.training import pair_errors, pair_sets


def consistent(store):
    """Each synthetic record's test metrics made to follow from its outputs (put_record's head and digit
    probabilities are all 0.5, so the head's errors may be any whole number of pairs)."""
    for path in sorted(store.glob("*.json")):
        r = json.loads(path.read_text())
        c, o, m = r["config"], r["outputs"], r["metrics"]
        _, _, _, _, target, classes = pair_sets(c["nb_pairs"], c["data_seed"])
        tensors = [torch.tensor(o[k]) for k in ("head_prob", "digit_prob")]
        wrong = pair_errors(
            *tensors, target, classes, torch.tensor(o["digit1_pred"]), torch.tensor(o["digit2_pred"])
        )
        for name in ("digit1_error", "digit2_error", "derived_error"):
            m[f"test_{name}"] = 100.0 * wrong[name].float().mean().item()
        m["test_error"] = float(round(m["test_error"] * c["nb_pairs"] / 100) * 100 / c["nb_pairs"])
        write_atomically(path, json.dumps(r))


@pytest.fixture
def made(tmp_path):
    """A tiny profile's store, its plan as the runner writes it, and its published record."""
    profile = load_profile(str(write_profile(tmp_path)))
    store, runs = tmp_path / "runs" / "store", tmp_path / "runs"
    fill_store(store, profile, paper_like)
    consistent(store)
    plan = runs / "plan.json"
    write_atomically(plan, json.dumps(publishing.profile_plan(profile, store, "cpu"), indent=1))
    path, what = publishing.publish_record(store, tmp_path / "report", profile, plan)
    assert what == "written"
    return profile, store, plan, path


def resign(path):
    """The tamperer's last step: the checksum recomputed, so only the content can tell."""
    published.checksum_file(path).write_text(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
    )


def rewrite(path, change):
    """The file rewritten with ``change(frame)`` applied to its rows (the schema and metadata kept), re-signed."""
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame = change(frame)
    pq.write_table(pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False), path)
    resign(path)


def test_records_round_trip_and_reseed_a_store(made, tmp_path):
    profile, store, plan, path = made
    records = load_records(store)
    assert (
        published.read_records(path, profile.name) == records
    )  # equal to what the store loads, field for field
    written, kept = publishing.seed_store(path, tmp_path / "seeded", profile)
    assert (written, kept) == (len(records), 0) and load_records(tmp_path / "seeded") == records
    assert publishing.seed_store(path, tmp_path / "seeded", profile) == (0, len(records))  # kept
    assert (tmp_path / "seeded" / SEEDED_MARK).is_file()  # marked: exploration trains elsewhere


def test_a_reader_needs_pandas_alone_and_the_metadata_says_what_it_holds(made):
    profile, store, plan, path = made
    df = pd.read_parquet(path)
    assert len(df) == len(load_records(store)) and df["key"].is_unique
    meta = published.read_metadata(path)
    assert (
        meta["format_version"] == "1"
        and meta["profile"] == "tiny"
        and json.loads(meta["plan"]) == publishing.profile_plan(profile, store, "cpu")
    )
    types = {f.name: str(f.type) for f in pq.read_schema(path)}
    assert types["head_prob"] == "list<element: float>" and types["digit1_pred"] == "list<element: int8>"
    assert "val_head_prob" not in types  # no run of it has validation outputs


def test_rendering_never_rewrites_a_published_record(made, tmp_path):
    profile, store, plan, path = made
    before = path.read_bytes()
    assert publishing.publish_record(store, tmp_path / "report", profile, plan) == (path, "unchanged")
    r = load_records(store)[0]
    r["created"] = "2030-01-01T00:00:00+00:00"  # a run trained again here (e.g. while exploring)
    write_atomically(record_path(store, r["key"]), json.dumps(r))
    with pytest.raises(
        publishing.RecordChanged, match=rf"1 changed \(e.g. {r['key']}\).*siamese_lib publish --profile tiny"
    ):
        publishing.publish_record(store, tmp_path / "report", profile, plan)
    assert path.read_bytes() == before
    other = put_record(store, config_from_dict(r["config"] | {"seed": 99}), 0.0)
    assert record_path(store, other["key"]).exists()  # a run the profile does not plan: never published
    assert publishing.publish_record(store, tmp_path / "report", profile, plan, replace=True) == (
        path,
        "written",
    )
    assert other["key"] not in set(pd.read_parquet(path)["key"])
    assert path.read_bytes() != before and published.read_metadata(path)


def test_the_same_records_give_the_same_bytes(made, tmp_path):
    profile, store, plan, path = made
    second, _ = publishing.publish_record(store, tmp_path / "b", profile, plan)
    assert second.read_bytes() == path.read_bytes()
    assert (
        published.checksum_file(second).read_text()
        == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  records.parquet\n"
    )


def test_an_altered_or_unchecked_file_is_refused(made, tmp_path):
    profile, store, plan, path = made
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(published.RecordFileError, match="sha256 differs"):
        publishing.seed_store(path, tmp_path / "seeded", profile)
    published.checksum_file(path).unlink()
    with pytest.raises(published.RecordFileError, match="checksum .* is missing"):
        published.read_records(path)
    with pytest.raises(published.RecordFileError, match="no published record"):
        published.read_records(tmp_path / "nowhere" / "records.parquet")
    assert not (tmp_path / "seeded").exists()


def _edit_a_metric(
    frame,
):  # (the synthetic head outputs are all 0.5: any test_error follows; the digits' do not)
    frame.loc[0, "test_digit2_error"] = 1.0 if frame.loc[0, "test_digit2_error"] != 1.0 else 2.0
    return frame


def _flip_outputs(frame):
    frame.at[0, "digit1_pred"] = [(d + 1) % 10 for d in frame.at[0, "digit1_pred"]]
    return frame


@pytest.mark.parametrize(
    "change, why",
    [
        (_edit_a_metric, "test_digit2_error .* does not follow from the record's own outputs"),
        (_flip_outputs, "test_digit1_error .* does not follow from the record's own outputs"),
    ],
)
def test_a_tampered_record_with_a_recomputed_checksum_is_refused(made, tmp_path, change, why):
    profile, store, plan, path = made
    rewrite(path, change)
    with pytest.raises(published.RecordFileError, match=why):
        publishing.seed_store(path, tmp_path / "seeded", profile)
    assert not (tmp_path / "seeded").exists() or not list((tmp_path / "seeded").glob("*.json"))


def test_an_unplanned_run_with_a_valid_key_is_refused(made, tmp_path):
    profile, store, plan, path = made
    extra = put_record(store, config_from_dict(load_records(store)[0]["config"] | {"seed": 99}), 0.0)
    consistent(store)  # a genuine-looking run (seed 99): its key follows from its configuration
    records = published.read_records(path) + [load_record(record_path(store, extra["key"]))]
    kept = ("siamese_lib.profile", "siamese_lib.profile_yaml", "siamese_lib.plan")
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(path).metadata.items() if k.decode() in kept}
    pq.write_table(published.records_table(records, meta), path)
    resign(path)
    with pytest.raises(published.RecordFileError, match="1 runs that profile 'tiny' does not plan"):
        publishing.seed_store(path, tmp_path / "seeded", profile)
    doc = json.loads(plan.read_text())  # nor is a plan that lists it the profile's
    doc["runs"][extra["key"]] = extra["config"]
    doc["executions"][0]["runs"].append(extra["key"])
    plan.write_text(json.dumps(doc))
    with pytest.raises(published.RecordFileError, match="its plan is not the plan profile 'tiny' gives"):
        publishing.publish_record(store, tmp_path / "other", profile, plan)


def test_another_profile_s_record_or_plan_is_refused(made, tmp_path):
    profile, store, plan, path = made
    other = load_profile(str(write_profile(tmp_path, name="smoke")))  # the same YAML under another name
    with pytest.raises(published.RecordFileError, match="a record of profile 'tiny', not of 'smoke'"):
        publishing.seed_store(path, tmp_path / "seeded", other)
    doc = json.loads(plan.read_text())
    doc["executions"][0]["parameters"]["model"] = (
        "Net" if doc["executions"][0]["parameters"].get("model") != "Net" else "ResNet"
    )
    with pytest.raises(published.RecordFileError, match="its plan is not the plan profile 'tiny' gives"):
        publishing.checked_plan(json.dumps(doc), profile, store, "plan.json")
    with pytest.raises(published.RecordFileError, match="not a plan the runner writes"):
        publishing.checked_plan("[1]", profile, store, "plan.json")


def _file_cases(path):
    meta = pq.read_schema(path).metadata

    def with_meta(**changes):
        table = pq.read_table(path)
        m = dict(meta)
        for k, v in changes.items():
            if v is None:
                m.pop(f"siamese_lib.{k}".encode())
            else:
                m[f"siamese_lib.{k}".encode()] = v.encode()
        pq.write_table(table.replace_schema_metadata(m), path)

    return with_meta


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda p, w: p.write_bytes(b""), "not a readable Parquet file"),
        (
            lambda p, w: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
            "not a readable Parquet file",
        ),
        (lambda p, w: p.write_text("key,test_error\nx,1\n"), "not a readable Parquet file"),
        (lambda p, w: w(columns=None), "metadata's columns are not this format's"),
        (lambda p, w: w(columns="{not json"), "metadata's columns are not this format's"),
        (
            lambda p, w: w(
                columns=json.dumps(
                    {
                        **json.loads(pq.read_schema(p).metadata[b"siamese_lib.columns"]),
                        "metrics": ["test_error", "nowhere"],
                    }
                )
            ),
            "column 'nowhere'",
        ),
    ],
)
def test_a_damaged_file_with_a_matching_checksum_is_one_line(made, tmp_path, damage, why):
    profile, store, plan, path = made
    damage(path, _file_cases(path))
    resign(path)
    with pytest.raises(published.RecordFileError, match=why):
        publishing.seed_store(path, tmp_path / "seeded", profile)


def test_machine_as_a_struct_is_one_line(made, tmp_path):
    profile, store, plan, path = made
    table = pq.read_table(path)
    i = table.schema.get_field_index("machine")
    struct = pa.array([{"cpu": "x"}] * len(table))
    pq.write_table(
        table.set_column(i, pa.field("machine", struct.type), struct).replace_schema_metadata(
            table.schema.metadata
        ),
        path,
    )
    resign(path)
    with pytest.raises(published.RecordFileError, match="column 'machine' is struct"):
        publishing.seed_store(path, tmp_path / "seeded", profile)


def test_a_symlink_upper_case_hex_and_the_size_limits(made, tmp_path, monkeypatch):
    profile, store, plan, path = made
    sidecar = published.checksum_file(path)
    sidecar.write_text(sidecar.read_text().upper().replace("RECORDS.PARQUET", "records.parquet"))
    assert published.read_metadata(path)["profile"] == "tiny"  # sha256sum -c accepts upper-case hex: so do we
    monkeypatch.setattr(published, "MAX_VALUES", 1000)
    with pytest.raises(published.RecordFileError, match="values, more than a record may hold"):
        published.read_records(path)
    link = tmp_path / "link" / "records.parquet"
    link.parent.mkdir()
    link.symlink_to(path)
    os.symlink(sidecar, published.checksum_file(link))
    with pytest.raises(published.RecordFileError, match="is a symlink"):
        published.read_records(link)


def test_a_kill_between_the_file_and_its_checksum_recovers_by_itself(made, tmp_path):
    profile, store, plan, path = made
    old, sidecar = path.read_bytes(), published.checksum_file(path).read_text()
    pending = published.checksum_file(path).with_name("records.parquet.sha256.new")
    new = old + b"x"
    pending.write_text(f"{hashlib.sha256(new).hexdigest()}  records.parquet\n")  # killed before the file
    said = []
    assert published.read_metadata(path, say=said.append) and "old record and checksum kept" in said[0]
    assert not pending.exists() and published.checksum_file(path).read_text() == sidecar
    data, _ = publishing.record_bytes(store, profile, plan)
    r = load_records(store)[0]
    r["created"] = "2030-01-01T00:00:00+00:00"
    write_atomically(record_path(store, r["key"]), json.dumps(r))
    data, _ = publishing.record_bytes(store, profile, plan)
    pending.write_text(f"{hashlib.sha256(data).hexdigest()}  records.parquet\n")
    path.write_bytes(data)  # killed after the file, before its checksum
    said.clear()
    assert published.read_metadata(path, say=said.append) and "new checksum put in place" in said[0]
    assert published.read_records(path)[0]["created"] in {x["created"] for x in load_records(store)}


def test_runs_and_cells_csv_are_derived_byte_for_byte_and_no_path_comes_from_the_file(made, tmp_path):
    profile, store, plan, path = made
    records = load_records(store)
    written = write_data_csvs(
        records_frame(records),
        table_cells(records, expand(profile, str(store)), profile.name),
        tmp_path / "report",
        profile.settings["equivalence_margin"],
    )
    derived = publishing.derive_csvs(path, tmp_path / "derived", profile)
    for name in ("runs", "cells"):
        assert derived[name].read_bytes() == written[name].read_bytes()
    table = pq.read_table(
        path
    )  # a profile name with a path in it: refused as another profile, nothing written
    meta = dict(table.schema.metadata) | {b"siamese_lib.profile": b"../../escaped"}
    pq.write_table(table.replace_schema_metadata(meta), path)
    resign(path)
    with pytest.raises(published.RecordFileError, match="not of 'tiny'"):
        publishing.derive_csvs(path, tmp_path / "again", profile)
    assert not list(tmp_path.parent.glob("escaped*"))


def test_a_cell_never_mixes_stored_runs_of_another_code_version_with_new_ones(tmp_path, monkeypatch):
    from siamese_lib.pipeline import invocation

    profile = load_profile(str(write_profile(tmp_path)))
    store = tmp_path / "store"
    monkeypatch.setattr(invocation, "code_version", lambda: "synthetic")  # put_record's code version
    cell = expand(profile, str(store), "cpu", stages=("table1",))[0].configs()
    keys = [run_key(c, "cpu") for c in cell]
    put_record(store, cell[0], 20.0)  # one seed of a Table I cell; the others would be trained now
    invocation.check_code_mix("table1/x", keys, set(keys[1:]), store)  # the same code: resuming is fine
    monkeypatch.setattr(invocation, "code_version", lambda: "0123456789ab")
    with pytest.raises(
        UsageError, match=rf"table1/x: 1 of its {len(cell)} runs are stored from code synthetic.*refusing"
    ):
        invocation.check_code_mix("table1/x", keys, set(keys[1:]), store)
    invocation.check_code_mix(
        "table1/x", keys, set(keys), store
    )  # nothing stored (or --force): nothing to mix
    invocation.check_code_mix("table1/x", keys, set(), store)  # a complete cell is never retrained: no mix


def test_a_record_that_would_not_read_back_exactly_is_not_published(made, tmp_path):
    profile, store, plan, path = made
    r = load_records(store)[0]
    i = int(pair_sets(100, 0)[4].argmax())  # a pair whose target is 1: its head's 0.5000001 decides it right
    r["outputs"]["head_prob"][i] = 0.5000001  # 7 decimals: more than training writes and float32 keeps
    write_atomically(record_path(store, r["key"]), json.dumps(r))
    with pytest.raises(ValueError, match="would not read back as stored"):
        publishing.publish_record(store, tmp_path / "fresh", profile, plan)
    assert not (tmp_path / "fresh" / "records.parquet").exists()


def test_exploration_never_trains_into_a_store_seeded_from_a_record(made, tmp_path):
    from siamese_lib.pipeline.engine import ensure_runs

    profile, store, plan, path = made
    seeded = tmp_path / "seeded"
    publishing.seed_store(path, seeded, profile)
    known = config_from_dict(load_records(seeded)[0]["config"])
    assert ensure_runs([known], seeded, device="cpu", log=lambda line: None)[0]["key"] == run_key(
        known, "cpu"
    )
    new = config_from_dict(known.to_dict() | {"seed": 99})  # e.g. a notebook opened on it with another seed
    with pytest.raises(
        UsageError, match="seeded from the published record .* store_dir='runs/explore/store'"
    ):
        ensure_runs([new], seeded, device="cpu", log=lambda line: None)
    assert not record_path(seeded, run_key(new, "cpu")).exists()


def test_a_record_of_uncommitted_code_is_refused_for_a_committed_profile_s_store(made, tmp_path, monkeypatch):
    profile, store, plan, path = made
    records = published.read_records(path)
    records[0]["code_version"] = "0123456789ab+dirty"
    kept = ("siamese_lib.profile", "siamese_lib.profile_yaml", "siamese_lib.plan")
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(path).metadata.items() if k.decode() in kept}
    pq.write_table(published.records_table(records, meta), path)
    resign(path)
    monkeypatch.delenv("SIAMESE_LIB_ALLOW_DIRTY", raising=False)
    monkeypatch.setattr(publishing.store, "is_clean_store", lambda d: True)  # as runs/paper/store
    with pytest.raises(
        published.RecordFileError, match=rf"1 of its runs \(e.g. {records[0]['key']}\).*\+dirty"
    ):
        publishing.seed_store(path, tmp_path / "seeded", profile)
    monkeypatch.setattr(
        publishing.store, "is_clean_store", lambda d: False
    )  # another profile's: an experiment
    assert publishing.seed_store(path, tmp_path / "seeded", profile)[0] == len(records)


def _duplicate_a_row(path):
    frame = pd.read_csv(path)
    pd.concat([frame, frame.iloc[[0]]]).to_csv(path, index=False)


def _edit_a_mean(path):
    frame = pd.read_csv(path)
    frame.loc[frame["n"] > 0, "mean"] -= 0.5
    frame.to_csv(path, index=False)


@pytest.mark.parametrize(
    "name, edit",
    [("runs", _duplicate_a_row), ("cells", _edit_a_mean), ("runs", lambda p: p.write_text("key\n"))],
)
def test_verify_refuses_a_csv_that_its_record_does_not_derive(made, name, edit):
    """An edited cell is refused by verify whatever its sample holds: runs.csv and cells.csv must follow from the
    record, byte for byte; a CSV that is absent is not checked (the record is the source)."""
    from siamese_lib.common import UsageError
    from siamese_lib.pipeline import verify

    profile, store, plan, path = made
    runs, _ = verify.load_committed(path.parent, profile)  # no CSV beside it: nothing to compare
    assert sorted(r.key for r in runs) == sorted(r["key"] for r in load_records(store))
    derived = publishing.derive_csvs(path, path.parent, profile)
    assert len(verify.load_committed(path.parent, profile)[0]) == len(runs)  # as derived: accepted
    edit(derived[name])
    with pytest.raises(UsageError, match=f"{name}.csv is not what records.parquet beside it derives") as err:
        verify.load_committed(path.parent, profile)
    assert "\n" not in str(err.value)


def test_verify_refuses_a_record_with_a_key_twice(made, tmp_path):
    from siamese_lib.pipeline import verify

    profile, store, plan, path = made
    rewrite(path, lambda frame: pd.concat([frame, frame.iloc[[0]]]))
    key = pd.read_parquet(path)["key"][0]
    with pytest.raises(published.RecordFileError, match=rf"duplicated rows: {key} \(2 times\)"):
        verify.load_committed(path.parent, profile)
    with pytest.raises(published.RecordFileError, match="no published record"):
        verify.load_committed(tmp_path / "nowhere", profile)
