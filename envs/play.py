"""Play a scene with the keyboard in a window; optionally record the play-through.

    python -m envs.play WorldGym/Platformer-v0 --seed 3 --scale 8 --record out/play.mp4

Keys are the scene's own (``env.unwrapped.get_keys_to_action()``, listed at start); with no key
held the action is 0 (do nothing). R resets, Esc or closing the window quits.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym  # noqa: E402

import envs  # noqa: E402
from envs.window import HumanWindow  # noqa: E402


def action_from_keys(pressed, keys_to_action: dict[tuple[int, ...], int]) -> int:
    """The action of the largest key combination that is fully held (0 when none is)."""
    best, best_len = 0, 0
    for combo, action in keys_to_action.items():
        if len(combo) > best_len and all(pressed[k] for k in combo):
            best, best_len = action, len(combo)
    return best


class _Pressed:
    """pygame's ScancodeWrapper indexed by key code, tolerant of codes it does not know."""

    def __init__(self, raw):
        self.raw = raw

    def __getitem__(self, code: int) -> bool:
        try:
            return bool(self.raw[code])
        except IndexError:
            return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("env_id", help=f"one of {', '.join(envs.SCENE_IDS)}")
    ap.add_argument("--seed", type=int, default=None, help="episode seed (default: random)")
    ap.add_argument("--scale", type=int, default=8, help="window pixels per frame pixel (default 8)")
    ap.add_argument("--size", type=int, default=64, help="frame size (default 64)")
    ap.add_argument("--record", help="write the play-through to this MP4 (moviepy); frames are kept "
                    "in memory until the end (about 12 kB each at 64x64)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = play on)")
    args = ap.parse_args(argv)
    if args.env_id not in envs.SCENE_IDS:
        ap.error(f"unknown scene {args.env_id!r}; registered: {', '.join(envs.SCENE_IDS)}")

    import pygame

    env = gym.make(args.env_id, render_mode="rgb_array", width=args.size, height=args.size)
    keys = env.unwrapped.get_keys_to_action()
    meanings = env.unwrapped.ACTIONS
    print("keys: " + ", ".join(
        f"{'+'.join(pygame.key.name(k) for k in combo)}={meanings[a]}" for combo, a in keys.items()))
    window = HumanWindow(args.size, args.size, args.scale, caption=args.env_id)
    fps = env.metadata["render_fps"]
    obs, _ = env.reset(seed=args.seed)
    frames = [obs] if args.record else None  # kept only to be recorded: play can go on for hours
    total, steps, running = 0.0, 0, True
    while running:
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                running = False
            elif event.type == pygame.KEYDOWN and event.key == pygame.K_r:
                obs, _ = env.reset()
                total = 0.0
        action = action_from_keys(_Pressed(pygame.key.get_pressed()), keys)
        obs, reward, term, trunc, _ = env.step(action)
        total += reward
        steps += 1
        if frames is not None:
            frames.append(obs)
        window.show(obs, fps)
        if term or trunc:
            print(f"episode return {total:.2f}")
            obs, _ = env.reset()
            total = 0.0
        if args.max_steps and steps >= args.max_steps:
            running = False
    window.close()
    env.close()
    if args.record:
        from envs.video import write_mp4

        print(f"wrote {write_mp4(frames, args.record, fps)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
