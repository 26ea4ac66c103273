"""The runner end to end through real papermill kernels: the smoke profile, resume after an interrupt,
--jobs 1 vs --jobs 2, --force, and the runner's usage errors, lock and failure reporting.

Every run writes under tmp_path (SIAMESE_LIB_RUNS_DIR, SIAMESE_LIB_REPORT_DIR), never into runs/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jupyter_client.manager
import nbformat
import pytest
import yaml

from siamese_lib import common
from siamese_lib.cli import main as cli_main
from siamese_lib.common import PARAMS_DIR
from siamese_lib.experiments.planning import expand
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.pipeline import notebooks
from siamese_lib.store import load_record, run_key

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 3600  # a safety net only: a smoke run takes about a minute on two free cores
TIMING_METRICS = {"train_seconds", "wall_seconds"}


def env_for(base: Path, **extra) -> dict:
    env = dict(
        os.environ, SIAMESE_LIB_RUNS_DIR=str(base / "runs"), SIAMESE_LIB_REPORT_DIR=str(base / "report")
    )
    env.update(extra)
    return env


def run_cli(base: Path, *args, timeout=TIMEOUT, **extra):
    return subprocess.run(
        [sys.executable, "-m", "siamese_lib", "run", *map(str, args)],
        cwd=ROOT,
        env=env_for(base, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def expected(profile_path, store_dir, stages=None):
    """{(stage, name): [run keys]} of a profile, as the runner plans it (device cpu)."""
    executions = expand(load_profile(str(profile_path)), str(store_dir), "cpu", stages=stages)
    return {(e.stage, common.safe_name(e.name)): [run_key(c, "cpu") for c in e.configs()] for e in executions}


def stamps(store: Path, keys) -> dict:
    """key -> (mtime_ns, created) of the store's records."""
    return {
        k: ((store / f"{k}.json").stat().st_mtime_ns, load_record(store / f"{k}.json")["created"])
        for k in keys
    }


def write_profile(path: Path, body: dict) -> Path:
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


# --- the smoke profile, trained once per session (conftest.smoke_run) ---------------------------------


@pytest.mark.slow
def test_smoke_profile_end_to_end(smoke_run):
    proc, runs = smoke_run["proc"], smoke_run["runs"]
    print(f"smoke profile: {smoke_run['seconds']:.1f} s wall with --jobs 2")
    plan = expected(PARAMS_DIR / "smoke.yaml", runs / "store")
    assert {s for s, _ in plan} == {
        "lr_search",
        "table1",
        "table2",
        "beyond_paper",
        "selection",
        "selection_round2",
        "selection_round3",
        "figures",
        "report",
    }
    assert ("selection", "final-seed21") in plan  # the choice's fresh seeds, planned after its candidates
    # every execution left its executed notebook, without an error in it
    for stage, name in plan:
        nb = nbformat.read(runs / stage / f"{name}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert errors == [], f"{stage}/{name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and str(runs / "store") in injected[0].source
    # the store holds exactly the planned runs
    keys = {k for ks in plan.values() for k in ks}
    assert {p.stem for p in (runs / "store").glob("*.json")} == keys
    assert not list((runs / "store").glob(".tmp-*"))
    # timings.json: the shape the report reads
    t = json.loads((runs / "timings.json").read_text())
    assert t["profile"] == "smoke" and t["jobs"] == 2 and t["device"] == "cpu" and t["status"] == "ok"
    assert set(t["stages"]) == {s for s, _ in plan} | {"training", "explore"} and t["total_seconds"] > 0
    executed = {**plan, ("explore", "explore"): []}  # explore: the published record, beside the report
    assert {(e["stage"], e["name"]) for e in t["executions"]} == set(executed)
    for e in t["executions"]:
        assert e["status"] == "ok" and e["runs"] == len(executed[(e["stage"], e["name"])])
        assert e["trained"] + e["cached"] == e["runs"] and e["notebook"].endswith(f"{e['name']}.ipynb")
        assert e["kernel_start_seconds"] > 0
    assert sum(e["trained"] for e in t["executions"]) == len(keys)  # each distinct run trained exactly once
    # the rendered report
    report = smoke_run["report"]
    assert (report / "report.html").stat().st_size > 0
    assert (report / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert re.search(r"href=[\"']explore.html", (report / "report.html").read_text())
    assert "Exploring the published record" in (report / "explore.html").read_text()
    # the summary
    assert "0 failed" in proc.stderr and f"runs: {len(keys)} trained" in proc.stderr
    assert "dashboard: http://127.0.0.1:" in proc.stderr  # the local cluster's Dask dashboard
    for stage in ("training", "lr_search", "table1", "report"):
        assert f"  {stage}" in proc.stderr
    # progress: one total from the start (the selection's finals counted before its choice), one clock
    heads = re.findall(r"\[(\d+)/(\d+) notebooks, (\d+):(\d+) elapsed, about \d+:\d+ left\]", proc.stderr)
    total = int(re.search(r"(\d+) notebooks to execute", proc.stderr).group(1))
    assert len(heads) == len(executed) and {int(n) for _, n, _, _ in heads} == {total} and total >= len(heads)
    assert int(heads[-1][0]) == total  # finals counted before the choice and then not needed count as done
    clocks = [60 * int(m) + int(s) for _, _, m, s in heads]
    assert clocks == sorted(clocks) and clocks[-1] >= clocks[0]


@pytest.mark.slow
def test_rerun_recomputes_nothing(smoke_run):
    """A rerun with nothing to do executes no notebook (figures and report included) and starts no cluster."""
    store = smoke_run["runs"] / "store"
    before = stamps(store, [p.stem for p in store.glob("*.json")])
    report = smoke_run["report"] / "report.html"
    rendered = report.stat().st_mtime_ns
    proc = run_cli(smoke_run["base"], "--profile", "smoke", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "are up to date" in proc.stderr and "runs: 0 trained" in proc.stderr
    assert "figures/figures is up to date" in proc.stderr and "report/report is up to date" in proc.stderr
    notebooks = re.search(r"smoke: (\d+) notebooks", smoke_run["proc"].stderr).group(1)  # the first run's
    assert "Dask scheduler" not in proc.stderr and f"{notebooks} already up to date" in proc.stderr
    assert stamps(store, before) == before and len(list(store.glob("*.json"))) == len(before)
    assert report.stat().st_mtime_ns == rendered


@pytest.mark.slow
def test_force_with_one_job_recomputes_the_same_numbers(smoke_run, tmp_path):
    """--jobs 1 --force retrains what --jobs 2 trained: new records, identical numbers; a run that two
    notebooks share is retrained once, not once per notebook. On a copy of the session's smoke runs."""
    shutil.copytree(smoke_run["runs"], tmp_path / "runs" / "smoke")
    store = tmp_path / "runs" / "smoke" / "store"
    body = yaml.safe_load((PARAMS_DIR / "smoke.yaml").read_text())
    # two notebooks, the same two runs: Table I's LeNet5 with aux loss is Table II's BN on, dropout off
    body["stages"] = {
        "table1": dict(body["stages"]["table1"], aux_loss=[True]),
        "table2": dict(body["stages"]["table2"], dropout=[False]),
    }
    profile = write_profile(tmp_path / "smoke.yaml", body)  # named smoke: the same runs/smoke/ (the copy)
    shared = list(expected(profile, store).values())
    assert len(shared) == 2 and shared[0] == shared[1]
    key_list = shared[0]
    others = [p.stem for p in store.glob("*.json") if p.stem not in key_list]
    before = {k: load_record(store / f"{k}.json") for k in key_list}
    stamped = stamps(store, key_list + others)
    time.sleep(1.1)  # 'created' has one-second resolution

    proc = run_cli(tmp_path, "--profile", profile, "--jobs", "1", "--force", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"runs: {len(key_list)} trained, {len(key_list)} from the store" in proc.stderr
    for k in key_list:
        after = load_record(store / f"{k}.json")
        assert (store / f"{k}.json").stat().st_mtime_ns > stamped[k][0] and after["created"] > before[k][
            "created"
        ]
        strip = lambda m: {n: v for n, v in m.items() if n not in TIMING_METRICS}  # noqa: E731
        assert strip(after["metrics"]) == strip(before[k]["metrics"])
        assert after["curves"] == before[k]["curves"] and after["outputs"] == before[k]["outputs"]
    assert stamps(store, others) == {k: stamped[k] for k in others}  # nothing else was touched


@pytest.mark.slow
def test_an_interrupted_forced_run_goes_on_when_rerun_with_force(smoke_run, tmp_path):
    """The marker an unfinished --force run leaves says when it began: rerun with --force, what it stored
    since is kept, what was stored before is retrained; a complete forced run removes the marker."""
    shutil.copytree(smoke_run["runs"], tmp_path / "runs" / "smoke")
    runs, store = tmp_path / "runs" / "smoke", tmp_path / "runs" / "smoke" / "store"
    body = yaml.safe_load((PARAMS_DIR / "smoke.yaml").read_text())
    body["stages"] = {"table1": dict(body["stages"]["table1"], aux_loss=[True])}
    profile = write_profile(tmp_path / "smoke.yaml", body)
    kept, retrained = next(iter(expected(profile, store).values()))
    began = time.time() - 100
    (runs / "force-since").write_text(repr(began))
    os.utime(store / f"{kept}.json", (began + 50, began + 50))  # stored by the interrupted forced run
    os.utime(store / f"{retrained}.json", (began - 50, began - 50))  # stored before it began
    stamped = stamps(store, [kept, retrained])

    proc = run_cli(tmp_path, "--profile", profile, "--force", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--force: going on with the forced run begun" in proc.stderr
    assert stamps(store, [kept]) == {kept: stamped[kept]}
    assert (store / f"{retrained}.json").stat().st_mtime_ns > stamped[retrained][0]
    assert not (runs / "force-since").exists()
    t = json.loads((runs / "timings.json").read_text())
    assert len(t["invocations"]) >= 2 and t["invocations"][-1]["force"] is True
    assert all(i["cpu"] and i["host"] and i["cores"] >= 1 for i in t["invocations"])  # where each one ran
    assert t["total_seconds"] == pytest.approx(sum(i["seconds"] for i in t["invocations"]), abs=0.1)


# --- interrupt and resume ---------------------------------------------------------------------


@pytest.mark.slow
def test_interrupt_then_resume_recomputes_nothing(tmp_path):
    # ResNet runs of a couple of seconds each: the interrupt lands part-way however fast the machine
    profile = write_profile(
        tmp_path / "resume.yaml",
        {
            "nb_pairs": 200,
            "batch_size": 50,
            "stages": {
                "table1": {
                    "models": ["ResNet"],
                    "weight_sharing": [True],
                    "aux_loss": [True],
                    "seeds": [1, 2, 3, 4, 5],
                    "epochs": 3,
                }
            },
        },
    )
    runs = tmp_path / "runs" / "resume"
    store = runs / "store"
    (keys,) = expected(profile, store).values()
    # a shell started in the background ignores SIGINT and its children inherit that: restore the default
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "siamese_lib",
            "run",
            "--profile",
            str(profile),
            "--jobs",
            "1",
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        env=env_for(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + TIMEOUT
        while not list(store.glob("[!.]*.json")) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: the runner stops its kernel too
            proc.wait(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err and "rerun" in err
    done = sorted(p.stem for p in store.glob("*.json"))
    assert 1 <= len(done) < len(keys), "the interrupt should land after the first run and before the last"
    assert set(done) <= set(keys)
    assert not list(store.glob(".tmp-*")), "a half-written record was left behind"
    t = json.loads((runs / "timings.json").read_text())
    assert t["status"] == "interrupted" and t["executions"][0]["status"] == "cancelled"
    before = stamps(store, done)

    proc = run_cli(tmp_path, "--profile", profile, "--jobs", "1", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.stem for p in store.glob("*.json")) == sorted(keys)
    assert stamps(store, done) == before, "a finished run was recomputed"
    t = json.loads((runs / "timings.json").read_text())
    (e,) = t["executions"]
    assert e["status"] == "ok" and e["trained"] == len(keys) - len(done) and e["cached"] == len(done)
    assert [i["status"] for i in t["invocations"]] == ["interrupted", "ok"]


# --- usage errors, the lock, failures (in process: no kernel starts unless said) -----------------


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("SIAMESE_LIB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("SIAMESE_LIB_REPORT_DIR", str(tmp_path / "report"))
    return tmp_path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_unknown_stage_is_a_usage_error(isolated, capsys):
    assert cli_main(["run", "--profile", "smoke", "--only", "table1,tabel2"]) == 2
    err = one_line_error(capsys)
    assert "'tabel2'" in err and "lr_search" in err and "report" in err
    assert not (isolated / "runs").exists()


def test_absent_gpu_is_a_usage_error(isolated, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert cli_main(["run", "--profile", "smoke", "--device", "cuda"]) == 2
    assert "cuda" in one_line_error(capsys)
    assert not (isolated / "runs").exists()


def test_bad_profile_is_a_usage_error(isolated, capsys):
    assert cli_main(["run", "--profile", "no-such-profile"]) == 2
    assert "no-such-profile" in one_line_error(capsys)
    assert not (isolated / "runs").exists()


def test_second_run_of_a_profile_refuses(isolated, capsys):
    import fcntl

    lock = isolated / "runs" / "smoke" / ".lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert cli_main(["run", "--profile", "smoke", "--only", "table1"]) == 2
    err = one_line_error(capsys)
    assert "another run of profile 'smoke' is in progress" in err
    assert sorted(p.name for p in lock.parent.iterdir()) == [".lock"]  # nothing ran


@pytest.mark.slow  # trains two runs first
def test_failing_notebook_is_named_and_no_keep_going_cancels_the_rest(isolated, capsys, monkeypatch):
    """A kernel that is not installed stands for any failure of a notebook (no kernel starts here)."""
    monkeypatch.setenv("SIAMESE_LIB_KERNEL", "no-such-kernel")
    profile = write_profile(
        isolated / "fail.yaml",
        {
            "nb_pairs": 100,
            "stages": {
                "table1": {
                    "models": ["LeNet5"],
                    "weight_sharing": [True],
                    "aux_loss": [False, True],
                    "seeds": [1],
                    "epochs": 1,
                }
            },
        },
    )
    assert (
        cli_main(["run", "--profile", str(profile), "--jobs", "1", "--no-keep-going", "--device", "cpu"]) == 1
    )
    err = capsys.readouterr().err
    assert "FAILED table1/corrected-LeNet5-ws1-aux" in err and "model=LeNet5" in err
    assert "'no-such-kernel' is not installed" in err
    assert "1 failed, 1 cancelled" in err
    t = json.loads((isolated / "runs" / "fail" / "timings.json").read_text())
    assert sorted(e["status"] for e in t["executions"]) == ["cancelled", "failed"]
    assert len(list((isolated / "runs" / "fail" / "store").glob("*.json"))) == 2  # trained first, and kept


@pytest.mark.parametrize(
    "name", ["../../x", "..", ".hidden", "a/b\\c", '"); import os; os.system("touch pwned")#', "", "x" * 500]
)
def test_execution_names_cannot_leave_the_runs_folder(tmp_path, name):
    safe = common.safe_name(name)
    assert safe and not safe.startswith(".") and len(safe) <= 120
    assert set(safe) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
    path = common.inside(tmp_path / "table1" / f"{safe}.ipynb", tmp_path)
    assert path.parent == tmp_path / "table1"


def test_inside_refuses_an_escape(tmp_path):
    with pytest.raises(ValueError):
        common.inside(tmp_path / "table1" / ".." / ".." / "x.ipynb", tmp_path)


class FakeKernelManager:
    """Stands for jupyter_client's KernelManager: the first ``fail`` starts die as in a port race."""

    starts = 0
    fail = 1

    def __init__(self, kernel_name):
        self.has_kernel = False
        self.provisioner = None

    def start_kernel(self, **kw):
        FakeKernelManager.starts += 1
        if FakeKernelManager.starts <= FakeKernelManager.fail:
            raise RuntimeError("Kernel died before replying to kernel_info")
        self.has_kernel = True

    def client(self):
        class Client:
            def start_channels(self):
                pass

            def wait_for_ready(self, timeout):
                pass

            def stop_channels(self):
                pass

        return Client()

    def shutdown_kernel(self, now=False):
        self.has_kernel = False


@pytest.mark.parametrize("fail, attempts", [(0, 1), (1, 2), (2, 3)])
def test_kernel_start_is_retried(monkeypatch, fail, attempts):
    monkeypatch.setattr(jupyter_client.manager, "KernelManager", FakeKernelManager)  # imported per start
    monkeypatch.setattr(notebooks, "RETRY_PAUSE", (0.0, 0.0))
    monkeypatch.setattr(FakeKernelManager, "starts", 0)
    monkeypatch.setattr(FakeKernelManager, "fail", fail)
    km, seconds, used = notebooks.start_kernel("siamese-lib", "/tmp")
    assert km.has_kernel and used == attempts and seconds >= 0


def test_kernel_start_gives_up_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(jupyter_client.manager, "KernelManager", FakeKernelManager)  # imported per start
    monkeypatch.setattr(notebooks, "RETRY_PAUSE", (0.0, 0.0))
    monkeypatch.setattr(FakeKernelManager, "starts", 0)
    monkeypatch.setattr(FakeKernelManager, "fail", 99)
    with pytest.raises(notebooks.KernelStartError, match="failed to start 3 times.*Kernel died"):
        notebooks.start_kernel("siamese-lib", "/tmp")
