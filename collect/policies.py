"""Action policies for collection, chosen by a spec string: ``make_policy(spec, env)``.

=================  =============================================================================
``random``         uniform samples from the action space
``heuristic``      the scene's scripted ``env.unwrapped.heuristic()`` (reads the true state)
``noisy:EPS``      the heuristic, but a uniform random action with probability ``EPS`` in [0, 1]
``sb3:PATH.zip``   a saved Stable-Baselines3 model, ``predict(obs, deterministic=True)``
=================  =============================================================================

Every policy draws its randomness from ``reset(seed)`` only, and the collector derives that seed from
(dataset seed, episode index), so an episode's actions are regenerable exactly. An SB3 zip is
loaded without unpickling anything: the fields SB3 stores with cloudpickle (classes, spaces,
schedules) are rebuilt from their plain JSON descriptions and passed as ``custom_objects``; the
weights are read by SB3 with ``torch.load(weights_only=True)``.
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
        short = f"{eps:g}"  # "noisy:0.2", as always; exact where 6 digits would merge two rates
        self.spec = f"noisy:{short if float(short) == eps else repr(float(eps))}"
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
        cls, data = _sb3_class(p)
        self.model = cls.load(str(p), device="cpu", custom_objects=_without_pickle(data, path))
        _check_fits(self.model, env, p)
        self.discrete = hasattr(env.action_space, "n")

    def __call__(self, obs):
        action, _ = self.model.predict(obs, deterministic=True)
        return int(np.asarray(action).reshape(())) if self.discrete else np.asarray(action)

    def identity(self) -> dict:
        return {"policy": self.spec, "policy_sha256": self.sha256}


def _check_fits(model, env, path: Path) -> None:
    """``ValueError`` unless the model was trained on this scene's frames and actions: the scene and
    frame size of the sidecar ``.json`` that ``python -m evaluate.transfer`` writes beside its zips, if
    there is one, then the model's own observation and action spaces (without this, a policy of
    another scene with as many or more actions records quietly, and one of another size crashes in SB3)."""
    name = f"policy 'sb3:{path}'"
    obs_space, act_space = env.observation_space, env.action_space
    env_id = env.spec.id if env.spec else None
    h, w = obs_space.shape[:2]
    try:
        sidecar = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        sidecar = {}
    if not (isinstance(sidecar, dict) and str(sidecar.get("schema", "")).startswith("worldgym.transfer/")):
        sidecar = {}  # someone else's file of that name
    trained_on = sidecar.get("env_id")
    if trained_on and env_id and trained_on != env_id:
        raise ValueError(f"{name} was trained on {trained_on}, not {env_id}")
    size = sidecar.get("size")
    if isinstance(size, list) and len(size) == 2 and list(size) != [w, h]:
        raise ValueError(f"{name} was trained on {size[0]}x{size[1]} frames, {env_id} makes {w}x{h}: "
                         f"pass --width {size[0]} --height {size[1]}")
    shape = tuple(getattr(model.observation_space, "shape", None) or ())
    # SB3 stores an image space channels-first when it wrapped the env in VecTransposeImage
    if shape not in (tuple(obs_space.shape), (obs_space.shape[-1], *obs_space.shape[:-1])):
        if len(shape) == 3:
            sh, sw = shape[:2] if shape[-1] == 3 else shape[1:]
            raise ValueError(f"{name} was trained on {sw}x{sh} frames, {env_id} makes {w}x{h}: "
                             f"pass --width {sw} --height {sh}")
        raise ValueError(f"{name} takes observations of shape {shape}, {env_id} makes {obs_space.shape}")
    if _describe(model.action_space) != _describe(act_space):
        model_discrete, env_discrete = hasattr(model.action_space, "n"), hasattr(act_space, "n")
        hint = ""
        if model_discrete != env_discrete:
            hint = f" (collect {'without' if model_discrete else 'with'} --continuous)"
        raise ValueError(f"{name} acts in {_describe(model.action_space)}, {env_id} takes "
                         f"{_describe(act_space)}: it was trained on another scene or action mode{hint}")


def _describe(space) -> str:
    """An action space in words, equal for spaces a policy can share."""
    if hasattr(space, "n"):
        return f"Discrete({int(space.n)})"
    return f"Box{tuple(space.shape)}"


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
            return getattr(sb3, name.upper()), data
    return sb3.PPO, data  # ActorCriticPolicy (PPO and A2C share it; predict is the same)


def _without_pickle(data: dict, path: str) -> dict:
    """``custom_objects`` for every cloudpickled field of an SB3 ``data`` JSON, rebuilt from the
    plain fields SB3 writes beside the pickle; an unknown pickled field is refused, never loaded."""
    import importlib
    import re

    import gymnasium as gym

    out = {}
    for key, value in data.items():
        if not (isinstance(value, dict) and ":serialized:" in value):
            continue
        kind = value.get(":type:", "")
        if "__module__" in value and str(value["__module__"]).startswith("stable_baselines3."):
            name = re.search(r"<function (\w+)\.__init__", str(value.get("__init__", "")))
            if name:
                out[key] = getattr(importlib.import_module(value["__module__"]), name.group(1))
                continue
        if "spaces.box.Box" in kind:
            dtype = np.dtype(value["dtype"])
            lo, hi = (0, 255) if dtype == np.uint8 else (-np.inf, np.inf)
            lo = float(value["low_repr"]) if value.get("low_repr") not in (None, "") else lo
            hi = float(value["high_repr"]) if value.get("high_repr") not in (None, "") else hi
            out[key] = gym.spaces.Box(lo, hi, tuple(value["_shape"]), dtype)
            continue
        if "spaces.discrete.Discrete" in kind:
            out[key] = gym.spaces.Discrete(int(value["n"]), start=int(value.get("start", 0)))
            continue
        if "Schedule" in kind:
            val = re.search(r"val=([-+0-9.eE]+)", str(value.get("value_schedule", "")))
            out[key] = _Constant(float(val.group(1)) if val else 0.0)
            continue
        raise ValueError(f"policy 'sb3:{path}': field {key!r} ({kind}) is stored as a pickle; "
                         "refusing to unpickle it")
    return out


class _Constant:
    """A constant schedule (SB3 calls schedules with the remaining progress)."""

    def __init__(self, value: float):
        self.value = value

    def __call__(self, _progress: float) -> float:
        return self.value


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
