"""``run_suite``: paired real rollouts → a predictor's dreams → every metric, in one ``EvalResult``.

Per episode (seed ``seed + i``): play the real scene for k + T - 1 steps with the policy; give the
predictor the k context frames, their k-1 actions and the T future actions; parse the real window
(last context frame + T future frames) and every dream sample with the same parser; score fidelity,
persistence and physics per sample. Then, per episode: the same context with random future actions
(ΔtPSNR), opposite constant actions in dream and real (counterfactual direction), and — with ≥ 2
samples — one context frame, dream samples against ``real-redrawn`` samples (diversity: the real
scene from that frame with the velocities it cannot show redrawn).
A failing episode is kept in the result with its error; the aggregates use the others.
"""
from __future__ import annotations

import copy
import math
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from evaluate.metrics import (
    control,
    diversity,
    fidelity,
    nanmean,
    nanmean_axis,
    persistence,
    physics,
    present,
    reference_area,
)
from evaluate.metrics.coherence import ABNORMAL, coherence, flags, rates
from evaluate.parser import DEFAULT_TOLERANCE, Catalogue, track, unoccluded
from evaluate.predictors import Predictor, RealRedrawn, make_predictor
from evaluate.rollouts import POLICIES, Episode, make_scene, run

REPORT_TIMES = (1, 8, 16, 32, 64)
CURVES = ("psnr", "ssim", "pos_err", "persistence")


@dataclass
class EvalResult:
    """Everything one (scene, predictor) evaluation measured; ``to_json()`` is the report's row."""

    env_id: str
    predictor: str
    config: dict
    summary: dict  # metric → value over all episodes (see evaluate/schema.py for the names)
    curves: dict  # name → per-future-step values (length T)
    checks: dict  # check → fraction of rollouts it flags
    floors: dict  # what the parser/detectors get wrong on real frames (same for every predictor)
    episodes: list  # per episode: seed, error or per-episode metrics
    wall_time_s: float
    example: dict | None = field(default=None, repr=False, compare=False)  # frames for the videos

    @property
    def failed(self) -> int:
        return sum(1 for e in self.episodes if e.get("error"))

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("example")
        return _clean(d)


def _clean(x):
    """JSON-ready: numpy scalars to Python, NaN/inf to None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    return x


class Reference:
    """The real side of one window, parsed once; ``score(future)`` measures a dream against it."""

    def __init__(self, window, tolerance: int = DEFAULT_TOLERANCE):
        self.win, self.tolerance = window, tolerance
        self.cat = Catalogue.from_rollout(window)
        self.real = track(window.frames, self.cat, tolerance)
        self.a_ref = reference_area(self.real.area, self.cat.unique)
        self.pr = present(self.real.area, self.a_ref)
        self.height, self.width = window.frames.shape[1:3]
        self.static = np.all(window.frames == window.colors["static"], axis=-1).any(axis=0)
        self.clear = unoccluded(self.cat, self.width, self.height) & self.pr
        self.segs = physics.free_flight(self.cat, self.clear, window.touching, window.contacts,
                                        window.dynamic)
        self.events = physics.collision_events(self.real.pos, self.pr, self.cat.controlled,
                                               window.gravity)

    def parse(self, future: np.ndarray):
        return track(np.concatenate([self.win.frames[:1], future]), self.cat, self.tolerance)

    def final(self, tracks, ids=None) -> np.ndarray:
        """(N, 2) parsed last-frame positions (NaN where absent), optionally for the given ids."""
        pres = present(tracks.area, self.a_ref)[-1]
        out = np.where(pres[:, None], tracks.pos[-1], np.nan)
        if ids is None:
            return out
        index = {rid: i for i, rid in enumerate(self.cat.ids.tolist())}
        return np.array([out[index[r]] if r in index else (np.nan, np.nan) for r in ids]).reshape(-1, 2)

    def score(self, future: np.ndarray) -> tuple[dict, dict, list]:
        """→ (scalar metrics, curves, outcome pairs) of one dream sample (T, H, W, 3)."""
        cat, real, pr, w = self.cat, self.real, self.pr, self.win
        dream = self.parse(future)
        pd = present(dream.area, self.a_ref)
        rp, dp = real.pos, dream.pos
        m: dict = {}
        mse, ssim = fidelity.mse(w.frames[1:], future), fidelity.ssim(w.frames[1:], future)
        m["background"] = fidelity.background_instability(w.frames, np.concatenate([w.frames[:1], future]),
                                                          w.colors["background"], dream.labels)
        m["persistence"] = persistence.persistence_rate(pr, pd)
        u = cat.unique  # identity-based metrics: uniquely coloured objects only
        m["flicker"] = persistence.flicker(pr[:, u], pd[:, u])
        m["count_acc"] = persistence.count_accuracy(pr, pd)
        m["spurious"] = persistence.spurious_blobs(real.blobs, dream.blobs)
        m["size_constancy"], m["size_excess"] = persistence.size_constancy(
            real.radius[:, u], dream.radius[:, u], pr[:, u], pd[:, u])
        m["teleports"], m["teleport_rate"] = persistence.teleports(rp[:, u], dp[:, u], pr[:, u], pd[:, u],
                                                                   cat.radius[u])
        m["identity_err"] = persistence.identity_errors(rp, dp, pr, dream.area, cat.unique)
        pos_curve, m["pos_err"], exceeds = physics.position_error(rp, dp, pr, pd, cat.radius)
        m["pos_err_frac"] = m["pos_err"] / self.width
        m["within_1px"] = physics.within(rp, dp, pr, pd, 1.0)
        m["final_err_exceeds"] = float(exceeds)
        m["vel_err"], m["vel_rel_max"] = physics.velocity_error(rp, dp, pr, pd)
        m["speed_gain"] = physics.speed_gain(rp, dp, pr, pd, self.segs)
        m["angle_err"] = physics.orientation_error(real.angle, dream.angle, real.elongation, pr, pd)
        m["gravity_err"], m["gravity_err_true"], m["gravity_abs_err"] = physics.gravity_errors(
            rp, dp, self.segs, w.gravity)
        events = physics.collision_events(dp, pd, cat.controlled, w.gravity)
        m.update({f"coll_{k}": v for k, v in physics.match_events(self.events, events).items()})
        m["interpenetration"] = physics.interpenetration(rp, dp, pr, pd, self.a_ref, cat.radius, u,
                                                         self.static)
        curves = {"mse": mse, "ssim": ssim, "pos_err": pos_curve,
                  "persistence": persistence.persistence_curve(pr, pd)}
        return m, curves, physics.outcomes(pr, pd)

    def floors(self) -> dict:
        """Parser and detector errors on the real window itself (against the ground truth)."""
        err = np.linalg.norm(self.real.pos - self.cat.true_pos, axis=-1)[self.clear]
        truth = physics.contact_events(self.cat, self.win.contacts, self.pr)
        counts = physics.match_events(truth, self.events)
        g = self.win.gravity
        gr = physics.fit_gravity(self.real.pos, self.segs)
        gr = gr[~np.isnan(gr)]
        fit = float(np.abs(gr - g).mean() / abs(g)) if len(gr) and abs(g) > 1e-9 else float("nan")
        return {"parser_errors": err[~np.isnan(err)].tolist(), "parser_missed": int(np.isnan(err).sum()),
                "detector": counts, "gravity_fit": fit, "segments": len(self.segs)}


@dataclass
class _Config:
    env_id: str
    episodes: int
    horizon: int
    context: int
    samples: int
    policy: str
    seed: int
    options: dict | None
    width: int
    height: int
    start: int
    tolerance: int
    controllability: bool
    diversity: bool
    continuous: bool = False


def _predict(pred: Predictor, cf, ca, fa, samples: int, ep: Episode) -> np.ndarray:
    out = np.asarray(pred.predict(cf, ca, fa, samples, [ep]))
    want = (1, samples, fa.shape[1]) + cf.shape[2:]
    if out.shape != want or out.dtype != np.uint8:
        raise ValueError(f"predictor {pred.name!r} returned {out.dtype} {out.shape}, expected uint8 {want}")
    return out[0]


def _episode(pred: Predictor, ep: Episode, cfg: _Config, action_space, names) -> dict:
    k, T, S = cfg.context, cfg.horizon, cfg.samples
    real = run(ep, k + T - 1)
    ref = Reference(real.window(k - 1, k + T), cfg.tolerance)
    cf, ca = real.frames[None, :k], real.actions[None, :k - 1]
    dream = _predict(pred, cf, ca, real.actions[None, k - 1:], S, ep)
    scored = [ref.score(dream[s]) for s in range(S)]
    out = {"seed": ep.seed, "error": None, "terminated_at": real.terminated_at,
           "samples": [m for m, _, _ in scored], "curves": [c for _, c, _ in scored],
           "outcomes": [o for _, _, o in scored], "floors": ref.floors(), "episode": {},
           "example": {"context": real.frames[k - 1], "real": real.frames[k:], "dream": dream[0]}}
    e = out["episode"]
    if cfg.controllability:
        space = copy.deepcopy(action_space)
        space.seed(int(np.random.SeedSequence([int(ep.seed), 1]).generate_state(1)[0]))
        rand = np.stack([space.sample() for _ in range(T)])[None]
        dream_rand = _predict(pred, cf, ca, rand, S, ep)
        out["mse_true"] = np.stack([c["mse"] for _, c, _ in scored])  # (S, T)
        out["mse_random"] = np.stack([fidelity.mse(real.frames[k:], d) for d in dream_rand])
        e.update(control.delta_psnr(out["mse_true"], out["mse_random"]))
        pair = (control.opposite_box_actions(action_space) if names is None  # Box actions: no names
                else control.opposite_actions(names))
        if pair is not None:
            ids = ref.cat.ids[ref.cat.controlled & ref.pr[0]].tolist()
            finals = {}
            for key, a in zip("ab", pair):
                acts = np.repeat(np.asarray(a, real.actions.dtype)[None], T, axis=0)  # (T[, k])
                ro = run(ep, k + T - 1, np.concatenate([real.actions[:k - 1], acts]))
                ref_a = Reference(ro.window(k - 1, k + T), cfg.tolerance)
                d = _predict(pred, cf, ca, acts[None], 1, ep)[0]
                finals[key] = (ref_a.final(ref_a.real, ids), ref_a.final(ref_a.parse(d), ids))
            cos, gain = control.counterfactual(finals["a"][0], finals["b"][0], finals["a"][1], finals["b"][1])
            e["cf_cos"], e["cf_gain"] = cos, gain
            e["cf_fail"] = float("nan") if math.isnan(cos) else float(cos < 0.5 or not 0.5 <= gain <= 2.0)
    if cfg.diversity and S >= 2:
        ref1 = Reference(real.window(0, T + 1), cfg.tolerance)
        cf1, ca1, fa1 = real.frames[None, :1], real.actions[None, :0], real.actions[None, :T]
        d1 = _predict(pred, cf1, ca1, fa1, S, ep)
        p1 = d1 if isinstance(pred, RealRedrawn) else RealRedrawn().predict(cf1, ca1, fa1, S, [ep])[0]
        keep = ref1.pr[0]  # the objects of the context frame: their velocities are what one frame hides
        fd = np.stack([ref1.final(ref1.parse(x)) for x in d1])
        fp = np.stack([ref1.final(ref1.parse(x)) for x in p1])
        e["div_spread"], e["div_spread_real"] = diversity.spread(fd, keep), diversity.spread(fp, keep)
        e["div_ratio"] = diversity.ratio(e["div_spread"], e["div_spread_real"])
        if not math.isnan(e["div_ratio"]):
            e["div_collapse"] = float(e["div_ratio"] < diversity.COLLAPSE)
            e["div_overdispersed"] = float(e["div_ratio"] > diversity.OVERDISPERSED)
        e["div_dissimilarity"] = diversity.pairwise_dissimilarity(d1[:, -1])
        e["div_best_over_mean"] = diversity.best_over_mean(fd, ref1.final(ref1.real), keep)
    return out


def _aggregate(results: list[dict], T: int) -> tuple[dict, dict, dict, dict]:
    ok = [r for r in results if not r["error"]]
    samples = [m for r in ok for m in r["samples"]]
    summary: dict = {}
    if samples:
        for key in samples[0]:
            if not key.startswith("coll_"):
                summary[key] = nanmean([m[key] for m in samples])
        tot = {k: sum(m[f"coll_{k}"] for m in samples) for k in ("tp_dream", "n_dream", "tp_real", "n_real")}
        summary["collision_precision"] = tot["tp_dream"] / tot["n_dream"] if tot["n_dream"] else math.nan
        summary["collision_recall"] = tot["tp_real"] / tot["n_real"] if tot["n_real"] else math.nan
    curves = {}
    for name in ("mse", *CURVES[1:]):
        stack = np.array([c[name] for r in ok for c in r["curves"]], np.float64).reshape(-1, T)
        curves[name] = nanmean_axis(stack, axis=0).tolist() if len(stack) else []
    mse = curves.pop("mse")
    curves["psnr"] = fidelity.psnr_from_mse(mse).tolist() if mse else []
    for name in ("psnr", "ssim", "pos_err", "persistence"):
        for t in REPORT_TIMES:
            if t <= T and curves[name]:
                summary[f"{name}@{t}"] = curves[name][t - 1]
    pairs = [p for r in ok for o in r["outcomes"] for p in o]
    summary["outcome_acc"], summary["outcome_kappa"] = physics.cohen_kappa(pairs)
    ep_keys = sorted({k for r in ok for k in r["episode"]})
    for key in ep_keys:
        summary[key] = nanmean([r["episode"].get(key, math.nan) for r in ok])
    scored = [r["episode"] for r in ok if not math.isnan(r["episode"].get("div_ratio", math.nan))]
    if scored:  # pooled, like ΔtPSNR: see diversity.pooled_ratio
        summary["div_ratio"] = diversity.pooled_ratio([e["div_spread"] for e in scored],
                                                      [e["div_spread_real"] for e in scored])
    with_control = [r for r in ok if "mse_random" in r]
    if with_control:  # ΔtPSNR from the MSE pooled over every rollout, like the PSNR curve
        summary.update(control.delta_psnr(np.concatenate([r["mse_true"] for r in with_control]),
                                          np.concatenate([r["mse_random"] for r in with_control])))
    merged = [{**m, **r["episode"]} for r in ok for m in r["samples"]]
    flagged = [flags(m) for m in merged]
    checks = rates(merged, flagged)
    summary["coherence"] = coherence([f["abnormal"] for f in flagged])
    errs = [x for r in ok for x in r["floors"]["parser_errors"]]
    det = {k: sum(r["floors"]["detector"][k] for r in ok)
           for k in ("tp_dream", "n_dream", "tp_real", "n_real")}

    def ratio(a, b):
        return det[a] / det[b] if det[b] else math.nan

    floors = {"parser_err_median_px": float(np.median(errs)) if errs else math.nan,
              "parser_err_p90_px": float(np.percentile(errs, 90)) if errs else math.nan,
              "parser_object_frames": len(errs),
              "parser_missed_object_frames": sum(r["floors"]["parser_missed"] for r in ok),
              "collision_detector_precision": ratio("tp_dream", "n_dream"),
              "collision_detector_recall": ratio("tp_real", "n_real"),
              "gravity_fit_floor": nanmean([r["floors"]["gravity_fit"] for r in ok]),
              "free_flight_segments": sum(r["floors"]["segments"] for r in ok)}
    return summary, curves, checks, floors


def check_settings(episodes: int, horizon: int, context: int, samples: int, policy: str,
                   tolerance: int = DEFAULT_TOLERANCE, start: int = 0) -> None:
    """``ValueError`` naming what is wrong with a suite's settings. A negative tolerance matches no
    colour (every object metric NaN, coherence a perfect 1.00); a negative start is meaningless."""
    if context < 1 or horizon < 2 or samples < 1 or episodes < 1:
        raise ValueError(f"need context >= 1, horizon >= 2, samples >= 1, episodes >= 1; got context "
                         f"{context}, horizon {horizon}, samples {samples}, episodes {episodes}")
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose from {POLICIES}")
    if tolerance < 0:
        raise ValueError(f"--tolerance must be >= 0 (a max-channel colour distance), got {tolerance}")
    if start < 0:
        raise ValueError(f"--start must be >= 0 (policy steps before the context), got {start}")


def check_scene(env_id: str, pred: Predictor, width: int, height: int, options: dict | None,
                continuous: bool = False):
    """The scene, made and reset with ``options`` (a bad option fails here, once, not in every
    episode), after checking that ``pred`` can dream it (``check_scene``: its scene, size, actions).
    ``ValueError`` otherwise."""
    try:
        scene = make_scene(Episode(env_id, 0, options, width, height, "noop", 0, continuous))
        scene.reset(seed=0, options=options)
    except (gym.error.Error, TypeError, ValueError) as e:
        raise ValueError(f"{env_id}: {e}") from None
    check = getattr(pred, "check_scene", None)
    if check is not None:
        check(env_id, width, height, scene.action_space)
    return scene


def run_suite(env_id: str, predictor: str | Predictor, episodes: int = 32, horizon: int = 32,
              context: int = 4, samples: int = 4, policy: str = "random", seed: int = 0,
              options: dict | None = None, *, width: int = 64, height: int = 64, start: int = 0,
              tolerance: int = DEFAULT_TOLERANCE, controllability: bool = True, diversity: bool = True,
              progress: bool = True, continuous: bool = False) -> EvalResult:
    """Evaluates ``predictor`` on ``episodes`` real episodes of ``env_id`` (seeds ``seed …``).

    ``context`` real frames (≥ 1) start each dream of ``horizon`` frames, ``samples`` dreams each;
    ``policy`` (random | heuristic | noop) picks the real actions; ``options`` go to ``reset`` (OOD);
    ``continuous``: the scene's Box actions (``gym.make(..., continuous=True)``) instead of Discrete.
    """
    check_settings(episodes, horizon, context, samples, policy, tolerance, start)
    pred = make_predictor(predictor)
    cfg = _Config(env_id, episodes, horizon, context, samples, policy, seed, options, width, height, start,
                  tolerance, controllability, diversity and samples >= 2,  # as run: it needs 2 samples
                  continuous)
    t0 = time.perf_counter()
    scene = check_scene(env_id, pred, width, height, options, continuous)
    action_space = scene.action_space
    names = scene.ACTIONS if not getattr(scene, "continuous", False) else None
    results = []
    bar = tqdm(range(episodes), desc=f"{env_id.split('/')[-1]} {pred.name}", disable=not progress,
               file=sys.stderr, leave=False)
    for i in bar:
        ep = Episode(env_id, seed + i, options, width, height, policy, start, continuous)
        try:
            results.append(_episode(pred, ep, cfg, action_space, names))
        except Exception as exc:  # a failed episode is reported, not hidden
            results.append({"seed": ep.seed, "error": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc(limit=4)})
    summary, curves, checks, floors = _aggregate(results, horizon)
    summary["episodes_ok"] = sum(1 for r in results if not r["error"])
    summary["episodes_failed"] = len(results) - summary["episodes_ok"]
    example = next((r["example"] for r in results if not r["error"]), None)
    per_episode = [_episode_json(r) for r in results]
    return EvalResult(env_id, pred.name, asdict(cfg), summary, curves, checks, floors, per_episode,
                      time.perf_counter() - t0, example)


def _episode_json(r: dict) -> dict:
    if r["error"]:
        return {"seed": r["seed"], "error": r["error"], "traceback": r.get("traceback")}
    metrics = {k: nanmean([m[k] for m in r["samples"]]) for k in r["samples"][0]}
    merged = [{**m, **r["episode"]} for m in r["samples"]]
    return {"seed": r["seed"], "error": None, "terminated_at": r["terminated_at"],
            "metrics": {**metrics, **r["episode"]}, "flags": rates(merged, [flags(m) for m in merged])}


__all__ = ["run_suite", "EvalResult", "Reference", "ABNORMAL"]
