"""The benchmark: smoke run through the CLI, its JSON, the usage errors, and that its copy of the
library's training loop is the loop train_run runs (same loss curve, bit for bit)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamese_lib.models import PAPER_MODELS as MODEL_NAMES
from siamese_lib.config import RunConfig
from siamese_lib.training import prepare_data, train_run
from siamese_lib import models
from siamese_lib.pipeline import bench
from siamese_lib import training

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "siamese_lib", "bench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_smoke_bench_prints_table_and_writes_json(tmp_path):
    out = tmp_path / "sub" / "bench.json"
    proc = run_cli("--smoke", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "lib/ref" in proc.stdout and f"wrote {out}" in proc.stdout
    # table rows start at column 0 with the model name; progress lines are indented
    table_lines = [line for line in proc.stdout.splitlines()
                   if not line.startswith(" ") and line.split()[:1] in ([m] for m in MODEL_NAMES)]
    assert len(table_lines) == 2 * len(MODEL_NAMES)  # each model with and without weight sharing
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert {(r["model"], r["weight_sharing"]) for r in rows} == {(m, ws) for m in MODEL_NAMES for ws in (True, False)}
    for r in rows:
        for key in ("reference_ms", "library_ms", "ratio", "reference_cpu_ms", "library_cpu_ms", "flops_per_step",
                    "library_gflops", "library_gflops_per_thread", "matmul_gflops_interleaved", "peak_rss_mb"):
            assert r[key] > 0, (r["model"], key, r[key])
        assert r["ratio"] == pytest.approx(r["library_ms"] / r["reference_ms"])
    # ResNet does far more arithmetic per step than Net: the FLOP counter must see it
    flops = {r["model"]: r["flops_per_step"] for r in rows}
    assert flops["ResNet"] > 10 * flops["Net"]
    assert result["matmul_gflops"]["1"]["median"] > 0
    assert result["peak_rss_mb"] > 0 and result["settings"]["smoke"] is True


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_a_usage_error(tmp_path):
    proc = run_cli("--smoke", "--device", "cuda", "--out", str(tmp_path / "b.json"), timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cuda" in lines[0] and "--device cpu" in lines[0]
    assert not (tmp_path / "b.json").exists()


def test_out_directory_is_a_usage_error(tmp_path):
    proc = run_cli("--smoke", "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 2 and "is a directory" in proc.stderr


def test_unknown_profile_fails_before_timing(tmp_path):
    proc = run_cli("--smoke", "--profile", "no-such-profile", "--out", str(tmp_path / "b.json"), timeout=120)
    assert proc.returncode == 2 and "no-such-profile" in proc.stderr and "available profiles" in proc.stderr
    assert "bench on" not in proc.stdout and not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("config", [
    RunConfig(model="LeNet5", dropout=True, nb_pairs=200, epochs=2, seed=3),
    RunConfig(model="Net", weight_sharing=False, aux_loss=False, nb_pairs=200, epochs=2, seed=4),
])
def test_library_loop_is_train_runs_loop(config):
    expected = train_run(config, device="cpu")["curves"]["train_loss"]
    dev = torch.device("cpu")
    torch.manual_seed(config.seed)  # train_run's order: seed, data (the fold's shuffle), model
    train, _, _ = prepare_data(config, dev)
    model = bench.library_model(config, dev)
    optimizer = training.make_optimizer(model, config)
    batches = training.mini_batches(train, config.batch_size)
    model.train()
    losses = [float(training.train_epoch(model, optimizer, batches, config, e, train))
              for e in range(config.trained_epochs)]
    assert losses == expected


def test_reference_forward_matches_library_without_weight_sharing():
    # without weight sharing both forwards apply each branch to its own image: identical outputs
    torch.manual_seed(0)
    model = models.build_model("LeNet5", weight_sharing=False).eval()
    x = torch.randn(8, 2, 14, 14)
    for a, b in zip(bench.two_call_forward(model, x), model(x)):
        assert torch.equal(a, b)


def test_profile_breakdown_sums_records_and_reads_timings(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    for i, (train, wall) in enumerate([(2.0, 2.5), (3.0, 3.25)]):
        (store / f"k{i}.json").write_text(json.dumps({"metrics": {"train_seconds": train, "wall_seconds": wall}}))
    (tmp_path / "timings.json").write_text(json.dumps({
        "stages": {"table1": 9.0, "report": 4.0},
        "executions": [{"stage": "table1", "kernel_start_seconds": 1.5, "notebook_seconds": 6.0},
                       {"stage": "report", "kernel_start_seconds": 1.0, "notebook_seconds": 2.0}]}))
    p = bench.profile_breakdown(tmp_path, wall=20.0, data_seconds=0.5)
    assert p["runs"] == 2
    assert p["train_seconds"] == pytest.approx(5.0) and p["evaluation_seconds"] == pytest.approx(0.75)
    assert p["phases"]["kernel_start"] == pytest.approx(2.5)
    assert p["phases"]["data_loading"] == pytest.approx(0.5)   # one training kernel loads the pairs once
    assert p["phases"]["training"] == pytest.approx(4.5)
    assert p["phases"]["report"] == pytest.approx(4.0)
