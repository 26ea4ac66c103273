"""One validation for a run configuration (issue 15, class 5) and profiles that expand (class 3).

The profile, the notebooks' parameters and the train command refuse the same values with the same words
(the typed fields of config.py); what passes trains without crashing; loading a profile takes time linear in its text.
"""

import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siamese_lib import cli, rules
from siamese_lib.config import RunConfig, field_rule
from siamese_lib.experiments import profiles
from siamese_lib.experiments.parameters import ParameterError, check_parameters
from siamese_lib.experiments.profiles import ProfileError, load_profile

# field -> (profile key holding it, train flag, notebook parameter, bad values)
SHARED = {
    "epochs": ("stages.table1.epochs", "--epochs", "epochs", [0, -3, 10001, 2.5]),
    "seed": ("stages.table1.seeds[0]", "--seed", "seeds", [-1, 2**32, 2**64]),
    "nb_pairs": ("nb_pairs", "--nb-pairs", "nb_pairs", [0, 5001]),
    "batch_size": ("batch_size", "--batch-size", "batch_size", [0, 5001]),
    "lr": ("stages.lr_search.lrs[0]", "--lr", "lr", [0, -1, 1.5, float("inf"), float("nan")]),
}


def _profile_text(key, value):
    doc = {
        "nb_pairs": 100,
        "batch_size": 50,
        "stages": {
            "lr_search": {"models": ["LeNet5"], "lrs": [0.005], "seeds": [1], "epochs": 2},
            "table1": {
                "models": ["LeNet5"],
                "weight_sharing": [True],
                "aux_loss": [True],
                "seeds": [1, 2],
                "epochs": 2,
            },
        },
    }
    target, *path = key.replace("[0]", "").split(".")
    if not path:
        doc[target] = value
    else:
        leaf = doc[target][path[0]]
        leaf[path[1]] = [value] if key.endswith("[0]") else value
    return yaml.safe_dump(doc)


def _notebook_values(**changes):
    values = dict(
        model="LeNet5",
        weight_sharing=True,
        aux_loss=True,
        lr=None,
        protocol="corrected",
        seeds=[1, 2],
        epochs=2,
        nb_pairs=100,
        data_seed=0,
        batch_size=50,
        device="cpu",
        store_dir="/tmp",
        threads=1,
        force=False,
        scheduler=None,
    )
    return {**values, **changes}


@pytest.mark.parametrize("field", list(SHARED))
def test_profile_notebook_and_train_refuse_the_same_values_with_the_same_words(
    field, tmp_path, capsys, monkeypatch
):
    key, flag, parameter, bad_values = SHARED[field]
    rule = field_rule(field)
    monkeypatch.chdir(tmp_path)
    for value in bad_values:
        path = tmp_path / "p.yaml"
        path.write_text(_profile_text(key, value))
        with pytest.raises(ProfileError) as info:
            load_profile(str(path))
        assert f"key '{key}'" in str(info.value) and rule in str(info.value), str(info.value)
        notebook_value = [value] if parameter == "seeds" else value
        with pytest.raises(ParameterError) as info:
            check_parameters("table1", _notebook_values(**{parameter: notebook_value}))
        assert f"parameter {parameter}" in str(info.value) and rule in str(info.value), str(info.value)
        with pytest.raises(ValueError, match=rule.replace(".", r"\.").replace("(", r"\(")):
            RunConfig(**{field: value})
        assert cli.main(["train", "--model", "Net", flag, str(value)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and flag in err and rule in err, err


def test_batch_norm_with_a_mini_batch_of_one_pair_is_refused_everywhere(tmp_path, capsys, monkeypatch):
    """LeNet5_FullyConv crashed mid-run ('Expected more than 1 value per channel') on such a batch."""
    monkeypatch.chdir(tmp_path)
    words = "leaves a mini-batch of 1 pair"
    with pytest.raises(ValueError, match=words):
        RunConfig(model="LeNet5_FullyConv", nb_pairs=101, batch_size=50)
    RunConfig(model="LeNet5_FullyConv", nb_pairs=101, batch_size=50, batch_norm=False)  # no batch norm: fine
    path = tmp_path / "p.yaml"
    path.write_text(_profile_text("nb_pairs", 101))
    with pytest.raises(ProfileError, match=words):
        load_profile(str(path))
    with pytest.raises(ParameterError, match=words):
        check_parameters("table1", _notebook_values(nb_pairs=101))
    assert cli.main(["train", "--model", "Net", "--nb-pairs", "101", "--batch-size", "50"]) == 2
    assert words in capsys.readouterr().err
    # the original protocol evaluates test batches in training mode too
    with pytest.raises(ValueError, match="test split"):
        RunConfig(protocol="original", nb_pairs=201, batch_size=100, val_pairs=100)


@pytest.mark.parametrize(
    "change,words",
    [
        (dict(model="LeNet6"), "parameter model: must be one of"),
        (dict(seeds=3), "parameter seeds: must be a non-empty list"),
        (dict(seeds=[1, 1]), "must not repeat"),
        (dict(device="gpu"), "parameter device: must be one of auto, cpu, cuda"),
        (dict(threads=0), "parameter threads: must be an integer"),
        (dict(force="yes"), "parameter force: must be true, false or a time stamp"),
        (dict(protocol="authors"), "parameter protocol: must be one of corrected, original"),
        (dict(weight_sharing="False"), "parameter weight_sharing: must be true or false"),
        (dict(store_dir="/proc/version/store"), "store_dir /proc/version/store cannot be"),
    ],
)
def test_a_bad_notebook_parameter_is_one_line_naming_it(change, words):
    with pytest.raises(ParameterError) as info:
        check_parameters("table1", _notebook_values(**change))
    message = str(info.value)
    assert words in message and "\n" not in message, message
    assert info.value._render_traceback_() == [f"ParameterError: {message}"]  # IPython shows this line only


def test_notebook_parameters_fill_in_the_paper_rate_and_an_absolute_store(tmp_path):
    checked = check_parameters("table1", _notebook_values(model="Net", store_dir=str(tmp_path / "s")))
    assert checked["lr"] == profiles.PAPER_LRS["Net"] and checked["store"] == tmp_path / "s"
    with pytest.raises(ParameterError, match="variant 'best' is defined for LeNet5 only"):
        check_parameters(
            "beyond_paper",
            dict(
                model="Net",
                variant="best",
                lr=0.03,
                seeds=[1],
                epochs=2,
                nb_pairs=100,
                data_seed=0,
                batch_size=50,
                device="cpu",
                store_dir=str(tmp_path),
                threads=1,
                force=False,
                scheduler=None,
            ),
        )


def test_a_misspelt_parameter_is_refused_and_a_list_given_as_text_is_read(tmp_path):
    """In a kernel, the names the parameters cells assign (the notebook's and papermill's injected one) must
    be parameters; papermill -p passes a list as text."""
    cells = ["", "# Parameters\nfrom typing import Optional\nmodel: str = 'LeNet5'\n", "records = []\n"]
    namespace = {**_notebook_values(store_dir=str(tmp_path)), "Optional": None, "records": [], "In": cells}
    assert check_parameters("table1", namespace)["seeds"] == [
        1,
        2,
    ]  # other names of the kernel: not parameters
    with pytest.raises(ParameterError, match=r"unknown parameter epoch \(did you mean 'epochs'\?\)"):
        check_parameters("table1", {**namespace, "epoch": 3, "In": cells + ["# Parameters\nepoch = 3\n"]})
    assert check_parameters("table1", {**namespace, "seeds": "[3, 4]"})["seeds"] == [3, 4]
    for text in ("3, 4", "[3, 3]", "[]"):
        with pytest.raises(ParameterError, match="parameter seeds"):
            check_parameters("table1", {**namespace, "seeds": text})
    with pytest.raises(ParameterError, match="-y 'seeds: \\[1, 2\\]'"):
        check_parameters("table1", {**namespace, "seeds": "3, 4"})


# --- profiles that expand ------------------------------------------------------------------------


def best_seconds(call, repeat=3) -> float:
    """The fastest of a few calls: what the work costs, without a busy machine's pauses."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def _timed_refusal(path, words):
    def refuse():
        with pytest.raises(ProfileError) as info:
            load_profile(str(path))
        assert words in str(info.value) and "\n" not in str(info.value), str(info.value)

    return best_seconds(refuse)


@pytest.fixture(scope="module")
def plain_load():
    """Seconds to load the smoke profile here: the yardstick the limits below are side by side with."""
    return best_seconds(lambda: load_profile("smoke"))


def test_nested_aliases_under_1_kb_load_at_once(tmp_path, plain_load):
    """9 levels of 9 aliases each: 9**9 (387 million) leaves if expanded; the old duplicate-key walk hung."""
    lines = ["description: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"k{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    text = "\n".join(lines) + "\nstages: {table1: *a9}\n"
    assert len(text) < 1024
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    assert _timed_refusal(path, "unknown key 'k1'") < 20 * plain_load  # expanded, it would take hours
    # the same bomb where validation looks at it: the message quotes a bounded excerpt of the value
    path.write_text("\n".join(lines).replace("description: ", "x0: ").replace("k9:", "description:") + "\n")
    assert _timed_refusal(path, "unknown key 'x0'") < 20 * plain_load
    path.write_text(lines[0].replace("description", "base") + "\ndescription: *a0\nstages: {table1: {}}\n")
    assert _timed_refusal(path, "unknown key 'base'") < 20 * plain_load


def test_an_alias_bomb_inside_a_checked_value_is_quoted_briefly(tmp_path, plain_load):
    lines = [
        "stages:",
        "  table1:",
        "    models: [LeNet5]",
        "    weight_sharing: [true]",
        "    aux_loss: [true]",
        "    epochs: 2",
        "    seeds: &a9 [" + ", ".join(["*a8"] * 9) + "]",
    ]
    head = ["x: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [
        f"y{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)
    ]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines + head) + "\n")  # unknown keys come after stages in the file...
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    assert len(str(info.value)) < 400
    assert _timed_refusal(path, "") < 20 * plain_load


def test_a_long_seed_list_is_linear_and_the_limits_are_stated(tmp_path, plain_load):
    table1 = "stages:\n  table1: {models: [LeNet5], weight_sharing: [true], aux_loss: [true], epochs: 2, seeds: [%s]}\n"
    path, tenth = tmp_path / "seeds.yaml", tmp_path / "tenth.yaml"
    path.write_text(table1 % ", ".join(map(str, range(rules.MAX_LIST_ITEMS))))
    tenth.write_text(table1 % ", ".join(map(str, range(rules.MAX_LIST_ITEMS // 10))))
    # 1000 seeds against 100, side by side: linear is at most 10 times; the quadratic check was 100 times
    full = best_seconds(lambda: load_profile(str(path)))
    assert full < 30 * best_seconds(lambda: load_profile(str(tenth)))
    path.write_text(table1 % ", ".join(map(str, range(rules.MAX_LIST_ITEMS + 1))))
    assert _timed_refusal(path, f"must hold at most {rules.MAX_LIST_ITEMS} entries") < 5 * full
    path.write_text(table1 % ", ".join(map(str, range(30000))))  # the case: refused by size, at once
    assert _timed_refusal(path, f"a profile may hold at most {profiles.MAX_PROFILE_BYTES} bytes") < plain_load
    path.write_text(table1 % ", ".join(["1"] * 1000))
    assert _timed_refusal(path, "must not repeat values (repeated: 1)") < 5 * full


@pytest.mark.parametrize(
    "text,words",
    [
        ("a: &a {x: 1}\nb: {<<: *a}\nstages: {}\n", "merge keys ('<<', line 2) are not supported"),
        ("stages: " + "[" * 30 + "]" * 30 + "\n", f"nested more than {profiles.MAX_DEPTH} levels deep"),
        (
            "x: &a [1]\n" + "".join(f"y{i}: *a\n" for i in range(profiles.MAX_ALIASES + 1)) + "stages: {}\n",
            f"more than {profiles.MAX_ALIASES} YAML aliases",
        ),
        ("stages: &s [*s]\n", "'stages'"),  # a recursive alias: refused, no endless walk
    ],
)
def test_yaml_limits_are_named(tmp_path, text, words, plain_load):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert _timed_refusal(path, words) < 20 * plain_load


PROFILE_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 2**33)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["LeNet5", "Net", "corrected", "original", "paper", "auto", "aug_all"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["models", "lrs", "seeds", "epochs", "table1", "weight_sharing", "aux_loss", "x"]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
PROFILE_KEYS = ["description", "nb_pairs", "data_seed", "batch_size", "protocols", "learning_rates", "stages"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(st.sampled_from(PROFILE_KEYS), PROFILE_VALUES, max_size=5))
def test_property_any_profile_loads_valid_or_is_one_line(tmp_path, doc):
    """Any YAML document made of these keys and values: a profile whose every implied run is a valid
    RunConfig, or a ProfileError of one line naming the file; never another exception."""
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        profile = load_profile(str(path))
    except ProfileError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    s = profile.settings
    RunConfig(nb_pairs=s["nb_pairs"], data_seed=s["data_seed"], batch_size=s["batch_size"])


def test_every_shipped_profile_still_loads():
    for name in profiles.available_profiles():
        load_profile(name)


def test_a_confirmation_set_needs_test_images_left_unused():
    """Issue 33: nb_pairs 5000 uses every test image, so a confirmation set would be empty (a worker traceback)."""
    with pytest.raises(ValueError, match="nb_pairs must be below 5000 with it, got 5000"):
        RunConfig(nb_pairs=5000, confirm_seeds=(101,))
    assert RunConfig(nb_pairs=4999, confirm_seeds=(101,)).confirm_pairs == 1
