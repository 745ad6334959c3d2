"""The two ground-truth values every scene puts in ``info``: ``ObjectState`` and ``Contacts``.

Why not a plain ``dict`` of arrays and a plain (K, 2) array: the number of objects and of contacts
changes from step to step, and Gymnasium's vector envs stack ``dict``/``ndarray`` infos across
sub-environments assuming equal shapes (``make_vec`` then crashes or hangs). Any other object is
kept per sub-environment in an object array, which is what ground truth needs. Both classes behave
as what the design names: a read-only mapping of fresh numpy arrays, and (K, 2) int64 id pairs
(``np.asarray(info["contacts"])``); both pickle, so async vector envs can send them.

Async vector envs pickle every step's ``info`` in the worker and unpickle it in the main process,
which is on the critical path of each vector step. So an ``ObjectState`` pickles as a single bytes
blob plus a one-string layout, and unpickles *lazily*: the arrays are cut out of the blob the first
time they are read, and a state that is only passed on (pickled again) is never decoded at all.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np


class ObjectState(Mapping):
    """``info["state"]``: field name → array with one row per object (fields: README.md, "Scenes")."""

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
        """One bytes blob plus a layout string (cached per field schema): ~3x cheaper to pickle and
        ~10x cheaper to unpickle than ten arrays (decoding waits for the first read)."""
        fields = self._fields
        schema = tuple([(k, a.dtype, a.shape[1:]) for k, a in fields.items()])  # dtype.str is slow
        layout = _LAYOUTS.get(schema)
        if layout is None:
            layout = _LAYOUTS[schema] = ";".join(f"{k}:{dt.str}:{','.join(map(str, shape))}"
                                                  for k, dt, shape in schema)
        rows = len(next(iter(fields.values()))) if fields else 0
        return (_unpack_state, (layout, rows, b"".join([a.tobytes() for a in fields.values()])))

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


_LAYOUTS: dict = {}  # field schema → layout string (pickling side)
_PARSED: dict = {}  # layout string → [(name, dtype, row shape, bytes per row)] (unpickling side)


class _PackedState(ObjectState):
    """An unpickled ``ObjectState`` whose arrays are still one blob: the ``_fields`` slot is filled
    on first use (an unset slot raises AttributeError, which lands in ``__getattr__``)."""

    __slots__ = ("_packed",)

    def __getattr__(self, name: str):
        if name != "_fields":
            raise AttributeError(name)
        layout, rows, blob = self._packed
        buf = np.frombuffer(bytearray(blob), np.uint8)  # one writeable copy: fresh arrays
        fields, offset = {}, 0
        for key, dt, shape, row_bytes in _parse(layout):
            end = offset + rows * row_bytes
            fields[key] = buf[offset:end].view(dt).reshape((rows, *shape))
            offset = end
        self._fields = fields
        self._packed = None
        return fields

    def __reduce__(self):
        packed = self._packed  # not decoded yet: pass the blob on as it came
        return (_unpack_state, packed) if packed is not None else super().__reduce__()


def _parse(layout: str) -> list:
    parsed = _PARSED.get(layout)
    if parsed is None:
        parsed = []
        for item in layout.split(";") if layout else ():
            key, dt, shape = item.rsplit(":", 2)
            shape = tuple(int(x) for x in shape.split(",")) if shape else ()
            dt = np.dtype(dt)
            parsed.append((key, dt, shape, dt.itemsize * math.prod(shape)))
        _PARSED[layout] = parsed
    return parsed


def _unpack_state(layout: str, rows: int, blob: bytes) -> ObjectState:
    """Inverse of ``ObjectState.__reduce__`` (decoded lazily into writeable arrays)."""
    state = _PackedState.__new__(_PackedState)
    state._packed = (layout, rows, blob)
    return state


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
