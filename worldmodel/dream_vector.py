"""Many dreams in one batched world-model call: a Gymnasium ``VectorEnv`` and its SB3 adapter.

    venv = DreamVectorEnv("runs/bb", num_envs=16, temperature=1.0, context=4, horizon=200)
    venv = DreamVectorEnv("runs/bb", 64, device="cuda", cuda_graph=True, compile=True)  # fastest on a GPU
    obs, infos = venv.reset(seed=0)                      # sub-env i: seed 0 + i
    obs, rewards, terminated, truncated, infos = venv.step(venv.action_space.sample())

    from stable_baselines3 import PPO
    PPO("CnnPolicy", to_sb3(DreamVectorEnv("runs/bb", 8))).learn(10_000)

Every sub-env behaves exactly like a :class:`~worldmodel.dream_env.DreamEnv` with the same seed and
actions. On CPU this holds bit for bit (tested); see ``DreamCore`` for how. Each sub-env has its own
``np_random`` (seeded like Gymnasium's ``SyncVectorEnv``: seed + i), drawing its contexts, its torch
generator and its terminations, so a sub-env's dream does not depend on the others.

Autoreset: ``SAME_STEP`` (``metadata["autoreset_mode"]``). A sub-env that terminates or truncates is
reset inside the same ``step`` from a fresh real context. All finished sub-envs are reset in one
batch. ``step`` then returns the new first frame, and the last dream frame and its info are in
``infos["final_obs"]`` / ``infos["final_info"]``. Same-step reset is what SB3 expects
(``terminal_observation``), and it needs no extra model call with ignored actions. (Gymnasium's
``VectorObservationWrapper`` subclasses refuse same-step envs; ``RecordEpisodeStatistics`` accepts them.)
"""
from __future__ import annotations

import functools
import os
from copy import deepcopy
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from worldmodel.dream_env import DreamCore, check_action, check_settings, terminate


class DreamVectorEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, checkpoint: str | os.PathLike | torch.nn.Module, num_envs: int, *,
                 temperature: float = 1.0, context: int = 4, horizon: int = 200, device: str = "auto",
                 top_k: int | None = None, termination: str = "sample", render_mode: str | None = None,
                 cuda_graph: bool = False, compile: bool = False, schedule: str | None = None,
                 passes: int | None = None):
        """cuda_graph, compile: step the batch as one captured CUDA graph, torch.compile'd with compile
        (CUDA only; see :class:`~worldmodel.dream_env.DreamCore`). schedule: the MaskGIT commit
        schedule, "cosine" or "adaptive" (None: the checkpoint's; see ``worldmodel.dynamics``);
        passes: MaskGIT passes per frame (None: the checkpoint's ``maskgit_steps``)."""
        check_settings(temperature, context, horizon, top_k, termination, schedule, passes)
        if not (isinstance(num_envs, (int, np.integer)) and num_envs >= 1):
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.core = DreamCore(checkpoint, int(num_envs), temperature=temperature, context=context,
                              top_k=top_k, device=device, cuda_graph=cuda_graph, compile=compile,
                              schedule=schedule, passes=passes)
        self.num_envs, self.horizon, self.termination = int(num_envs), int(horizon), termination
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.core.render_fps}
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._steps = np.zeros(self.num_envs, np.int64)
        self._frames: np.ndarray | None = None

    @property
    def model(self):
        return self.core.model

    def _rng(self, i: int, seed: int | None) -> np.random.Generator:
        """Sub-env i's np_random, following ``gym.Env.reset(seed=...)``: re-seeded when a seed is given."""
        if seed is not None or self._rngs[i] is None:
            self._rngs[i], _ = seeding.np_random(seed)
        return self._rngs[i]

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """seed: None, an int (sub-env i gets seed + i) or one seed per sub-env; options (the same for all
        sub-envs): see :class:`~worldmodel.dream_env.DreamEnv`, plus gymnasium's ``reset_mask``, a
        (num_envs,) bool array: only those sub-envs reset (the others keep their episodes; infos carry
        only the reset ones)."""
        options = dict(options or {})
        rows = self._reset_rows(options.pop("reset_mask", None))
        if seed is None:
            seeds = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
            super().reset(seed=int(seed))
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}")
        seeds = [seeds[i] for i in rows]
        frames, row_infos = self.core.reset_rows(rows, [self._rng(i, s) for i, s in zip(rows, seeds)],
                                                 seeds, options or None)
        if self._frames is None:
            self._frames = frames
        else:
            self._frames[rows] = frames
        self._steps[rows] = 0
        infos: dict[str, Any] = {}
        for i, info in zip(rows, row_infos):
            infos = self._add_info(infos, info, i)
        return self._frames.copy(), infos

    def _reset_rows(self, mask) -> list[int]:
        if mask is None:
            return list(range(self.num_envs))
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
            raise ValueError(f"reset_mask must be a bool array of shape ({self.num_envs},), got {mask!r}")
        if not mask.any():
            raise ValueError("reset_mask resets no sub-env (all False)")
        if self._frames is None and not mask.all():
            raise ValueError("the first reset() must reset every sub-env (no reset_mask)")
        return np.flatnonzero(mask).tolist()

    def check_actions(self, actions) -> np.ndarray:
        """A batch of actions -> (N,) int64 or (N, k) float32, with a clear error for a bad one."""
        space = self.single_action_space
        arr = actions if isinstance(actions, np.ndarray) else np.asarray(actions)
        if arr.ndim == 0 or len(arr) != self.num_envs:
            raise ValueError(f"expected a batch of {self.num_envs} actions, got {actions!r}")
        checked = [check_action(space, a) for a in arr]
        if isinstance(space, spaces.Discrete):
            return np.asarray(checked, np.int64)
        return np.stack(checked).astype(np.float32)

    def step(self, actions):
        if self._frames is None:
            raise RuntimeError("call reset() before step()")
        acts = self.check_actions(actions)
        frames, rewards, probs = self.core.step(acts)
        self._steps += 1
        terminated = np.array([terminate(self.termination, float(p), self._rngs[i])
                               for i, p in enumerate(probs)])
        truncated = self._steps >= self.horizon
        infos: dict[str, Any] = {}
        done = np.flatnonzero(terminated | truncated).tolist()
        for i in range(self.num_envs):
            info = {"termination_prob": float(probs[i]), "step": int(self._steps[i])}
            if i in done:
                info = {"final_obs": frames[i].copy(), "final_info": info}
            infos = self._add_info(infos, info, i)
        if done:  # same-step autoreset, all finished sub-envs in one batch
            first, reset_infos = self.core.reset_rows(done, [self._rngs[i] for i in done], [None] * len(done))
            frames[done], self._steps[done] = first, 0
            for i, info in zip(done, reset_infos):
                infos = self._add_info(infos, info, i)
        self._frames = frames
        return frames.copy(), rewards.astype(np.float64), terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None or self._frames is None:
            return None
        return tuple(f.copy() for f in self._frames)

    def close_extras(self, **kwargs) -> None:
        self.core.close()


# ---------------------------------------------------------------------- Stable-Baselines3
def _row_info(infos: dict, i: int) -> dict:
    """Sub-env i's info dict out of Gymnasium's dict-of-arrays vector info."""
    out = {}
    for k, v in infos.items():
        if k.startswith("_") or not infos.get(f"_{k}", np.ones(i + 1, bool))[i]:
            continue
        out[k] = _row_info(v, i) if isinstance(v, dict) else v[i]
    return out


@functools.cache
def _sb3_vec_env_class():
    """Defined on first use: importing stable_baselines3 takes seconds, and only SB3 users need it."""
    from stable_baselines3.common.vec_env import VecEnv

    class Sb3DreamVecEnv(VecEnv):
        """A :class:`DreamVectorEnv` as an SB3 ``VecEnv``: one batched model call per step, auto-reset
        with ``infos[i]["terminal_observation"]`` and ``"TimeLimit.truncated"``, as ``DummyVecEnv``."""

        def __init__(self, venv: DreamVectorEnv):
            self.venv = venv
            super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
            self.metadata = {**self.metadata, "render_fps": venv.metadata["render_fps"]}
            self._actions: np.ndarray | None = None

        def reset(self):
            seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
            obs, infos = self.venv.reset(seed=seeds, options=self._options[0] or None)
            self.reset_infos = [_row_info(infos, i) for i in range(self.num_envs)]
            self._reset_seeds()
            self._reset_options()
            return obs

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = actions

        def step_wait(self):
            obs, rewards, term, trunc, infos = self.venv.step(self._actions)
            dones = term | trunc
            out = []
            for i in range(self.num_envs):
                if dones[i]:
                    final = infos["final_info"]
                    info = {**_row_info(final, i), "terminal_observation": infos["final_obs"][i],
                            "TimeLimit.truncated": bool(trunc[i] and not term[i])}
                    self.reset_infos[i] = {k: v for k, v in _row_info(infos, i).items()
                                           if k not in ("final_obs", "final_info")}
                else:
                    info = {**_row_info(infos, i), "TimeLimit.truncated": False}
                out.append(info)
            return obs, rewards.astype(np.float32), dones, deepcopy(out)

        def close(self) -> None:
            self.venv.close()

        def get_images(self):
            return list(self.venv.render() or [None] * self.num_envs)

        def get_attr(self, attr_name: str, indices=None) -> list:
            return [getattr(self.venv, attr_name)] * len(list(self._get_indices(indices)))

        def set_attr(self, attr_name: str, value, indices=None) -> None:
            """The dreams share their settings: only all sub-envs at once."""
            if sorted(self._get_indices(indices)) != list(range(self.num_envs)):
                raise ValueError(f"{attr_name!r} is shared by every dream of one DreamVectorEnv: set it "
                                 "for all of them (indices=None)")
            setattr(self.venv, attr_name, value)

        def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list:
            """Not available: the dreams are rows of one batched model, not separate env objects."""
            raise NotImplementedError("the dreams share one model; call methods on .venv instead")

        def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
            return [False] * len(list(self._get_indices(indices)))

    return Sb3DreamVecEnv


def __getattr__(name: str):
    if name == "Sb3DreamVecEnv":
        return _sb3_vec_env_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_sb3(vec_env: DreamVectorEnv):
    """An SB3 ``VecEnv`` (class ``Sb3DreamVecEnv``) over ``vec_env``: ``PPO("CnnPolicy", to_sb3(v))``."""
    if not isinstance(vec_env, DreamVectorEnv):
        raise TypeError(f"to_sb3 expects a DreamVectorEnv, got {type(vec_env).__name__}")
    return _sb3_vec_env_class()(vec_env)
