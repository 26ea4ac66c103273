"""The workers: what they run (``train_task``), the check that they run the client's versions, the one check
of every result (``check_result``), and ``Watch``, which finds a worker holding a run far too long."""

from __future__ import annotations

import copy
import dataclasses
import platform
import time
from pathlib import Path

from .. import __version__
from ..common import OneLineError, now_iso
from ..config import RunConfig
from ..experiments.planning import run_cost
from ..machine import device_type, fingerprint
from ..store import SCHEMA_VERSION, CorruptRecord, admit, code_version, run_key

STALL_FACTOR, STALL_FLOOR = 20, 300  # before any run came back: 20 x its expected seconds on one core + 5 min
SEEN_FACTOR, SEEN_FLOOR = 4, 60  # after: 4 x the slowest run so far (per expected second), at least 1 min
POLL_SECONDS = 2.0  # how often the client looks at the scheduler while no result comes
NO_WORKER_SECONDS = 60  # a cluster without any worker this long fails its runs (one line each)


class EngineError(RuntimeError):
    """The cluster cannot do the work (no compatible worker, the scheduler went away): one line."""


class VersionMismatch(RuntimeError):
    """A worker whose package, torch or code version differs from the client's."""


class BadResult(OneLineError):
    """A record that does not answer what was asked (another run's, or metrics its outputs refute)."""


def versions() -> dict:
    """What must be equal on a worker and the client for their numbers to be comparable."""
    import torch

    return {"siamese_lib": __version__, "torch": torch.__version__, "code": code_version()}


def difference(mine: dict, theirs: dict) -> str:
    return ", ".join(f"{k} {theirs.get(k)!r} (client: {v!r})" for k, v in mine.items() if theirs.get(k) != v)


def refuse_odd_workers(client, expected: dict, log) -> None:
    """Retire every worker whose versions differ from the client's, one line each; none left: EngineError."""
    found = client.run(versions)
    bad = {addr: v for addr, v in found.items() if v != expected}
    for addr, v in bad.items():
        log(f"refused worker {addr}: {difference(expected, v)}; install the same version there")
    if bad:
        client.retire_workers(list(bad), close_workers=True)
    if len(bad) == len(found):
        address = client.scheduler.address
        client.close()
        what = ", ".join(f"{k} {v}" for k, v in expected.items())
        raise EngineError(f"no worker of the Dask scheduler {address} runs the client's versions ({what})")


def train_record(config: RunConfig, device: str = "auto", progress=None, threads: int = 1) -> dict:
    """Train ``config`` on ``threads`` torch threads (a worker: one); its record, not written."""
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
        "created": now_iso(),
    }


def train_task(unit: list, device: str, expected: dict) -> list[dict]:
    """On a worker: refuse if its versions differ from the client's, else the unit's records, in order."""
    found = versions()
    if found != expected:
        raise VersionMismatch(f"this worker differs from the client: {difference(expected, found)}")
    if len(unit) == 1:
        return [train_record(unit[0], device)]
    from ..batched import train_seeds

    return [as_record(c, device, body) for c, body in zip(unit, train_seeds(unit, device))]


def units(configs: list, device: str) -> list[list]:
    """The runs as the engine hands them out, longest first: on a GPU the seeds of one configuration together
    (not runs that draw random numbers while training); on the CPU one each (faster: docs/performance.md)."""
    groups: dict = {}
    for c in configs:
        from_seed = device == "cuda" and not c.draws_random_numbers
        groups.setdefault(dataclasses.replace(c, seed=0) if from_seed else c, []).append(c)
    return sorted(groups.values(), key=lambda u: sum(map(run_cost, u)), reverse=True)


def check_result(record, config: RunConfig, device: str) -> dict:
    """``record`` if it is the record of ``config`` on ``device`` and the store's gate admits it (its schema,
    its metrics from its own per-pair outputs); else BadResult, one line. Every result passes here."""
    if not isinstance(record, dict):
        raise BadResult(f"the result is a {type(record).__name__}, not a record")
    if record.get("key") != run_key(config, device) or record.get("config") != config.to_dict():
        raise BadResult(
            f"the result is the record of another run (key {str(record.get('key'))[:40]!r}, "
            f"asked for {run_key(config, device)})"
        )
    try:
        admit(copy.deepcopy(record), Path(f"{record['key']}.json"))
    except CorruptRecord as exc:
        raise BadResult(f"the result {str(exc).split(': ', 1)[1]}") from None
    return record


def stall_bound(unit: list, run_timeout: float | None = None, rate: float | None = None) -> float:
    """Seconds a unit may go without a result once a worker has it: ``run_timeout``; else a few times what
    the slowest unit took (``rate``: seconds per expected second, run_cost); before any, a generous bound."""
    cost = sum(map(run_cost, unit))
    if run_timeout:
        return run_timeout
    return max(SEEN_FLOOR, SEEN_FACTOR * rate * cost) if rate else STALL_FACTOR * cost + STALL_FLOOR


class Watch:
    """Per unit on a worker, since when it is held there; the units that stalled once."""

    def __init__(self, run_timeout: float | None):
        self.run_timeout, self.held, self.stalled = run_timeout, {}, set()
        self.rate = None  # the slowest unit so far: its seconds on a worker per expected second (run_cost)
        self.workerless_since = None  # a cluster starting (or a loaded machine) has none for a while

    def came_back(self, future, unit: list) -> None:
        """A unit's result arrived: what it cost on this cluster sets the bound of those still out."""
        worker, since = self.held.pop(future.key, (None, None))
        if worker is not None:
            rate = (time.monotonic() - since) / max(sum(map(run_cost, unit)), 1e-9)
            self.rate = max(self.rate or 0.0, rate)

    def look(self, client, pending: dict) -> list[tuple]:
        """(future, why, worker) per unit to act on: worker None: fail it (why: one line); else that worker
        was removed from the cluster (Dask reruns its runs elsewhere) for holding it ``why``."""
        processing = {k: w for w, keys in client.processing().items() for k in keys}
        workers = client.scheduler_info()["workers"]
        states = client.run_on_scheduler(_task_states, keys=[f.key for f in pending])
        now, out = time.monotonic(), []
        self.workerless_since = None if workers else (self.workerless_since or now)
        for future, unit in pending.items():
            worker, bound = processing.get(future.key), stall_bound(unit, self.run_timeout, self.rate)
            held = self.held.get(future.key, (None, now))
            if self.workerless_since is not None and now - self.workerless_since > NO_WORKER_SECONDS:
                out.append((future, f"no worker in the cluster for {NO_WORKER_SECONDS} s", None))
            elif not workers:
                continue
            elif states.get(future.key) == "erred" and not future.done():
                # the scheduler ended it but its outcome never reached this client (e.g. an error whose
                # traceback Dask could not carry): waiting longer would wait for ever
                error = " ".join(str(states.get(f"{future.key}:error", "no error text")).split())[:200]
                why = "the run ended on the cluster (erred) without its outcome reaching this client"
                out.append((future, f"{why}: {error}", None))
            elif worker is None or held[0] != worker:
                self.held[future.key] = (worker, now)  # queued, or (re)started elsewhere: a fresh clock
            elif now - held[1] > bound and future.key in self.stalled:
                why = f"no result for {bound:.0f} s, twice (last on worker {worker})"
                out.append((future, f"{why}: given up; rerun to retry (--run-timeout sets the limit)", None))
            elif now - held[1] > bound:
                self.stalled.add(future.key)
                client.run_on_scheduler(_remove_worker, address=worker)
                processing = {k: w for k, w in processing.items() if w != worker}
                out.append((future, f"{bound:.0f} s (stopped, hung or far slower than expected)", worker))
        return out


def _task_states(dask_scheduler, keys: list) -> dict:
    """On the scheduler: each task's state, and for an erred one its exception's text."""
    out = {}
    for key in keys:
        task = dask_scheduler.tasks.get(key)
        if task is not None:
            out[key] = task.state
            if task.state == "erred" and (task.exception_blame or task).exception_text:
                out[f"{key}:error"] = (task.exception_blame or task).exception_text
    return out


async def _remove_worker(dask_scheduler, address: str):
    """On the scheduler: forget a worker that answers nothing; Dask reschedules its tasks on the others."""
    result = dask_scheduler.remove_worker(address, stimulus_id=f"siamese-stalled-{time.time()}", close=True)
    return await result if hasattr(result, "__await__") else result
