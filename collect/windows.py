"""Training windows: fixed-length slices of episodes as a ``torch.utils.data.Dataset``.

Item ``j`` is a dict of numpy arrays (``DataLoader``'s default collate turns them into tensors)::

    frames        (L, H, W, 3) uint8      observations[t : t + L]
    actions       (L - 1, ...)            actions[t : t + L - 1]; frames[k + 1] is the result of actions[k]
    rewards       (L - 1,) float32
    terminations, truncations, dones      (L - 1,) bool
    state         {field: (L, N, ...)}    padded to the dataset's most objects N (id -1 on padding)
    state_count   (L,) int64
    contacts      (L, K, 2) int64, padded with -2; contacts_count (L,)
    episode, start                        collection index of the episode, first frame

Windows never cross an episode boundary (so no autoreset transition can appear); an episode of
``T`` steps gives windows starting at ``0, stride, …`` up to ``T + 1 - L``, and one shorter than ``L``
frames gives none.

Speed: an LRU of episodes per process (``cache_mb``, default 1 GiB, counted per DataLoader worker)
keeps each recent episode's per-step arrays (contiguous, already padded to N and K) and its open
observations dataset with a chunk cache big enough for all its frames (up to a quarter of
``cache_mb``). A window from a cached episode is a memcpy; a cold one decompresses the two or three
16-frame chunks it overlaps (~0.1 ms at 64×64).
"""
from __future__ import annotations

from collections import OrderedDict

import h5py
import numpy as np
import torch.utils.data

from collect.dataset import Dataset, DatasetError, read_group


class WindowDataset(torch.utils.data.Dataset):
    def __init__(self, dataset: Dataset, length: int = 16, stride: int = 1, state: bool = True,
                 contacts: bool = True, cache_mb: float = 1024.0, frame_cache: bool = True):
        if length < 2:
            raise ValueError(f"length must be >= 2 frames, got {length}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.dataset, self.length, self.stride = dataset, int(length), int(stride)
        self.with_state, self.with_contacts = state, contacts
        self.cache_bytes = int(cache_mb * 2**20)
        self.frame_cache_bytes = self.cache_bytes // 4 if frame_cache else 0
        frames = dataset.steps + 1
        self.counts = np.maximum((frames - self.length) // self.stride + 1, 0)  # windows per episode
        self.ends = np.cumsum(self.counts)
        self._cache: OrderedDict[int, dict] = OrderedDict()
        self._cached_bytes = 0

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def locate(self, j: int) -> tuple[int, int]:
        """Window ``j`` → (episode position in the dataset, first frame)."""
        if not 0 <= j < len(self):
            raise IndexError(f"window {j} out of range [0, {len(self)})")
        pos = int(np.searchsorted(self.ends, j, side="right"))
        first = j - (int(self.ends[pos - 1]) if pos else 0)
        return pos, first * self.stride

    def __getitem__(self, j: int) -> dict:
        pos, t = self.locate(int(j))
        ep = self._episode(pos)
        L = self.length
        try:  # h5py's low-level read: half the overhead of ``obs[t:t + L]``
            obs, fspace = ep["obs"], ep["fspace"]
            frames = np.empty((L, *obs.shape[1:]), obs.dtype)  # (L, H, W, 3)
            fspace.select_hyperslab((t,) + (0,) * (obs.ndim - 1), frames.shape)
            obs.id.read(h5py.h5s.create_simple(frames.shape), fspace, frames)
        except (OSError, RuntimeError, ValueError) as e:
            raise DatasetError(f"{ep['where']}: observations: cannot read frames "
                               f"{t}-{t + L - 1} ({e})") from None
        out = {"frames": frames, "episode": ep["index"], "start": t}
        for key in ("actions", "rewards", "terminations", "truncations", "dones"):
            out[key] = ep[key][t:t + L - 1].copy()
        if self.with_state and "state" in ep:
            out["state"] = {k: v[t:t + L].copy() for k, v in ep["state"].items()}
            out["state_count"] = ep["state_count"][t:t + L].copy()
        if self.with_contacts and "contacts" in ep:
            out["contacts"] = ep["contacts"][t:t + L].copy()
            out["contacts_count"] = ep["contacts_count"][t:t + L].copy()
        return out

    # ------------------------------------------------------------------ per-episode cache
    def _episode(self, pos: int) -> dict:
        ep = self._cache.get(pos)
        # valid: the file pool may have closed the shard (too many open files) since it was cached
        if ep is not None and ep["pid"] == _pid() and ep["obs"].id.valid:
            self._cache.move_to_end(pos)
            return ep
        if ep is not None:
            self._cached_bytes -= self._cache.pop(pos)["nbytes"]
        ep = self._load(pos)
        self._cache[pos] = ep
        self._cached_bytes += ep["nbytes"]
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            self._cached_bytes -= self._cache.popitem(last=False)[1]["nbytes"]
        return ep

    def _load(self, pos: int) -> dict:
        ds = self.dataset
        g, where = ds.group(pos)
        ep = {"where": where, "index": int(ds.indices[pos]), "pid": _pid()}
        h, w, c = ds.frame_shape
        frames_bytes = (int(ds.steps[pos]) + 1 + 64) * h * w * c  # + room for a padded edge chunk
        cache_bytes = min(frames_bytes, self.frame_cache_bytes)
        ep["obs"] = _open_frames(g, where, cache_bytes)
        ep["fspace"] = ep["obs"].id.get_space()
        ep["actions"] = read_group(g, "actions", where)
        ep["rewards"] = read_group(g, "rewards", where).astype(np.float32)
        ep["terminations"] = read_group(g, "terminations", where)
        ep["truncations"] = read_group(g, "truncations", where)
        ep["dones"] = ep["terminations"] | ep["truncations"]
        if self.with_state and "infos/state" in g:
            ep["state"] = _pad_state(read_group(g, "infos/state", where), ds.max_objects, where)
            ep["state_count"] = read_group(g, "infos/state_count", where).astype(np.int64)
        if self.with_contacts and "infos/contacts" in g:
            c = read_group(g, "infos/contacts", where)
            padded = np.full((len(c), max(ds.max_contacts, c.shape[1]), 2), -2, np.int64)
            padded[:, : c.shape[1]] = c
            ep["contacts"] = padded
            ep["contacts_count"] = read_group(g, "infos/contacts_count", where).astype(np.int64)
        ep["nbytes"] = sum(_nbytes(v) for v in ep.values()) + cache_bytes
        return ep

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_cache"], d["_cached_bytes"] = OrderedDict(), 0  # h5py objects never travel to workers
        return d


def _open_frames(g, where: str, cache_bytes: int):
    """The episode's observations dataset with its own chunk cache of ``cache_bytes`` (sized by the
    caller to hold all its frames, or 0): windows from an episode still in the LRU then cost no
    decompression. No other handle of the dataset may be open here: HDF5 shares one cache among them."""
    try:
        dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        dapl.set_chunk_cache(1021, cache_bytes, 1.0)
        return h5py.Dataset(h5py.h5d.open(g.id, b"observations", dapl))
    except (OSError, KeyError, RuntimeError) as e:
        raise DatasetError(f"{where}: observations: cannot open ({e})") from None


def _pad_state(arr: np.ndarray, n: int, where: str) -> dict[str, np.ndarray]:
    """(T+1, n_ep) structured → {field: contiguous (T+1, n, ...)} with the padding rule of record.py."""
    if arr.shape[1] > n:
        raise DatasetError(f"{where}: infos/state has {arr.shape[1]} rows, more than metadata's {n}")
    out = {}
    for name in arr.dtype.names:
        col = arr[name]
        full = np.full((col.shape[0], n, *col.shape[2:]), -1 if name == "id" else 0, col.dtype)
        full[:, : col.shape[1]] = col
        out[name] = full
    return out


def _nbytes(v) -> int:
    if isinstance(v, np.ndarray):
        return v.nbytes
    if isinstance(v, dict):
        return sum(_nbytes(x) for x in v.values())
    return 0


def _pid() -> int:
    import os

    return os.getpid()
