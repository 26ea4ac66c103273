"""The beyond-the-paper stage: variants, augmentation, the fairness rule and the analysis helpers."""

import math
import re

import pandas as pd
import pytest
import torch
from conftest import ensure_one

from siamese_lib.analysis import beyond_paper as beyond
from siamese_lib.augment import augment_batch, shift_images
from siamese_lib.config import RunConfig
from siamese_lib.experiments import variants
from siamese_lib.presentation import beyond_section as report_html
from siamese_lib.presentation import figures
from siamese_lib.training import Split, aux_weight_at

EXTENSION_FIELDS = (
    "lr",
    "aux_weight",
    "aux_schedule",
    "weight_decay",
    "l1",
    "augment",
    "val_pairs",
    "epochs",
    "lr_schedule",
    "model",
)


def test_variants_are_valid_and_distinct():
    assert variants.BASELINE in variants.VARIANTS
    weights = set()
    signatures = set()
    for name, spec in variants.VARIANTS.items():
        assert re.fullmatch(r"[a-z0-9_]+", name), name
        assert spec["description"]
        assert set(spec) <= {"description", "overrides", "models"} and "overrides" in spec
        assert set(spec["overrides"]) <= set(RunConfig.__dataclass_fields__), name
        model = spec.get("models", ("LeNet5_FullyConv",))[0]
        (config,) = variants.variant_configs(name, model, 5e-2, [1], 1000, 0, 100, 30)  # validates
        signatures.add(tuple(getattr(config, f) for f in EXTENSION_FIELDS))
        if spec["overrides"].keys() <= {"aux_weight"}:
            weights.add(config.aux_weight)
    assert len(signatures) == len(variants.VARIANTS), "two variants train the very same runs"
    assert {0.0, 1.0} <= weights
    assert any(s["overrides"].get("aux_schedule") == "linear_decay" for s in variants.VARIANTS.values())
    for field in ("weight_decay", "l1"):
        assert (
            len({s["overrides"][field] for s in variants.VARIANTS.values() if set(s["overrides"]) == {field}})
            >= 2
        )
    augments = {tuple(s["overrides"].get("augment", ())) for s in variants.VARIANTS.values()}
    assert {("repair",), ("swap",), ("shift",), variants.AUG_ALL} <= augments


def test_variant_configs():
    configs = variants.variant_configs("aux_w3", "LeNet5_FullyConv", 5e-2, [1, 2, 3], 1000, 0, 100, 30)
    assert [c.seed for c in configs] == [1, 2, 3]
    c = configs[0]
    assert (c.model, c.lr, c.aux_weight, c.epochs, c.protocol) == (
        "LeNet5_FullyConv",
        5e-2,
        3.0,
        30,
        "corrected",
    )
    assert c.val_pairs == 200 and c.aux_loss and c.weight_sharing and c.batch_norm and not c.dropout
    base = variants.variant_configs("baseline", "LeNet5", 5e-3, [4], 1000, 0, 100, 30)[0]
    paper = RunConfig(model="LeNet5", lr=5e-3, seed=4, val_pairs=200)
    assert base == paper  # the paper's setting, plus only the validation split
    small = variants.variant_configs("aug_all", "LeNet5", 5e-3, [1], 10, 3, 5, 2)[0]
    assert (small.nb_pairs, small.data_seed, small.batch_size, small.val_pairs) == (10, 3, 5, 2)
    best = variants.variant_configs("best", "LeNet5", 5e-3, [1], 1000, 0, 100, 30)[0]
    # the recipe's own rate, schedule and length replace the stage's
    assert (best.lr, best.augment, best.lr_schedule, best.epochs) == (
        2e-3,
        ("repair", "swap", "affine"),
        "cosine",
        100,
    )
    with pytest.raises(ValueError, match="LeNet5 only"):
        variants.variant_configs("best", "LeNet5_FullyConv", 5e-2, [1], 1000, 0, 100, 30)
    with pytest.raises(ValueError, match="unknown variant"):
        variants.variant_configs("nope", "LeNet5", 5e-3, [1], 1000, 0, 100, 30)


def test_variants_for_one_model_are_skipped_for_the_others(tmp_path):
    from siamese_lib.experiments.planning import expand
    from siamese_lib.experiments.profiles import load_profile

    path = tmp_path / "ext.yaml"
    path.write_text(
        "nb_pairs: 20\nstages:\n  beyond_paper:\n    models: [Net, LeNet5]\n"
        "    variants: [baseline, best_no_swap]\n    seeds: [1]\n    epochs: 1\n"
    )
    execs = expand(load_profile(str(path)), tmp_path / "store", "cpu", stages=("beyond_paper",))
    # a variant defined for LeNet5 only is skipped for the other models
    assert [e.name for e in execs] == ["Net-baseline", "LeNet5-baseline", "LeNet5-best_no_swap"]


def test_profiles_expand_the_stage(tmp_path):
    from siamese_lib.experiments.planning import configs_for, expand
    from siamese_lib.experiments.profiles import load_profile

    path = tmp_path / "ext.yaml"
    path.write_text(
        "nb_pairs: 20\nstages:\n  beyond_paper:\n    models: [LeNet5]\n"
        "    variants: [baseline, aug_all]\n    seeds: [1, 2]\n    epochs: 1\n"
    )
    execs = expand(load_profile(str(path)), tmp_path / "store", "cpu", stages=("beyond_paper",))
    assert [e.name for e in execs] == ["LeNet5-baseline", "LeNet5-aug_all"]
    configs = configs_for("beyond_paper", execs[1].parameters)
    assert [c.augment for c in configs] == [variants.AUG_ALL] * 2 and configs[0].val_pairs == 4


def _pool(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    classes = torch.randint(0, 10, (n, 2), generator=g)
    # each image carries its class in every pixel, so the pairing can be checked after augmentation
    x = classes[:, :, None, None].float().expand(n, 2, 14, 14).clone()
    target = (classes[:, 0] <= classes[:, 1]).long()
    return Split(x, target, classes)


@pytest.mark.parametrize("augment", [("repair",), ("swap",), ("repair", "swap"), variants.AUG_ALL])
def test_augmentation_keeps_targets_consistent(augment):
    torch.manual_seed(0)
    pool = _pool()
    config = RunConfig(augment=augment, nb_pairs=100, val_pairs=10)
    x, target, classes = augment_batch(config, pool.input[:20], pool.target[:20], pool.classes[:20], pool)
    assert x.shape == (20, 2, 14, 14)
    assert torch.equal(target, (classes[:, 0] <= classes[:, 1]).long())
    if "shift" not in augment:  # every image still shows its class
        assert torch.equal(x[:, :, 7, 7].long(), classes)
    if "repair" in augment:  # only digits of the pool, and new pairs
        pool_classes = set(pool.classes.reshape(-1).tolist())
        assert set(classes.reshape(-1).tolist()) <= pool_classes
        assert not torch.equal(classes, pool.classes[:20])


def test_swap_exchanges_images_and_classes():
    torch.manual_seed(1)
    pool = _pool(200)
    x, target, classes = augment_batch(
        RunConfig(augment=("swap",)), pool.input, pool.target, pool.classes, None
    )
    swapped = (classes != pool.classes).any(1)
    assert 0 < swapped.sum() < 200
    assert torch.equal(classes[swapped], pool.classes[swapped].flip(1))
    assert torch.equal(x[swapped], pool.input[swapped].flip(1))


def test_shift_moves_each_image_by_at_most_one_pixel():
    torch.manual_seed(0)
    x = torch.zeros(64, 2, 14, 14)
    x[:, :, 7, 7] = 1.0
    y = shift_images(x)
    assert torch.equal(y.sum((2, 3)), x.sum((2, 3)))  # the single pixel stays inside, not wrapped
    pos = y.flatten(2).argmax(2)
    dr, dc = pos // 14 - 7, pos % 14 - 7
    assert dr.abs().max() <= 1 and dc.abs().max() <= 1
    assert len(set(zip(dr.flatten().tolist(), dc.flatten().tolist()))) == 9  # all shifts occur
    assert (dr[:, 0] != dr[:, 1]).any()  # the two images of a pair move independently


def test_aux_weight_schedule():
    c = RunConfig(aux_weight=2.0, aux_schedule="linear_decay", epochs=5)
    assert [aux_weight_at(c, e) for e in range(5)] == [2.0, 1.5, 1.0, 0.5, 0.0]
    assert aux_weight_at(RunConfig(aux_weight=0.3), 7) == 0.3
    assert aux_weight_at(RunConfig(aux_loss=False), 0) == 0.0


def test_validation_split_is_held_out(tmp_path, monkeypatch):
    from siamese_lib import training

    n = 30
    tr = torch.arange(n * 2 * 14 * 14, dtype=torch.float32).view(n, 2, 14, 14)
    classes = torch.arange(n * 2).view(n, 2) % 10
    target = (classes[:, 0] <= classes[:, 1]).long()
    monkeypatch.setattr(
        training, "pair_sets", lambda nb, seed: (tr, target, classes, tr[:5], target[:5], classes[:5])
    )
    torch.manual_seed(3)
    train, val, test = training.prepare_data(RunConfig(nb_pairs=n, val_pairs=10), torch.device("cpu"))[:3]
    assert (len(train), len(val), len(test)) == (20, 10, 5)
    first_pixels = [set(s.input[:, 0, 0, 0].tolist()) for s in (train, val)]  # unique per pair
    assert len(first_pixels[0]) == 20 and not first_pixels[0] & first_pixels[1]
    assert abs(float(train.input.mean())) < 1e-4 and abs(float(train.input.std()) - 1) < 1e-4
    torch.manual_seed(3)
    train0, val0 = training.prepare_data(RunConfig(nb_pairs=n), torch.device("cpu"))[:2]
    assert val0 is None and len(train0) == n
    # the same fold shuffle with and without validation: validation is its first val_pairs
    assert torch.equal(train0.classes[10:], train.classes)


def test_the_choice_refuses_runs_without_validation_metrics():
    df = _hand_frame().drop(columns=["val_error", "val_derived_error", "val_digit_prob_error"])
    with pytest.raises(ValueError, match="no candidate"):
        beyond.chosen(df)


def test_the_choice_uses_validation_then_reports_test():
    df = _hand_frame()
    best = beyond.chosen(df)
    # variant b is worse on test but better on validation: validation decides
    assert (best["model"], best["variant"], best["metric"]) == ("M", "b", "val_digit_prob_error")
    assert best["val_mean"] == pytest.approx(1.0)
    assert best["test_metric"] == "test_digit_prob_error"
    assert best["test_mean"] == pytest.approx(5.0) and best["n"] == 2


def _hand_frame():
    """Two variants x two seeds on four test pairs, classes (1,2) (3,3) (5,4) (9,0): targets 1 1 0 0."""
    rows = []
    spec = {  # variant -> per seed: head_prob, digit_prob, digit1_pred, digit2_pred, metrics
        "a": [
            ([0.9, 0.6, 0.4, 0.2], [0.8, 0.7, 0.3, 0.1], [1, 3, 5, 9], [2, 3, 4, 0]),
            ([0.7, 0.3, 0.6, 0.1], [0.9, 0.4, 0.2, 0.3], [1, 4, 5, 9], [2, 3, 4, 0]),
        ],
        "b": [
            ([0.2, 0.9, 0.1, 0.1], [0.4, 0.8, 0.1, 0.6], [1, 3, 3, 9], [0, 3, 4, 0]),
            ([0.4, 0.8, 0.2, 0.3], [0.4, 0.9, 0.1, 0.7], [1, 3, 5, 9], [2, 3, 4, 9]),
        ],
    }
    val = {"a": (3.0, 2.0, 2.0), "b": (4.0, 3.0, 1.0)}  # head, derived, digit_prob
    test = {"a": 2.0, "b": 5.0}
    for variant, seeds in spec.items():
        for seed, (head, prob, d1, d2) in enumerate(seeds, 1):
            rows.append(
                {
                    "model": "M",
                    "variant": variant,
                    "seed": seed,
                    "nb_pairs": 4,
                    "data_seed": 0,
                    "head_prob": head,
                    "digit_prob": prob,
                    "digit1_pred": d1,
                    "digit2_pred": d2,
                    "val_error": val[variant][0],
                    "val_derived_error": val[variant][1],
                    "val_digit_prob_error": val[variant][2],
                    "test_error": test[variant],
                    "test_derived_error": test[variant],
                    "test_digit_prob_error": test[variant],
                }
            )
    return pd.DataFrame(rows)


HAND_TRUTH = ([1, 1, 0, 0], [[1, 2], [3, 3], [5, 4], [9, 0]])


def test_ensemble_errors_on_hand_made_input():
    out = beyond.ensemble_errors(_hand_frame(), truth=HAND_TRUTH).set_index("variant")
    # a: mean head 0.8 0.45 0.5 0.15 -> 1 0 0 0 (0.5 is not > 0.5): one error of 4
    assert out.loc["a", "head_error"] == pytest.approx(25.0)
    # a: mean digit prob 0.85 0.55 0.25 0.2 -> 1 1 0 0: no error
    assert out.loc["a", "digit_prob_error"] == pytest.approx(0.0)
    # b: mean head 0.3 0.85 0.15 0.2 -> 0 1 0 0: one error; digit prob 0.4 0.85 0.1 0.65 -> two errors
    assert out.loc["b", "head_error"] == pytest.approx(25.0)
    assert out.loc["b", "digit_prob_error"] == pytest.approx(50.0)
    # b: argmax votes: seed 1 (1<=0 no, 3<=3, 3<=4, 9<=0 no), seed 2 (1<=2, 3<=3, 5<=4 no, 9<=9)
    # shares 0.5 1 0.5 0.5 -> 0 1 0 0: one error (pair 1)
    assert out.loc["b", "digits_vote_error"] == pytest.approx(25.0)
    assert out.loc["a", "head_se"] == pytest.approx(100 * math.sqrt(0.25 * 0.75 / 4))
    assert (out["n_seeds"] == 2).all()


def test_flip_confusion_counts_only_flipping_digit_errors():
    counts = beyond.flip_confusion(_hand_frame(), "M", "b", truth=HAND_TRUTH)
    assert counts.shape == (10, 10)
    # seed 1: image-2 of pair 1 (2 read as 0) flips 1<=2; pair 3 (5 read as 3) flips 5<=4;
    # seed 2: image-2 of pair 4 (0 read as 9) flips 9<=0. Nothing else is wrong.
    expected = {(2, 0): 1, (5, 3): 1, (0, 9): 1}
    assert {
        (i, j): int(counts.iloc[i, j]) for i in range(10) for j in range(10) if counts.iloc[i, j]
    } == expected
    a = beyond.flip_confusion(_hand_frame(), "M", "a", truth=HAND_TRUTH)
    # seed 2 of a reads 3 as 4 in pair 2 (3 <= 3 becomes 4 <= 3): a flip
    assert int(a.values.sum()) == 1 and int(a.iloc[3, 4]) == 1
    with pytest.raises(ValueError, match="no runs"):
        beyond.flip_confusion(_hand_frame(), "M", "zzz", truth=HAND_TRUTH)


def test_table3_and_rules_table():
    df = pd.DataFrame(
        {
            "model": ["M"] * 6,
            "variant": ["baseline"] * 3 + ["aux_w3"] * 3,
            "test_error": [4.0, 5.0, 6.0, 2.0, 2.5, 3.0],
            "test_derived_error": [3.0] * 6,
            "test_digit_prob_error": [1.0, 2.0, 3.0, 1.0, 1.0, 1.0],
        }
    )
    t = beyond.table3(df).set_index("variant")
    assert list(t.index) == ["baseline", "aux_w3"]  # VARIANTS order
    assert t.loc["aux_w3", "mean"] == pytest.approx(2.5) and t.loc["aux_w3", "std"] == pytest.approx(0.5)
    assert t.loc["aux_w3", "n"] == 3
    from scipy.stats import ttest_ind_from_stats

    p = ttest_ind_from_stats(2.5, 0.5, 3, 3.629, 0.748, 10, equal_var=False).pvalue
    assert t.loc["aux_w3", "p_vs_paper"] == pytest.approx(p)
    assert t.loc["aux_w3", "vs_baseline"] == pytest.approx(-2.5)
    assert t.loc["aux_w3", "p_vs_baseline"] == pytest.approx(
        ttest_ind_from_stats(2.5, 0.5, 3, 5.0, 1.0, 3, equal_var=False).pvalue
    )
    assert math.isnan(t.loc["baseline", "p_vs_baseline"])
    r = beyond.rules_table(df).set_index("variant")
    assert r.loc["baseline", "digit_prob_mean"] == pytest.approx(2.0)
    assert r.loc["aux_w3", "digits_std"] == pytest.approx(0.0)


def test_aux_weight_figure():
    rows = []
    for variant, w, sched in (
        ("baseline", 1.0, "constant"),
        ("aux_w0", 0.0, "constant"),
        ("aux_w3", 3.0, "constant"),
        ("aux_decay", 1.0, "linear_decay"),
        ("aug_all", 1.0, "constant"),
    ):
        for seed in (1, 2):
            rows.append(
                {
                    "model": "M",
                    "variant": variant,
                    "aux_weight": w,
                    "aux_schedule": sched,
                    "epochs": 30,
                    "weight_decay": 0.0,
                    "l1": 0.0,
                    "augment": "repair,swap,shift" if variant == "aug_all" else "",
                    "test_error": w + seed,
                    "test_digit_prob_error": 2 * w + seed,
                }
            )
    frame = beyond.aux_weight_frame(pd.DataFrame(rows))
    assert sorted(zip(frame["aux_weight"], frame["schedule"])) == [
        (0.0, "constant"),
        (1.0, "constant"),
        (1.0, "linear_decay"),
        (3.0, "constant"),
    ]
    assert frame.set_index(["aux_weight", "schedule"]).loc[(3.0, "constant"), "test_error_mean"] == 4.5
    fig = figures.aux_weight_figure(pd.DataFrame(rows))
    assert fig.axes and fig.axes[0].get_xlabel().startswith("auxiliary weight")


def _tiny_profile(tmp_path):
    path = tmp_path / "ext.yaml"
    path.write_text(
        "nb_pairs: 20\nstages:\n  beyond_paper:\n    models: [LeNet5]\n"
        "    variants: [baseline, aux_w3, aug_all]\n    seeds: [1, 2]\n    epochs: 1\n"
    )
    return path


@pytest.mark.slow  # trains / starts subprocesses: seconds
def test_stage_end_to_end_through_the_store(tmp_path):
    """Tiny runs into a store, read back per variant, and every analysis helper on real records."""
    from siamese_lib.experiments.planning import expand
    from siamese_lib.experiments.profiles import load_profile

    profile, store = load_profile(str(_tiny_profile(tmp_path))), tmp_path / "store"
    with pytest.raises(LookupError, match="6 beyond-the-paper runs are not in"):
        beyond.load_beyond_paper(expand(profile, str(store)), store)
    for ex in expand(profile, store, "cpu", stages=("beyond_paper",)):
        for config in ex.configs():
            ensure_one(config, store)
    df = beyond.load_beyond_paper(expand(profile, str(store)), store)
    assert sorted(df.groupby("variant").size().items()) == [("aug_all", 2), ("aux_w3", 2), ("baseline", 2)]
    assert len(df["head_prob"].iloc[0]) == 20 and (df["val_pairs"] == 4).all()
    t3 = beyond.table3(df)
    assert list(t3["variant"]) == ["baseline", "aux_w3", "aug_all"] and (t3["n"] == 2).all()
    ens = beyond.ensemble_errors(df)
    target, classes = beyond.test_truth(20, 0)
    assert len(target) == 20 and ens["head_error"].between(0, 100).all()
    # the ensemble of one run is that run: its error equals the run's own test error
    one = beyond.ensemble_errors(df.iloc[:1])
    assert one["head_error"].iloc[0] == pytest.approx(df["test_error"].iloc[0])
    assert one["digit_prob_error"].iloc[0] == pytest.approx(df["test_digit_prob_error"].iloc[0])
    assert one["digits_vote_error"].iloc[0] == pytest.approx(df["test_derived_error"].iloc[0])
    best = beyond.chosen(df)
    assert best["variant"] in ("baseline", "aux_w3", "aug_all") and best["test_metric"].startswith("test_")
    summary = beyond.best_summary(df)
    assert (summary["model"], summary["variant"], summary["metric"]) == (
        best["model"],
        best["variant"],
        best["metric"],
    )
    assert "validation" in summary["text"] and 0 <= summary["ensemble_error"] <= 100
    html = report_html.table3_html(df)
    assert html.count("<tr>") == 1 + 3 and "TABLE S5" in html  # the header and one row per (model, variant)
    counts = beyond.flip_confusion(df, "LeNet5", "aug_all")
    assert counts.values.sum() <= 2 * 2 * 20 and all(counts.values[i, i] == 0 for i in range(10))
    assert figures.aux_weight_figure(df).axes
    assert figures.plot_confusion(counts, "t").axes


def test_notebook_parameters_match_the_runner(tmp_path):
    """The parameters cell names exactly what expand() passes, plus threads, force and scheduler."""
    import ast

    import nbformat

    from siamese_lib.common import NOTEBOOKS_DIR
    from siamese_lib.experiments.planning import expand
    from siamese_lib.experiments.profiles import load_profile

    nb = nbformat.read(NOTEBOOKS_DIR / "beyond_paper.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    names = {
        node.target.id for node in ast.parse(cell.source).body if isinstance(node, ast.AnnAssign)
    }  # typed
    (first, *_) = expand(
        load_profile(str(_tiny_profile(tmp_path))), tmp_path / "store", "cpu", stages=("beyond_paper",)
    )
    assert names == set(first.parameters) | {"threads", "force", "scheduler"}


def test_best_paragraph_gives_the_refit_as_post_hoc_and_the_ablation():
    """The chosen configuration on validation, its refit's number (post hoc, never bolder) and the ablation."""
    import pandas as pd

    rows = []
    for variant, val, test in (("best", 1.0, 1.6), ("best_no_affine", 2.0, 2.4), ("best_refit", None, 1.4)):
        for seed in (1, 2, 3):
            row = {
                "model": "LeNet5",
                "variant": variant,
                "seed": seed,
                "nb_pairs": 1000,
                "test_error": test + 1,
                "test_derived_error": test,
                "test_digit_prob_error": test + seed / 10,
            }
            if val is not None:
                row.update(val_error=val + 1, val_derived_error=val + 0.5, val_digit_prob_error=val)
            rows.append(row)
    df = pd.DataFrame(rows)
    summary = {**beyond.chosen(df), "text": "Chosen: `best`."}
    assert (summary["variant"], summary["metric"]) == ("best", "val_digit_prob_error")  # the refit has no val
    html = report_html.best_html(df, summary)
    assert "<code>best</code>" in html and "<code>best_refit</code>" in html
    assert (
        "1.60 ± 0.10 %" in html and "<i>Post hoc</i>" in html and "<b>" not in html and "target" not in html
    )
    assert "TABLE S7" in html and "best_no_affine" in html and "best_refit</code></td>" not in html


def test_findings_list_only_significant_differences_with_their_sign():
    import pandas as pd

    rows = [
        {
            "model": "LeNet5",
            "variant": v,
            "seed": s,
            "test_error": e + s / 10,
            "test_digit_prob_error": 2.0 + s / 10,
        }
        for v, e in (("baseline", 5.0), ("aux_w3", 2.0), ("l1_1e_5", 5.05))
        for s in (1, 2, 3)
    ]
    html = report_html.findings_html(pd.DataFrame(rows))
    head, prob = html.split("</li>")[:2]
    assert "lower error with <code>aux_w3</code> (-3.00)" in head and "l1_1e_5" not in head
    assert "for the other 1." in head and "lower error with none" in prob and "for the other 2." in prob


def test_effects_are_those_that_survive_benjamini_hochberg():
    import pandas as pd

    # five variants: one clear effect, one at raw p just under 0.05 that the correction over 10 tests removes
    rows = []
    for v, e in (
        ("baseline", 5.0),
        ("aux_w3", 2.0),
        ("aux_w0.5", 4.75),
        ("l1_1e_5", 5.0),
        ("l2_1e_4", 5.0),
        ("aux_w0", 5.0),
    ):
        for s, jitter in ((1, -0.1), (2, 0.0), (3, 0.1)):
            rows.append(
                {
                    "model": "LeNet5",
                    "variant": v,
                    "seed": s,
                    "test_error": e + jitter,
                    "test_digit_prob_error": 2.0 + jitter,
                }
            )
    t = beyond.tested_against_baseline(pd.DataFrame(rows)).set_index(["metric", "variant"])
    head = t.loc["test_error"]
    assert head.loc["aux_w0.5", "p_vs_baseline"] < 0.05 and not head.loc["aux_w0.5", "effect"]
    assert (
        head.loc["aux_w3", "effect"]
        and head.loc["aux_w3", "q_vs_baseline"] >= head.loc["aux_w3", "p_vs_baseline"]
    )
