"""Action policies for collection, chosen by a spec string: ``make_policy(spec, env)``.

=================  =============================================================================
``random``         uniform samples from the action space
``heuristic``      the scene's scripted ``env.unwrapped.heuristic()`` (reads the true state)
``noisy:EPS``      the heuristic, but a uniform random action with probability ``EPS`` in [0, 1]
``sb3:PATH.zip``   a saved Stable-Baselines3 model, ``predict(obs, deterministic=True)``
=================  =============================================================================

Every policy draws its randomness from ``reset(seed)`` only, and the collector derives that seed from
(dataset seed, episode index), so an episode's actions are regenerable exactly. Loading an SB3 zip
unpickles parts of it (SB3's own format): only load models you trust.
"""
from __future__ import annotations

import copy
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

POLICIES = ("random", "heuristic", "noisy:EPS", "sb3:PATH.zip")


class Policy:
    """Maps an observation to an action. ``spec`` is the string it was made from."""

    spec: str = ""

    def reset(self, seed: int) -> None:
        """Start of an episode: reseed every source of randomness from ``seed``."""

    def __call__(self, obs):
        raise NotImplementedError

    def identity(self) -> dict:
        """What makes two policies the same, for the metadata's settings check."""
        return {"policy": self.spec}


class RandomPolicy(Policy):
    def __init__(self, env):
        self.spec = "random"
        self.space = copy.deepcopy(env.action_space)

    def reset(self, seed: int) -> None:
        self.space.seed(int(seed))

    def __call__(self, obs):
        return self.space.sample()


class HeuristicPolicy(Policy):
    def __init__(self, env):
        self.spec = "heuristic"
        self.scene = env.unwrapped
        if not callable(getattr(self.scene, "heuristic", None)):
            raise ValueError(f"{type(self.scene).__name__} has no heuristic() for policy 'heuristic'")

    def __call__(self, obs):
        return self.scene.heuristic()


class NoisyPolicy(Policy):
    """The heuristic with probability ``1 - eps``, otherwise a uniform random action."""

    def __init__(self, env, eps: float):
        self.spec = f"noisy:{eps:g}"
        self.eps = eps
        self.heuristic = HeuristicPolicy(env)
        self.random = RandomPolicy(env)
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.random.reset(int(self.rng.integers(2**63)))

    def __call__(self, obs):
        # the heuristic is always evaluated so its cost and any internal state do not depend on the dice
        action = self.heuristic(obs)
        return self.random(obs) if self.rng.random() < self.eps else action


class SB3Policy(Policy):
    def __init__(self, env, path: str):
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"policy 'sb3:{path}': no such file")
        self.spec = f"sb3:{path}"
        self.sha256 = hashlib.sha256(p.read_bytes()).hexdigest()
        self.model = _sb3_class(p).load(str(p), device="cpu")
        self.discrete = hasattr(env.action_space, "n")

    def __call__(self, obs):
        action, _ = self.model.predict(obs, deterministic=True)
        return int(np.asarray(action).reshape(())) if self.discrete else np.asarray(action)

    def identity(self) -> dict:
        return {"policy": self.spec, "policy_sha256": self.sha256}


def _sb3_class(path: Path):
    """The SB3 algorithm that saved ``path``, read from the zip's JSON ``data`` (its policy module)."""
    import stable_baselines3 as sb3

    try:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
        module = data["policy_class"]["__module__"]
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise ValueError(f"policy 'sb3:{path}': not a Stable-Baselines3 model zip ({e})") from None
    for name in ("dqn", "sac", "td3", "ddpg", "a2c"):
        if f".{name}." in module:
            return getattr(sb3, name.upper())
    return sb3.PPO  # ActorCriticPolicy (PPO and A2C share it; predict is the same)


def make_policy(spec: str, env) -> Policy:
    """A policy for ``env`` from a spec string (see the module docstring); ``ValueError`` if unknown."""
    name, _, arg = str(spec).partition(":")
    if name == "random" and not arg:
        return RandomPolicy(env)
    if name == "heuristic" and not arg:
        return HeuristicPolicy(env)
    if name == "noisy":
        try:
            eps = float(arg)
        except ValueError:
            eps = -1.0
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"policy {spec!r}: EPS must be a number in [0, 1], e.g. noisy:0.2")
        return NoisyPolicy(env, eps)
    if name == "sb3" and arg:
        return SB3Policy(env, arg)
    raise ValueError(f"unknown policy {spec!r}; policies: {', '.join(POLICIES)}")
