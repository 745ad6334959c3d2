"""The renderer: world-unit drawing calls → an RGB uint8 frame at the observation's own size.

Pure drawing: no RNG, no window, no HUD text. Scenes describe what is on screen through a
:class:`Canvas`, in world units; the canvas scales to pixels once (``scale = height / world_height``,
the same on both axes, so circles stay round on non-square frames).

Pixel convention (shared with ``info["state"]`` and the evaluators' parser): pixel ``(col, row)``
covers ``[col, col+1) × [row, row+1)`` in continuous pixel coordinates, so the centroid of an object's
mask is ``mean(index) + 0.5``. Circles are rasterised here with numpy because ``pygame.draw.circle``
truncates centres (≈ 1.5 px median error measured here) and polygons come out lopsided; the exact
disc (pixel centres within r) lands within ≈ 0.09 px median with the true area.
Nothing is anti-aliased: every object stays one flat colour for the parser.
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402  (after the prompt switch)
import pymunk  # noqa: E402


def _pixel_span(a: float, b: float) -> tuple[int, int]:
    """First and past-the-last pixel whose centre lies in [a, b); at least one pixel."""
    lo, hi = math.ceil(a - 0.5), math.ceil(b - 0.5)
    if hi <= lo:
        lo = math.floor((a + b) / 2)
        hi = lo + 1
    return lo, hi


@functools.lru_cache(maxsize=64)
def _disc_offsets(r: float) -> tuple[np.ndarray, np.ndarray]:
    """Column and row offsets of the pixels of a disc of radius ``r`` pixels around its centre pixel."""
    reach = int(math.ceil(r))
    oy, ox = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    keep = (ox * ox + oy * oy) <= max(r * r, 0.25)
    return ox[keep], oy[keep]


class Canvas:
    """An off-screen surface of ``width × height`` pixels showing a world of ``world_height`` units."""

    def __init__(self, width: int, height: int, world_height: float):
        self.width, self.height = int(width), int(height)
        self.scale = self.height / float(world_height)
        self.world_width = self.width / self.scale
        self.world_height = float(world_height)
        # 24-bit with R, G, B in byte order: the surface's memory *is* an (H, W, 3) RGB image, so a
        # frame is one memcpy (8x faster than pygame.image.tobytes at 64x64, 2x at 256x256).
        self.surface = pygame.Surface((self.width, self.height), depth=24,
                                      masks=(0x0000FF, 0x00FF00, 0xFF0000, 0))
        pitch = self.surface.get_pitch()
        self._rows = np.frombuffer(self.surface.get_buffer(), np.uint8).reshape(
            self.height, pitch)[:, :3 * self.width].reshape(self.height, self.width, 3)
        # A permanent (W, H, 3) view for numpy drawing; pygame drawing works beside it.
        self._px = pygame.surfarray.pixels3d(self.surface)
        self._centres = np.arange(max(self.width, self.height)) + 0.5  # pixel centres

    # -- coordinates -------------------------------------------------------------------------
    def to_px(self, xy) -> tuple[float, float]:
        return (xy[0] * self.scale, xy[1] * self.scale)

    # -- primitives (world units) ------------------------------------------------------------
    def clear(self, color) -> None:
        self.surface.fill(color)

    def circle(self, center, radius: float, color) -> None:
        """Fills the pixels whose centres lie within ``radius`` of ``center`` (at least one pixel)."""
        s = self.scale
        cx, cy, r = center[0] * s, center[1] * s, radius * s
        x0, x1 = max(int(math.floor(cx - r)), 0), min(int(math.ceil(cx + r)) + 1, self.width)
        y0, y1 = max(int(math.floor(cy - r)), 0), min(int(math.ceil(cy + r)) + 1, self.height)
        if x0 >= x1 or y0 >= y1:
            return
        dx = self._centres[x0:x1] - cx
        dy = self._centres[y0:y1] - cy
        inside = dx[:, None] ** 2 + dy[None, :] ** 2 <= max(r * r, 0.5)
        self._px[x0:x1, y0:y1][inside] = color

    def polygon(self, points, color) -> None:
        s = self.scale
        pygame.draw.polygon(self.surface, color, [(x * s, y * s) for x, y in points])

    def rect(self, x0: float, y0: float, x1: float, y1: float, color) -> None:
        """An axis-aligned box: exactly the pixels whose centres lie inside (one slice write); a box
        thinner than a pixel still gets one row or column, so thin lines never vanish."""
        s = self.scale
        c0, c1 = _pixel_span(x0 * s, x1 * s)
        r0, r1 = _pixel_span(y0 * s, y1 * s)
        c0, c1, r0, r1 = max(c0, 0), min(c1, self.width), max(r0, 0), min(r1, self.height)
        if c0 < c1 and r0 < r1:
            self._px[c0:c1, r0:r1] = color

    def segment(self, a, b, radius: float, color) -> None:
        """A thick line with rounded ends (pymunk's Segment shape)."""
        ax, ay = a
        bx, by = b
        dx, dy = bx - ax, by - ay
        length = math.hypot(dx, dy) or 1e-9
        nx, ny = -dy / length * radius, dx / length * radius
        self.polygon(((ax + nx, ay + ny), (bx + nx, by + ny), (bx - nx, by - ny), (ax - nx, ay - ny)),
                     color)
        if radius * self.scale >= 1.0:
            self.circle(a, radius, color)
            self.circle(b, radius, color)

    def shape(self, shape: pymunk.Shape, color) -> None:
        """Draws a pymunk shape where its body is now."""
        body = shape.body
        if isinstance(shape, pymunk.Circle):
            self.circle(body.local_to_world(shape.offset), shape.radius, color)
        elif isinstance(shape, pymunk.Poly):
            self.polygon([body.local_to_world(v) for v in shape.get_vertices()], color)
        elif isinstance(shape, pymunk.Segment):
            self.segment(body.local_to_world(shape.a), body.local_to_world(shape.b),
                         max(shape.radius, 0.5 / self.scale), color)
        else:  # pragma: no cover - pymunk has no other shape types
            raise TypeError(f"cannot draw {type(shape).__name__}")

    def dots(self, centers: np.ndarray, radius: float, colors: np.ndarray) -> None:
        """Many small discs in one numpy write (particles): no Python call per dot.

        ``centers`` (N, 2) world units, ``colors`` (N, 3) uint8 or one (3,) colour for all.
        """
        if len(centers) == 0:
            return
        ox, oy = _disc_offsets(round(radius * self.scale, 3))
        px = np.floor(np.asarray(centers, np.float64) * self.scale).astype(np.int64)
        xs = (px[:, 0:1] + ox[None, :]).ravel()
        ys = (px[:, 1:2] + oy[None, :]).ravel()
        colors = np.asarray(colors, np.uint8)
        if colors.ndim == 2:
            colors = np.repeat(colors, len(ox), axis=0)
        inside = (xs >= 0) & (xs < self.width) & (ys >= 0) & (ys < self.height)
        self._px[xs[inside], ys[inside]] = colors[inside] if colors.ndim == 2 else colors

    def paint(self, cols: np.ndarray, rows: np.ndarray, colors) -> None:
        """Sets pixels directly (e.g. a pixel mask cached per episode): columns, rows, colour(s)."""
        self._px[cols, rows] = colors

    # -- output ------------------------------------------------------------------------------
    def to_array(self) -> np.ndarray:
        """A fresh (H, W, 3) uint8 copy of the frame."""
        return self._rows.copy()
