"""Where a tokenizer misses the 1-px bar: every real object-frame of held-out futures, parsed by the
evaluator in the real frames and in their reconstructions, broken down by cause.

    python worldmodel/recipes/tokenizer_misses.py --run runs/tok_long/Platformer_more \
        --env WorldGym/Platformer-v0 --episodes 32

Episodes and windows are those of ``python -m evaluate --predictor tokenizer:RUN --seed 100000``:
4 context frames, then the 32 future frames whose objects are counted.
"""
import argparse

import numpy as np
import torch

import worldmodel
from evaluate.rollouts import Episode, run
from evaluate.suite import Reference, present


def object_errors(tok, env_id: str, seed: int, context: int = 4, horizon: int = 32):
    """(error px, inf where the reconstruction lost it; in clear view; radius px) per real object-frame,
    and the future's pixel counts (all, parsed as another colour than in the real frame, of which on
    object colours in the real frame)."""
    real = run(Episode(env_id, seed), context + horizon - 1)
    ref = Reference(real.window(context - 1, context + horizon))
    with torch.no_grad():
        future = torch.from_numpy(real.frames[context:])
        rec = tok.decode(tok.encode(future)).numpy().astype(np.uint8)
    parsed = ref.parse(rec)
    found = present(parsed.area, ref.a_ref)
    err = np.where(found, np.linalg.norm(parsed.pos - ref.real.pos, axis=-1), np.inf)
    seen = ref.pr.copy()
    seen[0] = False  # frame 0 of the window is the last context frame
    radius = np.broadcast_to(ref.cat.radius, err.shape)
    real_lab, rec_lab = ref.real.labels[1:], parsed.labels[1:]
    wrong = real_lab != rec_lab
    pixels = (real_lab.size, int(wrong.sum()), int((wrong & (real_lab >= 3)).sum()))  # 3 palette colours
    return err[seen], ref.clear[seen], radius[seen], pixels


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="run directory with a tokenizer stage")
    p.add_argument("--env", required=True, help="scene id, e.g. WorldGym/Platformer-v0")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--seed", type=int, default=100000, help="first held-out seed")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    tok = worldmodel.load(args.run, require_dynamics=False).tokenizer
    parts = [object_errors(tok, args.env, args.seed + i) for i in range(args.episodes)]
    errs, clears, radii, pixels = zip(*parts)
    err, clear, radius = (np.concatenate(x) for x in (errs, clears, radii))
    total, wrong, wrong_obj = np.sum(pixels, axis=0)
    miss = err > 1.0
    lost, off = np.isinf(err), miss & np.isfinite(err)
    print(f"{len(err)} object-frames: within 1 px {np.mean(~miss):.4f}, not found {lost.mean():.4f}, "
          f"found > 1 px {off.mean():.4f}" + (f" (median {np.median(err[off]):.2f} px)" if off.any() else ""))
    print(f"misses in clear view {int((miss & clear).sum())}, "
          f"touching or occluded {int((miss & ~clear).sum())}")
    for r in np.unique(np.round(radius, 1)):
        of_r = np.round(radius, 1) == r
        print(f"  radius {r:4.1f} px: {int((miss & of_r).sum())} misses of {int(of_r.sum())} object-frames")
    print(f"pixels the parser labels differently than in the real frame: {wrong / total * 1e6:,.0f} per "
          f"million ({wrong_obj / total * 1e6:,.0f} per million where the real pixel is an object's)")


if __name__ == "__main__":
    main()
