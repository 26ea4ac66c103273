"""Command line: python -m siamese_lib {train,run,publish,verify}: train one run, run a profile and render its
report, make a profile's published record anew, or retrain a sample of the published record to check it.

Usage errors exit with status 2 and one line on stderr naming what is wrong and what is allowed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from .common import UsageError, absolute_path_variables
from .config import DEVICES, FIELD_TYPES, MODEL_NAMES, PROTOCOLS, RunConfig, Threads, field_rule
from .experiments.profiles import PAPER_LRS, STAGES, ProfileError, load_profile
from .rules import Int, Number, one_line

# Each command imports what it runs (torch, Dask, papermill, pandas) when it runs: --help answers at once.
DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig)}
SWITCHES = {  # train's --x/--no-x flags: RunConfig's field, its help
    "weight_sharing": "one branch for both images",
    "aux_loss": "the auxiliary digit loss",
    "batch_norm": "batch normalisation in the branches",
    "dropout": "dropout in the branches (default: off)",
}
COUNTS = ("epochs", "batch_size", "seed", "nb_pairs")  # train's integer flags, each RunConfig's field


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


class Help(argparse.HelpFormatter):
    """Each option's help ends with its default, unless it names it already or has none."""

    def _get_help_string(self, action):
        text, default = action.help or "", action.default
        if "default" in text or action.required or default in (None, argparse.SUPPRESS) or default is False:
            return text
        return f"{text} (default: {'on' if default is True else default})".strip()


class Switch(argparse.BooleanOptionalAction):
    """``--x`` / ``--no-x``; giving both is a usage error, not 'the last one wins'."""

    def __call__(self, parser, namespace, values, option_string=None):
        first = namespace.__dict__.setdefault("_switches_given", {}).setdefault(self.dest, option_string)
        if first != option_string:
            parser.error(f"{first} and {option_string} contradict each other; give one of them")
        super().__call__(parser, namespace, values, option_string)


def typed(kind, parse=int):
    """An argparse type: the text parsed, then validated by ``kind`` (a typed rule of config.py), so that a
    refusal is the rule's line: what the flag allows, what was given."""
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


positive_int, positive_float = typed(Int(1)), typed(Number(0, above=True), float)


def a_path(text):
    """A file or folder flag: made absolute where the user stands (every subprocess reads the same place)."""
    return os.path.abspath(text)


def profile_value(text):
    """A profile name stays a name; a path (a .yaml file or anything with '/') is made absolute."""
    return a_path(text) if text.endswith((".yaml", ".yml")) or "/" in text else text


def build_parser() -> Parser:
    parser = Parser(prog="python -m siamese_lib", description=" ".join(__doc__.split("\n\n")[0].split()))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name, text):
        description = text[0].upper() + text[1:] + "."
        return sub.add_parser(name, help=text, description=description, formatter_class=Help)

    t = command("train", "train one run (the paper's setting by default) and print its metrics as JSON")
    t.add_argument("--model", required=True, choices=MODEL_NAMES, help="the architecture")
    for name, text in SWITCHES.items():
        t.add_argument(f"--{name.replace('_', '-')}", action=Switch, default=DEFAULTS[name], help=text)
    lr_help = f"default: the paper's rate for the model; lr {field_rule('lr')}"
    t.add_argument("--lr", type=typed(FIELD_TYPES["lr"], float), default=None, help=lr_help)
    for name in COUNTS:
        kind = typed(FIELD_TYPES[name])
        t.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=DEFAULTS[name], help=field_rule(name)
        )
    protocol_help = "the paper as described, or the authors' code"
    t.add_argument("--protocol", choices=PROTOCOLS, default=DEFAULTS["protocol"], help=protocol_help)
    data_help = "a torchvision-format MNIST folder (default: offline copy)"
    t.add_argument("--data-dir", type=a_path, default=None, help=data_help)
    t.add_argument("--device", choices=DEVICES, default="auto", help="auto: cuda when there is one")
    t.add_argument("--threads", type=typed(Threads), default=1, help="torch threads (default 1)")

    r = command(
        "run",
        "run a profile: train the runs its store lacks, execute one notebook per configuration, then render "
        "report/PROFILE/report.html and report.pdf",
    )
    profile_help = "a name in params/ (paper, quick, smoke) or a .yaml path"
    r.add_argument("--profile", required=True, type=profile_value, help=profile_help)
    jobs_help = "Dask workers (one thread each) and notebooks at once (default: the cores, +1 from a record)"
    r.add_argument("--jobs", type=positive_int, default=None, help=jobs_help)
    r.add_argument("--device", choices=DEVICES, default="auto", help="auto: cuda when there is one")
    r.add_argument("--only", default=None, help=f"comma-separated stages: {','.join(STAGES)}")
    force_help = (
        "retrain runs already in the store (rerun after an interruption, it goes on where it stopped)"
    )
    r.add_argument("--force", action="store_true", help=force_help)
    keep_help = "after a failed notebook, finish the others (default) or cancel them"
    r.add_argument("--keep-going", action=Switch, default=True, help=keep_help)
    dirty_help = (
        "profile paper: train from uncommitted code anyway (refused by default); those runs are marked "
        "+dirty in the report"
    )
    r.add_argument("--allow-dirty", action="store_true", help=dirty_help)
    seed_help = (
        "first seed the store from the published record, report/PROFILE/records.parquet (checked; its "
        "runs are not retrained)"
    )
    r.add_argument("--from-record", action="store_true", help=seed_help)
    where = (
        "a running Dask scheduler, tcp://HOST:8786, to train the runs on (default: "
        "$SIAMESE_LIB_SCHEDULER, else a local cluster of --jobs workers)"
    )
    r.add_argument("--scheduler", metavar="ADDRESS", help=where)
    stall_help = (
        "a worker that holds a run this long without a result is removed (its runs retried elsewhere; "
        "a run stalled twice fails); default: 4 x what the slowest run so far took, at least 60 s (before "
        "any came back: 20 x its expected time on one core + 300 s)"
    )
    r.add_argument("--run-timeout", type=positive_float, metavar="SECONDS", help=stall_help)

    pb = command(
        "publish",
        "make report/PROFILE/records.parquet anew from runs/PROFILE/store: the profile's planned runs only, "
        "each checked (what run --force does after training)",
    )
    pb.add_argument("--profile", required=True, type=profile_value, help="a name in params/ or a .yaml path")

    v = command(
        "verify",
        "retrain a sample of the published record's runs here and say, per run and per cell, whether they "
        "agree",
    )
    v.add_argument("--profile", default="paper", help="whose record, report/PROFILE/runs.csv (default paper)")
    v.add_argument("--minutes", type=positive_float, default=10.0, help="time budget (default 10)")
    v.add_argument("--full", action="store_true", help="every committed run, no time budget")
    v.add_argument("--jobs", type=positive_int, default=None, help="processes at once (default 2)")
    seed_help = "the sample's seed, to repeat one (default: a new one, printed)"
    v.add_argument("--seed", type=int, default=None, help=seed_help)
    return parser


def cmd_train(args) -> int:
    from .data import DataError, load_mnist
    from .training import resolve_device, train_run

    fields = ("model", *SWITCHES, *COUNTS, "protocol")
    try:
        device = resolve_device(args.device)
        lr = args.lr if args.lr is not None else PAPER_LRS[args.model]
        config = RunConfig(**{f: getattr(args, f) for f in fields}, lr=lr)
    except ValueError as exc:  # no GPU; the rules across fields, e.g. batch norm's two pairs per mini-batch
        raise UsageError(f"train: {exc}") from None
    try:
        if args.data_dir is not None:
            if not Path(args.data_dir).is_dir():
                raise UsageError(f"train: --data-dir {args.data_dir} is not a directory")
            load_mnist(args.data_dir)  # verified before anything runs (pair sets made already would hide it)
            os.environ["PYTORCH_DATA_DIR"] = args.data_dir
        result = train_run(config, device=device.type, threads=args.threads)
    except DataError as exc:
        raise UsageError(f"train: {exc}") from None
    shown = {"config": config.to_dict(), **{k: result[k] for k in ("device", "epochs_trained", "metrics")}}
    print(json.dumps({**shown, "train_loss": result["curves"]["train_loss"]}, indent=2))
    return 0


def main(argv=None) -> int:
    absolute_path_variables()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "train":
            return cmd_train(args)
        try:  # run, publish and verify: the profile first
            profile = load_profile(args.profile)
        except ProfileError as exc:
            raise UsageError(str(exc)) from None
        if args.command == "run":
            from .pipeline import runner

            return runner.main(args, profile)
        if args.command == "publish":
            from .pipeline.publishing import publish_profile

            return publish_profile(profile)
        from .pipeline import verify

        return verify.main(args, profile)
    except UsageError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # always one line
        return 2
    except OSError as exc:  # a place that went bad mid-command (disk full, folder removed): one line, exit 1
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}; finished runs are kept in the store", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        kept = "finished runs are kept in the store; rerun the same command to resume"
        print(f"interrupted: {kept}", file=sys.stderr)
        return 130
