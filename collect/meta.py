"""``metadata.json``: what a dataset is, how to regenerate it, and a checksum per shard.

One file per collection slice: ``metadata.json`` for a whole run, ``metadata-<I>of<N>.json`` for
``--shard I/N``. Slices of one dataset may be written into one directory at the same time or copied
together afterwards ("merge by directory"): shard names (first episode index) and metadata names never
collide, and readers merge every ``metadata*.json`` they find after checking that the settings agree.

Top-level keys: ``format``/``format_version``; ``settings`` (everything that decides episode
contents: env id, frame size, options, policy, seed, max steps; compared on ``--resume`` and when
merging); ``env`` (id, name, version, spec, spaces, dt, action names); ``seeding`` (how episode i's
seeds derive from the dataset seed); ``slice``, ``episodes_requested``; ``storage`` (chunking,
compression, the padded state layout, as the latest run wrote; each shard's own ``storage`` says how
that shard was written); ``versions`` (packages); ``counts``; ``shards`` (file, sha256,
bytes, episode indices, steps, returns, max objects and contacts per episode row); ``complete``.
A shard appears here *before* its file is renamed into place, so every visible shard has a checksum.
"""
from __future__ import annotations

import importlib.metadata
import json
import platform
import re
from pathlib import Path

import numpy as np

from collect.writer import FORMAT, FORMAT_VERSION, atomic_write_json

SEEDING = ("episode i: env seed, policy seed = SeedSequence([seed, i]).generate_state(2, uint64) >> 1 "
           "(collect.record.episode_seeds)")
_PART_RE = re.compile(r"^metadata(?:-(\d+)of(\d+))?\.json$")
_SHARD_NAME = re.compile(r"^shard-\d{8,}\.h5$")


def metadata_name(slice_index: int, slices: int) -> str:
    return "metadata.json" if slices == 1 else f"metadata-{slice_index}of{slices}.json"


def is_metadata_name(name: str) -> bool:
    return _PART_RE.match(name) is not None


def space_to_json(space) -> dict:
    """A Gymnasium space as plain JSON (Box bounds collapse to a scalar when uniform)."""
    name = type(space).__name__
    if name == "Discrete":
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start), "dtype": "int64"}
    if name == "Box":
        def bound(b):
            return b.flat[0].item() if b.size and np.all(b == b.flat[0]) else b.tolist()
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": bound(space.low), "high": bound(space.high)}
    return {"type": name, "repr": repr(space)}


def space_from_json(d: dict):
    from gymnasium import spaces

    if d["type"] == "Discrete":
        return spaces.Discrete(d["n"], start=d.get("start", 0))
    if d["type"] == "Box":
        low, high = np.asarray(d["low"]), np.asarray(d["high"])
        return spaces.Box(low, high, tuple(d["shape"]), np.dtype(d["dtype"]))
    raise ValueError(f"cannot rebuild space {d}")


def package_versions(extra: tuple[str, ...] = ()) -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("worldgym", "numpy", "gymnasium", "pymunk", "pygame", "h5py", "isal", *extra):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def env_description(env, env_id: str) -> dict:
    scene = env.unwrapped
    spec = env.spec
    name, _, version = env_id.rpartition("/")[2].rpartition("-v")
    return {
        "id": env_id, "name": name, "version": int(version) if version.isdigit() else None,
        "entry_point": str(spec.entry_point) if spec else None,
        "max_episode_steps": spec.max_episode_steps if spec else None,
        "observation_space": space_to_json(env.observation_space),
        "action_space": space_to_json(env.action_space),
        "actions": list(getattr(scene, "ACTIONS", ())) if hasattr(env.action_space, "n") else None,
        "dt": float(getattr(scene, "DT", 0.0)) or None,
        "substeps": getattr(scene, "SUBSTEPS", None),
        "render_fps": scene.metadata.get("render_fps"),
    }


def read_parts(out_dir: str | Path) -> list[tuple[Path, dict]]:
    """Every ``metadata*.json`` in ``out_dir``, parsed (``ValueError`` naming a broken file)."""
    parts = []
    for p in sorted(Path(out_dir).glob("metadata*.json")):
        if not is_metadata_name(p.name):
            continue
        try:
            meta = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{p}: unreadable metadata ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{p}: not a {FORMAT} metadata file")
        version = meta.get("format_version", 0)
        if not isinstance(version, int):
            raise ValueError(f"{p}: format_version must be an integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise ValueError(f"{p}: format version {version} is newer than this reader "
                             f"({FORMAT_VERSION}); update worldgym")
        problem = _schema_problem(meta)
        if problem:
            raise ValueError(f"{p}: damaged metadata ({problem})")
        parts.append((p, meta))
    return parts


#: The keys of one shard's record and their JSON types.
_SHARD_KEYS = {"file": str, "sha256": str, "bytes": int, "episodes": list, "steps": list, "returns": list}
_SETTINGS_KEYS = {"width": int, "height": int}


def _schema_problem(meta: dict) -> str | None:
    """What a hand-edited or damaged metadata file lacks that readers rely on (None if nothing)."""
    settings = meta.get("settings")
    if not isinstance(settings, dict):
        return "'settings' must be an object"
    for key, kind in _SETTINGS_KEYS.items():
        if not isinstance(settings.get(key), kind):
            return f"settings.{key} must be {kind.__name__}"
    shards = meta.get("shards")
    if not isinstance(shards, list):
        return "'shards' must be a list"
    for k, s in enumerate(shards):
        if not isinstance(s, dict):
            return f"shards[{k}] must be an object"
        for key, kind in _SHARD_KEYS.items():
            if not isinstance(s.get(key), kind):
                return f"shards[{k}].{key} must be {kind.__name__}"
        if not (len(s["episodes"]) == len(s["steps"]) == len(s["returns"])):
            return f"shards[{k}]: episodes, steps and returns differ in length"
        if not _SHARD_NAME.match(s["file"]):
            return f"shards[{k}].file {s['file']!r} is not a shard name"
    return None


def settings_diff(a: dict, b: dict) -> list[str]:
    """Human-readable differences between two ``settings`` dicts."""
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def recount(meta: dict) -> dict:
    """Refreshes ``counts`` from ``shards``."""
    shards = meta["shards"]
    episodes = sum(len(s["episodes"]) for s in shards)
    steps = sum(sum(s["steps"]) for s in shards)
    h, w = meta["settings"]["height"], meta["settings"]["width"]
    meta["counts"] = {"shards": len(shards), "episodes": episodes, "steps": steps,
                      "frames": steps + episodes, "bytes": sum(s["bytes"] for s in shards),
                      "raw_frame_bytes": (steps + episodes) * h * w * 3}
    return meta


def write(path: str | Path, meta: dict) -> None:
    atomic_write_json(path, recount(meta))
