"""Regenerates the README's scene thumbnails: ``python -m envs.thumbnails`` → envs/thumbnails/*.png.

Each is the frame after 40 heuristic steps from seed 0, rendered natively at 128×128.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402

OUT = Path(__file__).with_name("thumbnails")


def save_png(frame: np.ndarray, path: Path) -> None:
    import pygame

    pygame.image.save(pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2))),
                      str(path))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for env_id in envs.SCENE_IDS:
        env = gym.make(env_id, width=128, height=128)
        obs, _ = env.reset(seed=0)
        for _ in range(40):
            obs, _, term, trunc, _ = env.step(env.unwrapped.heuristic())
            if term or trunc:
                break
        name = env_id.split("/")[1].rsplit("-", 1)[0]
        save_png(obs, OUT / f"{name}.png")
        print(OUT / f"{name}.png")


if __name__ == "__main__":
    main()
