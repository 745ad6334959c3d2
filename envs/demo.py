"""Every registered scene played by its heuristic, headless: a labelled grid video and steps/s.

    python -m envs.demo --steps 300 --out out/scenes.mp4
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym  # noqa: E402

import envs  # noqa: E402
from envs.base import MAX_SIZE, MIN_SIZE  # noqa: E402
from envs.video import grid, upscale, write_mp4  # noqa: E402


def play_scene(env_id: str, steps: int, size: int, seed: int):
    """Runs the heuristic for ``steps`` steps (resetting as episodes end); returns frames and steps/s."""
    env = gym.make(env_id, width=size, height=size)
    obs, _ = env.reset(seed=seed)
    frames = [obs]
    start = time.perf_counter()
    for _ in range(steps):
        obs, _, term, trunc, _ = env.step(env.unwrapped.heuristic())
        frames.append(obs)
        if term or trunc:
            obs, _ = env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return frames, rate


def parse_args(argv=None) -> argparse.Namespace:
    """The flags, checked: a bad one is a usage error (exit 2) before any scene runs."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="steps per scene, at least 1 (default 300)")
    ap.add_argument("--size", type=int, default=64,
                    help=f"frame size in pixels, {MIN_SIZE} to {MAX_SIZE} (default 64)")
    ap.add_argument("--scale", type=int, default=2, help="upscaling of each tile in the video (default 2)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of each scene's first episode; later ones follow from it (default 0)")
    ap.add_argument("--out", default="out/scenes.mp4", help="MP4 video path (default out/scenes.mp4)")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error(f"--steps must be at least 1, got {args.steps}")
    if not MIN_SIZE <= args.size <= MAX_SIZE:
        ap.error(f"--size must be in [{MIN_SIZE}, {MAX_SIZE}], got {args.size}")
    if args.scale < 1:
        ap.error(f"--scale must be at least 1, got {args.scale}")
    if not args.out.lower().endswith(".mp4"):
        ap.error(f"--out must end in .mp4 (an H.264 MP4 is written), got {args.out!r}")
    if os.path.isdir(args.out):
        ap.error(f"--out {args.out} is a directory; name the .mp4 file")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)

    names = [i.split("/")[1].rsplit("-", 1)[0] for i in envs.SCENE_IDS]
    runs = {}
    for env_id, name in zip(envs.SCENE_IDS, names):
        frames, rate = play_scene(env_id, args.steps, args.size, args.seed)
        runs[name] = frames
        print(f"{env_id:36s} {rate:8,.0f} steps/s (heuristic policy, {args.size}x{args.size}, with frames)")
    video = [grid([upscale(runs[n][t], args.scale) for n in names], names, cols=4)
             for t in range(args.steps + 1)]
    path = write_mp4(video, args.out, fps=gym.spec(envs.SCENE_IDS[0]).make().metadata["render_fps"])
    print(f"wrote {path} ({len(video)} frames, {len(names)} scenes)")


if __name__ == "__main__":
    main()
