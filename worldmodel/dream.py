"""Play inside a world model's dream with the keyboard, in real time.

    python -m worldmodel.dream --checkpoint runs/bb --side-by-side --scale 6
    python -m worldmodel.dream --checkpoint runs/bb --record dream.mp4 --steps 300     # headless too
    SDL_VIDEODRIVER=dummy python -m worldmodel.dream --checkpoint runs/bb --steps 20 --fps 0

The scene's own keys drive the dream (as ``python -m envs.play``; listed at start; no key held =
action 0). ``--side-by-side`` steps the real scene with the same actions on the left. Both start from
the same real context (``--seed``), and both restart when either episode ends. R restarts, Esc or
closing the window quits. ``--policy random`` replaces the keys with random actions (demos and
benchmarks without a keyboard). At exit the measured frames/s are printed: the whole loop, and the
dream step alone. ``--fps 0`` runs unpaced.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from worldmodel.config import SCHEDULES

WARMUP = 10  # first steps build caches and allocate: not timed when enough steps follow


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m worldmodel.dream", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="run directory (RUN with config.json)")
    p.add_argument("--side-by-side", action="store_true", help="show the real scene next to the dream")
    p.add_argument("--record", help="write what was shown to this MP4")
    p.add_argument("--scale", type=int, default=8, help="window pixels per frame pixel")
    p.add_argument("--record-scale", type=int, default=4, help="pixel upscaling in the recorded video")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = argmax)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest codes")
    p.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="MaskGIT commit schedule; None: the checkpoint's; adaptive: every sure code at once, "
                        "the unsure ones spread over the passes (better sampled rollouts, README)")
    p.add_argument("--passes", type=int, default=None,
                   help="MaskGIT passes per frame; None: the checkpoint's (more: slower, sharper at T > 0)")
    p.add_argument("--context", type=int, default=4, help="real frames the dream starts from")
    p.add_argument("--seed", type=int, default=0, help="first episode's seed (later ones follow from it)")
    p.add_argument("--fps", type=float, default=None,
                   help="frames per second to pace the loop to; None: the scene's; 0: unpaced")
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps (0 = play on)")
    p.add_argument("--policy", choices=["keys", "random"], default="keys", help="where actions come from")
    p.add_argument("--termination", choices=["sample", "threshold", "off"], default="sample",
                   help="how the dream's predicted termination probability ends an episode")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's choice)")
    return p


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One argparse error for a bad number (the sampling settings are checked by the dream env)."""
    for name in ("scale", "record_scale"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps >= 0):
        p.error(f"--fps must be a number >= 0 (0: unpaced), got {args.fps}")
    if args.steps < 0:
        p.error(f"--steps must be >= 0 (0: play on), got {args.steps}")
    if args.threads < 0:
        p.error(f"--threads must be >= 0 (0: torch's choice), got {args.threads}")
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    if args.record and Path(args.record).suffix.lower() != ".mp4":  # known before playing, not after
        p.error(f"--record must end in .mp4, got {args.record!r}")


def parse_args(argv=None, p: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parsed and checked arguments; ``p``: the parser, when the caller reports later errors with it."""
    p = p or build_parser()
    args = p.parse_args(argv)
    check_args(p, args)
    return args


def main(argv=None) -> dict:
    p = build_parser()
    args = parse_args(argv, p)
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame
    import torch

    from envs.play import _Pressed, action_from_keys
    from envs.window import HumanWindow
    from worldmodel.dream_env import DreamEnv

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        env = DreamEnv(args.checkpoint, temperature=args.temperature, context=args.context, horizon=10**9,
                       device=args.device, top_k=args.top_k, termination=args.termination,
                       schedule=args.schedule, passes=args.passes)
    except (ValueError, OSError) as e:  # a bad setting, or a missing or damaged checkpoint
        p.error(str(e).replace("passes must", "--passes must"))
    real = env.core.real if args.side_by_side else None  # the scene the dream's contexts come from
    keys = env.core.real.unwrapped.get_keys_to_action()
    if args.policy == "keys":
        if not keys or not hasattr(env.action_space, "n"):
            env.close()
            p.error("keyboard play needs a Discrete scene with a key map; use --policy random")
        meanings = env.core.real.unwrapped.ACTIONS
        print("keys: " + ", ".join(f"{'+'.join(pygame.key.name(k) for k in combo)}={meanings[a]}"
                                   for combo, a in keys.items()))
    H, W = env.observation_space.shape[:2]
    gap = 2

    def compose(dream: np.ndarray, real_frame: np.ndarray | None) -> np.ndarray:
        if real_frame is None:
            return dream
        out = np.zeros((H, 2 * W + gap, 3), np.uint8)
        out[:, :W], out[:, W + gap:] = real_frame, dream
        return out

    def start(seed=None):
        obs, _ = env.reset(seed=seed)
        # the real scene is where the dream's context rollout left it: its last frame is the dream's first
        return obs, (obs.copy() if real is not None else None)

    fps = env.metadata["render_fps"] if args.fps is None else args.fps
    obs, real_obs = start(args.seed)
    shown = compose(obs, real_obs)
    window = HumanWindow(shown.shape[1], shown.shape[0], args.scale, caption="WorldGym dream")
    env.action_space.seed(args.seed)
    recorded = [shown] if args.record else None
    steps, dream_s, total, running = 0, 0.0, 0.0, True
    warm = WARMUP if args.steps == 0 or args.steps >= 2 * WARMUP else 0  # steps left out of the timing
    t0 = time.perf_counter()
    while running:
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                running = False
            elif event.type == pygame.KEYDOWN and event.key == pygame.K_r:
                obs, real_obs = start()
        if args.policy == "keys":
            action = action_from_keys(_Pressed(pygame.key.get_pressed()), keys)
        else:
            action = env.action_space.sample()
        t = time.perf_counter()
        obs, reward, term, trunc, _ = env.step(action)
        if steps >= warm:
            dream_s += time.perf_counter() - t
        total += reward
        real_done = False
        if real is not None:
            real_obs, _, real_term, real_trunc, _ = real.step(action)
            real_done = real_term or real_trunc
        steps += 1
        if steps == warm:
            t0 = time.perf_counter()
        shown = compose(obs, real_obs)
        window.show(shown, fps)
        if recorded is not None:
            recorded.append(shown)
        if term or trunc or real_done:
            print(f"episode ended ({'dream' if term or trunc else 'real scene'}); dream return {total:.2f}")
            obs, real_obs = start()
            total = 0.0
        if args.steps and steps >= args.steps:
            running = False
    wall, timed = time.perf_counter() - t0, max(steps - warm, 0)
    window.close()
    env.close()
    stats = {"steps": steps, "timed_steps": timed, "loop_fps": timed / max(wall, 1e-9),
             "dream_step_fps": timed / max(dream_s, 1e-9)}
    pace = f"paced to {fps:g}" if fps else "unpaced"
    print(f"{steps} steps: {stats['loop_fps']:.1f} frames/s (whole loop incl. restarts, {pace}), "
          f"dream step alone {stats['dream_step_fps']:.1f} frames/s; first {warm} steps (warm-up) not timed")
    if args.record:
        from envs.video import upscale, write_mp4

        k = max(1, args.record_scale)
        path = write_mp4([upscale(f, k) for f in recorded], args.record, fps or 30)
        print(f"wrote {path}")
        stats["record"] = str(path)
    return stats


if __name__ == "__main__":
    main()
    sys.exit(0)
