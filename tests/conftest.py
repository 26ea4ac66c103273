"""Shared fixtures: MNIST decoded once per session (about 5 s), the smoke profile trained once per session, and
small helpers for the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

# One torch thread, as each worker of the library uses: on a loaded 2-core machine, more threads
# make the tiny runs of the tests several times slower, not faster.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mnist_load(tmp_path_factory):
    """Decode the offline copy into a fresh cache, then load again from that cache; both timed.

    The environment is restored afterwards, so other tests use the ordinary cache.
    """
    from siamese_lib import data

    cache = tmp_path_factory.mktemp("mnist-cache")
    saved = {k: os.environ.get(k) for k in ("SIAMESE_LIB_CACHE", "PYTORCH_DATA_DIR", data.MNIST_PKL_ENV)}
    os.environ["SIAMESE_LIB_CACHE"] = str(cache)
    os.environ.pop("PYTORCH_DATA_DIR", None)
    os.environ.pop(data.MNIST_PKL_ENV, None)
    try:
        t0 = time.perf_counter()
        first = data.load_mnist()
        t1 = time.perf_counter()
        second = data.load_mnist()
        t2 = time.perf_counter()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"first": first, "arrays": second, "decode_s": t1 - t0, "cached_s": t2 - t1, "cache_dir": cache}


@pytest.fixture(scope="session")
def mnist(mnist_load):
    """The verified MNIST arrays (train_images, train_labels, test_images, test_labels)."""
    return mnist_load["arrays"]


def run_cli(*args, cwd=None, env=None, timeout=300):
    """``python -m siamese_lib ARGS`` in a subprocess: the real entry point and exit status."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "siamese_lib", *map(str, args)],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke profile trained and rendered once per session (``run --profile smoke --jobs 2 --device cpu``)
    under a temporary folder: {"base", "runs", "report", "proc", "seconds"}. Tests that change it work on a copy."""
    base = tmp_path_factory.mktemp("smoke")
    env = {"SIAMESE_LIB_RUNS_DIR": str(base / "runs"), "SIAMESE_LIB_REPORT_DIR": str(base / "report")}
    start = time.time()
    proc = run_cli("run", "--profile", "smoke", "--jobs", "2", "--device", "cpu", env=env, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, report = base / "runs" / "smoke", base / "report" / "smoke"
    return {"base": base, "runs": runs, "report": report, "proc": proc, "seconds": time.time() - start}


def ensure_one(config, store_dir, force=False) -> tuple[dict, bool]:
    """engine.ensure_runs for one run on cpu: (its record, whether the store's file was used as it was)."""
    from siamese_lib import store
    from siamese_lib.pipeline import engine

    path = store.record_path(store_dir, store.run_key(config, "cpu"))
    before = path.stat().st_mtime_ns if path.exists() else None
    record = engine.ensure_runs([config], store_dir, "cpu", force, log=lambda line: None)[0]
    return record, before == path.stat().st_mtime_ns


def files_under(path: Path) -> list[str]:
    """Every file and folder below ``path``, relative, sorted (to assert that nothing was written)."""
    return sorted(str(p.relative_to(path)) for p in Path(path).rglob("*"))


@contextlib.contextmanager
def external_cluster(folder: Path):
    """A `dask scheduler` and one `dask worker` as processes of their own on 127.0.0.1, running this checkout's
    package; yields (address, environment, scheduler process) and stops both afterwards."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    dask, info = Path(sys.executable).with_name("dask"), folder / "scheduler.json"
    scheduler = subprocess.Popen(
        [
            str(dask),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(info),
        ],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        deadline = time.time() + 120
        while not info.exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # written, then complete
        address = json.loads(info.read_text())["address"]
        worker = subprocess.Popen(
            [
                str(dask),
                "worker",
                address,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
            ],
            env=env,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        yield address, env, scheduler
    finally:
        for proc in (worker, scheduler):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
