"""Physics: the dream's objects against the real ones, from parsed positions in both rollouts.

``rp``, ``dp``: (n, N, 2) parsed positions; ``pr``, ``pd``: (n, N) presence; t ≥ 1 scored.

* **Position error** e_pos(t) = mean over objects present in both of ‖p̂_t − p_t‖ (pixels; also as a
  fraction of the frame width). **Final error > radius**: some object present in the real last frame is
  absent from the dream's, or further than its bounding radius from its real position.
* **Velocity error** = mean ‖v̂_t − v_t‖ with v_t = p_t − p_{t−1} (pixels/step) over object-frames where
  both are defined; ``vel_rel_max`` = the largest per-object Σ‖v̂ − v‖ / Σ‖v‖ over objects whose mean
  real speed is ≥ 0.5 px/step (slower ones are dominated by rasterisation noise).
* **Speed gain** (``speed_gain``): on the free-flight segments below, the least-squares factor g that
  maps real onto dream velocities, g = Σ v̂_t·v_t / Σ ‖v_t‖², over the steps where the real and the
  dream object are present at t − 1 and t. 1 = the dream keeps the objects' momentum; < 1 = "dream
  friction" (objects slow down between contacts, a bias that the unsigned ``vel_err`` cannot show);
  > 1 = they speed up; 0 = frozen (``copy-last``). Jitter around the right velocity averages out
  instead of adding speed. NaN when the real objects move less than 0.5 px/step on average there
  (rasterisation noise would dominate). One gain per rollout; the summary is their mean.
* **Orientation error** = mean |θ̂ − θ| (mod π) of elongated objects (real elongation ≥ 1.5), radians.
* **Gravity fit**: on free-flight segments of the real window (a dynamic, uncontrolled, uniquely
  coloured object, clear of everything by the ground truth: no contact began, no arbiter, unoccluded,
  for ≥ 6 frames) fit
  y = y₀ + v₀t + ½ĝt² to real and dream positions. ``gravity_err`` = mean |ĝ_dream − ĝ_real| / |g|;
  ``gravity_err_true`` = mean |ĝ_dream − g| / |g| (on ``real`` this is the fit's own floor); g is the
  scene's gravity in pixels/step² (both NaN without gravity; ``gravity_abs_err`` in pixels/step²).
* **Collisions**: an event is a local maximum of ‖p_{t+1} − 2p_t + p_{t−1}‖ above max(3|g|, 1 px/step²)
  of an uncontrolled object (non-maximum suppression over ±2 frames). Precision = dream events with a
  real event of the same object within ±2 frames / dream events; recall = real events matched likewise
  / real events. The detector's own agreement with ``info["contacts"]`` is reported as a floor.
* **Interpenetration**: a future frame where the discs (radius √(A_ref/π), at the parsed centroids) of
  two round, uniquely coloured objects (A_ref ≥ 0.8·π·r_bound²) overlap by more than 5% of the smaller
  disc (same-colour objects such as particles are not told apart when they overlap), or where an
  object's centroid falls on static geometry (a pixel of the static colour in any real frame). Pairs
  and objects that do so in the real window itself are exempt (they do not collide, or are not round).
  Reported as the fraction of future frames.
* **Outcome**: per object present in the real context frame, "still present in the last frame" (ball
  not lost, leaf not caught, coin not taken); pooled over the suite into accuracy and Cohen's κ.
"""
from __future__ import annotations

import numpy as np

from evaluate.metrics import nanmean, nanmean_axis

MIN_FLIGHT = 6
OVERLAP = 0.05
MIN_SPEED = 0.5


def position_error(rp, dp, pr, pd, radius):
    """→ (curve (T,), mean over object-frames, final-error-exceeds-radius flag)."""
    both = (pr & pd)[1:]
    err = np.where(both, np.linalg.norm(dp[1:] - rp[1:], axis=-1), np.nan)  # (T, N)
    curve = nanmean_axis(err, axis=1)
    mean = nanmean(err)
    last = pr[-1]
    final = err[-1] if len(err) else np.zeros(0)
    exceeds = bool(np.any(last & (~pd[-1] | (np.nan_to_num(final, nan=np.inf) > radius))))
    return curve, mean, exceeds


def within(rp, dp, pr, pd, px: float = 1.0) -> float:
    """Share of the real future object-frames that the dream shows within ``px`` pixels (absent in the
    dream counts as a miss): the tokenizer's bar is 1.0 at 1 px on its reconstructions."""
    real = pr[1:]
    if not real.any():
        return float("nan")
    err = np.linalg.norm(dp[1:] - rp[1:], axis=-1)
    return float((real & pd[1:] & (np.nan_to_num(err, nan=np.inf) <= px)).sum() / real.sum())


def _velocity(pos, pres):
    return np.where((pres[1:] & pres[:-1])[..., None], np.diff(pos, axis=0), np.nan)


def velocity_error(rp, dp, pr, pd):
    """→ (mean ‖v̂ − v‖, largest per-object relative error)."""
    vr, vd = _velocity(rp, pr), _velocity(dp, pd)
    err = np.linalg.norm(vd - vr, axis=-1)  # (T, N), NaN where undefined
    ok = ~np.isnan(err)
    if not ok.any():
        return float("nan"), float("nan")
    speed = np.where(ok, np.linalg.norm(vr, axis=-1), 0.0)
    tot, count = speed.sum(0), ok.sum(0)
    moving = tot >= MIN_SPEED * np.maximum(count, 1)
    rel = np.where(moving & (count > 0), np.where(ok, err, 0.0).sum(0) / np.maximum(tot, 1e-9), np.nan)
    rel = rel[~np.isnan(rel)]
    return float(err[ok].mean()), float(rel.max()) if rel.size else float("nan")


def speed_gain(rp, dp, pr, pd, segs) -> float:
    """Σ v̂·v / Σ ‖v‖² over the steps of free-flight segments where both objects are defined."""
    dot, norm2, speed, count = 0.0, 0.0, 0.0, 0
    for i, a, b in segs:
        vr = _velocity(rp[a:b, i], pr[a:b, i])  # (b - a - 1, 2)
        vd = _velocity(dp[a:b, i], pd[a:b, i])
        ok = ~np.isnan(vr).any(-1) & ~np.isnan(vd).any(-1)
        dot += float((vd[ok] * vr[ok]).sum())
        norm2 += float((vr[ok] ** 2).sum())
        speed += float(np.linalg.norm(vr[ok], axis=-1).sum())
        count += int(ok.sum())
    if count == 0 or speed < MIN_SPEED * count:
        return float("nan")
    return dot / norm2


def orientation_error(real_angle, dream_angle, real_elong, pr, pd) -> float:
    e = np.where(pr, real_elong, 0.0)
    elongated = np.sum(e >= 1.5, axis=0) > 0.5 * np.maximum(pr.sum(0), 1)  # median elongation ≥ 1.5
    both = (pr & pd)[1:] & elongated[None]
    if not both.any():
        return float("nan")
    d = (dream_angle[1:] - real_angle[1:] + np.pi / 2) % np.pi - np.pi / 2
    return float(np.abs(d[both]).mean())


def free_flight(cat, clear, touching, contacts, dynamic, min_len: int = MIN_FLIGHT):
    """Segments (row, first frame, stop frame) where a dynamic, uncontrolled row flies free and clear."""
    n, N = clear.shape
    free = clear & ~cat.controlled[None] & cat.unique[None]
    for t in range(n):
        hit = set(np.asarray(contacts[t]).ravel().tolist()) | set(touching[t])
        for i, rid in enumerate(cat.ids.tolist()):
            if rid in hit or rid not in dynamic[t]:
                free[t, i] = False
    segs = []
    for i in range(N):
        t = 0
        while t < n:
            if not free[t, i]:
                t += 1
                continue
            end = t
            while end < n and free[end, i]:
                end += 1
            if end - t >= min_len:
                segs.append((i, t, end))
            t = end
    return segs


def fit_gravity(pos, segs) -> np.ndarray:
    """ĝ (pixels/step², +y down) of each segment; NaN where the object is missing in a frame."""
    out = []
    for i, a, b in segs:
        y = pos[a:b, i, 1]
        out.append(np.nan if np.isnan(y).any() else 2.0 * np.polyfit(np.arange(b - a), y, 2)[0])
    return np.array(out)


def gravity_errors(rp, dp, segs, g: float):
    """→ (|ĝ_d − ĝ_r|/|g|, |ĝ_d − g|/|g|, |ĝ_d − ĝ_r| px/step²), each a mean over segments."""
    if not segs:
        return float("nan"), float("nan"), float("nan")
    gr, gd = fit_gravity(rp, segs), fit_gravity(dp, segs)
    ok = ~np.isnan(gr) & ~np.isnan(gd)
    if not ok.any():
        return float("nan"), float("nan"), float("nan")
    abs_err = float(np.abs(gd - gr)[ok].mean())
    if abs(g) < 1e-9:
        return float("nan"), float("nan"), abs_err
    return abs_err / abs(g), float(np.abs(gd - g)[ok].mean() / abs(g)), abs_err


def collision_events(pos, pres, controlled, g: float) -> list[tuple[int, int]]:
    thr = max(3.0 * abs(g), 1.0)
    acc = np.linalg.norm(pos[2:] - 2 * pos[1:-1] + pos[:-2], axis=-1)  # (n-2, N), centred at t = 1…n-2
    ok = pres[2:] & pres[1:-1] & pres[:-2]
    acc = np.where(ok, np.nan_to_num(acc), 0.0)
    events = []
    for i in np.flatnonzero(~controlled):
        a = acc[:, i]
        for k in np.flatnonzero(a > thr):
            if a[k] >= a[max(k - 2, 0):k + 3].max():
                events.append((int(i), int(k + 1)))
    return events


def match_events(real_events, dream_events, tol: int = 2) -> dict:
    """Counts for precision/recall: dream events matched, dream events, real matched, real events."""
    def hits(a, b):
        return sum(any(i == j and abs(t - s) <= tol for j, s in b) for i, t in a)
    return {"tp_dream": hits(dream_events, real_events), "n_dream": len(dream_events),
            "tp_real": hits(real_events, dream_events), "n_real": len(real_events)}


def contact_events(cat, contacts, pres) -> list[tuple[int, int]]:
    """``info["contacts"]`` as (row, frame) events of uncontrolled rows present around the frame."""
    index = {rid: i for i, rid in enumerate(cat.ids.tolist())}
    events = set()
    for t in range(1, len(contacts) - 1):
        for rid in np.asarray(contacts[t]).ravel().tolist():
            i = index.get(rid)
            if i is not None and not cat.controlled[i] and pres[t - 1:t + 2, i].all():
                events.add((i, t))
    return sorted(events)


def _lens(d, r1, r2):
    """Area of the intersection of two discs at distance d."""
    d = np.maximum(d, 1e-12)
    inside = d <= np.abs(r1 - r2)
    with np.errstate(all="ignore"):
        a1 = r1 ** 2 * np.arccos(np.clip((d ** 2 + r1 ** 2 - r2 ** 2) / (2 * d * r1), -1, 1))
        a2 = r2 ** 2 * np.arccos(np.clip((d ** 2 + r2 ** 2 - r1 ** 2) / (2 * d * r2), -1, 1))
        k = 0.5 * np.sqrt(np.clip((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2), 0, None))
    area = np.where(d >= r1 + r2, 0.0, a1 + a2 - k)
    return np.where(inside, np.pi * np.minimum(r1, r2) ** 2, area)


def _overlaps(pos, pres, rho, round_):
    """(n, N, N) bool: round objects whose discs overlap by > OVERLAP of the smaller disc."""
    d = np.linalg.norm(pos[:, :, None] - pos[:, None], axis=-1)
    r1, r2 = rho[:, None], rho[None, :]
    small = np.maximum(np.pi * np.minimum(r1, r2) ** 2, 1e-9)
    frac = _lens(np.nan_to_num(d, nan=1e9), r1, r2) / small
    both = pres[:, :, None] & pres[:, None, :] & (round_[:, None] & round_[None, :])
    out = both & (frac > OVERLAP)
    out[:, np.arange(len(rho)), np.arange(len(rho))] = False
    return out


def _on_static(pos, pres, static):
    h, w = static.shape
    xy = np.floor(np.nan_to_num(pos, nan=-1.0)).astype(np.int64)
    ok = pres & (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
    hit = np.zeros(pres.shape, bool)
    hit[ok] = static[xy[..., 1][ok], xy[..., 0][ok]]
    return hit


def interpenetration(rp, dp, pr, pd, a_ref, radius, unique, static):
    """→ fraction of future frames with an overlapping round pair or a centroid on static geometry."""
    round_ = unique & (np.nan_to_num(a_ref) >= 0.8 * np.pi * radius ** 2) & (radius > 0)
    rho = np.sqrt(np.nan_to_num(a_ref) / np.pi)
    exempt = _overlaps(rp, pr, rho, round_).any(axis=0)
    pairs = _overlaps(dp, pd, rho, round_) & ~exempt[None]
    cross = _on_static(dp, pd, static) & ~_on_static(rp, pr, static).any(axis=0)[None]
    bad = pairs.any(axis=(1, 2)) | cross.any(axis=1)
    return float(bad[1:].mean()) if len(bad) > 1 else float("nan")


def outcomes(pr, pd) -> list[tuple[bool, bool]]:
    """(real, dream) "still present at the end" for each object present in the real context frame."""
    return [(bool(pr[-1, i]), bool(pd[-1, i])) for i in np.flatnonzero(pr[0])]


def cohen_kappa(pairs) -> tuple[float, float]:
    """→ (accuracy, κ) of binary (real, dream) pairs; κ = 1 when they agree and only one class occurs."""
    if not pairs:
        return float("nan"), float("nan")
    a = np.array(pairs, bool)
    po = float(np.mean(a[:, 0] == a[:, 1]))
    p1, p2 = a[:, 0].mean(), a[:, 1].mean()
    pe = p1 * p2 + (1 - p1) * (1 - p2)
    if pe >= 1.0:
        return po, 1.0 if po == 1.0 else 0.0
    return po, float((po - pe) / (1 - pe))
