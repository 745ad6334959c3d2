"""``python -m collect.video DIR --episodes 0,1,2 --out eps.mp4``: episodes side by side, for a look.

Frames are scaled up with nearest-neighbour (no blur on 64×64 pixel art) and tiled in a grid with
the episode index in each tile's corner; an episode that ends early holds its last frame, dimmed.
Videos are previews only: H.264 is lossy, datasets are not.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from collect.cli import summary
from collect.dataset import DatasetError, open_dataset

PROG = "python -m collect.video"
VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")
GUTTER = 2


def parse_indices(text: str) -> list[int]:
    """``"0,1,5-7"`` → ``[0, 1, 5, 6, 7]``; ``ValueError`` naming the part that is not an index or
    a range ``A-B`` with A <= B."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = (int(x) for x in part.split("-", 1))
                if a > b:
                    raise ValueError(f"--episodes: the range {part!r} is reversed; write {b}-{a}")
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError as e:
            if str(e).startswith("--episodes"):
                raise
            raise ValueError(f"--episodes: {part!r} is not an episode index or a range like 0-3") from None
    return out


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.fromarray(tile)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 7 * len(text) + 4, 13), fill=(0, 0, 0))
    draw.text((2, 1), text, fill=(255, 255, 255))
    return np.asarray(img)


class Grid:
    """Composes grid frame ``t`` from episodes' observations on demand (no whole video in memory)."""

    def __init__(self, episodes: list[tuple[int, np.ndarray]], scale: int, cols: int | None = None):
        self.episodes, self.scale = episodes, scale
        n = len(episodes)
        self.cols = cols or math.ceil(math.sqrt(n))
        self.rows = math.ceil(n / self.cols)
        h, w = episodes[0][1].shape[1:3]
        self.th, self.tw = h * scale, w * scale
        H = self.rows * self.th + (self.rows + 1) * GUTTER
        W = self.cols * self.tw + (self.cols + 1) * GUTTER
        self.shape = (H + H % 2, W + W % 2, 3)  # H.264 wants even sizes
        self.length = max(len(obs) for _, obs in episodes)

    def frame(self, t: int) -> np.ndarray:
        out = np.full(self.shape, 24, np.uint8)
        for k, (index, obs) in enumerate(self.episodes):
            f = obs[min(t, len(obs) - 1)]
            tile = f.repeat(self.scale, 0).repeat(self.scale, 1)  # (h*s, w*s, 3)
            if t >= len(obs):
                tile = tile // 2
            tile = _label(tile, f"ep {index}") if self.th >= 48 else tile
            r, c = divmod(k, self.cols)
            y, x = GUTTER + r * (self.th + GUTTER), GUTTER + c * (self.tw + GUTTER)
            out[y:y + self.th, x:x + self.tw] = tile
        return out


def write_video(path: str, grid: Grid, fps: float) -> None:
    """Encodes to a hidden temp file beside ``path`` and renames it: the video appears only complete."""
    from moviepy import VideoClip

    clip = VideoClip(lambda t: grid.frame(min(int(round(t * fps)), grid.length - 1)),
                     duration=grid.length / fps)
    final = Path(path)
    tmp = final.with_name(f".{final.stem}.partial{final.suffix}")
    try:
        if final.suffix.lower() == ".gif":
            clip.write_gif(str(tmp), fps=fps, logger=None)
        else:
            clip.write_videofile(str(tmp), fps=fps, logger=None, audio=False)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=summary(__doc__))
    p.add_argument("dir", help="dataset directory")
    p.add_argument("--episodes", default=None,
                   help="collection indices, e.g. 0,1,2 or 0-3 (default: the first four)")
    p.add_argument("--out", required=True, help="output video (.mp4, .webm, .gif)")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default: the scene's)")
    p.add_argument("--scale", type=int, default=None, help="pixel scale per frame (default: ~256 px tiles)")
    p.add_argument("--cols", type=int, default=None, help="grid columns (default: about square)")
    p.add_argument("--max-frames", type=int, default=None, help="cut the video after this many frames")
    args = p.parse_args(argv)
    for name in ("fps", "scale", "cols", "max_frames"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    if not args.out.lower().endswith(VIDEO_SUFFIXES):
        p.error(f"--out must end in {', '.join(VIDEO_SUFFIXES)}, got {args.out!r}")
    if not Path(args.out).resolve().parent.is_dir():
        p.error(f"--out: no such directory: {Path(args.out).parent}")
    try:
        ds = open_dataset(args.dir)
        indices = parse_indices(args.episodes) if args.episodes else [int(i) for i in ds.indices[:4]]
        if not indices:
            p.error("--episodes is empty")
        held = {int(i) for i in ds.indices}
        missing = [i for i in indices if i not in held]
        if missing:
            p.error(f"{_plural(missing, 'episode')} {_list(missing)} {'is' if len(missing) == 1 else 'are'} "
                    f"not in {args.dir}, which holds {_holding(ds.indices)}")
        episodes = []
        for idx in indices:
            obs = ds.episode(ds.position(idx)).observations
            episodes.append((idx, obs[: args.max_frames] if args.max_frames else obs))
    except (DatasetError, ValueError) as e:
        p.error(str(e))
    scale = args.scale or max(1, 256 // max(ds.frame_shape[:2]))
    fps = args.fps or float(ds.metadata["env"].get("render_fps") or 30)
    grid = Grid(episodes, scale, args.cols)
    write_video(args.out, grid, fps)
    print(f"wrote {args.out}: {len(episodes)} episodes, {grid.length} frames at {fps:g} fps, "
          f"{grid.shape[1]}x{grid.shape[0]}")
    return 0


def _plural(items, word: str) -> str:
    return word if len(items) == 1 else word + "s"


def _list(items, most: int = 12) -> str:
    """``0, 1, 4`` — or the first ``most`` and ``…`` for a long list."""
    items = [int(i) for i in items]
    return ", ".join(map(str, items[:most])) + (", …" if len(items) > most else "")


def _holding(indices: np.ndarray) -> str:
    """What a dataset holds, in words: every index when few, else the span and the gaps in it."""
    idx = sorted(int(i) for i in indices)
    if not idx:
        return "no episodes"
    if len(idx) <= 12:
        return f"{_plural(idx, 'episode')} {_list(idx)}"
    gaps = sorted(set(range(idx[0], idx[-1] + 1)) - set(idx))
    text = f"{len(idx)} episodes, indices {idx[0]}…{idx[-1]}"
    return text + (f" except {_list(gaps)}" if gaps else "")


if __name__ == "__main__":
    sys.exit(main())
