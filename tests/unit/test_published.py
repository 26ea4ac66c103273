"""The published record (pipeline/published.py): one Parquet file holding every run's record, read back
equal to the store, checked by its sha256, seeding a store through the store's writer, deriving runs.csv and
cells.csv byte for byte, and refusing to mix code versions in one cell. Synthetic stores, no training."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_analysis import fill_store, paper_like, put_record, write_profile

from siamese_lib.analysis.tables import records_frame, table_cells
from siamese_lib.common import UsageError, write_atomically
from siamese_lib.config import RunConfig
from siamese_lib.experiments.planning import expand, plan_document
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.machine import fingerprint
from siamese_lib.pipeline import published
from siamese_lib.presentation.sections import write_data_csvs
from siamese_lib.store import load_records, record_path, run_key


def varied_store(store):
    """Records that differ in what a row must carry: a validation split (extra metrics), augmentations,
    a machine fingerprint, outputs with six decimals, optional fields absent."""
    put_record(store, RunConfig(model="Net", seed=1, epochs=2, nb_pairs=20), 12.5, curve=[2.25, 1.125])
    r = put_record(
        store,
        RunConfig(
            seed=2, epochs=3, nb_pairs=20, augment=("swap", "affine"), val_pairs=4, lr_schedule="cosine"
        ),
        7.5,
    )
    r["metrics"].update(
        {
            f"val_{m}": 10.0
            for m in (
                "error",
                "digit1_error",
                "digit2_error",
                "derived_error",
                "digit_prob_error",
                "head_vs_digits_disagreement",
            )
        }
    )
    r["outputs"]["head_prob"] = [round(i / 19 * 0.999999, 6) for i in range(20)]
    r["outputs"]["digit2_pred"] = [i % 10 for i in range(20)]
    r["machine"] = fingerprint("cpu")
    del r["host"], r["python"]
    write_atomically(record_path(store, r["key"]), json.dumps(r))
    return load_records(store)


def test_records_round_trip_and_reseed_a_store(tmp_path):
    records = varied_store(tmp_path / "store")
    profile = load_profile(str(write_profile(tmp_path)))
    path = published.publish_record(tmp_path / "store", tmp_path / "report", profile)
    assert published.read_records(path) == records  # equal to what the store loads, field for field
    written, kept = published.seed_store(path, tmp_path / "seeded")
    assert (written, kept) == (2, 0) and load_records(tmp_path / "seeded") == records
    assert published.seed_store(path, tmp_path / "seeded") == (0, 2)  # records already there are kept


def test_a_reader_needs_pandas_alone_and_the_metadata_says_what_it_holds(tmp_path):
    records = varied_store(tmp_path / "store")
    (tmp_path / "plan.json").write_text('{"executions": []}')
    profile = load_profile(str(write_profile(tmp_path)))
    path = published.publish_record(tmp_path / "store", tmp_path / "report", profile, tmp_path / "plan.json")
    df = pd.read_parquet(path)
    assert len(df) == 2 and set(df["key"]) == {r["key"] for r in records}
    assert df.groupby("model")["test_error"].mean().to_dict() == {"LeNet5": 7.5, "Net": 12.5}
    assert list(df.loc[df["model"] == "Net", "train_loss"].iloc[0]) == [2.25, 1.125]
    assert df["val_error"].isna().tolist() == (df["model"] == "Net").tolist()  # absent metric: null
    meta = published.read_metadata(path)
    assert (
        meta["format_version"] == "1" and meta["profile"] == "tiny" and meta["plan"] == '{"executions": []}'
    )
    assert (
        load_profile(str(write_profile(tmp_path, meta["profile_yaml"], name="again"))).stages
        == profile.stages
    )
    types = {f.name: str(f.type) for f in pq.read_schema(path)}
    assert types["head_prob"] == "list<element: float>" and types["digit1_pred"] == "list<element: int8>"


def test_the_same_records_give_the_same_bytes(tmp_path):
    varied_store(tmp_path / "store")
    profile = load_profile(str(write_profile(tmp_path)))
    first = published.publish_record(tmp_path / "store", tmp_path / "a", profile).read_bytes()
    second = published.publish_record(tmp_path / "store", tmp_path / "b", profile)
    assert second.read_bytes() == first
    assert (
        published.checksum_file(second).read_text()
        == f"{hashlib.sha256(first).hexdigest()}  records.parquet\n"
    )


def test_an_altered_or_unchecked_file_is_refused(tmp_path):
    varied_store(tmp_path / "store")
    path = published.publish_record(
        tmp_path / "store", tmp_path / "report", load_profile(str(write_profile(tmp_path)))
    )
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(published.RecordFileError, match="sha256 differs"):
        published.seed_store(path, tmp_path / "seeded")
    published.checksum_file(path).unlink()
    with pytest.raises(published.RecordFileError, match="checksum .* is missing"):
        published.read_records(path)
    with pytest.raises(published.RecordFileError, match="no published record"):
        published.read_records(tmp_path / "nowhere" / "records.parquet")
    assert not (tmp_path / "seeded").exists()


def test_a_record_the_store_would_refuse_is_not_seeded(tmp_path, monkeypatch):
    varied_store(tmp_path / "store")
    path = published.publish_record(
        tmp_path / "store", tmp_path / "report", load_profile(str(write_profile(tmp_path)))
    )
    bad = published.read_records(path)
    bad[0]["metrics"]["test_error"] = 140.0  # not a percentage
    monkeypatch.setattr(published, "read_records", lambda p: bad)
    with pytest.raises(published.RecordFileError, match="not a valid record.*test_error"):
        published.seed_store(path, tmp_path / "seeded")


def test_runs_and_cells_csv_are_derived_byte_for_byte(tmp_path):
    profile = load_profile(str(write_profile(tmp_path)))
    fill_store(tmp_path / "store", profile, paper_like)
    records = load_records(tmp_path / "store")
    written = write_data_csvs(
        records_frame(records),
        table_cells(records, expand(profile, str(tmp_path / "store")), profile.name),
        tmp_path / "report",
        profile.settings["equivalence_margin"],
    )
    plan = tmp_path / "plan.json"  # as the runner writes it: the cells are the plan's
    plan.write_text(json.dumps(plan_document(profile.name, "cpu", expand(profile, str(tmp_path / "store")))))
    path = published.publish_record(tmp_path / "store", tmp_path / "report", profile, plan)
    derived = published.derive_csvs(path, tmp_path / "derived")
    for name in ("runs", "cells"):
        assert derived[name].read_bytes() == written[name].read_bytes()


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


def test_a_record_that_would_not_read_back_exactly_is_not_published(tmp_path):
    varied_store(tmp_path / "store")
    r = load_records(tmp_path / "store")[0]
    r["outputs"]["head_prob"][0] = 0.1234567  # 7 decimals: more than training writes and float32 keeps
    write_atomically(record_path(tmp_path / "store", r["key"]), json.dumps(r))
    with pytest.raises(ValueError, match="would not read back as stored"):
        published.publish_record(
            tmp_path / "store", tmp_path / "report", load_profile(str(write_profile(tmp_path)))
        )
    assert not (tmp_path / "report" / "records.parquet").exists()
