"""Diversity: with one context frame the hidden velocities are unknown, so samples should spread.

From 1 real context frame and the true actions, S dream samples and S ``real-redrawn`` samples (the
same start with every dynamic body's velocity turned to a random direction, speed kept: the velocities
one frame does not show, redrawn, as evaluation-notes.md asks of this calibration):

* **Spread** = mean over objects (present in the context frame and in at least two samples' final
  frames) of √(mean_s ‖p_s − p̄‖²) of the parsed final positions, over the samples that show it.
  **Ratio** = dream spread / real-redrawn spread: collapse below 0.25, over-dispersion above 4 (NaN
  when the physical spread is under 0.05 px); the scene's figure pools the episodes
  (``pooled_ratio``). ``real`` is deterministic (it knows the hidden state) so its ratio is 0 by
  design; ``real-perturbed`` knows the velocities up to 1%, and only bounces amplify that (measured,
  BouncingBalls, 48 episodes: 0.14 from seed 100000, 0.31 from 200000).
* **Pairwise dissimilarity** = mean 1 − SSIM between the samples' final frames.
* **Best-of-K / mean-of-K** = mean over objects of min_s e_s / mean_s e_s of the final position error
  (1 = samples equally good; small = one sample is much better than the average).
"""
from __future__ import annotations

import itertools

import numpy as np

from evaluate.metrics.fidelity import ssim

COLLAPSE, OVERDISPERSED, MIN_SPREAD = 0.25, 4.0, 0.05


def spread(final: np.ndarray, keep: np.ndarray) -> float:
    """final (S, N, 2) positions (NaN where absent), keep (N,) rows to score → spread in pixels: per
    object, √(mean ‖p_s − p̄‖²) over the samples that show it (at least 2), then the mean over objects.
    Requiring every sample would drop exactly the objects whose fate differs most between samples (a
    ball that leaves the frame in one of them)."""
    shown = ~np.isnan(final).any(axis=2)  # (S, N)
    rows = np.flatnonzero(keep & (shown.sum(0) >= 2))
    if not len(rows):
        return float("nan")
    per_object = []
    for j in rows:
        p = final[shown[:, j], j]  # (s_j, 2)
        per_object.append(np.sqrt(((p - p.mean(0)) ** 2).sum(-1).mean()))
    return float(np.mean(per_object))


def ratio(dream_spread: float, real_spread: float) -> float:
    if np.isnan(real_spread) or real_spread < MIN_SPREAD:
        return float("nan")
    return dream_spread / real_spread


def pooled_ratio(dream_spreads, real_spreads) -> float:
    """The scene's ratio: mean dream spread / mean reference spread over the episodes where both were
    scored. A mean of per-episode ratios is ruled by the few episodes whose reference barely spreads
    (measured on BouncingBalls: per-episode ratios from 0.05 to 174, mean 12.9, pooled 0.49)."""
    return ratio(float(np.mean(dream_spreads)), float(np.mean(real_spreads)))


def pairwise_dissimilarity(final_frames: np.ndarray) -> float:
    """(S, H, W, 3) → mean 1 − SSIM over sample pairs."""
    pairs = list(itertools.combinations(range(len(final_frames)), 2))
    if not pairs:
        return float("nan")
    a = np.stack([final_frames[i] for i, _ in pairs])
    b = np.stack([final_frames[j] for _, j in pairs])
    return float(np.mean(1.0 - ssim(a, b)))


def best_over_mean(final: np.ndarray, real_final: np.ndarray, keep: np.ndarray) -> float:
    err = np.linalg.norm(final - real_final[None], axis=-1)  # (S, N)
    rows = keep & ~np.isnan(err).any(0)
    m = err[:, rows].mean(0)
    ok = m > 1e-9
    if not ok.any():
        return float("nan")
    return float((err[:, rows].min(0)[ok] / m[ok]).mean())
