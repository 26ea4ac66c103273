"""The statistics every table uses: mean/std (ddof 1), Welch and equivalence tests, BH, one p format."""

from __future__ import annotations

import math

import numpy as np

# Difference (two-sided Welch): the conventional 5 %, for a cell against the paper's and for the claims.
ALPHA_DIFFERENCE = 0.05
# Equivalence (TOST): each one-sided test at 5 % (Schuirmann 1987), i.e. the 90 % interval inside +-margin.
ALPHA_EQUIVALENCE = 0.05
# Multiplicity (Benjamini-Hochberg): the false-discovery rate where a section runs many difference tests.
FDR = 0.05


def mean_std_n(values) -> tuple[float, float, int]:
    """Mean, sample std (ddof 1) and count of the finite values; NaN where undefined."""
    a = np.asarray([float(v) for v in values], dtype=float)
    a = a[np.isfinite(a)]
    n = len(a)
    return float(a.mean()) if n else math.nan, float(a.std(ddof=1)) if n > 1 else math.nan, n


def _untestable(mean1, std1, n1, mean2, std2, n2) -> bool:
    """A side undefined (None or NaN) or with fewer than 2 values."""
    values = (mean1, std1, n1, mean2, std2, n2)
    return any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values) or n1 < 2 or n2 < 2


def welch_p(mean1, std1, n1, mean2, std2, n2) -> float:
    """Two-sided Welch t-test p-value from summary statistics; NaN when it is undefined."""
    if _untestable(mean1, std1, n1, mean2, std2, n2):
        return math.nan
    if std1 == 0 and std2 == 0:
        return 0.0 if mean1 != mean2 else 1.0
    from scipy.stats import ttest_ind_from_stats  # here: scipy takes most of a second to import

    return float(ttest_ind_from_stats(mean1, std1, n1, mean2, std2, n2, equal_var=False).pvalue)


def tost_p(mean1, std1, n1, mean2, std2, n2, margin) -> float:
    """Two one-sided Welch tests of |mean1 - mean2| < margin: the larger p (small: within), or NaN."""
    if _untestable(mean1, std1, n1, mean2, std2, n2):
        return math.nan
    if std1 == 0 and std2 == 0:
        return 0.0 if abs(mean1 - mean2) < margin else 1.0
    from scipy.stats import ttest_ind_from_stats

    args = dict(equal_var=False)
    low = ttest_ind_from_stats(mean1 + margin, std1, n1, mean2, std2, n2, **args, alternative="greater")
    high = ttest_ind_from_stats(mean1 - margin, std1, n1, mean2, std2, n2, **args, alternative="less")
    return float(max(low.pvalue, high.pvalue))


def bh_adjust(pvalues) -> list[float]:
    """Benjamini-Hochberg adjusted p-values in the input order; NaN stays NaN, outside the family."""
    from scipy.stats import false_discovery_control

    p = np.asarray([float(x) for x in pvalues], dtype=float)
    out, ok = np.full(len(p), np.nan), np.isfinite(p)
    if ok.any():
        out[ok] = false_discovery_control(p[ok])
    return out.tolist()


def pooled_effect(diffs, variances) -> tuple[float, float, float, float]:
    """Inverse-variance (fixed-effect) mean of independent estimates: (estimate, 95 % low, high, p)."""
    d, v = np.asarray(diffs, dtype=float), np.asarray(variances, dtype=float)
    if not len(d):
        return (math.nan,) * 4
    from scipy.stats import norm

    w = 1 / np.maximum(v, 1e-12)  # a comparison of two cells without spread: weighted as very precise
    est, se = float((w * d).sum() / w.sum()), float(math.sqrt(1 / w.sum()))
    z = norm.ppf(0.975)
    return est, est - z * se, est + z * se, float(2 * norm.sf(abs(est) / se))


def fmt_p(p) -> str:
    """A p-value with 2 significant digits: 0.xx above 0.1, 1e-4 style below 1e-3."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    if p < 1e-300:
        return "<1e-300"
    if p < 1e-3:
        return f"{p:.0e}".replace("e-0", "e-")
    return f"{p:.2g}" if p < 0.1 else f"{p:.2f}"


def seed_ranges(seeds) -> str:
    """[1,2,3,5] -> '1-3, 5'."""
    runs = []
    for s in sorted(seeds):
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def shared_image_variance(pair_values, images) -> float:
    """Variance of the mean of per-pair values when pairs share images ([pairs, 2] image ids): the
    cluster-robust sum over images of their pairs' summed residuals squared, less each pair's own square."""
    v = np.asarray(pair_values, dtype=float)
    ids = np.asarray(images).astype(np.int64)
    r = v - v.mean()
    per_image = np.bincount(ids[:, 0], r, ids.max() + 1) + np.bincount(ids[:, 1], r, ids.max() + 1)
    return max(float((per_image**2).sum() - (r**2).sum()), 0.0) / len(v) ** 2


def error_interval(values, pairs: int, pair_errors=None, images=None) -> tuple[float, float]:
    """95 % interval (clipped at 0) of a mean error (%) over runs scored on ``pairs`` pairs: the runs'
    spread plus the set's sampling, binomial or, with per-pair errors and image ids shared_image_variance."""
    mean, std, n = mean_std_n(values)
    if not n or pairs < 1:
        return math.nan, math.nan
    rate = mean / 100
    binomial = rate * (1 - rate) / pairs
    sampling = binomial if pair_errors is None else shared_image_variance(pair_errors, images)
    se = math.sqrt((std**2 / n if n > 1 else 0.0) + 1e4 * sampling)
    return max(0.0, mean - 1.96 * se), mean + 1.96 * se
