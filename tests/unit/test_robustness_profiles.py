"""Bad profiles and bad command lines: one line naming file, key and what is allowed; exit 2; nothing
trained, nothing written (no runs/<profile>/ folder)."""

import pytest
import torch
from conftest import files_under, run_cli

from siamese_lib import cli
from siamese_lib.experiments.profiles import ProfileError, load_profile

TABLE1 = "  table1: {models: [LeNet5], weight_sharing: [true], aux_loss: [true], seeds: [1, 2], epochs: 2}\n"
LR = "  lr_search: {models: [LeNet5], lrs: [0.005], seeds: [1], epochs: 2}\n"


def stages(*lines):
    return "stages:\n" + "".join(lines)


# name -> (profile text, substrings the one-line error must hold besides the file name)
BAD_PROFILES = {
    "yaml syntax error": ("stages:\n  table1: {models: [LeNet5\n", ["YAML syntax error", "line"]),
    "yaml tab indentation": ("stages:\n\ttable1: {}\n", ["YAML syntax error"]),
    "two yaml documents": ("nb_pairs: 100\n---\n" + stages(TABLE1), ["YAML syntax error"]),
    "yaml python tag": (
        "!!python/object/apply:os.system ['touch pwned']\n",
        ["YAML syntax error", "python/object"],
    ),
    "unknown top-level key": (
        "nb_pair: 100\n" + stages(TABLE1),
        ["'nb_pair'", "did you mean 'nb_pairs'", "allowed:"],
    ),
    "unknown stage key": (
        stages(TABLE1.replace("epochs", "epoch")),
        ["'stages.table1.epoch'", "did you mean 'epochs'", "allowed:"],
    ),
    "unknown stage": (
        stages(TABLE1, "  tabel2: {}\n"),
        ["'stages.tabel2'", "did you mean 'table2'", "allowed:"],
    ),
    "unknown model": (
        stages(TABLE1.replace("[LeNet5]", "[LeNet6]")),
        ["'stages.table1.models[0]'", "must be one of", "ResNet", "'LeNet6'"],
    ),
    "string for epochs": (
        stages(TABLE1.replace("epochs: 2", "epochs: '30'")),
        ["'stages.table1.epochs'", "must be an integer", "'30' (str)"],
    ),
    "float for epochs": (
        stages(TABLE1.replace("epochs: 2", "epochs: 2.5")),
        ["'stages.table1.epochs'", "integer"],
    ),
    "bool for epochs": (
        stages(TABLE1.replace("epochs: 2", "epochs: true")),
        ["'stages.table1.epochs'", "integer"],
    ),
    "list for lr": (
        stages(LR.replace("[0.005]", "[[0.005, 0.05]]")),
        ["'stages.lr_search.lrs[0]'", "number > 0"],
    ),
    "number for lrs": (stages(LR.replace("[0.005]", "0.005")), ["'stages.lr_search.lrs'", "non-empty list"]),
    "list for learning_rates": (
        "learning_rates: [0.005]\n" + stages(TABLE1),
        ["'learning_rates'", "paper, auto"],
    ),
    "epochs 0": (
        stages(TABLE1.replace("epochs: 2", "epochs: 0")),
        ["'stages.table1.epochs'", "1..10000", "got 0"],
    ),
    "lr -1": (stages(LR.replace("[0.005]", "[-1]")), ["'stages.lr_search.lrs[0]'", "> 0", "got -1"]),
    "lr 0": (stages(LR.replace("[0.005]", "[0]")), ["'stages.lr_search.lrs[0]'", "> 0"]),
    "lr inf": (stages(LR.replace("[0.005]", "[.inf]")), ["'stages.lr_search.lrs[0]'", "finite"]),
    "lr nan": (stages(LR.replace("[0.005]", "[.nan]")), ["'stages.lr_search.lrs[0]'", "finite"]),
    "seeds empty": (stages(TABLE1.replace("[1, 2]", "[]")), ["'stages.table1.seeds'", "non-empty list"]),
    "duplicate seeds": (
        stages(TABLE1.replace("[1, 2]", "[1, 2, 1]")),
        ["'stages.table1.seeds'", "repeat", "1"],
    ),
    "negative seed": (stages(TABLE1.replace("[1, 2]", "[-1]")), ["'stages.table1.seeds[0]'", "integer"]),
    "seed too large": (
        stages(TABLE1.replace("[1, 2]", "[18446744073709551616]")),
        ["'stages.table1.seeds[0]'", "4294967295"],
    ),
    "nb_pairs 0": ("nb_pairs: 0\n" + stages(TABLE1), ["'nb_pairs'", "1..5000", "got 0"]),
    "nb_pairs above MNIST": ("nb_pairs: 5001\n" + stages(TABLE1), ["'nb_pairs'", "1..5000", "got 5001"]),
    "batch_size 0": ("batch_size: 0\n" + stages(TABLE1), ["'batch_size'", "1..5000"]),
    "unknown protocol": (
        "protocols: [authors]\n" + stages(TABLE1),
        ["'protocols[0]'", "corrected, original"],
    ),
    "equivalence margin 0": (
        "equivalence_margin: 0\n" + stages(TABLE1),
        ["'equivalence_margin'", "> 0 and <= 100"],
    ),
    "equivalence margin as text": (
        "equivalence_margin: '1'\n" + stages(TABLE1),
        ["'equivalence_margin'", "'1' (str)"],
    ),
    "equivalence margin above 100": (
        "equivalence_margin: 100.5\n" + stages(TABLE1),
        ["'equivalence_margin'"],
    ),
    "empty file": ("", ["empty", "'stages'"]),
    "only comments": ("# nothing here\n", ["empty", "'stages'"]),
    "a list, not a mapping": ("- table1\n- table2\n", ["mapping"]),
    "stages missing": ("nb_pairs: 100\n", ["'stages'", "required", "table1"]),
    "stages empty": ("stages: {}\n", ["'stages'", "no training stage", "table1"]),
    "stage not a mapping": (stages("  table1: [LeNet5]\n"), ["'stages.table1'", "mapping"]),
    "required stage key missing": (
        stages(TABLE1.replace(", epochs: 2", "")),
        ["'stages.table1.epochs'", "required"],
    ),
    "settings for figures": (stages(TABLE1, "  figures: {dpi: 300}\n"), ["'stages.figures'", "no settings"]),
    "duplicate key": (
        stages(TABLE1.replace("epochs: 2}", "epochs: 2, epochs: 3}")),
        ["'stages.table1.epochs'", "twice", "line 2"],
    ),
    # injection: values that would leave runs/ or run code are not models, stages or numbers
    "path in a model name": (
        stages(TABLE1.replace("[LeNet5]", "['../../x']")),
        ["'stages.table1.models[0]'", "must be one of"],
    ),
    "code in a model name": (
        stages(TABLE1.replace("[LeNet5]", """['"); import os; os.system("touch pwned")#']""")),
        ["'stages.table1.models[0]'", "must be one of"],
    ),
    "code in a seed": (
        stages(TABLE1.replace("[1, 2]", """['__import__("os").system("touch pwned")']""")),
        ["'stages.table1.seeds[0]'", "integer"],
    ),
}


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("SIAMESE_LIB_RUNS_DIR", str(runs))
    monkeypatch.setenv("SIAMESE_LIB_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.chdir(tmp_path)
    return runs


def _one_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == "" and len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("case", list(BAD_PROFILES))
def test_bad_profile(case, tmp_path, runs_dir, capsys):
    text, needles = BAD_PROFILES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    # the library: a ProfileError of one line naming the file, the key and what is allowed
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    for needle in needles:
        assert needle in message, (needle, message)
    # the command line: the same line, exit 2, nothing written
    before = files_under(tmp_path)
    assert cli.main(["run", "--profile", str(path), "--jobs", "1", "--device", "cpu"]) == 2
    assert _one_line(capsys) == f"error: {message}"
    assert files_under(tmp_path) == before and not runs_dir.exists()
    assert not (tmp_path / "pwned").exists()


def test_profile_name_that_is_not_a_file(tmp_path, runs_dir, capsys):
    for name in ("no-such-profile", str(tmp_path / "absent.yaml"), str(tmp_path)):
        with pytest.raises(ProfileError, match="no such profile file; available profiles: .*smoke"):
            load_profile(name)
        assert cli.main(["run", "--profile", name]) == 2
        assert "no such profile file" in _one_line(capsys)
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    assert cli.main(["run", "--profile", str(folder)]) == 2
    assert str(folder) in _one_line(capsys)
    for name in ("smoke!", "a b", "$(touch pwned)"):
        with pytest.raises(ProfileError, match="letters, digits"):
            load_profile(name)
    assert not runs_dir.exists() and not (tmp_path / "pwned").exists()


def test_profile_file_names_that_would_leave_runs(tmp_path, runs_dir, capsys):
    # the profile's name (its file name's stem) becomes runs/<name>/: '...yaml' would be runs/..
    for file_name in ("...yaml", "..yaml", ".hidden.yaml", 'x"); import os; os.system("touch pwned")#.yaml'):
        path = tmp_path / file_name
        path.write_text(stages(TABLE1))
        with pytest.raises(ProfileError, match="profile name"):
            load_profile(str(path))
        assert cli.main(["run", "--profile", str(path), "--device", "cpu"]) == 2
        assert "profile name" in _one_line(capsys)
        path.unlink()
    assert not runs_dir.exists() and not (tmp_path / "pwned").exists()


def test_non_utf8_profile(tmp_path, runs_dir, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("description: caf\xe9\n".encode("latin-1") + stages(TABLE1).encode())
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(str(path))
    assert cli.main(["run", "--profile", str(path)]) == 2
    _one_line(capsys)
    assert not runs_dir.exists()


def test_a_valid_profile_passes(tmp_path):
    # the cases above fail for the reason they name, not because the base profile is broken
    path = tmp_path / "good.yaml"
    path.write_text("nb_pairs: 100\n" + stages(TABLE1, LR))
    profile = load_profile(str(path))
    assert profile.name == "good" and profile.settings["nb_pairs"] == 100
    assert profile.stages["table1"]["seeds"] == [1, 2] and profile.stages["lr_search"]["lrs"] == [0.005]
    # typed too; the margin of the report's equivalence test: 1 percentage point unless the profile says
    assert profile.model.nb_pairs == 100 and profile.model.stages.table1.epochs == 2
    assert profile.model.stages.table2 is None
    assert profile.settings["equivalence_margin"] == 1.0 and "table2" not in profile.stages
    path.write_text("nb_pairs: 100\nequivalence_margin: 2\n" + stages(TABLE1, LR))
    assert load_profile(str(path)).settings["equivalence_margin"] == 2.0
    for name in ("paper", "quick", "smoke"):
        load_profile(name)


# --- the command line of `run` ------------------------------------------------------------------

BAD_RUN_ARGS = {
    "unknown flag": (["--profile", "smoke", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    "flag of another command": (["--profile", "smoke", "--model", "Net"], "unrecognized arguments"),
    "conflicting flags": (["--profile", "smoke", "--keep-going", "--no-keep-going"], "contradict"),
    "jobs 0": (["--profile", "smoke", "--jobs", "0"], "--jobs"),
    "jobs negative": (["--profile", "smoke", "--jobs", "-2"], "--jobs"),
    "jobs not a number": (["--profile", "smoke", "--jobs", "many"], "--jobs"),
    "unknown device": (["--profile", "smoke", "--device", "tpu"], "--device"),
    "missing profile": (["--jobs", "1"], "--profile"),
    "unknown stage": (["--profile", "smoke", "--only", "table1,tabel2"], "'tabel2'"),
    "no stage": (["--profile", "smoke", "--only", ","], "--only"),
    "unknown command": None,
}


@pytest.mark.parametrize("case", list(BAD_RUN_ARGS))
def test_bad_run_command_line(case, tmp_path, runs_dir, capsys):
    argv, needle = (
        (["frobnicate"], "invalid choice")
        if BAD_RUN_ARGS[case] is None
        else (["run", *BAD_RUN_ARGS[case][0]], BAD_RUN_ARGS[case][1])
    )
    assert cli.main(argv) == 2
    assert needle in _one_line(capsys)
    assert files_under(tmp_path) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_run_on_an_absent_gpu(tmp_path, runs_dir, capsys):
    assert cli.main(["run", "--profile", "smoke", "--device", "cuda"]) == 2
    assert "cuda" in _one_line(capsys)
    assert files_under(tmp_path) == []


@pytest.mark.slow  # trains / starts subprocesses: seconds
def test_bad_profile_through_the_real_entry_point(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(stages(TABLE1.replace("epochs: 2", "epochs: 0")))
    proc = run_cli(
        "run",
        "--profile",
        path,
        "--device",
        "cpu",
        cwd=tmp_path,
        env={"SIAMESE_LIB_RUNS_DIR": str(tmp_path / "runs")},
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and "stages.table1.epochs" in proc.stderr
    assert str(path) in proc.stderr and "Traceback" not in proc.stderr
    assert files_under(tmp_path) == ["bad.yaml"]
