"""Two committed records, cell by cell: is each cell of the new record equivalent to the old one's?

    .venv/bin/python docs/measurements/compare_records.py OLD_DIR NEW_DIR OUT.csv [--profile paper]

Each DIR holds a published record, records.parquet and its .sha256 (e.g. from `git show`). A cell is a
configuration without its seed (as `make verify` groups runs). Per cell present in both: the test error's mean,
std and n on each side, the difference (new - old), Welch's p with its Benjamini-Hochberg adjustment over the
cells compared, and the report's own verdict (`analysis.verdicts.agreement`, the old record in the paper's place)
at the profile's declared `equivalence_margin`. `changed` names what the code changed in the cell's runs between
the records (Net's head under the original protocol: issue 24; the forward calls per pair: issue 13), so a moved
cell can be told from seed noise. First written for issue 17 (record_comparison.csv), then issue 28.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from siamese_lib.analysis.stats import FDR, bh_adjust, welch_p
from siamese_lib.analysis.verdicts import agreement
from siamese_lib.experiments.profiles import load_profile
from siamese_lib.pipeline.published import read_records, record_file
from siamese_lib.pipeline.verify import cell_of
from siamese_lib.store import config_from_dict

# What a code change may alter in a cell's runs without changing the cell's name.
TRACKED = ("head", "branch_calls")


def cells(record_dir: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in read_records(record_file(record_dir)):  # the published record, its checksum checked
        config = config_from_dict(r["config"])
        name = " ".join(
            w for w in cell_of(config).split() if not w.startswith(tuple(f"{f}=" for f in TRACKED))
        )
        cell = out.setdefault(name, {"errors": [], "codes": set()} | {f: set() for f in TRACKED})
        cell["errors"].append(float(r["metrics"]["test_error"]))
        cell["codes"].add(r["code_version"])
        for f in TRACKED:
            cell[f].add(str(getattr(config, f)))
    return out


def compare(old_dir: Path, new_dir: Path, margin: float) -> pd.DataFrame:
    old, new = cells(old_dir), cells(new_dir)
    rows = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        row = {"cell": name}
        for side, c in (("old", a), ("new", b)):
            e = pd.Series(c["errors"] if c else [], dtype=float)
            row |= {f"{side}_mean": e.mean(), f"{side}_std": e.std(), f"{side}_n": len(e)}
        if a and b:
            stats = (
                row["new_mean"],
                row["new_std"],
                row["new_n"],
                row["old_mean"],
                row["old_std"],
                row["old_n"],
            )
            verdict = agreement(*stats, margin)
            row |= {
                "difference": verdict.difference,
                "welch_p": welch_p(*stats),
                "tost_p": verdict.tost_p,
                "verdict": verdict.verdict,
                "changed": "; ".join(
                    f"{f} {'/'.join(sorted(a[f]))} -> {'/'.join(sorted(b[f]))}"
                    for f in TRACKED
                    if a[f] != b[f]
                ),
            }
        row["old_code"] = ",".join(sorted(a["codes"])) if a else ""
        row["new_code"] = ",".join(sorted(b["codes"])) if b else ""
        rows.append(row)
    table = pd.DataFrame(rows)
    both = table["welch_p"].notna()
    table.loc[both, "welch_q"] = bh_adjust(table.loc[both, "welch_p"])
    return table


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("old_dir", type=Path)
    parser.add_argument("new_dir", type=Path)
    parser.add_argument("out_csv", type=Path)
    parser.add_argument("--profile", default="paper", help="whose equivalence_margin (default: paper)")
    args = parser.parse_args(argv)
    margin = float(load_profile(args.profile).settings["equivalence_margin"])
    table = compare(args.old_dir, args.new_dir, margin)
    table.to_csv(args.out_csv, index=False, float_format="%.6g")
    both = table.dropna(subset=["welch_p"])
    print(
        f"{len(table)} cells: {len(both)} in both records, {int((table.old_n == 0).sum())} new only, "
        f"{int((table.new_n == 0).sum())} old only; margin {margin:g} points"
    )
    print("verdicts (new against old):", both.verdict.value_counts().to_dict())
    print(
        f"Welch p < 0.05: {int((both.welch_p < 0.05).sum())}; BH q < {FDR}: {int((both.welch_q < FDR).sum())}"
    )
    for r in both.sort_values("welch_p").head(12).itertuples():
        print(
            f"  {r.cell}: {r.old_mean:.2f} ± {r.old_std:.2f} (n {r.old_n}) -> {r.new_mean:.2f} ± {r.new_std:.2f} "
            f"(n {r.new_n}), {r.difference:+.2f}, p {r.welch_p:.3g}, q {r.welch_q:.3g}, {r.verdict}"
            f"{'; ' + r.changed if r.changed else ''}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
