"""The judge's self-test: every corruption against every check, and the parser against the truth.

    python -m evaluate.selftest                         # detection table on BouncingBalls
    python -m evaluate.selftest --env WorldGym/Platformer-v0 --episodes 8
    python -m evaluate.selftest --parser --all-scenes   # parser accuracy per scene

Each cell is the fraction of rollouts that the check flags, over the episodes where the corruption
found a suitable object (column n) and the check's metric is defined (e.g. the counterfactual needs
the action to move the controlled object); "–" = never defined. ``real`` must be 0 everywhere (the exit
status is 2 otherwise, or when a scene fails), and each corruption's intended check (marked *) should
catch it. ``real-perturbed`` is shown for scale:
the physical variance of the scene.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import envs
from evaluate.corrupt import CORRUPTIONS, INTENDED, apply
from evaluate.metrics.coherence import CHECKS
from evaluate.parser import Catalogue, track, unoccluded
from evaluate.rollouts import Episode, run
from evaluate.suite import run_suite


def detection_table(env_id: str = "WorldGym/BouncingBalls-v0", episodes: int = 8, horizon: int = 32,
                    context: int = 4, seed: int = 0, policy: str = "random", progress: bool = False,
                    corruptions=tuple(CORRUPTIONS), references=("real", "real-perturbed")) -> dict:
    """{row: {"checks": {check: rate}, "applied": episodes}} for the reference rows and corruptions.

    The controllability runs (counterfactual) are made only for the rows whose check needs them.
    """
    table = {}
    for row in (*references, *[f"corrupt:{c}" for c in corruptions]):
        name = row.removeprefix("corrupt:")
        control = name not in CORRUPTIONS or INTENDED[name] == "counterfactual"
        res = run_suite(env_id, row, episodes, horizon, context, samples=1, policy=policy, seed=seed,
                        diversity=False, controllability=control, progress=progress)
        if name in CORRUPTIONS:  # score only the episodes where the corruption did something
            done = []
            for e in res.episodes:
                ro = run(Episode(env_id, e["seed"], policy=policy), context + horizon - 1)
                done.append(apply(name, ro.frames[context - 1:], ro.states[context - 1:], e["seed"])[1]
                            is not None)
            eps = [e for e, d in zip(res.episodes, done) if d and not e["error"]]
        else:
            eps = [e for e in res.episodes if not e["error"]]
        checks = {}
        for c in (*CHECKS, "abnormal"):  # rate over the episodes where the check's metric is defined
            ok = [e for e in eps if c == "abnormal" or not _nan(e["metrics"].get(CHECKS[c].metric))]
            checks[c] = float(np.mean([e["flags"][c] for e in ok])) if ok else float("nan")
        table[name] = {"checks": checks, "applied": len(eps), "failed": res.failed}
    return table


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def format_table(table: dict) -> str:
    cols = [*CHECKS, "abnormal"]
    lines = ["| rollout | n | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for row, r in table.items():
        cells = []
        for c in cols:
            v = r["checks"][c]
            s = "–" if np.isnan(v) else f"{v:.2f}"
            cells.append(f"**{s}***" if INTENDED.get(row) == c else s)
        lines.append(f"| {row} | {r['applied']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parser_accuracy(env_id: str, episodes: int = 6, steps: int = 120, seed: int = 0,
                    policy: str = "random") -> dict:
    """Median / p90 centroid error (px) on real frames over unoccluded objects, overall and per kind."""
    errs: dict[str, list] = {}
    missed = 0
    for i in range(episodes):
        ro = run(Episode(env_id, seed + i, policy=policy), steps)
        cat = Catalogue.from_rollout(ro)
        tr = track(ro.frames, cat, tolerance=0)
        ok = unoccluded(cat, ro.frames.shape[2], ro.frames.shape[1])
        e = np.linalg.norm(tr.pos - cat.true_pos, axis=-1)
        for j in range(len(cat.ids)):
            ej = e[ok[:, j], j]
            missed += int(np.isnan(ej).sum())
            errs.setdefault(envs.KINDS[cat.kind[j]], []).extend(ej[~np.isnan(ej)].tolist())
    allv = np.concatenate([np.asarray(v) for v in errs.values()]) if errs else np.zeros(0)

    def stats(v):
        return {"median": float(np.median(v)), "p90": float(np.percentile(v, 90)), "n": len(v)} if len(v) \
            else {"median": float("nan"), "p90": float("nan"), "n": 0}
    return {"all": stats(allv), "missed": missed, "kinds": {k: stats(np.asarray(v)) for k, v in errs.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="WorldGym/BouncingBalls-v0", help="scene id")
    p.add_argument("--all-scenes", action="store_true", help="every scene in envs.SCENE_IDS")
    p.add_argument("--episodes", type=int, default=8, help="episodes per row")
    p.add_argument("--horizon", type=int, default=32, help="future frames per rollout")
    p.add_argument("--seed", type=int, default=0, help="first episode seed")
    p.add_argument("--policy", default="random", help="random | heuristic | noop")
    p.add_argument("--parser", action="store_true", help="parser accuracy instead of the detection table")
    a = p.parse_args(argv)
    failed = 0
    for env_id in envs.SCENE_IDS if a.all_scenes else [a.env]:
        t0 = time.perf_counter()
        try:
            if a.parser:
                r = parser_accuracy(env_id, a.episodes, seed=a.seed, policy=a.policy)
                kinds = ", ".join(f"{k} {v['median']:.3f} (n={v['n']})" for k, v in r["kinds"].items())
                print(f"{env_id}: median {r['all']['median']:.3f} px, p90 {r['all']['p90']:.3f}, "
                      f"n={r['all']['n']}, missed {r['missed']} | {kinds} [{time.perf_counter() - t0:.1f}s]")
            else:
                print(f"## {env_id} ({a.episodes} episodes, horizon {a.horizon}, policy {a.policy})\n")
                table = detection_table(env_id, a.episodes, a.horizon, seed=a.seed, policy=a.policy,
                                        progress=True)
                print(format_table(table))
                print(f"\n({time.perf_counter() - t0:.0f} s)\n")
                tripped = [c for c, v in table["real"]["checks"].items() if v > 0]
                if tripped or table["real"]["failed"]:
                    print(f"{env_id}: FAILED: real rollouts trip {', '.join(tripped) or 'nothing'}; "
                          f"{table['real']['failed']} real episodes failed")
                    failed += 1
        except Exception as exc:  # one broken scene must not hide the others
            print(f"{env_id}: FAILED {type(exc).__name__}: {exc}")
            failed += 1
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
