"""Poisoned records (issue 15, class 2): every field is checked against its type and range on load; a bad
record is reported by path and treated as missing, and nothing downstream crashes on it."""

import copy
import json
import math

import pytest
from conftest import ensure_one
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siamese_lib import store, training
from siamese_lib.analysis import tables
from siamese_lib.config import RunConfig
from siamese_lib.experiments.variants import variant_configs
from siamese_lib.pipeline import watch
from siamese_lib.training import train_run

# Real record shapes: the paper's setting, the original protocol without the auxiliary loss (25 epochs
# whatever `epochs` says), and a beyond-the-paper run with a validation split (val_* metrics).
SHAPES = {
    "paper": RunConfig(model="Net", nb_pairs=20, batch_size=10, epochs=2, seed=4),
    "original no aux": RunConfig(
        model="Net", nb_pairs=20, batch_size=10, epochs=30, seed=4, protocol="original", aux_loss=False
    ),
    "beyond, val_pairs": RunConfig(
        **{
            **variant_configs(
                "aug_all", "LeNet5", 5e-3, [4], nb_pairs=20, data_seed=0, batch_size=10, epochs=2
            )[0].to_dict(),
            "augment": ("swap",),
        }
    ),
}


@pytest.fixture(scope="module")
def real(mnist, tmp_path_factory):
    """One real record per shape, made by engine.ensure_runs (the very code that writes the store)."""
    folder = tmp_path_factory.mktemp("store")
    out = {}
    for name, config in SHAPES.items():
        record, cached = ensure_one(config, folder)
        assert not cached
        out[name] = (folder, store.record_path(folder, record["key"]))
    return out


def test_every_real_record_shape_is_accepted(real):
    for name, (_folder, path) in real.items():
        record = store.load_record(path)
        config = SHAPES[name]
        assert record["epochs_trained"] == config.trained_epochs == len(record["curves"]["train_loss"]), name
    assert store.load_record(real["original no aux"][1])["epochs_trained"] == 25
    assert "val_error" in store.load_record(real["beyond, val_pairs"][1])["metrics"]
    assert len(store.load_records(real["paper"][0], report=pytest.fail)) == 3


def test_a_machine_fingerprint_is_accepted_and_optional(real, tmp_path):
    _, path = real["paper"]
    record = json.loads(path.read_text())
    assert "machine" in record  # written by ensure_runs (issue 13)
    copy_path = tmp_path / path.name
    old = {k: v for k, v in record.items() if k != "machine"}  # as stored before fingerprints existed
    copy_path.write_text(json.dumps(old))
    assert "machine" not in store.load_record(copy_path)
    copy_path.write_text(json.dumps({**record, "machine": "x86_64"}))
    with pytest.raises(store.CorruptRecord, match="machine"):
        store.load_record(copy_path)
    copy_path.write_text(json.dumps({**record, "machine": {"cpu": "x86_64"}}))  # lacks the fingerprint's keys
    with pytest.raises(store.CorruptRecord, match="machine"):
        store.load_record(copy_path)


def _poison(record, dotted, value):
    out = copy.deepcopy(record)
    *parents, last = dotted.split(".")
    target = out
    for p in parents:
        target = target[p]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return out


# The cases of the issue and their relatives: (field, poisoned value, words the one line must hold)
POISONS = [
    ("metrics.test_error", "12.5", "metrics.test_error"),
    ("metrics.test_error", -50.0, "<= 100"),
    ("metrics.test_error", 1e9, "<= 100"),
    ("metrics.test_error", True, "metrics.test_error"),
    ("metrics.test_error", None, "metrics.test_error"),
    ("metrics.train_error", 100.5, "metrics.train_error"),
    ("metrics.val_error", 3.0, "not a metric of this configuration"),
    ("metrics.wall_seconds", -1.0, "metrics.wall_seconds"),
    ("metrics.magic", 3.0, "metrics.magic"),
    ("curves.train_loss", None, "curves"),
    ("curves.train_loss", [1.0], "curves.train_loss"),
    ("curves.train_loss", [1.0, "x"], "curves.train_loss"),
    ("curves", None, "curves"),
    ("outputs.head_prob", [0.5] * 19, "outputs.head_prob"),
    ("outputs.digit1_pred", [10] * 20, "outputs.digit1_pred"),
    ("outputs.digit2_pred", [True] * 20, "outputs.digit2_pred"),
    ("outputs", None, "outputs"),
    ("epochs_trained", 3, "epochs_trained"),
    ("threads", 0, "threads"),
    ("created", "yesterday", "created"),
    ("torch_version", 2, "torch_version"),
    ("device", "tpu", "device: must be one of cpu, cuda"),
    ("schema_version", True, "schema_version"),
    ("config", None, "config: "),
    ("config.lr", "0.03", "config: lr: must be"),
    ("extra", 1, "unknown field 'extra'"),
]


@pytest.mark.parametrize("field,value,words", POISONS, ids=[f"{f}={v!r}"[:40] for f, v, _ in POISONS])
def test_a_poisoned_record_is_reported_by_path_and_treated_as_missing(real, tmp_path, field, value, words):
    folder, path = real["paper"]
    record = json.loads(path.read_text())
    bad = tmp_path / path.name
    bad.write_text(json.dumps(_poison(record, field, value)))
    with pytest.raises(store.CorruptRecord) as info:
        store.load_record(bad)
    line = str(info.value)
    assert line.startswith(str(bad)) and words in line and "\n" not in line, line
    reported = []
    assert store.load_records(tmp_path, report=reported.append) == []  # treated as missing
    assert len(reported) == 1 and str(bad) in reported[0]


def test_nan_and_infinity_in_json_are_refused(real, tmp_path):
    _, path = real["paper"]
    text = path.read_text()
    record = json.loads(text)
    for literal in ("NaN", "Infinity", "-Infinity"):
        bad = tmp_path / path.name
        loss = record["curves"]["train_loss"]
        bad.write_text(text.replace(json.dumps(loss), "[" + ", ".join([literal] * len(loss)) + "]"))
        with pytest.raises(store.CorruptRecord, match="curves.train_loss"):
            store.load_record(bad)
        bad.write_text(
            text.replace(
                f'"test_error": {json.dumps(record["metrics"]["test_error"])}', f'"test_error": {literal}'
            )
        )
        with pytest.raises(store.CorruptRecord, match="test_error"):
            store.load_record(bad)


def test_the_tables_use_the_good_records_and_report_the_bad_one(real, tmp_path, capsys):
    """The report's path (store.load_records, then tables.records_frame): a -50.0 never reaches a cell, no crash."""
    folder, path = real["paper"]
    for _, p in real.values():
        (tmp_path / p.name).write_text(p.read_text())
    poisoned = tmp_path / path.name
    poisoned.write_text(json.dumps(_poison(json.loads(path.read_text()), "metrics.test_error", -50.0)))
    frame = tables.records_frame(store.load_records(tmp_path))
    assert len(frame) == 2 and (frame["test_error"] >= 0).all()
    err = capsys.readouterr().err
    assert str(poisoned) in err and "skipped a bad record" in err and "<= 100" in err


def test_ensure_run_refuses_a_poisoned_record_naming_it_and_keeps_the_evidence(real, tmp_path):
    _, path = real["paper"]
    bad = tmp_path / path.name
    text = json.dumps(_poison(json.loads(path.read_text()), "metrics.test_error", "12.5"))
    bad.write_text(text)
    with pytest.raises(store.CorruptRecord, match=bad.name) as info:
        ensure_one(SHAPES["paper"], tmp_path)
    assert info.value._render_traceback_() == [f"CorruptRecord: {info.value}"]  # one line in a notebook
    assert bad.read_text() == text


def test_a_huge_record_file_is_refused_without_parsing(real, tmp_path, monkeypatch):
    _, path = real["paper"]
    bad = tmp_path / path.name
    bad.write_text(path.read_text())
    monkeypatch.setattr(store, "MAX_RECORD_BYTES", 100)
    monkeypatch.setattr(store.json, "loads", pytest.fail)
    with pytest.raises(store.CorruptRecord, match="more than a record can hold"):
        store.load_record(bad)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def _fields(record, prefix=""):
    """Every dotted path of a record (list items: the first only, to keep the space small)."""
    for k, v in record.items():
        yield prefix + k
        if isinstance(v, dict):
            yield from _fields(v, prefix + k + ".")
        elif isinstance(v, list) and v:
            yield prefix + k + ".0"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_any_field_set_to_any_value_is_valid_or_refused_by_path(real, tmp_path, data):
    """Whatever JSON value lands in whatever field: the record loads with every value in range, or it is
    refused with CorruptRecord naming its path; never another exception, never a bad value used."""
    _, path = real[data.draw(st.sampled_from(sorted(SHAPES)))]
    record = json.loads(path.read_text())
    field = data.draw(st.sampled_from(sorted(_fields(record))))
    value = data.draw(JSON_VALUES)
    bad = tmp_path / path.name
    bad.write_text(json.dumps(_poison(record, field, value)))
    try:
        loaded = store.load_record(bad)
    except store.CorruptRecord as exc:
        assert str(exc).startswith(str(bad)) and "\n" not in str(exc)
        return
    m = loaded["metrics"]
    assert all(0 <= v <= 100 for k, v in m.items() if not k.endswith("_seconds"))
    assert all(math.isfinite(v) for v in loaded["curves"]["train_loss"])
    assert (
        len(loaded["curves"]["train_loss"])
        == RunConfig(**{**loaded["config"], "augment": tuple(loaded["config"]["augment"])}).trained_epochs
    )


def test_training_never_stores_a_record_that_a_load_would_refuse(mnist, tmp_path, monkeypatch):
    body = train_run(SHAPES["paper"], device="cpu")
    body["curves"]["train_loss"][0] = float("nan")  # as a diverged run would give
    monkeypatch.setattr(training, "train_run", lambda *a, **k: body)
    with pytest.raises((store.CorruptRecord, watch.BadResult), match="curves.train_loss"):
        ensure_one(SHAPES["paper"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_record_lacking_a_metric_or_outputs_is_refused(real, tmp_path):
    _, path = real["beyond, val_pairs"]
    record = json.loads(path.read_text())
    bad = tmp_path / path.name
    for field, name, words in (
        ("metrics", "val_error", "metrics lack val_error"),
        ("outputs", "digit_prob", "outputs.digit_prob is required"),
    ):
        bad.write_text(json.dumps({**record, field: {k: v for k, v in record[field].items() if k != name}}))
        with pytest.raises(store.CorruptRecord, match=words):
            store.load_record(bad)


def test_find_record_for_readers_reports_and_treats_as_missing(real, tmp_path):
    """What the report's beyond-the-paper section uses (analysis.beyond_paper): no crash on a bad record."""
    _, path = real["paper"]
    bad = tmp_path / path.name
    bad.write_text(json.dumps(_poison(json.loads(path.read_text()), "metrics.test_error", -50.0)))
    reported = []
    assert store.find_record(tmp_path, SHAPES["paper"], "cpu", report=reported.append) is None
    assert len(reported) == 1 and str(bad) in reported[0]
    with pytest.raises(store.CorruptRecord):  # without a report: refused (the training path)
        store.find_record(tmp_path, SHAPES["paper"], "cpu")
