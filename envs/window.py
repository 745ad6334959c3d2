"""The on-screen window for ``render_mode="human"`` and ``python -m envs.play``.

Only ``pygame.display.init()`` is called, never ``pygame.init()`` (the mixer breaks headless CI);
under ``SDL_VIDEODRIVER=dummy`` everything works without a screen.

pygame has one display per process, so several human-mode envs share one window: each ``show``
puts the window at its own size and caption, and the display is shut only when the last
``HumanWindow`` closes (closing one env must not break the others).
"""
from __future__ import annotations

import os
from typing import ClassVar

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402


class HumanWindow:
    """Shows frames scaled up by an integer factor, paced to ``fps``."""

    #: HumanWindows open in this process; the display quits when the count drops to 0.
    open_count: ClassVar[int] = 0

    def __init__(self, width: int, height: int, scale: int | None = None, caption: str = "WorldGym"):
        pygame.display.init()
        HumanWindow.open_count += 1
        self.closed = False
        self.scale = max(1, scale if scale else 512 // max(width, height))
        self.size = (width * self.scale, height * self.scale)
        self.caption = caption
        self._screen()
        self.clock = pygame.time.Clock()

    @property
    def screen(self) -> pygame.Surface | None:
        """The display surface, shared by every open window."""
        return pygame.display.get_surface()

    def _screen(self) -> pygame.Surface:
        """The display surface at this window's size (another window may have resized it)."""
        screen = pygame.display.get_surface()
        if screen is None or screen.get_size() != self.size:
            screen = pygame.display.set_mode(self.size)
        if pygame.display.get_caption()[:1] != (self.caption,):
            pygame.display.set_caption(self.caption)
        return screen

    def show(self, frame: np.ndarray, fps: float = 0) -> None:
        if self.closed:
            raise RuntimeError("HumanWindow.show() after close()")
        surf = pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
        self._screen().blit(pygame.transform.scale(surf, self.size), (0, 0))
        pygame.event.pump()
        pygame.display.flip()
        if fps:
            self.clock.tick(fps)

    def close(self) -> None:
        """Idempotent; the display itself quits with the last open window."""
        if self.closed:
            return
        self.closed = True
        HumanWindow.open_count -= 1
        if HumanWindow.open_count == 0:
            pygame.display.quit()
