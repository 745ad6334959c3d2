"""How many distinct d×d pixel patches a scene draws, and what share of all patches the most common
V of them cover: whether a tokenizer with d×d-pixel codes and a V-code codebook *can* be exact there.

    python worldmodel/recipes/patch_census.py --patch 2 4 --codes 512 1024 4096

A patch-local tokenizer gives every distinct patch a code; where a scene draws more distinct patches
than the codebook holds, the rarest ones (small objects touching, colour bands meeting) must share
codes and come back approximate, however long the tokenizer trains. Where the top V cover all but a
few patches in a million, a miss is a matter of training, not of the codebook. Frames are the
evaluator's own rollouts of held-out seeds.
"""
import argparse
from collections import Counter

import numpy as np

import envs
from evaluate.rollouts import Episode, run


def census(env_id: str, patch: int, episodes: int, steps: int, seed: int) -> Counter:
    """Counts of each distinct patch×patch×3 block over the frames of the evaluator's rollouts
    (``evaluate.rollouts.run``: its random policy, ``steps`` steps after the first frame)."""
    counts: Counter = Counter()
    for e in range(episodes):
        frames = run(Episode(env_id, seed + e), steps).frames  # (steps + 1, H, W, 3)
        n, H, W = frames.shape[:3]
        h, w = H // patch, W // patch
        blocks = frames[:, : h * patch, : w * patch].reshape(n, h, patch, w, patch, 3).swapaxes(2, 3)
        counts.update(map(bytes, np.ascontiguousarray(blocks).reshape(n * h * w, -1)))
    return counts


def coverage(counts: Counter, top: int) -> float:
    """Share of all patches that are one of the ``top`` most common distinct ones."""
    c = np.sort(np.fromiter(counts.values(), np.int64))[::-1]
    return float(c[:top].sum() / c.sum())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", nargs="+", default=list(envs.SCENE_IDS), help="scene ids (default: all eight)")
    p.add_argument("--patch", type=int, nargs="+", default=[2, 4], help="patch sizes in pixels")
    p.add_argument("--codes", type=int, nargs="+", default=[512, 1024, 4096], help="codebook sizes")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--steps", type=int, default=100, help="steps per episode")
    p.add_argument("--seed", type=int, default=100000, help="first seed (the evaluator's held-out ones)")
    args = p.parse_args(argv)
    head = " | ".join(f"top {v} cover (missed per million)" for v in args.codes)
    print(f"| scene | patch | patches | distinct | {head} |")
    print("|---|---|---|---|" + "---|" * len(args.codes))
    for env_id in args.env:
        for d in args.patch:
            counts = census(env_id, d, args.episodes, args.steps, args.seed)
            shares = [coverage(counts, v) for v in args.codes]
            cells = " | ".join(f"{c:.5f} ({(1 - c) * 1e6:,.0f})" for c in shares)
            print(f"| {env_id.split('/')[-1].removesuffix('-v0')} | {d}×{d} | {sum(counts.values()):,} | "
                  f"{len(counts):,} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
