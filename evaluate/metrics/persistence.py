"""Persistence: do the real objects stay in the dream, whole, once, and where they belong?

``pr``, ``pd``: (n, N) presence in the real and dream window (see ``evaluate.metrics``); only future
frames t ≥ 1 are scored. Flicker, size, teleports and identity look only at uniquely coloured objects:
same-colour objects (particles of one age band) swap and merge in pixels, so their tracks are not
identities.

* **Persistence rate** = Σ_t≥1 (pr ∧ pd) / Σ_t≥1 pr: real object-frames also present in the dream.
* **Flicker** = runs of 1–3 future frames where an object is absent from the dream but present in the
  real window, with the dream showing it just before and just after, per 100 real object-frames.
* **Count accuracy** = fraction of future frames where the dream shows as many objects as the real.
* **Spurious blobs** = mean over future frames of max(0, dream blobs − real blobs), blobs being the
  connected components (≥ 2 px) of object colours.
* **Size constancy** = (max r − min r) / r₀ of an object's equivalent radius over the frames where it
  is present in both (r₀ at the first); ``size_excess`` = the largest dream − real difference of it.
* **Teleport** = a dream step ‖p̂_t − p̂_{t−1}‖ > max(1.5·v_max, 2r), v_max the largest real (parsed)
  step of any object in the window and r the object's bounding radius; ``teleport_rate`` per dream
  object-step.
* **Identity errors**: per future frame, the Hungarian matching of dream to real positions of the
  uniquely coloured objects present in the real frame and visible (any pixel) in the dream; objects it
  reassigns count as errors when that lowers the total distance by more than 1 px. Rate per
  object-frame (a colour swap gives ≈ 1 for the pair).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def persistence_rate(pr: np.ndarray, pd: np.ndarray) -> float:
    denom = pr[1:].sum()
    return float((pr[1:] & pd[1:]).sum() / denom) if denom else float("nan")


def persistence_curve(pr: np.ndarray, pd: np.ndarray) -> np.ndarray:
    """(T,) persistence rate of each future frame."""
    denom = pr[1:].sum(1)
    with np.errstate(invalid="ignore"):
        return np.where(denom > 0, (pr[1:] & pd[1:]).sum(1) / np.maximum(denom, 1), np.nan)


def flicker(pr: np.ndarray, pd: np.ndarray, max_gap: int = 3) -> float:
    n, N = pr.shape
    events = 0
    for i in range(N):
        t = 1
        while t < n:
            if pd[t, i] or not pr[t, i]:
                t += 1
                continue
            end = t
            while end < n and not pd[end, i] and pr[end, i]:
                end += 1
            if end - t <= max_gap and pd[t - 1, i] and end < n and pd[end, i]:
                events += 1
            t = end
    real_frames = pr[1:].sum()
    return 100.0 * events / real_frames if real_frames else float("nan")


def count_accuracy(pr: np.ndarray, pd: np.ndarray) -> float:
    return float(np.mean(pr[1:].sum(1) == pd[1:].sum(1))) if len(pr) > 1 else float("nan")


def spurious_blobs(real_blobs: np.ndarray, dream_blobs: np.ndarray) -> float:
    return float(np.mean(np.maximum(0, dream_blobs[1:] - real_blobs[1:])))


def _size_constancy(r: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = np.full(r.shape[1], np.nan)
    for i in range(r.shape[1]):
        ri = r[keep[:, i], i]
        if len(ri) >= 2 and ri[0] > 0:
            out[i] = (ri.max() - ri.min()) / ri[0]
    return out


def size_constancy(real_r: np.ndarray, dream_r: np.ndarray, pr: np.ndarray, pd: np.ndarray):
    """→ (mean dream size constancy, largest dream − real excess) over objects present in both."""
    both = pr & pd
    sd, sr = _size_constancy(dream_r, both), _size_constancy(real_r, both)
    ok = ~np.isnan(sd)
    if not ok.any():
        return float("nan"), float("nan")
    return float(sd[ok].mean()), float((sd - sr)[ok].max())


def max_real_step(real_pos: np.ndarray, pr: np.ndarray) -> float:
    """Largest parsed real step ‖p_t − p_{t−1}‖ of any object over the window (0 if none)."""
    step = np.linalg.norm(np.diff(real_pos, axis=0), axis=-1)
    ok = pr[1:] & pr[:-1]
    return float(np.where(ok, np.nan_to_num(step), 0.0).max()) if ok.any() else 0.0


def teleports(real_pos, dream_pos, pr, pd, radius) -> tuple[int, float]:
    """→ (number of teleport steps, rate per dream object-step)."""
    limit = np.maximum(1.5 * max_real_step(real_pos, pr), 2.0 * radius)  # (N,)
    step = np.linalg.norm(np.diff(dream_pos, axis=0), axis=-1)  # (T, N)
    ok = pd[1:] & pd[:-1]
    jumps = ok & (np.nan_to_num(step) > limit[None])
    return int(jumps.sum()), float(jumps.sum() / ok.sum()) if ok.sum() else float("nan")


def identity_errors(real_pos, dream_pos, pr, dream_area, unique) -> float:
    errors = frames = 0
    for t in range(1, len(pr)):
        rows = np.flatnonzero(pr[t] & (dream_area[t] > 0) & unique)
        if len(rows) < 2:
            continue
        cost = np.linalg.norm(dream_pos[t, rows][:, None] - real_pos[t, rows][None], axis=-1)
        r, c = linear_sum_assignment(cost)
        frames += len(rows)
        if np.trace(cost) - cost[r, c].sum() > 1.0:
            errors += int((r != c).sum())
    return errors / frames if frames else float("nan")
