"""Pixels → objects, by the flat colours the real episode reports in ``info["state"]``.

Each pixel takes the nearest colour the scene draws (background, static, zone and every object colour
of the window) when its max-channel distance is ≤ ``tolerance`` (exact on real frames, where every
colour is one of those; ``DEFAULT_TOLERANCE`` for model outputs), else it belongs to nothing.

* An object whose colour no other object uses in the window is all the pixels of that colour.
* Objects that share a colour (particles of one age band, a soft body's nodes and centre) are split
  into connected components (8-connected, ``scipy.ndimage.label``) and matched one-to-one to the
  objects of that colour by Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on the
  distance from the object's true position in the real rollout at that frame to the component's
  nearest pixel (ties: nearest centroid), gated at 2 bounding radii + 1 px. An object left without a
  component (merged with another of its colour, e.g. particles in a dense stream) shares the nearest
  matched one within its gate. The real rollout thus lends each same-colour object its identity;
  a dream's same-colour object counts where it is within the gate of where it really is.

Per object and frame: area A (pixels), centroid (mean pixel index + 0.5, the renderer's convention),
equivalent radius √(A/π), orientation and elongation from the mask's second moments. Position is
NaN where the area is 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

DEFAULT_TOLERANCE = 40
_EIGHT = np.ones((3, 3), bool)


@dataclass
class Catalogue:
    """What the evaluator knows about a window's objects, from the real rollout (one row per id)."""

    ids: np.ndarray  # (N,) int64, in order of first appearance
    kind: np.ndarray  # (N,) int64
    controlled: np.ndarray  # (N,) bool
    radius: np.ndarray  # (N,) bounding radius in pixels (largest in the window)
    colors: np.ndarray  # (n, N, 3) uint8 colour per frame (nearest known one where the row is absent)
    exists: np.ndarray  # (n, N) bool: the row is in info["state"] at frame t
    true_pos: np.ndarray  # (n, N, 2) float64, NaN where absent
    true_vel: np.ndarray  # (n, N, 2) pixels per step, NaN where absent
    visible: np.ndarray  # (n, N) bool, info["state"]["visible"]
    unique: np.ndarray  # (N,) bool: no other row of the window ever has this row's colour
    known: np.ndarray  # (C, 3) uint8: background, static, zone, then every object colour
    color_index: np.ndarray  # (n, N) int64 index into ``known``

    @property
    def n(self) -> int:
        return self.colors.shape[0]

    @classmethod
    def from_rollout(cls, rollout) -> Catalogue:
        states = rollout.states
        order: dict[int, int] = {}
        for s in states:
            for i in np.asarray(s["id"]).tolist():
                order.setdefault(i, len(order))
        n, N = len(states), len(order)
        kind = np.zeros(N, np.int64)
        controlled = np.zeros(N, bool)
        radius = np.zeros(N)
        colors = np.zeros((n, N, 3), np.uint8)
        exists = np.zeros((n, N), bool)
        visible = np.zeros((n, N), bool)
        pos = np.full((n, N, 2), np.nan)
        vel = np.full((n, N, 2), np.nan)
        for t, s in enumerate(states):
            cols = np.array([order[i] for i in np.asarray(s["id"]).tolist()], np.int64)
            if len(cols) == 0:
                continue
            kind[cols] = s["kind"]
            controlled[cols] |= np.asarray(s["controlled"], bool)
            radius[cols] = np.maximum(radius[cols], s["radius"])
            colors[t, cols] = s["color"]
            exists[t, cols] = True
            visible[t, cols] = s["visible"]
            pos[t, cols] = s["position"]
            vel[t, cols] = s["velocity"]
        for i in range(N):  # fill absent frames with the nearest present frame's colour
            have = np.flatnonzero(exists[:, i])
            nearest = have[np.abs(np.arange(n)[:, None] - have[None, :]).argmin(1)]
            colors[:, i] = colors[nearest, i]
        palette = [rollout.colors[k] for k in ("background", "static", "zone")]
        obj = np.unique(colors.reshape(-1, 3), axis=0)
        known = np.concatenate([np.stack(palette), obj]).astype(np.uint8)
        # index of each row's colour per frame (object colours come after the 3 palette colours)
        flat = colors.reshape(-1, 3)
        idx = 3 + np.argmax(np.all(flat[:, None, :] == obj[None], -1), 1)
        color_index = idx.reshape(n, N)
        users: dict[int, set] = {}
        for i in range(N):
            for c in np.unique(color_index[exists[:, i], i]):
                users.setdefault(int(c), set()).add(i)
        unique = np.array([all(len(users[int(c)]) == 1 for c in np.unique(color_index[exists[:, i], i]))
                           for i in range(N)], bool)
        return cls(np.array(list(order), np.int64), kind, controlled, radius, colors, exists, pos, vel,
                   visible, unique, known, color_index)


@dataclass
class Tracks:
    """Parsed objects of one rollout, one column per catalogue row."""

    area: np.ndarray  # (n, N) pixels
    pos: np.ndarray  # (n, N, 2) centroid in pixels, NaN where area == 0
    angle: np.ndarray  # (n, N) orientation of the mask's major axis, radians in (-π/2, π/2]
    elongation: np.ndarray  # (n, N) √(λ_major / λ_minor) of the mask's second moments (1 = round)
    blobs: np.ndarray  # (n,) connected components of object colours with ≥ 2 pixels
    labels: np.ndarray  # (n, H, W) index into the catalogue's known colours, -1 = none

    @property
    def radius(self) -> np.ndarray:
        """Equivalent radius √(A/π) (n, N)."""
        return np.sqrt(self.area / np.pi)


def label_colors(frames: np.ndarray, known: np.ndarray, tolerance: int) -> np.ndarray:
    """(…, H, W, 3) uint8 → (…, H, W) index of the nearest known colour within tolerance, else -1."""
    f = np.ascontiguousarray(frames, np.uint8)
    key = (f[..., 0].astype(np.int32) << 16) | (f[..., 1].astype(np.int32) << 8) | f[..., 2]
    uniq, inverse = np.unique(key.ravel(), return_inverse=True)  # flat frames have few colours
    rgb = np.stack([uniq >> 16, (uniq >> 8) & 255, uniq & 255], -1)  # (U, 3)
    d = np.abs(rgb[:, None, :] - known[None].astype(np.int32)).max(-1)  # (U, C)
    idx = d.argmin(-1)
    lab = np.where(d[np.arange(len(uniq)), idx] <= tolerance, idx, -1)
    return lab[inverse].reshape(key.shape)


def _sums(labels: np.ndarray, count: int) -> np.ndarray:
    """(count, 6) pixel sums of regions 1…count: n, Σx, Σy, Σx², Σy², Σxy (pixel centres)."""
    rows, cols = np.nonzero(labels)
    lab = labels[rows, cols]
    x, y = cols + 0.5, rows + 0.5
    return np.stack([np.bincount(lab, w, count + 1)[1:] for w in (None, x, y, x * x, y * y, x * y)], -1)


def _moments(sums: np.ndarray):
    """Pixel sums (K, 6) → area, centroid (x, y), orientation, elongation of each region."""
    area = sums[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = sums[:, 1] / area, sums[:, 2] / area
        cxx = sums[:, 3] / area - mx ** 2 + 1 / 12
        cyy = sums[:, 4] / area - my ** 2 + 1 / 12
        cxy = sums[:, 5] / area - mx * my
        angle = 0.5 * np.arctan2(2 * cxy, cxx - cyy)
        half = np.sqrt(((cxx - cyy) / 2) ** 2 + cxy ** 2)
        major, minor = (cxx + cyy) / 2 + half, (cxx + cyy) / 2 - half
        elong = np.sqrt(major / np.maximum(minor, 1e-9))
    return area, np.stack([mx, my], -1), angle, elong


def _near(comp: np.ndarray, count: int, points: np.ndarray) -> np.ndarray:
    """(P, count) distance from each point (x, y) to the nearest pixel centre of each component."""
    ys, xs = np.nonzero(comp)
    lab = comp[ys, xs] - 1
    d = np.hypot(xs + 0.5 - points[:, :1], ys + 0.5 - points[:, 1:])  # (P, pixels)
    out = np.full((len(points), count), np.inf)
    for k in range(count):
        out[:, k] = d[:, lab == k].min(1)
    return out


def track(frames: np.ndarray, cat: Catalogue, tolerance: int = DEFAULT_TOLERANCE) -> Tracks:
    """Parses ``frames`` (n, H, W, 3), aligned with the catalogue's frames, into per-object tracks."""
    n, N = frames.shape[0], len(cat.ids)
    assert n == cat.n, f"{n} frames for a catalogue of {cat.n}"
    labels = label_colors(frames, cat.known, tolerance)  # (n, H, W)
    area = np.zeros((n, N))
    pos = np.full((n, N, 2), np.nan)
    angle = np.full((n, N), np.nan)
    elong = np.full((n, N), np.nan)
    blobs = np.zeros(n, np.int64)
    gate = 2 * cat.radius + 1.0
    for t in range(n):
        lab = labels[t]
        candidate = cat.unique | cat.exists[t]
        for c in np.unique(cat.color_index[t, candidate]):
            rows = np.flatnonzero(candidate & (cat.color_index[t] == c))
            mask = lab == c
            comp, count = ndimage.label(mask, _EIGHT)
            if count == 0:
                continue
            sums = _sums(comp, count)
            blobs[t] += int((sums[:, 0] >= 2).sum())
            if len(rows) == 1 and cat.unique[rows[0]]:  # the whole colour is the object
                a1, p1, th1, el1 = _moments(sums.sum(0, keepdims=True))
                i = rows[0]
                area[t, i], pos[t, i], angle[t, i], elong[t, i] = a1[0], p1[0], th1[0], el1[0]
                continue
            a, p, th, el = _moments(sums)
            d = _near(comp, count, cat.true_pos[t, rows])  # (rows, comps) nearest-pixel distance
            dc = np.linalg.norm(cat.true_pos[t, rows][:, None, :] - p[None, :, :], axis=-1)
            gated = np.isnan(d) | (d > gate[rows, None])
            cost = np.where(gated, 1e9, d + 0.01 * np.nan_to_num(dc))
            got = np.full(len(rows), -1)
            for r, k in zip(*linear_sum_assignment(cost)):
                if not gated[r, k]:
                    got[r] = k
            for r in np.flatnonzero(got < 0):  # merged: share the nearest component in the gate
                if not gated[r].all():
                    got[r] = int(np.argmin(cost[r]))
            for r, k in enumerate(got):
                if k >= 0:
                    i = rows[r]
                    area[t, i], pos[t, i], angle[t, i], elong[t, i] = a[k], p[k], th[k], el[k]
    return Tracks(area, pos, angle, elong, blobs, labels)


def unoccluded(cat: Catalogue, width: int, height: int, margin: float = 1.0) -> np.ndarray:
    """(n, N) bool, from the ground truth alone: the row exists and is visible, its disc (true position,
    bounding radius) lies inside the frame, and no other row's disc comes within ``margin`` pixels of
    it (rasterised shapes reach past their discs), except rows of its own colour that lie inside it
    (the parts of one drawn object, e.g. a soft body's nodes in its centre's disc; such parts are not
    unoccluded themselves)."""
    p, r = cat.true_pos, cat.radius
    inside = ((p[..., 0] - r >= 0) & (p[..., 0] + r <= width) & (p[..., 1] - r >= 0)
              & (p[..., 1] + r <= height))
    d = np.linalg.norm(p[:, :, None, :] - p[:, None, :, :], axis=-1)  # (n, N, N), NaN where absent
    meets = d < (r[:, None] + r[None, :] + margin)
    same = cat.color_index[:, :, None] == cat.color_index[:, None, :]
    part = same & (d + r[None, None, :] <= r[None, :, None])  # row j lies inside row i's disc
    meets &= ~part
    meets[:, np.arange(len(r)), np.arange(len(r))] = False
    return cat.exists & cat.visible & inside & ~np.any(meets, axis=-1)
