"""Dream a sequence from a checkpoint and write it as a video grid.

    python -m worldmodel.generate --checkpoint runs/bb --env WorldGym/BouncingBalls-v0 --seed 3 \\
        --horizon 30 --samples 4 --temperature 1.0 --out seq.mp4
    python -m worldmodel.generate --checkpoint runs/bb --image start.png --horizon 30 --out seq.mp4

With ``--env`` the scene is reset with ``--seed``, stepped ``--context - 1`` times with the action
policy, and then the dream and the real scene run side by side with the same actions (first tile:
real). With ``--image`` the picture (any size; resized to the model) is the single context frame.
Actions: ``--policy random | noop | heuristic`` (heuristic needs --env) drawn from ``--seed``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

from worldmodel.config import SCHEDULES


class _Passes(argparse.Action):
    """Stores the MaskGIT passes per frame once: ``--passes``, or ``--steps``, its deprecated name here
    (in ``worldmodel.dream`` and ``worldmodel.train`` --steps counts steps, and dream takes --passes)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is not None:
            parser.error(f"{option_string} {values}: the passes per frame are already set "
                         "(--steps is the deprecated name of --passes: give one)")
        if option_string == "--steps":
            print("note: --steps is deprecated here: use --passes (MaskGIT passes per frame)",
                  file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_passes(p: argparse.ArgumentParser) -> None:
    """``--passes N`` (and ``--steps N``, deprecated) into ``args.passes``."""
    p.add_argument("--passes", type=int, default=None, action=_Passes,
                   help="MaskGIT passes per frame; None: the checkpoint's")
    p.add_argument("--steps", type=int, dest="passes", default=argparse.SUPPRESS, action=_Passes,
                   help="deprecated: use --passes")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m worldmodel.generate", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="run directory (RUN with config.json)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--env", help="start from a real scene, e.g. WorldGym/BouncingBalls-v0")
    src.add_argument("--image", help="start from a picture (png/jpg; resized to the model)")
    p.add_argument("--seed", type=int, default=0, help="scene reset seed, action seed and sampling seed")
    p.add_argument("--context", type=int, default=4, help="real context frames (with --env)")
    p.add_argument("--horizon", type=int, default=30, help="frames to generate")
    p.add_argument("--samples", type=int, default=4, help="independent dreams from the same start")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = argmax)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest codes")
    add_passes(p)
    p.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="MaskGIT commit schedule; None: the checkpoint's; adaptive: every sure code at once, "
                        "the unsure ones spread over the passes (better sampled rollouts, README)")
    p.add_argument("--policy", default="random", choices=["random", "noop", "heuristic"], help="actions")
    p.add_argument("--scale", type=int, default=4, help="pixel upscaling in the video")
    p.add_argument("--fps", type=float, default=15, help="frames per second of the MP4")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--out", default="seq.mp4", help="MP4 (or .png for a contact sheet)")
    return p


def _actions(space: dict, policy: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if space["type"] == "discrete":
        if policy == "noop":
            return np.zeros(n, np.int64)
        return rng.integers(space["n"], size=n)
    shape = (n, *space["shape"])
    if policy == "noop":
        return np.zeros(shape, np.float32)
    return rng.uniform(space["low"][0], space["high"][0], size=shape).astype(np.float32)


def real_rollout(env_id: str | gym.Env, seed: int, steps: int, policy: str, size: tuple[int, int] = (64, 64),
                 actions: np.ndarray | None = None):
    """Frames (steps+1, H, W, 3) and actions of a real episode (stops early at termination). ``env_id``:
    a scene id (made at ``size``, discrete actions), or an env to use (closed afterwards)."""
    import envs  # noqa: F401
    from worldmodel.config import space_spec

    env = gym.make(env_id, width=size[1], height=size[0]) if isinstance(env_id, str) else env_id
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    frames, acts = [obs], []
    for t in range(steps):
        if actions is not None:
            a = actions[t]
        elif policy == "heuristic":
            a = env.unwrapped.heuristic()
        elif policy == "noop":
            a = _actions(space_spec(env.action_space), "noop", 1, rng)[0]
        else:
            a = _actions(space_spec(env.action_space), "random", 1, rng)[0]
        obs, _, term, trunc, _ = env.step(a)
        frames.append(obs)
        acts.append(a)
        if term or trunc:
            break
    env.close()
    return np.stack(frames), np.asarray(acts)


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One argparse error for a bad setting, before the checkpoint loads."""
    from worldmodel.sampling import check_sampling

    for name in ("context", "horizon", "samples", "scale"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not args.fps > 0:
        p.error(f"--fps must be > 0, got {args.fps}")
    try:
        check_sampling(args.temperature, args.top_k, args.schedule, args.passes)
    except ValueError as e:
        p.error("--" + str(e).replace("top_k", "top-k"))
    if Path(args.out).suffix.lower() not in (".mp4", ".png"):
        p.error(f"--out must end in .mp4 (a video) or .png (a contact sheet), got {args.out!r}")
    if args.image and args.policy == "heuristic":
        p.error("--policy heuristic needs the real scene's state: use it with --env, not --image")
    if args.image and not Path(args.image).is_file():
        p.error(f"--image {args.image}: no such file")
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")


def read_image(path) -> np.ndarray:
    """(H, W, 3) uint8 from any image PIL reads; 16-bit images are scaled to 8 bits (PIL's own
    conversion clips them to white)."""
    from PIL import Image

    with Image.open(path) as img:
        if img.mode in ("I", "I;16", "I;16B", "I;16L"):
            a = np.round(np.asarray(img, np.float64) / 257.0).clip(0, 255).astype(np.uint8)  # 65535 -> 255
            return np.repeat(a[..., None], 3, axis=-1)
        return np.asarray(img.convert("RGB"))


def write_png(image: np.ndarray, path: Path) -> None:
    """Writes a PNG atomically (temp file + rename), creating its folder."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.png")
    try:
        Image.fromarray(image).save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv=None) -> Path:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    p = build_parser()
    args = p.parse_args(argv)
    check_args(p, args)
    import worldmodel
    from envs.video import grid, upscale, write_mp4
    from worldmodel.distributed import resolve_device
    from worldmodel.dream_env import make_real_env

    try:
        device = resolve_device(args.device)
    except ValueError as e:
        p.error(f"--device: {e}")
    try:
        model = worldmodel.load(args.checkpoint, device=device)
    except (OSError, ValueError) as e:  # a missing or damaged run directory
        p.error(f"--checkpoint: {e}")
    cfg = model.cfg
    rng = np.random.default_rng(args.seed)
    real = None
    if args.env:
        if cfg.env_id and args.env != cfg.env_id:
            p.error(f"--env {args.env}: {args.checkpoint} was trained on {cfg.env_id}; dream that scene")
        try:
            env = make_real_env(cfg)  # the checkpoint's scene, size and action mode (Discrete or Box)
        except ValueError as e:
            p.error(str(e))
        frames, acts = real_rollout(env, args.seed, args.context - 1 + args.horizon, args.policy)
        if len(frames) < args.context + 1:
            raise SystemExit("the episode ended inside the context; try another --seed")
        context, ctx_actions = frames[: args.context], acts[: args.context - 1]
        actions = acts[args.context - 1:]
        real = frames[args.context:]
        horizon = min(args.horizon, len(actions))
    else:
        try:
            img = read_image(args.image)
        except OSError as e:  # not an image PIL can read
            p.error(f"--image {args.image}: {e}")
        context, ctx_actions = img[None], None
        actions = _actions(cfg.action_space, args.policy, args.horizon, rng)
        horizon = args.horizon
    try:  # what only the checkpoint can tell (--top-k above its codes, --passes above its grid)
        out = model.generate(context[None], actions[None, :horizon], horizon, temperature=args.temperature,
                             num_samples=args.samples, top_k=args.top_k, seed=args.seed,
                             context_actions=None if ctx_actions is None else ctx_actions[None],
                             maskgit_steps=args.passes, schedule=args.schedule)
    except ValueError as e:
        p.error(str(e).replace("steps must", "--passes must"))
    dreams = out.frames[0].cpu().numpy()  # (S, horizon, H, W, 3)
    tiles, labels = [], []
    if real is not None:
        real = model.prepare_frames(real).cpu().numpy()
        tiles.append(real[:horizon])
        labels.append("real")
    for s in range(len(dreams)):
        tiles.append(dreams[s])
        labels.append(f"dream {s} T={args.temperature:g}")
    k = args.scale
    video = [grid([upscale(t[i], k) for t in tiles], labels, cols=len(tiles)) for i in range(horizon)]
    out_path = Path(args.out)
    if out_path.suffix.lower() == ".png":
        write_png(np.concatenate(video[:: max(1, horizon // 8)], 0), out_path)
    else:
        write_mp4(video, out_path, fps=args.fps)
    print(f"wrote {out_path} ({len(tiles)} tiles × {horizon} frames)")
    return out_path


if __name__ == "__main__":
    main()
