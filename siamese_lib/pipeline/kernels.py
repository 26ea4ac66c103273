"""One notebook execution: a Jupyter kernel of its own, papermill in a thread of the runner."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from pathlib import Path

from ..common import same_package_env

KERNEL_NAME = "siamese-lib"
KERNEL_START_ATTEMPTS = 3  # several kernels starting at once can race for ports; retry the start
RETRY_PAUSE = (0.5, 1.5)  # seconds (times the attempt number) before a retry, random to spread the starts


def kernel_name() -> str:
    return os.environ.get("SIAMESE_LIB_KERNEL") or KERNEL_NAME


# --- one notebook execution: a kernel of its own, papermill in a thread of the runner -------


class KernelStartError(RuntimeError):
    pass


def start_kernel(
    name: str, cwd: str, env: dict | None = None, log=None, attempts: int = KERNEL_START_ATTEMPTS
):
    """A started, ready kernel manager; returns (km, seconds of the successful start, attempts used)."""
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import (
        KernelManager,  # here: a command that executes no notebook never loads Jupyter
    )

    last = None
    for attempt in range(1, attempts + 1):
        km = KernelManager(kernel_name=name)
        start = time.perf_counter()
        try:
            km.start_kernel(cwd=cwd, env=env or dict(os.environ), stdout=log, stderr=log)
            kc = km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=120)
            finally:
                kc.stop_channels()
            return km, time.perf_counter() - start, attempt
        except NoSuchKernel:
            raise
        except Exception as exc:  # a port race or a kernel dying at start: try a fresh one
            last = exc
            stop_kernel(km)
            if attempt < attempts:
                time.sleep(random.uniform(*RETRY_PAUSE) * attempt)
    raise KernelStartError(
        f"kernel {name!r} failed to start {attempts} times; last error: "
        f"{type(last).__name__}: {first_line(last)}"
    )


def kernel_pid(km):
    return getattr(getattr(km, "provisioner", None), "pid", None)


def stop_kernel(km) -> None:
    pid = kernel_pid(km)
    try:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    except Exception:
        pass
    if pid:  # the kernel leads its own process group; make sure nothing of it survives
        signal_group(pid, signal.SIGKILL)


def signal_group(pid: int, sig) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def first_line(text, limit: int = 300) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text)).strip()
    return (text.splitlines()[0] if text else "")[:limit]


def execute_job(job, notebook: Path, kernel: str, cwd: Path, log_path: Path) -> None:
    """Thread body: start a kernel, have papermill execute the notebook, stop the kernel; fills job.result."""
    import papermill as pm
    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import DeadKernelError

    result = {"status": "failed", "error": None}
    km = None
    partial = job.output.with_name(
        f".tmp-{job.output.name}"
    )  # papermill saves as it goes; renamed when whole
    # one torch thread per kernel: the same numbers whatever --jobs is, and no oversubscription
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **same_package_env())
    with open(log_path, "ab") as log:
        try:
            km, result["kernel_start_seconds"], result["attempts"] = start_kernel(kernel, str(cwd), env, log)
            job.kernel_pid = kernel_pid(km)
            # an async client lets nbclient's dead-kernel check run; with a blocking client a kernel
            # killed mid-cell left the runner waiting for ever
            km.client_factory = AsyncKernelClient
            job.kernel_start_seconds, job.attempts = result["kernel_start_seconds"], result["attempts"]
            if job.cancel.is_set():
                raise KeyboardInterrupt
            pm.execute_notebook(
                str(notebook),
                str(partial),
                parameters=job.parameters,
                kernel_name=kernel,
                km=km,
                progress_bar=False,
                log_output=False,
                start_timeout=120,
            )
            result["status"] = "ok"
        except pm.PapermillExecutionError as exc:
            result["error"] = f"cell [{exc.exec_count}] raised {exc.ename}: {first_line(exc.evalue)}"
        except NoSuchKernel:
            result["error"] = (
                f"Jupyter kernel {kernel!r} is not installed (run `make setup`, or set SIAMESE_LIB_KERNEL)"
            )
        except DeadKernelError as exc:
            result["error"] = f"the kernel died: {first_line(exc)}"
        except KernelStartError as exc:
            result["error"] = str(exc)
        except BaseException as exc:  # noqa: BLE001 - whatever happens, the job must end with a result
            result["error"] = f"{type(exc).__name__}: {first_line(exc)}"
        finally:
            if km is not None:
                stop_kernel(km)
            publish(partial, job.output)
            job.result = result


def publish(partial: Path, output: Path) -> None:
    """Rename papermill's last save into place if it is a whole notebook; a truncated one (disk full)
    is removed, so ``output`` is always a complete notebook or the previous one."""
    try:
        with open(partial, "rb") as f:
            json.load(f)
        os.replace(partial, output)
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        try:
            partial.unlink()
        except OSError:
            pass
