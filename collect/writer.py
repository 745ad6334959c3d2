"""Shard files: multi-episode HDF5, written to a temp name and renamed only when complete.

Schema of one shard (each episode group follows Minari's HDF5 episode layout, so an export is just
links to these groups)::

    shard-00000064.h5                 named after its first episode index (unique in a directory)
      attrs: format, format_version, episodes (indices)
      episode_64/                     the episode's global index
        attrs: id, seed, policy_seed, total_steps, return, crc32; options_json and options/<key>
               only when the run has --options (readers take a missing options_json as {})
        observations   (T+1, H, W, 3) uint8, chunks (C, H, W, 3), gzip   index 0 = reset frame
        actions        (T,) int64  or  (T, D) float32
        rewards        (T,) float64
        terminations   (T,) bool
        truncations    (T,) bool
        infos/state          (T+1, N) structured (id, kind, position (2,), …), padded: collect.record
        infos/state_count    (T+1,) int32
        infos/contacts       (T+1, K, 2) int64, padded with -2
        infos/contacts_count (T+1,) int32
        infos/<extra>        (T+1,) numeric scalar infos (e.g. balls_in_play)

Why direct chunk writes: HDF5's own gzip filter runs zlib (~18 µs per 64×64 frame here against
~160 µs per env step; h5py's lzf filter is slower and ~2x larger, szip does not suit images).
Compressing ourselves (``collect.deflate``) lets us use ISA-L's igzip, ~5x faster than zlib for
smaller output, and overlap it with stepping; the finished chunks go to the file with
``write_direct_chunk``. Each chunk is a standard zlib stream (after HDF5's shuffle where the dataset
declares it), exactly what the declared gzip (+ shuffle) filters decode, so any HDF5 reader reads
it. ``crc32`` (an episode attribute) covers the episode's compressed chunks in dataset-name order:
``collect.verify`` uses it to name the damaged episode inside a damaged file.

Determinism: the same settings give the same shards, cut at the same episodes, holding the same
arrays and attributes, whichever process wrote them. At zlib levels (4-9) the files are
byte-identical too (no timestamps; the same objects in the same order). At igzip levels (1-3, the
default) they usually are, but not always: in CI (stop 23) one shard's bytes differed between two
runs while every decoded array was equal. Measured here under CPU load: in about 1 of 300 fresh
processes, igzip codes some chunks as another valid stream (other match choices, the same decoded
bytes), and again on the next calls in that process; all 7 such processes of 1,000 pinned to one
vCPU or the other ran on vCPU 0. ISA-L's stateless API (called through ctypes, its work buffers
full of random bytes) did the same. It never happened without load, nor in 6M calls by two
long-running processes under load. The cause is not pinned down. Compare datasets by content
(``python -m collect.compare A B``), or collect at ``--level 4`` when byte-identical files matter.
A shard's sha256 checks that file either way.
"""
from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from collect.deflate import COMPRESSOBJ, InlineDeflater, Part
from collect.record import EpisodeRecord

FORMAT = "worldgym-collect"
FORMAT_VERSION = 1
TMP_SUFFIX = ".tmp"
#: zlib memLevel for frames (levels 4-9): a smaller hash table than the default 8 deflates flat-shaded
#: frames ~25% faster to the same bytes; the stream format does not depend on it.
FRAME_MEM_LEVEL = 5


def shard_name(first_index: int) -> str:
    return f"shard-{first_index:08d}.h5"


@dataclass
class Blob:
    """One dataset of an episode, already cut into compressed chunks."""

    name: str
    shape: tuple
    dtype: np.dtype
    chunks: tuple | None  # None: stored uncompressed and contiguous (empty arrays)
    shuffle: bool
    data: list  # [(chunk offset, compressed bytes)]


@dataclass
class EncodedEpisode:
    record: EpisodeRecord
    blobs: list
    crc32: int
    nbytes: int  # compressed bytes of all chunks


def _flat_arrays(rec: EpisodeRecord) -> list[tuple[str, np.ndarray]]:
    """(dataset path, array) for everything but the observations."""
    out = [("actions", rec.actions), ("rewards", rec.rewards), ("terminations", rec.terminations),
           ("truncations", rec.truncations)]

    def walk(prefix, d):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}/{k}", v)
            else:
                out.append((f"{prefix}/{k}", np.ascontiguousarray(v)))

    walk("infos", rec.infos)
    return out


def _nested_infos(flat: dict[str, np.ndarray]) -> dict:
    """The inverse of ``_flat_arrays`` for the infos: {"infos/a/b": x} -> {"a": {"b": x}}."""
    infos: dict = {}
    for name, arr in flat.items():
        if name.startswith("infos/"):
            *path, leaf = name.split("/")[1:]
            d = infos
            for k in path:
                d = d.setdefault(k, {})
            d[leaf] = arr
    return infos


def _shuffled(chunk: np.ndarray) -> bytes:
    """HDF5's shuffle filter: byte j of every element, then byte j + 1, …"""
    size = chunk.dtype.itemsize
    return chunk.view(np.uint8).reshape(-1, size).T.tobytes() if size > 1 else chunk.tobytes()


class FrameChunker:
    """An episode's frames on their way to the deflater, one ``append`` per frame (what
    ``collect.record.run_episode`` calls). Frames are copied into a chunk buffer from the deflater
    and each chunk of ``chunk_frames`` frames is submitted as soon as it is full, so the episode's
    frames are never all held. ``finish`` submits the last chunk (padded with zero frames to the
    chunk size, as HDF5 stores edge chunks); an episode shorter than a chunk is one chunk of its own
    length. (``collect.writer_process.FrameList`` cuts chunks the same way.)"""

    def __init__(self, deflater, chunk_frames: int, level: int):
        self.deflater, self.chunk_frames, self.level = deflater, chunk_frames, level
        self.jobs: list[int] = []  # one deflater job per submitted chunk
        self.count = 0
        self.shape = self.dtype = None
        self.rows: int | None = None  # frames per chunk, fixed by the first submission
        self._slot, self._buf, self._k = None, None, 0

    def append(self, frame: np.ndarray) -> None:
        buf = self._buf
        if buf is None:
            if self.shape is None:
                self.shape, self.dtype = frame.shape, frame.dtype
            self._slot, buf = self.deflater.frame_slot((self.chunk_frames, *self.shape), self.dtype)
            self._buf, self._k = buf, 0
        if frame.shape != self.shape or (frame.dtype is not self.dtype and frame.dtype != self.dtype):
            # no silent broadcasting
            raise ValueError(f"frame {self.count} is {frame.shape} {frame.dtype}, the first was "
                             f"{self.shape} {self.dtype}")
        k = self._k
        buf[k] = frame
        self._k = k = k + 1
        self.count += 1
        if k == self.chunk_frames:
            self._submit(k)

    def __len__(self) -> int:
        return self.count

    def _submit(self, rows: int) -> None:
        self.rows = rows
        frame = self._buf[0].nbytes
        # edge chunks are stored at full chunk size: the deflater zero-fills past ``filled``
        self.jobs.append(self.deflater.submit_slot(self._slot, rows * frame, self.level, COMPRESSOBJ,
                                                   FRAME_MEM_LEVEL, 15, filled=self._k * frame))
        self._slot, self._buf = None, None

    def finish(self) -> FrameChunker:
        """Submits what is left; afterwards ``blob(results)`` builds the observations blob."""
        if self._buf is not None:
            self._submit(self.rows or min(self.chunk_frames, self.count))
        return self

    @classmethod
    def submitted(cls, deflater, chunk_frames: int, level: int, count: int, shape: tuple, dtype,
                  rows: int, jobs: list[int]) -> FrameChunker:
        """A finished chunker whose chunks were submitted elsewhere (``collect._writer_helper``:
        the collector's chunks, deflated from shared memory as ``deflater`` jobs ``jobs``)."""
        ch = cls(deflater, chunk_frames, level)
        ch.count, ch.shape, ch.dtype, ch.rows, ch.jobs = count, tuple(shape), np.dtype(dtype), rows, jobs
        return ch

    def blob(self, results: list[bytes]) -> Blob:
        zeros = (0,) * len(self.shape)
        rows = self.rows
        data = [((k * rows, *zeros), b) for k, b in enumerate(results)]
        return Blob("observations", (self.count, *self.shape), np.dtype(self.dtype), (rows, *self.shape),
                    False, data)


def small_parts(rec: EpisodeRecord, level: int) -> tuple[list[tuple], list[Part]]:
    """Every array of ``rec`` but the frames, one chunk each: (name, array, shuffle) per array with
    data, and the ``Part`` to deflate for each (HDF5's shuffle filter applied here)."""
    metas, parts = [], []
    for name, arr in _flat_arrays(rec):
        shuffle = arr.dtype.itemsize > 1
        metas.append((name, arr, shuffle))
        if arr.size:
            parts.append(Part(_shuffled(arr) if shuffle else memoryview(arr).cast("B"), level))
    return metas, parts


def small_blobs(metas: list[tuple], results: list[bytes]) -> list[Blob]:
    blobs, it = [], iter(results)
    for name, arr, shuffle in metas:
        if arr.size == 0:
            blobs.append(Blob(name, arr.shape, arr.dtype, None, False, []))
        else:
            zeros = (0,) * (arr.ndim - 1)
            blobs.append(Blob(name, arr.shape, arr.dtype, arr.shape, shuffle, [((0, *zeros), next(it))]))
    return blobs


def _combine(rec: EpisodeRecord, blobs: list[Blob]) -> EncodedEpisode:
    crc, nbytes = 0, 0
    for blob in sorted(blobs, key=lambda b: b.name):
        for _, b in blob.data:
            crc = zlib.crc32(b, crc)
            nbytes += len(b)
    return EncodedEpisode(rec, blobs, crc, nbytes)


def episode_crc32(group: h5py.Group) -> int:
    """Recomputes the ``crc32`` attribute from the stored chunks (datasets in name order, as written)."""
    crc = 0
    names: list[str] = []
    group.visit(lambda n: names.append(n) if isinstance(group[n], h5py.Dataset) else None)
    for name in sorted(names):
        ds = group[name]
        if ds.chunks is None:
            continue
        for start in range(0, ds.shape[0], ds.chunks[0]):
            _, b = ds.id.read_direct_chunk((start,) + (0,) * (ds.ndim - 1))
            crc = zlib.crc32(b, crc)
    return crc


_LCPL = h5py.h5p.create(h5py.h5p.LINK_CREATE)
_LCPL.set_create_intermediate_group(True)
_TYPES: dict = {}  # numpy dtype → HDF5 type id (a compound type costs ~0.15 ms to build)
_DCPLS: dict = {}  # (chunks, shuffle, level) → dataset creation property list


def _create(group: h5py.Group, blob: Blob, level: int):
    """``create_dataset`` through h5py's low-level API with cached types and property lists: ~40 µs
    instead of ~250 µs (a compound type alone costs ~150 µs to build), which matters for short
    episodes (ten datasets each)."""
    from h5py import h5d, h5p, h5s, h5t

    key = (blob.chunks, blob.shuffle, level)
    dcpl = _DCPLS.get(key)
    if dcpl is None:
        dcpl = h5p.create(h5p.DATASET_CREATE)
        dcpl.set_fill_time(h5d.FILL_TIME_NEVER)
        dcpl.set_obj_track_times(False)  # no timestamps (byte-identical shards at zlib levels)
        if blob.chunks is not None:
            dcpl.set_chunk(blob.chunks)
            if blob.shuffle:
                dcpl.set_shuffle()
            dcpl.set_deflate(level)
        _DCPLS[key] = dcpl
    tid = _TYPES.get(blob.dtype)
    if tid is None:
        tid = _TYPES[blob.dtype] = h5t.py_create(blob.dtype, logical=True)
    space = h5s.create_simple(blob.shape)
    return h5d.create(group.id, blob.name.encode(), tid, space, dcpl=dcpl, lcpl=_LCPL)


def _write_encoded(f: h5py.File, enc: EncodedEpisode, level: int) -> None:
    rec = enc.record
    g = f.create_group(f"episode_{rec.index}")
    for blob in enc.blobs:
        dsid = _create(g, blob, level)
        for offset, b in blob.data:
            dsid.write_direct_chunk(offset, b)
    _scalar_attrs(g, {"id": rec.index, "seed": rec.seed, "policy_seed": rec.policy_seed,
                      "total_steps": rec.steps, "crc32": enc.crc32, "return": rec.episode_return})
    if rec.options:  # readers default to {} (an h5py string attribute costs ~0.15 ms per episode)
        a = g.attrs
        a["options_json"] = json.dumps(rec.options, sort_keys=True)
        for k, v in rec.options.items():  # Minari's flattened episode options
            if isinstance(v, (bool, int, float, str, list, tuple)):
                a[f"options/{k}"] = v


def _scalar_attrs(g: h5py.Group, values: dict) -> None:
    """int64/float64 scalar attributes through the low-level API (h5py's ``attrs[...]`` costs ~80 µs)."""
    from h5py import h5a, h5s, h5t

    space = h5s.create(h5s.SCALAR)
    for name, v in values.items():
        arr = np.asarray(v, np.float64 if isinstance(v, float) else np.int64)
        tid = h5t.IEEE_F64LE if arr.dtype == np.float64 else h5t.STD_I64LE
        h5a.create(g.id, name.encode(), tid, space).write(arr)


@dataclass
class ShardInfo:
    """A finished shard (in its temp file until the collector publishes it)."""

    file: str
    tmp: str
    sha256: str
    bytes: int
    episodes: list
    steps: list
    returns: list
    max_objects: int
    max_contacts: int

    def seal(self, out_dir: str | Path) -> ShardInfo:
        """fsync the finished temp file and record its size and sha256 (GIL-free work, mostly)."""
        if self.sha256:  # sealed already (by the shard writer process)
            return self
        path = Path(out_dir) / self.tmp
        fsync_file(path)
        self.sha256, self.bytes = sha256_file(path), path.stat().st_size
        return self

    def entry(self) -> dict:
        """The shard's record in metadata.json."""
        return {"file": self.file, "sha256": self.sha256, "bytes": self.bytes, "episodes": self.episodes,
                "steps": self.steps, "returns": self.returns, "max_objects": self.max_objects,
                "max_contacts": self.max_contacts}


class ShardWriter:
    """Writes episodes into ``DIR/shard-<first>.h5.tmp``; ``close()`` returns its :class:`ShardInfo`.

    Compression goes through ``deflater`` (``collect.deflate``; default: inline, in this thread).
    ``frame_sink()`` gives the episode's frame collector (chunks are submitted while the env steps);
    ``add`` submits the episode's other arrays and writes the *previous* episode to the file, so
    that a helper process has had a whole episode's time to compress it.
    """

    def __init__(self, out_dir: str | Path, first_index: int, chunk_frames: int = 16, level: int = 1,
                 deflater=None):
        self.out_dir = Path(out_dir)
        self.name = shard_name(first_index)
        self.tmp = self.out_dir / (self.name + TMP_SUFFIX)
        self.chunk_frames, self.level = chunk_frames, level
        self.deflater = deflater if deflater is not None else InlineDeflater()
        self.file = h5py.File(self.tmp, "w", libver=("v110", "v110"))
        self.file.attrs["format"] = FORMAT
        self.file.attrs["format_version"] = FORMAT_VERSION
        self.pending: tuple | None = None  # (record, its FrameChunker, small-array metas, deflater job)
        self.episodes: list[int] = []
        self.steps: list[int] = []
        self.returns: list[float] = []
        self.max_objects = self.max_contacts = 0
        self.nbytes = 0  # compressed payload so far (the size bound uses it)

    def frame_sink(self) -> FrameChunker:
        """Pass to ``run_episode(..., frames=)``: the episode's frames go to the deflater as they come."""
        return FrameChunker(self.deflater, self.chunk_frames, self.level)

    def add(self, rec: EpisodeRecord) -> None:
        self._flush()
        frames = rec.frames
        if not isinstance(frames, FrameChunker):  # a record with its frames in a list
            frames = self.frame_sink()
            for f in rec.frames:
                frames.append(f)
        frames.finish()
        metas, parts = small_parts(rec, self.level)
        self.pending = (rec, frames, metas, self.deflater.submit(parts) if parts else None)

    def _flush(self) -> None:
        if self.pending is None:
            return
        rec, frames, metas, job = self.pending
        self.pending = None
        d = self.deflater
        obs = frames.blob([d.result(j)[0] for j in frames.jobs])
        enc = _combine(rec, [obs, *small_blobs(metas, d.result(job) if job is not None else [])])
        _write_encoded(self.file, enc, self.level)
        self.episodes.append(rec.index)
        self.steps.append(rec.steps)
        self.returns.append(rec.episode_return)
        self.nbytes += enc.nbytes
        if "state_count" in rec.infos:
            self.max_objects = max(self.max_objects, int(rec.infos["state"].shape[1]))
        if "contacts" in rec.infos:
            self.max_contacts = max(self.max_contacts, int(rec.infos["contacts"].shape[1]))

    @property
    def bytes_estimate(self) -> int:
        return self.nbytes

    def close(self, seal: bool = True) -> ShardInfo:
        """Writes the last episode and closes the file. ``seal``: also fsync it and fill in its size
        and sha256 (else the caller calls ``info.seal(out_dir)`` later, e.g. in another thread)."""
        self._flush()
        self.file.attrs["episodes"] = np.asarray(self.episodes, np.int64)
        self.file.close()
        info = ShardInfo(self.name, self.tmp.name, "", 0, self.episodes, self.steps, self.returns,
                         self.max_objects, self.max_contacts)
        if seal:
            info.seal(self.out_dir)
        return info

    def abort(self) -> None:
        self.pending = None
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class GroupWriter:
    """A group of episodes (consecutive pending indices, in order) into shards: a new shard at the
    group's first episode and after any episode that brings the current one to ``shard_mb`` (as
    measured by ``ShardWriter.bytes_estimate``, which lags one episode). The same rule wherever it
    runs (the worker, or ``collect._writer_helper``), so shard boundaries never depend on where.
    Finished shards collect in ``done`` until the caller takes them. (``WriterProcess`` has the
    same calls and runs one of these in a helper process.)"""

    overlapped = False  # compression runs in the calling thread
    cpu_seconds = 0.0  # CPU time spent outside this process

    def __init__(self, out_dir: str | Path, chunk_frames: int, level: int, shard_mb: float, deflater=None,
                 seal: bool = True):
        self.out_dir, self.chunk_frames, self.level = out_dir, chunk_frames, level
        self.limit, self.seal = shard_mb * 1e6, seal
        self.deflater = deflater if deflater is not None else InlineDeflater()
        self.writer: ShardWriter | None = None
        self.done: list[ShardInfo] = []

    def frame_sink(self) -> FrameChunker:
        return FrameChunker(self.deflater, self.chunk_frames, self.level)

    def add(self, rec: EpisodeRecord) -> None:
        if self.writer is None:
            self.writer = ShardWriter(self.out_dir, rec.index, self.chunk_frames, self.level, self.deflater)
        self.writer.add(rec)
        if self.writer.bytes_estimate >= self.limit:
            self.end_group()

    def end_group(self) -> None:
        """Closes the open shard (the next ``add`` starts a new one)."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            self.done.append(writer.close(self.seal))

    def take(self) -> list[ShardInfo]:
        done, self.done = self.done, []
        return done

    sync = take  # nothing runs elsewhere: everything added is written

    def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        """Drops the open shard and its temp file."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.abort()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def dumps(obj, indent: int = 0) -> str:
    """JSON with one key per line but lists of scalars on one line (readable shard lists)."""
    pad = " " * (indent + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{pad}{json.dumps(str(k))}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in obj):
        return "[\n" + ",\n".join(pad + dumps(v, indent + 1) for v in obj) + "\n" + " " * indent + "]"
    return json.dumps(obj)


def atomic_write_json(path: str | Path, obj) -> None:
    """Writes JSON to a temp file, fsyncs it and renames it over ``path`` (readers never see half)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".{os.getpid()}{TMP_SUFFIX}")
    with open(tmp, "w") as f:
        f.write(dumps(obj) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def publish(out_dir: str | Path, info: ShardInfo) -> None:
    """Makes a finished shard visible: one atomic rename."""
    out_dir = Path(out_dir)
    os.replace(out_dir / info.tmp, out_dir / info.file)
    fsync_dir(out_dir)
