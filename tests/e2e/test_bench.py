"""The benchmarks (benchmarks/, not part of the package): a smoke run writes its JSON with sane fields,
its usage errors, and that its set-up of the library's training loop is the loop train_run runs
(same loss curve, bit for bit)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamese_lib import training
from siamese_lib.config import PAPER_MODELS, RunConfig

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_smoke_bench_prints_table_and_writes_json(tmp_path):
    out = tmp_path / "sub" / "bench.json"
    proc = run_bench("--smoke", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "lib/ref" in proc.stdout and f"wrote {out}" in proc.stdout
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert {(r["model"], r["weight_sharing"]) for r in rows} == {
        (m, ws) for m in PAPER_MODELS for ws in (True, False)
    }
    for r in rows:
        for key in (
            "reference_ms",
            "library_ms",
            "ratio",
            "reference_cpu_ms",
            "library_cpu_ms",
            "flops_per_step",
            "library_gflops",
            "library_gflops_per_thread",
            "matmul_gflops_interleaved",
            "peak_rss_mb",
        ):
            assert r[key] > 0, (r["model"], key, r[key])
        assert r["ratio"] == pytest.approx(r["library_ms"] / r["reference_ms"])
    # ResNet does far more arithmetic per step than Net: the FLOP counter must see it
    flops = {r["model"]: r["flops_per_step"] for r in rows}
    assert flops["ResNet"] > 10 * flops["Net"]
    assert result["matmul_gflops"]["1"]["median"] > 0
    assert result["peak_rss_mb"] > 0 and result["settings"]["smoke"] is True


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_usage_errors_are_one_line_and_write_nothing(tmp_path):
    proc = run_bench("--smoke", "--device", "cuda", "--out", str(tmp_path / "b.json"), timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "--device cpu" in proc.stderr
    proc = run_bench("--smoke", "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 2 and "is a directory" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "config",
    [
        RunConfig(model="LeNet5", dropout=True, nb_pairs=200, epochs=2, seed=3),
        RunConfig(model="Net", weight_sharing=False, aux_loss=False, nb_pairs=200, epochs=2, seed=4),
    ],
)
def test_library_loop_is_train_runs_loop(config):
    expected = training.train_run(config, device="cpu")["curves"]["train_loss"]
    dev = torch.device("cpu")
    torch.manual_seed(config.seed)  # train_run's order: seed, data (the fold's shuffle), model
    train = training.prepare_data(config, dev).train
    model = training.make_model(config, dev)
    optimizer = training.make_optimizer(model, config)
    batches = training.mini_batches(train, config.batch_size)
    model.train()
    losses = [
        float(training.train_epoch(model, optimizer, batches, config, e, train))
        for e in range(config.trained_epochs)
    ]
    assert losses == expected
