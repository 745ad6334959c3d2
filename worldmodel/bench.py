"""Speed and memory of a world model: parameters, generated frames/s, peak memory, training step time.

    python -m worldmodel.bench --preset tiny --device cpu --threads 2
    python -m worldmodel.bench --checkpoint runs/bb --device cuda
    python -m worldmodel.bench --preset seed163m --device cuda --train-batch 2 --train-frames 16

Generation is measured end to end (context encoding excluded, then per frame: ``maskgit_steps``
transformer passes + decoding to uint8 pixels), single stream (batch 1) and batched (batch 64), after
a warm-up. A training step is forward + backward + AdamW on one batch, for each stage (bf16 autocast
on CUDA, as in training). Peak memory: CUDA's max allocated, or the process's peak RSS on CPU.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import time

import numpy as np
import torch

from worldmodel.config import preset
from worldmodel.model import WorldModel
from worldmodel.train import make_optimizer


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m worldmodel.bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="random weights of a preset")
    src.add_argument("--checkpoint", help="a run directory")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64], help="generation batch sizes")
    p.add_argument("--frames", type=int, default=30, help="timed generated frames per batch size")
    p.add_argument("--context", type=int, default=4, help="context frames")
    p.add_argument("--train-batch", type=int, default=None, help="dynamics windows per training step")
    p.add_argument("--train-frames", type=int, default=None, help="frames per training window")
    p.add_argument("--no-train", action="store_true", help="skip the training step timing")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    return p.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _context(model: WorldModel, batch: int, n: int) -> np.ndarray:
    """Real-looking context: a BouncingBalls episode's first frames (any frames would do for timing)."""
    H, W = model.cfg.tokenizer.height, model.cfg.tokenizer.width
    try:
        from worldmodel.generate import real_rollout

        frames, _ = real_rollout("WorldGym/BouncingBalls-v0", 0, n, "noop", (H, W))
        frames = frames[:n]
    except Exception:  # scenes unavailable: random pixels
        frames = np.random.default_rng(0).integers(0, 255, (n, H, W, 3), dtype=np.uint8)
    return np.repeat(frames[None], batch, 0)


@torch.no_grad()
def generation_speed(model: WorldModel, batch: int, frames: int, context: int) -> dict:
    dev = model.device
    ctx = _context(model, batch, context)
    space = model.cfg.action_space
    acts = (torch.zeros(batch, dtype=torch.long) if space["type"] == "discrete"
            else torch.zeros(batch, *space["shape"]))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    state = model.reset(ctx, seed=0)
    for _ in range(3):  # warm-up
        model.step(state, acts)
    _sync(dev)
    t = time.perf_counter()
    for _ in range(frames):
        model.step(state, acts)
    _sync(dev)
    dt = time.perf_counter() - t
    return {"batch": batch, "frames_per_s": batch * frames / dt, "ms_per_step": 1000 * dt / frames,
            "passes_per_frame": model.cfg.dynamics.maskgit_steps, "peak_mb": _peak_mb(dev)}


def train_step_time(model: WorldModel, batch: int, frames: int, repeats: int = 3) -> dict:
    dev = model.device
    cfg = model.cfg
    cuda = dev.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    out = {}
    # tokenizer
    tb = cfg.train.tokenizer_batch
    size = (tb, cfg.tokenizer.height, cfg.tokenizer.width, 3)
    x = torch.randint(0, 255, size, dtype=torch.uint8, device=dev)
    opt = make_optimizer(model.tokenizer, 1e-4, 0.0)
    model.tokenizer.train()
    times = []
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    for _ in range(repeats + 1):
        _sync(dev)
        t = time.perf_counter()
        with autocast:
            loss = model.tokenizer.compute_loss(x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(dev)
        times.append(time.perf_counter() - t)
    out["tokenizer"] = {"batch": tb, "s_per_step": float(np.median(times[1:])), "peak_mb": _peak_mb(dev)}
    del opt
    model.tokenizer.eval()
    # dynamics
    h, w = cfg.tokenizer.grid
    V = cfg.tokenizer.codebook_size
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, V, (batch, frames, h, w), generator=g).to(dev)
    space = cfg.action_space
    if space["type"] == "discrete":
        acts = torch.randint(0, space["n"], (batch, frames - 1), generator=g).to(dev)
    else:
        acts = torch.rand(batch, frames - 1, *space["shape"], generator=g).to(dev)
    zeros = torch.zeros(batch, frames - 1, device=dev)
    seeds = torch.arange(batch)
    opt = make_optimizer(model.dynamics, 1e-4, 0.0)
    model.dynamics.train()
    times = []
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    for _ in range(repeats + 1):
        _sync(dev)
        t = time.perf_counter()
        with autocast:
            loss = model.dynamics.compute_loss(tokens, acts, zeros, zeros, seeds).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(dev)
        times.append(time.perf_counter() - t)
    out["dynamics"] = {"batch": batch, "frames": frames, "s_per_step": float(np.median(times[1:])),
                       "peak_mb": _peak_mb(dev)}
    model.dynamics.eval()
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.checkpoint:
        import worldmodel

        model = worldmodel.load(args.checkpoint, device=dev)
    else:
        torch.manual_seed(0)
        model = WorldModel(preset(args.preset)).to(dev).eval()
    cfg = model.cfg
    res = {"model": args.checkpoint or args.preset, "device": str(dev), "threads": torch.get_num_threads(),
           "frame": [cfg.tokenizer.height, cfg.tokenizer.width], "parameters": model.num_parameters(),
           "generation": [generation_speed(model, b, args.frames, args.context) for b in args.batches]}
    if not args.no_train:
        res["train_step"] = train_step_time(model, args.train_batch or cfg.train.dynamics_batch,
                                            args.train_frames or cfg.dynamics.train_frames)
    if args.json:
        print(json.dumps(res))
        return res
    p = res["parameters"]
    print(f"{res['model']} on {res['device']} ({res['threads']} threads), frames {cfg.tokenizer.height}×"
          f"{cfg.tokenizer.width}: {p['total'] / 1e6:.2f}M parameters "
          f"(tokenizer {p['tokenizer'] / 1e6:.2f}M, dynamics {p['dynamics'] / 1e6:.2f}M)")
    for g in res["generation"]:
        print(f"  generate batch {g['batch']:3d}: {g['frames_per_s']:9.1f} frames/s "
              f"({g['ms_per_step']:.1f} ms per step, {g['passes_per_frame']} passes/frame), "
              f"peak {g['peak_mb']:.0f} MB")
    for stage, t in res.get("train_step", {}).items():
        print(f"  train {stage:9s}: {t['s_per_step'] * 1000:8.1f} ms/step (batch {t['batch']}"
              + (f" × {t['frames']} frames" if "frames" in t else "") + f"), peak {t['peak_mb']:.0f} MB")
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
