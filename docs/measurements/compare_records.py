"""Two committed records, cell by cell: the test error's mean, std and n in each, the difference and Welch's p.

    .venv/bin/python docs/measurements/compare_records.py OLD_runs.csv NEW_runs.csv OUT.csv

A cell is a configuration without its seed (as `make verify` groups runs). The original protocol's weight-sharing
cells ran one forward call per pair before issue 13 and the authors' two calls after it: they are matched
across that change and the `forward` column says so. Written for issue 17 (the previous record is
`git show cf3fb85:report/paper/runs.csv`); the result is docs/measurements/record_comparison.csv.
"""
import re
import sys
from pathlib import Path

import pandas as pd

from siamese_lib.analysis.stats import welch_p
from siamese_lib.pipeline.verify import load_committed


def cells(csv_path: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for run in load_committed(csv_path):
        name = re.sub(r" branch_calls=\d+", "", run.cell)  # matched across the change
        cell = out.setdefault(name, {"errors": [], "calls": set(), "codes": set()})
        cell["errors"].append(float(run.metrics["test_error"]))
        cell["calls"].add(run.config.branch_calls)
        cell["codes"].add(run.metrics["code_version"])
    return out


def compare(old_csv: Path, new_csv: Path) -> pd.DataFrame:
    old, new = cells(old_csv), cells(new_csv)
    rows = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        row = {"cell": name}
        for side, c in (("old", a), ("new", b)):
            e = pd.Series(c["errors"] if c else [], dtype=float)
            row |= {f"{side}_mean": e.mean(), f"{side}_std": e.std(), f"{side}_n": len(e)}
        if a and b:
            row["difference"] = row["new_mean"] - row["old_mean"]
            row["welch_p"] = welch_p(row["old_mean"], row["old_std"], row["old_n"],
                                     row["new_mean"], row["new_std"], row["new_n"])
            row["forward"] = "" if a["calls"] == b["calls"] else \
                f"{'/'.join(map(str, sorted(a['calls'])))} -> {'/'.join(map(str, sorted(b['calls'])))} calls"
        row["old_code"] = ",".join(sorted(a["codes"])) if a else ""
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    table = compare(Path(argv[0]), Path(argv[1]))
    table.to_csv(argv[2], index=False, float_format="%.6g")
    both = table.dropna(subset=["welch_p"])
    print(f"{len(table)} cells: {len(both)} in both records, {int((table.old_n == 0).sum())} new only, "
          f"{int((table.new_n == 0).sum())} old only")
    for alpha in (0.05, 0.01):
        print(f"  Welch p < {alpha}: {int((both.welch_p < alpha).sum())} of {len(both)}")
    moved = both.assign(size=both.difference.abs()).sort_values("welch_p").head(10)
    for r in moved.itertuples():
        print(f"  {r.cell}: {r.old_mean:.2f} ± {r.old_std:.2f} (n {r.old_n}) -> {r.new_mean:.2f} ± {r.new_std:.2f} "
              f"(n {r.new_n}), {r.difference:+.2f}, p {r.welch_p:.3g} {r.forward}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
