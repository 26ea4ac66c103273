"""One training run, the paper's fold protocol: seed torch, shuffle the training pairs once, build the model
(its init follows from the seed), train with Adam on fixed mini-batches (same order every epoch), evaluate."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .augment import augment_batch
from .config import ERROR_METRICS, PROTOCOL_SETTINGS, RunConfig
from .data import eval_set, generate_pair_sets
from .machine import device_type, enforce_numerics, torch_threads
from .models import build_model

CONFIRM_OUTPUTS = ("head_prob", "digit_prob")  # kept per validation and holdout pair (val_/confirm_/holdout_)


def resolve_device(device: str = "auto") -> torch.device:
    return torch.device(device_type(device))


@functools.lru_cache(maxsize=4)
def pair_sets(nb_pairs: int, data_seed: int):
    """The prologue's pairs, loaded once per process (a notebook trains several seeds on them)."""
    return generate_pair_sets(nb_pairs, seed=data_seed)


@dataclass
class Split:
    input: torch.Tensor
    target: torch.Tensor
    classes: torch.Tensor

    def to(self, device):
        return Split(self.input.to(device), self.target.to(device), self.classes.to(device))

    def __len__(self):
        return len(self.target)


class Splits(NamedTuple):
    train: Split
    val: Split | None  # held out of the training pairs (config.val_pairs; None if 0)
    test: Split
    confirm: Split | None  # the confirmation set (config.confirm_seeds; None if empty): evaluated only
    holdout: Split | None  # the holdout (config.holdout_seed; None if None): evaluated only


def prepare_data(config: RunConfig, device: torch.device) -> Splits:
    """The run's splits, the training pairs in the fold's shuffle (the caller seeds torch first), normalised
    by the trained-on pairs' statistics; the test and holdouts' inputs too, unless raw (quirk 2)."""
    tr_in, tr_t, tr_c, te_in, te_t, te_c = pair_sets(config.nb_pairs, config.data_seed)
    perm = torch.randperm(len(tr_t))  # the same draw with or without validation: the same fold shuffle
    k = config.val_pairs
    fit = tr_in[perm[k:]] if k else tr_in
    mean, std = fit.mean(), fit.std()
    tr_in = (tr_in - mean) / std
    raw = not PROTOCOL_SETTINGS[config.protocol].normalize_test

    def split(x, target, classes, normalize=not raw):
        return Split((x - mean) / std if normalize else x, target, classes).to(device)

    held, kept = perm[:k], perm[k:]
    nb, ds, seeds, holdout = config.nb_pairs, config.data_seed, config.confirm_seeds, config.holdout_seed
    return Splits(
        train=split(tr_in[kept], tr_t[kept], tr_c[kept], normalize=False),
        val=split(tr_in[held], tr_t[held], tr_c[held], normalize=False) if k else None,
        test=split(te_in, te_t, te_c),
        confirm=split(*eval_set("confirm", nb, ds, seeds)) if seeds else None,
        holdout=split(*eval_set("holdout", nb, ds, holdout)) if holdout is not None else None,
    )


def aux_weight_at(config: RunConfig, epoch: int) -> float:
    if not config.aux_loss:
        return 0.0
    if config.aux_schedule == "linear_decay":  # from aux_weight at the first epoch to 0 at the last
        return config.aux_weight * (1 - epoch / max(1, config.trained_epochs - 1))
    return config.aux_weight


def comparison_from_digits(d1, d2):
    """P(d1 <= d2) from the two digit softmaxes, exactly: sum over i <= j of p1(i) p2(j)."""
    p1, p2 = F.softmax(d1, 1), F.softmax(d2, 1)
    upper = torch.triu(torch.ones(10, 10, device=d1.device, dtype=p1.dtype))
    return torch.einsum("ni,ij,nj->n", p1, upper, p2)


def predict(model, split: Split, config: RunConfig, batch_size: int = 1000):
    """Outputs on a split: comparison prob (head), P(d1<=d2) from the digits, digit predictions."""
    original = not PROTOCOL_SETTINGS[config.protocol].eval_mode
    model.train(original)  # quirk 3: the authors never called model.eval() (batch norm per batch, dropout on)
    outs = []
    with torch.inference_mode():
        for xb in torch.split(split.input, config.batch_size if original else batch_size):
            d1, d2, c = model(xb)
            outs.append((F.softmax(c, 1)[:, 1], comparison_from_digits(d1, d2), d1.argmax(1), d2.argmax(1)))
    return tuple(torch.cat(t) for t in zip(*outs))


def pair_errors(head, digit_prob, target, classes=None, p1=None, p2=None) -> dict:
    """Per pair, whether each metric counts it wrong (bool tensors): the one rule that makes a run's metrics
    and checks a stored record's (record.check_metrics); digit metrics need ``p1``, ``p2``, ``classes``."""
    head_pred = (head > 0.5).long()
    wrong = {"error": head_pred != target, "digit_prob_error": (digit_prob > 0.5).long() != target}
    if p1 is not None:
        derived = (p1 <= p2).long()  # comparison of the argmax digits
        wrong.update(
            digit1_error=p1 != classes[:, 0],
            digit2_error=p2 != classes[:, 1],
            derived_error=derived != target,
            head_vs_digits_disagreement=derived != head_pred,  # the authors' quirk-4 number
        )
    return wrong


def val_order(config: RunConfig) -> torch.Tensor:
    """The fold's shuffle that prepare_data draws first after seeding (its first ``val_pairs`` are the
    validation pairs), drawn again without touching the global generator."""
    return torch.randperm(config.nb_pairs, generator=torch.Generator().manual_seed(config.seed))


def make_optimizer(model_or_params, config: RunConfig):
    params = model_or_params.parameters() if isinstance(model_or_params, torch.nn.Module) else model_or_params
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def run_epochs(config: RunConfig, optimizer, one_epoch, progress=None) -> list:
    """``one_epoch(epoch)`` (its summed loss kept) for each trained epoch, then LR schedule and progress."""
    cosine = config.lr_schedule == "cosine"
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.trained_epochs) if cosine else None
    )
    losses = []
    for epoch in range(config.trained_epochs):
        losses.append(one_epoch(epoch))
        if scheduler is not None:
            scheduler.step()
        if progress is not None:
            progress(epoch + 1, config.trained_epochs)
    return losses


def make_model(config: RunConfig, dev: torch.device):
    """The run's model on ``dev`` (channels-last on a CPU); its init draws from torch's global generator."""
    parts = (config.model, config.weight_sharing, config.batch_norm, config.dropout)
    model = build_model(*parts, branch_calls=config.branch_calls, head=config.head).to(dev)
    return model.to(memory_format=torch.channels_last) if dev.type == "cpu" else model


def mini_batches(split: Split, batch_size: int) -> list:
    """The fixed mini-batches of one fold: views made once, the same order every epoch."""
    return list(zip(*(torch.split(t, batch_size) for t in (split.input, split.target, split.classes))))


def batch_loss(outputs, target, classes, w: float, config: RunConfig, params):
    """One mini-batch's loss: the comparison's cross-entropy, the digits' (weight w) and the L1 penalty."""
    d1, d2, c = outputs
    loss = F.cross_entropy(c, target)
    if w:
        loss = loss + w * (F.cross_entropy(d1, classes[:, 0]) + F.cross_entropy(d2, classes[:, 1]))
    if config.l1:
        loss = loss + config.l1 * sum(p.abs().sum() for p in params)
    return loss


def train_epoch(model, optimizer, batches, config: RunConfig, epoch: int, pool: Split):
    """One epoch over the mini-batches; the summed loss as a tensor (no host sync in the loop). ``pool``: the
    trained-on pairs, which re-pairing draws from."""
    w = aux_weight_at(config, epoch)
    total = torch.zeros((), device=batches[0][0].device)
    for xb, tb, cb in batches:
        if config.augment:
            xb, tb, cb = augment_batch(config, xb, tb, cb, pool)
        loss = batch_loss(model(xb), tb, cb, w, config, model.parameters())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
    return total


def setup_run(config: RunConfig, dev: torch.device):
    """(splits, model), in the order that fixes a run's numbers: seed, the fold's shuffle, the init."""
    enforce_numerics()  # the process's numerics mode (machine.apply_numerics), or a loud failure
    torch.manual_seed(config.seed)
    splits = prepare_data(config, dev)
    return splits, make_model(config, dev)


def finish_run(
    model, config: RunConfig, splits: Splits, dev, losses, train_seconds: float, start: float
) -> dict:
    """Evaluate a trained model on its splits and assemble train_run's result. ``losses``: the per-epoch
    summed training losses (tensors); ``start``: perf_counter at the run's start."""
    metrics, outputs = {}, {}
    # in this order: under the original protocol evaluation runs in training mode, whose dropout draws numbers
    for name in Splits._fields:
        split = getattr(splits, name)
        if split is None:
            continue
        head, digit_prob, p1, p2 = predict(model, split, config)
        wrong = pair_errors(head, digit_prob, split.target, split.classes, p1, p2)
        metrics.update({f"{name}_{m}": 100.0 * wrong[m].float().mean().item() for m in ERROR_METRICS})
        out = {"head_prob": head, "digit_prob": digit_prob, "digit1_pred": p1, "digit2_pred": p2}
        prefix = "" if name == "test" else name + "_"  # per pair: every test output, the others' some
        for k, t in out.items():
            if name == "test" or (name != "train" and k in CONFIRM_OUTPUTS):
                values = t.cpu().tolist()
                outputs[prefix + k] = [round(v, 6) for v in values] if t.is_floating_point() else values
    metrics["train_seconds"] = train_seconds
    metrics["wall_seconds"] = time.perf_counter() - start
    return {
        "metrics": metrics,
        "curves": {"train_loss": [float(v) for v in torch.stack(losses).cpu()]},
        "outputs": outputs,
        "device": dev.type,
        "epochs_trained": config.trained_epochs,
        "threads": torch.get_num_threads(),
    }


def train_run(config: RunConfig, device: str = "auto", progress=None, threads: int = 1) -> dict:
    """Train one configuration on ``threads`` torch threads (restored after), ``progress(epoch, epochs)``
    after each epoch: a store record's body (finish_run): metrics in percent, curves, per-pair outputs."""
    dev = resolve_device(device)
    with torch_threads(threads):
        start = time.perf_counter()
        splits, model = setup_run(config, dev)
        optimizer = make_optimizer(model, config)
        batches = mini_batches(splits.train, config.batch_size)
        model.train()

        def one_epoch(epoch):
            return train_epoch(model, optimizer, batches, config, epoch, splits.train)

        losses = run_epochs(config, optimizer, one_epoch, progress)
        return finish_run(model, config, splits, dev, losses, time.perf_counter() - start, start)
