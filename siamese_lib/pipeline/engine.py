"""Training runs as Dask tasks: a LocalCluster on this machine by default, a running cluster when given.

A worker trains one run and returns its record; the client writes it into the store as it comes back
(``store.write_record``, the one writer), so workers need no shared filesystem and a run that a killed
worker had started is retried elsewhere without anything half-written. Runs are submitted longest
first (``planning.run_cost``). Before anything is submitted, every worker's package, torch and code
versions are compared with the client's: a worker that differs is refused (retired from the cluster)
with one line saying why, and each task checks again, so a worker that joins later cannot slip in.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import time
from dataclasses import dataclass, field

import dask
import torch
from distributed import Client, LocalCluster, as_completed

from .. import __version__
from ..common import UsageError
from ..experiments.planning import run_cost
from ..store import code_version, ensure_runs as ensure_runs_here, load_record, record_path, run_key, \
    train_record, write_record
from ..config import RunConfig
from ..training import resolve_device

SCHEDULER_ENV = "SIAMESE_LIB_SCHEDULER"
WORKER_WAIT_SECONDS = 60  # an external scheduler with no worker yet: how long to wait for the first one
# Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 for their workers (and in this process): that fixes glibc's
# mmap threshold, so every training step maps and zero-fills its buffers again (measured: ~40 % system time
# and several times slower runs on a busy machine). Workers keep glibc's defaults, as the notebook kernels did.
NANNY_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


class EngineError(RuntimeError):
    """The cluster cannot do the work (no compatible worker, the scheduler went away): one line for the user."""


class VersionMismatch(RuntimeError):
    pass


def versions() -> dict:
    """What must be equal on a worker and the client for their numbers to be comparable."""
    return {"siamese_lib": __version__, "torch": torch.__version__, "code": code_version()}


def difference(mine: dict, theirs: dict) -> str:
    return ", ".join(f"{k} {theirs.get(k)!r} (client: {v!r})" for k, v in mine.items() if theirs.get(k) != v)


def train_task(config: RunConfig, device: str, expected: dict) -> dict:
    """On a worker: refuse if this worker's versions differ from the client's, else train one run."""
    found = versions()
    if found != expected:
        raise VersionMismatch(f"this worker differs from the client: {difference(expected, found)}")
    torch.set_num_threads(1)  # one run per single-thread worker: the same numbers as in-process
    return train_record(config, device)


@dataclass
class Outcome:
    trained: list = field(default_factory=list)   # keys written into the store by this call
    failed: dict = field(default_factory=dict)    # key -> one-line error


class Engine:
    """The cluster: started (or connected to) on first use, so a run with nothing to train starts nothing."""

    def __init__(self, scheduler: str | None = None, workers: int = 1, device: str = "cpu", log=print):
        self.scheduler, self.workers, self.device, self.log = scheduler, workers, device, log
        self.cluster = None
        self._client = None
        self.expected = versions()

    @property
    def address(self) -> str:
        return self.scheduler or (self.cluster.scheduler_address if self.cluster else "(local cluster)")

    def client(self) -> Client:
        if self._client is None:
            self._client = self.connect()
        return self._client

    def connect(self) -> Client:
        if self.scheduler is None:
            # one single-thread worker per job, listening on this machine only; a GPU worker offers one
            # "GPU" resource per run it may hold at once
            resources = {"GPU": 1} if self.device == "cuda" else None
            with dask.config.set(NANNY_ENVIRON):
                self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                            host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                            silence_logs=logging.ERROR, resources=resources)
            client = Client(self.cluster)
        else:
            try:
                client = Client(self.scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise EngineError(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}") from None
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
            except TimeoutError:
                client.close()
                raise EngineError(f"the Dask scheduler at {self.scheduler} has no worker "
                                  f"(waited {WORKER_WAIT_SECONDS} s)") from None
        link = client.dashboard_link if client.scheduler_info().get("services", {}).get("dashboard") else None
        self.log(f"Dask scheduler {client.scheduler.address}; dashboard: {link or 'none (install bokeh)'}")
        self.check_workers(client)
        return client

    def check_workers(self, client: Client) -> None:
        """Refuse (retire) every worker whose versions differ from the client's; one line per worker."""
        found = client.run(versions)
        bad = {addr: v for addr, v in found.items() if v != self.expected}
        for addr, v in bad.items():
            self.log(f"refused worker {addr}: {difference(self.expected, v)}; install the same version there")
        if bad:
            client.retire_workers(list(bad), close_workers=True)
        if len(bad) == len(found):
            address = client.scheduler.address
            client.close()
            raise EngineError(f"no worker of the Dask scheduler {address} runs the client's "
                              f"versions ({', '.join(f'{k} {v}' for k, v in self.expected.items())})")

    def train(self, configs: list, store_dir, on_result=None) -> Outcome:
        """Train ``configs`` (distinct runs) on the cluster, longest first; write each record as it arrives.

        ``on_result(key, error_or_None)`` is called in the client for each finished run. Ctrl-C cancels
        what was submitted; a lost scheduler raises EngineError (what finished is in the store)."""
        outcome = Outcome()
        if not configs:
            return outcome
        client = self.client()
        resources = {"GPU": 1} if self.device == "cuda" else None
        futures = {}
        for config in sorted(configs, key=run_cost, reverse=True):
            key = run_key(config, self.device)
            futures[client.submit(train_task, config, self.device, self.expected, key=f"train-{key}",
                                  priority=run_cost(config), resources=resources, pure=False)] = key
        try:
            for future in as_completed(futures):
                key = futures[future]
                try:
                    record = future.result()
                except (concurrent.futures.CancelledError, OSError) as exc:
                    if client.status != "running":
                        raise EngineError(self.lost(outcome, len(configs))) from None
                    outcome.failed[key] = f"{type(exc).__name__}: {exc}"
                except Exception as exc:  # noqa: BLE001 - the run's own error, named per run
                    outcome.failed[key] = f"{type(exc).__name__}: {exc}"
                else:
                    write_record(store_dir, record)
                    outcome.trained.append(key)
                future.release()
                if on_result:
                    on_result(key, outcome.failed.get(key))
        except BaseException:
            if client.status == "running":
                client.cancel(list(futures))
            raise
        return outcome

    def lost(self, outcome: Outcome, total: int) -> str:
        return (f"lost the Dask scheduler at {self.address}: {len(outcome.trained)} of {total} runs finished "
                f"and are kept in the store; rerun the same command to resume")

    def close(self) -> None:
        if self._client is not None:
            if self._client.status != "running":  # the scheduler is gone: its reconnect loop would log tracebacks
                for name in [n for n in logging.root.manager.loggerDict if n.startswith("distributed")]:
                    logging.getLogger(name).setLevel(logging.CRITICAL)
            self._client.close()
        if self.cluster is not None:
            self.cluster.close()
        self._client = self.cluster = None


def scheduler_address(given: str | None) -> str | None:
    address = given or os.environ.get(SCHEDULER_ENV) or None
    if address is not None and "://" not in address:
        raise UsageError(f"--scheduler {address!r}: expected an address like tcp://HOST:8786")
    return address


def ensure_runs(configs, store_dir, device="auto", force=False, scheduler=None, log=print) -> list[dict]:
    """Each configuration's record, from the store or trained now: in this process by default, on the Dask
    cluster at ``scheduler`` (e.g. "tcp://host:8786") when one is given. One progress line per run."""
    if scheduler is None:
        return ensure_runs_here(configs, store_dir, device=device, force=force, log=log)
    dev = resolve_device(device).type
    start = time.perf_counter()
    missing = {run_key(c, dev): c for c in configs
               if force or not record_path(store_dir, run_key(c, dev)).exists()}
    engine = Engine(scheduler, device=dev, log=log)
    try:
        outcome = engine.train(list(missing.values()), store_dir)
    finally:
        engine.close()
    if outcome.failed:
        key, error = next(iter(outcome.failed.items()))
        raise EngineError(f"{len(outcome.failed)} run(s) failed on the cluster; {key}: {error}")
    records = []
    for i, config in enumerate(configs, 1):
        record = load_record(record_path(store_dir, run_key(config, dev)))
        how = f"trained on the cluster ({time.perf_counter() - start:.1f} s for all)" \
            if record["key"] in missing else "from the store"
        log(f"[{i}/{len(configs)}] seed {config.seed}: test error {record['metrics']['test_error']:.2f} % "
            f"({how}; key {record['key']})")
        records.append(record)
    return records
