"""Documented scene parameters that ``reset(options=...)`` may override (for out-of-distribution runs).

A scene declares ``OPTIONS = {"gravity": Option(600.0, "downward acceleration, units/s²", 0, 5000), ...}``.
Values are checked against the default's type: a bool, an int, a float, or a ``(low, high)`` range
from which the scene draws per episode. An unknown key or a bad value is a ``ValueError`` that names
the valid keys, so a typo never silently runs the default scene.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Option:
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None

    def check(self, name: str, value: Any) -> Any:
        """Returns the validated value (ranges as tuples) or raises ``ValueError``/``TypeError``."""
        d = self.default
        if isinstance(d, bool):
            if not isinstance(value, bool):
                raise TypeError(f"option {name!r} must be a bool, got {value!r}")
            return value
        if isinstance(d, tuple):
            if isinstance(value, np.ndarray) and value.ndim == 1:  # np.array([6., 10.]) is a pair too
                value = value.tolist()
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
                raise TypeError(f"option {name!r} must be a (low, high) pair, got {value!r}")
            lo, hi = (self._number(name, v, integral=isinstance(d[0], int)) for v in value)
            if lo > hi:
                raise ValueError(f"option {name!r}: low {lo} is greater than high {hi}")
            return (lo, hi)
        return self._number(name, value, integral=isinstance(d, int))

    def _number(self, name: str, value: Any, integral: bool):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"option {name!r} must be a number, got {value!r}")
        if integral:
            if not isinstance(value, Integral) and not float(value).is_integer():
                raise TypeError(f"option {name!r} must be an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"option {name!r} must be finite, got {value!r}")
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ValueError(f"option {name!r}={value!r} is outside [{self.low}, {self.high}]")
        return value


def resolve(scene: str, declared: Mapping[str, Option], given: Mapping[str, Any] | None) -> dict:
    """Defaults overlaid with the caller's validated options."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise TypeError(f"options must be a dict, got {type(given).__name__}")
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for {scene}; valid options: {sorted(declared)}"
        )
    out = {name: opt.default for name, opt in declared.items()}
    for name, value in given.items():
        out[name] = declared[name].check(name, value)
    return out
