"""Preview videos (moviepy): a labelled grid of frame sequences, written as H.264 MP4.

Video is lossy and for looking only; datasets keep lossless frames (collect/).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

LABEL_HEIGHT = 14


def upscale(frame: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor (keeps flat colours crisp)."""
    return frame if k == 1 else frame.repeat(k, axis=0).repeat(k, axis=1)


def label_strip(text: str, width: int) -> np.ndarray:
    """A (LABEL_HEIGHT, width, 3) dark strip with ``text`` in white (pygame's bundled font)."""
    import pygame

    pygame.font.init()
    font = pygame.font.Font(None, LABEL_HEIGHT + 2)
    surf = pygame.Surface((width, LABEL_HEIGHT))
    surf.fill((0, 0, 0))
    surf.blit(font.render(text, True, (235, 235, 235)), (2, 1))
    return np.ascontiguousarray(pygame.surfarray.array3d(surf).transpose(1, 0, 2))


def grid(tiles: Sequence[np.ndarray], labels: Sequence[str] | None = None, cols: int | None = None,
         pad: int = 2) -> np.ndarray:
    """Arranges equally sized (H, W, 3) frames in a grid, each under its label."""
    n = len(tiles)
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    h, w = tiles[0].shape[:2]
    lh = LABEL_HEIGHT if labels else 0
    out = np.zeros((rows * (h + lh + pad) + pad, cols * (w + pad) + pad, 3), np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + lh + pad), pad + c * (w + pad)
        if labels:
            out[y:y + lh, x:x + w] = label_strip(labels[i], w)
        out[y + lh:y + lh + h, x:x + w] = tile
    return out


def write_mp4(frames: Sequence[np.ndarray], path: str | Path, fps: float = 30) -> Path:
    """Writes frames (each (H, W, 3) uint8) to an MP4; the file appears only when complete."""
    from moviepy import ImageSequenceClip

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [_even(f) for f in frames]
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    clip = ImageSequenceClip(list(frames), fps=fps)
    try:
        clip.write_videofile(str(tmp), codec="libx264", audio=False, logger=None,
                             ffmpeg_params=["-pix_fmt", "yuv420p"])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write leaves no partial file
    return path


def _even(frame: np.ndarray) -> np.ndarray:
    """H.264 with yuv420p needs even sides: pad by one black row/column where needed."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
