"""One validator for the actions of a Discrete or Box space, shared by the scenes and the dream env:
a clear error for a wrong type, shape, range or a NaN, instead of a silent cast or clip."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces


def check_action(space: spaces.Space, action, who: str = "the env", names: Sequence[str] | None = None,
                 dtype=np.float32):
    """One action of ``space`` -> int (Discrete) or a ``dtype`` array clipped into the Box (rounding
    slack 1e-6); ``TypeError``/``ValueError`` naming ``who`` otherwise. ``names``: the Discrete actions'
    meanings, quoted in the out-of-range error."""
    if isinstance(space, spaces.Discrete):
        a = action
        if isinstance(a, np.ndarray) and a.size == 1 and a.dtype.kind in "iu":
            a = a.reshape(()).item()
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{who} expects an integer action in [0, {space.n}), got {action!r} "
                            f"({type(action).__name__})")
        if not 0 <= a < space.n:
            meaning = f"; actions: {dict(enumerate(names))}" if names else ""
            raise ValueError(f"action {a} is out of range [0, {space.n}){meaning}")
        return int(a)
    arr = np.asarray(action)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{who} expects a float array of shape {space.shape}, got {action!r}")
    if arr.size != int(np.prod(space.shape)):
        raise ValueError(f"{who} expects an action of shape {space.shape}, got shape {arr.shape}")
    arr = arr.astype(dtype).reshape(space.shape)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"action contains NaN or inf: {arr}")
    if np.any(arr < space.low - 1e-6) or np.any(arr > space.high + 1e-6):
        raise ValueError(f"action {arr} is outside [{space.low}, {space.high}]")
    return np.clip(arr, space.low, space.high).astype(dtype)
