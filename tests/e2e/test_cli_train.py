"""``python -m siamese_lib train``: JSON metrics on success; one line and exit 2 on bad input, nothing written."""

import json

import pytest
import torch
from conftest import files_under, run_cli

from siamese_lib import cli


@pytest.mark.slow
def test_train_prints_its_metrics_as_json(tmp_path):
    proc = run_cli(
        "train",
        "--model",
        "Net",
        "--weight-sharing",
        "--aux-loss",
        "--seed",
        "2",
        "--epochs",
        "1",
        "--nb-pairs",
        "100",
        "--device",
        "cpu",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["config"]["model"] == "Net" and out["config"]["seed"] == 2 and out["config"]["epochs"] == 1
    assert out["config"]["lr"] == 3e-2  # the paper's rate for Net when --lr is not given
    assert out["device"] == "cpu" and out["epochs_trained"] == 1 and len(out["train_loss"]) == 1
    assert 0 <= out["metrics"]["test_error"] <= 100
    assert files_under(tmp_path) == []  # train prints; it writes no file


def _main_in_process(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTORCH_DATA_DIR", raising=False)  # --data-dir sets it; undone after the test
    before = files_under(tmp_path)
    rc = cli.main(argv)
    captured = capsys.readouterr()
    assert files_under(tmp_path) == before, "a failed command wrote something"
    return rc, captured


TINY = ["--epochs", "1", "--nb-pairs", "100", "--device", "cpu"]
BAD_TRAIN = {
    "unknown model": (["--model", "LeNet6"], "invalid choice"),
    "missing model": (["--epochs", "1"], "--model"),
    "epochs 0": (["--model", "Net", "--epochs", "0"], "--epochs"),
    "epochs negative": (["--model", "Net", "--epochs", "-3"], "--epochs"),
    "epochs not a number": (["--model", "Net", "--epochs", "ten"], "--epochs"),
    "lr 0": (["--model", "Net", "--lr", "0"], "--lr"),
    "lr negative": (["--model", "Net", "--lr", "-1"], "--lr"),
    "lr nan": (["--model", "Net", "--lr", "nan"], "--lr"),
    "lr inf": (["--model", "Net", "--lr", "inf"], "--lr"),
    "batch size 0": (["--model", "Net", "--batch-size", "0"], "--batch-size"),
    "nb pairs above MNIST": (
        ["--model", "Net", "--nb-pairs", "6000"],
        "--nb-pairs: must be an integer in 1..5000",
    ),
    "seed negative": (["--model", "Net", "--seed", "-1"], "--seed"),
    "unknown flag": (["--model", "Net", "--frobnicate"], "unrecognized arguments"),
    "conflicting flags": (["--model", "Net", "--aux-loss", "--no-aux-loss"], "contradict"),
    "conflicting flags 2": (["--model", "Net", "--no-weight-sharing", "--weight-sharing"], "contradict"),
    "unknown protocol": (["--model", "Net", "--protocol", "authors"], "--protocol"),
    "data dir missing": (["--model", "Net", "--data-dir", "/nonexistent/mnist"], "not a directory"),
}


@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_bad_input_is_one_line_and_exit_2(case, capsys, tmp_path, monkeypatch):
    argv, needle = BAD_TRAIN[case]
    rc, captured = _main_in_process(["train", *argv], capsys, tmp_path, monkeypatch)
    assert rc == 2
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], captured.err


def test_data_dir_that_is_not_mnist(capsys, tmp_path, monkeypatch):
    not_mnist = tmp_path / "photos"
    (not_mnist / "MNIST" / "raw").mkdir(parents=True)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (not_mnist / "MNIST" / "raw" / name).write_bytes(b"not an idx file at all")
    for folder in (tmp_path / "empty", not_mnist):
        folder.mkdir(exist_ok=True)
        rc, captured = _main_in_process(
            ["train", "--model", "Net", *TINY, "--data-dir", str(folder)], capsys, tmp_path, monkeypatch
        )
        assert rc == 2 and captured.out == ""
        lines = captured.err.splitlines()
        assert len(lines) == 1 and str(folder) in lines[0] and "MNIST" in lines[0], captured.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_device_cuda_without_a_gpu(capsys, tmp_path, monkeypatch):
    rc, captured = _main_in_process(
        ["train", "--model", "Net", *TINY[:4], "--device", "cuda"], capsys, tmp_path, monkeypatch
    )
    assert rc == 2 and captured.out == ""
    assert len(captured.err.splitlines()) == 1 and "cuda" in captured.err


@pytest.mark.slow
def test_bad_input_through_the_real_entry_point(tmp_path):
    # the in-process cases above, spot-checked as a user runs them: exit status 2, one line, no traceback
    for argv in (
        ["train", "--model", "Net", "--nb-pairs", "6000"],
        ["train", "--model", "Net", "--data-dir", str(tmp_path)],
    ):
        proc = run_cli(*argv, cwd=tmp_path)
        assert proc.returncode == 2, proc
        assert proc.stdout == "" and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
    assert files_under(tmp_path) == []
