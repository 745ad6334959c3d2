"""``WorldModel``: the tokenizer and the dynamics together, from frames in to frames out.

    model = worldmodel.load("runs/bb")
    out = model.generate(context_frames, actions, horizon=30, temperature=1.0, num_samples=4, seed=0)
    out.frames        # (B, num_samples, horizon, H, W, 3) uint8
    out.rewards       # (B, num_samples, horizon) float32
    out.terminations  # (B, num_samples, horizon) float32 probabilities

For a dream environment (one batched call steps every rollout): ``state = model.reset(context)``,
then ``frames, rewards, terms = model.step(state, actions)`` as often as wanted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from worldmodel.config import WorldModelConfig
from worldmodel.dynamics import Dynamics, DynamicsState
from worldmodel.graphs import StepGraph, step_graph
from worldmodel.sampling import check_sampling
from worldmodel.tokenizer import Tokenizer, resize_frames


@dataclass
class GenerateOutput:
    frames: torch.Tensor  # (B, S, horizon, H, W, 3) uint8
    rewards: torch.Tensor  # (B, S, horizon)
    terminations: torch.Tensor  # (B, S, horizon) probability of termination
    tokens: torch.Tensor  # (B, S, horizon, h, w) codes


@dataclass
class DreamState:
    dynamics: DynamicsState
    generator: torch.Generator | list[torch.Generator] | None  # a list: one per row (dream vector env)
    temperature: float
    top_k: int | None
    steps: int | None
    graph: StepGraph | None = None  # cuda_graph=True: frames replay a captured CUDA graph
    schedule: str | None = None  # MaskGIT commit schedule; None = the config's


def check_actions(space: dict, a: torch.Tensor, name: str = "actions") -> None:
    """A batch of actions against the model's action space spec (``config.space_spec``)."""
    if space["type"] == "discrete":
        if a.dtype == torch.bool or a.is_floating_point() or a.is_complex():
            raise TypeError(f"{name} must be integer ids in [0, {space['n']}), got dtype {a.dtype}")
        if a.numel() and (int(a.min()) < 0 or int(a.max()) >= space["n"]):
            raise ValueError(f"{name} must be in [0, {space['n']}), got values from {int(a.min())} to "
                             f"{int(a.max())}")
        return
    shape = tuple(space["shape"])
    if a.dtype == torch.bool or tuple(a.shape[a.dim() - len(shape):]) != shape:
        raise ValueError(f"{name} must be numbers of shape (..., {', '.join(map(str, shape))}), got "
                         f"{a.dtype} {tuple(a.shape)}")
    x = a.double().reshape(-1, *shape)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contain NaN or inf")
    low, high = (torch.tensor(space[k], dtype=torch.float64).reshape(shape) for k in ("low", "high"))
    if ((x < low - 1e-6) | (x > high + 1e-6)).any():
        raise ValueError(f"{name} must lie in [{space['low']}, {space['high']}]")


class WorldModel(nn.Module):
    def __init__(self, cfg: WorldModelConfig):
        super().__init__()
        self.cfg = cfg.sync()
        self.tokenizer = Tokenizer(cfg.tokenizer)
        self.dynamics = Dynamics(cfg.dynamics, cfg.action_space)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -------------------------------------------------------------- inputs
    def prepare_frames(self, frames) -> torch.Tensor:
        """Any (..., H, W, 3) uint8 array -> tensor on the model's device at the model's size."""
        x = frames if torch.is_tensor(frames) else torch.from_numpy(np.array(frames))  # a writable copy
        if x.dtype != torch.uint8:
            raise TypeError(f"frames must be uint8, got {x.dtype}")
        if x.dim() < 3 or x.shape[-1] != 3:
            raise ValueError(f"frames must be RGB, (..., H, W, 3), got shape {tuple(x.shape)}")
        t = self.cfg.tokenizer
        return resize_frames(x.to(self.device), t.height, t.width)

    def prepare_actions(self, actions, name: str = "actions", check: bool = True) -> torch.Tensor:
        """Actions (..., [k]) -> a tensor on the model's device. Checked against the action space
        (``ValueError``/``TypeError``) unless already on a CUDA device, where a check would cost a host
        sync per frame: a Discrete id outside [0, n) would otherwise read as the internal "unknown"
        action or crash deep in an embedding, a float would be truncated, and a NaN would flow on.
        ``check=False``: the caller has validated them already (the dream envs, on every step)."""
        a = actions if torch.is_tensor(actions) else torch.from_numpy(np.array(actions))
        if check and a.device.type == "cpu":
            check_actions(self.cfg.action_space, a, name)
        a = a.to(self.device)
        if self.cfg.action_space["type"] == "discrete":
            return a.long()
        return a.float()

    def check_top_k(self, top_k: int | None) -> None:
        """``ValueError`` for a top-k above this checkpoint's codebook (what only the checkpoint knows)."""
        codes = self.cfg.tokenizer.codebook_size
        if top_k is not None and top_k > codes:
            raise ValueError(f"top_k {top_k} exceeds the checkpoint's {codes} codes")

    # -------------------------------------------------------------- streaming
    @torch.no_grad()
    def reset(self, context_frames, context_actions=None, temperature: float = 1.0, top_k: int | None = None,
              seed: int | None = None, maskgit_steps: int | None = None, cuda_graph: bool = False,
              compile: bool = False, schedule: str | None = None) -> DreamState:
        """context_frames (B, C, H, W, 3) uint8; context_actions (B, C-1[, k]) or None.
        schedule: which codes each MaskGIT pass commits, "cosine" or "adaptive" (``config.SCHEDULES``;
        None = ``cfg.dynamics.maskgit_schedule``).
        cuda_graph: replay each frame as one captured CUDA graph (``worldmodel.graphs``; CUDA only;
        the same samples as without, many times faster at small batches); compile: with cuda_graph,
        compile the captured frame with ``torch.compile`` first (fewer, fused kernels; a one-time cost
        of tens of seconds)."""
        check_sampling(temperature, top_k)  # the schedule and the passes: by the dynamics, below
        self.dynamics.check_steps(maskgit_steps)
        self.check_top_k(top_k)
        frames = self.prepare_frames(context_frames)
        if frames.dim() != 5:
            raise ValueError(f"context_frames must be (B, C, H, W, 3), got shape {tuple(frames.shape)}")
        B, C = frames.shape[:2]
        tokens = self.tokenizer.encode(frames.flatten(0, 1))  # (B·C, h, w)
        tokens = tokens.view(B, C, *tokens.shape[1:])  # (B, C, h, w)
        ca = None if context_actions is None else self.prepare_actions(context_actions, "context_actions")
        if ca is not None and tuple(ca.shape[:2]) != (B, C - 1):
            raise ValueError(f"context_actions must be ({B}, {C - 1}[, k]) for {C} context frames, got "
                             f"shape {tuple(ca.shape)}")
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(int(seed))
        schedule = self.dynamics.check_schedule(schedule)
        graph = step_graph(self, cuda_graph, compile)
        return DreamState(self.dynamics.start(tokens, ca), gen, temperature, top_k, maskgit_steps, graph,
                          schedule)

    @torch.no_grad()
    def step(self, state: DreamState, actions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """actions (B,) or (B, k) -> frames (B, H, W, 3) uint8, rewards (B,), termination probs (B,)."""
        a = self.prepare_actions(actions)
        ds = state.dynamics
        u = self.dynamics.frame_uniforms(a.shape[0], state.steps, state.generator, self.device)
        if state.graph is not None and state.graph.ready(ds):
            tokens, frames, reward, term = state.graph.step(ds, a, u, state.temperature, state.top_k,
                                                               state.schedule)
        else:
            tokens, reward, term = self.dynamics.predict_with(ds, a, u, state.temperature, state.top_k,
                                                              state.schedule)
            frames = self.tokenizer.decode(tokens)
        ds.extra["tokens"] = tokens
        return frames, reward, term

    # -------------------------------------------------------------- batch generation
    @torch.no_grad()
    def generate(self, context_frames, actions, horizon: int | None = None, temperature: float = 1.0,
                 num_samples: int = 1, top_k: int | None = None, seed: int | None = None,
                 context_actions=None, maskgit_steps: int | None = None, cuda_graph: bool = False,
                 compile: bool = False, schedule: str | None = None) -> GenerateOutput:
        """Rolls the model forward from real frames.

        context_frames: (B, C, H, W, 3) or (C, H, W, 3) uint8 (resized to the model's size);
        actions: (B, horizon[, k]) or (horizon[, k]): actions[:, 0] is taken in the last context frame;
        context_actions: optional (B, C-1[, k]) actions between the context frames;
        num_samples: independent rollouts per context (batched together);
        cuda_graph, compile, schedule: see ``reset``.
        """
        if horizon is not None and not (isinstance(horizon, (int, np.integer)) and horizon >= 1):
            raise ValueError(f"horizon must be None (one frame per action) or an integer >= 1, "
                             f"got {horizon!r}")
        if not (isinstance(num_samples, (int, np.integer)) and num_samples >= 1):
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        frames = self.prepare_frames(context_frames)
        acts = self.prepare_actions(actions)
        given = f"{tuple(frames.shape)} and {tuple(acts.shape)}"
        if frames.dim() == 4:  # one rollout
            frames, acts = frames[None], acts[None]
            context_actions = None if context_actions is None else self.prepare_actions(context_actions)[None]
        B = frames.shape[0]
        step_dims = 0 if self.cfg.action_space["type"] == "discrete" else 1  # one action: () or (k,)
        if frames.dim() != 5 or acts.dim() != 2 + step_dims or acts.shape[0] != B:
            raise ValueError(f"context_frames (B, C, H, W, 3) need actions (B, horizon[, k]), and "
                             f"(C, H, W, 3) need (horizon[, k]); got shapes {given}")
        C = frames.shape[1]
        if C < 1 or acts.shape[1] < 1:
            raise ValueError(f"need at least one context frame and one action, got {C} and {acts.shape[1]}")
        if context_actions is not None:
            ca = self.prepare_actions(context_actions, "context_actions")
            if tuple(ca.shape[:2]) != (B, C - 1) or ca.dim() != 2 + step_dims:
                raise ValueError(f"context_actions must be ({B}, {C - 1}[, k]) for {C} context frames, got "
                                 f"shape {tuple(ca.shape)}")
        horizon = horizon or acts.shape[1]
        if acts.shape[1] < horizon:
            raise ValueError(f"actions must be ({B}, >= {horizon}[, k]) for {B} rollouts of {horizon} "
                             f"frames, got shape {tuple(acts.shape)}")
        S = num_samples
        frames = frames.repeat_interleave(S, 0)  # (B·S, C, H, W, 3)
        acts = acts.repeat_interleave(S, 0)
        if context_actions is not None:
            context_actions = self.prepare_actions(context_actions).repeat_interleave(S, 0)
        state = self.reset(frames, context_actions, temperature, top_k, seed, maskgit_steps, cuda_graph,
                           compile, schedule)
        out_f, out_r, out_t, out_k = [], [], [], []
        for t in range(horizon):
            f, r, term = self.step(state, acts[:, t])
            out_f.append(f)
            out_r.append(r)
            out_t.append(term)
            out_k.append(state.dynamics.extra["tokens"])

        def stack(xs):
            x = torch.stack(xs, 1)  # (B·S, horizon, ...)
            return x.view(B, S, *x.shape[1:])

        return GenerateOutput(stack(out_f), stack(out_r), stack(out_t), stack(out_k))

    def num_parameters(self) -> dict[str, int]:
        def count(m):
            return sum(p.numel() for p in m.parameters())

        return {"tokenizer": count(self.tokenizer), "dynamics": count(self.dynamics), "total": count(self)}
