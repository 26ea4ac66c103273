"""The machine fingerprint, the numerics modes, and the agreement rules of verify."""

from __future__ import annotations

import math

import pytest

from siamese_lib import machine
from siamese_lib.analysis import agreement
from siamese_lib.config import RunConfig
from siamese_lib.pipeline import verify

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480C
flags\t\t: fpu sse2 avx2 avx512f

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480C
"""


def test_cpuinfo_reads_the_first_processor(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = machine.cpuinfo(path)
    assert info["vendor_id"] == "GenuineIntel" and info["model name"] == "Intel(R) Xeon(R) Platinum 8480C"
    assert "avx512f" in info["flags"].split()
    assert machine.cpuinfo(tmp_path / "absent") == {}


def test_fingerprint_names_what_decides_the_last_bits():
    fp = machine.fingerprint("cpu")
    assert not machine.fingerprint_problems(fp)
    assert fp["isa"] and fp["torch"] and fp["mkl"] != "unknown" and fp["onednn"] != "unknown"
    assert machine.must_be_identical(fp, dict(fp))
    assert not machine.must_be_identical(fp, dict(fp, threads=fp["threads"] + 1))
    assert not machine.must_be_identical(fp, dict(fp, cpu_model="another CPU"))  # native: the CPU counts
    portable = dict(fp, numerics="portable")
    assert machine.must_be_identical(portable, dict(portable, cpu_model="another CPU", cpu_vendor="x"))
    assert not machine.must_be_identical(None, fp) and not machine.must_be_identical(
        dict(fp, numerics="mixed"), fp
    )
    assert "thread" in machine.describe(fp) and machine.describe(None).startswith("not recorded")


def test_apply_numerics_sets_the_environment_children_inherit(monkeypatch):
    for name in (*machine.PORTABLE_ENV, machine.MODE_VAR):
        monkeypatch.delenv(name, raising=False)
    try:
        machine.apply_numerics("portable")
        import os

        assert all(os.environ[k] == v for k, v in machine.PORTABLE_ENV.items())
        assert os.environ[machine.MODE_VAR] == "portable"
        machine.apply_numerics("native")
        assert not any(k in os.environ for k in machine.PORTABLE_ENV)
        with pytest.raises(ValueError, match="numerics"):
            machine.apply_numerics("fast")
    finally:
        machine.apply_numerics("native")


def test_run_and_cell_checks():
    fp = machine.fingerprint("cpu")
    m = {k: 5.0 for k in agreement.COMPARED_METRICS}
    same = agreement.run_check("k", "cell", 1, m, dict(m), fp, fp)
    assert same.identical and same.must_be_identical and not same.failed
    moved = agreement.run_check("k", "cell", 1, m, dict(m, test_error=6.0), fp, fp)
    assert moved.failed
    elsewhere = agreement.run_check("k", "cell", 1, m, dict(m, test_error=6.0), None, fp)
    assert not elsewhere.failed and not elsewhere.identical
    close = agreement.cell_check("c", [5.0, 6.0, 5.5, 6.5], [5.2, 6.1])
    far = agreement.cell_check("c", [5.0, 5.1, 5.2, 5.1], [9.0, 9.1])
    assert close.agrees and not far.agrees and math.isnan(agreement.cell_check("c", [5.0], [5.0]).p)
    v = agreement.verdict([elsewhere], [close, far])
    assert not v.ok and v.criterion == "statistical" and any("FAIL cell c" in line for line in v.lines)


def _committed(config, seconds=10.0):
    return verify.CommittedRun(config, "k", "cpu", {"test_error": 5.0}, None, seconds)


def test_the_sample_is_stratified_and_fits_the_budget():
    runs = [
        _committed(RunConfig(model=m, aux_loss=a, seed=s, protocol=p))
        for m in ("Net", "LeNet5")
        for a in (True, False)
        for p in ("corrected", "original")
        for s in range(1, 5)
    ]
    sample = verify.stratified_sample(runs, budget_seconds=80, jobs=2, full=False)
    cells = {r.cell for r in sample}
    assert len(sample) == 2 * len(cells) == 16  # 8 cells of 2 seeds, 20 s each per 2 jobs = 80 s
    assert {(r.config.model, r.config.protocol) for r in sample} == {
        (m, p) for m in ("Net", "LeNet5") for p in ("corrected", "original")
    }
    assert verify.stratified_sample(runs, 80, 2, full=False) == sample  # one seed, one sample
    others = [verify.stratified_sample(runs, 40, 2, full=False, seed=s) for s in range(1, 6)]
    assert len({tuple(r.cell for r in o) for o in others}) > 1  # another seed, another sample
    assert len(verify.stratified_sample(runs, 0, 2, full=True)) == len(runs)


def test_a_cell_is_a_configuration_less_its_seed():
    base = RunConfig(model="ResNet", seed=3, protocol="corrected")
    cell = verify.cell_of(base)
    assert cell.startswith(
        "protocol=corrected model=ResNet weight_sharing=1 aux_loss=1 batch_norm=1 dropout=0 "
    )
    assert (
        verify.cell_of(RunConfig(model="ResNet", seed=4, protocol="corrected", confirm_seeds=(101,))) == cell
    )
    for other in (dict(augment=("swap",)), dict(nb_pairs=500), dict(lr=0.01), dict(weight_sharing=False)):
        assert verify.cell_of(RunConfig(model="ResNet", seed=3, protocol="corrected", **other)) != cell


def test_a_profile_names_its_numerics(tmp_path):
    from siamese_lib.experiments.profiles import ProfileError, load_profile

    assert load_profile("paper").settings["numerics"] == "native"
    bad = tmp_path / "bad.yaml"
    bad.write_text("numerics: fast\nstages:\n  figures:\n")
    with pytest.raises(ProfileError, match="numerics"):
        load_profile(str(bad))


def test_verify_usage_errors(tmp_path, monkeypatch, capsys):
    from siamese_lib import cli

    monkeypatch.setenv("SIAMESE_LIB_REPORT_DIR", str(tmp_path))
    monkeypatch.setenv("SIAMESE_LIB_RUNS_DIR", str(tmp_path))
    assert cli.main(["verify", "--profile", "smoke"]) == 2
    assert "no published record at" in capsys.readouterr().err
    assert cli.main(["verify", "--minutes", "0"]) == 2
