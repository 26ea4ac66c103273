"""The one way a missing run is trained: in this process (a notebook in Jupyter, ``verify``), on a LocalCluster
of this machine, or on a running Dask cluster. Every record is written by the client (``store.write_record``,
the one writer) as it comes back, so workers need no shared filesystem and a run that a killed worker had started
is retried elsewhere without anything half-written. Runs go longest first (``planning.run_cost``). Before anything
is submitted, every worker's package, torch and code versions are compared with the client's: a worker that
differs is refused (retired from the cluster) with one line saying why, and each task checks again, so a worker
that joins later cannot slip in. Every record that comes back is checked against what was asked (``watch.check_result``)
before it is stored, and a worker that holds a run past its bound (``stall_bound``) without a result is named and
removed, its runs retried elsewhere (a run that stalls twice fails). Dask is imported only when a cluster is used.
"""

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
from .tasks import train_record, train_task, units
from .watch import POLL_SECONDS, BadResult, EngineError, Watch, check_result, refuse_odd_workers, versions  # noqa: F401

SCHEDULER_ENV = "SIAMESE_LIB_SCHEDULER"
WORKER_WAIT_SECONDS = 60  # an external scheduler with no worker yet: how long to wait for the first one
# Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 for their workers (and in this process): that fixes glibc's
# mmap threshold, so every training step maps and zero-fills its buffers again (measured: ~40 % system time
# and several times slower runs on a busy machine). Workers keep glibc's defaults, as the notebook kernels did.
NANNY_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@dataclass
class Outcome:
    trained: list = field(default_factory=list)  # keys written into the store by this call
    failed: dict = field(default_factory=dict)  # key -> one-line error


class Engine:
    """Where runs train: ``scheduler`` None: a LocalCluster of ``workers`` processes, started on first use (a run
    with nothing to train starts nothing); an address: that running cluster; ``in_process``: this process."""

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int = 1,
        device: str = "cpu",
        log=print,
        in_process: bool = False,
        progress=None,
        run_timeout: float | None = None,
        threads: int = 1,
    ):
        self.scheduler, self.workers, self.device, self.log = scheduler, workers, device, log
        self.run_timeout, self.threads = run_timeout, threads  # threads: torch's, for in-process runs
        self.in_process, self.progress = in_process and scheduler is None, progress
        self.cluster = None
        self._client = None

    @property
    def address(self) -> str:
        return self.scheduler or (self.cluster.scheduler_address if self.cluster else "(local cluster)")

    def client(self):
        if self._client is None:
            self._client = self.connect()
        return self._client

    def connect(self):
        import dask
        from distributed import Client, LocalCluster

        self.expected = versions()
        if self.scheduler is None:
            # one single-thread worker per job, listening on this machine only; a GPU worker offers one
            # "GPU" resource per run it may hold at once
            resources = {"GPU": 1} if self.device == "cuda" else None
            with dask.config.set(NANNY_ENVIRON):
                self.cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    silence_logs=logging.ERROR,
                    resources=resources,
                    env=same_package_env(),
                )
            client = Client(self.cluster)
        else:
            try:
                client = Client(self.scheduler, timeout="20s")
            except (OSError, TimeoutError, TypeError) as exc:  # TypeError: tls:// without Dask's TLS settings
                hint = (
                    "; a tls:// scheduler needs Dask's TLS settings (README, 'On a cluster')"
                    if self.scheduler.startswith("tls://")
                    else ""
                )
                raise EngineError(
                    f"cannot reach the Dask scheduler at {self.scheduler}: {exc}{hint}"
                ) from None
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
            except TimeoutError:
                client.close()
                raise EngineError(
                    f"the Dask scheduler at {self.scheduler} has no worker (waited {WORKER_WAIT_SECONDS} s)"
                ) from None
        link = client.dashboard_link if client.scheduler_info().get("services", {}).get("dashboard") else None
        self.log(f"Dask scheduler {client.scheduler.address}; dashboard: {link or 'none (install bokeh)'}")
        refuse_odd_workers(client, self.expected, self.log)
        return client

    def train(self, configs: list, store_dir, on_result=None) -> Outcome:
        """Train ``configs`` (distinct runs), longest first; check and write each record as it arrives.

        ``on_result(key, error_or_None)`` is called in the client for each finished run. Ctrl-C cancels
        what was submitted; a lost scheduler raises EngineError (what finished is in the store)."""
        outcome = Outcome()
        ordered = sorted(configs, key=run_cost, reverse=True)
        if self.in_process:
            for config in ordered:
                self.store(
                    outcome,
                    store_dir,
                    config,
                    lambda c=config: train_record(c, self.device, self.progress, self.threads),
                    on_result,
                )
            return outcome
        if not configs:
            return outcome
        client = self.client()
        resources = {"GPU": 1} if self.device == "cuda" else None
        futures = {
            client.submit(
                train_task,
                u,
                self.device,
                self.expected,
                key=f"train-{run_key(u[0], self.device)}",
                priority=sum(map(run_cost, u)),
                resources=resources,
                pure=False,
            ): u
            for u in units(ordered, self.device)
        }
        try:
            self.collect(client, dict(futures), store_dir, outcome, on_result, len(configs))
        except BaseException:
            if client.status == "running":
                client.cancel(list(futures))
            raise
        return outcome

    def collect(self, client, pending: dict, store_dir, outcome: Outcome, on_result, total: int) -> None:
        """Store each result as it comes. A worker that holds a run past its ``stall_bound`` without a result (a
        stopped or hung process answers nothing) is removed from the cluster, so Dask retries its runs elsewhere;
        a run that stalls a second time is failed (one line), as are the runs left when no worker remains."""
        from concurrent.futures import CancelledError

        from distributed import wait

        watch = Watch(self.run_timeout)
        while pending:
            try:
                done = wait(list(pending), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                done = ()
            except CancelledError:  # the scheduler went away (or a run was cancelled: its result() says so)
                if client.status != "running":
                    raise EngineError(self.lost(outcome, total)) from None
                done = [f for f in pending if f.done()]
            for future in done:
                watch.came_back(future, pending[future])
                for i, config in enumerate(pending.pop(future)):  # a unit: its runs' records, in order
                    self.store(
                        outcome,
                        store_dir,
                        config,
                        lambda f=future, i=i: self.result(f, outcome, total)[i],
                        on_result,
                    )
                future.release()
            if done or not pending:
                continue
            try:
                verdicts = watch.look(client, pending)
            except OSError:
                raise EngineError(self.lost(outcome, total)) from None
            for future, why, worker in verdicts:
                if worker is None:
                    self.give_up(pending, future, outcome, on_result, why)
                else:
                    self.log(
                        f"worker {worker} gave no result for run {run_key(pending[future][0], self.device)} "
                        f"in {why}: removed from the cluster; its runs are retried elsewhere"
                    )

    def give_up(self, pending: dict, future, outcome: Outcome, on_result, why: str) -> None:
        future.cancel()
        for config in pending.pop(future):
            key = run_key(config, self.device)
            outcome.failed[key] = why
            if on_result:
                on_result(key, why)

    def result(self, future, outcome: Outcome, total: int) -> dict:
        import concurrent.futures

        try:
            return future.result()
        except (concurrent.futures.CancelledError, OSError):
            if self._client.status != "running":
                raise EngineError(self.lost(outcome, total)) from None
            raise

    def store(self, outcome: Outcome, store_dir, config: RunConfig, result, on_result) -> None:
        """Check the record that ``result()`` returns against ``config`` and write it. On a cluster a run's own
        error (or a bad result) fails that run only (one line); in this process it is raised (a notebook shows it)."""
        key = run_key(config, self.device)
        try:
            write_record(store_dir, check_result(result(), config, self.device))
            outcome.trained.append(key)
        except Exception as exc:  # noqa: BLE001 - the run's own error, named per run
            if self.in_process or isinstance(exc, (UsageError, EngineError)):
                raise
            outcome.failed[key] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        if on_result:
            on_result(key, outcome.failed.get(key))

    def lost(self, outcome: Outcome, total: int) -> str:
        return (
            f"lost the Dask scheduler at {self.address}: {len(outcome.trained)} of {total} runs finished "
            f"and are kept in the store; rerun the same command to resume"
        )

    def close(self) -> None:
        if self._client is not None:
            if (
                self._client.status != "running"
            ):  # the scheduler is gone: its reconnect loop would log tracebacks
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


def must_retrain(path, force) -> bool:
    """``force``: False, True (always retrain), or a time.time() stamp: retrain a record written before it.
    The runner's --force passes its start time, so a run that two notebooks share is retrained once."""
    if isinstance(force, bool):
        return force
    return path.stat().st_mtime < float(force)


def ensure_runs(
    configs, store_dir, device="auto", force=False, scheduler=None, log=print, threads: int = 1
) -> list[dict]:
    """Each configuration's record, from the store or trained now: in this process by default (a bar per run's
    epochs in a notebook), on the Dask cluster at ``scheduler`` (e.g. "tcp://host:8786") when one is given.
    ``force``: as in ``must_retrain``; ``threads``: torch's, for a run trained here. One line per run."""
    dev = device_type(device)
    start = time.perf_counter()
    missing = {}
    for c in configs:
        path = record_path(store_dir, run_key(c, dev))
        if not path.exists() or must_retrain(path, force):
            missing[run_key(c, dev)] = c
    check_not_seeded(store_dir, len(missing))  # exploration never trains into a store seeded from a record
    bar = EpochBar() if scheduler is None else None
    engine = Engine(scheduler, device=dev, log=log, in_process=True, progress=bar, threads=threads)
    try:
        outcome = engine.train(list(missing.values()), store_dir)
    finally:
        engine.close()
        if bar is not None:
            bar.close()
    if outcome.failed:
        key, error = next(iter(outcome.failed.items()))
        raise EngineError(f"{len(outcome.failed)} run(s) failed; {key}: {error}")
    records = []
    where = "on the cluster" if scheduler else "here"
    for i, config in enumerate(configs, 1):
        record = load_record(record_path(store_dir, run_key(config, dev)))
        how = (
            f"trained {where} ({time.perf_counter() - start:.1f} s for all)"
            if record["key"] in missing
            else "from the store"
        )
        log(
            f"[{i}/{len(configs)}] seed {config.seed}: test error {record['metrics']['test_error']:.2f} % "
            f"({how}; key {record['key']})"
        )
        records.append(record)
    return records


class EpochBar:
    """A progress bar over one run's epochs (tqdm's notebook widget in Jupyter, text elsewhere), made on first use."""

    def __init__(self):
        self.bar = None

    def __call__(self, epoch: int, epochs: int) -> None:
        from tqdm.auto import tqdm

        if self.bar is None or epoch == 1:
            self.close()
            self.bar = tqdm(total=epochs, unit="epoch", leave=False, desc="training")
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
