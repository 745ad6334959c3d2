"""Corruptions of real rollouts: the judge's own tests (IntPhys's matched possible/impossible idea).

Each corruption is a pure function ``fn(frames, states, rng) -> (frames, info)`` on a real window:
``frames`` (n, H, W, 3) uint8 with frame 0 the last context frame (never changed) and ``states`` its
n ``info["state"]``s; ``rng`` a ``numpy.random.Generator``. It returns a corrupted copy and a dict
saying what it did, or ``None`` as info (frames unchanged) when the window offers no suitable object.
Objects are repainted by their exact colour masks; erased pixels take the background colour.

=============  =======================================================  ====================
corruption     what it does (future frames only)                        meant to trip
=============  =======================================================  ====================
``delete``     an object vanishes for 1–3 frames mid-window             ``flicker``
``shift``      an object jumps by 3 radii and stays there               ``teleport``
``scale``      an object (radius ≥ 2.5 px) grows by 1.3× from mid-window  ``size``
``reverse``    a moving object's velocity reverses mid-window (it       ``velocity``
               retraces its path: frame t* + j shows frame t* − j)
``swap``       two objects exchange colours                             ``identity``
``freeze``     the controlled object stays where the context left it   ``counterfactual``
``noise``      Gaussian noise (σ = 12/255) off the objects               ``background``
``shuffle``    the future frames in random order                        ``teleport``
``overlap``    (extra) a round object jumps half-way into another       ``interpenetration``
=============  =======================================================  ====================
"""
from __future__ import annotations

import zlib
from types import SimpleNamespace

import numpy as np

from evaluate.parser import Catalogue
from evaluate.predictors import Real


def _background(frame: np.ndarray) -> np.ndarray:
    colours, counts = np.unique(frame.reshape(-1, 3), axis=0, return_counts=True)
    return colours[counts.argmax()]


def _catalogue(frames, states) -> Catalogue:
    bg = _background(frames[0])
    return Catalogue.from_rollout(SimpleNamespace(states=states, colors=dict.fromkeys(
        ("background", "static", "zone"), bg)))


def _mask(frame, colour) -> np.ndarray:
    return np.all(frame == colour, axis=-1)


def _paste(frame, mask, dx: int, dy: int, colour) -> None:
    ys, xs = np.nonzero(mask)
    ys, xs = ys + dy, xs + dx
    ok = (ys >= 0) & (ys < frame.shape[0]) & (xs >= 0) & (xs < frame.shape[1])
    frame[ys[ok], xs[ok]] = colour


def _scaled(mask: np.ndarray, s: float) -> np.ndarray:
    """The mask scaled by ``s`` about its centroid (nearest-neighbour inverse mapping)."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean() + 0.5, xs.mean() + 0.5
    qy, qx = np.mgrid[0:mask.shape[0], 0:mask.shape[1]] + 0.5
    sy = np.floor(cy + (qy - cy) / s).astype(int)
    sx = np.floor(cx + (qx - cx) / s).astype(int)
    ok = (sy >= 0) & (sy < mask.shape[0]) & (sx >= 0) & (sx < mask.shape[1])
    out = np.zeros_like(mask)
    out[ok] = mask[sy[ok], sx[ok]]
    return out


def _pick(frames, cat, rng, times, moving_at=None, round_only=False, exclude=(), min_radius=0.0):
    """A uniquely coloured, uncontrolled object fully in view (and moving, if asked) at ``times``."""
    h, w = frames.shape[1:3]
    p, r = cat.true_pos, cat.radius
    ok = []
    for i in range(len(cat.ids)):
        if not cat.unique[i] or cat.controlled[i] or i in exclude or r[i] < min_radius:
            continue
        pi = p[list(times), i]
        if not (cat.exists[list(times), i].all() and cat.visible[list(times), i].all()):
            continue
        if np.any(pi - r[i] < 0) or np.any(pi[:, 0] + r[i] > w) or np.any(pi[:, 1] + r[i] > h):
            continue
        if not all(_mask(frames[t], cat.colors[t, i]).any() for t in times):
            continue
        if moving_at is not None and np.linalg.norm(cat.true_vel[moving_at, i]) < 0.5:
            continue
        if round_only and _mask(frames[times[0]], cat.colors[times[0], i]).sum() < 0.8 * np.pi * r[i] ** 2:
            continue
        ok.append(i)
    return int(rng.choice(ok)) if ok else None


def delete(frames, states, rng):
    T = len(frames) - 1
    gap = int(rng.integers(1, 4))
    if T < gap + 3:
        return frames, None
    t0 = int(rng.integers(2, T - gap + 1))
    cat = _catalogue(frames, states)
    i = _pick(frames, cat, rng, range(t0 - 1, t0 + gap + 1))
    if i is None:
        return frames, None
    out, bg = frames.copy(), _background(frames[0])
    for t in range(t0, t0 + gap):
        out[t][_mask(out[t], cat.colors[t, i])] = bg
    return out, {"object": int(cat.ids[i]), "t": t0, "frames": gap}


def shift(frames, states, rng, radii: float = 3.0):
    T = len(frames) - 1
    t0 = max(1, T // 2)
    cat = _catalogue(frames, states)
    i = _pick(frames, cat, rng, range(t0, T + 1))
    if i is None:
        return frames, None
    h, w = frames.shape[1:3]
    r = cat.radius[i]
    path = cat.true_pos[t0:, i]
    dirs = [(np.cos(a), np.sin(a)) for a in np.arange(8) * np.pi / 4]
    fits = [u for u in dirs if np.all((path + radii * r * np.array(u) - r >= 0)
                                      & (path + radii * r * np.array(u) + r <= (w, h)))]
    if not fits:
        return frames, None
    u = np.array(fits[int(rng.integers(len(fits)))])
    dx, dy = np.round(radii * r * u).astype(int)
    out, bg = frames.copy(), _background(frames[0])
    for t in range(t0, T + 1):
        m = _mask(out[t], cat.colors[t, i])
        out[t][m] = bg
        _paste(out[t], m, dx, dy, cat.colors[t, i])
    return out, {"object": int(cat.ids[i]), "t": t0, "shift": [int(dx), int(dy)]}


def scale(frames, states, rng, factor: float = 1.3):
    T = len(frames) - 1
    t0 = max(1, T // 2)
    cat = _catalogue(frames, states)
    i = _pick(frames, cat, rng, range(t0, T + 1), min_radius=2.5)  # smaller ones cannot grow by 1.3 px-wise
    if i is None:
        return frames, None
    out = frames.copy()
    for t in range(t0, T + 1):
        big = _scaled(_mask(out[t], cat.colors[t, i]), factor)
        out[t][big] = cat.colors[t, i]
    return out, {"object": int(cat.ids[i]), "t": t0, "factor": factor}


def reverse(frames, states, rng):
    T = len(frames) - 1
    t0 = (T + 1) // 2
    cat = _catalogue(frames, states)
    i = _pick(frames, cat, rng, range(2 * t0 - T, T + 1), moving_at=t0)
    if i is None or T < 2:
        return frames, None
    out, bg = frames.copy(), _background(frames[0])
    for t in range(t0 + 1, T + 1):
        out[t][_mask(out[t], cat.colors[t, i])] = bg
        src = _mask(frames[2 * t0 - t], cat.colors[2 * t0 - t, i])
        out[t][src] = cat.colors[t, i]
    return out, {"object": int(cat.ids[i]), "t": t0}


def swap(frames, states, rng):
    T = len(frames) - 1
    cat = _catalogue(frames, states)
    i = _pick(frames, cat, rng, range(1, T + 1))
    j = _pick(frames, cat, rng, range(1, T + 1), exclude=(i,)) if i is not None else None
    if j is None:
        return frames, None
    out = frames.copy()
    for t in range(1, T + 1):
        mi, mj = _mask(frames[t], cat.colors[t, i]), _mask(frames[t], cat.colors[t, j])
        out[t][mi], out[t][mj] = cat.colors[t, j], cat.colors[t, i]
    return out, {"objects": [int(cat.ids[i]), int(cat.ids[j])]}


def freeze(frames, states, rng):
    cat = _catalogue(frames, states)
    rows = np.flatnonzero(cat.controlled & cat.exists[0])
    if len(rows) == 0:
        return frames, None
    colours = np.unique(cat.colors[0, rows], axis=0)
    first = np.any([_mask(frames[0], c) for c in colours], axis=0)
    if not first.any():
        return frames, None
    out, bg = frames.copy(), _background(frames[0])
    for t in range(1, len(frames)):
        now = np.any([_mask(out[t], c) for c in colours], axis=0)
        out[t][now] = bg
        out[t][first] = frames[0][first]
    return out, {"objects": cat.ids[rows].tolist()}


def noise(frames, states, rng, sigma: float = 12.0):
    """Gaussian noise on every pixel that is not an object's colour (background, walls, zones)."""
    cat = _catalogue(frames, states)
    out = frames.copy()
    for t in range(1, len(frames)):
        objects = np.any([_mask(frames[t], c) for c in np.unique(cat.colors[t], axis=0)], axis=0) \
            if len(cat.ids) else np.zeros(frames.shape[1:3], bool)
        m = ~objects
        jitter = rng.normal(0.0, sigma, size=(int(m.sum()), 3))
        out[t][m] = np.clip(np.round(frames[t][m] + jitter), 0, 255).astype(np.uint8)
    return out, {"sigma": sigma}


def shuffle(frames, states, rng):
    T = len(frames) - 1
    if T < 2:
        return frames, None
    perm = np.arange(T)
    while np.array_equal(perm, np.arange(T)):
        perm = rng.permutation(T)
    out = frames.copy()
    out[1:] = frames[1:][perm]
    return out, {"order": (perm + 1).tolist()}


def overlap(frames, states, rng, depth: float = 0.5):
    T = len(frames) - 1
    t0 = max(1, T // 2)
    cat = _catalogue(frames, states)
    i = _pick(frames, cat, rng, range(t0, T + 1), round_only=True)
    j = _pick(frames, cat, rng, range(t0, T + 1), exclude=(i,)) if i is not None else None
    if j is None:
        return frames, None
    out, bg = frames.copy(), _background(frames[0])
    for t in range(t0, T + 1):
        m = _mask(out[t], cat.colors[t, i])
        pi, pj = cat.true_pos[t, i], cat.true_pos[t, j]
        u = (pi - pj) / max(np.linalg.norm(pi - pj), 1e-9)
        target = pj + depth * (cat.radius[i] + cat.radius[j]) * u
        dx, dy = np.round(target - pi).astype(int)
        out[t][m] = bg
        _paste(out[t], m, dx, dy, cat.colors[t, i])
    return out, {"objects": [int(cat.ids[i]), int(cat.ids[j])], "t": t0}


CORRUPTIONS = {"delete": delete, "shift": shift, "scale": scale, "reverse": reverse, "swap": swap,
               "freeze": freeze, "noise": noise, "shuffle": shuffle, "overlap": overlap}
#: The check each corruption is meant to trip (``evaluate.metrics.coherence.CHECKS``).
INTENDED = {"delete": "flicker", "shift": "teleport", "scale": "size", "reverse": "velocity",
            "swap": "identity", "freeze": "counterfactual", "noise": "background", "shuffle": "teleport",
            "overlap": "interpenetration"}


class CorruptedPredictor(Real):
    """``real`` with a corruption applied to every predicted window (seeded by episode, sample, name)."""

    deterministic = False

    def __init__(self, corruption: str):
        if corruption not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {corruption!r}; choose from {sorted(CORRUPTIONS)}")
        self.corruption = corruption
        self.name = f"corrupt:{corruption}"

    def future(self, ep, context_frames, context_actions, future_actions, sample):
        ro = self.rollout(ep, context_frames, context_actions, future_actions, sample)
        k = len(context_frames)
        frames, _ = apply(self.corruption, ro.frames[k - 1:], ro.states[k - 1:], ep.seed, sample)
        return frames[1:]


def apply(corruption: str, frames, states, seed: int, sample: int = 0):
    """Runs a corruption with the generator the self-test and ``corrupt:NAME`` use for (seed, sample)."""
    rng = np.random.default_rng([int(seed), int(sample), zlib.crc32(corruption.encode())])
    return CORRUPTIONS[corruption](frames, states, rng)
