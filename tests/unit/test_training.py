"""One training run: determinism, metrics, and the original protocol's quirks (tiny sizes)."""

import pytest
import torch
import torch.nn.functional as F

from siamese_lib import training
from siamese_lib.config import RunConfig
from siamese_lib.data import generate_pair_sets, normalize
from siamese_lib.models import build_model
from siamese_lib.training import prepare_data, resolve_device, train_run

TIMING = ("train_seconds", "wall_seconds")


def tiny(**kw):
    return RunConfig(**{"model": "LeNet5", "nb_pairs": 100, "epochs": 2, "seed": 3, **kw})


def numbers(result):
    """Everything in a run's result that must be reproducible (all but the clock)."""
    metrics = {k: v for k, v in result["metrics"].items() if k not in TIMING}
    return metrics, result["curves"], result["outputs"], result["epochs_trained"]


def test_metric_keys_and_curve(mnist):
    result = train_run(tiny(), device="cpu")
    m = result["metrics"]
    for split in ("train", "test"):
        for what in ("error", "digit1_error", "digit2_error", "derived_error"):
            value = m[f"{split}_{what}"]
            assert isinstance(value, float) and 0.0 <= value <= 100.0
    assert m["wall_seconds"] >= m["train_seconds"] > 0
    assert len(result["curves"]["train_loss"]) == 2 and all(v > 0 for v in result["curves"]["train_loss"])
    assert result["device"] == "cpu" and result["epochs_trained"] == 2
    assert len(result["outputs"]["head_prob"]) == 100


def test_same_config_gives_bit_identical_metrics_whatever_ran_before(mnist):
    config = tiny(seed=5)
    first = numbers(train_run(config, device="cpu"))
    second = numbers(train_run(config, device="cpu"))
    assert first == second
    # other work in the same process: another model, dropout, the original protocol, a used-up global
    # RNG, a cleared data cache; then the first configuration again
    train_run(tiny(model="Net", dropout=True, seed=9, protocol="original", aux_loss=False), device="cpu")
    torch.manual_seed(12345)
    torch.rand(1000)
    training.pair_sets.cache_clear()
    assert numbers(train_run(config, device="cpu")) == first
    # and the seed matters (so the equality above is not vacuous)
    assert numbers(train_run(tiny(seed=6), device="cpu")) != first


def test_auxiliary_loss_adds_the_two_digit_losses(mnist):
    # 100 pairs, batch 100: epoch 1's summed loss is the loss of the very first step, before any update
    for aux in (True, False):
        config = tiny(aux_loss=aux, epochs=1)
        result = train_run(config, device="cpu")
        torch.manual_seed(config.seed)
        train = prepare_data(config, torch.device("cpu")).train
        model = build_model(config.model).to(memory_format=torch.channels_last)
        model.train()
        with torch.no_grad():
            d1, d2, c = model(train.input)
        expected = F.cross_entropy(c, train.target)
        if aux:
            expected = (
                expected + F.cross_entropy(d1, train.classes[:, 0]) + F.cross_entropy(d2, train.classes[:, 1])
            )
        assert result["curves"]["train_loss"][0] == pytest.approx(float(expected), rel=1e-5)


def test_original_protocol_trains_25_epochs_without_aux_loss(mnist):
    assert RunConfig(protocol="original", aux_loss=False, epochs=30).trained_epochs == 25
    assert RunConfig(protocol="original", aux_loss=True, epochs=30).trained_epochs == 30
    assert RunConfig(protocol="corrected", aux_loss=False, epochs=30).trained_epochs == 30
    result = train_run(tiny(model="Net", protocol="original", aux_loss=False, epochs=27), device="cpu")
    assert result["epochs_trained"] == 25 and len(result["curves"]["train_loss"]) == 25


def test_original_protocol_leaves_the_test_input_unnormalised(mnist):
    cpu = torch.device("cpu")
    tr_in, _, _, te_in, _, _ = generate_pair_sets(100, seed=0)
    for protocol in ("original", "corrected"):
        config = tiny(protocol=protocol)
        torch.manual_seed(config.seed)
        train, val, test = prepare_data(config, cpu)[:3]
        assert val is None
        torch.manual_seed(config.seed)
        perm = torch.randperm(100)  # the fold's one shuffle of the training pairs
        assert torch.equal(train.input, normalize(tr_in)[0][perm])
        expected_test = te_in if protocol == "original" else normalize(tr_in, te_in)[1]
        assert torch.equal(test.input, expected_test)


def test_original_protocol_uses_train_mode_batch_norm_at_test(mnist):
    torch.manual_seed(0)
    model = build_model("LeNet5")
    split = training.Split(
        torch.randn(200, 2, 14, 14), torch.zeros(200, dtype=torch.long), torch.zeros(200, 2, dtype=torch.long)
    )
    original, corrected = tiny(protocol="original"), tiny(protocol="corrected")

    head, _, _, _ = training.predict(model, split, original)
    assert model.training  # the authors never called model.eval()
    with torch.no_grad():
        model.train()
        by_batch = torch.cat([F.softmax(model(xb)[2], 1)[:, 1] for xb in torch.split(split.input, 100)])
    assert torch.allclose(head, by_batch, atol=1e-6)

    head_eval, _, _, _ = training.predict(model, split, corrected)
    assert not model.training
    with torch.no_grad():
        model.eval()
        expected = F.softmax(model(split.input)[2], 1)[:, 1]
    assert torch.allclose(head_eval, expected, atol=1e-6)
    assert not torch.allclose(head, head_eval, atol=1e-3)


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.parametrize(
    "bad",
    [
        dict(model="VGG16"),
        dict(epochs=0),
        dict(lr=0.0),
        dict(lr=-1e-3),
        dict(batch_size=0),
        dict(seed=-1),
        dict(nb_pairs=5001),
        dict(protocol="x"),
        dict(epochs=2.0),
        dict(weight_sharing="yes"),
    ],
)
def test_invalid_configurations_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        RunConfig(**bad)


def test_mini_batches_are_views_of_the_whole_split_in_order():
    split = training.Split(
        torch.randn(250, 2, 14, 14), torch.randint(0, 2, (250,)), torch.randint(0, 10, (250, 2))
    )
    batches = training.mini_batches(split, 100)
    assert [len(b[0]) for b in batches] == [100, 100, 50]  # every pair once, in the fold's order
    for part, whole in zip(zip(*batches), (split.input, split.target, split.classes)):
        assert torch.equal(torch.cat(part), whole)
        # slices of the tensors already in memory (no loader, no copy): they share the split's storage
        assert all(t.untyped_storage().data_ptr() == whole.untyped_storage().data_ptr() for t in part)


def test_affine_moves_keep_shape_and_identity_at_zero():
    from siamese_lib.augment import affine_images

    torch.manual_seed(0)
    x = torch.randn(5, 2, 14, 14)
    assert torch.allclose(affine_images(x, degrees=0, scale=0, shift=0), x, atol=1e-5)
    y = affine_images(x)
    assert y.shape == x.shape and not torch.allclose(y, x)


def test_two_branch_calls_change_the_model_only_with_weight_sharing():
    import torch

    from siamese_lib.config import RunConfig
    from siamese_lib.models import build_model

    x = torch.randn(6, 2, 14, 14)
    torch.manual_seed(0)
    one = build_model("LeNet5", branch_calls=1).train()
    torch.manual_seed(0)
    two = build_model("LeNet5", branch_calls=2).train()
    one.eval(), two.eval()
    assert torch.allclose(
        one(x)[2], two(x)[2], atol=1e-6
    )  # same weights and running statistics: same function
    one.train(), two.train()
    # in training mode batch norm pools both images' statistics (one call) or not (two calls)
    assert not torch.allclose(one(x)[0], two(x)[0])
    assert RunConfig(protocol="original").branch_calls == 2 and RunConfig().branch_calls == 1
    assert RunConfig(protocol="original", weight_sharing=False).branch_calls == 1
    with pytest.raises(ValueError, match="branch_calls"):
        RunConfig(weight_sharing=False, branch_calls=2)


def test_cosine_schedule_changes_the_run_and_only_new_fields_change_the_key():
    from siamese_lib.config import RunConfig
    from siamese_lib.store import run_key

    plain = RunConfig(nb_pairs=20, epochs=2, batch_size=10)
    cos = RunConfig(nb_pairs=20, epochs=2, batch_size=10, lr_schedule="cosine")
    assert run_key(plain, "cpu") != run_key(cos, "cpu")
    # a field added later is left out of the key at its default: earlier records keep their keys
    import hashlib
    import json

    d = plain.to_dict()
    del d["lr_schedule"], d["branch_calls"], d["head"], d["confirm_seeds"]  # added later, at their old value
    legacy = hashlib.sha256(json.dumps({"config": d, "device": "cpu"}, sort_keys=True).encode()).hexdigest()[
        :20
    ]
    assert run_key(plain, "cpu") == legacy
    with pytest.raises(ValueError, match="lr_schedule"):
        RunConfig(lr_schedule="step")


def test_threads_are_set_for_the_run_and_restored(mnist):
    config = tiny(seed=4)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # what a script sees: torch's default here, not the runner's 1
        one = train_run(config, device="cpu")
        assert one["threads"] == 1 and torch.get_num_threads() == 2
        two = train_run(config, device="cpu", threads=2)
        assert two["threads"] == 2 and torch.get_num_threads() == 2
        torch.set_num_threads(1)
        assert numbers(train_run(config, device="cpu")) == numbers(one)  # whatever the caller's thread count
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        train_run(config, device="cpu", threads=0)


@pytest.mark.slow
def test_a_script_gets_the_numbers_of_the_train_command(mnist):
    """Issue 25: a script calling train_run at torch's default thread count (2 on a 2-core machine) got other
    numbers than the CLI (1 thread). Both now train on 1 thread unless told otherwise."""
    import json

    from conftest import run_cli

    proc = run_cli(
        "train", "--model", "LeNet5", "--seed", "1", "--epochs", "2", "--nb-pairs", "200", "--device", "cpu"
    )
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(proc.stdout)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        script = train_run(RunConfig(**cli["config"]), device="cpu")
    finally:
        torch.set_num_threads(before)
    assert script["curves"]["train_loss"] == cli["train_loss"]
    assert {k: v for k, v in script["metrics"].items() if k not in TIMING} == {
        k: v for k, v in cli["metrics"].items() if k not in TIMING
    }
