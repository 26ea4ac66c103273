"""What a worker runs: one training run, or on a GPU the seeds of one configuration together, as store records."""

from __future__ import annotations

import dataclasses
import datetime
import platform

from ..config import RunConfig
from ..experiments.planning import run_cost
from ..machine import device_type, fingerprint
from ..store import SCHEMA_VERSION, code_version, run_key
from .watch import VersionMismatch, difference, versions


def train_record(config: RunConfig, device: str = "auto", progress=None, threads: int = 1) -> dict:
    """Train ``config`` on ``threads`` torch threads (a worker: one, the same numbers) and return its record (not
    written): what a worker sends the client."""
    from ..training import train_run

    dev = device_type(device)
    return as_record(config, dev, train_run(config, device=dev, progress=progress, threads=threads))


def as_record(config: RunConfig, dev: str, body: dict) -> dict:
    """A training result (``train_run``'s layout) as the store's record of ``config``."""
    import torch

    return {
        "schema_version": SCHEMA_VERSION,
        "key": run_key(config, dev),
        "config": config.to_dict(),
        **body,
        "torch_version": torch.__version__,
        "code_version": code_version(),
        "python": platform.python_version(),
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "machine": fingerprint(dev),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def train_task(unit: list, device: str, expected: dict) -> list[dict]:
    """On a worker: refuse if this worker's versions differ from the client's, else train the unit's runs: one run,
    or (on a GPU) the seeds of one configuration together (batched.train_seeds), one record each."""
    found = versions()
    if found != expected:
        raise VersionMismatch(f"this worker differs from the client: {difference(expected, found)}")
    if len(unit) == 1:
        return [train_record(unit[0], device)]
    from ..batched import train_seeds

    return [as_record(c, device, body) for c, body in zip(unit, train_seeds(unit, device))]


def units(configs: list, device: str) -> list[list]:
    """The runs as the engine hands them out, longest first: on a GPU the seeds of one configuration go together
    (the GPU is idle with one small run; runs that draw random numbers while training stay one by one); on the CPU
    one run per unit (measured faster there: docs/performance.md)."""
    groups: dict = {}
    for c in configs:
        from_seed = device == "cuda" and not c.draws_random_numbers
        groups.setdefault(dataclasses.replace(c, seed=0) if from_seed else c, []).append(c)
    return sorted(groups.values(), key=lambda u: sum(map(run_cost, u)), reverse=True)
