"""The published record as a dataset: each run's place in the plan, the pairs file, and the data dictionary
(in each Parquet field's metadata and in ``docs/data-dictionary.md``; metric columns' words are composed)."""

from __future__ import annotations

import json

import pyarrow as pa

from ..data import eval_indices, eval_set, generate_pair_sets, pair_indices

HEADLINE = (
    "Tables I and II, the LR search and the report's best Table I cell use `test_error` (the comparison "
    "head's); the selection rounds' `digit_prob` rule and their headline use `test_digit_prob_error` (and "
    "`confirm_digit_prob_error` on the confirmation set)."
)
SPLITS = {
    "train": "the training pairs",
    "test": "the test pairs",
    "val": "the validation pairs (held out of training; only with val_pairs > 0)",
    "confirm": "the confirmation set (only with confirm_seeds)",
    "holdout": "the holdout (only with holdout_seed)",
}
MEASURES = {
    "error": "error of the comparison head (P(d1 <= d2) > 0.5 against the target)",
    "digit1_error": "error of the first image's digit class (argmax of the auxiliary classifier)",
    "digit2_error": "error of the second image's digit class",
    "derived_error": "error of comparing the two argmax digits (d1 <= d2)",
    "digit_prob_error": "error of the exact P(d1 <= d2) from the two digit distributions, > 0.5",
    "head_vs_digits_disagreement": "pairs where the head and the argmax-digit comparison disagree (quirk 4)",
}
COLUMNS = {  # name: (unit, meaning)
    "key": ("", "the run's key: a hash of its configuration and device (the store's file name)"),
    "stage": ("", "the profile stages whose notebooks use this run (from the plan; a run may serve several)"),
    "cell": (
        "",
        "per stage, the plan's execution this run serves: a table cell (protocol-model-ws-aux or "
        "protocol-ws-bn-do), an LR-search point (model-lr), a variant (model-variant), a selection "
        "candidate (candidate-NAME, its selection seeds) or a final (final[-NAME]-seedN: one per seed, the "
        "chosen candidate's without its name); same length and order as stage (explode both together)",
    ),
    "model": ("", "architecture: Net, LeNet5, LeNet5_FullyConv, ResNet (the paper's) or VGG"),
    "weight_sharing": ("", "one branch for both images (true) or a branch per image"),
    "aux_loss": ("", "the auxiliary digit-classification loss added to the comparison loss"),
    "batch_norm": ("", "batch normalisation in the branches"),
    "dropout": ("", "dropout in the branches"),
    "lr": ("", "Adam learning rate"),
    "epochs": ("epochs", "epochs asked for (epochs_trained: those run)"),
    "batch_size": ("pairs", "mini-batch size"),
    "seed": ("", "torch seed of the run (initialisation and shuffling); the tables' seeds"),
    "protocol": ("", "corrected (the paper as described) or original (the authors' code, its quirks)"),
    "nb_pairs": ("pairs", "training and test pairs drawn (the course prologue's nb)"),
    "data_seed": ("", "seed of the prologue's pair draw (which images form the pairs)"),
    "aux_weight": ("", "weight of the auxiliary loss"),
    "aux_schedule": ("", "constant or linear_decay of the auxiliary weight over the epochs"),
    "weight_decay": ("", "Adam weight decay"),
    "l1": ("", "L1 penalty on the weights"),
    "augment": ("", "training augmentations: repair, swap, shift, affine, elastic"),
    "val_pairs": ("pairs", "training pairs held out as a validation split"),
    "lr_schedule": ("", "constant or cosine learning rate"),
    "branch_calls": (
        "",
        "with weight sharing: 1 = both images in one call, 2 = one call per image (quirk 6)",
    ),
    "head": ("", "comparison head: linear or conv (quirk 5)"),
    "confirm_seeds": ("", "seeds of the confirmation set (pairs of MNIST test images the test pairs leave)"),
    "holdout_seed": (
        "",
        "seed of the holdout (20,000 pairs of MNIST training images the training pairs leave)",
    ),
    "train_seconds": ("s", "time spent in the training loop"),
    "wall_seconds": ("s", "the run's wall time: data, training and evaluation"),
    "train_loss": ("", "summed training loss of each epoch (one value per epoch)"),
    "head_prob": ("", "per test pair (pairs.parquet, set test, in order): the head's P(d1 <= d2)"),
    "digit_prob": ("", "per test pair: P(d1 <= d2) from the two digit distributions"),
    "digit1_pred": ("", "per test pair: the predicted class of the first digit"),
    "digit2_pred": ("", "per test pair: the predicted class of the second digit"),
    "confirm_head_prob": ("", "per confirmation pair (pairs.parquet, set confirm): the head's P(d1 <= d2)"),
    "confirm_digit_prob": ("", "per confirmation pair: P(d1 <= d2) from the digit distributions"),
    "holdout_head_prob": ("", "per holdout pair (pairs.parquet, set holdout): the head's P(d1 <= d2)"),
    "holdout_digit_prob": ("", "per holdout pair: P(d1 <= d2) from the digit distributions"),
    "val_head_prob": ("", "per validation pair (runs trained since they are kept): the head's P(d1 <= d2)"),
    "val_digit_prob": ("", "per validation pair: P(d1 <= d2) from the digit distributions"),
    "schema_version": ("", "version of the store's record format"),
    "device": ("", "cpu or cuda: where the run was trained"),
    "torch_version": ("", "PyTorch version that trained the run"),
    "code_version": ("", "git commit of the code that trained the run"),
    "python": ("", "Python version"),
    "host": ("", "host name of the machine"),
    "cpu": ("", "CPU model"),
    "threads": ("", "torch threads the run used"),
    "epochs_trained": ("epochs", "epochs run (the original protocol runs 25 without the auxiliary loss)"),
    "machine": ("", "the machine's fingerprint (JSON text)"),
    "created": ("", "when the record was written (ISO 8601, UTC)"),
}
PAIR_COLUMNS = {
    "set": ("", "test (the prologue's test pairs), confirm (the confirmation set) or holdout (the holdout)"),
    "nb_pairs": ("pairs", "the runs' nb_pairs this set belongs to"),
    "data_seed": ("", "the runs' data_seed this set belongs to"),
    "confirm_seeds": ("", "the runs' confirm_seeds (confirm only; empty for test)"),
    "pair": (
        "",
        "position in a run's per-pair lists (head_prob ... for test, confirm_* / holdout_* for the others)",
    ),
    "target": ("", "1 if the first digit is lesser or equal to the second, else 0"),
    "digit1": ("", "the first image's digit class"),
    "digit2": ("", "the second image's digit class"),
    # a column once a record has a holdout; the wording of every column is part of a record's bytes
    "holdout_seed": ("", "the runs' holdout_seed (set holdout, whose MNIST indices are of training images)"),
    "mnist_index1": (
        "",
        "the first image's index among the MNIST test images (training images for set holdout)",
    ),
    "mnist_index2": (
        "",
        "the second image's index among the MNIST test images (training images for set holdout)",
    ),
    "image1": ("grey level 0-255", "the first image, 14 x 14 row-major (test set only)"),
    "image2": ("grey level 0-255", "the second image, 14 x 14 row-major (test set only)"),
}


def describe(name: str, pairs: bool = False) -> tuple[str, str]:
    """(unit, meaning) of a column of the records (or, ``pairs``, of the pairs file)."""
    table = PAIR_COLUMNS if pairs else COLUMNS
    if name in table:
        return table[name]
    split, _, measure = name.partition("_")
    if not pairs and split in SPLITS and measure in MEASURES:
        return "%", f"{MEASURES[measure]} on {SPLITS[split]}"
    raise KeyError(f"column {name!r} has no entry in the data dictionary (pipeline/dataset.py)")


def markdown() -> str:
    """docs/data-dictionary.md: both files' columns, the metric naming and the headline metrics."""

    def rows(names, pairs):
        return [f"| `{n}` | {describe(n, pairs)[0]} | {describe(n, pairs)[1]} |" for n in names]

    metrics = [f"{s}_{m}" for s in SPLITS for m in MEASURES]
    head = "| column | unit | meaning |\n|---|---|---|"
    return "\n".join(
        [
            "# Data dictionary of the published record",
            "",
            "Generated from `siamese_lib/pipeline/dataset.py` (the same words are in each Parquet file's "
            "schema: `pyarrow.parquet.read_schema(path).field(name).metadata`).",
            "",
            "`report/<profile>/records.parquet`: one row per run. A run that serves several stages "
            "(a Table II cell that is a Table I cell) is one row whose `stage` and `cell` lists name each; "
            '`df.explode(["stage", "cell"])` gives one row per (run, stage).',
            "",
            f"Which metric: {HEADLINE}",
            "",
            head,
            *rows([n for n in COLUMNS if n not in ("train_seconds", "wall_seconds", "train_loss")], False),
            *rows(["train_loss", "train_seconds", "wall_seconds"], False),
            *rows(metrics, False),
            "",
            "`report/<profile>/pairs.parquet`: one row per test, confirmation or holdout pair, in the order "
            "of the runs' per-pair lists.",
            "",
            head,
            *rows(PAIR_COLUMNS, True),
            "",
        ]
    )


def placement(keys, plan_text: str | None) -> tuple[list, list]:
    """Per key, the stages and the plan's executions that use it, in plan order (without a plan, none)."""
    where = {k: ([], []) for k in keys}
    for e in json.loads(plan_text)["executions"] if plan_text else []:
        for k in dict.fromkeys(e["runs"]):
            if k in where:
                where[k][0].append(e["stage"])
                where[k][1].append(e["name"])
    return [where[k][0] for k in keys], [where[k][1] for k in keys]


def table_from_columns(columns: dict, meta: dict, pairs: bool = False) -> pa.Table:
    """``columns``: name -> (type, values); each field carries its data-dictionary entry."""
    fields = []
    for n, (t, _) in columns.items():
        unit, meaning = describe(n, pairs)
        fields.append(pa.field(n, t, metadata={"description": meaning, "unit": unit}))
    arrays = {n: pa.array(v, type=t) for n, (t, v) in columns.items()}
    return pa.table(arrays, schema=pa.schema(fields, metadata=meta))


def pairs_table(records, metadata: dict) -> pa.Table:
    """The test pairs and holdouts the records were evaluated on, in the order of their per-pair outputs:
    targets, digits, MNIST indices (and the test pairs' images), from the data's seeds alone."""
    configs = [r["config"] for r in records]
    sets = sorted({("test", c["nb_pairs"], c["data_seed"], ()) for c in configs})
    sets += sorted(
        {("confirm", c["nb_pairs"], c["data_seed"], tuple(c["confirm_seeds"])) for c in configs}
        - {("confirm", nb, ds, ()) for _, nb, ds, _ in sets}
    )
    sets += sorted(
        {
            ("holdout", c["nb_pairs"], c["data_seed"], c["holdout_seed"])
            for c in configs
            if c.get("holdout_seed") is not None
        }
    )
    names = ("set", "nb_pairs", "data_seed", "confirm_seeds", "pair", "target", "digit1", "digit2")
    names += ("holdout_seed",) * any(kind == "holdout" for kind, *_ in sets)  # a column once a run has one
    cols = {n: [] for n in names + ("mnist_index1", "mnist_index2", "image1", "image2")}
    for kind, nb, ds, seeds in sets:
        if kind == "test":
            _, _, _, test_input, target, classes = generate_pair_sets(nb, ds)
            index, images = pair_indices(nb, ds)[1], test_input.reshape(len(target), 2, 196).tolist()
        else:
            _, target, classes = eval_set(kind, nb, ds, seeds)
            index, images = eval_indices(kind, nb, ds, seeds), [None] * len(target)
        n = len(target)
        confirm, holdout = list(seeds) if kind == "confirm" else [], seeds if kind == "holdout" else None
        for name, values in zip(names, ([kind] * n, [nb] * n, [ds] * n, [confirm] * n, range(n))):
            cols[name] += list(values)
        cols["target"] += target.tolist()
        if "holdout_seed" in cols:
            cols["holdout_seed"] += [holdout] * n
        for i in (0, 1):
            cols[f"digit{i + 1}"] += classes[:, i].tolist()
            cols[f"mnist_index{i + 1}"] += index[:, i].tolist()
            cols[f"image{i + 1}"] += [im and im[i] for im in images]
    types = dict.fromkeys(["set"], pa.string()) | dict.fromkeys(["nb_pairs", "data_seed", "pair"], pa.int32())
    types |= {"confirm_seeds": pa.list_(pa.int64())} | dict.fromkeys(names[5:8], pa.int8())
    types["holdout_seed"] = pa.int64()
    types |= dict.fromkeys(["mnist_index1", "mnist_index2"], pa.int32())
    types |= dict.fromkeys(["image1", "image2"], pa.list_(pa.float32()))
    columns = {n: (types[n], v) for n, v in cols.items()}
    return table_from_columns(columns, metadata, pairs=True)
