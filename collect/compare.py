"""``python -m collect.compare A B``: do two datasets hold the same episodes?

Compares what a reader sees, episode by episode (matched by index, whichever shard holds it): every
array, decoded, with its dtype and shape, and every attribute. Not the compressed bytes: igzip, the
default codec, has coded the same bytes as two different valid streams ("Determinism" in
``collect/writer.py``), so two runs of one collection can store identical episodes in shards whose
sha256 differ. The ``crc32`` attribute, a checksum of those compressed bytes, is left out for the
same reason. The metadata's ``settings`` are compared too (a difference there is reported first).
A dataset collected in slices (``--shard I/N``) is read whole, as ``open_dataset`` reads it.

Exit status: 0 the same, 1 different (the first differences are listed), 2 usage error.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from collect import meta as meta_mod
from collect.cli import summary
from collect.dataset import Dataset, DatasetError, open_dataset

PROG = "python -m collect.compare"
#: attributes that depend on the compressed bytes, not on the episode
BYTE_ATTRS = ("crc32",)


class CompareError(ValueError):
    """A path that is not a readable dataset."""


def _open(path: Path) -> Dataset:
    """``open_dataset`` (every ``metadata*.json`` part merged); its warnings about missing shards
    are left to ``python -m collect.verify``: a missing shard shows here as episodes on one side."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return open_dataset(path)
    except DatasetError as e:
        raise CompareError(str(e)) from None


def _episode_files(ds: Dataset) -> dict[int, str]:
    """Episode index → the shard file that holds it."""
    return dict(zip(ds.table["index"].tolist(), ds.table["shard"].tolist()))


def _attrs(obj) -> dict:
    return {k: np.asarray(v) for k, v in obj.attrs.items() if k not in BYTE_ATTRS}


def _same_value(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bytes (so NaNs in the same places compare equal)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _members(group: h5py.Group) -> dict:
    out = {}
    group.visititems(lambda name, obj: out.__setitem__(name, obj))
    return out


def compare_episode(a: h5py.Group, b: h5py.Group) -> Iterator[str]:
    """The differences between two episode groups, one line each."""
    for name, (x, y) in _attr_pairs(a, b):
        if x is None or y is None:
            yield f"attribute {name!r} only in {'B' if x is None else 'A'}"
        elif not _same_value(x, y):
            yield f"attribute {name!r}: {x.tolist()!r} != {y.tolist()!r}"
    ma, mb = _members(a), _members(b)
    for name in sorted(set(ma) | set(mb)):
        x, y = ma.get(name), mb.get(name)
        if x is None or y is None:
            yield f"{name}: only in {'B' if x is None else 'A'}"
            continue
        if isinstance(x, h5py.Dataset) != isinstance(y, h5py.Dataset):
            yield f"{name}: a dataset in one, a group in the other"
            continue
        for attr, (p, q) in _attr_pairs(x, y):
            if p is None or q is None or not _same_value(p, q):
                yield f"{name}: attribute {attr!r} differs"
        if isinstance(x, h5py.Dataset):
            if x.dtype != y.dtype or x.shape != y.shape:
                yield f"{name}: {x.dtype} {x.shape} != {y.dtype} {y.shape}"
            elif not _same_value(x[()], y[()]):
                yield f"{name}: the values differ"


def _attr_pairs(a, b) -> Iterator[tuple[str, tuple]]:
    x, y = _attrs(a), _attrs(b)
    for name in sorted(set(x) | set(y)):
        yield name, (x.get(name), y.get(name))


def compare(a: str | Path, b: str | Path, limit: int | None = None) -> list[str]:
    """The differences between datasets ``a`` and ``b`` (empty: the same episodes), at most
    ``limit`` of them. Raises :class:`CompareError` for a path that is not a dataset."""
    da, db = _open(Path(a)), _open(Path(b))
    out = [f"settings: {d}" for d in meta_mod.settings_diff(da.metadata["settings"], db.metadata["settings"])]
    files_a, files_b = _episode_files(da), _episode_files(db)
    for side, only in (("A", set(files_a) - set(files_b)), ("B", set(files_b) - set(files_a))):
        only = sorted(only)
        if only:
            out.append(f"{len(only)} episode(s) only in {side}: {only[:10]}{' …' if len(only) > 10 else ''}")
    try:
        for index in sorted(set(files_a) & set(files_b)):
            if limit is not None and len(out) >= limit:
                break
            try:
                ga = da.files.get(files_a[index])[f"episode_{index}"]
                gb = db.files.get(files_b[index])[f"episode_{index}"]
            except DatasetError as e:
                raise CompareError(str(e)) from None
            except KeyError as e:
                raise CompareError(f"episode {index}: listed in the metadata but not stored ({e})") from None
            try:
                out.extend(f"episode {index}: {d}" for d in compare_episode(ga, gb))
            except (OSError, RuntimeError) as e:  # h5py: a damaged chunk fails its filter or checksum
                raise CompareError(f"episode {index} is unreadable in {Path(a) / files_a[index]} or "
                                   f"{Path(b) / files_b[index]} ({e}); run python -m collect.verify on "
                                   "both") from None
    finally:
        da.files.close()
        db.files.close()
    return out if limit is None else out[:limit]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=summary(__doc__))
    p.add_argument("a", help="dataset directory")
    p.add_argument("b", help="the dataset directory to compare it with")
    p.add_argument("--max", type=int, default=20, metavar="N", help="list at most N differences (default 20)")
    args = p.parse_args(argv)
    if args.max < 1:
        p.error(f"--max must be at least 1, got {args.max}")
    try:  # every difference is found (to say how many are not listed), at most --max printed
        diffs = compare(args.a, args.b)
    except CompareError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    if not diffs:
        print(f"the same episodes: {args.a} and {args.b}")
        return 0
    for d in diffs[:args.max]:
        print(d)
    if len(diffs) > args.max:
        print(f"… and {len(diffs) - args.max} more (--max {len(diffs)} lists them all)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
