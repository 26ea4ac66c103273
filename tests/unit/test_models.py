"""The paper's four siamese networks: parameter counts, forward shapes, names."""

import pytest
import torch

from siamese_lib.models import MODEL_NAMES, build_model, count_parameters

# Paper, Table I (weight sharing, batch norm) and the reference notes (no weight sharing).
PAPER_COUNTS = {"Net": 15460, "LeNet5": 62520, "LeNet5_FullyConv": 63092, "ResNet": 58244}
UNSHARED_COUNTS = {"Net": 29262, "LeNet5": 123382, "LeNet5_FullyConv": 124382, "ResNet": 114830}


@pytest.mark.parametrize("name", list(PAPER_COUNTS))  # the four names of the paper (and DESIGN.md)
def test_parameter_counts_match_the_paper(name):
    shared = build_model(name, weight_sharing=True, batch_norm=True)
    assert sum(p.numel() for p in shared.parameters()) == PAPER_COUNTS[name]
    assert count_parameters(shared) == PAPER_COUNTS[name]
    unshared = build_model(name, weight_sharing=False, batch_norm=True)
    assert sum(p.numel() for p in unshared.parameters()) == UNSHARED_COUNTS[name]


def test_vgg_candidate_is_a_separate_larger_model():
    assert count_parameters(build_model("VGG")) > max(PAPER_COUNTS.values())


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("weight_sharing,batch_norm,dropout", [(True, True, False), (False, False, True)])
def test_forward_shapes(name, weight_sharing, batch_norm, dropout):
    torch.manual_seed(0)
    model = build_model(name, weight_sharing=weight_sharing, batch_norm=batch_norm, dropout=dropout)
    x = torch.randn(5, 2, 14, 14)
    for training in (True, False):
        model.train(training)
        d1, d2, c = model(x)
        assert tuple(d1.shape) == (5, 10) and tuple(d2.shape) == (5, 10) and tuple(c.shape) == (5, 2)
        assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in (d1, d2, c))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_weight_sharing_means_one_branch(name):
    torch.manual_seed(0)
    shared = build_model(name, weight_sharing=True).eval()
    assert shared.branch1 is shared.branch2
    x = torch.randn(4, 2, 14, 14)
    swapped = x.flip(1)
    d1, d2, _ = shared(x)
    s1, s2, _ = shared(swapped)
    # the same branch sees each image: swapping the images swaps the digit logits
    assert torch.allclose(d1, s2, atol=1e-5) and torch.allclose(d2, s1, atol=1e-5)
    unshared = build_model(name, weight_sharing=False)
    assert unshared.branch1 is not unshared.branch2


def test_dropout_and_batch_norm_switches_change_the_layers():
    def kinds(m):
        return {type(x).__name__ for x in m.modules()}

    assert "Dropout" not in kinds(build_model("LeNet5"))
    assert "Dropout" in kinds(build_model("LeNet5", dropout=True))
    assert "BatchNorm2d" in kinds(build_model("LeNet5"))
    assert not {"BatchNorm1d", "BatchNorm2d"} & kinds(build_model("LeNet5_FullyConv", batch_norm=False))


@pytest.mark.parametrize("bad", ["lenet5", "LeNet6", "", "__import__('os')", "Net; import os"])
def test_unknown_model_name_lists_the_valid_ones(bad):
    with pytest.raises(ValueError) as info:
        build_model(bad)
    message = str(info.value)
    assert repr(bad) in message
    for name in MODEL_NAMES:
        assert name in message


def test_net_takes_the_authors_conv_head_under_the_original_protocol():
    from siamese_lib.config import RunConfig

    assert (
        RunConfig(model="Net", protocol="original").head == "conv" and RunConfig(model="Net").head == "linear"
    )
    assert (
        RunConfig(model="LeNet5_FullyConv").head == "conv"
        and RunConfig(model="ResNet", protocol="original").head == "linear"
    )
    conv = build_model("Net", head="conv")
    assert "BatchNorm1d" in {type(m).__name__ for m in conv.head.modules()}
    assert count_parameters(conv) - count_parameters(build_model("Net")) == 2 * 72  # the BatchNorm1d(72)
    with pytest.raises(ValueError, match="head must be one of linear, conv"):
        build_model("Net", head="mlp")
