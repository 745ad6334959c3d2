"""Procedural per-episode palettes: flat, mutually distinct colours drawn from the episode's RNG.

Why this exists: the evaluators find objects in pixels by colour, so every dynamic object needs a
flat colour that differs clearly from the background, the static geometry and every other object.
Hues are spread by the golden ratio from a random start, which keeps any n colours far apart, and
saturation/value are jittered a little so that palettes differ between episodes.
"""
from __future__ import annotations

import colorsys

import numpy as np

GOLDEN = 0.6180339887498949

#: Minimum max-channel distance between any two colours a palette hands out (0–255 scale).
MIN_DISTANCE = 48


def max_channel_distance(a, b) -> int:
    """Largest absolute per-channel difference between two RGB colours."""
    return int(np.max(np.abs(np.asarray(a, np.int32) - np.asarray(b, np.int32))))


class Palette:
    """Hands out distinct flat colours for one episode.

    >>> p = Palette(np.random.default_rng(0))
    >>> ball, paddle = p.take(), p.take()
    >>> max_channel_distance(ball, paddle) >= MIN_DISTANCE
    True

    ``background`` is dark and desaturated, ``static`` (walls, floors) a neutral grey; both are drawn
    from the RNG too, inside narrow bands that stay far from the saturated object colours.
    """

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        shade = int(rng.integers(14, 34))
        tint = rng.integers(-6, 7, size=3)
        self.background = tuple(int(np.clip(shade + t, 0, 255)) for t in tint)
        grey = int(rng.integers(120, 150))
        self.static = (grey, grey, grey + 8)
        self.zone = (int(rng.integers(50, 70)), int(rng.integers(80, 100)), int(rng.integers(50, 70)))
        self._hue = float(rng.random())
        self._taken: list[tuple[int, int, int]] = [self.background, self.static, self.zone]

    def take(self) -> tuple[int, int, int]:
        """The next colour: saturated, bright, and ≥ MIN_DISTANCE from every colour handed out so far.

        After many calls the hue circle fills up; then the distance rule is relaxed step by step so
        that a colour is always returned (scenes with many objects share colours by design).
        """
        need = MIN_DISTANCE
        for attempt in range(64):
            self._hue = (self._hue + GOLDEN) % 1.0
            sat = 0.65 + 0.35 * float(self._rng.random())
            val = 0.80 + 0.20 * float(self._rng.random())
            rgb = tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(self._hue, sat, val))
            if all(max_channel_distance(rgb, t) >= need for t in self._taken):
                self._taken.append(rgb)
                return rgb
            if attempt % 8 == 7:
                need = max(need - 8, 8)
        self._taken.append(rgb)
        return rgb

    def release(self, color) -> None:
        """Gives back a colour whose object has left the episode: later colours need only stay clear
        of the ones still in use. Colours handed out twice stay taken until released twice."""
        color = tuple(color)
        for i in range(len(self._taken) - 1, 2, -1):  # never the background, static or zone colour
            if self._taken[i] == color:
                del self._taken[i]
                return

    def take_many(self, n: int) -> list[tuple[int, int, int]]:
        return [self.take() for _ in range(n)]
