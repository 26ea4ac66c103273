"""The statistics every table uses: one mean/std (sample std, ddof 1), one Welch test, one p-value format."""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import ttest_ind_from_stats


def mean_std_n(values) -> tuple[float, float, int]:
    """Mean, sample std (ddof 1) and count of the finite values; NaN where undefined."""
    a = np.asarray([float(v) for v in values], dtype=float)
    a = a[np.isfinite(a)]
    n = len(a)
    mean = float(a.mean()) if n else math.nan
    std = float(a.std(ddof=1)) if n > 1 else math.nan
    return mean, std, n


def mean_std(values) -> tuple[float, float]:
    return mean_std_n(values)[:2]


def welch_p(mean1, std1, n1, mean2, std2, n2) -> float:
    """Two-sided Welch t-test p-value from summary statistics; NaN when it is undefined."""
    vals = (mean1, std1, n1, mean2, std2, n2)
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals) or n1 < 2 or n2 < 2:
        return float("nan")
    if std1 == 0 and std2 == 0:
        return 0.0 if mean1 != mean2 else 1.0
    return float(ttest_ind_from_stats(mean1, std1, n1, mean2, std2, n2, equal_var=False).pvalue)


def fmt_p(p) -> str:
    """The one way a p-value is printed: 2 significant digits, 0.xx above 0.1, 1e-4 style below 1e-3."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    if p < 1e-3:
        return f"{p:.0e}".replace("e-0", "e-")
    return f"{p:.2g}" if p < 0.1 else f"{p:.2f}"


def seed_ranges(seeds) -> str:
    """[1,2,3,5] -> '1-3, 5'."""
    seeds = sorted(seeds)
    out, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        out.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ", ".join(out)
