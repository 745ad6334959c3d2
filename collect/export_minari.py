"""``python -m collect.export_minari DIR``: make a collected dataset loadable by ``minari.load_dataset``.

Our shard episode groups already follow Minari's HDF5 episode schema (``observations`` with the reset
frame first, ``actions``, ``rewards``, ``terminations``, ``truncations``, ``infos/…``, attributes
``seed`` and ``options/…``). Minari wants one ``main_data.hdf5`` with groups ``episode_0 …
episode_{n-1}`` and a ``metadata.json`` beside it, under ``$MINARI_DATASETS_PATH/<dataset id>/data``.
So the export writes that metadata and a ``main_data.hdf5`` made of HDF5 *external links* to the
shard groups (relative paths: a few KB, instant), or with ``--copy`` a self-contained copy (chunks
are copied as they are, not recompressed). Minari itself is not needed to export, only to load;
it does not pull jax for loading.

    python -m collect.export_minari data/bb --dataset-id worldgym/bouncingballs/random-v0
    >>> minari.load_dataset("worldgym/bouncingballs/random-v0")
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

from collect.cli import summary
from collect.dataset import Dataset, DatasetError, open_dataset

PROG = "python -m collect.export_minari"
MINARI_SCHEMA_VERSION = "0.5.0"  # the Minari dataset format these files follow (metadata "minari_version")
_ID_RE = re.compile(r"^(?:[-_\w][-_\w/]*[-_\w]+/)?[-_\w]+?-v\d+$")


def minari_space(space) -> str:
    """A space in Minari's serialisation (``minari.serialization.serialize_space``), without Minari."""
    name = type(space).__name__
    if name == "Box":
        d = {"type": "Box", "dtype": str(space.dtype), "shape": list(space.shape),
             "low": space.low.tolist(), "high": space.high.tolist()}
    elif name == "Discrete":
        d = {"type": "Discrete", "dtype": "int64", "start": int(space.start), "n": int(space.n)}
    else:
        raise ValueError(f"no Minari serialisation for {space}")
    return json.dumps(d)


def default_root() -> Path:
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


def default_id(ds: Dataset) -> str:
    name = ds.metadata["env"]["name"].lower()
    label = re.sub(r"[^-_\w]", "_", ds.root.resolve().name) or "dataset"
    return f"worldgym/{name}/{label}-v0"


def export(path: str | Path, dataset_id: str | None = None, root: str | Path | None = None,
           copy: bool = False, overwrite: bool = False) -> Path:
    """Writes the Minari view of the dataset in ``path``; returns the Minari ``data`` directory."""
    ds = open_dataset(path)
    dataset_id = dataset_id or default_id(ds)
    if not _ID_RE.match(dataset_id):
        raise ValueError(f"dataset id {dataset_id!r} must look like namespace/name-v0 "
                         "(letters, digits, -, _)")
    if not len(ds):
        raise ValueError(f"{path} holds no episodes yet")
    data_dir = Path(root or default_root()) / dataset_id / "data"
    if data_dir.exists() and not overwrite:
        raise ValueError(f"{data_dir} exists; pass --overwrite to replace it")
    # built beside it and swapped in at the end: a failed export leaves the old one as it was
    stage, old = data_dir.with_name(".data.partial"), data_dir.with_name(".data.old")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    env = ds.make_env()
    try:
        _write_episodes(ds, stage, data_dir, copy)
        meta = _metadata(ds, env, dataset_id, path, copy, stage)
        (stage / "metadata.json").write_text(json.dumps(meta))
        if data_dir.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.rename(data_dir, old)
        os.rename(stage, data_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        env.close()
    return data_dir


def _write_episodes(ds, stage: Path, data_dir: Path, copy: bool) -> None:
    """``main_data.hdf5`` in ``stage``: each episode copied, or an external link to its shard (relative
    to ``data_dir``, where the file will live)."""
    with h5py.File(stage / "main_data.hdf5", "w", libver=("v110", "v110"), track_order=True) as out:
        for k in range(len(ds)):
            shard, index = str(ds.table["shard"][k]), int(ds.indices[k])
            src = (ds.root / shard).resolve()
            if not copy:
                out[f"episode_{k}"] = h5py.ExternalLink(os.path.relpath(src, data_dir.resolve()),
                                                        f"/episode_{index}")
                continue
            try:
                with h5py.File(src, "r") as f:
                    f.copy(f[f"episode_{index}"], out, name=f"episode_{k}")
            except (OSError, RuntimeError, KeyError) as e:  # h5py's errors for a damaged file
                raise DatasetError(f"cannot copy episode {index} of {shard} ({e}); "
                                   f"`python -m collect.verify {ds.root}` names the damage") from None


def _metadata(ds, env, dataset_id: str, path, copy: bool, stage: Path) -> dict:
    s = ds.settings
    spec = env.spec
    meta = {
        "dataset_id": dataset_id,
        "total_episodes": len(ds),
        "total_steps": int(np.sum(ds.steps)),
        "data_format": "hdf5",
        "jpeg_encoding": False,  # frames are lossless uint8 arrays
        "observation_space": minari_space(env.observation_space),
        "action_space": minari_space(env.action_space),
        "env_spec": spec.to_json() if spec is not None else None,
        "minari_version": MINARI_SCHEMA_VERSION,
        "algorithm_name": ds.metadata["policy"],
        "author": ["WorldGym collect"],
        "code_permalink": "",
        "dataset_size": round(sum(f.stat().st_size for f in stage.iterdir()) / 1e6, 1),
        "requirements": [],
        "description": (f"{s['env_id']} {s['width']}x{s['height']}, policy {ds.metadata['policy']}, seed "
                        f"{s['seed']}; exported from {Path(path).resolve()} ("
                        f"{'copy' if copy else 'external links'}). Minari episode k is collection "
                        "episode worldgym_episode_indices[k]; infos hold the padded ground-truth state."),
        "worldgym_settings": s,
        "worldgym_seeding": ds.metadata["seeding"],
        "worldgym_episode_indices": [int(i) for i in ds.indices],
    }
    if meta["env_spec"] is None:
        del meta["env_spec"]
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=summary(__doc__))
    p.add_argument("dir", help="collected dataset directory")
    p.add_argument("--dataset-id", default=None,
                   help="Minari id, namespace/name-vN (default: worldgym/<scene>/<dir name>-v0)")
    p.add_argument("--root", default=None,
                   help="Minari datasets root (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)")
    p.add_argument("--copy", action="store_true", help="copy the episodes instead of linking to the shards")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export with this id")
    args = p.parse_args(argv)
    try:
        data_dir = export(args.dir, args.dataset_id, args.root, args.copy, args.overwrite)
    except (DatasetError, ValueError) as e:
        p.error(str(e))
    dataset_id = json.loads((data_dir / "metadata.json").read_text())["dataset_id"]
    root = Path(args.root) if args.root else default_root()
    print(f"wrote {data_dir}\nload it with: MINARI_DATASETS_PATH={root} python -c "
          f"\"import minari; print(minari.load_dataset('{dataset_id}'))\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
