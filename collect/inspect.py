"""``python -m collect.inspect DIR [DIR ...]``: what is in a dataset, how big, and how well it scores.

Prints per dataset: env, policy, seed, frame size, episodes (present / requested), steps and frames,
episode lengths, bytes on disk against raw frame bytes, and return statistics; with several
directories, a last table compares returns per policy. Reads metadata only (fast on any size).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

import numpy as np

from collect.cli import summary
from collect.dataset import DatasetError, open_dataset

PROG = "python -m collect.inspect"


def summarize(path: str) -> dict:
    ds = open_dataset(path)
    m, c = ds.metadata, ds.metadata["counts"]
    steps, rets = ds.steps, ds.returns
    return {
        "dir": path, "env": ds.env_id, "policy": m["policy"], "seed": ds.settings["seed"],
        "frame": f"{ds.settings['width']}x{ds.settings['height']}", "options": ds.settings["options"],
        "max_steps": ds.settings["max_steps"],
        "episodes": len(ds), "requested": m.get("episodes_requested"), "shards": c["shards"],
        "steps": int(steps.sum()), "frames": int(steps.sum() + len(ds)),
        "length": _stats(steps), "return": _stats(rets),
        "truncated_at_max": int((steps == ds.settings["max_steps"]).sum()),
        "bytes": c["bytes"], "raw_frame_bytes": c["raw_frame_bytes"],
        "ratio": c["bytes"] / c["raw_frame_bytes"] if c["raw_frame_bytes"] else None,
        "max_objects": ds.max_objects, "max_contacts": ds.max_contacts,
    }


def _stats(x: np.ndarray) -> dict:
    if not len(x):
        return {}
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()),
            "median": float(np.median(x)), "max": float(x.max())}


def _fmt_stats(s: dict) -> str:
    if not s:
        return "-"
    return (f"mean {s['mean']:.3f} ± {s['std']:.3f}  "
            f"[min {s['min']:.3f}, median {s['median']:.3f}, max {s['max']:.3f}]")


def render(info: dict) -> str:
    ratio = f"{info['ratio']:.2%}" if info["ratio"] is not None else "-"
    lines = [
        f"{info['dir']}",
        f"  env          {info['env']}  ({info['frame']}, options {json.dumps(info['options'])})",
        f"  policy       {info['policy']}  (seed {info['seed']}, max steps {info['max_steps']})",
        f"  episodes     {info['episodes']} of {info['requested']} requested, in {info['shards']} shards",
        f"  steps        {info['steps']:,} ({info['frames']:,} frames); "
        f"{info['truncated_at_max']} episodes reached max steps",
        f"  length       {_fmt_stats(info['length'])}",
        f"  return       {_fmt_stats(info['return'])}",
        f"  disk         {info['bytes'] / 1e6:,.2f} MB = {ratio} of {info['raw_frame_bytes'] / 1e6:,.1f} MB "
        f"raw frames",
        f"  objects      up to {info['max_objects']} per frame, "
        f"up to {info['max_contacts']} contacts per step",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=summary(__doc__))
    p.add_argument("dirs", nargs="+", metavar="DIR", help="dataset directories")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = p.parse_args(argv)
    infos = []
    for d in args.dirs:
        try:
            infos.append(summarize(d))
        except DatasetError as e:
            p.error(str(e))
    if args.json:
        print(json.dumps(infos, indent=1))
        return 0
    print("\n\n".join(render(i) for i in infos))
    if len(infos) > 1:
        by = defaultdict(list)
        for i in infos:
            by[(i["env"], i["policy"])].append(i)
        print("\nreturns per policy")
        for (env, policy), group in sorted(by.items()):
            n = sum(g["episodes"] for g in group)
            mean = sum(g["return"].get("mean", 0) * g["episodes"] for g in group) / max(n, 1)
            print(f"  {env:32s} {policy:20s} {n:6d} episodes  mean return {mean:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
