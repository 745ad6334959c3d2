"""Scene throughput: single-process steps/s with an RGB frame every step, and reset time.

    python -m envs.bench                       # every scene, 64x64, 3 rounds of 1 s
    python -m envs.bench --size 256 --seconds 2
    python -m envs.bench --returns             # heuristic vs random mean episode return
    python -m envs.bench --vec                 # make_vec async (2 procs) vs one process
    python -m envs.bench --vec --pin           # ... with each worker pinned to its own core
    python -m envs.bench --vec --vec-kwargs '{"context": "fork", "shared_memory": false}'
    python -m envs.bench --vec --ceiling       # ... and what a busy-wait env of each scene's step time gets

Scenes are measured in alternating rounds so that ratios hold while the machine's speed drifts;
the median round is reported. By default the process is pinned to one core (``--cpu``), which is
how the bars are stated ("on one core"). For peers side by side: ../shared/bench/peers.py --ours.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402
from envs.base import MAX_SIZE, MIN_SIZE  # noqa: E402


def steps_per_second(env, seconds: float) -> float:
    steps, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            steps += 1
            if term or trunc:
                env.reset()
        now = time.perf_counter()
        if now >= deadline:
            return steps / (now - start)


def reset_ms(env, n: int = 30) -> float:
    times = []
    for seed in range(n):
        t = time.perf_counter()
        env.reset(seed=seed)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def mean_return(env_id: str, policy: str, seeds, max_steps: int, size: int = 64) -> float:
    env = gym.make(env_id, max_episode_steps=max_steps, width=size, height=size)
    totals = []
    for seed in seeds:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        total, done = 0.0, False
        while not done:
            a = env.unwrapped.heuristic() if policy == "heuristic" else env.action_space.sample()
            _, r, term, trunc, _ = env.step(a)
            total, done = total + r, term or trunc
        totals.append(total)
    return float(np.mean(totals))


def pin_workers(venv) -> None:
    """Each AsyncVectorEnv worker on its own core (round robin over the cores this process may use)."""
    cpus = sorted(os.sched_getaffinity(0))
    for k, proc in enumerate(venv.processes):
        os.sched_setaffinity(proc.pid, {cpus[k % len(cpus)]})


class BusyEnv(gym.Env):
    """A stand-in scene that only burns ``step_us`` of CPU per step and returns a blank frame with an
    empty ``info``: what any env of that step time gets from an async vector env on this machine.
    Like a scene, it hands out a fresh frame every call (users keep what they are given)."""

    def __init__(self, step_us: float = 300.0, size: int = 64):
        self.step_us = step_us
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, np.uint8), {}

    def step(self, action):
        until = time.perf_counter() + self.step_us * 1e-6
        while time.perf_counter() < until:
            pass
        return np.zeros(self.observation_space.shape, np.uint8), 0.0, False, False, {}


def _async_rate(venv, seconds: float, pin: bool) -> float:
    """Env-steps/s of a 2-env vector env, stepped with random actions for ``seconds``."""
    if pin:
        pin_workers(venv)
    venv.reset(seed=0)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            venv.step(venv.action_space.sample())
        n += 40
    rate = n / (time.perf_counter() - start)
    venv.close()
    return rate


def vec_speedup(env_id: str, seconds: float, vector_kwargs: dict | None = None,
                pin: bool = False, size: int = 64) -> tuple[float, float]:
    """Steps/s of one process and of make_vec(num_envs=2, async), counting env-steps."""
    single = gym.make(env_id, width=size, height=size)
    single.reset(seed=0)
    one = steps_per_second(single, seconds)
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="async", vector_kwargs=vector_kwargs or {},
                        width=size, height=size)
    return one, _async_rate(venv, seconds, pin)


def busy_speedup(step_us: float, seconds: float, vector_kwargs: dict | None = None,
                 pin: bool = False, size: int = 64) -> float:
    """Async x2 / one process for a :class:`BusyEnv` of ``step_us``: the machine's ceiling for a scene
    of that step time (IPC wake-ups and two busy cores, none of the scene's own payload)."""
    env = BusyEnv(step_us, size)
    env.reset(seed=0)
    one = steps_per_second(env, seconds)
    venv = gym.vector.AsyncVectorEnv([lambda: BusyEnv(step_us, size)] * 2, **(vector_kwargs or {}))
    return _async_rate(venv, seconds, pin) / one


def scene_ids(spec: str) -> list[str]:
    """Registered ids for comma-separated scene names ('BouncingBalls' or the full id); '' = all.

    An unknown name is a ``ValueError`` that lists the valid ones."""
    names = {i.split("/")[1].rsplit("-", 1)[0]: i for i in envs.SCENE_IDS}
    ids = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        env_id = names.get(part) or (part if part in envs.SCENE_IDS else None)
        if env_id is None:
            raise ValueError(f"unknown scene {part!r}; valid: {', '.join(names)} (or their full ids)")
        if env_id not in ids:
            ids.append(env_id)
    return ids or list(envs.SCENE_IDS)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64,
                    help="frame width and height, also for --returns (default 64)")
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds per round (default 1)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; median reported")
    ap.add_argument("--scenes", action="append", default=None,
                    help="comma-separated scene names, e.g. BouncingBalls,TopDown, or repeated --scenes "
                         "(default: all)")
    ap.add_argument("--cpu", type=int, default=0,
                    help="pin to this core (one this process may run on); -1 = no pinning")
    ap.add_argument("--returns", action="store_true", help="also heuristic vs random returns")
    ap.add_argument("--episodes", type=int, default=20, help="episodes per policy for --returns")
    ap.add_argument("--vec", action="store_true", help="make_vec async x2 vs one process instead")
    ap.add_argument("--vec-kwargs", default=None, help="with --vec: JSON vector_kwargs for make_vec")
    ap.add_argument("--pin", action="store_true", help="with --vec: pin each worker to its own core")
    ap.add_argument("--ceiling", action="store_true",
                    help="with --vec: also a busy-wait env of each scene's step time (what any env gets)")
    ap.add_argument("--json", help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    vec_only = [flag for flag, given in (("--vec-kwargs", args.vec_kwargs is not None), ("--pin", args.pin),
                                         ("--ceiling", args.ceiling)) if given]
    if vec_only and not args.vec:
        ap.error(f"{' and '.join(vec_only)} only appl{'ies' if len(vec_only) == 1 else 'y'} with --vec")
    try:
        ids = scene_ids(",".join(args.scenes or []))
    except ValueError as e:
        ap.error(f"--scenes: {e}")
    try:
        vector_kwargs = json.loads(args.vec_kwargs or "{}")
    except ValueError as e:
        ap.error(f"--vec-kwargs is not JSON: {e}")
    if not isinstance(vector_kwargs, dict):
        ap.error(f"--vec-kwargs must be a JSON object, got {args.vec_kwargs!r}")
    if not MIN_SIZE <= args.size <= MAX_SIZE:
        ap.error(f"--size must be in [{MIN_SIZE}, {MAX_SIZE}], got {args.size}")
    if args.rounds < 1 or args.episodes < 1 or not args.seconds > 0:
        ap.error("--rounds and --episodes must be at least 1 and --seconds positive")
    if args.cpu < -1:
        ap.error(f"--cpu must be a core number or -1 (no pinning), got {args.cpu}")
    if args.cpu >= 0 and not args.vec and hasattr(os, "sched_getaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        if args.cpu not in allowed:
            ap.error(f"--cpu {args.cpu} is not a core this process may run on; choose from {allowed} or -1")
    result: dict = {"size": args.size}
    if args.vec:
        seconds = args.seconds * args.rounds
        for env_id in ids:
            one, two = vec_speedup(env_id, seconds, vector_kwargs, args.pin, args.size)
            result[env_id] = {"one_process": one, "async_x2": two, "speedup": two / one}
            line = f"{env_id:36s} one {one:8,.0f}  async x2 {two:8,.0f} steps/s  speed-up {two / one:.2f}x"
            if args.ceiling:
                ceiling = busy_speedup(1e6 / one, seconds, vector_kwargs, args.pin, args.size)
                result[env_id]["busy_env_speedup"] = ceiling
                line += f"  (busy-wait env of {1e6 / one:.0f} us/step: {ceiling:.2f}x)"
            print(line, flush=True)
        if args.ceiling:
            for us in (1000, 3000):
                result[f"busy_{us}us"] = r = busy_speedup(us, seconds, vector_kwargs, args.pin, args.size)
                print(f"busy-wait env of {us} us/step: async x2 speed-up {r:.2f}x", flush=True)
    else:
        if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {args.cpu})
        made = {}
        for env_id in ids:
            env = gym.make(env_id, width=args.size, height=args.size)
            env.action_space.seed(0)
            env.reset(seed=0)
            steps_per_second(env, 0.2)  # warm-up
            made[env_id] = env
        samples = {i: [] for i in ids}
        for _ in range(args.rounds):
            for env_id, env in made.items():
                samples[env_id].append(steps_per_second(env, args.seconds))
        print(f"{'scene':36s} {'steps/s':>10s} {'reset ms':>9s}   ({args.size}x{args.size}, random actions)")
        for env_id, env in made.items():
            sps, ms = statistics.median(samples[env_id]), reset_ms(env)
            result[env_id] = {"steps_per_s": sps, "reset_ms": ms}
            print(f"{env_id:36s} {sps:10,.0f} {ms:9.2f}")
        rates = [result[i]["steps_per_s"] for i in ids]
        print(f"median {statistics.median(rates):,.0f} steps/s, slowest {min(rates):,.0f} steps/s")
    if args.returns:
        seeds = range(args.episodes)
        print(f"\n{'scene':36s} {'heuristic':>10s} {'random':>10s}   "
              f"(mean return, seeds 0-{args.episodes - 1}, "
              f"{args.size}x{args.size})")
        for env_id in ids:
            h = mean_return(env_id, "heuristic", seeds, 1000, args.size)
            r = mean_return(env_id, "random", seeds, 1000, args.size)
            result.setdefault(env_id, {}).update(heuristic_return=h, random_return=r)
            print(f"{env_id:36s} {h:10.2f} {r:10.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
