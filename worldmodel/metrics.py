"""Rollout metrics used during training and in quick experiments (the full suite lives in ``evaluate``).

``rollout_eval`` starts from C real frames of held-out episodes, feeds the real actions, and compares
the dream with the real frames at every horizon, beside two reference rows:

* ``copy``: the last context frame repeated (the floor a world model must beat);
* ``recon``: the tokenizer's reconstruction of the real frames (the ceiling of any token dynamics).

Per horizon t: PSNR (dB, per frame, then averaged); object persistence (an object the real frame
shows with area A counts as present in a frame holding ≥ 0.5·A pixels within max-channel distance 40
of its flat colour, as in evaluation-notes.md); position error (px) of the present objects' colour
centroids; ``within_1px``: the share of objects present *and* within 1 px (the tokenizer's bar: the
parser finds every object in reconstructions within 1 px). Note that erasing moving objects scores
better PSNR than copying them at long horizons (one wrong blob instead of two): read PSNR beside
persistence.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

TOLERANCE = 40
MIN_AREA = 3  # objects with fewer real pixels than this (leaving the frame) are not scored


def frame_psnr(pred: np.ndarray, real: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (...) dB."""
    mse = ((pred.astype(np.float32) - real.astype(np.float32)) / 255.0) ** 2
    mse = mse.reshape(*mse.shape[:-3], -1).mean(-1)
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-10))


def object_presence(pred: np.ndarray, real: np.ndarray, colors: np.ndarray, radii: np.ndarray,
                    positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pred, real (T, H, W, 3); colors (T, N, 3); radii (T, N) (0 = absent); positions (T, N, 2).
    Returns scored (T, N) bool, present (T, N) bool, centroid error (T, N) px (NaN if not present)."""
    T, H, W, _ = real.shape
    N = colors.shape[1]
    scored = np.zeros((T, N), bool)
    present = np.zeros((T, N), bool)
    err = np.full((T, N), np.nan, np.float32)
    ys, xs = np.mgrid[0:H, 0:W]
    for t in range(T):
        for j in range(N):
            if radii[t, j] <= 0:
                continue
            c = colors[t, j].astype(np.int16)
            area_real = (np.abs(real[t].astype(np.int16) - c).max(-1) <= TOLERANCE).sum()
            if area_real < MIN_AREA:
                continue
            scored[t, j] = True
            m = np.abs(pred[t].astype(np.int16) - c).max(-1) <= TOLERANCE
            if m.sum() >= 0.5 * area_real:
                present[t, j] = True
                cy, cx = ys[m].mean() + 0.5, xs[m].mean() + 0.5
                err[t, j] = np.hypot(cx - positions[t, j, 0], cy - positions[t, j, 1])
    return scored, present, err


@torch.no_grad()
def rollout_eval(model, store, episodes: int = 16, context: int = 4, horizon: int = 16,
                 temperature: float = 1.0, seed: int = 0, samples: int = 1, maskgit_steps: int | None = None,
                 start: int = 0) -> dict:
    """Dreams vs real on held-out episodes (the first ``episodes`` long enough). Returns per-horizon
    arrays (horizon,) under keys like ``psnr/model``, ``persistence/copy``, and the raw frames."""
    L = context + horizon
    chosen = [e for e in store.episodes if e.length >= start + L][:episodes]
    if not chosen:
        raise ValueError(f"no held-out episode has {start + L} frames")
    real = np.stack([e.frames[start:start + L] for e in chosen])  # (B, L, H, W, 3)
    acts = np.stack([e.actions[start + context - 1:start + L - 1] for e in chosen])  # (B, horizon)
    ctx_acts = np.stack([e.actions[start:start + context - 1] for e in chosen])  # (B, C-1)
    out = model.generate(real[:, :context], acts, horizon, temperature=temperature, num_samples=samples,
                         seed=seed, context_actions=ctx_acts, maskgit_steps=maskgit_steps)
    dream = out.frames.cpu().numpy()  # (B, S, horizon, H, W, 3)
    cfg = model.cfg.tokenizer
    scale = cfg.height / real.shape[2]
    if real.shape[2:4] != (cfg.height, cfg.width):
        from worldmodel.tokenizer import resize_frames

        real = resize_frames(torch.from_numpy(real), cfg.height, cfg.width).numpy()
    target = real[:, context:]  # (B, horizon, H, W, 3)
    t_dev = torch.from_numpy(target).to(model.device)
    recon = model.tokenizer.decode(model.tokenizer.encode(t_dev.flatten(0, 1)))  # (B·horizon, H, W, 3)
    recon = recon.view(t_dev.shape).cpu().numpy()
    copy = np.repeat(real[:, context - 1:context], horizon, 1)
    rows = {"model": dream, "copy": copy[:, None], "recon": recon[:, None]}
    res: dict = {"episodes": len(chosen), "frames": {"real": target, **rows}}
    for name, pred in rows.items():
        res[f"psnr/{name}"] = frame_psnr(pred, target[:, None]).mean((0, 1))  # (horizon,)
        n_scored, n_present, n_close = np.zeros(horizon), np.zeros(horizon), np.zeros(horizon)
        err_sum, err_n = np.zeros(horizon), np.zeros(horizon)
        for b, ep in enumerate(chosen):
            if ep.colors is None:
                continue
            sl = slice(start + context, start + L)
            for s in range(pred.shape[1]):
                sc, pr, er = object_presence(pred[b, s], target[b], ep.colors[sl], ep.radii[sl] * scale,
                                             ep.positions[sl] * scale)  # (horizon, N) each
                n_scored += sc.sum(1)
                n_present += (pr & sc).sum(1)
                ok = pr & sc
                n_close += (ok & (np.nan_to_num(er, nan=np.inf) <= 1.0)).sum(1)
                err_sum += np.where(ok, er, 0).sum(1)
                err_n += ok.sum(1)
        if n_scored.sum():
            res[f"persistence/{name}"] = n_present / np.maximum(n_scored, 1)
            res[f"within_1px/{name}"] = n_close / np.maximum(n_scored, 1)
            res[f"position_error/{name}"] = np.where(err_n > 0, err_sum / np.maximum(err_n, 1), np.nan)
    return res


def summary(res: dict, at: tuple[int, ...] = (1, 8, 16, 30)) -> str:
    """A small text table of a ``rollout_eval`` result at the horizons that exist."""
    horizon = len(res["psnr/model"])
    ts = [t for t in at if t <= horizon]
    lines = [f"{'':28s}" + "".join(f"t={t:<8d}" for t in ts)]
    for key in sorted(k for k in res if "/" in k and k != "frames"):
        vals = res[key]
        lines.append(f"{key:28s}" + "".join(f"{vals[t - 1]:<10.3f}" for t in ts))
    return "\n".join(lines)


def build_parser():
    import argparse

    from worldmodel.generate import add_passes

    p = argparse.ArgumentParser(prog="python -m worldmodel.metrics", description=main.__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="run directory (RUN with config.json)")
    p.add_argument("--data", required=True,
                   help="collected dataset of the checkpoint's scene; its held-out split is used")
    p.add_argument("--episodes", type=int, default=48, help="held-out episodes to roll out (at most)")
    p.add_argument("--context", type=int, default=4, help="real frames each dream starts from")
    p.add_argument("--horizon", type=int, default=30, help="frames to dream and compare")
    p.add_argument("--temperature", type=float, nargs="+", action="extend", default=None,
                   help="sampling temperatures, one evaluation each (0 = argmax; repeatable); None: 1.0")
    p.add_argument("--samples", type=int, default=1, help="dreams per episode")
    add_passes(p)
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch; 0 or None: torch's choice")
    p.add_argument("--json", default=None, help="write the per-horizon arrays here")
    return p


def check_args(args) -> str | None:
    """The first bad setting, as an error line (None: all fine)."""
    from worldmodel.sampling import check_sampling

    for name in ("episodes", "context", "horizon", "samples"):
        if getattr(args, name) < 1:
            return f"--{name} must be >= 1, got {getattr(args, name)}"
    if args.threads is not None and args.threads < 0:
        return f"--threads must be >= 0 (0: torch's choice), got {args.threads}"
    try:
        for temp in args.temperature:
            check_sampling(temp, passes=args.passes)
    except ValueError as e:
        return "--" + str(e)
    return None


def open_data(p, args):
    """(model, held-out store), with one argparse error for a missing checkpoint or dataset and for data
    of another scene or action space than the checkpoint's (which failed deep inside generation)."""
    import collect
    import worldmodel
    from worldmodel.checkpoint import load_config
    from worldmodel.data import EpisodeStore, _space_of_dataset

    try:
        cfg = load_config(args.checkpoint)
    except (OSError, ValueError) as e:
        p.error(f"--checkpoint: {e}")
    try:
        ds = collect.open_dataset(args.data)
        space = _space_of_dataset(ds)
    except collect.DatasetError as e:
        p.error(f"--data: {e}")
    if (cfg.env_id and ds.env_id != cfg.env_id) or space != cfg.action_space:
        p.error(f"--data {args.data} is {ds.env_id} (actions {space}), but --checkpoint {args.checkpoint} "
                f"was trained on {cfg.env_id or 'an unnamed scene'} (actions {cfg.action_space}): "
                "give a dataset of the checkpoint's scene")
    try:
        model = worldmodel.load(args.checkpoint)
        _, val = EpisodeStore.from_dataset(args.data, val_fraction=model.cfg.train.val_fraction, seed=0)
    except (OSError, ValueError) as e:
        p.error(f"--checkpoint: {e}")
    except collect.DatasetError as e:
        p.error(f"--data: {e}")
    return model, val


def main(argv=None) -> dict:
    """``python -m worldmodel.metrics --checkpoint RUN --data DIR``: held-out rollouts vs copy-last."""
    import json

    p = build_parser()
    args = p.parse_args(argv)
    args.temperature = args.temperature or [1.0]  # "extend" would add to a default list
    problem = check_args(args)
    if problem:
        p.error(problem)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, val = open_data(p, args)
    out = {}
    for temp in args.temperature:
        try:
            res = rollout_eval(model, val, args.episodes, args.context, args.horizon, temp, args.seed,
                               args.samples, args.passes)
        except ValueError as e:  # too few held-out frames, more passes than codes per frame
            p.error(str(e).replace("steps must", "--passes must"))
        print(f"temperature {temp}: {res['episodes']} held-out episodes, {args.context} context frames")
        print(summary(res))
        out[str(temp)] = {k: np.asarray(v).tolist() for k, v in res.items() if "/" in k}
    if args.json:
        Path(args.json).write_text(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
