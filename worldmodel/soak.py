"""Soak test of a dream: step a ``DreamVectorEnv`` for a long time without resets and watch memory,
numerical health and speed.

    python -m worldmodel.soak --checkpoint runs/bb --steps 1000 --num-envs 8 --threads 1
    python -m worldmodel.soak --checkpoint runs/bb --num-envs 64 --device cuda --cuda-graph --compile

Terminations are switched off and the horizon is longer than ``--steps``, so every sub-env dreams one
unbroken episode. A leak in the streaming state (KV cache, memory bank, bias caches) would then show
as growth between step 100 and the last step. Reported: resident memory (RSS, from /proc) or CUDA
memory at step 100 and at the end, the peak, the largest absolute reward/termination probability/
memory-bank value, and any non-finite value among them (frames are uint8, so a NaN would be hidden
there: the memory bank, which every frame is predicted from, is checked instead), and frames/s.
``--steps`` must exceed 100. The report's ``checked`` says what was checked, ``failed`` which checks
failed; exit status 1 if a dream reset, anything is non-finite or memory grew by more than
``--max-growth-mb``.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np

WATCH_FROM = 100  # memory growth is measured from this step to the last (caches fill before it)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The whole module docstring as the description, and each flag's default."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m worldmodel.soak", description=__doc__,
                                formatter_class=_Formatter)
    p.add_argument("--checkpoint", required=True, help="run directory (RUN with config.json)")
    p.add_argument("--steps", type=int, default=1000,
                   help=f"steps of every sub-env, without resets (more than {WATCH_FROM})")
    p.add_argument("--num-envs", type=int, default=8, help="dreams stepped in one batch")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = argmax)")
    p.add_argument("--context", type=int, default=4, help="real frames each dream starts from")
    p.add_argument("--seed", type=int, default=0, help="the dreams' reset seed and the random actions' seed")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's choice)")
    p.add_argument("--cuda-graph", action="store_true", help="step the batch as one captured CUDA graph")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the captured step (with --cuda-graph)")
    p.add_argument("--max-growth-mb", type=float, default=50.0,
                   help=f"fail above this memory growth, step {WATCH_FROM} → end")
    p.add_argument("--json", help="also write the report to this file")
    return p


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One argparse error for a bad number (the checkpoint is checked when it loads)."""
    if args.steps <= WATCH_FROM:
        p.error(f"--steps must be > {WATCH_FROM}: memory growth is measured from step {WATCH_FROM} to the "
                f"last step, got {args.steps}")
    if args.num_envs < 1:
        p.error(f"--num-envs must be >= 1, got {args.num_envs}")
    if args.threads < 0:
        p.error(f"--threads must be >= 0 (0: torch's choice), got {args.threads}")


def parse_args(argv=None, p: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parsed and checked arguments; ``p``: the parser, when the caller reports later errors with it."""
    p = p or build_parser()
    args = p.parse_args(argv)
    check_args(p, args)
    return args


def rss_mb() -> float:
    """Current resident set size (VmRSS) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None) -> dict:
    p = build_parser()
    args = parse_args(argv, p)
    import torch

    from worldmodel.dream_vector import DreamVectorEnv

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        venv = DreamVectorEnv(args.checkpoint, args.num_envs, temperature=args.temperature,
                              context=args.context, horizon=args.steps + 1, device=args.device,
                              termination="off", cuda_graph=args.cuda_graph, compile=args.compile)
    except (OSError, ValueError) as e:  # a missing or damaged checkpoint, a bad setting
        p.error(str(e))
    cuda = venv.core.device.type == "cuda"

    def memory_mb() -> float:
        return torch.cuda.memory_allocated(venv.core.device) / 2**20 if cuda else rss_mb()

    venv.reset(seed=args.seed)
    venv.action_space.seed(args.seed)
    mark = WATCH_FROM
    worst = {"reward": 0.0, "termination_prob": 0.0, "memory_bank": 0.0}
    nonfinite = {k: 0 for k in worst}
    at_mark = resets = 0
    peak = memory_mb()
    t0, t_mark = time.perf_counter(), None
    for step in range(1, args.steps + 1):
        _, rewards, term, trunc, infos = venv.step(venv.action_space.sample())
        resets += int(np.sum(term | trunc))
        bank = torch.cat([g.state.memory.flatten() for g in venv.core.groups]).float().cpu().numpy()
        probs = infos.get("termination_prob", np.zeros(0))
        for key, x in (("reward", rewards), ("termination_prob", probs), ("memory_bank", bank)):
            ok = np.isfinite(x)
            nonfinite[key] += int((~ok).sum())
            if ok.any():
                worst[key] = max(worst[key], float(np.abs(x[ok]).max()))
        peak = max(peak, memory_mb())
        if step == mark:
            at_mark, t_mark = memory_mb(), time.perf_counter()
    t_end = time.perf_counter()
    wall = t_end - t0
    final = memory_mb()
    report = {
        "checkpoint": str(args.checkpoint), "device": str(venv.core.device), "threads": args.threads,
        "num_envs": args.num_envs, "steps": args.steps, "resets": resets,
        "memory": "cuda_allocated_mb" if cuda else "rss_mb",
        f"memory_at_step_{mark}_mb": round(at_mark, 1), "memory_final_mb": round(final, 1),
        "memory_growth_mb": round(final - at_mark, 1), "memory_peak_mb": round(peak, 1),
        "peak_rss_process_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "nonfinite": nonfinite, "max_abs": {k: round(v, 4) for k, v in worst.items()},
        "frames_per_s": round(args.steps * args.num_envs / wall, 1),
        f"frames_per_s_after_step_{mark}": round((args.steps - mark) * args.num_envs / (t_end - t_mark), 1),
    }
    venv.close()
    grew = report["memory_growth_mb"] > args.max_growth_mb
    failed = [name for name, bad in (("resets", resets > 0), ("nonfinite", any(nonfinite.values())),
                                     ("memory_growth", grew)) if bad]
    report["checked"] = (f"{args.steps} steps of {args.num_envs} dreams: no reset, no non-finite reward, "
                         "termination probability or memory-bank value, memory growth from step "
                         f"{mark} to step {args.steps} at most {args.max_growth_mb:g} MB")
    report["failed"] = failed
    ok = report["ok"] = not failed
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    if not ok:
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    main()
    sys.exit(0)
