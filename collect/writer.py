"""Shard files: multi-episode HDF5, written to a temp name and renamed only when complete.

Schema of one shard (each episode group follows Minari's HDF5 episode layout, so an export is just
links to these groups)::

    shard-00000064.h5                 named after its first episode index (unique in a directory)
      attrs: format, format_version, episodes (indices)
      episode_64/                     the episode's global index
        attrs: id, seed, policy_seed, total_steps, return, crc32, options_json, options/<key>
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

Why direct chunk writes: deflating frames is the costly part of collecting (~16 µs per 64×64 frame at
level 3 on this machine, twice that at level 4+, against ~140 µs per env step). Doing it ourselves
with ``zlib`` (which releases the GIL, unlike h5py's filter pipeline) lets the writer deflate in a
background thread while the env steps, when a core is idle, and lets us pick zlib parameters; the
finished chunks go to the file with ``write_direct_chunk``. The bytes are exactly what HDF5's gzip
(+ shuffle) filters produce, so any HDF5 reader decodes them. ``crc32`` (an episode attribute) covers
the episode's compressed chunks in dataset-name order: ``collect.verify`` uses it to name the
damaged episode inside a damaged file.
"""
from __future__ import annotations

import hashlib
import json
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from collect.record import EpisodeRecord

FORMAT = "worldgym-collect"
FORMAT_VERSION = 1
TMP_SUFFIX = ".tmp"
#: zlib memLevel for frames: a smaller hash table than the default 8 deflates flat-shaded frames
#: ~25% faster to the same bytes (measured at levels 1-3); the stream format does not depend on it.
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


def _shuffled(chunk: np.ndarray) -> bytes:
    """HDF5's shuffle filter: byte j of every element, then byte j + 1, …"""
    size = chunk.dtype.itemsize
    return chunk.view(np.uint8).reshape(-1, size).T.tobytes() if size > 1 else chunk.tobytes()


def encode_array(name: str, arr: np.ndarray, time_chunk: int | None, level: int) -> Blob:
    """Splits ``arr`` into chunks along axis 0 (``time_chunk`` rows; None = one chunk) and deflates them."""
    arr = np.ascontiguousarray(arr)
    if arr.size == 0:
        return Blob(name, arr.shape, arr.dtype, None, False, [])
    rows = arr.shape[0] if time_chunk is None else min(time_chunk, arr.shape[0])
    chunks = (rows, *arr.shape[1:])
    shuffle = arr.dtype.itemsize > 1
    data = []
    zeros = (0,) * (arr.ndim - 1)
    for start in range(0, arr.shape[0], rows):
        part = arr[start:start + rows]
        if len(part) < rows:  # edge chunks are stored at full chunk size
            pad = np.zeros((rows - len(part), *arr.shape[1:]), arr.dtype)
            part = np.concatenate([part, pad])
        raw = _shuffled(part) if shuffle else memoryview(part).cast("B")
        data.append(((start, *zeros), zlib.compress(raw, level)))
    return Blob(name, arr.shape, arr.dtype, chunks, shuffle, data)


def encode_frames(frames: list[np.ndarray], chunk_frames: int, level: int) -> Blob:
    """The observations blob: ``chunk_frames`` frames per chunk, one GIL-free ``zlib`` call each."""
    first = frames[0]
    rows = min(chunk_frames, len(frames))
    data = []
    zeros = (0,) * first.ndim
    for start in range(0, len(frames), rows):
        part = frames[start:start + rows]
        if len(part) < rows:  # edge chunks are stored at full chunk size
            part = part + [np.zeros_like(first)] * (rows - len(part))
        chunk = np.stack(part)  # (C, H, W, 3)
        co = zlib.compressobj(level, zlib.DEFLATED, 15, FRAME_MEM_LEVEL)
        data.append(((start, *zeros), co.compress(memoryview(chunk).cast("B")) + co.flush()))
    return Blob("observations", (len(frames), *first.shape), first.dtype, (rows, *first.shape), False, data)


def encode_small(rec: EpisodeRecord, level: int) -> list[Blob]:
    """Every array of ``rec`` but the frames, one chunk each."""
    return [encode_array(name, arr, None, level) for name, arr in _flat_arrays(rec)]


def encode_episode(rec: EpisodeRecord, chunk_frames: int, level: int) -> EncodedEpisode:
    """Every array of ``rec`` as compressed chunks (what the writer does, in one call)."""
    return _combine(rec, [encode_frames(rec.frames, chunk_frames, level), *encode_small(rec, level)])


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
        dcpl.set_obj_track_times(False)  # no timestamps: identical runs give byte-identical shards
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

    def entry(self) -> dict:
        """The shard's record in metadata.json."""
        return {"file": self.file, "sha256": self.sha256, "bytes": self.bytes, "episodes": self.episodes,
                "steps": self.steps, "returns": self.returns, "max_objects": self.max_objects,
                "max_contacts": self.max_contacts}


class _Done:
    """A finished "future" for the unthreaded path."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class ShardWriter:
    """Writes episodes into ``DIR/shard-<first>.h5.tmp``; ``close()`` returns its :class:`ShardInfo`.

    With ``threaded``, ``add`` hands the episode to one background thread for deflating (the costly
    part, and GIL-free); the episode is written to the file at the next ``add`` or at ``close``, so
    compression overlaps the stepping of the next episode. That only pays while a core is idle:
    otherwise the thread's GIL hand-offs cost more than they save, so the collector turns it off
    (collect.runner._idle_cores).
    """

    def __init__(self, out_dir: str | Path, first_index: int, chunk_frames: int = 16, level: int = 3,
                 threaded: bool = True):
        self.out_dir = Path(out_dir)
        self.name = shard_name(first_index)
        self.tmp = self.out_dir / (self.name + TMP_SUFFIX)
        self.chunk_frames, self.level = chunk_frames, level
        self.file = h5py.File(self.tmp, "w", libver=("v110", "v110"))
        self.file.attrs["format"] = FORMAT
        self.file.attrs["format_version"] = FORMAT_VERSION
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="shard-deflate") if threaded else None
        self.pending: tuple | None = None  # (record, future of its EncodedEpisode)
        self.episodes: list[int] = []
        self.steps: list[int] = []
        self.returns: list[float] = []
        self.max_objects = self.max_contacts = 0
        self.nbytes = 0  # compressed payload so far (the size bound uses it)

    def add(self, rec: EpisodeRecord) -> None:
        self._flush()
        if self.pool is not None:
            pending = self.pool.submit(encode_episode, rec, self.chunk_frames, self.level)
        else:
            pending = _Done(encode_episode(rec, self.chunk_frames, self.level))
        self.pending = (rec, pending)

    def _flush(self) -> None:
        if self.pending is None:
            return
        rec, pending = self.pending
        self.pending = None
        enc = pending.result()
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

    def close(self) -> ShardInfo:
        self._flush()
        if self.pool is not None:
            self.pool.shutdown()
        self.file.attrs["episodes"] = np.asarray(self.episodes, np.int64)
        self.file.close()
        fsync_file(self.tmp)
        return ShardInfo(self.name, self.tmp.name, sha256_file(self.tmp), self.tmp.stat().st_size,
                         self.episodes, self.steps, self.returns, self.max_objects, self.max_contacts)

    def abort(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        self.file.close()
        self.tmp.unlink(missing_ok=True)


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
