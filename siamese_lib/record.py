"""What a record is: its key (what determines the run), its schema, and the gate every record passes to
enter a store (admit): its fields typed, its metrics following from its own outputs."""

import datetime
import functools
import hashlib
import json
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
    model_validator,
)

from .common import OneLineError
from .config import ERROR_METRICS, RunConfig, key_defaults
from .machine import fingerprint_problems
from .rules import Int, Number, OneOf, Strict, one_line, ruled

SCHEMA_VERSION = 1


class CorruptRecord(OneLineError):
    """A record on disk that cannot be trusted (shown as one line in a notebook, not a traceback)."""


def run_key(config: RunConfig, device_type: str) -> str:
    """Stable across processes and sessions: sorted JSON of the configuration and the device type."""
    d = config.to_dict()
    for name, value in key_defaults(d).items():
        if d.get(name, value) == value:
            d.pop(name, None)
    payload = json.dumps({"config": d, "device": device_type}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def config_from_dict(d: dict) -> RunConfig:
    """A stored configuration; one stored before a field existed ran with that field's old value."""
    return RunConfig(**{**key_defaults(d), **d})


# --- a record's schema: every field's type and range, checked on every load -----------------------
Percent, Seconds = Number(0, 100), Number(0)
Text = ruled(StrictStr, "must be a text of 1..200 characters", Field(min_length=1, max_length=200))
# the long lists: pydantic-core's own checks and words (a per-value rule in Python took longer than the load)
Probabilities = list[Annotated[StrictFloat, Field(ge=0, le=1, allow_inf_nan=False)]]
Digits = list[Annotated[StrictInt, Field(ge=0, le=9)]]
# per optional split, its pairs in a configuration (val_*: validation pairs held out; confirm_*, holdout_*:
# the holdouts, evaluated only) and what one is called
OPTIONAL_SPLITS = {
    "val": (lambda c: c.val_pairs, "validation pair"),
    "confirm": (lambda c: c.confirm_pairs, "confirmation pair"),
    "holdout": (lambda c: c.holdout_pairs, "holdout pair"),
}
Metrics = create_model(
    "Metrics",
    __base__=Strict,
    train_seconds=(Seconds, ...),
    wall_seconds=(Seconds, ...),
    **{
        f"{s}_{m}": (Percent, None if s in OPTIONAL_SPLITS else ...)
        for s in ("train", "test", *OPTIONAL_SPLITS)
        for m in ERROR_METRICS
    },
)


class Curves(Strict):
    train_loss: list[Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]]  # one per epoch


class Outputs(Strict):  # one value per test pair
    head_prob: Probabilities
    digit_prob: Probabilities
    digit1_pred: Digits
    digit2_pred: Digits
    confirm_head_prob: Probabilities = None  # one value per confirmation pair (with confirm_seeds)
    confirm_digit_prob: Probabilities = None
    holdout_head_prob: Probabilities = None  # one value per holdout pair (with holdout_seed)
    holdout_digit_prob: Probabilities = None
    # one value per validation pair (with val_pairs); runs trained before issue 33 have none: unchecked
    val_head_prob: Probabilities = None
    val_digit_prob: Probabilities = None


def _config(value) -> RunConfig:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping")
    return config_from_dict(value)  # a ValueError names the config's field


class Record(Strict):
    schema_version: ruled(StrictInt, f"must be {SCHEMA_VERSION}", Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION))
    config: Annotated[RunConfig, PlainValidator(_config)]
    key: StrictStr
    device: OneOf("cpu", "cuda")
    metrics: Metrics
    curves: Curves
    outputs: Outputs
    torch_version: Text
    code_version: Text
    created: Annotated[StrictStr, AfterValidator(lambda v: datetime.datetime.fromisoformat(v) and v)]
    # optional; ``machine``: the fingerprint of the machine that trained the run (machine.fingerprint)
    python: Text = None
    host: ruled(StrictStr, "must be a text of at most 200 characters", Field(max_length=200)) = None
    cpu: Text = None
    threads: Int(1, 4096) = None
    epochs_trained: StrictInt = None
    machine: dict = None

    @model_validator(mode="after")
    def _as_its_config(self):
        c, given = self.config, self.metrics.model_fields_set | self.outputs.model_fields_set
        per = {split: (pairs(c), one) for split, (pairs, one) in OPTIONAL_SPLITS.items()}
        names = {s: {f"{s}_{m}" for m in (*ERROR_METRICS, "head_prob", "digit_prob")} for s in per}
        optional = {"val_head_prob", "val_digit_prob"}
        lacking = sorted(set().union(*(names[s] for s in per if per[s][0])) - given - optional)
        extra = sorted(set().union(*(names[s] for s in per if not per[s][0])) & given)
        lengths = {"curves.train_loss": (self.curves.train_loss, c.trained_epochs, "epoch")}
        for k, v in self.outputs:
            if v is not None:
                lengths[f"outputs.{k}"] = (v, *per.get(k.split("_")[0], (c.nb_pairs, "test pair")))
        problems = [f"metrics lack {', '.join(lacking)}"] if lacking else []
        if extra:
            where = "outputs" if extra[0] in self.outputs.model_fields_set else "metrics"
            problems.append(f"{where}.{extra[0]} is not a metric of this configuration")
        problems += [
            f"{k} must be {n} values (one per {per})" for k, (v, n, per) in lengths.items() if len(v) != n
        ]
        if self.epochs_trained not in (None, c.trained_epochs):
            problems.append(
                f"epochs_trained {self.epochs_trained} differs from its config's {c.trained_epochs}"
            )
        if run_key(c, self.device) != self.key:
            problems.append("key does not match its configuration")
        problems += fingerprint_problems(self.machine, typed=True) if self.machine is not None else []
        if problems:
            raise ValueError(problems[0])
        return self


def validate_record(record, path: Path) -> dict:
    """Every field checked against its type and range (Record); else CorruptRecord naming path and field."""
    try:
        config = Record.model_validate(record).config
    except ValidationError as exc:
        raise CorruptRecord(f"{path}: {one_line(exc)}") from None
    if path.stem != record["key"]:
        raise CorruptRecord(f"{path}: key does not match its configuration")
    record["config"] = config.to_dict()  # every field: a record stored before a field existed has its default
    return record


def check_metrics(record: dict) -> None:
    """Every metric stored with per-pair outputs follows from them and the pairs' targets by
    training.pair_errors (6 decimals: a stored 0.5 may count either way); else CorruptRecord."""
    import torch

    from .training import pair_errors, pair_sets, val_order

    c = config_from_dict(record["config"])
    outputs, metrics = record["outputs"], record["metrics"]
    _, tr_t, tr_c, _, te_t, te_c = pair_sets(c.nb_pairs, c.data_seed)
    splits = {"test": ("", te_t, te_c)}
    for split, seeds in (("confirm", tuple(c.confirm_seeds)), ("holdout", c.holdout_seed)):
        if f"{split}_head_prob" in outputs:
            splits[split] = (f"{split}_", *_targets(split, c.nb_pairs, c.data_seed, seeds))
    if "val_head_prob" in outputs:
        held = val_order(c)[: c.val_pairs]
        splits["val"] = ("val_", tr_t[held], tr_c[held])
    for split, (prefix, target, classes) in splits.items():
        head, prob = (
            torch.tensor(outputs[prefix + k], dtype=torch.double) for k in ("head_prob", "digit_prob")
        )
        p1, p2 = (torch.tensor(outputs[k]) if not prefix else None for k in ("digit1_pred", "digit2_pred"))
        tie = head == 0.5  # a stored 0.5 may count either way
        ties = {"error": tie, "digit_prob_error": prob == 0.5, "head_vs_digits_disagreement": tie}
        n = len(target)
        for m, w in pair_errors(head, prob, target, classes, p1, p2).items():
            undecided = ties.get(m, torch.zeros(n, dtype=torch.bool))
            low, high = int((w & ~undecided).sum()), int((w | undecided).sum())
            value = metrics[f"{split}_{m}"]
            count = value * n / 100
            if not (abs(count - round(count)) < 1e-3 and low <= round(count) <= high):
                shown = f"{100 * low / n:.2f} %" + (f" to {100 * high / n:.2f} %" if high > low else "")
                why = f"does not follow from the record's own outputs ({shown})"
                raise CorruptRecord(f"metrics.{split}_{m} {value:.4g} % {why}")


@functools.lru_cache(maxsize=4)
def _targets(split: str, nb_pairs: int, data_seed: int, seeds):  # a holdout's targets and classes
    from .data import eval_set

    return eval_set(split, nb_pairs, data_seed, seeds)[1:]


def admit(record, path: Path, planned=None) -> dict:
    """The gate every record passes to enter a store: its schema (Record), its metrics from its outputs
    (check_metrics) and, with ``planned`` (the keys the profile plans), a planned run; else CorruptRecord."""
    record = validate_record(record, path)
    if planned is not None and record["key"] not in planned:
        raise CorruptRecord(f"{path}: run {record['key']} is not one the profile plans")
    try:
        check_metrics(record)
    except CorruptRecord as exc:
        raise CorruptRecord(f"{path}: {exc}") from None
    return record
