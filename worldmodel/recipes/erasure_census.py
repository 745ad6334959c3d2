"""Where a checkpoint's first predicted frame puts its probability at the codes that change: the
diagnosis of erased balls in worldmodel/README.md, "Why the argmax erases, and code thumbnails".

    python worldmodel/recipes/erasure_census.py runs/cpu30c2/run [--episodes 16] [--seed 100000]

For each held-out start (the evaluator's random-policy rollouts, one start every ``--every`` frames),
the model sees 4 real frames and predicts the 5th with every code masked: its first MaskGIT pass,
computed by the teacher-forced forward, which equals it (``test_streaming_generation_matches_teacher_
forced_forward``). At the codes that differ between the 4th and the 5th real frame it reports the mean
probability of the real code, of the code that was there and of background (the most common code of
the real frame), how often the argmax is background, and the RMS distance (of 255) from the real
code's thumbnail to the thumbnails of the code that was there, of background, of the argmax, and to the
expected thumbnail. Before that, the tokenizer: how often a 4×4 patch whose pixels stay the same keeps
its code, and how many other codes look like a given one. Thumbnails are measured on other seeds.
"""
import argparse
import json

import numpy as np
import torch

import worldmodel
from evaluate.rollouts import Episode, run
from worldmodel.dynamics import code_thumbnails

CONTEXT = 4
RMS = 127.5 / np.sqrt(48)  # a thumbnail distance (48 values in [-1, 1]) as an RMS in 0..255 units


def rollouts(env_id: str, seeds, steps: int):
    return [run(Episode(env_id, s), steps) for s in seeds]


def encode(model, frames: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.tokenizer.encode(model.prepare_frames(frames[i:i + 256]))
                          for i in range(0, len(frames), 256)])


def tokenizer_stability(frames: np.ndarray, tokens: torch.Tensor) -> float:
    """Share of codes, between consecutive frames, whose pixels stay identical and whose code does too."""
    n, h, w = tokens.shape
    ph, pw = frames.shape[1] // h, frames.shape[2] // w
    px = torch.from_numpy(frames).view(n, h, ph, w, pw, 3).transpose(2, 3).reshape(n, h, w, -1)
    same = (px[1:] == px[:-1]).all(-1)
    return float((tokens[1:] == tokens[:-1])[same].float().mean())


def census(model, env_id: str, seeds, every: int, thumbs: torch.Tensor) -> dict:
    """Means over the changed codes of every start (see the module docstring)."""
    dyn, V = model.dynamics, model.dynamics.V
    rows = []
    for ro in rollouts(env_id, seeds, every + CONTEXT):
        tokens = encode(model, ro.frames)  # (n, h, w)
        for c in range(CONTEXT, len(ro.frames), every):
            window = tokens[None, c - CONTEXT:c + 1]  # (1, 5, h, w): 4 context frames and the real next
            acts = model.prepare_actions(ro.actions[c - CONTEXT:c])[None]  # a_t from frame t to t+1
            known = torch.tensor([[False] + [True] * (CONTEXT - 1)])
            with torch.no_grad():
                logits = dyn(window[:, :-1], torch.full_like(window[:, 1:], V), acts, known,
                             torch.zeros(1, CONTEXT, dtype=torch.long)).logits[0, -1]  # (h, w, V)
            p = logits.float().softmax(-1)
            last, real = window[0, -2], window[0, -1]
            background = int(real.flatten().mode().values)
            changed = real != last
            if not changed.any():
                continue
            pc, rc, lc = p[changed], real[changed], last[changed]
            dist = lambda a, b: ((thumbs[a] - thumbs[b]).pow(2).sum(-1).sqrt() * RMS)  # noqa: E731
            rows.append(np.stack([
                pc.gather(-1, rc[:, None])[:, 0], pc.gather(-1, lc[:, None])[:, 0], pc[:, background],
                (pc.argmax(-1) == background).float(), dist(rc, lc), dist(rc, background),
                dist(rc, pc.argmax(-1)), ((pc @ thumbs) - thumbs[rc]).pow(2).sum(-1).sqrt() * RMS,
            ], 1))
    a = np.concatenate(rows)
    names = ["p_real", "p_was_there", "p_background", "argmax_is_background", "rms_real_to_was_there",
             "rms_real_to_background", "rms_real_to_argmax", "rms_real_to_expected"]
    return {"changed_codes": len(a), "starts": len(rows), **dict(zip(names, map(float, a.mean(0))))}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", help="a trained run or exported checkpoint")
    p.add_argument("--episodes", type=int, default=16, help="held-out episodes")
    p.add_argument("--every", type=int, default=4, help="frames between starts (two starts per episode)")
    p.add_argument("--seed", type=int, default=100000, help="first held-out seed (the evaluator's)")
    p.add_argument("--thumb-episodes", type=int, default=40, help="episodes to measure thumbnails on")
    p.add_argument("--thumb-seed", type=int, default=5000, help="their first seed")
    args = p.parse_args(argv)
    if args.episodes < 1 or args.every < 1 or args.thumb_episodes < 1:
        p.error("--episodes, --every and --thumb-episodes must be >= 1")
    model = worldmodel.load(args.run).eval()
    env_id = model.cfg.env_id
    if env_id is None:
        p.error(f"{args.run} does not record the scene it was trained on (config.json env_id)")
    seen = rollouts(env_id, range(args.thumb_seed, args.thumb_seed + args.thumb_episodes), 60)
    frames = np.concatenate([ro.frames for ro in seen])
    codes = [encode(model, ro.frames) for ro in seen]  # per episode, encoded once
    tokens = torch.cat(codes)
    thumbs, counts = code_thumbnails([(model.prepare_frames(frames).cpu(), tokens)], model.dynamics.V)
    thumbs = thumbs.float()
    used = counts > 0
    near = (torch.cdist(thumbs[used], thumbs[used]) * RMS < 8).sum(1) - 1
    out = {"tokenizer": {
        "frames": len(frames), "codes_seen": int(used.sum()),
        "same_pixels_same_code": float(np.mean([tokenizer_stability(ro.frames, c)
                                                for ro, c in zip(seen, codes)])),
        "median_other_codes_within_rms_8": float(near.median())},
        "first_pass_at_changed_codes": census(model, env_id, range(args.seed, args.seed + args.episodes),
                                              args.every, thumbs)}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
