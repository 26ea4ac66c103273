"""The statistics every table uses: one mean/std (sample std, ddof 1), one Welch test, one equivalence test
(two one-sided Welch tests), one multiplicity correction (Benjamini-Hochberg), one p-value format."""

from __future__ import annotations

import math

import numpy as np

# One threshold per kind of test, stated here only.
# Difference (two-sided Welch): the conventional 5 %. It serves every "is there a difference" question of the
# report: a cell against the paper's, and one of our cells against another (the claims).
ALPHA_DIFFERENCE = 0.05
# Equivalence (TOST): each one-sided test at 5 %, the usual choice (Schuirmann 1987). It is the same as asking
# that the 90 % confidence interval of the difference lie inside +-margin, and needs no correction for its two
# tests, since both must reject.
ALPHA_EQUIVALENCE = 0.05
# Multiplicity (Benjamini-Hochberg): the false-discovery rate where a section runs many difference tests.
FDR = 0.05


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
    if _undefined(mean1, std1, n1, mean2, std2, n2) or n1 < 2 or n2 < 2:
        return float("nan")
    if std1 == 0 and std2 == 0:
        return 0.0 if mean1 != mean2 else 1.0
    from scipy.stats import ttest_ind_from_stats  # here: scipy takes most of a second to import

    return float(ttest_ind_from_stats(mean1, std1, n1, mean2, std2, n2, equal_var=False).pvalue)


def _undefined(*vals) -> bool:
    return any(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals)


def tost_p(mean1, std1, n1, mean2, std2, n2, margin) -> float:
    """Two one-sided Welch tests of |mean1 - mean2| < margin, from summary statistics: the larger of the two
    one-sided p-values (small: the difference lies within +-margin). NaN when undefined."""
    if _undefined(mean1, std1, n1, mean2, std2, n2) or n1 < 2 or n2 < 2:
        return float("nan")
    d = mean1 - mean2
    v1, v2 = std1**2 / n1, std2**2 / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return 0.0 if abs(d) < margin else 1.0
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    from scipy.stats import t as student_t

    p_low = student_t.sf((d + margin) / se, df)  # H0: d <= -margin
    p_high = student_t.cdf((d - margin) / se, df)  # H0: d >= +margin
    return float(max(p_low, p_high))


def bh_adjust(pvalues) -> list[float]:
    """Benjamini-Hochberg adjusted p-values, in the input order (NaN stays NaN and is not counted)."""
    p = np.asarray([float(x) for x in pvalues], dtype=float)
    out = np.full(len(p), np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    if len(idx):
        order = idx[np.argsort(p[idx], kind="stable")]
        m = len(order)
        ranked = p[order] * m / np.arange(1, m + 1)
        out[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return out.tolist()


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


def error_interval(values, pairs: int) -> tuple[float, float]:
    """95 % interval (normal approximation, clipped at 0) of a mean error in percent over runs scored on one set of
    ``pairs`` pairs: the runs' spread (the standard error of their mean; none for one run or an ensemble) and the
    set's own sampling (binomial at the mean rate) combined."""
    mean, std, n = mean_std_n(values)
    if not n or pairs < 1:
        return math.nan, math.nan
    rate = mean / 100
    se = math.sqrt((std**2 / n if n > 1 else 0.0) + 1e4 * rate * (1 - rate) / pairs)
    return max(0.0, mean - 1.96 * se), mean + 1.96 * se
