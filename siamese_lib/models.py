"""The paper's four siamese networks (``build_model``): a branch maps a 1x14x14 image to 10 digit logits, a
head (72 hidden units) the two branches' 20 to 2 comparison logits; weight sharing: one branch for both."""

from __future__ import annotations

import torch
from torch import nn

from .config import MODEL_HEADS, MODEL_NAMES  # the names live where torch is not needed

DROPOUT_P = 0.25
HEAD_HIDDEN = 72  # one unit per (digit, digit) combination worth distinguishing, as in the paper


def _bn2d(channels, batch_norm):
    return [nn.BatchNorm2d(channels)] if batch_norm else []


def _dropout(dropout):
    return [nn.Dropout(DROPOUT_P)] if dropout else []


def _conv_stage(c_in, c_out, batch_norm):
    """Conv 3x3 -> BN -> MaxPool 2 -> ReLU, the convolutional stage of Net and LeNet5."""
    return [nn.Conv2d(c_in, c_out, 3), *_bn2d(c_out, batch_norm), nn.MaxPool2d(2), nn.ReLU()]


def _mlp(sizes, dropout):
    """Linear layers through ``sizes``, each hidden one followed by ReLU (and dropout)."""
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU(), *_dropout(dropout)]
    return [*layers, nn.Linear(*sizes[-2:])]


def net_branch(batch_norm=True, dropout=False):
    stages = [*_conv_stage(1, 16, batch_norm), *_conv_stage(16, 32, batch_norm)]
    return nn.Sequential(*stages, nn.Flatten(), *_mlp((128, 64, 10), dropout))


def lenet5_branch(batch_norm=True, dropout=False):
    stages = [*_conv_stage(1, 32, batch_norm), *_conv_stage(32, 64, batch_norm)]
    return nn.Sequential(*stages, nn.Flatten(), *_mlp((256, 120, 84, 10), dropout))


def lenet5_fullyconv_branch(batch_norm=True, dropout=False):
    def conv_relu_bn(c_in, c_out, k):
        return [nn.Conv2d(c_in, c_out, k), nn.ReLU(), *_bn2d(c_out, batch_norm)]

    return nn.Sequential(
        *_conv_stage(1, 32, batch_norm),
        *_conv_stage(32, 64, batch_norm),
        *conv_relu_bn(64, 120, 2),
        *_dropout(dropout),
        *conv_relu_bn(120, 84, 1),
        *_dropout(dropout),
        *conv_relu_bn(84, 10, 1),
        nn.Flatten(),
    )


class ResNetBlock(nn.Module):
    def __init__(self, channels=32, batch_norm=True):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            *_bn2d(channels, batch_norm),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            *_bn2d(channels, batch_norm),
        )
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + x)


def resnet_branch(batch_norm=True, dropout=False, blocks=3, channels=32):
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        *_bn2d(channels, batch_norm),
        nn.ReLU(),
        *[ResNetBlock(channels, batch_norm) for _ in range(blocks)],
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        *_dropout(dropout),
        nn.Linear(channels, 10),
    )


def vgg_branch(batch_norm=True, dropout=False):
    """Beyond the paper: two VGG-style stages of two padded 3x3 convolutions each (32 then 64 channels;
    14x14 -> 7x7 -> 3x3), then 576 -> 128 -> 10."""

    def conv(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), *_bn2d(c_out, batch_norm), nn.ReLU()]

    stages = [*conv(1, 32), *conv(32, 32), nn.MaxPool2d(2), *conv(32, 64), *conv(64, 64), nn.MaxPool2d(2)]
    return nn.Sequential(*stages, nn.Flatten(), *_mlp((576, 128, 10), dropout))


def linear_head(batch_norm=True, dropout=False):
    return nn.Sequential(*_mlp((20, HEAD_HIDDEN, 2), dropout))


def conv_head(batch_norm=True, dropout=False):
    """LeNet5_FullyConv's head (and Net's in the authors' last code): 1x1 Conv1d layers over the 20 logits."""
    return nn.Sequential(
        nn.Unflatten(1, (20, 1)),
        nn.Conv1d(20, HEAD_HIDDEN, 1),
        nn.ReLU(),
        *([nn.BatchNorm1d(HEAD_HIDDEN)] if batch_norm else []),
        *_dropout(dropout),
        nn.Conv1d(HEAD_HIDDEN, 2, 1),
        nn.Flatten(),
    )


ARCHITECTURES = {
    "Net": net_branch,
    "LeNet5": lenet5_branch,
    "LeNet5_FullyConv": lenet5_fullyconv_branch,
    "ResNet": resnet_branch,
    "VGG": vgg_branch,
}
HEADS = {"linear": linear_head, "conv": conv_head}  # config.HEADS; each model's own in config.MODEL_HEADS


class Siamese(nn.Module):
    """Two branches (one module when weights are shared) and a comparison head."""

    def __init__(
        self, make_branch, make_head, weight_sharing=True, batch_norm=True, dropout=False, branch_calls=1
    ):
        super().__init__()
        self.weight_sharing, self.branch_calls = weight_sharing, branch_calls
        self.branch1 = make_branch(batch_norm=batch_norm, dropout=dropout)
        self.branch2 = self.branch1 if weight_sharing else make_branch(batch_norm=batch_norm, dropout=dropout)
        self.head = make_head(batch_norm=batch_norm, dropout=dropout)

    def forward(self, x):
        """x: [N, 2, 14, 14] -> (digit_logits_1 [N,10], digit_logits_2 [N,10], comparison_logits [N,2])."""
        x1, x2 = x[:, 0:1], x[:, 1:2]
        if self.weight_sharing and self.branch_calls == 1:
            # one pass over both images: half the kernel launches; batch norm then sees both images'
            # statistics together (the authors' code made two calls: quirk 6)
            d1, d2 = self.branch1(torch.cat((x1, x2), 0)).split(x.shape[0])
        else:
            d1, d2 = self.branch1(x1), self.branch2(x2)
        return d1, d2, self.head(torch.cat((d1, d2), 1))


def build_model(
    name: str, weight_sharing=True, batch_norm=True, dropout=False, branch_calls=1, head=None
) -> Siamese:
    """``branch_calls`` (weight sharing only): 1 = both images in one call of the branch, 2 = one call per
    image, each with its own batch-norm statistics (the authors'). ``head``: None = config.MODEL_HEADS'."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    if branch_calls not in (1, 2):
        raise ValueError(f"branch_calls must be 1 or 2, got {branch_calls!r}")
    head = MODEL_HEADS[name] if head is None else head
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    return Siamese(ARCHITECTURES[name], HEADS[head], weight_sharing, batch_norm, dropout, branch_calls)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
