"""Statistics helpers shared by the measurements: rank correlation and slope fits.

Each takes plain arrays and returns NaN where the statistic is undefined (too few points, a
constant side), so that a claim with such data is judged inconclusive instead of crashing.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

MIN_FIT_POINTS = 3  # a log-log slope needs at least three points with a positive value


def spearman(x, y) -> float:
    """Spearman rank correlation; NaN with fewer than 3 points or a constant side."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(x, y).statistic)


def slope_vs_log_width(widths, values: np.ndarray) -> np.ndarray:
    """Least-squares slope of values (pairs x widths) against log2(width), per pair."""
    lw = np.log2(np.asarray(widths, dtype=float))
    lw = lw - lw.mean()
    v = values - values.mean(axis=1, keepdims=True)
    return (v * lw).sum(axis=1) / (lw**2).sum()


def loglog_slope(widths, values) -> tuple[float, int]:
    """Least-squares slope of log(value) against log(width) and the number of points used.
    A barrier can be exactly 0 (the path never rises above the chord), where the log is
    undefined; such points are left out, and fewer than MIN_FIT_POINTS give NaN (no verdict)."""
    x, y = np.log(np.asarray(widths, float)), np.asarray(values, float)
    keep = np.isfinite(y) & (y > 0)
    if keep.sum() < MIN_FIT_POINTS:
        return math.nan, int(keep.sum())
    slope = np.polyfit(x[keep], np.log(y[keep]), 1)[0]
    return float(slope), int(keep.sum())


def row_means(values: np.ndarray) -> np.ndarray:
    """Mean of each row over its finite entries; NaN for a row without any."""
    finite = np.isfinite(values)
    sums = np.where(finite, values, 0.0).sum(axis=1)
    counts = finite.sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(values), np.nan), where=counts > 0)


def first_width_below(widths, barriers, threshold: float) -> float:
    """The smallest width from which on every barrier is <= threshold; NaN if none."""
    widths, barriers = list(widths), np.asarray(barriers, float)
    for i, w in enumerate(widths):
        if np.all(barriers[i:] <= threshold):
            return float(w)
    return math.nan
