"""Command line: python -m siamese_lib {train,run,publish,verify}: train one run, run a profile and render its
report, make a profile's published record anew, or retrain a sample of the published record to check it.

Usage errors exit with status 2 and one line on stderr naming what is wrong and what is allowed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from .common import UsageError, absolute_path_variables
from .config import (
    DEVICES,
    FIELD_TYPES,
    MODEL_NAMES,
    PROTOCOLS,
    Int,
    Number,
    RunConfig,
    Threads,
    field_rule,
    one_line,
)
from .experiments.profiles import PAPER_LRS, STAGES

# Each command imports what it runs (torch, Dask, papermill, pandas) when it runs: --help and usage errors answer at once.


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


class Help(argparse.HelpFormatter):
    """Each option's help ends with its default, unless it names it already or has none."""

    def _get_help_string(self, action):
        text, default = action.help or "", action.default
        if "default" in text or action.required or default in (None, argparse.SUPPRESS) or default is False:
            return text
        shown = "on" if default is True else default
        return f"{text} (default: {shown})".strip()


class Switch(argparse.BooleanOptionalAction):
    """``--x`` / ``--no-x``; giving both is a usage error, not 'the last one wins'."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_switches_given", {})
        first = given.setdefault(self.dest, option_string)
        if first != option_string:
            parser.error(f"{first} and {option_string} contradict each other; give one of them")
        super().__call__(parser, namespace, values, option_string)


def typed(kind, parse=int):
    """An argparse type: the text parsed, then validated by ``kind`` (a typed rule of config.py), so that a
    refusal is the model's line: what the flag allows, what was given."""
    adapter = TypeAdapter(kind)

    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            value = text
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(one_line(exc, "")) from None

    return convert


def field_value(name: str, parse=int):
    """An argparse type for RunConfig's field ``name``."""
    return typed(FIELD_TYPES[name], parse)


positive_int, positive_float, threads_value = (
    typed(Int(1)),
    typed(Number(0, above=True), float),
    typed(Threads),
)


def a_path(text):
    """A file or folder flag: made absolute where the user stands, so every code path and subprocess
    reads the same place."""
    return os.path.abspath(text)


def profile_value(text):
    """A profile name stays a name; a path (a .yaml file or anything with '/') is made absolute."""
    return a_path(text) if text.endswith((".yaml", ".yml")) or "/" in text else text


def build_parser() -> Parser:
    parser = Parser(prog="python -m siamese_lib", description=" ".join(__doc__.split("\n\n")[0].split()))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name, text):
        return sub.add_parser(
            name, help=text, description=text[0].upper() + text[1:] + ".", formatter_class=Help
        )

    t = command("train", "train one run (the paper's setting by default) and print its metrics as JSON")
    t.add_argument("--model", required=True, choices=MODEL_NAMES, help="the architecture")
    t.add_argument("--weight-sharing", action=Switch, default=True, help="one branch for both images")
    t.add_argument("--aux-loss", action=Switch, default=True, help="the auxiliary digit loss")
    t.add_argument("--batch-norm", action=Switch, default=True, help="batch normalisation in the branches")
    t.add_argument("--dropout", action=Switch, default=False, help="dropout in the branches (default: off)")
    t.add_argument(
        "--lr",
        type=field_value("lr", float),
        default=None,
        help=f"default: the paper's rate for the model; lr {field_rule('lr')}",
    )
    t.add_argument("--epochs", type=field_value("epochs", int), default=30, help=field_rule("epochs"))
    t.add_argument(
        "--batch-size", type=field_value("batch_size", int), default=100, help=field_rule("batch_size")
    )
    t.add_argument("--seed", type=field_value("seed", int), default=1, help=field_rule("seed"))
    t.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="corrected",
        help="the paper as described, or the authors' code",
    )
    t.add_argument("--nb-pairs", type=field_value("nb_pairs", int), default=1000, help=field_rule("nb_pairs"))
    t.add_argument(
        "--data-dir",
        type=a_path,
        default=None,
        help="a torchvision-format MNIST folder (default: offline copy)",
    )
    t.add_argument("--device", choices=DEVICES, default="auto", help="auto: cuda when there is one")
    t.add_argument("--threads", type=threads_value, default=1, help="torch threads (default 1)")

    r = command(
        "run",
        "run a profile: train the runs its store lacks, execute one notebook per configuration, then render "
        "report/PROFILE/report.html and report.pdf",
    )
    r.add_argument(
        "--profile",
        required=True,
        type=profile_value,
        help="a name in params/ (paper, quick, smoke) or a .yaml path",
    )
    r.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        help="local Dask workers (one thread each) and notebooks at once (default: CPU cores)",
    )
    r.add_argument("--device", choices=DEVICES, default="auto", help="auto: cuda when there is one")
    r.add_argument("--only", default=None, help=f"comma-separated stages: {','.join(STAGES)}")
    r.add_argument("--force", action="store_true", help="recompute runs already in the store")
    r.add_argument(
        "--keep-going",
        action=Switch,
        default=True,
        help="after a failed notebook, finish the others (default) or cancel them",
    )
    r.add_argument(
        "--allow-dirty",
        action="store_true",
        help="profile paper: train from uncommitted code anyway (refused by default); "
        "those runs are marked +dirty in the report",
    )
    r.add_argument(
        "--from-record",
        action="store_true",
        help="first seed the store from the published record, "
        "report/PROFILE/records.parquet (checked; its runs are not retrained)",
    )
    r.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a running Dask scheduler, tcp://HOST:8786, to train the runs on (default: "
        "$SIAMESE_LIB_SCHEDULER, else a local cluster of --jobs workers)",
    )
    r.add_argument(
        "--run-timeout",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="a worker that holds a run this long without a result is removed (its runs retried elsewhere; "
        "a run stalled twice fails); default: 4 x what the slowest run so far took, at least 60 s (before any "
        "came back: 20 x its expected time on one core + 300 s)",
    )

    pb = command(
        "publish",
        "make report/PROFILE/records.parquet anew from runs/PROFILE/store: the profile's planned runs only, each "
        "checked (what run --force does after training)",
    )
    pb.add_argument("--profile", required=True, type=profile_value, help="a name in params/ or a .yaml path")

    v = command(
        "verify",
        "retrain a sample of the published record's runs here and say, per run and per cell, whether they agree",
    )
    v.add_argument("--profile", default="paper", help="whose record, report/PROFILE/runs.csv (default paper)")
    v.add_argument("--minutes", type=positive_float, default=10.0, help="time budget (default 10)")
    v.add_argument("--full", action="store_true", help="every committed run, no time budget")
    v.add_argument("--jobs", type=positive_int, default=None, help="processes at once (default 2)")
    v.add_argument(
        "--seed",
        type=int,
        default=None,
        help="the sample's seed, to repeat one (default: a new one, printed)",
    )
    return parser


def cmd_train(args) -> int:
    from .data import DataError, load_mnist
    from .training import resolve_device, train_run

    fields = (
        "model",
        "weight_sharing",
        "aux_loss",
        "batch_norm",
        "dropout",
        "epochs",
        "batch_size",
        "seed",
        "protocol",
        "nb_pairs",
    )
    try:
        device = resolve_device(args.device)
        config = RunConfig(
            **{f: getattr(args, f) for f in fields},
            lr=args.lr if args.lr is not None else PAPER_LRS[args.model],
        )
    except ValueError as exc:  # no GPU; the rules across fields, e.g. batch norm's two pairs per mini-batch
        raise UsageError(f"train: {exc}") from None
    if args.data_dir is not None:
        if not Path(args.data_dir).is_dir():
            raise UsageError(f"train: --data-dir {args.data_dir} is not a directory")
        try:  # verified now, before anything runs (pair sets already made in this process would hide it)
            load_mnist(args.data_dir)
        except DataError as exc:
            raise UsageError(f"train: {exc}") from None
        os.environ["PYTORCH_DATA_DIR"] = args.data_dir
    try:
        result = train_run(config, device=device.type, threads=args.threads)
    except DataError as exc:
        raise UsageError(f"train: {exc}") from None
    print(
        json.dumps(
            {
                "config": config.to_dict(),
                "device": result["device"],
                "epochs_trained": result["epochs_trained"],
                "metrics": result["metrics"],
                "train_loss": result["curves"]["train_loss"],
            },
            indent=2,
        )
    )
    return 0


def main(argv=None) -> int:
    absolute_path_variables()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "train":
            return cmd_train(args)
        if args.command == "run":
            from .pipeline import runner

            return runner.main(args)
        if args.command == "publish":
            from .pipeline.publishing import publish_profile

            return publish_profile(args.profile)
        if args.command == "verify":
            from .pipeline import verify

            return verify.main(args)
    except UsageError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # always one line
        return 2
    except OSError as exc:  # a place that went bad mid-command (disk full, folder removed): one line, exit 1
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}; finished runs are kept in the store", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted: finished runs are kept in the store; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    return 1
