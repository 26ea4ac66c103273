"""What determines a run: the configuration, its one set of validation rules, the protocols' settings.

Every validator (RunConfig itself, the profiles, the notebooks' parameters, the train command) checks
values against ``FIELD_RULES``, with the same words.
"""
from __future__ import annotations

import dataclasses
import math
import reprlib
from dataclasses import dataclass


PAPER_MODELS = ("Net", "LeNet5", "LeNet5_FullyConv", "ResNet")
# Beyond the paper: candidates for the selection stage (not in the paper's tables).
EXTRA_MODELS = ("VGG",)
MODEL_NAMES = PAPER_MODELS + EXTRA_MODELS  # models.ARCHITECTURES builds each of them
PROTOCOLS = ("corrected", "original")
ORIGINAL_NO_AUX_EPOCHS = 25  # quirk 1: the authors' no-auxiliary-loss function hard-coded 25 epochs


@dataclass(frozen=True)
class ProtocolSettings:
    """What each protocol does where the authors' code departs from the paper (the quirks); the code below
    reads these, and the report's table of departures is generated from them."""
    no_aux_epochs: int | None      # quirk 1: epochs without the auxiliary loss (None: as configured)
    normalize_test: bool           # quirk 2: the test input normalised with the training statistics
    eval_mode: bool                # quirk 3: model.eval() at test time (batch norm running statistics, no dropout)
    shared_branch_calls: int       # quirk 6: branch calls per step with weight sharing (RunConfig.branch_calls)


PROTOCOL_SETTINGS = {
    "corrected": ProtocolSettings(no_aux_epochs=None, normalize_test=True, eval_mode=True, shared_branch_calls=1),
    "original": ProtocolSettings(no_aux_epochs=ORIGINAL_NO_AUX_EPOCHS, normalize_test=False, eval_mode=False,
                                 shared_branch_calls=2),
}
AUX_SCHEDULES = ("constant", "linear_decay")
AUGMENTATIONS = ("repair", "swap", "shift", "affine")
LR_SCHEDULES = ("constant", "cosine")
BRANCH_CALLS = (1, 2)
# Fields added after records were first stored: left out of the run key while at the value every
# earlier record ran with, so every earlier record keeps its key (store.run_key).
KEY_OMITS_AT_DEFAULT = {"lr_schedule": "constant", "branch_calls": 1}


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's result (the results store hashes all of it)."""
    model: str = "LeNet5"
    weight_sharing: bool = True
    aux_loss: bool = True
    batch_norm: bool = True
    dropout: bool = False
    lr: float = 5e-3
    epochs: int = 30
    batch_size: int = 100
    seed: int = 1
    protocol: str = "corrected"
    nb_pairs: int = 1000
    data_seed: int = 0
    # extensions beyond the paper (the defaults are the paper's setting)
    aux_weight: float = 1.0
    aux_schedule: str = "constant"
    weight_decay: float = 0.0
    l1: float = 0.0
    augment: tuple = ()
    val_pairs: int = 0
    lr_schedule: str = "constant"
    # With weight sharing: 1 = both images through the branch in one call (batch norm pools their
    # statistics), 2 = once per image (the authors' forward, quirk 6). None: the protocol's own
    # (2 for "original", 1 for "corrected"). Without weight sharing each image has its own branch: 1.
    branch_calls: int | None = None

    def __post_init__(self):
        if isinstance(self.augment, list):
            object.__setattr__(self, "augment", tuple(self.augment))
        if self.branch_calls is None:
            shared = self.weight_sharing is True and self.protocol in PROTOCOL_SETTINGS
            object.__setattr__(self, "branch_calls", PROTOCOL_SETTINGS[self.protocol].shared_branch_calls if shared else 1)
        problems = validate_config(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def trained_epochs(self) -> int:
        cap = PROTOCOL_SETTINGS[self.protocol].no_aux_epochs
        if cap is not None and not self.aux_loss:
            return min(self.epochs, cap)
        return self.epochs

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["augment"] = list(self.augment)
        return d


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x):  # finite, and not a bool
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def short_repr(value, limit: int = 80) -> str:
    """repr bounded in depth, length and text: an error message never expands a huge value."""
    text = reprlib.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _ints(lo, hi):
    return (lambda v: _is_int(v) and lo <= v <= hi), f"must be an integer in {lo}..{hi}"


def _numbers(lo, hi, above=False):
    def ok(v):
        return _is_number(v) and (v > lo if above else v >= lo) and v <= hi
    return ok, f"must be a finite number {'>' if above else '>='} {lo:g} and <= {hi:g}"


def _one_of(options):
    return (lambda v: isinstance(v, str) and v in options), f"must be one of {', '.join(options)}"


def _augmentations(v):
    return isinstance(v, (list, tuple)) and all(isinstance(a, str) and a in AUGMENTATIONS for a in v) \
        and len(set(v)) == len(v)


MAX_SEED = 2**32 - 1  # numpy's limit; torch takes more, but one limit for every seed keeps one message
# The one set of limits for a run configuration: RunConfig, the profiles, the notebooks' parameters and
# the train command all check values against these rules, with these words. The upper bounds are far
# beyond any sensible run; they exist so that nothing that passes can crash or hang training.
FIELD_RULES = {
    "model": _one_of(MODEL_NAMES),
    **{flag: ((lambda v: isinstance(v, bool)), "must be true or false")
       for flag in ("weight_sharing", "aux_loss", "batch_norm", "dropout")},
    "lr": _numbers(0, 1.0, above=True),
    "epochs": _ints(1, 10000),
    "batch_size": _ints(1, 5000),
    "seed": _ints(0, MAX_SEED),
    "protocol": _one_of(PROTOCOLS),
    "nb_pairs": _ints(1, 5000),  # pairs are drawn without repeat from the 10000 MNIST test images
    "data_seed": _ints(0, MAX_SEED),
    "aux_weight": _numbers(0, 100.0),
    "aux_schedule": _one_of(AUX_SCHEDULES),
    "weight_decay": _numbers(0, 1.0),
    "l1": _numbers(0, 1.0),
    "augment": (_augmentations, f"must be a list of distinct entries among {', '.join(AUGMENTATIONS)}"),
    "val_pairs": _ints(0, 4999),
    "lr_schedule": _one_of(LR_SCHEDULES),
    "branch_calls": ((lambda v: _is_int(v) and v in BRANCH_CALLS), "must be 1 or 2"),
}


def field_rule(name: str) -> str:  # what a field allows, in the words every validator uses
    return FIELD_RULES[name][1]


def field_problem(name: str, value) -> str | None:
    """'<name> <rule>, got <value>' when ``value`` breaks the field's rule, else None."""
    ok, rule = FIELD_RULES[name]
    return None if ok(value) else f"{name} {rule}, got {short_repr(value)}"


def smallest_training_mode_batch(config: RunConfig) -> tuple[int, str]:
    """The smallest mini-batch the model sees in training mode, and of which split (batch norm needs 2)."""
    splits = [("training", config.nb_pairs - config.val_pairs)]
    if config.protocol == "original":  # quirk 3: evaluation in training mode, in batches of batch_size
        splits += [("test", config.nb_pairs), ("validation", config.val_pairs)]
    return min(((n % config.batch_size) or min(n, config.batch_size), name) for name, n in splits if n > 0)


def validate_config(c: RunConfig) -> list[str]:
    """Plain-language problems with a configuration; empty when it is valid (then it trains without crashing)."""
    p = [problem for name in FIELD_RULES if (problem := field_problem(name, getattr(c, name)))]
    if p:
        return p
    if c.branch_calls == 2 and not c.weight_sharing:
        p.append("branch_calls 2 (one call per image) needs weight sharing; without it each image has its own branch: 1")
    elif c.val_pairs >= c.nb_pairs:
        p.append(f"val_pairs must be below nb_pairs ({c.nb_pairs}), got {c.val_pairs}")
    elif c.batch_norm:
        size, split = smallest_training_mode_batch(c)
        if size < 2:
            p.append(f"batch_size {c.batch_size} leaves a mini-batch of 1 pair in the {split} split, which batch norm"
                     f" cannot take in training mode; choose one that leaves at least 2 pairs in every mini-batch")
    return p
