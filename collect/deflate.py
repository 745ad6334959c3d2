"""Deflate for shard chunks: the one function that compresses (``deflate_part``) and the deflater the
shard writer calls (``InlineDeflater``, in the calling thread).

Levels 1-3 (the default is 1) use ISA-L's igzip (the ``isal`` package), levels 4-9 zlib. Both write
standard zlib streams, which HDF5's gzip filter (and any reader) decodes. Measured on 64×64
BouncingBalls frames in 16-frame chunks on this machine (``python -m collect.bench --only codecs``):
igzip level 1 takes ~3.6 µs per frame for 1.39% of the raw bytes, zlib level 1-3 ~18 µs for
1.58-1.74%, against ~160 µs per env step. zlib has no faster mode, and h5py's lzf is slower and ~2x
larger. igzip level 3 is ~15% smaller at ~6x the time of its level 1.

To overlap compression with env stepping, the collector can run the whole shard writer in a helper
process (``collect.writer_process``) rather than the codec alone: a background *thread* does not
hide it on this kind of machine (each chunk costs the stepping thread forced GIL hand-offs whose
cross-core wake-ups eat the gain), and the HDF5 writes, about 1 ms per episode, cost more than
igzip. Either way the same function runs with the same parameters on the same bytes, so shards do not
depend on where it ran (they do on the ``isal`` version: its version is in ``metadata.json``), except
that igzip has, rarely, coded the same bytes as another valid stream ("Determinism" in
``collect.writer``).
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
from isal import isal_zlib

#: kind of a part: 0 = ``compressobj(level, DEFLATED, wbits, memLevel)`` (frames), 1 = ``zlib.compress``
COMPRESSOBJ, COMPRESS = 0, 1
#: levels up to this one compress with igzip, higher ones with zlib
IGZIP_MAX_LEVEL = 3


def codec(level: int) -> str:
    """The library that compresses at ``level`` (recorded in ``metadata.json``)."""
    return "isal.igzip" if level <= IGZIP_MAX_LEVEL else "zlib"


def deflate_part(kind: int, level: int, mem_level: int, wbits: int, data) -> bytes:
    """The one place a part is compressed. ``kind``, ``mem_level``: zlib's knobs (levels > 3 only)."""
    if level <= IGZIP_MAX_LEVEL:
        return isal_zlib.compress(data, level, wbits)
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
