"""What a user reads when they get something wrong: every bad field of a configuration at once."""

from __future__ import annotations

import pytest

from siamese_lib.config import RunConfig


def test_a_config_reports_every_bad_field_not_only_the_first():
    with pytest.raises(ValueError) as info:
        RunConfig(model="LeNet6", epochs=0, lr=-1.0)
    message = str(info.value)
    assert "\n" not in message
    assert [f for f in ("model", "epochs", "lr") if f"{f}:" in message] == ["model", "epochs", "lr"]
    assert "LeNet5_FullyConv" in message and "got 0" in message  # what is allowed, what was given


@pytest.mark.parametrize("command", ["train", "run", "verify"])
def test_each_command_describes_itself_and_its_defaults(command, capsys):
    from siamese_lib.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    description = text.split(" options: ")[0].split("] ")[-1]
    assert len(description.split()) >= 8 and "`" not in text  # words, not reST markup
    shown = {"train": ["(default: 30)", "(default: on)", "(default: corrected)"], "run": ["(default: auto)"]}
    assert all(s in text for s in shown.get(command, ["default 10"]))


def test_the_top_level_help_says_what_the_commands_do(capsys):
    from siamese_lib.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "`" not in text and "parses" not in text
    assert all(c in text for c in ("train one run", "run a profile", "retrain a sample"))
