"""``python -m collect.bench``: the collector's numbers against its bars.

* overhead: collecting with one worker vs. stepping the same env with the same policy and seeds and
  keeping nothing (bar ≤ 15 %, goal ≤ 10 %); wall time, and CPU time of the process (shard writer
  helper included) and of the stepping thread;
* scaling: two worker processes vs. one (bar ≥ 1.7× on two cores; includes process start-up, so
  short runs score lower: at 400 episodes ~0.03× less than at 1,000);
  with ``--deflate auto`` one worker writes its shards in a helper process when a core is spare
  and two workers on two cores write inline (``--deflate inline`` compares like with like);
* codecs: µs per frame and output size of igzip and zlib levels on one scene's 16-frame chunks
  (what ``--level`` picks, ``collect.deflate``);
* bytes on disk / raw frame bytes for every registered scene (bar ≤ 5 % on BouncingBalls 64×64,
  goal ≤ 2 %), with the frames' share;
* loader: random 16-frame windows per second from one process (bar ≥ 2,000, goal ≥ 10,000).

Times are medians over ``--repeats``. On a shared machine, rerun and compare: other processes
inflate whichever side of a comparison they overlap.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collect.config import CollectArgs, make_env
from collect.policies import make_policy
from collect.record import episode_seeds

#: The sections of the benchmark, in the order they run (``--only`` picks some).
SECTIONS = ("overhead", "scaling", "codecs", "bytes", "loader")


@dataclass
class Timing:
    wall: float  # seconds
    steps: int
    cpu: float  # CPU seconds of the stepping/collecting (all threads; worker processes included)
    main: float  # CPU seconds of the calling thread
    deflate: str = "-"  # collections: "process" (helper) or "inline"


def _clocks() -> tuple[float, float, float]:
    return time.perf_counter(), time.process_time(), time.thread_time()


def raw_stepping(env_id: str, policy: str, episodes: int, max_steps: int, size: int = 64) -> Timing:
    """The episodes the collector would run (same env construction, seeds, policy), keeping nothing."""
    w, c, m = _clocks()
    env = make_env(env_id, size, size, max_steps)
    pol = make_policy(policy, env)
    steps = 0
    for i in range(episodes):
        env_seed, policy_seed = episode_seeds(0, i)
        pol.reset(policy_seed)
        obs, _ = env.reset(seed=env_seed)
        while True:
            obs, _, term, trunc, _ = env.step(pol(obs))
            steps += 1
            if term or trunc:
                break
    env.close()
    w2, c2, m2 = _clocks()
    return Timing(w2 - w, steps, c2 - c, m2 - m)


def timed_collect(out: Path, **kw) -> Timing:
    """One collection into a fresh ``out`` (workers=1 runs in this process, so its CPU is counted)."""
    from collect.runner import collect_dataset

    shutil.rmtree(out, ignore_errors=True)
    w, c, m = _clocks()
    summary = collect_dataset(CollectArgs(out=str(out), progress=False, seed=0, **kw))
    w2, c2, m2 = _clocks()
    return Timing(w2 - w, summary.steps, c2 - c + summary.worker_cpu_seconds, m2 - m, summary.deflate)


def _median(xs: list[Timing], key: str) -> float:
    return statistics.median(getattr(x, key) for x in xs)


def bench_overhead(tmp: Path, env_id: str, policy: str, episodes: int, max_steps: int, repeats: int,
                   deflate: str = "auto") -> dict:
    raw, rec = [], []
    for _ in range(repeats):  # interleaved, so slow phases of a shared machine hit both sides
        raw.append(raw_stepping(env_id, policy, episodes, max_steps))
        rec.append(timed_collect(tmp / "overhead", env=env_id, policy=policy, episodes=episodes,
                                 max_steps=max_steps, workers=1, deflate=deflate))
    r, c, steps = _median(raw, "wall"), _median(rec, "wall"), raw[0].steps
    return {"env": env_id, "policy": policy, "episodes": episodes, "steps": steps,
            "raw_s": r, "collect_s": c, "raw_steps_per_s": steps / r, "collect_steps_per_s": steps / c,
            "overhead": c / r - 1, "pair_overheads": [b.wall / a.wall - 1 for a, b in zip(raw, rec)],
            "cpu_overhead": _median(rec, "cpu") / _median(raw, "cpu") - 1,
            "main_thread_cpu_overhead": _median(rec, "main") / _median(raw, "main") - 1,
            "deflate": [x.deflate for x in rec]}


def bench_scaling(tmp: Path, env_id: str, policy: str, episodes: int, max_steps: int, repeats: int,
                  deflate: str = "auto") -> dict:
    one, two = [], []
    kw = dict(env=env_id, policy=policy, episodes=episodes, max_steps=max_steps, deflate=deflate)
    for _ in range(repeats):
        one.append(timed_collect(tmp / "w1", workers=1, **kw))
        two.append(timed_collect(tmp / "w2", workers=2, **kw))
    a, b = _median(one, "wall"), _median(two, "wall")
    cpu_ratio = _median(two, "cpu") / _median(one, "cpu")
    return {"steps": one[0].steps, "one_worker_s": a, "two_workers_s": b, "speedup": a / b,
            "cpu_ratio": cpu_ratio, "idle_speedup_estimate": 2 / cpu_ratio,
            "one_all": [x.wall for x in one], "two_all": [x.wall for x in two],
            "one_deflate": [x.deflate for x in one], "two_deflate": [x.deflate for x in two]}


def bench_codecs(env_id: str, episodes: int, max_steps: int, repeats: int,
                 levels: tuple[int, ...] = (1, 2, 3, 4, 6)) -> list[dict]:
    """Each level of ``collect.deflate`` on the frame chunks of ``episodes`` random-policy episodes."""
    from collect.deflate import COMPRESSOBJ, codec, deflate_part
    from collect.record import run_episode
    from collect.writer import FRAME_MEM_LEVEL

    env = make_env(env_id, 64, 64, max_steps)
    pol = make_policy("random", env)
    chunks, cf = [], 16  # frames per chunk: collect's default
    for i in range(episodes):
        obs = run_episode(env, pol, i, 0, max_steps=max_steps).observations
        padded = np.zeros((-(-len(obs) // cf) * cf, *obs.shape[1:]), np.uint8)  # edge chunks are
        padded[:len(obs)] = obs  # zero-padded, as stored
        chunks += [padded[k:k + cf].tobytes() for k in range(0, len(padded), cf)]
    env.close()
    raw, frames = sum(map(len, chunks)), cf * len(chunks)
    rows = []
    for level in levels:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = [deflate_part(COMPRESSOBJ, level, FRAME_MEM_LEVEL, 15, c) for c in chunks]
            times.append(time.perf_counter() - start)
        us = statistics.median(times) / frames * 1e6
        rows.append({"level": level, "codec": codec(level), "frames": frames, "us_per_frame": us,
                     "ratio": sum(map(len, out)) / raw})
    return rows


def bench_bytes(tmp: Path, env_ids: list[str], episodes: int, max_steps: int, level: int = 1) -> list[dict]:
    import h5py

    from collect.dataset import open_dataset

    rows = []
    for env_id in env_ids:
        out = tmp / ("bytes-" + env_id.replace("/", "_"))
        try:
            timed_collect(out, env=env_id, policy="random", episodes=episodes, max_steps=max_steps,
                          workers=1, level=level)
        except Exception as e:  # a scene still being written: report it, measure the rest
            rows.append({"env": env_id, "error": f"{type(e).__name__}: {e}".splitlines()[0][:160]})
            continue
        ds = open_dataset(out)
        c = ds.metadata["counts"]
        obs = 0
        for s in ds.metadata["shards"]:
            with h5py.File(out / s["file"], "r") as f:
                obs += sum(f[f"episode_{i}/observations"].id.get_storage_size() for i in s["episodes"])
        rows.append({"env": env_id, "episodes": len(ds), "frames": c["frames"], "bytes": c["bytes"],
                     "ratio": c["bytes"] / c["raw_frame_bytes"], "frames_ratio": obs / c["raw_frame_bytes"],
                     "max_objects": ds.max_objects})
        shutil.rmtree(out, ignore_errors=True)
    return rows


def _window_rate(w, n: int, seed: int) -> float:
    idx = np.random.default_rng(seed).integers(len(w), size=n)
    start = time.perf_counter()
    for j in idx:
        w[int(j)]
    return n / (time.perf_counter() - start)


def bench_loader(tmp: Path, env_id: str, episodes: int, max_steps: int, n: int, repeats: int) -> dict:
    """Random 16-frame windows per second from one process: "warm" once each episode is in the LRU
    (a dataset that fits ``cache_mb``), "cold" with no frame cache (every window decompresses the two
    or three chunks it overlaps: a dataset much larger than memory); and a DataLoader's rate."""
    import torch

    from collect.dataset import open_dataset

    out = tmp / "loader"
    timed_collect(out, env=env_id, policy="heuristic", episodes=episodes, max_steps=max_steps, workers=1)
    # cold first: HDF5 shares one chunk cache among all handles of a dataset, so a warm window
    # dataset still holding an episode would make the cold one warm too
    ds = open_dataset(out)
    res = {"episodes": len(ds), "frames": int(ds.steps.sum() + len(ds))}
    cold = ds.windows(16, 1, frame_cache=False)
    for j in range(0, len(cold), 8):  # per-step arrays of every episode in the LRU; frames never
        cold[j]
    res["cold_windows_per_s"] = statistics.median(_window_rate(cold, n, r) for r in range(repeats))
    del cold
    ds.files.close()
    gc.collect()
    warm = ds.windows(16, 1)
    for j in range(0, len(warm), 8):  # load every episode once
        warm[j]
    res["warm_windows_per_s"] = statistics.median(_window_rate(warm, n, r) for r in range(repeats))
    res["windows"] = len(warm)
    loader = torch.utils.data.DataLoader(ds.windows(16, 1), batch_size=64, shuffle=True, num_workers=2,
                                         generator=torch.Generator().manual_seed(0), persistent_workers=True)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    start, count = time.perf_counter(), 0
    for batch in it:
        count += len(batch["frames"])
        if count >= n:
            break
    res["dataloader_2_workers_windows_per_s"] = count / (time.perf_counter() - start)
    return res


def scene_list(specs: list[str], registered) -> list[str]:
    """``--scenes`` values (each 'all', 'none' or comma-separated ids) → ids, in order, each once."""
    out: list[str] = []
    for spec in specs:
        for name in filter(None, (s.strip() for s in spec.split(","))):
            for env_id in registered if name == "all" else [] if name == "none" else [name]:
                if env_id not in out:
                    out.append(env_id)
    return out


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import envs

    p = argparse.ArgumentParser(prog="python -m collect.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="WorldGym/BouncingBalls-v0", help="scene for overhead, scaling, loader")
    p.add_argument("--policy", default="random", help="policy for overhead and scaling")
    p.add_argument("--episodes", type=int, default=500,
                   help="episodes per overhead run (scaling runs twice as many: the 1,000 of a typical "
                        "collection, where start-up and the last shard group weigh little)")
    p.add_argument("--max-steps", type=int, default=500, help="max steps per episode")
    p.add_argument("--repeats", type=int, default=3, help="repeats (medians are reported)")
    p.add_argument("--scenes", action="append", default=None,
                   help="scenes for the bytes section: 'all' registered scenes (default), 'none', or ids, "
                        "comma-separated or repeated")
    p.add_argument("--windows", type=int, default=5000, help="random windows read per loader repeat")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"sections to run, comma-separated: {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--level", type=int, default=1, help="gzip level for the bytes section")
    p.add_argument("--deflate", default="auto", choices=("auto", "process", "inline"),
                   help="where shards are written for overhead and scaling (collect's --deflate)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = sorted(only - set(SECTIONS))
    if unknown:
        p.error(f"--only: unknown section(s) {', '.join(map(repr, unknown))}; "
                f"choose from {', '.join(SECTIONS)}")
    if not only:
        p.error(f"--only names no section; choose from {', '.join(SECTIONS)}")
    scenes = scene_list(args.scenes or ["all"], envs.SCENE_IDS)
    results: dict = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="collect-bench-") as d:
        tmp = Path(d)
        if "overhead" in only:
            o = bench_overhead(tmp, args.env, args.policy, args.episodes, args.max_steps, args.repeats,
                               args.deflate)
            results["overhead"] = o
            print(f"overhead  {o['env']} {o['policy']}: raw {o['raw_steps_per_s']:,.0f} steps/s, "
                  f"collect (1 worker) "
                  f"{o['collect_steps_per_s']:,.0f} steps/s -> overhead {o['overhead']:+.1%} "
                  f"(bar <= 15%, goal <= 10%; per pair "
                  f"{', '.join(f'{x:+.0%}' for x in o['pair_overheads'])}; "
                  f"CPU time: process {o['cpu_overhead']:+.1%}, main thread "
                  f"{o['main_thread_cpu_overhead']:+.1%}; deflate {'/'.join(o['deflate'])})", flush=True)
        if "scaling" in only:
            s = bench_scaling(tmp, args.env, args.policy, args.episodes * 2, args.max_steps, args.repeats,
                              args.deflate)
            results["scaling"] = s
            print(f"scaling   1 worker {s['one_worker_s']:.2f} s, 2 workers {s['two_workers_s']:.2f} s -> "
                  f"{s['speedup']:.2f}x (bar >= 1.7x; {s['steps']:,} steps, incl. process start-up); "
                  f"CPU seconds 2 workers / 1 worker {s['cpu_ratio']:.2f} -> "
                  f"{s['idle_speedup_estimate']:.2f}x on two idle cores; deflate 1 worker "
                  f"{'/'.join(s['one_deflate'])}, 2 workers {'/'.join(s['two_deflate'])}", flush=True)
        if "codecs" in only:
            rows = bench_codecs(args.env, 40, args.max_steps, args.repeats)
            results["codecs"] = rows
            for r in rows:
                print(f"codec     --level {r['level']} ({r['codec']:10s}) {r['us_per_frame']:6.2f} µs per "
                      f"64x64 frame, {r['ratio']:.2%} of raw ({r['frames']:,} frames of {args.env})",
                      flush=True)
        if "bytes" in only and scenes:
            rows = bench_bytes(tmp, scenes, 8, args.max_steps, args.level)
            results["bytes"] = rows
            for r in rows:
                if "error" in r:
                    print(f"bytes     {r['env']:34s} unavailable: {r['error']}")
                else:
                    print(f"bytes     {r['env']:34s} {r['ratio']:6.2%} of raw frames (frames alone "
                          f"{r['frames_ratio']:.2%}; {r['frames']:,} frames, "
                          f"up to {r['max_objects']} objects)",
                          flush=True)
        if "loader" in only:
            ld = bench_loader(tmp, args.env, 16, 1000, args.windows, args.repeats)
            results["loader"] = ld
            print(f"loader    {ld['warm_windows_per_s']:,.0f} random 16-frame windows/s warm, "
                  f"{ld['cold_windows_per_s']:,.0f}/s cold (bar >= 2,000, goal >= 10,000); "
                  f"DataLoader(batch 64, 2 workers) {ld['dataloader_2_workers_windows_per_s']:,.0f}/s; "
                  f"{ld['windows']:,} windows in {ld['episodes']} episodes", flush=True)
    results["load_after"] = os.getloadavg()
    print(f"load average before {results['load_before'][0]:.1f}, after {results['load_after'][0]:.1f} "
          f"on {results['cpus']} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
