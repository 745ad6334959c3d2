"""Paired real rollouts: an episode (scene, seed, options, size) played or replayed step by step.

Time convention, used everywhere in ``evaluate``: ``frames[0]`` is the reset frame and ``actions[t]``
takes ``frames[t]`` to ``frames[t + 1]``. A suite window of ``k`` context frames and horizon ``T``:

    frames   0 … k-1 | k … k+T-1        (context | future)
    actions  0 … k-2 | k-1 … k+T-2      (context_actions: k-1 of them | future_actions: T)

so ``future_actions[j]`` produces future frame ``j``. Rollouts step ``env.unwrapped`` past termination
(the physics goes on; the first termination step is kept in ``terminated_at``), so every window has
its full length.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pymunk  # noqa: E402

import envs  # noqa: E402,F401  (registers WorldGym/*)

POLICIES = ("random", "heuristic", "noop")


@dataclass(frozen=True)
class Episode:
    """Where a rollout comes from: all a predictor may know besides the frames and actions.

    Model predictors ignore it; the real predictors rebuild the scene from it (same seed and options,
    so the same hidden state). ``start`` policy steps are played before the context window begins.
    """

    env_id: str
    seed: int
    options: dict | None = None
    width: int = 64
    height: int = 64
    policy: str = "random"
    start: int = 0
    continuous: bool = False  # the scene's Box(-1, 1) actions (gym.make(..., continuous=True))


@dataclass
class Rollout:
    """One real episode: frames, actions and ground truth per frame (see the module docstring)."""

    frames: np.ndarray  # (n+1, H, W, 3) uint8
    actions: np.ndarray  # (n,) or (n, D)
    states: list  # n+1 ObjectState (info["state"])
    contacts: list  # n+1 (K, 2) int64: id pairs that began touching during the step into frame t
    touching: list  # n+1 frozenset of ids in contact with anything at frame t (pymunk arbiters)
    dynamic: list  # n+1 frozenset of ids whose body is DYNAMIC at frame t (not kinematic or held)
    colors: dict  # "background", "static", "zone": (3,) uint8 palette colours of the episode
    gravity: float  # scene gravity along +y, pixels / step²
    terminated_at: int | None = None

    def window(self, start: int, stop: int) -> Rollout:
        """Frames/states ``start … stop-1`` with the actions between them."""
        end = None if self.terminated_at is None else self.terminated_at - start
        return Rollout(self.frames[start:stop], self.actions[start:stop - 1], self.states[start:stop],
                       self.contacts[start:stop], self.touching[start:stop], self.dynamic[start:stop],
                       self.colors, self.gravity, end)


def make_scene(ep: Episode):
    """The unwrapped scene for an episode (no TimeLimit/order wrappers: rollouts step past the end)."""
    mode = {"continuous": True} if ep.continuous else {}
    return gym.make(ep.env_id, render_mode="rgb_array", width=ep.width, height=ep.height, **mode).unwrapped


def make_policy(name: str, scene, seed: int) -> Callable:
    """``random`` (action space seeded from ``seed``), ``heuristic`` (the scene's script), ``noop``."""
    if name == "random":
        space = copy.deepcopy(scene.action_space)
        space.seed(int(seed))
        return lambda: space.sample()
    if name == "heuristic":
        return scene.heuristic
    if name == "noop":
        zero = np.zeros(scene.action_space.shape, np.float32) if scene.continuous else 0
        return lambda: zero
    raise ValueError(f"unknown policy {name!r}; choose from {POLICIES}")


def _bodies(scene) -> tuple[frozenset, frozenset]:
    """Ids of the things touching anything (live arbiters) and of those with a dynamic body."""
    touching, dynamic = set(), set()
    for thing in scene.things:
        hit = []
        thing.body.each_arbiter(hit.append)
        if hit:
            touching.add(thing.id)
        if thing.body.body_type == pymunk.Body.DYNAMIC:
            dynamic.add(thing.id)
    return frozenset(touching), frozenset(dynamic)


def run(ep: Episode, steps: int, actions=None, perturb: Callable | None = None, perturb_at: int = -1,
        ) -> Rollout:
    """Plays ``ep.start`` policy steps, then ``steps`` more: ``actions`` if given, else the policy's.

    Frame 0 of the rollout is the frame after the ``ep.start`` steps. ``perturb(scene)`` is called
    once, right after frame ``perturb_at`` is produced (``real-perturbed``).
    """
    scene = make_scene(ep)
    obs, info = scene.reset(seed=int(ep.seed), options=ep.options)
    policy = make_policy(ep.policy, scene, ep.seed)
    for _ in range(ep.start):
        obs, _, _, _, info = scene.step(policy())
    rec = {"frames": [obs], "states": [info["state"]], "contacts": [np.asarray(info["contacts"])],
           "touching": [], "dynamic": [], "actions": []}

    def record_bodies():
        touching, dynamic = _bodies(scene)
        rec["touching"].append(touching)
        rec["dynamic"].append(dynamic)

    record_bodies()
    terminated_at = None
    if perturb_at == 0 and perturb is not None:
        perturb(scene)
    for t in range(steps):
        a = actions[t] if actions is not None else policy()
        obs, _, terminated, _, info = scene.step(a)
        if terminated and terminated_at is None:
            terminated_at = t + 1
        rec["frames"].append(obs)
        rec["states"].append(info["state"])
        rec["contacts"].append(np.asarray(info["contacts"]))
        rec["actions"].append(a)
        record_bodies()
        if t + 1 == perturb_at and perturb is not None:
            perturb(scene)
    pal = scene.palette
    colors = {k: np.array(getattr(pal, k), np.uint8) for k in ("background", "static", "zone")}
    gravity = float(scene.space.gravity.y) * scene.scale * scene.DT ** 2
    act = np.asarray(rec["actions"]) if rec["actions"] else np.zeros((0,) + scene.action_space.shape)
    scene.close()
    return Rollout(np.stack(rec["frames"]), act, rec["states"], rec["contacts"], rec["touching"],
                   rec["dynamic"], colors, gravity, terminated_at)


def _dynamic_bodies(scene):
    return [t.body for t in scene.things if t.body.body_type == pymunk.Body.DYNAMIC]


def nudge(rng: np.random.Generator, position_px: float = 0.5, velocity_frac: float = 0.01) -> Callable:
    """A perturbation: every dynamic body moves ``position_px`` pixels in a random direction and its
    velocity changes by ``velocity_frac`` of its speed in a random direction (draws from ``rng``)."""
    def apply(scene) -> None:
        step = position_px / scene.scale  # world units
        for body in _dynamic_bodies(scene):
            a, b = rng.uniform(0, 2 * np.pi, size=2)
            body.position += (step * np.cos(a), step * np.sin(a))
            speed = body.velocity.length
            body.velocity += (velocity_frac * speed * np.cos(b), velocity_frac * speed * np.sin(b))
    return apply


def redraw_directions(rng: np.random.Generator) -> Callable:
    """A perturbation for one-frame contexts: every dynamic body keeps its speed but heads in a new,
    uniformly random direction (draws from ``rng``). One frame shows where things are, not where they
    are going: these rollouts are the spread that a calibrated model should reach from one frame
    (the hidden velocities redrawn, as in evaluation-notes.md; speeds are kept as the scene's scale)."""
    def apply(scene) -> None:
        for body in _dynamic_bodies(scene):
            a = rng.uniform(0, 2 * np.pi)
            speed = body.velocity.length
            body.velocity = (speed * np.cos(a), speed * np.sin(a))
    return apply
