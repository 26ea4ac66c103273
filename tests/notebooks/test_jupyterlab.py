"""JupyterLab, started as the README says, lists each notebook of notebooks/ once (its .ipynb), not also its
jupytext pair (.py): checked through a real jupyter server's contents API on 127.0.0.1, stopped afterwards."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a jupyter server

ROOT = Path(__file__).resolve().parents[2]


def test_jupyterlab_lists_each_notebook_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--allow-root",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--IdentityProvider.token=t",
            "--config=notebooks/jupyter_server_config.json",
            "notebooks/",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/contents/"
        request = urllib.request.Request(url, headers={"Authorization": "token t"})
        for _ in range(120):
            try:
                listing = json.load(urllib.request.urlopen(request, timeout=5))
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"no jupyter server answered at {url} within a minute")
        names = [c["name"] for c in listing["content"]]
    finally:
        server.terminate()
        server.wait(timeout=30)
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(n[: -len(".ipynb")] for n in names if n.endswith(".ipynb")) == notebooks
    assert not [n for n in names if n.endswith(".py")], names  # the pairs stay on disk, out of the listing
    assert {p.stem for p in (ROOT / "notebooks").glob("*.py")} == set(notebooks)
