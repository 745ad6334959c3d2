"""Reading a collected dataset: ``open_dataset(DIR)`` → :class:`Dataset` → :class:`Episode` / windows.

Opening reads only the metadata files (episode lists, lengths, shard names); shard files are opened
lazily, per process (a ``DataLoader`` worker opens its own handles after fork or spawn), and kept
in a small LRU. A damaged shard fails only the episodes it holds, with a :class:`DatasetError`
naming the file and the episode.
"""
from __future__ import annotations

import json
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from collect import meta as meta_mod


class DatasetError(Exception):
    """Missing, unreadable or damaged data; the message names the directory/file and episode."""


class FilePool:
    """h5py files opened on first use in the current process, at most ``max_open`` at a time."""

    def __init__(self, root: Path, max_open: int = 64, cache_mb: float = 16.0):
        self.root, self.max_open, self.cache_mb = Path(root), max_open, cache_mb
        self._pid = None
        self._files: OrderedDict[str, h5py.File] = OrderedDict()

    def get(self, name: str) -> h5py.File:
        if self._pid != os.getpid():  # fresh handles after fork: never share HDF5 handles across processes
            self._files, self._pid = OrderedDict(), os.getpid()
        f = self._files.get(name)
        if f is not None:
            self._files.move_to_end(name)
            return f
        path = self.root / name
        try:
            # a chunk cache per file: a window usually spans two chunks that the next window reuses
            f = h5py.File(path, "r", rdcc_nbytes=int(self.cache_mb * 2**20), rdcc_nslots=4099)
        except OSError as e:
            raise DatasetError(f"{path}: cannot open shard ({e})") from None
        self._files[name] = f
        while len(self._files) > self.max_open:
            self._files.popitem(last=False)[1].close()
        return f

    def close(self) -> None:
        if self._pid == os.getpid():
            for f in self._files.values():
                f.close()
        self._files = OrderedDict()

    def __getstate__(self):  # DataLoader pickles datasets into its workers: handles stay behind
        return {"root": self.root, "max_open": self.max_open, "cache_mb": self.cache_mb}

    def __setstate__(self, d):
        self.__init__(**d)


@dataclass
class Episode:
    """One episode: ``observations[t] --actions[t]--> observations[t + 1]`` for ``t < steps``."""

    index: int
    seed: int
    policy_seed: int
    options: dict
    shard: str
    observations: np.ndarray  # (T+1, H, W, 3) uint8, index 0 = reset frame
    actions: np.ndarray  # (T,) or (T, D)
    rewards: np.ndarray  # (T,)
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray  # (T,) bool
    state: np.ndarray | None = None  # (T+1, N) structured, padded (see collect.record)
    state_count: np.ndarray | None = None  # (T+1,)
    contacts: np.ndarray | None = None  # (T+1, K, 2), padded with -2
    contacts_count: np.ndarray | None = None  # (T+1,)
    infos: dict = field(default_factory=dict)  # other per-frame scalar infos, (T+1,)

    @property
    def steps(self) -> int:
        return len(self.rewards)

    def __len__(self) -> int:
        return self.steps

    @property
    def dones(self) -> np.ndarray:
        return self.terminations | self.truncations

    def state_at(self, t: int) -> dict[str, np.ndarray]:
        """``info["state"]`` of frame ``t`` as the env returned it (padding rows dropped)."""
        rows = self.state[t, : self.state_count[t]]
        return {name: np.ascontiguousarray(rows[name]) for name in rows.dtype.names}

    def contacts_at(self, t: int) -> np.ndarray:
        """``info["contacts"]`` of frame ``t``: (K, 2) int64."""
        return self.contacts[t, : self.contacts_count[t]].copy()


_MAIN = ("observations", "actions", "rewards", "terminations", "truncations")


def read_group(group: h5py.Group, name: str, where: str, sel=()):
    try:
        return group[name][sel]
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise DatasetError(f"{where}: {name}: cannot read ({e})") from None


class Dataset:
    """Episodes of one collected dataset (or a subset of them). ``episode(i)`` is positional:
    ``indices[i]`` is the episode's index in the collection (its seed derives from it)."""

    def __init__(self, root: Path, metadata: dict, table: dict[str, np.ndarray],
                 files: FilePool | None = None):
        self.root, self.metadata, self.table = Path(root), metadata, table
        self.files = files or FilePool(self.root)

    # ------------------------------------------------------------------ facts
    def __len__(self) -> int:
        return len(self.table["index"])

    def __repr__(self) -> str:
        return (f"Dataset({str(self.root)!r}, env={self.env_id}, policy={self.metadata['policy']}, "
                f"episodes={len(self)}, steps={int(self.steps.sum())})")

    @property
    def indices(self) -> np.ndarray:
        return self.table["index"]

    @property
    def steps(self) -> np.ndarray:
        return self.table["steps"]

    @property
    def returns(self) -> np.ndarray:
        return self.table["returns"]

    @property
    def settings(self) -> dict:
        return self.metadata["settings"]

    @property
    def env_id(self) -> str:
        return self.settings["env_id"]

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.settings["height"], self.settings["width"], 3)

    @property
    def max_objects(self) -> int:
        return int(self.metadata.get("max_objects", 0))

    @property
    def max_contacts(self) -> int:
        return int(self.metadata.get("max_contacts", 0))

    def position(self, index: int) -> int:
        """Position (for ``episode``) of the episode with collection index ``index``."""
        pos = np.flatnonzero(self.indices == index)
        if not len(pos):
            raise KeyError(f"episode index {index} is not in this dataset")
        return int(pos[0])

    def make_env(self):
        """A fresh env as the collector stepped it, for replays (reset with ``episode.seed``)."""
        import envs  # noqa: F401  (registers the scenes)
        from collect.config import make_env

        s = self.settings
        return make_env(s["env_id"], s["width"], s["height"], s["max_steps"], s.get("continuous", False))

    # ------------------------------------------------------------------ reading
    def group(self, i: int) -> tuple[h5py.Group, str]:
        shard, index = str(self.table["shard"][i]), int(self.indices[i])
        f = self.files.get(shard)
        where = f"{self.root / shard}: episode {index}"
        try:
            return f[f"episode_{index}"], where
        except (KeyError, OSError, RuntimeError) as e:
            raise DatasetError(f"{where}: missing or unreadable group ({e})") from None

    def episode(self, i: int) -> Episode:
        if not -len(self) <= i < len(self):
            raise IndexError(f"episode {i} out of range for a dataset of {len(self)} episodes")
        i = i % len(self)
        g, where = self.group(i)
        arrays = {name: read_group(g, name, where) for name in _MAIN}
        infos = {}
        if "infos" in g:
            for name in g["infos"]:
                infos[name] = read_group(g, f"infos/{name}", where)
        a = g.attrs
        return Episode(
            index=int(self.indices[i]), seed=int(a["seed"]), policy_seed=int(a["policy_seed"]),
            options=json.loads(a.get("options_json", "{}")), shard=str(self.table["shard"][i]),
            state=infos.pop("state", None), state_count=infos.pop("state_count", None),
            contacts=infos.pop("contacts", None), contacts_count=infos.pop("contacts_count", None),
            infos=infos, **arrays)

    def __iter__(self):
        return (self.episode(i) for i in range(len(self)))

    # ------------------------------------------------------------------ subsets
    def subset(self, positions) -> Dataset:
        """The episodes at ``positions`` (integer positions in this dataset, or a boolean mask of
        ``len(self)``, e.g. ``ds.subset(ds.returns > 0)``)."""
        positions = np.asarray(positions)
        if positions.dtype == bool:
            if positions.shape != (len(self),):
                raise ValueError(f"a boolean mask must have shape ({len(self)},), got {positions.shape}")
            positions = np.flatnonzero(positions)
        elif positions.size == 0:
            positions = positions.astype(np.int64)
        elif not np.issubdtype(positions.dtype, np.integer):
            raise TypeError(f"positions must be integers or a boolean mask, got dtype {positions.dtype}")
        return Dataset(self.root, self.metadata, {k: v[positions] for k, v in self.table.items()}, self.files)

    def split(self, *, val: float = 0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
        """(train, val) by episode. Each episode gets a key from (seed, its collection index); the
        ``round(val * n)`` smallest keys go to val. Deterministic, and stable as a dataset grows:
        adding episodes moves few existing ones across the split."""
        if not 0.0 <= val <= 1.0:
            raise ValueError(f"val must be a fraction in [0, 1], got {val}")
        n = len(self)
        k = round(val * n)
        if n >= 2 and 0 < val < 1:
            k = min(max(k, 1), n - 1)
        keys = np.array([np.random.SeedSequence([seed, int(i)]).generate_state(1, np.uint64)[0]
                         for i in self.indices], np.uint64)
        order = np.argsort(keys, kind="stable")
        val_pos, train_pos = np.sort(order[:k]), np.sort(order[k:])
        return self.subset(train_pos), self.subset(val_pos)

    def windows(self, length: int = 16, stride: int = 1, state: bool = True, contacts: bool = True,
                cache_mb: float = 1024.0, frame_cache: bool = True):
        """A ``torch.utils.data.Dataset`` of ``length``-frame windows; see :mod:`collect.windows`."""
        from collect.windows import WindowDataset

        return WindowDataset(self, length, stride, state=state, contacts=contacts, cache_mb=cache_mb,
                             frame_cache=frame_cache)


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Opens a collected dataset directory (every ``metadata*.json`` in it, merged)."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such directory")
    try:
        parts = meta_mod.read_parts(root)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    if not parts:
        raise DatasetError(f"{root}: no metadata.json; not a collected dataset "
                           f"(python -m collect --out {root})")
    base = parts[0][1]
    for p, m in parts[1:]:
        diff = meta_mod.settings_diff(base["settings"], m["settings"])
        if diff:
            raise DatasetError(f"{root}: {parts[0][0].name} and {p.name} disagree on settings: "
                               f"{'; '.join(diff)}")
    shards, seen, missing, dup = [], set(), [], []
    for _, m in parts:
        for s in m["shards"]:
            if s["file"] in seen:
                continue
            seen.add(s["file"])
            (shards if (root / s["file"]).exists() else missing).append(s)
    if missing:
        pending = all((root / (s["file"] + ".tmp")).exists() for s in missing)
        why = ("finished but not yet renamed: an interrupted collection, --resume publishes them" if pending
               else "run python -m collect.verify")
        warnings.warn(f"{root}: {len(missing)} shard(s) listed in metadata are missing: "
                      f"{', '.join(s['file'] for s in missing[:5])} ({why})", stacklevel=2)
    rows: dict[int, tuple] = {}
    for s in shards:
        for idx, steps, ret in zip(s["episodes"], s["steps"], s["returns"]):
            if idx in rows:
                dup.append(idx)
                continue
            rows[idx] = (s["file"], steps, ret)
    if dup:
        warnings.warn(f"{root}: episode(s) {sorted(dup)[:10]} appear in more than one shard; using the first",
                      stacklevel=2)
    order = sorted(rows)
    table = {
        "index": np.asarray(order, np.int64),
        "shard": np.asarray([rows[i][0] for i in order], dtype=object),
        "steps": np.asarray([rows[i][1] for i in order], np.int64),
        "returns": np.asarray([rows[i][2] for i in order], np.float64),
    }
    merged = dict(base)
    merged["shards"] = shards
    merged["parts"] = [p.name for p, _ in parts]
    merged["max_objects"] = max((s.get("max_objects", 0) for s in shards), default=0)
    merged["max_contacts"] = max((s.get("max_contacts", 0) for s in shards), default=0)
    merged["episodes_requested"] = max(m.get("episodes_requested", 0) for _, m in parts)
    return Dataset(root, meta_mod.recount(merged), table)
