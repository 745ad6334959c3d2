"""zlib for shard chunks: the one function that compresses (``deflate_part``) and the deflater the
shard writer calls (``InlineDeflater``, in the calling thread).

Deflating frames is the costly part of writing shards (~18 µs per 64×64 frame at level 1-3 here
against ~160 µs per BouncingBalls step; zlib has no faster mode, h5py's lzf is slower and ~2x
larger). To overlap it with env stepping, the collector runs the whole shard writer in a helper
process (``collect.writer_process``) rather than zlib alone: a background *thread* does not hide it
on this kind of machine (each chunk costs the stepping thread forced GIL hand-offs whose cross-core
wake-ups eat the gain), and a helper that only deflates still leaves the HDF5 writes, about 1 ms
per episode, to the stepping process. Either way the same function runs with the same parameters on
the same bytes, so shards do not depend on where zlib ran.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

#: kind of a part: 0 = ``compressobj(level, DEFLATED, wbits, memLevel)`` (frames), 1 = ``zlib.compress``
COMPRESSOBJ, COMPRESS = 0, 1


def deflate_part(kind: int, level: int, mem_level: int, wbits: int, data) -> bytes:
    """The one place a part is compressed."""
    if kind == COMPRESSOBJ:
        co = zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level)
        return co.compress(data) + co.flush()
    return zlib.compress(data, level)


class Part:
    """One buffer to deflate."""

    __slots__ = ("kind", "level", "mem_level", "wbits", "data")

    def __init__(self, data, level: int, kind: int = COMPRESS, mem_level: int = 8, wbits: int = 15):
        self.kind, self.level, self.mem_level, self.wbits = kind, level, mem_level, wbits
        self.data = memoryview(data).cast("B")


class InlineDeflater:
    """Compresses at ``submit`` time, in the calling thread. ``frame_slot``/``submit_slot`` are the
    calls ``collect.writer.FrameChunker`` makes (``collect.writer_process.WriterProcess`` has them
    too, with slots in shared memory)."""

    overlapped = False

    def __init__(self):
        self._results: dict[int, list[bytes]] = {}
        self._next = 0
        self._slot: np.ndarray | None = None

    def frame_slot(self, shape: tuple, dtype) -> tuple[int, np.ndarray]:
        """A buffer of ``shape`` to fill with one chunk of frames (reused after ``submit_slot``)."""
        if self._slot is None or self._slot.shape != tuple(shape) or self._slot.dtype != dtype:
            self._slot = np.empty(shape, dtype)
        return 0, self._slot

    def submit_slot(self, slot: int, nbytes: int, level: int, kind: int, mem_level: int, wbits: int,
                    filled: int | None = None) -> int:
        """Deflates the first ``nbytes`` of the slot, zero bytes from ``filled`` on (one call: the
        bytes match a chunk compressed whole)."""
        data = memoryview(self._slot).cast("B")[:nbytes]
        if filled is not None and filled < nbytes:
            data[filled:] = bytes(nbytes - filled)
        return self.submit([Part(data, level, kind, mem_level, wbits)])

    def submit(self, parts: Sequence[Part]) -> int:
        job = self._next
        self._next += 1
        self._results[job] = [deflate_part(p.kind, p.level, p.mem_level, p.wbits, p.data) for p in parts]
        return job

    def result(self, job: int) -> list[bytes]:
        return self._results.pop(job)

    def close(self) -> None:
        self._results.clear()
