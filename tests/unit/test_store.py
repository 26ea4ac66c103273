"""The results store: stable keys, one atomic record per run, reuse instead of retraining."""

import json

import pandas as pd
import pytest
from conftest import ensure_one, files_under

from siamese_lib import store, training
from siamese_lib.analysis import tables
from siamese_lib.config import ERROR_METRICS, RunConfig
from siamese_lib.experiments import planning

TINY = RunConfig(model="LeNet5", nb_pairs=100, epochs=1, seed=4)


def test_run_key_is_pinned():
    # Records already on disk are found by these keys: a change to RunConfig's fields or defaults,
    # or to run_key, would orphan them. Change these literals only with a store migration.
    assert store.run_key(RunConfig(), "cpu") == "fc5804afcc6efb40ffa6"
    old_original = RunConfig(model="ResNet", seed=7, protocol="original", branch_calls=1)
    assert store.run_key(old_original, "cuda") == "8d5e1afc92ee8c5619e1"
    # the original protocol now runs the authors' two-call forward: a different model, so a new key
    assert (
        store.run_key(RunConfig(model="ResNet", seed=7, protocol="original"), "cuda")
        == "9d96fecf018836a9584d"
    )


def test_run_key_depends_on_everything_that_determines_a_run():
    base = store.run_key(RunConfig(), "cpu")
    variants = [
        RunConfig(seed=2),
        RunConfig(lr=5e-4),
        RunConfig(epochs=29),
        RunConfig(nb_pairs=999),
        RunConfig(data_seed=1),
        RunConfig(dropout=True),
        RunConfig(protocol="original"),
        RunConfig(aux_weight=0.5),
        RunConfig(augment=("swap",)),
        RunConfig(branch_calls=2),
    ]
    keys = {store.run_key(c, "cpu") for c in variants} | {store.run_key(RunConfig(), "cuda")}
    assert base not in keys and len(keys) == len(variants) + 1


@pytest.fixture(scope="module")
def stored(tmp_path_factory, mnist):
    """One tiny run trained into a fresh store."""
    store_dir = tmp_path_factory.mktemp("store")
    record, cached = ensure_one(TINY, store_dir)
    assert not cached
    return store_dir, record


def test_record_is_complete_and_on_disk(stored):
    store_dir, record = stored
    path = store.record_path(store_dir, record["key"])
    assert files_under(store_dir) == [path.name]  # one record, no temp file
    on_disk = json.loads(path.read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert on_disk["key"] == store.run_key(TINY, "cpu") and on_disk["config"] == TINY.to_dict()
    assert on_disk["schema_version"] == store.SCHEMA_VERSION and on_disk["device"] == "cpu"
    assert on_disk["curves"]["train_loss"] and "test_error" in on_disk["metrics"]
    assert store.load_record(path) == on_disk


def test_second_call_reuses_the_record_and_force_recomputes(stored, monkeypatch):
    store_dir, record = stored

    def no_training(*a, **k):
        raise AssertionError("retrained a run that is in the store")

    monkeypatch.setattr(training, "train_run", no_training)
    again, cached = ensure_one(TINY, store_dir)
    assert cached and again == json.loads(json.dumps(record))
    assert store.find_record(store_dir, TINY, "cpu") == again
    assert store.find_record(store_dir, RunConfig(seed=99), "cpu") is None
    monkeypatch.undo()

    calls = []
    real = training.train_run
    monkeypatch.setattr(training, "train_run", lambda *a, **k: calls.append(1) or real(*a, **k))
    forced, cached = ensure_one(TINY, store_dir, force=True)
    assert not cached and calls == [1]
    # the same configuration retrained gives the same numbers
    timing = ("train_seconds", "wall_seconds")
    strip = lambda m: {k: v for k, v in m.items() if k not in timing}  # noqa: E731
    assert strip(forced["metrics"]) == strip(record["metrics"])
    assert files_under(store_dir) == [f"{record['key']}.json"]
    # a time stamp (the runner's --force): written after it -> reused; written before it -> retrained
    path = store.record_path(store_dir, record["key"])
    written = path.stat().st_mtime
    _, cached = ensure_one(TINY, store_dir, force=written - 1)
    assert cached and calls == [1]
    _, cached = ensure_one(TINY, store_dir, force=written + 1)
    assert not cached and calls == [1, 1]


def test_store_loads_as_one_frame(stored):
    store_dir, record = stored
    frame = tables.records_frame(store.load_records(store_dir))
    assert isinstance(frame, pd.DataFrame) and len(frame) == 1
    row = frame.iloc[0]
    assert row["key"] == record["key"] and row["model"] == "LeNet5" and row["seed"] == 4
    assert row["test_error"] == record["metrics"]["test_error"]
    assert tables.records_frame(store.load_records(store_dir / "absent")).empty


def test_config_round_trips_through_a_record(stored):
    _, record = stored
    assert store.config_from_dict(record["config"]) == TINY


def test_a_record_stored_before_a_field_existed_is_found_by_its_configuration(tmp_path):
    """lr_schedule came after the paper profile's records: they must still fill the tables."""
    import json

    from siamese_lib.store import load_records, record_path, run_key

    config = RunConfig(model="Net", seed=3, epochs=2, nb_pairs=20, batch_size=10)
    legacy = config.to_dict()
    del legacy["lr_schedule"]
    key = run_key(config, "cpu")
    metrics = {f"{split}_{m}": 7.0 for split in ("train", "test") for m in ERROR_METRICS}
    record = {
        "schema_version": store.SCHEMA_VERSION,
        "key": key,
        "config": legacy,
        "metrics": {**metrics, "train_seconds": 1.0, "wall_seconds": 1.0},
        "curves": {"train_loss": [1.0, 0.5]},
        "outputs": {k: [0] * 20 for k in ("head_prob", "digit_prob", "digit1_pred", "digit2_pred")},
        "device": "cpu",
        "torch_version": "x",
        "code_version": "x",
        "created": "2026-11-26T00:00:00+00:00",
    }
    record_path(tmp_path, key).write_text(json.dumps(record))
    (loaded,) = load_records(tmp_path)
    assert loaded["config"]["lr_schedule"] == "constant"
    assert planning.record_finder([loaded])(config)["metrics"]["test_error"] == 7.0


def test_an_original_record_from_before_branch_calls_keeps_its_one_call_forward(tmp_path):
    """Records stored before branch_calls ran both images in one call: they load as such, with their key."""
    import json

    from siamese_lib.store import load_records, record_path, run_key

    config = RunConfig(
        model="Net", seed=3, epochs=2, nb_pairs=20, batch_size=10, protocol="original", branch_calls=1
    )
    record, _ = ensure_one(config, tmp_path)  # a complete record, as training writes it
    key = record["key"]
    assert key == run_key(config, "cpu")
    del record["config"]["branch_calls"]  # as stored before the field existed
    record_path(tmp_path, key).write_text(json.dumps(record))
    (loaded,) = load_records(tmp_path)
    assert loaded["config"]["branch_calls"] == 1
    assert RunConfig(model="Net", protocol="original").branch_calls == 2  # new runs: the authors' forward


def test_a_record_with_a_broken_machine_fingerprint_is_refused(tmp_path, stored):
    import json

    store_dir, record = stored
    path = store.record_path(store_dir, record["key"])
    assert record["machine"]["cpu_model"] and record["machine"]["numerics"] in ("native", "portable")
    bad = dict(record, machine={"cpu_model": "x"})
    target = tmp_path / path.name
    target.write_text(json.dumps(bad))
    with pytest.raises(store.CorruptRecord, match="fingerprint"):
        store.load_record(target)


def test_a_run_with_a_confirmation_set_stores_it_and_a_record_must_match_its_config(tmp_path, mnist):
    from siamese_lib.analysis.beyond_paper import runs_frame
    from siamese_lib.analysis.selection_results import ensemble_scores, scored_runs

    config = RunConfig(model="LeNet5", epochs=1, nb_pairs=100, batch_size=50, confirm_seeds=(101,))
    record, _ = ensure_one(config, tmp_path)
    assert len(record["outputs"]["confirm_head_prob"]) == config.confirm_pairs == 4900
    assert 0 <= record["metrics"]["confirm_error"] <= 100
    frame = runs_frame([record], "a")
    scored = scored_runs(frame, "error")
    assert (
        scored["confirm"]["mean"] == record["metrics"]["confirm_error"] and scored["confirm"]["pairs"] == 4900
    )
    # one run's ensemble is that run: the same error on both sets
    ens = ensemble_scores(frame, "head_prob")
    assert ens["test"]["mean"] == pytest.approx(record["metrics"]["test_error"], abs=1e-4)
    assert ens["confirm"]["mean"] == pytest.approx(record["metrics"]["confirm_error"], abs=1e-4)
    path = store.record_path(tmp_path, record["key"])
    lacking = json.loads(path.read_text())
    del lacking["outputs"]["confirm_digit_prob"]
    path.write_text(json.dumps(lacking))
    with pytest.raises(store.CorruptRecord, match="lack confirm_digit_prob"):
        store.load_record(path)
