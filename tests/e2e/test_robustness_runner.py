"""The runner under failure: a cell that raises, a kernel that dies, a corrupt record, SIGTERM mid-run,
and injection through a runs folder whose name is code. Finished results are always kept, never
recomputed, and a bad one is never used. (Hostile inputs to the loaders, a YAML python tag, a
code-executing pickle, a hostile cache file, are refused in tests/unit/test_robustness_*.py.)

(Covered elsewhere, not repeated here: the lock and SIGINT resume and a missing kernel in
test_pipeline.py; the report marking missing configurations in test_report.py.)
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

from siamese_lib import cli
from siamese_lib.common import same_package_env
from siamese_lib.experiments import planning, profiles
from siamese_lib.pipeline import notebooks, runner
from siamese_lib.store import CorruptRecord, load_record, run_key

pytestmark = pytest.mark.slow  # trains runs and executes notebooks

PAYLOAD = '"); import os; os.system("touch pwned")#'
TIMEOUT = 900  # generous: the machine may be loaded


def write_profile(path: Path, aux_loss: list) -> Path:
    path.write_text(
        "nb_pairs: 100\nbatch_size: 100\nstages:\n  table1: {models: [LeNet5], weight_sharing: [true], "
        f"aux_loss: {json.dumps(aux_loss)}, seeds: [1, 2], epochs: 1}}\n"
    )
    return path


def crafted_table1(folder: Path, tail: str, tagged: bool = True) -> Path:
    """A stand-in for notebooks/table1.ipynb: reads (or trains) the execution's runs, then runs ``tail``."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": notebooks.KERNEL_NAME,
        "display_name": "siamese-lib",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell(
        'model = "LeNet5"\nweight_sharing = True\naux_loss = True\nlr = 0.005\nprotocol = "corrected"\n'
        'seeds = [1]\nepochs = 1\nnb_pairs = 100\ndata_seed = 0\nbatch_size = 100\nstore_dir = "store"\n'
        'device = "cpu"\nthreads = 1\nforce = False\n'
    )
    params.metadata["tags"] = ["parameters"] if tagged else []
    train = nbformat.v4.new_code_cell(
        "import os, signal, time\nfrom pathlib import Path\n"
        "from siamese_lib.experiments.planning import configs_for\nfrom siamese_lib.pipeline.engine import ensure_runs\n"
        "configs = configs_for('table1', dict(model=model, weight_sharing=weight_sharing, aux_loss=aux_loss, "
        "lr=lr, seeds=seeds, epochs=epochs, protocol=protocol, nb_pairs=nb_pairs, data_seed=data_seed, "
        "batch_size=batch_size))\n"
        "ensure_runs(configs, store_dir, device=device, force=force)\n"
        "Path(f'pid-aux{int(aux_loss)}').write_text(str(os.getpid()))  # in the kernel's cwd: this folder\n"
    )
    nb.cells = [params, train, nbformat.v4.new_code_cell(tail)]
    nbformat.write(nb, folder / "table1.ipynb")
    return folder


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_dead(pid: int, seconds: float = 30) -> bool:
    deadline = time.time() + seconds
    while alive(pid) and time.time() < deadline:
        time.sleep(0.2)
    return not alive(pid)


def keys_of(profile_path, store_dir, aux):
    """The run keys of the execution with aux_loss == aux, seed order."""
    for e in planning.expand(
        profiles.load_profile(str(profile_path)), str(store_dir), "cpu", stages=["table1"]
    ):
        if e.parameters["aux_loss"] == aux:
            return [run_key(c, "cpu") for c in e.configs()]
    raise AssertionError(aux)


def mtimes(store: Path, keys) -> dict:
    return {k: (store / f"{k}.json").stat().st_mtime_ns for k in keys}


def no_pwned(*folders):
    for folder in (ROOT, ROOT / "notebooks", *folders):
        assert not (Path(folder) / "pwned").exists(), f"injected code ran: {folder}/pwned"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Runs under a folder whose name is code (it reaches the notebooks as store_dir)."""
    runs = tmp_path / f"runs {PAYLOAD}"
    monkeypatch.setenv("SIAMESE_LIB_RUNS_DIR", str(runs))
    monkeypatch.setenv("SIAMESE_LIB_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.chdir(tmp_path)
    return runs


HARNESS = (
    "import sys; from pathlib import Path;"
    " import siamese_lib.pipeline.runner as R; R.NOTEBOOKS_DIR = Path(sys.argv[1]);"
    " from siamese_lib.cli import main; sys.exit(main(sys.argv[2:]))"
)


def start_runner(nbdir: Path, argv: list, cwd: Path) -> subprocess.Popen:
    """``python -m siamese_lib ARGV`` in a subprocess, with ``nbdir`` in place of notebooks/."""
    env = dict(os.environ, **same_package_env())
    return subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(nbdir), *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_failing_notebooks_keep_finished_runs_and_a_corrupt_record_is_never_used(
    tmp_path, env, monkeypatch, capsys
):
    profile = write_profile(tmp_path / "robust.yaml", [False, True])
    base = env / "robust"
    store = base / "store"
    no_aux, aux = keys_of(profile, store, False), keys_of(profile, store, True)
    argv = ["run", "--profile", str(profile), "--jobs", "2", "--device", "cpu"]

    # 1. the runs are trained on the cluster; then one notebook raises, the other's kernel dies
    #    (in a subprocess: a runner that hangs on a dead kernel must fail this test, not hang the suite)
    nbdir = crafted_table1(
        tmp_path / "nb",
        "if aux_loss:\n    os.kill(os.getpid(), signal.SIGKILL)\n"
        "raise RuntimeError('boom after the first run')\n",
    )
    proc = start_runner(nbdir, argv, tmp_path)
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the runner hung after a kernel died mid-cell (no exit in {TIMEOUT} s): {err[-2000:]}")
    assert proc.returncode == 1, err[-3000:]
    raised = base / "table1" / "corrected-LeNet5-ws1-aux0.ipynb"
    died = base / "table1" / "corrected-LeNet5-ws1-aux1.ipynb"
    line = next(x for x in err.splitlines() if "FAILED table1/corrected-LeNet5-ws1-aux0" in x)
    assert "model=LeNet5" in line and "aux_loss=False" in line and "seeds=[1, 2]" in line  # the configuration
    assert "RuntimeError: boom after the first run" in line
    assert f"executed notebook with the traceback: {raised}" in line
    assert "boom after the first run" in raised.read_text()  # the traceback is in the executed notebook
    line = next(x for x in err.splitlines() if "FAILED table1/corrected-LeNet5-ws1-aux1" in x)
    assert "aux_loss=True" in line and "kernel died" in line
    assert str(died) in line or str(died.with_suffix(".log")) in line
    # every finished run is kept, complete and valid; nothing half-written
    assert sorted(p.name for p in store.iterdir()) == sorted(f"{k}.json" for k in no_aux + aux)
    for k in no_aux + aux:
        assert load_record(store / f"{k}.json")["key"] == k
    for pid_file in nbdir.glob("pid-*"):  # no kernel outlives the run
        assert wait_dead(int(pid_file.read_text())), pid_file
    t = json.loads((base / "timings.json").read_text())
    assert t["status"] == "failed" and {e["status"] for e in t["executions"]} == {"failed"}
    no_pwned(tmp_path, nbdir, env)

    # 2. a finished record gets truncated; the real notebooks run again: the corrupt record is refused
    #    by path (that notebook fails, the file stays as evidence), the other notebook succeeds
    bad = store / f"{no_aux[0]}.json"
    bad.write_text(bad.read_text()[:200])
    kept = mtimes(store, aux)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "FAILED table1/corrected-LeNet5-ws1-aux0" in x)
    assert "CorruptRecord" in line and bad.name in line and "executed notebook with the traceback" in line
    assert "ok table1/corrected-LeNet5-ws1-aux1" in err
    assert len(bad.read_text()) == 200
    with pytest.raises(CorruptRecord):
        load_record(bad)
    assert mtimes(store, aux) == kept, "a finished run was recomputed"

    # 3. the corrupt file removed, as the error says: the run completes, recomputing only what is missing
    bad.unlink()
    kept = mtimes(store, aux)
    assert cli.main(argv) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert sorted(p.stem for p in store.glob("*.json")) == sorted(no_aux + aux)
    assert mtimes(store, aux) == kept
    assert not list(store.glob(".tmp-*"))
    no_pwned(tmp_path, nbdir, env)


def test_sigterm_mid_run_keeps_finished_runs_stops_the_kernel_and_frees_the_lock(tmp_path, env):
    profile = write_profile(tmp_path / "term.yaml", [True])
    base = env / "term"
    store = base / "store"
    keys = keys_of(profile, store, True)
    nbdir = crafted_table1(tmp_path / "nb", "time.sleep(600)  # still busy when SIGTERM comes\n")
    proc = start_runner(nbdir, ["run", "--profile", str(profile), "--jobs", "1", "--device", "cpu"], tmp_path)
    pid_file = nbdir / "pid-aux1"
    try:
        deadline = time.time() + TIMEOUT
        while not pid_file.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert pid_file.exists(), proc.communicate(timeout=60)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # what `kill`, a scheduler or a shutdown sends
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err and "rerun" in err
    assert wait_dead(int(pid_file.read_text())), "the kernel outlived the runner"
    assert sorted(p.name for p in store.iterdir()) == sorted(f"{k}.json" for k in keys)  # trained first, kept
    assert load_record(store / f"{keys[0]}.json")["key"] == keys[0]
    assert json.loads((base / "timings.json").read_text())["status"] == "interrupted"
    lock = runner.Lock(base / ".lock")
    assert lock.acquire(), "the lock was not released"
    lock.release()

    # the rerun that resumes is the same as after Ctrl-C (the runner turns SIGTERM into it): see
    # test_pipeline.py::test_interrupt_then_resume_recomputes_nothing and the first test above
    no_pwned(tmp_path, nbdir, env)


def test_a_notebook_that_lost_its_parameters_tag_fails_by_name(tmp_path, env, monkeypatch, capsys):
    """Issue 15: it would run on its own defaults (seed 1 only, another store) and must not pass as a success:
    it is not executed, and the failure says why."""
    profile = write_profile(tmp_path / "untagged.yaml", [True])
    nbdir = crafted_table1(tmp_path / "nb", "", tagged=False)
    monkeypatch.setattr(runner, "NOTEBOOKS_DIR", nbdir)
    assert cli.main(["run", "--profile", str(profile), "--jobs", "1", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    print(err)
    line = next(x for x in err.splitlines() if "FAILED table1/corrected-LeNet5-ws1-aux1" in x)
    assert "table1.ipynb has no cell tagged 'parameters'" in line and "no notebook was executed" in line
    t = json.loads((env / "untagged" / "timings.json").read_text())
    assert [e["status"] for e in t["executions"]] == ["failed"]
