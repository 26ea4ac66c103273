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

matplotlib.use("Agg")  # figures are embedded by figures.figure_html, each with its caption
from IPython.display import HTML, display

from siamese_lib.analysis import beyond_paper as beyond
from siamese_lib.analysis import findings, tables
from siamese_lib.analysis import selection_results as sel
from siamese_lib.common import PARAMS_DIR, runs_root
from siamese_lib.config import ORIGINAL_NO_AUX_EPOCHS
from siamese_lib.data import generate_pair_sets
from siamese_lib.experiments import planning
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.experiments.variants import VARIANTS
from siamese_lib.pipeline.published import published_history
from siamese_lib.presentation import beyond_section, figures, profile_text, provenance, sections, templates
from siamese_lib.presentation.beyond_section import confirmation_html, selection_html
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
selection = sel.load_selection(prof, store_dir)
round2 = sel.load_selection(prof, store_dir, "selection_round2")
words = findings.report_numbers(
    cells,
    prof.settings["protocols"],
    margin,
    prof.settings["claim_rule"],
    profile_text.claims_size(prof),
    sel.headline_numbers(selection),
)
net_head = provenance.head_effect()
words.update(
    round2=sel.headline_numbers(round2),
    net_head=[] if net_head is None else net_head.to_dict("records"),
    round2_ensembles=[e for e in (round2 or {}).get("ensembles", []) if e["test"] is not None],
)
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
display(
    HTML(
        figures.figure_html(
            figures.sample_pairs_figure(pairs, n=8),
            "Fig. 1: The first eight training pairs, each with "
            "its two digit classes and the target (1 when the first digit is at most the second).",
            width="80%",
        )
    )
)

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
display(
    HTML(
        figures.figure_html(
            figures.ARCHITECTURE,
            "Fig. 2 (the paper's Fig. 1): The siamese architecture "
            "shared by the four models. With weight sharing one branch serves both images; the auxiliary losses "
            "train the digit logits on the digit classes.",
        )
    )
)
display(HTML(sections.parameters_html()))

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
    HTML(
        figures.figure_html(
            figures.lr_search_figure(curves, used),
            "Fig. 3 (the paper's Fig. 2): Learning-rate search: summed "
            "training loss per epoch, mean over seeds, one line per rate (log scale); the rate used for the tables "
            "is dotted. Top: ours; bottom: the authors' own logged curves, those of the paper's Fig. 2 (their "
            "repository, [1]), with the paper's picks dotted."
            + (f" Not drawn, runs missing: {note}." if note else ""),
        )
    )
)
lr = findings.lr_numbers(curves, used)  # Table IV's rates and evidence, the discussion's numbers
display(HTML(sections.lr_choice_html(lr)))

# %% [markdown]
# <h3 id="results">B. Model comparison</h3>
#
# Table I, in the paper's layout: for each model and weight-sharing setting, without and with auxiliary loss, the
# paper's mean ± std (n = 10), ours (mean ± std and the number of seeds), the difference and the verdict. As in
# the paper, the best result of each model is in bold and the best overall in red — for the paper's numbers and ours
# separately.

# %%
display(
    HTML(
        sections.results_html(
            cells,
            "table1",
            "corrected",
            "TABLE I: Test error (%) of the four models, corrected protocol. "
            "Paper: mean ± std over 10 seeds; ours: mean ± std (seeds); Δ = ours − paper; verdict: equivalent within "
            "the margin, differs, or inconclusive (<a href='#methodology'>Section III</a>). Bold: best per model; red: best overall.",
            margin,
        )
    )
)
display(HTML(sections.missing_html(cells, "corrected", "table1")))

# %%
# the heading travels with its table, so a page never ends on it
display(
    HTML(
        "<h3>C. LeNet5 in depth</h3><p>Table II: LeNet5 with auxiliary loss, switching weight sharing, batch "
        "normalisation and dropout.</p>"
        + sections.results_html(
            cells,
            "table2",
            "corrected",
            "TABLE II: Test error (%) of "
            "LeNet5 with auxiliary loss, corrected protocol. Same columns and marks as Table I.",
            margin,
        )
    )
)
display(HTML(sections.missing_html(cells, "corrected", "table2")))

# %% [markdown]
# ### D. The original protocol

# %%
if "original" in prof.settings["protocols"]:
    display(HTML(templates.render("quirks.html.j2", quirks=findings.quirk_list())))
    display(
        HTML(
            sections.results_html(
                cells,
                "table1",
                "original",
                "TABLE I (original protocol): Test error (%) of the four models "
                "under the authors' original protocol. Same columns and marks as Table I. Without auxiliary loss "
                f"these runs train {ORIGINAL_NO_AUX_EPOCHS} epochs (the quirk <i>25 epochs</i>).",
                margin,
            )
        )
    )
    display(HTML(sections.missing_html(cells, "original", "table1")))
    display(
        HTML(
            sections.results_html(
                cells,
                "table2",
                "original",
                "TABLE II (original protocol): Test error (%) of LeNet5 with "
                "auxiliary loss under the authors' original protocol.",
                margin,
            )
        )
    )
    display(HTML(sections.missing_html(cells, "original", "table2")))
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
rounds = [("round 1", selection), ("round 2", round2)]
last = round2 or selection
display(
    HTML(
        templates.render(
            "beyond.html.j2",
            stage=prof.stages.get("beyond_paper") if expected else None,
            present=have_ext,
            expected=expected,
            **words,
        )
        + confirmation_html(rounds, sel.cell_confirmation(records, plan), prof.settings)
        + (
            figures.figure_html(
                figures.selection_figure(last["runs"]),
                "Fig. 4: The last declared selection round: validation error of each candidate and rule over the "
                "selection seeds (bars: the means the rule compares); the choice's test and confirmation errors "
                "are in Table VII.",
                width="70%",
            )
            if last and not last["runs"].empty
            else ""
        )
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
display(
    HTML(
        '<h3 id="departures">A. Departures from the paper and from the authors\' code</h3>'
        "<p>Every departure, read from this code's own settings; the original protocol reproduces the authors' "
        "quirks (named as in <a href='#quirks'>Section IV-D</a>), the corrected protocol fixes them.</p>"
        + provenance.departures_html(tables.quirk_shifts(cells)[1])
        + templates.render("net_head.html.j2", **words)
    )
)

# %%
display(
    HTML('<h3 id="protocol">B. The protocol as run</h3>' + sections.protocol_html(prof, records, timings))
)

# %%
protocols = tuple(prof.settings["protocols"])
display(
    HTML(
        '<h3 id="quirk-shifts">C. The tables as error bars, and what the quirks move</h3>'
        + figures.figure_html(
            figures.errorbar_figure(cells, "table1", protocols),
            "Fig. S1: Table I as error bars: "
            "mean ± std of the test error, the paper's and ours under each protocol run.",
        )
        + figures.figure_html(
            figures.errorbar_figure(cells, "table2", protocols),
            "Fig. S2: Table II as error bars, the same marks.",
            width="85%",
        )
        + (
            sections.quirk_shift_html(*tables.quirk_shifts(cells))
            if "original" in protocols
            else '<p class="note">Not run: this profile runs the corrected protocol only.</p>'
        )
    )
)

# %%
display(HTML('<h3 id="beyond-tables">D. Beyond the paper, in full</h3>'))
if have_ext:  # each heading is emitted with its content, so a profile without this stage shows none
    summary = beyond.best_summary(xdf)
    counts = beyond.flip_confusion(xdf, summary["model"], summary["variant"])
    display(
        HTML(
            "<h4>The variants</h4>"
            + templates.macro("beyond_tables:intro", VARIANTS, expected - len(xdf), expected)
            + "<p>Two comparison rules per variant: the learned comparison head, as in the paper, and P(d1 ≤ d2) "
            "computed exactly from the two digit softmaxes (the sum over i ≤ j of p1(i) p2(j)). The ensemble "
            "averages the seeds' outputs per test pair; it is fixed in advance, not chosen.</p>"
            + beyond_section.findings_html(xdf)
            + beyond_section.table3_html(xdf)
            + beyond_section.rules_html(xdf)
            + figures.figure_html(
                figures.aux_weight_figure(xdf),
                "Fig. S3: Test error against the weight w of the "
                "two digit losses (the comparison loss + w x the digit losses), mean ± std over seeds; open squares: "
                "w decaying linearly from 1 to 0 over the epochs. The digit rule is not drawn at w = 0, where nothing "
                "trains the digit outputs as digits.",
                width="80%",
            )
            + "<h4>The best variant on validation, and what each ingredient is worth</h4><p>The configuration "
            "reported below has the lowest mean validation error over every variant and rule of the stage. The "
            "recipe (re-pairing, swapping, small affine moves, a cosine learning-rate decay, 100 epochs) was "
            "fixed before this stage by unrecorded explorations; the refit on all the training pairs "
            "is <i>post hoc</i>: it was added after the held-out-split runs' test "
            "errors had been seen.</p>"
            + beyond_section.best_html(xdf, summary)
            + figures.figure_html(
                figures.plot_confusion(counts),
                f"Fig. S4: {summary['model']}, <code>{summary['variant']}</code>: the digit errors that alone flip "
                f"the comparison (with the other image's true digit, the predicted digit gives the other answer), "
                f"summed over the {summary['n']} seeds' test predictions; {int(counts.values.sum())} in all.",
                width="55%",
            )
        )
    )
else:
    display(HTML('<p class="note">No data.</p>'))
display(
    HTML(
        '<h4 id="selection">Selection round 1, declared before it ran</h4>'
        + selection_html(selection, ("S8", "S9", "S5"))
        + '<h4 id="selection-round2">Selection round 2, declared before any of its runs</h4>'
        + selection_html(round2, ("S10", "S11", "S6"))
    )
)

# %%
display(
    HTML(
        '<h3 id="verification">E. Machines, software and verification</h3>'
        + sections.environment_html(records, verify)
    )
)

# %%
display(
    HTML(
        '<h3 id="wall-time">F. Invocations and wall time</h3>'
        + templates.macro("run_tables:timings", timings)
    )
)

# %%
display(
    HTML(
        '<h3 id="notebooks">G. Executed notebooks</h3>'
        + templates.macro("run_tables:notebooks", timings, runs_dir.name)
    )
)

# %%
display(
    HTML(
        f'<h3 id="profile">H. The profile</h3><p>{templates.escape(profile_path.name)}:</p>'
        f"<pre>{templates.escape(profile_path.read_text())}</pre>"
    )
)

# %%
paths = sections.write_data_csvs(frame, cells, report_dir, margin)  # records.parquet: published by the runner
display(
    HTML(
        '<h3 id="data">I. The data behind this report</h3><p>One row per training run, with its record\'s path '
        "in the results store (column <code>record</code>, under the runs folder): <a href='runs.csv'>runs.csv</a>; "
        "one row per table cell (the paper's and our mean, std, n, difference, both tests' p-values, the verdict, "
        "the epochs as trained, and whether the cell is counted): <a href='cells.csv'>cells.csv</a>. Every run's full "
        "record (configuration, metrics, loss curve, per-pair test outputs, machine, code version) and the profile: "
        + (
            "<a href='records.parquet'>records.parquet</a> (its sha256 in <a href='records.parquet.sha256'>records."
            "parquet.sha256</a>; <code>pandas.read_parquet</code> reads it); both CSV files are derived from it. Beside "
            "it, <a href='pairs.parquet'>pairs.parquet</a> holds each test and confirmation pair's target and digits, "
            "in the order of the runs' per-pair outputs; every column is described in the files' schema and in "
            "docs/data-dictionary.md, and notebooks/explore.ipynb answers the usual questions from the record alone "
            "(<a href='explore.html'>explore.html</a>: executed on this record).</p>"
            if (report_dir / "records.parquet").is_file()  # published by the runner before the report
            else "none is published beside this report (<code>python -m siamese_lib publish</code> makes one).</p>"
        )
    )
)

# %%
display(HTML(templates.render("claims_detail.html.j2", **words)))

# %%
display(
    HTML(
        templates.render("lr_detail.html.j2", lr=lr if lr["differ"] else None, **words)
        + sections.lr_choice_html(lr, evidence=True)
    )
)
