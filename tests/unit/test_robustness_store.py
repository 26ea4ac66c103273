"""The results store under corrupted state and failing disks: never a partial or untrusted record."""

import errno
import json
import os

import pytest
from conftest import ensure_one, files_under

from siamese_lib import common, store, training
from siamese_lib.analysis import tables
from siamese_lib.config import RunConfig

CONFIG = RunConfig(model="Net", nb_pairs=100, epochs=1, seed=8)


@pytest.fixture(scope="module")
def body(mnist):
    """A real record body (one tiny run), reused so the failure cases below need no training."""
    from siamese_lib.training import train_run

    return train_run(CONFIG, device="cpu")


@pytest.fixture
def good(tmp_path, body, monkeypatch):
    """A store with one valid record; training is replaced by the precomputed body."""
    monkeypatch.setattr(training, "train_run", lambda *a, **k: json.loads(json.dumps(body)))
    record, cached = ensure_one(CONFIG, tmp_path)
    assert not cached
    return tmp_path, store.record_path(tmp_path, record["key"]), record


def _mutations(record):
    """Ways a record can be wrong while still being JSON (name -> text)."""

    def changed(**kw):
        return json.dumps({**record, **kw})

    def without(field):
        return json.dumps({k: v for k, v in record.items() if k != field})

    return {
        "a list, not an object": json.dumps([record]),
        "missing metrics": without("metrics"),
        "missing key": without("key"),
        "future schema": changed(schema_version=store.SCHEMA_VERSION + 1),
        "schema as text": changed(schema_version=str(store.SCHEMA_VERSION)),
        "key of another config": changed(key=store.run_key(RunConfig(seed=9), "cpu")),
        "config edited by hand": changed(config={**record["config"], "seed": 9}),
        "config with an unknown field": changed(config={**record["config"], "colour": "blue"}),
        "config with a bad value": changed(config={**record["config"], "epochs": -1}),
        "metrics without test_error": changed(metrics={"train_error": 1.0}),
        "metrics not a mapping": changed(metrics=[1, 2]),
        "device of another machine": changed(device="cuda"),
    }


def _truncations(text):
    return {
        "truncated half way": text[: len(text) // 2],
        "truncated by one byte": text[:-1],
        "empty file": "",
        "not UTF-8": b"\xff\xfe\x00garbage",
    }


def test_every_kind_of_bad_record_is_refused_by_path(good):
    store_dir, path, record = good
    text = path.read_text()
    cases = {**_mutations(record), **_truncations(text)}
    assert len(cases) >= 16
    for name, content in cases.items():
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        with pytest.raises(store.CorruptRecord) as info:
            store.load_record(path)
        assert str(path) in str(info.value), name
        assert "\n" not in str(info.value), name
        # never used: reading the store reports it by path and treats it as missing (issue 15);
        # asking for that very run refuses it, naming the file
        reported = []
        assert store.load_records(store_dir, report=reported.append) == [], name
        assert len(reported) == 1 and str(path) in reported[0] and "\n" not in reported[0], name
        with pytest.raises(store.CorruptRecord, match=path.name):
            store.find_record(store_dir, CONFIG, "cpu")
        with pytest.raises(store.CorruptRecord, match=path.name):
            ensure_one(CONFIG, store_dir)
        # and it is not silently replaced either: the evidence stays for the user to look at
        assert path.read_bytes() == (content if isinstance(content, bytes) else content.encode())
    path.write_text(text)
    assert store.load_record(path) == json.loads(text)


def test_a_corrupt_record_among_good_ones_is_named(good, body, monkeypatch, capsys):
    store_dir, path, _ = good
    other = RunConfig(model="Net", nb_pairs=100, epochs=1, seed=9)
    ensure_one(other, store_dir)
    assert len(store.load_records(store_dir)) == 2
    bad = store.record_path(store_dir, store.run_key(other, "cpu"))
    bad.write_text(bad.read_text()[:100])
    frame = tables.records_frame(store.load_records(store_dir))  # the good one; the bad one named on stderr
    assert list(frame["seed"]) == [8]
    assert bad.name in capsys.readouterr().err


def test_force_replaces_a_corrupt_record_with_a_good_one(good):
    store_dir, path, record = good
    path.write_text(path.read_text()[:50])
    fresh, cached = ensure_one(CONFIG, store_dir, force=True)
    assert not cached and store.load_record(path)["key"] == record["key"]


def _fail(exc):
    def raiser(*a, **k):
        raise exc

    return raiser


DISK_FULL = OSError(errno.ENOSPC, "No space left on device")
DENIED = PermissionError(errno.EACCES, "Permission denied")
FAILURES = {
    "disk full on fsync": ("fsync", DISK_FULL),
    "disk full on rename": ("replace", DISK_FULL),
    "permission denied on rename": ("replace", DENIED),
    "permission denied creating the temp file": ("mkstemp", DENIED),
    "interrupted while writing": ("fsync", KeyboardInterrupt()),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failed_write_leaves_no_partial_record_and_no_litter(case, tmp_path, body, monkeypatch):
    where, exc = FAILURES[case]
    monkeypatch.setattr(training, "train_run", lambda *a, **k: json.loads(json.dumps(body)))
    target = common.tempfile if where == "mkstemp" else common.os
    monkeypatch.setattr(target, where, _fail(exc))
    with pytest.raises(type(exc)):
        ensure_one(CONFIG, tmp_path)
    monkeypatch.undo()
    assert files_under(tmp_path) == []
    assert store.find_record(tmp_path, CONFIG, "cpu") is None


def test_disk_full_while_writing_the_bytes(tmp_path, monkeypatch):
    # the write itself fails after part of the text went out (a real ENOSPC mid-file)
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    monkeypatch.setattr(common.os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    with pytest.raises(OSError) as info:
        common.write_atomically(tmp_path / "abc.json", json.dumps({"x": "y" * 10000}))
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert files_under(tmp_path) == []


def test_a_failed_overwrite_keeps_the_old_record(good, monkeypatch):
    store_dir, path, record = good
    before = path.read_bytes()
    monkeypatch.setattr(common.os, "fsync", _fail(DISK_FULL))
    with pytest.raises(OSError):
        ensure_one(CONFIG, store_dir, force=True)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert files_under(store_dir) == [path.name]
    assert store.load_record(path) == json.loads(before)


def test_leftover_temporary_file_is_not_read_as_a_record(tmp_path):
    """A crash between mkstemp and rename leaves a '.tmp-*.json' dot-file: loaders skip it."""
    from siamese_lib import store

    (tmp_path / ".tmp-abc123.json").write_text('{"half": ')
    assert store.load_records(tmp_path) == []
    common.write_atomically(tmp_path / "x.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-abc123.json", "x.json"]
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644
