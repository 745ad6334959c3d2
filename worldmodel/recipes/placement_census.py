"""Where a predictor puts the objects it keeps: behind, ahead of or beside their real place. The
diagnosis of "dream friction" in worldmodel/README.md ("Dream friction: kept balls fall behind").

    python worldmodel/recipes/placement_census.py checkpoint:checkpoints/bouncing_balls@0 [--episodes 32]

Any ``evaluate`` predictor spec works (``real-perturbed``, ``copy-last``, ``checkpoint:RUN@T``). On the
evaluator's held-out rollouts (4 real context frames, seeds from 100000, random policy) each
uncontrolled object that the real frame and the dream both show at future step t, and that has touched
nothing since the last context frame (the real scene's contact record), gives one error vector dream −
real, split along and across the real displacement since that frame. Per t it prints the count, the
median distance, the median along-track error (negative: behind, i.e. the dream moved it too little),
the median across-track error, and the median ratio of the dream's displacement along the real one to
the real displacement (1 = moved as far as the real object, 0 = did not move).
"""
import argparse
import json

import numpy as np

from evaluate.metrics import present
from evaluate.predictors import make_predictor
from evaluate.rollouts import Episode, run
from evaluate.suite import Reference, check_scene

CONTEXT = 4
TIMES = (1, 3, 5, 9, 13, 16)


def errors(pred, ep: Episode, horizon: int) -> list[tuple]:
    """(t, along, across, distance, real displacement, dream displacement along it) per kept object."""
    real = run(ep, CONTEXT + horizon - 1)
    ref = Reference(real.window(CONTEXT - 1, CONTEXT + horizon))
    dream = np.asarray(pred.predict(real.frames[None, :CONTEXT], real.actions[None, :CONTEXT - 1],
                                    real.actions[None, CONTEXT - 1:], 1, [ep]))[0, 0]
    parsed = ref.parse(dream)
    shown = present(parsed.area, ref.a_ref)
    rp, dp, ids = ref.real.pos, parsed.pos, ref.cat.ids.tolist()
    rows = []
    for j, rid in enumerate(ids):
        if ref.cat.controlled[j] or not ref.pr[0, j]:
            continue
        for t in range(1, horizon + 1):
            if rid in ref.win.touching[t] or any(rid in pair for pair in ref.win.contacts[t].tolist()):
                break  # free flight only: a bounce the dream misses is another error
            if not (ref.pr[t, j] and shown[t, j]):
                continue
            moved = rp[t, j] - rp[0, j]
            dist = float(np.linalg.norm(moved))
            u = moved / dist if dist > 1e-9 else np.zeros(2)
            e = dp[t, j] - rp[t, j]
            rows.append((t, float(e @ u), float(abs(e[0] * u[1] - e[1] * u[0])), float(np.linalg.norm(e)),
                         dist, float((dp[t, j] - rp[0, j]) @ u)))
    return rows


def census(spec: str, env_id: str, episodes: int, seed: int, horizon: int, width: int = 64,
           height: int = 64, continuous: bool = False) -> dict:
    pred = make_predictor(spec)
    # a checkpoint of another scene, size or action space is refused here
    check_scene(env_id, pred, width, height, None, continuous)
    eps = [Episode(env_id, seed + i, None, width, height, continuous=continuous) for i in range(episodes)]
    rows = np.array([r for ep in eps for r in errors(pred, ep, horizon)]).reshape(-1, 6)
    out = {}
    for t in sorted({t for t in TIMES if t <= horizon} | {horizon}):
        at = rows[rows[:, 0] == t]
        far = at[at[:, 4] >= 1.0]  # the ratio needs a real displacement above rasterisation noise
        med = (lambda x: float(np.median(x)) if len(x) else None)  # noqa: E731  (None: no object)
        out[t] = {"objects": len(at), "distance": med(at[:, 3]), "along": med(at[:, 1]),
                  "across": med(at[:, 2]), "moved_ratio": med(far[:, 5] / far[:, 4])}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("predictor", help="an evaluate predictor spec, e.g. checkpoint:RUN@0")
    p.add_argument("--env", default="WorldGym/BouncingBalls-v0", help="scene id")
    p.add_argument("--episodes", type=int, default=32, help="held-out episodes")
    p.add_argument("--seed", type=int, default=100000, help="first held-out seed (the evaluator's)")
    p.add_argument("--horizon", type=int, default=16, help="future frames (reported at 1, 3, 5, 9, 13, 16 "
                   "and the last)")
    p.add_argument("--width", type=int, default=64, help="frame width")
    p.add_argument("--height", type=int, default=64, help="frame height")
    p.add_argument("--continuous", action="store_true", help="the scene's Box actions (a checkpoint trained "
                   "on them)")
    args = p.parse_args(argv)
    if min(args.episodes, args.horizon, args.width, args.height) < 1 or args.seed < 0:
        p.error("--episodes, --horizon, --width and --height must be >= 1, --seed >= 0")
    try:
        out = census(args.predictor, args.env, args.episodes, args.seed, args.horizon, args.width,
                     args.height, args.continuous)
    except (ValueError, RuntimeError, OSError) as e:
        p.error(str(e))
    print(json.dumps({str(t): v for t, v in out.items()}, indent=2))
    return out


if __name__ == "__main__":
    main()
