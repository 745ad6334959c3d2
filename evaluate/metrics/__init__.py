"""Metrics: each compares a dream's parsed objects (or frames) with the real rollout's, window by window.

A window has ``n = T + 1`` frames: index 0 is the last (real) context frame, 1 … T the future. Every
object metric reads both rollouts through the same parser (``evaluate.parser``), so ``real`` against
itself is exact by construction; what the parser cannot see is reported as its own floor beside them.

Presence (the notes' rule): an object is present in a frame when its mask area is at least half its
reference area A_ref: the median of its non-zero areas over the real window, or for objects that
share their colour with others (whose component may be a merged clump) the 10th percentile.
"""
from __future__ import annotations

import warnings

import numpy as np

PRESENT_FRACTION = 0.5


def reference_area(real_area: np.ndarray, unique: np.ndarray) -> np.ndarray:
    """(n, N) real areas → (N,) A_ref (NaN for a row never seen); ``unique`` (N,) colour not shared."""
    a = np.where(real_area > 0, real_area, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: rows never seen
        return np.where(unique, np.nanmedian(a, axis=0), np.nanpercentile(a, 10, axis=0))


def present(area: np.ndarray, a_ref: np.ndarray) -> np.ndarray:
    """(n, N) bool: area ≥ PRESENT_FRACTION × A_ref."""
    with np.errstate(invalid="ignore"):
        return area >= PRESENT_FRACTION * a_ref


def nanmean(x) -> float:
    x = np.asarray(x, np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def nanmean_axis(x, axis: int) -> np.ndarray:
    """np.nanmean along ``axis`` without the all-NaN warning (NaN where nothing is defined)."""
    x = np.asarray(x, np.float64)
    ok = ~np.isnan(x)
    n = ok.sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(ok, x, 0.0).sum(axis) / np.maximum(n, 1), np.nan)
