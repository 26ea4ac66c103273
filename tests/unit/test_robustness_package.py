"""The notebooks' kernels and the local workers run the runner's package: a second clone that shares one
environment is not imported instead, and a process that imports another copy refuses with one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import ROOT

import siamese_lib
from siamese_lib.common import same_package_env

SHOW = "import siamese_lib; print(siamese_lib.__file__)"


def other_clone(tmp_path):
    """Another copy of the package (as a second clone's), first on the path."""
    (tmp_path / "siamese_lib").mkdir()
    shutil.copy(ROOT / "siamese_lib" / "__init__.py", tmp_path / "siamese_lib" / "__init__.py")
    return tmp_path


def python(env, cwd):
    return subprocess.run(
        [sys.executable, "-c", SHOW], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_a_process_importing_another_copy_refuses_in_one_line(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(other_clone(tmp_path)),
        siamese_lib.PACKAGE_ENV: str(ROOT / "siamese_lib"),
    }
    out = python(env, tmp_path)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: this process imports siamese_lib from") and str(tmp_path) in last
    assert "one environment serves two clones" in last


def test_the_runner_points_its_kernels_and_workers_at_its_own_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(other_clone(tmp_path)))
    (tmp_path / "notebooks").mkdir()
    out = python({**os.environ, **same_package_env()}, tmp_path / "notebooks")  # a kernel starts elsewhere
    assert out.returncode == 0, out.stderr
    assert os.path.realpath(out.stdout.strip()) == os.path.realpath(siamese_lib.__file__)
    assert siamese_lib.PACKAGE_ENV not in os.environ  # the runner's own environment is left as it was
