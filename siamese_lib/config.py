"""What determines a run: the configuration, its typed fields (rules.py), the protocols' settings."""

import dataclasses
from dataclasses import dataclass
from typing import get_type_hints

from pydantic import ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator
from pydantic.dataclasses import dataclass as typed_dataclass

from .machine import DEVICES  # the --device values (machine.device_type resolves them)
from .rules import Distinct, Int, Number, OneOf, one_line, ruled

PAPER_MODELS = ("Net", "LeNet5", "LeNet5_FullyConv", "ResNet")
EXTRA_MODELS = ("VGG",)  # beyond the paper: candidates for the selection stage
MODEL_NAMES = PAPER_MODELS + EXTRA_MODELS  # models.ARCHITECTURES builds each of them
PROTOCOLS = ("corrected", "original")
MNIST_SIZES = {"train": 60000, "test": 10000}  # images per split
HOLDOUT_PAIRS = 20000  # the holdout (data.eval_set): 40,000 of the training images the training pairs leave
ORIGINAL_NO_AUX_EPOCHS = 25  # quirk 1: the authors' no-auxiliary-loss function hard-coded 25 epochs
# A run's error metrics, per split (train_, test_, val_, confirm_): training makes them, the store checks.
ERROR_METRICS = ("error", "digit1_error", "digit2_error", "derived_error", "digit_prob_error")
ERROR_METRICS += ("head_vs_digits_disagreement",)


@dataclass(frozen=True)
class ProtocolSettings:
    """Where each protocol departs from the paper (the quirks); the report's table of them reads these."""

    no_aux_epochs: int | None  # quirk 1: epochs without the auxiliary loss (None: as configured)
    normalize_test: bool  # quirk 2: the test input normalised with the training statistics
    eval_mode: bool  # quirk 3: model.eval() at test time (batch norm running statistics, no dropout)
    shared_branch_calls: int  # quirk 6: branch calls per step with weight sharing (RunConfig.branch_calls)
    net_head: str  # quirk 5: Net's comparison head (RunConfig.head; HEADS)


PROTOCOL_SETTINGS = {
    "corrected": ProtocolSettings(
        None, normalize_test=True, eval_mode=True, shared_branch_calls=1, net_head="linear"
    ),
    "original": ProtocolSettings(
        ORIGINAL_NO_AUX_EPOCHS, normalize_test=False, eval_mode=False, shared_branch_calls=2, net_head="conv"
    ),
}
AUX_SCHEDULES = ("constant", "linear_decay")
AUGMENTATIONS = ("repair", "swap", "shift", "affine", "elastic")
LR_SCHEDULES = ("constant", "cosine")
# The comparison heads (models.HEADS): "linear" = Linear(20,72)-ReLU-Linear(72,2); "conv" = the same as 1x1
# Conv1d layers with a BatchNorm1d(72) after the ReLU. Each model's own head, as the paper describes it:
HEADS = ("linear", "conv")
MODEL_HEADS = {**dict.fromkeys(MODEL_NAMES, "linear"), "LeNet5_FullyConv": "conv"}


def key_defaults(config: dict) -> dict:
    """Fields added after records were first stored, at the value earlier records ran with: left out of the
    run key at that value (store.run_key), so earlier records keep their keys, and read as it when absent."""
    model = config.get("model")
    head = MODEL_HEADS.get(model, "linear") if isinstance(model, str) else "linear"
    return dict(lr_schedule="constant", branch_calls=1, head=head, confirm_seeds=[], holdout_seed=None)


# The run's fields (the defaults are the paper's setting). The upper bounds are far beyond any sensible
# run: nothing that passes can crash or hang training.
Flag = ruled(StrictBool, "must be true or false")
Seed = Int(0, 2**32 - 1)  # numpy's limit; torch takes more, but one limit for every seed keeps one message
Epochs = Int(1, 10000)
NbPairs = Int(1, 5000)  # pairs are drawn without repeat from the 10000 MNIST test images
BatchSize = Int(1, 5000)
Lr = Number(0, 1.0, above=True)
Protocol = OneOf(*PROTOCOLS)
# how a run is executed (not part of what determines it)
Device = OneOf(*DEVICES)
Threads = Int(1, 1024)


@typed_dataclass(frozen=True, config=ConfigDict(strict=True, extra="forbid"))
class _Fields:
    """Everything that determines a run's result (the results store hashes all of it)."""

    model: OneOf(*MODEL_NAMES) = "LeNet5"
    weight_sharing: Flag = True
    aux_loss: Flag = True
    batch_norm: Flag = True
    dropout: Flag = False
    lr: Lr = 5e-3
    epochs: Epochs = 30
    batch_size: BatchSize = 100
    seed: Seed = 1
    protocol: Protocol = "corrected"
    nb_pairs: NbPairs = 1000
    data_seed: Seed = 0
    # extensions beyond the paper (the defaults are the paper's setting)
    aux_weight: Number(0, 100.0) = 1.0
    aux_schedule: OneOf(*AUX_SCHEDULES) = "constant"
    weight_decay: Number(0, 1.0) = 0.0
    l1: Number(0, 1.0) = 0.0
    augment: Distinct(OneOf(*AUGMENTATIONS), f"entries among {', '.join(AUGMENTATIONS)}") = ()
    val_pairs: Int(0, 4999) = 0
    lr_schedule: OneOf(*LR_SCHEDULES) = "constant"
    # With weight sharing: 1 = both images through the branch in one call (batch norm pools their statistics),
    # 2 = once per image (the authors' forward, quirk 6). None: the protocol's own. Without weight sharing: 1.
    branch_calls: ruled(StrictInt, "must be 1 or 2", Field(ge=1, le=2)) | None = None
    # The comparison head (HEADS). None: the model's own (MODEL_HEADS), except Net under the original
    # protocol, which ran the authors' last code's "conv" head (quirk 5).
    head: OneOf(*HEADS) | None = None
    # Data seeds of the confirmation set (data.eval_set): evaluated after training, never trained
    # on, never chosen on. Empty: no confirmation set.
    confirm_seeds: Distinct(Seed, "seeds") = ()
    # The data seed of the holdout (data.eval_set), evaluated like the confirmation set. None: none.
    holdout_seed: Seed | None = None

    @model_validator(mode="after")
    def _across_fields(self):
        settings = PROTOCOL_SETTINGS[self.protocol]
        if self.confirm_seeds and self.nb_pairs >= MNIST_SIZES["test"] // 2:
            raise ValueError(
                "confirm_seeds: a confirmation set is made of the test images the test pairs leave unused: "
                f"nb_pairs must be below {MNIST_SIZES['test'] // 2} with it, got {self.nb_pairs}"
            )
        evaluated_only = {"confirm_seeds": self.confirm_seeds, "holdout_seed": self.holdout_seed}
        for name, value in evaluated_only.items() if self.protocol != "corrected" else ():
            if value not in ((), None):
                raise ValueError(f"{name}: the holdouts are evaluated under the corrected protocol only")
        if self.head is None:
            own = settings.net_head if self.model == "Net" else MODEL_HEADS[self.model]
            object.__setattr__(self, "head", own)
        if self.branch_calls is None:
            calls = settings.shared_branch_calls if self.weight_sharing else 1
            object.__setattr__(self, "branch_calls", calls)
        if self.branch_calls == 2 and not self.weight_sharing:
            raise ValueError("branch_calls 2 (one call per image) needs weight sharing; without it: 1")
        if self.val_pairs >= self.nb_pairs:
            raise ValueError(f"val_pairs must be below nb_pairs ({self.nb_pairs}), got {self.val_pairs}")
        # the smallest mini-batch the model sees in training mode, and of which split (batch norm needs 2)
        splits = [("training", self.nb_pairs - self.val_pairs)]
        if self.protocol == "original":  # quirk 3: evaluation in training mode, in batches of batch_size
            splits += [("test", self.nb_pairs), ("validation", self.val_pairs)]
        batches = (((n % self.batch_size) or min(n, self.batch_size), name) for name, n in splits if n > 0)
        size, split = min(batches)
        if self.batch_norm and size < 2:
            raise ValueError(
                f"batch_size {self.batch_size} leaves a mini-batch of 1 pair in the {split} split, which"
                " batch norm cannot take in training mode; choose one leaving at least 2 pairs in each"
            )
        return self


class RunConfig(_Fields):
    """Everything that determines a run's result; a value that breaks a rule raises ValueError, one line."""

    def __init__(self, *args, **kwargs):
        try:
            super().__init__(*args, **kwargs)
        except ValidationError as exc:
            raise ValueError(one_line(exc)) from None

    @property
    def draws_random_numbers(self) -> bool:
        """Whether training draws random numbers after the model's init (dropout, augmentations): such runs
        cannot be trained as a batch of seeds with the one-by-one path's random stream."""
        return bool(self.dropout or self.augment)

    @property
    def confirm_pairs(self) -> int:
        # per seed, the test images the test pairs leave unused, paired
        return len(self.confirm_seeds) * (MNIST_SIZES["test"] // 2 - self.nb_pairs)

    @property
    def holdout_pairs(self) -> int:
        return 0 if self.holdout_seed is None else HOLDOUT_PAIRS

    @property
    def trained_epochs(self) -> int:
        cap = PROTOCOL_SETTINGS[self.protocol].no_aux_epochs
        return min(self.epochs, cap) if cap is not None and not self.aux_loss else self.epochs

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["augment"], d["confirm_seeds"] = list(self.augment), list(self.confirm_seeds)
        # without a holdout as before the field existed: earlier records and plans keep their bytes
        if d["holdout_seed"] is None:
            del d["holdout_seed"]
        return d


FIELD_TYPES = get_type_hints(_Fields, include_extras=True)  # name -> its type (with its rule)


def field_rule(name: str) -> str:  # what a field allows, in the words every validator uses
    return RunConfig.__pydantic_fields__[name].description
