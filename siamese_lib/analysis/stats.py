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
    """Two one-sided Welch tests of |mean1 - mean2| < margin, from summary statistics (scipy's one-sided
    ttest_ind_from_stats on the means shifted by the margin): the larger of the two p-values (small: the difference
    lies within +-margin). NaN when undefined."""
    if _undefined(mean1, std1, n1, mean2, std2, n2) or n1 < 2 or n2 < 2:
        return float("nan")
    if std1 == 0 and std2 == 0:
        return 0.0 if abs(mean1 - mean2) < margin else 1.0
    from scipy.stats import ttest_ind_from_stats

    low = ttest_ind_from_stats(
        mean1 + margin, std1, n1, mean2, std2, n2, equal_var=False, alternative="greater"
    )
    high = ttest_ind_from_stats(
        mean1 - margin, std1, n1, mean2, std2, n2, equal_var=False, alternative="less"
    )
    return float(max(low.pvalue, high.pvalue))


def bh_adjust(pvalues) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (scipy's false_discovery_control), in the input order; NaN stays NaN
    and is not counted in the family."""
    from scipy.stats import false_discovery_control

    p = np.asarray([float(x) for x in pvalues], dtype=float)
    out = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = false_discovery_control(p[ok])
    return out.tolist()


def pooled_effect(diffs, variances) -> tuple[float, float, float, float]:
    """Inverse-variance weighted (fixed-effect) mean of independent estimates of one effect: (estimate, 95 % low,
    95 % high, two-sided p of no effect), normal approximation. NaN when nothing is given."""
    d, v = np.asarray(diffs, dtype=float), np.asarray(variances, dtype=float)
    if not len(d):
        return (math.nan,) * 4
    from scipy.stats import norm

    v = np.maximum(v, 1e-12)  # a comparison of two cells without spread: weighted as very precise
    w = 1 / v
    est, se = float((w * d).sum() / w.sum()), float(math.sqrt(1 / w.sum()))
    z = norm.ppf(0.975)
    return est, est - z * se, est + z * se, float(2 * norm.sf(abs(est) / se))


def fmt_p(p) -> str:
    """The one way a p-value is printed: 2 significant digits, 0.xx above 0.1, 1e-4 style below 1e-3."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    if p < 1e-300:
        return "<1e-300"
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


def shared_image_variance(pair_values, images) -> float:
    """Variance of the mean of per-pair values when pairs share images (``images``: [pairs, 2] image ids): the
    cluster-robust (sandwich) variance over images, which adds the covariance of every two pairs that share an
    image. The sum over images of the squared sum of their pairs' residuals counts each pair's own square twice
    (it has two images) and each sharing pair once: less one own square, it is the variance of the sum. With no
    image shared it is the plain sum of squares over pairs squared, the binomial variance of an error rate."""
    v = np.asarray(pair_values, dtype=float)
    ids = np.asarray(images).astype(np.int64)
    r = v - v.mean()
    per_image = np.bincount(ids[:, 0], r, ids.max() + 1) + np.bincount(ids[:, 1], r, ids.max() + 1)
    return max(float((per_image**2).sum() - (r**2).sum()), 0.0) / len(v) ** 2


def error_interval(values, pairs: int, pair_errors=None, images=None) -> tuple[float, float]:
    """95 % interval (normal approximation, clipped at 0) of a mean error in percent over runs scored on one set of
    ``pairs`` pairs: the runs' spread (the standard error of their mean; none for one run or an ensemble) and the
    set's own sampling combined. The set's sampling is binomial at the mean rate, or, given each pair's error
    averaged over the runs (``pair_errors``, 0 to 1) and its two images' ids (``images``), shared_image_variance."""
    mean, std, n = mean_std_n(values)
    if not n or pairs < 1:
        return math.nan, math.nan
    rate = mean / 100
    sampling = (
        rate * (1 - rate) / pairs if pair_errors is None else shared_image_variance(pair_errors, images)
    )
    se = math.sqrt((std**2 / n if n > 1 else 0.0) + 1e4 * sampling)
    return max(0.0, mean - 1.96 * se), mean + 1.96 * se
