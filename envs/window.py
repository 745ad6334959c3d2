"""The on-screen window for ``render_mode="human"`` and ``python -m envs.play``.

Only ``pygame.display.init()`` is called, never ``pygame.init()`` (the mixer breaks headless CI);
under ``SDL_VIDEODRIVER=dummy`` everything works without a screen.
"""
from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402


class HumanWindow:
    """Shows frames scaled up by an integer factor, paced to ``fps``."""

    def __init__(self, width: int, height: int, scale: int | None = None, caption: str = "WorldGym"):
        pygame.display.init()
        self.scale = max(1, scale if scale else 512 // max(width, height))
        self.size = (width * self.scale, height * self.scale)
        self.screen = pygame.display.set_mode(self.size)
        pygame.display.set_caption(caption)
        self.clock = pygame.time.Clock()

    def show(self, frame: np.ndarray, fps: float = 0) -> None:
        surf = pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
        self.screen.blit(pygame.transform.scale(surf, self.size), (0, 0))
        pygame.event.pump()
        pygame.display.flip()
        if fps:
            self.clock.tick(fps)

    def close(self) -> None:
        pygame.display.quit()
