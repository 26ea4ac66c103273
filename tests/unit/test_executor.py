"""The notebook executor: up to --jobs executions at once, and the presentation notebooks (whose inputs are
complete when they are queued) ahead of training notebooks queued before them."""

from __future__ import annotations

import threading
import time

from siamese_lib.common import NOTEBOOKS_DIR
from siamese_lib.pipeline import notebooks


def test_presentation_notebooks_start_ahead_of_queued_ones_within_the_width(tmp_path, monkeypatch):
    started, running, most, lock, queued = [], [0], [0], threading.Lock(), threading.Event()

    def execute(job, notebook, kernel, cwd, log):  # a kernel's work, without the kernel
        with lock:
            started.append(job.name)
            running[0] += 1
            most[0] = max(most[0], running[0])
        queued.wait()  # everything is queued before the first executions end
        time.sleep(0.1)
        with lock:
            running[0] -= 1
        job.result = {"status": "ok"}

    monkeypatch.setattr(notebooks, "execute_job", execute)
    executor = notebooks.Executor(NOTEBOOKS_DIR, tmp_path, tmp_path, lambda job: None, True, width=2)
    jobs = [notebooks.Job("table1", f"cell{i}", {}, tmp_path / f"cell{i}.ipynb") for i in range(6)]
    jobs += [notebooks.Job(s, s, {}, tmp_path / f"{s}.ipynb") for s in ("figures", "report", "explore")]
    for job in jobs:
        executor.submit(job)
    queued.set()
    executor.collect(jobs=jobs[-2:])  # returns once the report and explore are done, the others still queued
    assert jobs[-1].status == jobs[-2].status == "ok" and any(j.status == "pending" for j in jobs[:6])
    executor.collect()
    executor.close()
    assert all(j.status == "ok" for j in jobs) and most[0] == 2
    assert sorted(started[2:5]) == ["explore", "figures", "report"]  # right after the two first cells
