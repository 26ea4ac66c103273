"""Command line: ``python -m siamese_lib {train,run,bench}``: parses, calls one layer, maps errors to exits.

Usage errors exit with status 2 and one line on stderr naming what is wrong and what is allowed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from .common import UsageError
from .data import DataError, load_mnist
from .experiments.profiles import PAPER_LRS, STAGES
from .models import MODEL_NAMES
from .pipeline import bench, bench_study, runner
from .training import RunConfig, resolve_device, train_run


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


class Switch(argparse.BooleanOptionalAction):
    """``--x`` / ``--no-x``; giving both is a usage error, not 'the last one wins'."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_switches_given", {})
        first = given.setdefault(self.dest, option_string)
        if first != option_string:
            parser.error(f"{first} and {option_string} contradict each other; give one of them")
        super().__call__(parser, namespace, values, option_string)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def nonneg_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def build_parser() -> Parser:
    parser = Parser(prog="python -m siamese_lib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train one run and print its metrics as JSON")
    t.add_argument("--model", required=True, choices=MODEL_NAMES)
    t.add_argument("--weight-sharing", action=Switch, default=True)
    t.add_argument("--aux-loss", action=Switch, default=True)
    t.add_argument("--batch-norm", action=Switch, default=True)
    t.add_argument("--dropout", action=Switch, default=False)
    t.add_argument("--lr", type=positive_float, default=None, help="default: the paper's rate for the model")
    t.add_argument("--epochs", type=positive_int, default=30)
    t.add_argument("--batch-size", type=positive_int, default=100)
    t.add_argument("--seed", type=nonneg_int, default=1)
    t.add_argument("--protocol", choices=("corrected", "original"), default="corrected")
    t.add_argument("--nb-pairs", type=positive_int, default=1000)
    t.add_argument("--data-dir", default=None, help="a torchvision-format MNIST folder (default: offline copy)")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    t.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")

    r = sub.add_parser("run", help="run a profile: notebooks per configuration, then the report")
    r.add_argument("--profile", required=True, help="a name in params/ (paper, quick, smoke) or a .yaml path")
    r.add_argument("--jobs", type=positive_int, default=None,
                   help="local Dask workers (one thread each) and notebooks at once (default: CPU cores)")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    r.add_argument("--only", default=None, help=f"comma-separated stages: {','.join(STAGES)}")
    r.add_argument("--force", action="store_true", help="recompute runs already in the store")
    r.add_argument("--keep-going", action=Switch, default=True,
                   help="after a failed notebook, finish the others (default) or cancel them")
    r.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="a running Dask scheduler, tcp://HOST:8786, to train the runs on (default: "
                        "$SIAMESE_LIB_SCHEDULER, else a local cluster of --jobs workers)")

    b = sub.add_parser("bench", help="time training steps against a plain reference loop")
    b.add_argument("--smoke", action="store_true", help="a few steps only (for tests)")
    b.add_argument("--profile", default=None, help="also time this profile end to end, split by phase")
    b.add_argument("--out", default=None, help="JSON output path (default bench/bench.json)")
    b.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    b.add_argument("--study", nargs="*", choices=bench_study.PARTS, default=None, metavar="PART",
                   help=f"instead: the ablations of docs/performance.md ({', '.join(bench_study.PARTS)}; none: all)")
    b.add_argument("--rounds", type=positive_int, default=4, help="--study: timed rounds per block")
    return parser


def cmd_train(args) -> int:
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(f"train: {exc}") from None
    try:
        config = RunConfig(model=args.model, weight_sharing=args.weight_sharing, aux_loss=args.aux_loss,
                           batch_norm=args.batch_norm, dropout=args.dropout,
                           lr=args.lr if args.lr is not None else PAPER_LRS[args.model], epochs=args.epochs,
                           batch_size=args.batch_size, seed=args.seed, protocol=args.protocol,
                           nb_pairs=args.nb_pairs)
    except ValueError as exc:  # e.g. --nb-pairs above what the MNIST test set holds
        raise UsageError(f"train: {exc}") from None
    if args.data_dir is not None:
        if not Path(args.data_dir).is_dir():
            raise UsageError(f"train: --data-dir {args.data_dir} is not a directory")
        try:  # verified now, before anything runs (pair sets already made in this process would hide it)
            load_mnist(args.data_dir)
        except DataError as exc:
            raise UsageError(f"train: {exc}") from None
        os.environ["PYTORCH_DATA_DIR"] = args.data_dir
    torch.set_num_threads(args.threads)
    try:
        result = train_run(config, device=device.type)
    except DataError as exc:
        raise UsageError(f"train: {exc}") from None
    print(json.dumps({"config": config.to_dict(), "device": result["device"],
                      "epochs_trained": result["epochs_trained"], "metrics": result["metrics"],
                      "train_loss": result["curves"]["train_loss"]}, indent=2))
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "train":
            return cmd_train(args)
        if args.command == "run":
            return runner.main(args)
        if args.command == "bench":
            if args.study is not None:
                return bench_study.main(args)
            return bench.main(args)
    except UsageError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # always one line
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept in the store; rerun the same command to resume", file=sys.stderr)
        return 130
    return 1
