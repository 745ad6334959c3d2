"""Where the collector's zlib work runs: in this process (``InlineDeflater``) or in a helper process
(``ProcessDeflater``) that overlaps it with env stepping on a spare core.

Deflating frames is the costly part of collecting (~18 µs per 64×64 frame at level 1-3 here against
~160 µs per BouncingBalls step; zlib has no faster mode, h5py's lzf is slower and ~2x larger). A
background *thread* does not hide it on this kind of machine: ``zlib`` releases the GIL, but each
chunk costs the stepping thread forced GIL hand-offs whose cross-core wake-ups (tens of µs in a VM)
eat the gain (measured: +23% wall over raw stepping with a thread, +14% inline). A helper process
shares no GIL. Frames reach it through shared memory: the collector copies each frame into a slot
of a ring (a ``memfd`` both processes map; ~1 µs per 64×64 frame), sends a few bytes naming the full
slot, and reads the compressed chunk back later; the slot is reused once its answer is read. (A
pipe is no way to move frames: writing 196 KB into one costs ~0.3 ms here, as much as deflating.)
Small per-episode arrays travel in the request itself.

Both deflaters run the same function (:func:`deflate_part`, mirrored in the helper) with the same
parameters on the same bytes, so shards do not depend on where zlib ran (byte-identical across
worker counts and modes). The helper imports only the standard library (``python -I -S``, ~15 ms to
start), holds no files and no locks, and exits when its stdin closes, however the collector ends.

Wire format (little-endian). Request: ``<IH`` job id, part count; per part ``<BBBBBQQ`` kind, level,
memLevel, wbits, source (0: bytes follow in the request, 1: shared memory), offset, length; then
the inline parts' bytes in order. Response: ``<IH`` job id, part count; per part ``<Q`` length; then
the compressed parts.
"""
from __future__ import annotations

import mmap
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Sequence

import numpy as np

#: kind of a part: 0 = ``compressobj(level, DEFLATED, wbits, memLevel)`` (frames), 1 = ``zlib.compress``
COMPRESSOBJ, COMPRESS = 0, 1
INLINE, SHARED = 0, 1
_REQ, _PART, _RESP_PART = struct.Struct("<IH"), struct.Struct("<BBBBBQQ"), struct.Struct("<Q")
#: shared memory for frame slots per helper (virtual; only the slots in use are ever touched)
SHM_BYTES = 64 << 20
MAX_SLOTS = 4  # the helper is rarely more than a chunk behind; fewer slots stay in cache


def deflate_part(kind: int, level: int, mem_level: int, wbits: int, data) -> bytes:
    """The one place a part is compressed (``collect/_deflate_helper.py`` has the same lines)."""
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
    """Compresses at ``submit`` time, in the calling thread."""

    overlapped = False
    cpu_seconds = 0.0  # CPU time spent outside this process

    def __init__(self):
        self._results: dict[int, list[bytes]] = {}
        self._next = 0
        self._slot: np.ndarray | None = None

    def frame_slot(self, shape: tuple, dtype) -> tuple[int, np.ndarray]:
        """A buffer of ``shape`` to fill with one chunk of frames (reused after ``submit_slot``)."""
        if self._slot is None or self._slot.shape != tuple(shape) or self._slot.dtype != dtype:
            self._slot = np.empty(shape, dtype)
        return 0, self._slot

    def submit_slot(self, slot: int, nbytes: int, level: int, kind: int, mem_level: int, wbits: int) -> int:
        """Deflates the first ``nbytes`` of the slot (one call: the bytes match a chunk compressed whole)."""
        return self.submit([Part(memoryview(self._slot).cast("B")[:nbytes], level, kind, mem_level, wbits)])

    def submit(self, parts: Sequence[Part]) -> int:
        job = self._next
        self._next += 1
        self._results[job] = [deflate_part(p.kind, p.level, p.mem_level, p.wbits, p.data) for p in parts]
        return job

    def result(self, job: int) -> list[bytes]:
        return self._results.pop(job)

    def close(self) -> None:
        self._results.clear()


class DeflaterError(RuntimeError):
    """The helper process died or answered nonsense."""


class ProcessDeflater:
    """Compresses in a helper process (``collect/_deflate_helper.py``). ``submit``/``submit_slot``
    return at once; ``result`` waits for the answer; ``frame_slot`` waits only while every slot is
    still being compressed (the helper is behind: back-pressure)."""

    overlapped = True

    def __init__(self, shm_bytes: int = SHM_BYTES):
        self._fd = os.memfd_create("collect-frames", os.MFD_CLOEXEC)
        try:
            os.ftruncate(self._fd, shm_bytes)
            self._mm = mmap.mmap(self._fd, shm_bytes)
            helper = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_deflate_helper.py")
            # -I -S: no site-packages, no environment, no cwd on sys.path: the helper needs only zlib
            self.proc = subprocess.Popen([sys.executable, "-I", "-S", helper, str(self._fd), str(shm_bytes)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                         pass_fds=(self._fd,))
        except BaseException:
            os.close(self._fd)
            raise
        self.shm_bytes = shm_bytes
        self._w, self._r = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self._results: dict[int, list[bytes]] = {}
        self._slot_of: dict[int, int] = {}  # job → slot it reads
        self._next = 0
        self._buf = bytearray()
        self._slots: list[np.ndarray] = []
        self._slot_key = None
        self._free: list[int] = []
        self.cpu_seconds = 0.0  # the helper's CPU time, known once it has exited (close)

    # ------------------------------------------------------------------ frames via shared memory
    def frame_slot(self, shape: tuple, dtype) -> tuple[int, np.ndarray]:
        key = (tuple(shape), np.dtype(dtype).str)
        if key != self._slot_key:
            if self._slot_of:
                self._drain_slots()
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            n = min(MAX_SLOTS, self.shm_bytes // max(nbytes, 1))
            if n < 2:
                raise DeflaterError(f"a chunk of {nbytes} bytes does not fit the helper's shared memory "
                                    f"twice ({self.shm_bytes} bytes); use fewer --chunk-frames")
            base = np.frombuffer(self._mm, np.uint8, n * nbytes)
            base[:] = 0  # fault the pages in now, not in the stepping loop
            self._slots = [base[k * nbytes:(k + 1) * nbytes].view(dtype).reshape(shape) for k in range(n)]
            self._slot_key, self._free = key, list(range(n))[::-1]
        while not self._free:
            self._read_response()
        slot = self._free.pop()
        return slot, self._slots[slot]

    def submit_slot(self, slot: int, nbytes: int, level: int, kind: int, mem_level: int, wbits: int) -> int:
        job = self._next
        self._next += 1
        offset = slot * self._slots[0].nbytes
        self._send([_REQ.pack(job, 1), _PART.pack(kind, level, mem_level, wbits, SHARED, offset, nbytes)])
        self._slot_of[job] = slot
        return job

    def _drain_slots(self) -> None:
        while self._slot_of:
            self._read_response()

    # ------------------------------------------------------------------ other data in the request
    def submit(self, parts: Sequence[Part]) -> int:
        job = self._next
        self._next += 1
        head = [_REQ.pack(job, len(parts))]
        head += [_PART.pack(p.kind, p.level, p.mem_level, p.wbits, INLINE, 0, p.data.nbytes) for p in parts]
        self._send([b"".join(head), *(p.data for p in parts)])
        return job

    def _send(self, bufs: list) -> None:
        bufs = [memoryview(b).cast("B") for b in bufs]
        try:
            while bufs:
                n = os.writev(self._w, bufs[:1024])
                while n:
                    if n >= bufs[0].nbytes:
                        n -= bufs.pop(0).nbytes
                    else:
                        bufs[0], n = bufs[0][n:], 0
        except OSError as e:
            raise DeflaterError(f"the deflate helper process is gone ({e}; exit code "
                                f"{self.proc.poll()})") from None

    # ------------------------------------------------------------------ answers
    def result(self, job: int) -> list[bytes]:
        while job not in self._results:
            self._read_response()
        return self._results.pop(job)

    def _read_response(self) -> None:
        job, n = _REQ.unpack(self._read(_REQ.size))
        sizes = [_RESP_PART.unpack(self._read(_RESP_PART.size))[0] for _ in range(n)]
        self._results[job] = [self._read(s) for s in sizes]
        slot = self._slot_of.pop(job, None)
        if slot is not None:
            self._free.append(slot)

    def _read(self, n: int) -> bytes:
        buf = self._buf
        while len(buf) < n:
            chunk = os.read(self._r, max(n - len(buf), 1 << 16))
            if not chunk:
                raise DeflaterError(f"the deflate helper process ended unexpectedly (exit code "
                                    f"{self.proc.wait()})")
            buf += chunk
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def close(self) -> None:
        """Ends the helper (EOF on its stdin) and reaps it, keeping its CPU time."""
        proc = self.proc
        if proc.returncode is None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                self.cpu_seconds = usage.ru_utime + usage.ru_stime
            except ChildProcessError:  # already reaped elsewhere
                proc.wait()
        proc.stdout.close()
        self._results.clear()
        self._slots, self._slot_key = [], None
        if self._fd is not None:
            try:
                self._mm.close()
            except BufferError:  # a slot view is still referenced somewhere; the GC frees it later
                pass
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        proc = getattr(self, "proc", None)
        if proc is not None and proc.returncode is None:
            try:
                self.close()
            except Exception:  # interpreter shutdown (modules already torn down): the helper still
                pass  # ends on its own, since its stdin closes with this process


def make_deflater(overlap: bool):
    """A ``ProcessDeflater`` if ``overlap`` and a helper can start, else an ``InlineDeflater``."""
    if overlap and hasattr(os, "memfd_create"):
        try:
            return ProcessDeflater()
        except OSError:
            pass
    return InlineDeflater()
