"""The one way a missing run is trained: in this process, on a LocalCluster or on a running Dask cluster. Each
record is checked and written by the client as it comes back: workers need no shared filesystem."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from ..common import UsageError, same_package_env
from ..config import RunConfig
from ..experiments.planning import run_cost
from ..machine import device_type
from ..store import check_not_seeded, load_record, record_path, run_key, write_record
from . import watch
from .watch import EngineError

SCHEDULER_ENV = "SIAMESE_LIB_SCHEDULER"
WORKER_WAIT_SECONDS = 60  # an external scheduler with no worker yet: how long to wait for the first one
# Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536: each training step then maps and zero-fills its buffers
# again (measured: ~40 % system time, runs several times slower). Workers keep glibc's defaults.
NANNY_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@dataclass
class Outcome:
    trained: list = field(default_factory=list)  # keys written into the store by this call
    failed: dict = field(default_factory=dict)  # key -> one-line error


class Engine:
    """Where runs train: ``scheduler`` None: a LocalCluster of ``workers`` processes, started on first use; an
    address: that running cluster."""

    def __init__(self, scheduler=None, workers=1, device="cpu", log=print, run_timeout=None):
        self.scheduler, self.workers, self.device, self.log = scheduler, workers, device, log
        self.run_timeout, self.cluster, self._client = run_timeout, None, None
        self.resources = {"GPU": 1} if device == "cuda" else None  # one run at a time per GPU worker

    def connect(self):
        import dask
        from distributed import Client, LocalCluster

        self.expected = watch.versions()
        if self.scheduler is None:  # one single-thread worker per job, on this machine only
            with dask.config.set(NANNY_ENVIRON):
                self.cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    silence_logs=logging.ERROR,
                    resources=self.resources,
                    env=same_package_env(),
                )
            client = Client(self.cluster)
        else:
            try:
                client = Client(self.scheduler, timeout="20s")
            except (OSError, TimeoutError, TypeError) as exc:  # TypeError: tls:// without Dask's TLS settings
                hint = "; a tls:// scheduler needs Dask's TLS settings (README, 'On a cluster')"
                hint = hint if self.scheduler.startswith("tls://") else ""
                why = f"cannot reach the Dask scheduler at {self.scheduler}: {exc}{hint}"
                raise EngineError(why) from None
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
            except TimeoutError:
                client.close()
                raise EngineError(
                    f"the Dask scheduler at {self.scheduler} has no worker (waited {WORKER_WAIT_SECONDS} s)"
                ) from None
        link = client.dashboard_link if client.scheduler_info().get("services", {}).get("dashboard") else None
        self.log(f"Dask scheduler {client.scheduler.address}; dashboard: {link or 'none (install bokeh)'}")
        watch.refuse_odd_workers(client, self.expected, self.log)
        return client

    def train(self, configs: list, store_dir, on_result=None) -> Outcome:
        """Train ``configs`` (distinct runs), longest first; store each record, then call ``on_result(key,
        error)``. Ctrl-C cancels what was submitted; a lost scheduler: EngineError."""
        outcome = Outcome()
        if not configs:
            return outcome
        client = self._client = self._client or self.connect()
        futures = {}
        for unit in watch.units(sorted(configs, key=run_cost, reverse=True), self.device):
            key = f"train-{run_key(unit[0], self.device)}"
            options = dict(key=key, priority=sum(map(run_cost, unit)), resources=self.resources, pure=False)
            futures[client.submit(watch.train_task, unit, self.device, self.expected, **options)] = unit
        try:
            self.collect(client, dict(futures), store_dir, outcome, on_result, len(configs))
        except BaseException:
            if client.status == "running":
                client.cancel(list(futures))
            raise
        return outcome

    def collect(self, client, pending: dict, store_dir, outcome: Outcome, on_result, total: int) -> None:
        """Store each result as it comes; a worker holding a unit too long is removed (Dask retries it
        elsewhere); a unit that stalls twice fails, as do those left with no worker."""
        from concurrent.futures import CancelledError

        from distributed import wait

        watcher = watch.Watch(self.run_timeout)
        while pending:
            try:
                done = wait(list(pending), timeout=watch.POLL_SECONDS, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                done = ()
            except CancelledError:  # the scheduler went away (or a run was cancelled: its result() says so)
                if client.status != "running":
                    raise EngineError(self.lost(outcome, total)) from None
                done = [f for f in pending if f.done()]
            for future in done:
                watcher.came_back(future, pending[future])
                for i, config in enumerate(pending.pop(future)):  # a unit: its runs' records, in order
                    self.store(outcome, store_dir, config, future, i, total, on_result)
                future.release()
            if done or not pending:
                continue
            try:
                verdicts = watcher.look(client, pending)
            except OSError:
                raise EngineError(self.lost(outcome, total)) from None
            for future, why, worker in verdicts:
                if worker is not None:
                    key = run_key(pending[future][0], self.device)
                    what = f"worker {worker} gave no result for run {key} in {why}"
                    self.log(f"{what}: removed from the cluster; its runs are retried elsewhere")
                    continue
                future.cancel()
                for config in pending.pop(future):
                    outcome.failed[run_key(config, self.device)] = why
                    if on_result:
                        on_result(run_key(config, self.device), why)

    def store(self, outcome: Outcome, store_dir, config: RunConfig, future, i: int, total, on_result) -> None:
        """Check the ``i``-th record of ``future``'s unit and write it; a run's error (or a bad result) fails
        it; a lost scheduler: EngineError."""
        from concurrent.futures import CancelledError

        key = run_key(config, self.device)
        try:
            write_record(store_dir, watch.check_result(future.result()[i], config, self.device))
            outcome.trained.append(key)
        except Exception as exc:  # noqa: BLE001 - the run's own error, named per run
            if isinstance(exc, (UsageError, EngineError)):
                raise
            if isinstance(exc, (CancelledError, OSError)) and self._client.status != "running":
                raise EngineError(self.lost(outcome, total)) from None
            outcome.failed[key] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        if on_result:
            on_result(key, outcome.failed.get(key))

    def lost(self, outcome: Outcome, total: int) -> str:
        address = self.scheduler or self.cluster.scheduler_address
        done = f"{len(outcome.trained)} of {total} runs finished and are kept in the store"
        return f"lost the Dask scheduler at {address}: {done}; rerun the same command to resume"

    def close(self) -> None:
        if self._client is not None:
            # the scheduler is gone: its reconnect loop would log tracebacks
            if self._client.status != "running":
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


def ensure_runs(configs, store_dir, device="auto", force=False, scheduler=None, log=print, threads=1) -> list:
    """Each configuration's record, from the store or trained now (here, or on the cluster at ``scheduler``).
    ``force``: a bool, or a time.time() stamp: retrain records written before it (a shared run: once)."""
    dev, start = device_type(device), time.perf_counter()
    missing = {}
    for c in configs:
        path = record_path(store_dir, run_key(c, dev))
        if not path.exists() or (force if isinstance(force, bool) else path.stat().st_mtime < float(force)):
            missing[run_key(c, dev)] = c
    check_not_seeded(store_dir, len(missing))  # exploration never trains into a store seeded from a record
    if scheduler is None:  # here, longest first, a bar over each run's epochs; a run's error is raised
        from tqdm.auto import tqdm

        for c in sorted(missing.values(), key=run_cost, reverse=True):
            with tqdm(total=c.trained_epochs, unit="epoch", leave=False, desc="training") as bar:
                record = watch.train_record(c, dev, lambda epoch, epochs, bar=bar: bar.update(1), threads)
            write_record(store_dir, watch.check_result(record, c, dev))
    else:
        engine = Engine(scheduler, device=dev, log=log)
        try:
            outcome = engine.train(list(missing.values()), store_dir)
        finally:
            engine.close()
        if outcome.failed:
            key, error = next(iter(outcome.failed.items()))
            raise EngineError(f"{len(outcome.failed)} run(s) failed; {key}: {error}")
    records = [load_record(record_path(store_dir, run_key(c, dev))) for c in configs]
    where = "on the cluster" if scheduler else "here"
    for i, (c, record) in enumerate(zip(configs, records), 1):
        how = f"trained {where} ({time.perf_counter() - start:.1f} s for all)"
        how = how if record["key"] in missing else "from the store"
        error = record["metrics"]["test_error"]
        log(f"[{i}/{len(configs)}] seed {c.seed}: test error {error:.2f} % ({how}; key {record['key']})")
    return records
