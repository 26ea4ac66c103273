# ---
# jupyter:
#   kernelspec:
#     display_name: Python (siamese-lib)
#     language: python
#     name: siamese-lib
# ---

# %% tags=["parameters"]
# fmt: off
# Parameters (papermill overrides them). An empty profile: the first of paper, quick, smoke whose store
# holds runs. Empty paths follow from the profile name: runs/<profile>/, runs/<profile>/store,
# params/<profile>.yaml and runs/<profile>/report/ (the runner passes report/<profile>/: only it writes there).
profile = ""
store_dir = ""
runs_dir = ""
profile_path = ""
report_dir = ""
# passed by the runner to every stage; the store and the profile already say all this, so unused here
nb_pairs = 1000
data_seed = 0
batch_size = 100
device = "auto"
# fmt: on

# %%
import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are embedded by figures.image_src, each with its caption (figures.macros.j2)
from IPython.display import HTML, display

from siamese_lib.analysis import beyond_paper as beyond
from siamese_lib.analysis import findings, tables
from siamese_lib.analysis import selection_results as sel
from siamese_lib.common import PARAMS_DIR, runs_root
from siamese_lib.config import MODEL_NAMES
from siamese_lib.data import generate_pair_sets
from siamese_lib.experiments import planning
from siamese_lib.experiments.grid import SELECTION_STAGES
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.models import build_model, count_parameters
from siamese_lib.pipeline.published import published_history
from siamese_lib.pipeline.publishing import write_data_csvs
from siamese_lib.presentation import beyond_section, figures, profile_text, sections, templates
from siamese_lib.store import load_records

warnings.filterwarnings("ignore", category=UserWarning)
profile, picked = profile_text.pick_profile(profile, runs_root()) if not store_dir else (profile, "")
runs_dir = Path(runs_dir or runs_root() / profile)
store_dir = Path(store_dir or runs_dir / "store")
profile_path = Path(profile_path or PARAMS_DIR / f"{profile}.yaml")
report_dir = Path(report_dir or runs_dir / "report")  # the runner passes report/<profile>/

prof = load_profile(str(profile_path))
records = load_records(store_dir) if store_dir.is_dir() else []  # read only: this notebook never trains
frame = tables.records_frame(records)
plan = planning.plan_of(prof, runs_dir, store_dir)  # the executions and runs the runner planned
cells = tables.table_cells(records, plan, prof.name)
# Sections F and G: the training history the published record keeps, when it holds these runs; else this runner's
history = published_history(report_dir, [r["key"] for r in records])  # None: no record holds these runs yet
timings = tables.load_timings(runs_dir) if history is None else history["timings"]
verify_file = runs_dir / "verify" / "verify.json"
verify = (
    (json.loads(verify_file.read_text()) if verify_file.is_file() else {})
    if history is None
    else history["verify"]
)
margin = prof.settings["equivalence_margin"]
selection, round2, round3 = (sel.load_selection(prof, store_dir, s) for s in SELECTION_STAGES)
rounds = [("round 1", selection), ("round 2", round2)] + [("round 3", round3)] * (round3 is not None)
words = findings.report_numbers(
    cells,
    prof.settings["protocols"],
    margin,
    prof.settings["claim_rule"],
    profile_text.claims_size(prof),
    sel.headline_numbers(selection),
)
# the last round's headline: the last declared round after the first that has one
words["last_round"] = next((h for h in map(sel.headline_numbers, (round3, round2)) if h), None)
words["profile"] = profile_text.profile_numbers(prof)
# no render clock in the report (the same record renders to the same bytes): the time shown is the record's own
last = max((r.get("created") or "" for r in records), default="")
rendered = f"from runs trained up to {last[:16].replace('T', ' ')} UTC" if last else "from no runs"

# %%
if picked:
    display(HTML(f'<p class="note">{picked}</p>'))
display(
    HTML(
        sections.title_html(prof, records, rendered)
        + templates.render("abstract.html.j2", **words)
        + templates.render("findings.html.j2", **words)
    ),
    metadata={"report_title": profile_text.report_title(prof)},
)  # render.py puts it in <title> and the PDF

# %% [markdown]
# <nav class="toc"><p><b>Contents.</b> Main text: <a href="#findings">Findings</a> ·
# <a href="#introduction">I. Introduction</a> · <a href="#architecture">II. Model architecture</a> ·
# <a href="#methodology">III. Methodology</a> · <a href="#results-section">IV. Results</a> ·
# <a href="#discussion">V. Discussion</a> · <a href="#beyond">VI. Beyond the paper</a> ·
# <a href="#reproduction">VII. The reproduction in brief</a> · <a href="#conclusion">VIII. Conclusion</a> ·
# <a href="#references">References</a>. Supplement:
# <a href="#departures">A. Departures</a> · <a href="#protocol">B. Protocol as run</a> ·
# <a href="#quirk-shifts">C. Error bars and what the quirks move</a> · <a href="#beyond-tables">D. Beyond the paper, in full</a> ·
# <a href="#verification">E. Machines and verification</a> · <a href="#wall-time">F. Invocations and wall time</a> ·
# <a href="#notebooks">G. Executed notebooks</a> · <a href="#profile">H. The profile</a> ·
# <a href="#data">I. The data</a> · <a href="#claims-detail">J. The claims under both rules</a> ·
# <a href="#lr-detail">K. The learning-rate rules, rate by rate</a>.</p></nav>
#
# <h2 id="introduction">I. Introduction</h2>

# %%
display(HTML(templates.render("intro.html.j2", **words)))

# %%
pairs = generate_pair_sets(prof.settings["nb_pairs"], seed=prof.settings["data_seed"])
display(HTML(templates.macro("figures:fig1", figures.image_src(figures.sample_pairs_figure(pairs, n=8)))))

# %% [markdown]
# <h2 id="architecture">II. Model architecture</h2>
#
# ### A. Models
#
# Each model is a *siamese* network (Fig. 2): a branch maps each 1×14×14 image to 10 digit logits; the two logit
# vectors are concatenated (20 values) and a head with one hidden layer of 72 units — one per pair of digits worth
# telling apart — outputs the two comparison logits. Batch normalisation follows every convolutional layer.
#
# - **Net**: two 3×3 convolutions (16 and 32 channels, each with batch norm, max-pooling and ReLU), then two linear
#   layers (128→64→10).
# - **LeNet5** [2]: the same two stages with 32 and 64 channels, then three linear layers (256→120→84→10).
# - **LeNet5_FullyConv**: LeNet5's convolutional stages, then its linear layers replaced by 2×2 and 1×1 convolutions
#   (64→120→84→10), each followed by batch norm; its head is made of 1×1 one-dimensional convolutions with batch norm.
# - **ResNet** [3]: a 3×3 convolution to 32 channels, three residual blocks that keep channels and size, global average
#   pooling and a linear layer (32→10).
# - **VGG** (beyond the paper, a candidate of the declared selections only): two stages of two padded 3×3 convolutions each
#   (32 then 64 channels, each with batch norm and ReLU, a 2×2 max-pooling after each stage: 14×14 → 7×7 → 3×3), then
#   two linear layers (576→128→10), with LeNet5's head.
#
# The paper gives parameter counts for the models with weight sharing; Table III sets ours beside them and adds the
# counts without weight sharing, when each image has its own branch, and VGG's.

# %%
display(HTML(templates.macro("figures:fig2", figures.image_src(figures.ARCHITECTURE))))
# Table III: each model's parameters with and without weight sharing, beside the paper's count
n = {(m, ws): count_parameters(build_model(m, weight_sharing=ws)) for m in MODEL_NAMES for ws in (0, 1)}
display(HTML(templates.macro("run_tables:parameters", MODEL_NAMES, n, tables.PAPER_PARAMETERS)))

# %% [markdown]
# ### B. Variations
#
# - **Auxiliary loss**: the training loss adds the cross-entropy of each branch's digit logits against that digit's
#   class to the comparison loss (all three with weight 1). Without it, only the comparison target trains the network.
# - **Weight sharing**: both images pass through the same branch, so its parameters see twice as many images.
# - **Batch normalisation**: after each convolutional layer (Table II switches it off).
# - **Dropout**: p = 0.25 after the hidden linear layers of the branch and of the head (Table II switches it on).

# %% [markdown]
# <h2 id="methodology">III. Methodology</h2>

# %%
display(HTML(templates.render("methodology.html.j2", **words)))

# %%
display(HTML(templates.render("agreement.html.j2", **words)))

# %% [markdown]
# <h2 id="results-section">IV. Results</h2>
#
# ### A. Learning-rate search

# %%
display(HTML(templates.render("lr_search.html.j2", **words)))

# %%
curves = planning.lr_search_curves(records, plan)
used = planning.used_learning_rates(prof, curves, store_dir)
incomplete = {m: sorted(lr for lr, e in by_lr.items() if e["missing_seeds"]) for m, by_lr in curves.items()}
note = "; ".join(
    f"{m}: rates {', '.join(f'{lr:g}' for lr in lrs)} incomplete" for m, lrs in incomplete.items() if lrs
)
display(
    HTML(templates.macro("figures:fig3", figures.image_src(figures.lr_search_figure(curves, used)), note))
)
lr = findings.lr_numbers(curves, used)  # Table IV's rates and evidence, the discussion's numbers
display(HTML(templates.macro("run_tables:lr_choice", lr)))

# %% [markdown]
# <h3 id="results">B. Model comparison</h3>
#
# Table I, in the paper's layout: for each model and weight-sharing setting, without and with auxiliary loss, the
# paper's mean ± std (n = 10), ours (mean ± std and the number of seeds), the difference and the verdict. As in
# the paper, the best result of each model is in bold and the best overall in red — for the paper's numbers and ours
# separately.

# %%
display(HTML(sections.results_html(cells, "table1", "corrected", margin)))

# %%
display(HTML(sections.results_html(cells, "table2", "corrected", margin)))

# %% [markdown]
# ### D. The original protocol

# %%
if "original" in prof.settings["protocols"]:
    display(HTML(templates.render("quirks.html.j2", quirks=findings.quirk_list())))
    display(HTML(sections.results_html(cells, "table1", "original", margin)))
    display(HTML(sections.results_html(cells, "table2", "original", margin)))
else:
    display(HTML(f'<p class="note">Not run: the profile {prof.name!r} runs the corrected protocol only.</p>'))

# %% [markdown]
# ### E. Deviations from the paper
#
# Every distinct cell judged different from the paper under either protocol, largest gap first, with what the other
# protocol says about it.

# %%
display(HTML(templates.render("deviations.html.j2", **words)))

# %%
display(HTML(templates.render("discussion.html.j2", lr=lr if lr["differ"] else None, **words)))

# %%
expected = sum(len(e.configs()) for e in plan if e.stage == "beyond_paper")
xdf = beyond.load_beyond_paper(plan, store_dir, missing="skip") if expected else None
have_ext = xdf is not None and not xdf.empty
display(
    HTML(
        templates.render(
            "beyond.html.j2",
            stage=prof.stages.get("beyond_paper") if expected else None,
            present=have_ext,
            expected=expected,
            **words,
        )
        + beyond_section.confirmation_html(rounds, sel.cell_confirmation(records, plan), prof.settings)
    )
)

# %%
display(HTML(templates.render("conclusion.html.j2", **words)))

# %% [markdown]
# <h2 class="appendix" id="supplement">Supplement</h2>
#
# The machinery behind the main text: how this code departs from the paper and from the authors' code, the protocol
# as run, what the quirks move, every variant beyond the paper, the machines, the time each stage took, the executed
# notebook of every configuration, the profile that defined the run, and the data behind the report.

# %%
display(HTML(sections.departures_html(tables.quirk_shifts(cells)[1])))

# %%
display(HTML(sections.protocol_html(prof, records, timings)))

# %%
# Supplement C: Tables I and II as error bars (Figs. S1, S2), then Tables S2 and S3
protocols = tuple(prof.settings["protocols"])
bars = [figures.image_src(figures.errorbar_figure(cells, t, protocols)) for t in ("table1", "table2")]
shifts = tables.quirk_shifts(cells) if "original" in protocols else None
display(HTML(templates.macro("results:quirk_shifts", bars, shifts)))

# %%
display(HTML('<h3 id="beyond-tables">D. Beyond the paper, in full</h3>'))
# each heading is emitted with its content, so a profile without this stage shows none
display(HTML(beyond_section.supplement_html(xdf, expected) if have_ext else '<p class="note">No data.</p>'))
display(HTML("".join(beyond_section.selection_html(r, i) for i, (_, r) in enumerate(rounds, 1))))

# %%
display(HTML(sections.environment_html(records, verify)))

# %%
display(HTML(templates.macro("run_tables:timings", timings)))

# %%
display(HTML(templates.macro("run_tables:notebooks", timings, runs_dir.name)))

# %%
display(HTML(templates.macro("run_tables:profile", profile_path.name, profile_path.read_text())))

# %%
write_data_csvs(frame, cells, report_dir, margin)  # records.parquet: published by the runner
display(HTML(templates.macro("run_tables:data", (report_dir / "records.parquet").is_file())))

# %%
display(HTML(templates.render("claims_detail.html.j2", **words)))

# %%
display(
    HTML(
        templates.render("lr_detail.html.j2", lr=lr if lr["differ"] else None, **words)
        + templates.macro("run_tables:lr_evidence", lr)
    )
)
