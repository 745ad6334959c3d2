"""What a collection run is asked to do (``CollectArgs``) and its checked, resolved form (``Plan``)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import gymnasium as gym


class CollectError(Exception):
    """A problem with the request or the output directory: reported as one line, exit code 2."""


@dataclass
class CollectArgs:
    """The CLI's arguments (``python -m collect --help`` shows the same text)."""

    out: str
    """output directory (created; shards and metadata.json go here)"""
    env: str = "WorldGym/BouncingBalls-v0"
    """registered scene id (see envs.SCENE_IDS)"""
    episodes: int = 100
    """number of episodes in the dataset (indices 0 … episodes-1)"""
    policy: str = "random"
    """random | heuristic | noisy:EPS | sb3:PATH.zip"""
    workers: int = 0
    """worker processes; 0 = one per CPU core; 1 runs in this process"""
    seed: int = 0
    """dataset seed S: episode i's env and policy seeds derive from (S, i)"""
    size: int = 64
    """frame width and height in pixels"""
    width: int | None = None
    """frame width (overrides --size)"""
    height: int | None = None
    """frame height (overrides --size)"""
    max_steps: int | None = None
    """truncate episodes at this many steps (default: the scene's max_episode_steps)"""
    options: str | dict = "{}"
    """scene parameters passed to reset(options=...), as a JSON object"""
    continuous: bool = False
    """record the scene's Box(-1, 1) actions (gym.make(..., continuous=True)) instead of Discrete ones,
    for the scenes that have them (see the README's scene table)"""
    shard: str = "0/1"
    """I/N: collect only episodes with index % N == I (for N machines or an array job)"""
    resume: bool = False
    """continue an interrupted run in --out (settings must match). This is also what a run without
    the flag does: an existing dataset with the same settings is always continued, never redone"""
    overwrite: bool = False
    """delete the dataset in --out and start again"""
    shard_episodes: int = 64
    """at most this many episodes per shard file (fewer, down to 8, when the run has under 16x this
    many, so that up to 16 workers share the work)"""
    shard_mb: float = 256.0
    """start a new shard file after about this many MB"""
    chunk_frames: int = 16
    """frames per compressed HDF5 chunk (align with training windows)"""
    level: int = 1
    """gzip level 1-9: 1-3 compress with ISA-L's igzip (1: ~3.6 µs per 64x64 frame; 3: ~15%
    smaller for ~6x the CPU), 4-9 with zlib (slower still); any gzip reader decodes them"""
    deflate: str = "auto"
    """where shards are compressed and written: 'process' (a helper process per worker, overlapping
    the env stepping), 'inline' (in the worker), or 'auto' = process while workers < CPUs (a core
    is spare). Shards hold the same episodes either way (byte for byte at zlib levels; see
    'Determinism' in collect/writer.py)"""
    progress: bool = True
    """show the tqdm progress bar (episodes, frames/s, ETA)"""


@dataclass
class Plan:
    """A validated request: everything a worker needs to rebuild the env and policy (JSON-able)."""

    env_id: str
    width: int
    height: int
    options: dict
    policy: str
    seed: int
    max_steps: int
    episodes: int
    slice_index: int
    slices: int
    workers: int
    shard_episodes: int
    shard_mb: float
    chunk_frames: int
    level: int
    identity: dict = field(default_factory=dict)  # policy identity (spec, sb3 checksum)
    continuous: bool = False

    def settings(self) -> dict:
        """What decides episode contents: compared on resume and when merging slices. ``continuous``
        appears only when set, so that datasets collected before it existed still resume."""
        mode = {"continuous": True} if self.continuous else {}
        return {"env_id": self.env_id, "width": self.width, "height": self.height, "options": self.options,
                "seed": self.seed, "max_steps": self.max_steps, **mode, **self.identity}

    def make_env(self):
        return make_env(self.env_id, self.width, self.height, self.max_steps, self.continuous)

    def to_dict(self) -> dict:
        return asdict(self)


def make_env(env_id: str, width: int, height: int, max_steps: int | None, continuous: bool = False):
    """The env exactly as the collector steps it (no env checker: it only slows the first calls)."""
    import envs  # noqa: F401  (registers WorldGym/*; workers are fresh processes)

    kw = {"max_episode_steps": max_steps} if max_steps else {}
    if continuous:
        kw["continuous"] = True
    return gym.make(env_id, render_mode="rgb_array", width=width, height=height,
                    disable_env_checker=True, **kw)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a batch scheduler)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def registered_ids() -> list[str]:
    import envs

    return list(envs.SCENE_IDS)


def parse_slice(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise CollectError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise CollectError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def parse_options(options) -> dict:
    if isinstance(options, dict):
        return options
    try:
        value = json.loads(options or "{}")
    except ValueError as e:
        raise CollectError(f"--options is not valid JSON ({e}): {options!r}") from None
    if not isinstance(value, dict):
        raise CollectError(f"--options must be a JSON object like '{{\"gravity\": 600}}', got {options!r}")
    return value


def resolve(args: CollectArgs) -> tuple[Plan, object, object]:
    """Checks ``args`` (``CollectError`` with one clear line) → (plan, env, policy), the env and
    policy ready for metadata and for an in-process worker."""
    from collect.policies import make_policy

    ids = registered_ids()
    if args.env not in ids and args.env not in gym.registry:
        raise CollectError(f"unknown env id {args.env!r}; registered ids: {', '.join(ids)}")
    for name in ("episodes", "shard_episodes", "chunk_frames"):
        if getattr(args, name) < (0 if name == "episodes" else 1):
            raise CollectError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not 1 <= args.level <= 9:
        raise CollectError(f"--level must be in 1..9, got {args.level}")
    if args.deflate not in ("auto", "process", "inline"):
        raise CollectError(f"--deflate must be auto, process or inline, got {args.deflate!r}")
    if args.resume and args.overwrite:
        raise CollectError("--resume and --overwrite exclude each other")
    if args.max_steps is not None and args.max_steps < 1:
        raise CollectError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.seed < 0:
        raise CollectError(f"--seed must be >= 0, got {args.seed}")
    if args.workers < 0:
        raise CollectError(f"--workers must be >= 0 (0 = one per usable CPU), got {args.workers}")
    for name in ("size", "width", "height"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CollectError(f"--{name} must be >= 1 pixel, got {value}")
    if not args.shard_mb > 0:
        raise CollectError(f"--shard-mb must be > 0, got {args.shard_mb}")
    slice_index, slices = parse_slice(args.shard)
    options = parse_options(args.options)
    width, height = args.width or args.size, args.height or args.size
    try:
        env = make_env(args.env, width, height, args.max_steps, bool(args.continuous))
    except (ValueError, TypeError) as e:
        raise CollectError(f"cannot make {args.env}: {e}") from None
    except ImportError as e:
        raise CollectError(f"cannot import {args.env}: {e}") from None
    try:
        env.reset(seed=0, options=dict(options) or None)
    except (ValueError, TypeError) as e:
        raise CollectError(f"--options: {e}") from None
    try:
        policy = make_policy(args.policy, env)
    except ValueError as e:
        raise CollectError(str(e)) from None
    max_steps = args.max_steps or (env.spec.max_episode_steps if env.spec else None)
    if not max_steps:
        raise CollectError(f"{args.env} has no max_episode_steps: pass --max-steps")
    workers = args.workers if args.workers > 0 else usable_cpus()
    plan = Plan(env_id=args.env, width=width, height=height, options=options, policy=policy.spec,
                seed=int(args.seed), max_steps=int(max_steps), episodes=int(args.episodes),
                slice_index=slice_index, slices=slices, workers=workers,
                shard_episodes=args.shard_episodes, shard_mb=float(args.shard_mb),
                chunk_frames=args.chunk_frames, level=args.level, identity=policy.identity(),
                continuous=bool(args.continuous))
    return plan, env, policy
