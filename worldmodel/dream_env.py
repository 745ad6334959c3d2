"""``WorldGym/Dream-v0``: a Gymnasium environment whose frames, rewards and episode ends come from a
trained world model instead of the physics.

    env = gym.make("WorldGym/Dream-v0", checkpoint="runs/bb", temperature=1.0, context=4, horizon=200)
    env = gym.make("WorldGym/Dream-v0", checkpoint="runs/bb", schedule="adaptive")  # see dynamics.py
    env = gym.make("WorldGym/Dream-v0", checkpoint="runs/bb", passes=4)  # MaskGIT passes per frame
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

**Spaces** are the real scene's: the checkpoint's config names the scene (``env_id``) and its action
space. The frame size is the model's (the config does not record the size the data was collected at).

**Reset.** By default the real scene is reset with ``seed`` (with no seed: a scene seed drawn from
``np_random``) and stepped ``context - 1`` times with uniformly random actions drawn from
``np_random``. Random actions are the policy ``collect`` and ``worldmodel.train --env`` gather data
with, so the context looks like training data. Those frames and actions are encoded as the context. If
the real episode ends inside the context, the next scene seed is drawn from ``np_random``. Options:

* ``{"context_frames": (C, H, W, 3) uint8, "context_actions": (C-1[, k])}``: start from given frames
  (any size, resized to the model's). Actions are optional (without them the model is told "unknown").
* ``{"image": (H, W, 3) uint8}``: start from one picture (resized).

**Step** returns the generated frame, the predicted reward and ``terminated``. By default the
termination is *sampled* from the predicted probability p with ``np_random`` (``termination=
"sample"``), so dream episode lengths follow the predicted hazard; a threshold at 0.5 would never end
an episode whose per-step hazard is 0.3. ``"threshold"`` (p > 0.5) and ``"off"`` are available; p is in
``info["termination_prob"]``. ``truncated`` becomes True after ``horizon`` steps.

**Determinism.** The model's torch generator is seeded from ``np_random`` at every reset: the same seed
and actions give the same frames, bit for bit on CPU at the same torch thread count (another count
sums in another order: ``worldmodel.dream --threads N`` sets it; ``torch.set_num_threads`` here). A
dream alone and the same dream inside a ``DreamVectorEnv`` batch are identical too (see
:class:`DreamCore`).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from gymnasium import spaces

from envs.actions import check_action as _check_action
from worldmodel.distributed import resolve_device
from worldmodel.dynamics import DynamicsState, check_passes
from worldmodel.graphs import step_graph
from worldmodel.sampling import check_sampling

TERMINATION_MODES = ("sample", "threshold", "off")


def check_settings(temperature: float, context: int, horizon: int, top_k: int | None, termination: str,
                   schedule: str | None = None, passes: int | None = None):
    if not (isinstance(context, (int, np.integer)) and context >= 1):
        raise ValueError(f"context must be an integer >= 1, got {context!r}")
    if not (isinstance(horizon, (int, np.integer)) and horizon >= 1):
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    if termination not in TERMINATION_MODES:
        raise ValueError(f"termination must be one of {TERMINATION_MODES}, got {termination!r}")
    check_sampling(temperature, top_k, schedule, passes)


def terminate(mode: str, p: float, rng: np.random.Generator) -> bool:
    """The episode-end decision from the predicted probability ``p`` (see the module docstring)."""
    if mode == "sample":
        return bool(rng.random() < p)
    return mode == "threshold" and p > 0.5


# ---------------------------------------------------------------------- checks
def check_action(space: spaces.Space, action):
    """One action of ``space`` -> int (Discrete) or float32 array (Box); a clear error otherwise."""
    return _check_action(space, action, "the dream")


def _random_action(space: spaces.Space, rng: np.random.Generator):
    if isinstance(space, spaces.Discrete):
        return int(rng.integers(space.n))
    return rng.uniform(space.low, space.high).astype(np.float32)


def _array(x, name: str, ndim: int) -> np.ndarray:
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    if a.dtype != np.uint8 or a.ndim != ndim or a.shape[-1] != 3 or 0 in a.shape:
        want = "(H, W, 3)" if ndim == 3 else "(C, H, W, 3)"
        raise ValueError(f"options[{name!r}] must be a non-empty {want} uint8 array, "
                         f"got {a.dtype} {a.shape}")
    return a


# ---------------------------------------------------------------------- batch invariance
class _RowStableLinear(nn.Linear):
    """``nn.Linear`` whose result for one row does not depend on how many rows there are.

    On CPU, MKL/oneDNN use another GEMM kernel below ~16 rows, which rounds differently (~1e-7).
    A dream alone (the scalar head sees 1 row, the memory bank 8) would then drift away from the same
    dream inside a batch. Padding small inputs with zero rows to ``MIN_ROWS`` keeps every call on the
    large-matrix kernel. It only touches the few small matmuls, so it costs almost nothing."""

    MIN_ROWS = 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        rows = x.numel() // d if d else 0
        if 0 < rows < self.MIN_ROWS:
            flat = x.reshape(rows, d)
            flat = torch.cat([flat, flat.new_zeros(self.MIN_ROWS - rows, d)])
            return F.linear(flat, self.weight, self.bias)[:rows].reshape(*x.shape[:-1], self.out_features)
        return F.linear(x, self.weight, self.bias)


def _rows_independent(model: nn.Module) -> None:
    for m in model.modules():
        if type(m) is nn.Linear:
            m.__class__ = _RowStableLinear  # same parameters and state_dict; only forward differs


# ---------------------------------------------------------------------- per-row state surgery
def _select(st: DynamicsState, idx: torch.Tensor) -> DynamicsState:
    cache = None if st.cache is None else [(k[idx], v[idx]) for k, v in st.cache]
    return dataclasses.replace(st, memory=st.memory[idx], cache=cache, pending=st.pending[idx],
                               pending_action=st.pending_action[idx], pending_known=st.pending_known[idx],
                               extra={})


def _used_frames(st: DynamicsState, K: int) -> int:
    """Cached frames the next pass will attend to: ``Dynamics._advance`` first cuts the cache to K-1."""
    return 0 if st.cache is None else min(st.frames, K - 1)


def _trim(st: DynamicsState, K: int, P: int) -> DynamicsState:
    n = _used_frames(st, K)
    cache = None if n == 0 else [(k[:, :, -n * P:], v[:, :, -n * P:]) for k, v in st.cache]
    return dataclasses.replace(st, cache=cache, frames=n)


def _concat(a: DynamicsState, b: DynamicsState) -> DynamicsState:
    cache = None if a.cache is None else [(torch.cat([ka, kb]), torch.cat([va, vb]))
                                          for (ka, va), (kb, vb) in zip(a.cache, b.cache)]
    return dataclasses.replace(a, memory=torch.cat([a.memory, b.memory]), cache=cache,
                               pending=torch.cat([a.pending, b.pending]),
                               pending_action=torch.cat([a.pending_action, b.pending_action]),
                               pending_known=torch.cat([a.pending_known, b.pending_known]),
                               passes=max(a.passes, b.passes), extra={})


@dataclasses.dataclass
class _Group:
    rows: list[int]  # env rows, in the batch order of ``state``
    state: DynamicsState
    gens: list[torch.Generator]  # one per row: a row's samples come from its own generator only


# ---------------------------------------------------------------------- the engine
_fork_hook_registered = False


def _survive_fork() -> None:
    """Makes a process forked from this one use one torch thread. torch's CPU thread pool does not
    survive ``fork``: a child that loads or runs a model through the inherited pool deadlocks, and
    ``gym.make_vec(..., vectorization_mode="async")`` does exactly that (it builds one dream in the
    parent to read the spaces, then forks its workers). Registered by the first dream of a process."""
    global _fork_hook_registered
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))
        _fork_hook_registered = True


def load_model(checkpoint, device: torch.device):
    """A loaded WorldModel, or one from a run directory, with clear errors for a bad path."""
    _survive_fork()
    if isinstance(checkpoint, nn.Module):
        return checkpoint.to(device).eval()
    import worldmodel

    run = Path(checkpoint)
    if not run.is_dir():
        raise FileNotFoundError(f"dream checkpoint {str(run)!r} is not a directory (expected a run "
                                "directory from `python -m worldmodel.train`, with config.json)")
    return worldmodel.load(run, device=device)


def make_real_env(cfg, render_mode: str | None = None) -> gym.Env:
    """The scene the checkpoint was trained on, at the model's frame size."""
    import envs  # noqa: F401  (registers the scenes)
    from worldmodel.config import space_spec

    if not cfg.env_id:
        raise ValueError("the checkpoint's config.json has no env_id: the dream needs the real scene for "
                         "its spaces and its starting frames")
    if cfg.env_id not in gym.registry:
        raise ValueError(f"the checkpoint was trained on {cfg.env_id!r}, which is not a registered scene")
    kw = {"width": cfg.tokenizer.width, "height": cfg.tokenizer.height}
    if cfg.action_space.get("type") == "box":
        kw["continuous"] = True
    env = gym.make(cfg.env_id, render_mode=render_mode, disable_env_checker=True, **kw)
    if space_spec(env.action_space) != cfg.action_space:
        env.close()
        raise ValueError(f"{cfg.env_id}'s action space {space_spec(env.action_space)} differs from the "
                         f"checkpoint's {cfg.action_space}")
    return env


class DreamCore:
    """N dream rollouts stepped by one batched model: the engine of DreamEnv (N = 1) and DreamVectorEnv.

    Rows are kept in *groups* that share one ``DynamicsState``. All rows whose KV cache holds the same
    number of usable frames form one group, so normally there is one group and one batched model call per
    step. A row reset from fewer than K real frames (``context`` < the model's window K, or an ``image``)
    steps in its own group until its cache has filled up, then merges.

    Batch invariance on CPU (a dream in a batch == the same dream alone, bit for bit) comes from three
    measures. Each row samples from its own torch generator (``Dynamics.predict`` accepts a list). Small
    matmuls are padded (:class:`_RowStableLinear`). Frames are encoded and decoded one row at a time,
    because oneDNN convolutions round differently at different batch sizes. On CUDA, kernels depend on
    shapes, so only run-to-run determinism is claimed there, and decoding is batched.

    ``cuda_graph=True`` (CUDA; ``compile=True`` adds ``torch.compile``): while all rows form one group in
    the steady state, a step replays one captured graph for the whole batch (``worldmodel.graphs``). A
    reset rebuilds the group's state; the next step copies it into the graph's buffers. The samples are
    those of the eager step (each row still draws from its own generator).
    """

    def __init__(self, checkpoint, num_rows: int, *, temperature: float, context: int, top_k: int | None,
                 device: str | torch.device = "auto", cuda_graph: bool = False, compile: bool = False,
                 schedule: str | None = None, passes: int | None = None):
        self.device = resolve_device(device)
        self.model = load_model(checkpoint, self.device)
        self.graph = step_graph(self.model, cuda_graph, compile)
        if self.device.type == "cpu":
            _rows_independent(self.model)
        self.cfg = self.model.cfg
        self.real = make_real_env(self.cfg)
        self.observation_space = self.real.observation_space
        self.action_space = self.real.action_space
        self.render_fps = self.real.metadata.get("render_fps", 30)
        self.n, self.temperature, self.context, self.top_k = num_rows, float(temperature), int(context), top_k
        self.schedule = self.model.dynamics.check_schedule(schedule)
        self.passes = check_passes(self.cfg.dynamics, passes, "passes")  # MaskGIT passes per frame
        self.model.check_top_k(top_k)
        self.K, self.P = self.cfg.dynamics.context, self.model.dynamics.P
        self.groups: list[_Group] = []

    # -------------------------------------------------------------- contexts
    def real_context(self, rng: np.random.Generator, seed: int | None):
        """``context`` frames of the real scene under random actions drawn from ``rng``."""
        for attempt in range(20):
            scene_seed = seed if seed is not None and attempt == 0 else int(rng.integers(2**31 - 1))
            obs, _ = self.real.reset(seed=scene_seed)
            frames, acts = [obs], []
            for _ in range(self.context - 1):
                a = _random_action(self.action_space, rng)
                obs, _, term, trunc, _ = self.real.step(a)
                frames.append(obs)
                acts.append(a)
                if term or trunc:
                    break
            if len(frames) == self.context:
                return np.stack(frames), np.asarray(acts), {"scene_seed": scene_seed}
        raise RuntimeError(f"{self.cfg.env_id}: 20 real episodes ended within {self.context} frames")

    def parse_options(self, options: dict | None):
        """(frames (C, H, W, 3), actions (C-1[, k]) or None, info) from reset options, or None."""
        options = dict(options or {})
        unknown = set(options) - {"context_frames", "context_actions", "image"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; valid: context_frames, "
                             "context_actions, image")
        if "image" in options and ("context_frames" in options or "context_actions" in options):
            raise ValueError("give either options['image'] or options['context_frames'], not both")
        if "image" in options:
            return _array(options["image"], "image", 3)[None], None, {"start": "image"}
        if "context_frames" not in options:
            if "context_actions" in options:
                raise ValueError("options['context_actions'] needs options['context_frames']")
            return None
        frames = _array(options["context_frames"], "context_frames", 4)
        acts = options.get("context_actions")
        if acts is not None:
            acts = [check_action(self.action_space, a) for a in acts]
            if len(acts) != len(frames) - 1:
                raise ValueError(f"options['context_actions'] needs {len(frames) - 1} actions (one between "
                                 f"consecutive context frames), got {len(acts)}")
            acts = np.asarray(acts, self.action_space.dtype).reshape(len(acts), *self.action_space.shape)
        return frames, acts, {"start": "context_frames"}

    # -------------------------------------------------------------- reset / step
    @torch.no_grad()
    def reset_rows(self, rows: list[int], rngs: list[np.random.Generator], seeds: list[int | None],
                   options: dict | None = None) -> tuple[np.ndarray, list[dict]]:
        """Starts new dreams in ``rows`` (row r draws from rngs[i], seeds[i]); returns first frames, infos."""
        given = self.parse_options(options)
        starts, infos, new = {}, [], []  # the running dreams are dropped only once the new ones exist
        for row, rng, seed in zip(rows, rngs, seeds):
            if given is None:
                frames, acts, info = self.real_context(rng, seed)
                info = {"start": "real", **info}
            else:
                frames, acts, info = given
            gen = torch.Generator(device=self.device).manual_seed(int(rng.integers(2**63 - 1)))
            x = self.model.prepare_frames(frames)  # (C, H, W, 3) at the model's size
            tokens = self.model.tokenizer.encode(x)  # one row per call: see the class docstring
            key = (len(frames), acts is None)
            starts.setdefault(key, []).append((row, tokens, acts, gen))
            infos.append({**info, "context": len(frames), "first": x[-1].cpu().numpy()})
        for (_, no_acts), items in starts.items():
            tokens = torch.stack([t for _, t, _, _ in items])
            acts = None if no_acts else self.model.prepare_actions(np.stack([a for _, _, a, _ in items]))
            state = self.model.dynamics.start(tokens, acts)
            new.append(_Group([r for r, _, _, _ in items], state, [g for _, _, _, g in items]))
        self._drop(rows)
        self.groups += new
        self._merge()
        firsts = np.stack([info.pop("first") for info in infos])
        return firsts, infos

    @torch.no_grad()
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """actions (N[, k]), one per row -> frames (N, H, W, 3) uint8, rewards (N,), termination p (N,)."""
        if sum(len(g.rows) for g in self.groups) != self.n:
            raise RuntimeError("call reset() before step()")
        frames = np.empty((self.n, *self.observation_space.shape), np.uint8)
        rewards, probs = np.empty(self.n, np.float32), np.empty(self.n, np.float32)
        for g in self.groups:
            a = self.model.prepare_actions(actions[g.rows], check=False)  # checked by the env
            if self._graph_ready(g):
                u = self.model.dynamics.frame_uniforms(len(g.rows), self.passes, g.gens, self.device)
                self.graph.load(g.state)
                _, f, r, p = self.graph.step(g.state, a, u, self.temperature, self.top_k, self.schedule)
            else:
                tokens, r, p = self.model.dynamics.predict(g.state, a, self.passes, self.temperature,
                                                           self.top_k, g.gens, self.schedule)
                f = self._decode(tokens)
            frames[g.rows] = f.cpu().numpy()
            rewards[g.rows], probs[g.rows] = r.cpu().numpy(), p.cpu().numpy()
        self._merge()
        return frames, rewards, probs

    def _graph_ready(self, g: _Group) -> bool:
        """The captured step serves the one group of all rows once its cache holds K-1 frames."""
        return self.graph is not None and len(g.rows) == self.n and g.state.frames >= self.K - 1

    def _decode(self, tokens: torch.Tensor) -> torch.Tensor:
        decode = self.model.tokenizer.decode
        if self.device.type != "cpu":
            return decode(tokens)
        return torch.cat([decode(tokens[i:i + 1]) for i in range(len(tokens))])

    def _drop(self, rows: list[int]) -> None:
        gone, kept = set(rows), []
        for g in self.groups:
            keep = [i for i, r in enumerate(g.rows) if r not in gone]
            if len(keep) == len(g.rows):
                kept.append(g)
            elif keep:
                idx = torch.tensor(keep, device=self.device)
                rows_kept, gens = [g.rows[i] for i in keep], [g.gens[i] for i in keep]
                kept.append(_Group(rows_kept, _select(g.state, idx), gens))
        self.groups = kept

    def _merge(self) -> None:
        """Joins groups whose caches hold the same number of usable frames (see the class docstring)."""
        if len(self.groups) < 2:
            return
        by_len: dict[int, _Group] = {}
        for g in self.groups:
            n = _used_frames(g.state, self.K)
            st = _trim(g.state, self.K, self.P)
            if n in by_len:
                h = by_len[n]
                by_len[n] = _Group(h.rows + g.rows, _concat(h.state, st), h.gens + g.gens)
            else:
                by_len[n] = _Group(g.rows, st, g.gens)
        self.groups = list(by_len.values())

    def close(self) -> None:
        self.real.close()


class DreamEnv(gym.Env):
    """One dream rollout; see the module docstring. ``checkpoint``: a run directory (or a loaded
    ``WorldModel``, to share one between envs; it is used in place: moved to the env's device, put in
    eval mode and, on CPU, its linear layers made batch-invariant: the same weights, small batches
    padded so that a row's result does not depend on the batch)."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30}

    def __init__(self, checkpoint: str | os.PathLike | torch.nn.Module, temperature: float = 1.0,
                 context: int = 4, horizon: int = 200, device: str = "auto", render_mode: str | None = None,
                 top_k: int | None = None, termination: str = "sample", cuda_graph: bool = False,
                 compile: bool = False, schedule: str | None = None, passes: int | None = None):
        check_settings(temperature, context, horizon, top_k, termination, schedule, passes)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, "
                             f"got {render_mode!r}")
        self.core = DreamCore(checkpoint, 1, temperature=temperature, context=context, top_k=top_k,
                              device=device, cuda_graph=cuda_graph, compile=compile, schedule=schedule,
                              passes=passes)
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space
        self.metadata = {**self.metadata, "render_fps": self.core.render_fps}
        self.render_mode, self.horizon, self.termination = render_mode, int(horizon), termination
        self.checkpoint = checkpoint if isinstance(checkpoint, torch.nn.Module) else Path(checkpoint)
        self._frame: np.ndarray | None = None
        self._steps = 0
        self._window = None

    @property
    def model(self):
        return self.core.model

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        frames, infos = self.core.reset_rows([0], [self.np_random], [seed], options)
        self._frame, self._steps = frames[0], 0
        if self.render_mode == "human":
            self._show()
        return self._frame.copy(), infos[0]

    def step(self, action):
        if self._frame is None:
            raise RuntimeError("call reset() before step()")
        a = check_action(self.action_space, action)
        frames, rewards, probs = self.core.step(np.asarray([a]))
        self._frame, self._steps = frames[0], self._steps + 1
        p = float(probs[0])
        terminated = terminate(self.termination, p, self.np_random)
        truncated = self._steps >= self.horizon
        if self.render_mode == "human":
            self._show()
        info = {"termination_prob": p, "step": self._steps}
        return self._frame.copy(), float(rewards[0]), terminated, truncated, info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass render_mode='rgb_array'.")
            return None
        if self._frame is None:
            raise RuntimeError("call reset() before render()")
        if self.render_mode == "human":
            self._show()
            return None
        return self._frame.copy()

    def _show(self) -> None:
        from envs.window import HumanWindow

        if self._window is None:
            h, w = self._frame.shape[:2]
            self._window = HumanWindow(w, h, caption="WorldGym dream")
        self._window.show(self._frame, self.metadata["render_fps"])

    def close(self):
        if self._window is not None:
            self._window.close()
            self._window = None
        self.core.close()
