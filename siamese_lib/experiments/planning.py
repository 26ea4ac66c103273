"""Planning: a validated profile -> its notebook executions (one per cell of a stage's grid, grid.py) and
their runs; with ``learning_rates: auto`` the tables' rates come from the profile's own LR search."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import PAPER_MODELS, RunConfig
from ..store import config_from_dict, load_records, run_key
from .grid import GRIDS, configs_for, holdout_parameter, paper_executions
from .profiles import PAPER_LRS, SELECTION_STAGES, STAGES, TRAINING_STAGES, Profile
from .selection import DATA, chosen_candidate, final_candidates

# Relative cost of one epoch (LeNet5 = 1), measured on one thread; ResNet dominates the paper.
MODEL_COST = {"Net": 1.1, "LeNet5": 1.0, "LeNet5_FullyConv": 1.2, "ResNet": 9.0, "VGG": 4.0}
SECONDS_PER_UNIT = 0.25  # one LeNet5 epoch over 1000 pairs on one CPU thread
# this machine's paths: not in a plan
PATH_PARAMETERS = ("store_dir", "runs_dir", "profile_path", "report_dir")


def run_cost(config) -> float:
    """Seconds one run takes on one CPU thread, estimated: the engine hands out the longest first."""
    units = MODEL_COST.get(config.model, 1.0) * config.trained_epochs * config.nb_pairs / 1000
    return units * SECONDS_PER_UNIT


@dataclass
class Execution:
    """One notebook execution: a stage, a configuration name (a safe file name) and papermill parameters."""

    stage: str
    name: str
    parameters: dict
    planned: list | None = None  # its runs as the plan file lists them (load_plan); else from the parameters

    def configs(self) -> list[RunConfig]:
        return self.planned if self.planned is not None else configs_for(self.stage, self.parameters)


def plan_document(profile_name: str, device: str, executions: list[Execution]) -> dict:
    """What ``runs/<profile>/plan.json`` holds: each execution (stage, name, parameters without this machine's
    paths) with its run keys, and each run's configuration under its key: the same plan, the same bytes."""
    entries, runs = [], {}
    # in stage order: a round's finals are planned after every round's candidates when they are trained here,
    # and with them when the store already holds their choice; the same plan either way
    for ex in sorted(executions, key=lambda ex: STAGES.index(ex.stage)):
        configs = ex.configs()
        keys = [run_key(config, device) for config in configs]
        runs.update({key: config.to_dict() for key, config in zip(keys, configs, strict=True)})
        parameters = {k: v for k, v in ex.parameters.items() if k not in PATH_PARAMETERS}
        entries.append({"stage": ex.stage, "name": ex.name, "runs": keys, "parameters": parameters})
    return {"profile": profile_name, "device": device, "executions": entries, "runs": runs}


def record_finder(records):
    """config -> its record among ``records``, picked as store.find_record picks one in a store (trained on
    the cpu, else on cuda); None when absent."""
    by_key = {r["key"]: r for r in records}
    return lambda config: next(
        (by_key[k] for d in ("cpu", "cuda") if (k := run_key(config, d)) in by_key), None
    )


class PlanError(ValueError):
    """A plan file that is absent or does not hold what the runner writes."""


def plan_of(profile: Profile, runs_dir, store_dir) -> list[Execution]:
    """The plan the runner wrote beside the runs; for a store it never planned (notebooks run by hand), the
    profile's executions as they stand (a selection not chosen yet is left out)."""
    if (Path(runs_dir) / "plan.json").exists():
        return load_plan(runs_dir)
    return expand(profile, str(store_dir), stages=[s for s in TRAINING_STAGES if s in profile.stages])


def load_plan(runs_dir) -> list[Execution]:
    """The training executions of ``runs/<profile>/plan.json``, each with its runs as planned: what the report
    reads instead of expanding the profile again. Untrusted: every configuration must hash to its key."""
    path = Path(runs_dir) / "plan.json"
    try:
        plan = json.loads(path.read_text())
        device, runs = plan["device"], {}
        for key, d in plan["runs"].items():
            runs[key] = config_from_dict(d)
            if run_key(runs[key], device) != key:
                raise ValueError(f"run {key}: its configuration does not hash to its key")
        return [
            Execution(e["stage"], e["name"], e["parameters"], [runs[k] for k in e["runs"]])
            for e in plan["executions"]
        ]
    except FileNotFoundError:
        raise PlanError(
            f"{path}: no plan; run the profile first (python -m siamese_lib run --profile NAME)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PlanError(f"{path}: not a plan the runner wrote ({type(exc).__name__}: {exc})") from None


def expand(profile: Profile, store_dir: str, device: str = "auto", stages=None) -> list[Execution]:
    """All executions of the profile's stages (in stage order), with their papermill parameters."""
    s, st, wanted = profile.settings, profile.stages, stages or STAGES
    base = dict({k: s[k] for k in DATA}, store_dir=str(store_dir), device=device)
    rates = functools.cache(lambda: learning_rates(profile, store_dir))  # auto: read once, when first needed

    def lr_for(model):
        if model not in rates():
            raise KeyError(
                f"learning_rates: auto needs an LR search of {model}; add it to stages.lr_search.models"
            )
        return rates()[model]

    out = [Execution(*e) for e in paper_executions(s, st, base, lr_for, wanted)]
    # a selection round: one execution per candidate; once all their runs are stored, one per final seed of
    # the choice and of each other member of a declared ensemble (the runner expands the round again then)
    for stage in (x for x in SELECTION_STAGES if x in st and x in wanted):
        part = dict(
            base, selection=st[stage], confirm_seeds=s["confirmation_seeds"] or [], **holdout_parameter(s)
        )
        out += [
            Execution(stage, f"candidate-{c}", dict(part, part="candidate", candidate=c, seeds=[]))
            for c in st[stage]["candidates"]
        ]
        chosen = chosen_candidate(st[stage], s, store_dir) if store_dir else None
        for c in final_candidates(st[stage], chosen["candidate"]) if chosen else ():
            label = "final" if c == chosen["candidate"] else f"final-{c}"
            out += [
                Execution(stage, f"{label}-seed{n}", dict(part, part="final", candidate=c, seeds=[n]))
                for n in st[stage]["final_seeds"]
            ]
    for stage in (x for x in ("figures", "report") if x in st and x in wanted):
        paths = dict(store_dir=str(store_dir), runs_dir=str(Path(store_dir).parent))
        paths.update(profile_path=str(Path(profile.path).resolve()))
        out.append(Execution(stage, stage, dict(profile=profile.name, **paths)))
    return out


# --- the learning rates: the LR search's rules and the one lookup of a rate ------------------------------
FINAL_EPOCHS = 10  # the declared rule averages the summed training loss over this many last epochs


@dataclass(frozen=True)
class LossRule:
    """Scores a rate by the seeds' mean curve of summed training loss at epochs ``curve[start:stop]``,
    averaged arithmetically, or geometrically when ``log`` (the curve's mean height on a log scale)."""

    start: int | None = None
    stop: int | None = None
    log: bool = False


DECLARED_RULE = LossRule(start=-FINAL_EPOCHS)  # declared before the search ran: ``auto`` rates plan with it
# POST HOC (found after seeing the paper's picks, only reported): of the rules measured on the authors' log it
# reproduces all four picks, with the widest margin, and has no free parameter.
POST_HOC_RULE = LossRule(log=True)


def rule_score(curves, rule: LossRule = DECLARED_RULE) -> float:
    """The score of one rate from its seeds' curves; a non-finite value where the rule reads (a diverged run)
    scores +inf, so it never wins."""
    read = np.mean(np.asarray(curves, dtype=float), axis=0)[rule.start : rule.stop]
    if read.size == 0 or not np.all(np.isfinite(read)):
        return math.inf
    if rule.log:
        with np.errstate(divide="ignore"):
            return float(np.exp(np.mean(np.log(read))))
    return float(np.mean(read))


def choose_learning_rates(curves_by_model: dict, rule: LossRule = DECLARED_RULE) -> dict:
    """Per model, the rate with the lowest ``rule_score`` (by default the declared rule); only rates with all
    their seeds are compared, and a model with an incomplete search is left out."""
    chosen = {}
    for model, by_lr in curves_by_model.items():
        if not by_lr or any(e["missing_seeds"] for e in by_lr.values()):
            continue
        score = {lr: rule_score(e["curves"], rule) for lr, e in by_lr.items()}
        chosen[model] = min(sorted(score), key=lambda lr: score[lr])
    return chosen


def learning_rates(profile: Profile, store_dir=None) -> dict:
    """{model: the rate its tables use}: the paper's, or with ``learning_rates: auto`` the declared rule's
    choice from the profile's own LR search in the store (KeyError naming the models it lacks)."""
    if profile.settings["learning_rates"] == "paper":
        return dict(PAPER_LRS)
    search = expand(profile, "", stages=("lr_search",))
    chosen = choose_learning_rates(lr_search_curves(load_records(store_dir), search))
    lacking = [m for m in profile.stages.get("lr_search", {}).get("models", PAPER_MODELS) if m not in chosen]
    if lacking:
        raise KeyError(
            f"no complete LR search in {store_dir} for {', '.join(lacking)}: run the lr_search stage first"
        )
    return chosen


def used_learning_rates(profile, models, store_dir) -> dict:
    """The rate the tables use per model; a model whose rate is not known yet (auto) is left out."""
    try:
        rates = learning_rates(profile, store_dir)
    except (KeyError, ValueError):
        return {}
    return {m: rates[m] for m in models if m in rates}


def lr_search_curves(records, executions) -> dict:
    """{model: {lr: {"curves": [per-seed lists], "missing_seeds": [...], "seeds": [...]}}} for the LR search's
    executions among ``executions`` (a plan's)."""
    find, out = record_finder(records), {}
    for ex in (e for e in executions if e.stage == "lr_search"):
        found = {cfg.seed: find(cfg) for cfg in ex.configs()}
        entry = {
            "curves": [r["curves"]["train_loss"] for r in found.values() if r],
            "seeds": [seed for seed, r in found.items() if r],
            "missing_seeds": [seed for seed, r in found.items() if not r],
        }
        out.setdefault(ex.parameters["model"], {})[ex.parameters["lr"]] = entry
    return out


def notebook_count(profile: Profile, store_dir: str, device: str, stages) -> int:
    """How many notebook executions ``stages`` make, known before any run is trained (a total that does not
    grow): the paper stages' cells (whatever their rates); a selection not chosen yet with its final
    executions (the choice's and each ensemble member's seeds)."""
    st = profile.stages
    total = len(paper_executions(profile.settings, st, {}, PAPER_LRS.get, stages))
    for stage in (x for x in stages if x in st and x not in GRIDS):
        ex = expand(profile, store_dir, device, stages=[stage])
        total += len(ex)
        if stage in SELECTION_STAGES and not any(e.parameters.get("part") == "final" for e in ex):
            total += len(final_candidates(st[stage], "")) * len(st[stage]["final_seeds"])
    return total
