"""The two ground-truth values every scene puts in ``info``: ``ObjectState`` and ``Contacts``.

Why not a plain ``dict`` of arrays and a plain (K, 2) array: the number of objects and of contacts
changes from step to step, and Gymnasium's vector envs stack ``dict``/``ndarray`` infos across
sub-environments assuming equal shapes (``make_vec`` then crashes or hangs). Any other object is
kept per sub-environment in an object array, which is what ground truth needs. Both classes behave
as what the design names: a read-only mapping of fresh numpy arrays, and (K, 2) int64 id pairs
(``np.asarray(info["contacts"])``); both pickle, so async vector envs can send them.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np


class ObjectState(Mapping):
    """``info["state"]``: field name → array with one row per object (see design.md)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, np.ndarray]):
        self._fields = fields

    def __getitem__(self, key: str) -> np.ndarray:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __reduce__(self):
        """Pickles as one bytes blob plus a layout: async vector envs send ``info`` through a pipe
        every step, and this is ~2x cheaper than pickling ten arrays one by one."""
        layout = tuple((k, a.dtype.str, a.shape) for k, a in self._fields.items())
        blob = b"".join(np.ascontiguousarray(a).tobytes() for a in self._fields.values())
        return (_unpack_state, (layout, blob))

    def __eq__(self, other) -> bool:
        """Exact equality of every field (dtype, shape and values)."""
        if not isinstance(other, ObjectState) or self._fields.keys() != other._fields.keys():
            return False
        return all(a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))
                   for a, b in ((self._fields[k], other._fields[k]) for k in self._fields))

    __hash__ = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The underlying field → array dict (no copy): the fast path for bulk readers."""
        return self._fields

    @property
    def num_objects(self) -> int:
        return len(self._fields["id"])

    def __repr__(self) -> str:
        return f"ObjectState({self.num_objects} objects: {', '.join(self._fields)})"


def _unpack_state(layout, blob: bytes) -> ObjectState:
    """Inverse of ``ObjectState.__reduce__``: writeable views into one fresh buffer."""
    buf = np.frombuffer(bytearray(blob), np.uint8)
    fields, offset = {}, 0
    for name, dtype, shape in layout:
        dt = np.dtype(dtype)
        end = offset + math.prod(shape) * dt.itemsize
        fields[name] = buf[offset:end].view(dt).reshape(shape)
        offset = end
    return ObjectState(fields)


class Contacts(tuple):
    """``info["contacts"]``: ``(id_a, id_b)`` pairs that began touching this step (``-1`` = static).

    A tuple of int pairs; ``np.asarray(contacts)`` or ``contacts.array`` is the (K, 2) int64 array.
    """

    __slots__ = ()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.array(tuple(self), dtype=dtype or np.int64).reshape(-1, 2)

    @property
    def array(self) -> np.ndarray:
        return self.__array__()

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), 2)
