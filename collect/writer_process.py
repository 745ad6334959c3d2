"""Shard writing in a helper process (``WriterProcess``), so that the stepping process only steps.

With a core to spare, everything after an episode's arrays exist runs in
``collect/_writer_helper.py``: deflating the frames and the small arrays, the HDF5 objects and
chunk writes (about 1 ms per episode), closing, fsyncing and hashing each shard. The helper runs the
worker's own code for it (``collect.writer.GroupWriter`` with an inline deflater), so shards are
the ones a worker writes inline, shard boundaries included (byte for byte at zlib levels: see
"Determinism" in ``collect.writer``).

Bytes travel through shared memory, never through the pipe (this VM charges ~0.3 ms to push 196 KB
through one): a ``memfd`` both processes map is cut into slots of one frame chunk each. The
episode's frames are kept as references while it runs (:class:`FrameList`) and copied into slots
four chunks at a time (one ``np.stack`` per chunk); its other arrays are copied into slots at its
end, and one small JSON message per episode names the slots. The helper answers with the slots it
has finished reading (free again, reused last-in first-out so that the pages in use stay few and
warm) and with the shards it has finished. A long episode announces its full chunks early, once half
the slots are taken, and the collector waits for a slot only when none is free (back-pressure).

The helper never renames anything: finished shards come back as ``ShardInfo`` (sealed) and the
collector publishes them as before. It holds the slice lock while it lives, asks Linux to kill it
when its parent dies (``PR_SET_PDEATHSIG``), and on EOF of its input drops the open shard's temp
file; an exception in it comes back as its traceback (``WriterProcessError``), and a helper that
dies is reported with its exit code, never waited on forever.

Wire format: each message either way is ``<I`` length + UTF-8 JSON (no pickle).
"""
from __future__ import annotations

import json
import mmap
import os
import select
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from collect.deflate import COMPRESSOBJ
from collect.record import EpisodeRecord
from collect.writer import FRAME_MEM_LEVEL, ShardInfo, _flat_arrays

#: shared memory per helper (virtual: only slots ever used are touched)
SHM_BYTES = 256 << 20
HEADER = struct.Struct("<I")  # the length of the JSON message that follows
HELPER = Path(__file__).resolve().parent / "_writer_helper.py"


class WriterProcessError(RuntimeError):
    """The shard writer process failed (its traceback follows) or died."""


def pack(msg: dict) -> bytes:
    data = json.dumps(msg, separators=(",", ":")).encode()
    return HEADER.pack(len(data)) + data


_DESCRS: dict = {}


def descr_to_json(dtype: np.dtype):
    d = _DESCRS.get(dtype)
    if d is None:  # ~20 µs for the state's structured dtype
        d = _DESCRS[dtype] = np.lib.format.dtype_to_descr(dtype)
    return d


def descr_from_json(d) -> np.dtype:
    """Inverse of ``descr_to_json`` after a JSON round trip (which turned tuples into lists)."""
    def fix(x):
        if isinstance(x, str):
            return x
        return [tuple([f[0], fix(f[1]), *([tuple(f[2])] if len(f) > 2 else [])]) for f in x]
    return np.lib.format.descr_to_dtype(fix(d))


class FrameList(list):
    """The episode's frames as ``run_episode`` appends them: kept as references (an ``append`` costs
    ~0.3 µs) and copied into shared-memory slots ``batch`` at a time by one ``np.stack`` per chunk,
    so a long episode's frames are never all held."""

    def __init__(self, proc: WriterProcess, batch: int):
        super().__init__()
        self.proc, self.batch = proc, batch
        self.count, self.rows, self.shape, self.dtype = 0, None, None, None

    def append(self, frame) -> None:
        list.append(self, frame)
        if len(self) >= self.batch:
            self.proc._put(self, final=False)


class WriterProcess:
    """The collector's side of the helper. The same calls as ``GroupWriter`` (``frame_sink``,
    ``add``, ``end_group``, ``take``, ``abort``) plus ``sync``, which waits for everything sent."""

    overlapped = True

    def __init__(self, out_dir: str | Path, chunk_frames: int, level: int, shard_mb: float,
                 lock_path: str | None = None, shm_bytes: int = SHM_BYTES):
        self.chunk_frames, self.level, self.shm_bytes = chunk_frames, level, shm_bytes
        self.batch = chunk_frames * 4
        self._fd = os.memfd_create("collect-shards", os.MFD_CLOEXEC)
        try:
            os.ftruncate(self._fd, shm_bytes)
            self._mm = mmap.mmap(self._fd, shm_bytes)
            self.proc = subprocess.Popen([sys.executable, str(HELPER), str(self._fd), str(shm_bytes),
                                          str(os.getpid())],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                         pass_fds=(self._fd,))
        except BaseException:
            os.close(self._fd)
            raise
        self._w, self._r = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self._w, False)
        os.set_blocking(self._r, False)
        self._inbuf = bytearray()
        self._slot_bytes = 0
        self._frames: list[np.ndarray] = []  # per slot: (chunk_frames, H, W, C) view
        self._flat: list[np.ndarray] = []  # per slot: uint8 view
        self._key = None
        self._free: list[int] = []
        self._chunks: list[list] = []  # the current episode's chunks not yet announced
        self._done: list[ShardInfo] = []
        self._synced = self._sent_syncs = 0
        self.cpu_seconds = 0.0  # the helper's CPU time, known once it has exited (close)
        self._send({"op": "config", "out_dir": str(out_dir), "chunk_frames": chunk_frames, "level": level,
                    "shard_mb": shard_mb, "lock": lock_path})

    # ------------------------------------------------------------------ frames
    def frame_sink(self) -> FrameList:
        return FrameList(self, self.batch)

    def _put(self, frames: FrameList, final: bool) -> None:
        """Copies ``frames`` (a whole number of chunks unless ``final``) into slots and clears it."""
        n = len(frames)
        if n:
            if frames.shape is None:
                f0 = frames[0]
                frames.shape, frames.dtype = f0.shape, f0.dtype
            cf = self.chunk_frames
            key = ((cf, *frames.shape), frames.dtype.str)
            if key != self._key:
                self._layout(key)
            if frames.rows is None:  # as FrameChunker: an episode shorter than a chunk is one short chunk
                frames.rows = cf if not final or n >= cf else n
            frame_bytes = self._slot_bytes // cf
            self._read()  # slots the helper has finished with: reused first, while still in cache
            for k in range(0, n, cf):
                part = frames[k:k + cf]
                slot = self._slot()
                np.stack(part, out=self._frames[slot][:len(part)], casting="no")  # no silent casting
                self._chunks.append([slot * self._slot_bytes, frames.rows * frame_bytes,
                                     len(part) * frame_bytes, self.level, COMPRESSOBJ, FRAME_MEM_LEVEL, 15])
            frames.count += n
            frames.clear()
        if len(self._free) * 2 < len(self._flat) and self._chunks:
            self._announce()  # a long episode: let the helper free its full chunks as it goes

    def _layout(self, key) -> None:
        if self._flat:  # another frame shape: wait until the helper has read every slot
            self.sync()
        shape, dtype = key
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        n = self.shm_bytes // max(nbytes, 1)
        if n < 4:
            raise WriterProcessError(f"a chunk of {nbytes} bytes does not fit the writer's shared memory "
                                     f"four times ({self.shm_bytes} bytes); use fewer --chunk-frames")
        base = np.frombuffer(self._mm, np.uint8, n * nbytes)
        self._flat = [base[k * nbytes:(k + 1) * nbytes] for k in range(n)]
        self._frames = [f.view(dtype).reshape(shape) for f in self._flat]
        self._slot_bytes, self._key, self._free = nbytes, key, list(range(n))[::-1]

    def _slot(self) -> int:
        while not self._free:
            self._announce()
            self._wait()
        return self._free.pop()

    def _announce(self) -> None:
        if self._chunks:
            chunks, self._chunks = self._chunks, []
            self._send({"op": "chunks", "chunks": chunks})

    # ------------------------------------------------------------------ episodes and groups
    def add(self, rec: EpisodeRecord) -> None:
        frames = rec.frames
        if not isinstance(frames, FrameList):  # frames in a plain list
            frames = self.frame_sink()
            frames.extend(rec.frames)
        self._put(frames, final=True)
        arrays, blobs = [], []
        for name, arr in _flat_arrays(rec):
            arrays.append([name, descr_to_json(arr.dtype), list(arr.shape)])
            blobs.append(arr.tobytes())
        data = b"".join(blobs)
        payload = []
        for start in range(0, len(data), self._slot_bytes):
            n = min(self._slot_bytes, len(data) - start)
            slot = self._slot()
            self._flat[slot][:n] = np.frombuffer(data, np.uint8, n, start)
            payload.append([slot * self._slot_bytes, n])
        chunks, self._chunks = self._chunks, []
        self._send({"op": "episode", "index": rec.index, "seed": rec.seed, "policy_seed": rec.policy_seed,
                    "options": rec.options, "count": frames.count, "shape": list(frames.shape),
                    "dtype": np.dtype(frames.dtype).str, "rows": frames.rows, "chunks": chunks,
                    "arrays": arrays, "payload": payload})
        self._poll()

    def end_group(self) -> None:
        self._send({"op": "end"})

    def take(self) -> list[ShardInfo]:
        """Shards the helper has finished (sealed, under their temp names), in order."""
        self._poll()
        done, self._done = self._done, []
        return done

    def sync(self) -> list[ShardInfo]:
        """Waits until the helper has done everything sent so far; returns ``take()``."""
        self._sent_syncs += 1
        self._send({"op": "sync"})
        while self._synced < self._sent_syncs:
            self._wait()
        return self.take()

    def abort(self) -> None:
        """Drops the open shard (the helper deletes its temp file); the frames of an unfinished
        episode are dropped too."""
        if self._slot_bytes:
            self._free.extend(c[0] // self._slot_bytes for c in self._chunks)
        self._chunks = []
        if self.proc.poll() is None:
            try:
                self._send({"op": "abort"})
            except WriterProcessError:  # it died meanwhile: nothing of its is left open
                pass

    # ------------------------------------------------------------------ the pipes
    def _send(self, msg: dict) -> None:
        data = memoryview(pack(msg))
        while data:
            try:
                data = data[os.write(self._w, data):]
            except BlockingIOError:  # the helper is behind: read its answers while waiting
                readable, _, _ = select.select([self._r], [self._w], [])
                if readable:
                    self._read()
            except OSError as e:
                err = e
                break
        else:
            return
        self._read_all_then_fail(f"the shard writer process is gone ({err})")

    def _wait(self) -> None:
        select.select([self._r], [], [])
        self._read()

    def _poll(self) -> None:
        self._read()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._r, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                self._handle()
                raise WriterProcessError(f"the shard writer process ended unexpectedly (exit code "
                                         f"{self.proc.wait()})")
            self._inbuf += chunk
        self._handle()

    def _handle(self) -> None:
        buf = self._inbuf
        while len(buf) >= 4:
            n = HEADER.unpack_from(buf)[0]
            if len(buf) < 4 + n:
                break
            msg = json.loads(bytes(buf[4:4 + n]))
            del buf[:4 + n]
            if "error" in msg:
                self.proc.wait()
                raise WriterProcessError(f"the shard writer process failed:\n{msg['error']}")
            self._free.extend(off // self._slot_bytes for off in msg.get("freed", ()))
            self._done.extend(ShardInfo(**s) for s in msg.get("shards", ()))
            self._synced += msg.get("synced", 0)

    def _read_all_then_fail(self, what: str) -> None:
        os.set_blocking(self._r, True)
        try:
            self._read()  # an error message, if the helper left one
        except BlockingIOError:
            pass
        raise WriterProcessError(f"{what}; exit code {self.proc.wait()}")

    def close(self) -> None:
        """Ends the helper (EOF: it drops an open shard) and reaps it, keeping its CPU time."""
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
            except ChildProcessError:
                proc.wait()
        proc.stdout.close()
        self._frames, self._flat, self._key = [], [], None
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
            except Exception:  # interpreter shutdown: the helper still ends, its stdin closes with us
                pass
