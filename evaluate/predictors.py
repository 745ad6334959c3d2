"""Predictors: context frames + actions → future frames, the one interface dreams and baselines share.

    frames = predictor.predict(context_frames,   # (B, k, H, W, 3) uint8
                               context_actions,  # (B, k-1) actions between the context frames
                               future_actions,   # (B, T)   future_actions[:, j] produces future frame j
                               num_samples,      # S
                               episodes)         # B evaluate.rollouts.Episode, or None
    frames.shape == (B, S, T, H, W, 3), dtype uint8

``episodes`` says where each context came from (scene, seed, options, size); a learned model ignores
it, the built-in ``real`` predictors need it to rebuild the scene. Built in:

==================  ============================================================================
``real``            the scene itself, same seed and actions: the ceiling (exact)
``real-perturbed``  the same, with every dynamic body nudged 0.5 px in a random direction and its
                    velocity by 1% of its speed right after the last context frame, from a generator
                    seeded by (episode seed, sample): the physical-variance floor
``real-redrawn``    the same, with every dynamic body's velocity turned to a random direction (speed
                    kept) right after the last context frame: what one frame cannot tell, the
                    reference of the one-frame diversity test
``copy-last``       the last context frame, repeated: the floor every model must beat
``corrupt:NAME``    ``real`` with one of ``evaluate.corrupt.CORRUPTIONS`` applied (the self-test)
``checkpoint:PATH`` a trained world model run folder: ``worldmodel.load(PATH).generate(…)``;
``checkpoint:PATH@T`` samples at temperature T (default 1; 0 = argmax), ``checkpoint:PATH@T:SCHEDULE``
also with the MaskGIT commit schedule SCHEDULE (``cosine`` or ``adaptive``), ``…@T:N`` with N passes
per frame (both: ``@T:SCHEDULE:N``; default: the checkpoint's)
``tokenizer:PATH``  ``real`` passed through a run's tokenizer (encode, decode): the ceiling of any
                    dynamics on those codes, and the tokenizer's bar (objects found in reconstructions)
==================  ============================================================================

``register_predictor(name, factory)`` adds more; ``factory(arg)`` receives what follows ``name:``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from evaluate.rollouts import Episode, nudge, redraw_directions, run


@runtime_checkable
class Predictor(Protocol):
    name: str

    def predict(self, context_frames: np.ndarray, context_actions: np.ndarray, future_actions: np.ndarray,
                num_samples: int, episodes: Sequence[Episode] | None = None) -> np.ndarray: ...


class CopyLast:
    """Repeats the last context frame."""

    name = "copy-last"

    def predict(self, context_frames, context_actions, future_actions, num_samples, episodes=None):
        B, T = context_frames.shape[0], np.shape(future_actions)[1]
        last = context_frames[:, -1]  # (B, H, W, 3)
        return np.ascontiguousarray(np.broadcast_to(last[:, None, None],
                                                    (B, num_samples, T) + last.shape[1:]))


class Real:
    """Replays each episode with the context and future actions (deterministic: samples are equal)."""

    name = "real"
    deterministic = True

    def predict(self, context_frames, context_actions, future_actions, num_samples, episodes=None):
        if episodes is None or len(episodes) != len(context_frames):
            raise ValueError(f"{self.name!r} needs one Episode per batch row (the scene to replay)")
        out = []
        for ep, cf, ca, fa in zip(episodes, context_frames, context_actions, future_actions):
            if self.deterministic:  # one replay, repeated
                out.append(np.repeat(self.future(ep, cf, ca, fa, 0)[None], num_samples, axis=0))
            else:
                out.append(np.stack([self.future(ep, cf, ca, fa, s) for s in range(num_samples)]))
        return np.stack(out)  # (B, S, T, H, W, 3)

    def future(self, ep: Episode, context_frames, context_actions, future_actions, sample: int):
        """The real future frames (T, H, W, 3) of one episode and sample."""
        return self.rollout(ep, context_frames, context_actions, future_actions, sample).frames[
            len(context_frames):]

    def perturbation(self, ep: Episode, sample: int):
        return None

    def rollout(self, ep: Episode, context_frames, context_actions, future_actions, sample: int = 0):
        """The whole replayed rollout (frames 0 … k+T-1, with ground truth)."""
        k = len(context_frames)
        actions = np.concatenate([np.asarray(context_actions), np.asarray(future_actions)])
        ro = run(ep, len(actions), actions, self.perturbation(ep, sample), perturb_at=k - 1)
        if not np.array_equal(ro.frames[:k], context_frames):
            raise ValueError(f"{self.name}: replaying {ep} does not reproduce the context frames "
                             "(wrong scene, seed, options, size, start or actions)")
        return ro


class RealPerturbed(Real):
    """``real`` with the hidden state nudged right after the last context frame (see module doc)."""

    name = "real-perturbed"
    deterministic = False

    def __init__(self, position_px: float = 0.5, velocity_frac: float = 0.01):
        self.position_px, self.velocity_frac = position_px, velocity_frac

    def perturbation(self, ep: Episode, sample: int):
        rng = np.random.default_rng(np.random.SeedSequence([int(ep.seed), int(sample), 0x5EED]))
        return nudge(rng, self.position_px, self.velocity_frac)


class RealRedrawn(Real):
    """``real`` with the hidden velocities redrawn right after the last context frame (directions
    uniform, speeds kept; see ``rollouts.redraw_directions``): with one context frame, the spread a
    calibrated model should show."""

    name = "real-redrawn"
    deterministic = False

    def perturbation(self, ep: Episode, sample: int):
        rng = np.random.default_rng(np.random.SeedSequence([int(ep.seed), int(sample), 0xD1CE]))
        return redraw_directions(rng)


class WorldModelPredictor:
    """A ``worldmodel`` run as a predictor: ``model.generate(context, future actions, …).frames``.

    Samples are seeded by the episode seed, so a report is reproducible. The model's frame size must
    match the suite's (``--width/--height``); ``run_suite`` checks the returned shape.
    """

    def __init__(self, path: str, model, temperature: float = 1.0, schedule: str | None = None,
                 passes: int | None = None):
        self.name, self.model, self.temperature = f"checkpoint:{path}", model, temperature
        self.schedule, self.passes = schedule, passes

    def check_scene(self, env_id: str, width: int, height: int, action_space) -> None:
        """``ValueError`` unless this model dreams ``env_id`` at ``width``×``height`` with its actions:
        a dream of one scene scored against another says nothing, however good the numbers look."""
        from worldmodel.config import space_spec

        cfg = self.model.cfg
        if cfg.env_id and cfg.env_id != env_id:
            raise ValueError(f"{self.name} was trained on {cfg.env_id}, not {env_id} (evaluate it with "
                             f"--env {cfg.env_id})")
        _check_size(self.name, cfg.tokenizer, width, height)
        have = space_spec(action_space)
        if have != cfg.action_space:
            hint = ""
            trained_box = cfg.action_space["type"] == "box"
            if (have["type"] == "box") != trained_box:
                hint = f" (evaluate it {'with' if trained_box else 'without'} --continuous)"
            raise ValueError(f"{self.name} takes actions {cfg.action_space}, {env_id} has {have}{hint}")

    def predict(self, context_frames, context_actions, future_actions, num_samples, episodes=None):
        seed = int(episodes[0].seed) if episodes else 0
        ca = np.asarray(context_actions)
        extra = {} if self.schedule is None else {"schedule": self.schedule}
        if self.passes is not None:
            extra["maskgit_steps"] = self.passes
        out = self.model.generate(context_frames, np.asarray(future_actions),
                                  horizon=np.shape(future_actions)[1], num_samples=num_samples,
                                  temperature=self.temperature, seed=seed,
                                  context_actions=ca if ca.shape[1] else None, **extra)
        frames = out.frames
        frames = frames.cpu().numpy() if hasattr(frames, "cpu") else np.asarray(frames)
        return frames.astype(np.uint8)  # (B, S, T, H, W, 3)


class Reconstruction(Real):
    """``tokenizer:PATH``: the real future, encoded and decoded by a run's tokenizer (deterministic).
    Needs only the run's tokenizer stage; the suite's frame size must be the tokenizer's."""

    deterministic = True

    def __init__(self, path: str, model):
        self.name, self.model = f"tokenizer:{path}", model

    def check_scene(self, env_id: str, width: int, height: int, action_space) -> None:
        """Any scene may be reconstructed (a tokenizer's generality is a fair question), at its size."""
        _check_size(self.name, self.model.cfg.tokenizer, width, height)

    def future(self, ep: Episode, context_frames, context_actions, future_actions, sample: int):
        import torch

        real = super().future(ep, context_frames, context_actions, future_actions, sample)
        _check_size(self.name, self.model.cfg.tokenizer, real.shape[2], real.shape[1])
        tok = self.model.tokenizer
        with torch.no_grad():
            out = tok.decode(tok.encode(torch.from_numpy(real).to(self.model.device)))
        return out.cpu().numpy().astype(np.uint8)


def _check_size(name: str, tokenizer_cfg, width: int, height: int) -> None:
    if (tokenizer_cfg.width, tokenizer_cfg.height) != (width, height):
        raise ValueError(f"{name} makes {tokenizer_cfg.width}x{tokenizer_cfg.height} frames, the suite "
                         f"renders {width}x{height} (pass --width {tokenizer_cfg.width} --height "
                         f"{tokenizer_cfg.height})")


def _torch_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def _tokenizer(path: str) -> Predictor:
    import worldmodel

    return Reconstruction(path, worldmodel.load(path, device=_torch_device(), require_dynamics=False))


def _checkpoint(arg: str) -> Predictor:
    """``checkpoint:PATH`` samples at temperature 1; ``checkpoint:PATH@T`` at temperature T (0 = argmax);
    after T, ``:SCHEDULE`` (``cosine``, ``adaptive``) and ``:N`` (MaskGIT passes per frame), in either
    order, e.g. ``checkpoint:runs/bb@1:adaptive:4``; the checkpoint's own settings otherwise."""
    path, temperature, schedule, passes = arg, 1.0, None, None
    if "@" in arg:
        path, _, spec = arg.rpartition("@")
        t, *options = spec.split(":")
        try:
            temperature = float(t)
        except ValueError:
            raise ValueError(f"checkpoint:{arg}: the temperature after '@' must be a number, "
                             f"got {t!r}") from None
        if not (math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"checkpoint:{arg}: the temperature must be a finite number >= 0")
        for option in filter(None, options):
            if option.isdigit():
                passes = int(option)
            else:
                schedule = option
    try:
        import worldmodel
    except ImportError as e:
        raise RuntimeError(f"checkpoint:{path} needs the world model package `worldmodel`, which is not "
                           "available yet (until it lands, evaluate real, real-perturbed, copy-last "
                           "or corrupt:NAME)") from e
    if hasattr(worldmodel, "load_predictor"):  # a model that brings its own adapter
        return worldmodel.load_predictor(path)
    if not hasattr(worldmodel, "load"):
        raise RuntimeError("worldmodel has neither load_predictor(path) nor load(path) yet")
    model = worldmodel.load(path, device=_torch_device())
    try:
        if schedule is not None:
            model.dynamics.check_schedule(schedule)
        if passes is not None:
            model.dynamics.check_steps(passes)
    except ValueError as e:
        raise ValueError(f"checkpoint:{arg}: {e}") from None
    pred = WorldModelPredictor(path, model, temperature, schedule, passes)
    pred.name = f"checkpoint:{arg}"
    return pred


def _corrupt(name: str) -> Predictor:
    from evaluate.corrupt import CorruptedPredictor

    return CorruptedPredictor(name)


_FACTORIES: dict[str, Callable[[str], Predictor]] = {
    "real": lambda arg: Real(),
    "real-perturbed": lambda arg: RealPerturbed(),
    "real-redrawn": lambda arg: RealRedrawn(),
    "copy-last": lambda arg: CopyLast(),
    "checkpoint": _checkpoint,
    "tokenizer": _tokenizer,
    "corrupt": _corrupt,
}
#: The rows every report carries beside the predictors asked for: ceiling, variance floor, floor.
REFERENCE_ROWS = ("real", "real-perturbed", "copy-last")


def register_predictor(name: str, factory: Callable[[str], Predictor]) -> None:
    """Makes ``make_predictor("name")`` / ``make_predictor("name:ARG")`` call ``factory(ARG)``."""
    _FACTORIES[name] = factory


def make_predictor(spec: str | Predictor) -> Predictor:
    """A predictor from its spec string (``copy-last``, ``checkpoint:runs/bb``, …); objects pass through."""
    if not isinstance(spec, str):
        return spec
    name, _, arg = spec.partition(":")
    if name not in _FACTORIES:
        raise ValueError(f"unknown predictor {spec!r}; choose from {sorted(_FACTORIES)} "
                         "(checkpoint:PATH, tokenizer:PATH, corrupt:NAME take an argument)")
    if name in ("checkpoint", "tokenizer", "corrupt") and not arg:
        raise ValueError(f"predictor {name!r} needs an argument: {name}:...")
    return _FACTORIES[name](arg)
