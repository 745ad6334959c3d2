"""Controllability: does the dream answer the actions?

* **ΔtPSNR_t** (Genie) = PSNR_t(real, dream with the true actions) − PSNR_t(real, dream with uniformly
  random actions) at t = 4 and 16, each PSNR from the MSE pooled over samples (and, in a suite's
  summary, over episodes). Positive = the actions matter.
* **Counterfactual direction**: from the same context, two constant action sequences A and B (the
  scene's first pair in ``OPPOSITES``: left/right, …) in the dream and in the real scene;
  Δp = p_A(T) − p_B(T) of the controlled objects' parsed final positions (concatenated).
  cos = cos(Δp_dream, Δp_real) and gain = ‖Δp_dream‖ / ‖Δp_real‖ (ideal 1, 1); a dream that does not
  move the object gets cos = gain = 0. NaN where ‖Δp_real‖ < 1 px (the action does not move the
  controlled object's centroid, e.g. rotors turning on a pivot) or the action space is not Discrete.
"""
from __future__ import annotations

import numpy as np

from evaluate.metrics.fidelity import psnr_from_mse

TIMES = (4, 16)
OPPOSITES = (("left", "right"), ("roll_left", "roll_right"), ("up", "down"), ("aim_left", "aim_right"),
             ("clockwise", "counter_clockwise"), ("inflate", "deflate"))
MIN_REAL_PX = 1.0


def opposite_actions(names) -> tuple[int, int] | None:
    """Indices of the first opposite pair of action names, or None."""
    names = list(names)
    for a, b in OPPOSITES:
        if a in names and b in names:
            return names.index(a), names.index(b)
    return None


def opposite_box_actions(space) -> tuple[np.ndarray, np.ndarray] | None:
    """For a Box action space: the lowest and the highest value of its first dimension, the others at
    the middle of their range (in the scenes the first dimension is the main control: paddle, basket,
    x thrust, turn …), or None for a space without a finite first dimension."""
    low, high = np.asarray(space.low, np.float64).ravel(), np.asarray(space.high, np.float64).ravel()
    if not (len(low) and np.isfinite(low).all() and np.isfinite(high).all() and high[0] > low[0]):
        return None
    middle = (low + high) / 2
    a, b = middle.copy(), middle.copy()
    a[0], b[0] = low[0], high[0]
    shape, dtype = space.shape, space.dtype
    return a.reshape(shape).astype(dtype), b.reshape(shape).astype(dtype)


def delta_psnr(mse_true: np.ndarray, mse_random: np.ndarray, times=TIMES) -> dict[str, float]:
    """(R, T) per-rollout MSE curves → {"delta_psnr@t": …} for the times within the horizon."""
    out = {}
    for t in times:
        if t <= mse_true.shape[1]:
            gain = psnr_from_mse(mse_true[:, t - 1].mean()) - psnr_from_mse(mse_random[:, t - 1].mean())
            out[f"delta_psnr@{t}"] = float(gain)
    return out


def counterfactual(real_a, real_b, dream_a, dream_b) -> tuple[float, float]:
    """Final positions (N, 2) of the controlled rows (NaN where absent) → (cos, gain)."""
    keep = ~np.isnan(real_a).any(1) & ~np.isnan(real_b).any(1)
    dr = (real_a - real_b)[keep].ravel()
    if np.linalg.norm(dr) < MIN_REAL_PX:
        return float("nan"), float("nan")
    dd = np.nan_to_num((dream_a - dream_b)[keep]).ravel()  # a missing object did not move
    nd = np.linalg.norm(dd)
    if nd < 1e-9:
        return 0.0, 0.0
    if np.array_equal(dd, dr):  # exact on `real` (no rounding in the cosine)
        return 1.0, 1.0
    return float(dd @ dr / (nd * np.linalg.norm(dr))), float(nd / np.linalg.norm(dr))
