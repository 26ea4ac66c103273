"""Several seeds of one configuration trained together, each set up and evaluated as ``train_run`` does: every
step one ``vmap`` over ``functional_call`` (per seed its parameters, buffers and mini-batch), one backward and
one Adam step for all. Not the same bits as one by one (the vmapped kernels sum in another order: measured by
tests/unit/test_batched.py); configurations that draw random numbers while training go one by one."""

from __future__ import annotations

import copy
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from .config import RunConfig
from .machine import torch_threads
from .training import (
    aux_weight_at,
    batch_loss,
    finish_run,
    make_optimizer,
    resolve_device,
    run_epochs,
    setup_run,
    train_run,
)


def train_seeds(
    configs: list[RunConfig], device: str = "auto", progress=None, threads: int = 1
) -> list[dict]:
    """Train configurations that differ only in seed (else ValueError); one result per config, as
    ``train_run`` returns it. ``progress(epoch, epochs)`` after each epoch of the group."""
    if not configs or not all(isinstance(c, RunConfig) for c in configs):
        raise ValueError("train_seeds takes a non-empty list of RunConfigs")
    first = configs[0].to_dict()
    for c in configs[1:]:
        diff = ", ".join(k for k, v in c.to_dict().items() if k != "seed" and v != first[k])
        if diff:
            raise ValueError(
                f"train_seeds takes configurations that differ only in seed; these also differ in {diff}"
            )
    if len(configs) == 1 or configs[0].draws_random_numbers:
        return [train_run(c, device, progress, threads) for c in configs]
    dev = resolve_device(device)
    with torch_threads(threads):
        return _train_together(configs, dev, progress)


def _train_together(configs, dev, progress) -> list[dict]:
    config, start = configs[0], time.perf_counter()
    runs = [setup_run(c, dev) for c in configs]  # (splits, model) per seed, as train_run makes them
    models = [r[1] for r in runs]
    for m in models:
        m.train()
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")  # the architecture only; each seed's tensors come in per call
    trains = [r[0].train for r in runs]
    # each step's mini-batch of every seed, stacked: [seeds, batch, ...]
    stacked = (torch.stack([getattr(t, f) for t in trains]) for f in ("input", "target", "classes"))
    batches = list(zip(*(torch.split(t, config.batch_size, dim=1) for t in stacked)))
    optimizer = make_optimizer(list(params.values()), config)

    def seed_loss(p, b, xb, tb, cb, w):  # one seed's mini-batch loss, as train_epoch computes it
        return batch_loss(functional_call(base, (p, b), (xb,)), tb, cb, w, config, p.values())

    def one_epoch(epoch):  # as train_epoch, for every seed at once
        w = aux_weight_at(config, epoch)
        step = vmap(lambda p, b, xb, tb, cb: seed_loss(p, b, xb, tb, cb, w))
        total = torch.zeros(len(configs), device=dev)
        for xb, tb, cb in batches:
            losses = step(params, buffers, xb, tb, cb)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # seeds are independent: each slice gets its own seed's gradient
            optimizer.step()
            total += losses.detach()
        return total

    epoch_losses = run_epochs(config, optimizer, one_epoch, progress)
    share = (time.perf_counter() - start) / len(configs)
    with torch.no_grad():
        for i, m in enumerate(models):
            for name, t in [*m.named_parameters(), *m.named_buffers()]:
                t.copy_((params if name in params else buffers)[name][i])
    results = []
    for i, (c, (splits, model)) in enumerate(zip(configs, runs)):
        seed_start = time.perf_counter() - share
        results.append(finish_run(model, c, splits, dev, [e[i] for e in epoch_losses], share, seed_start))
    return results
