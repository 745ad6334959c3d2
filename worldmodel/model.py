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
        t = self.cfg.tokenizer
        return resize_frames(x.to(self.device), t.height, t.width)

    def prepare_actions(self, actions) -> torch.Tensor:
        a = actions if torch.is_tensor(actions) else torch.from_numpy(np.array(actions))
        a = a.to(self.device)
        if self.cfg.action_space["type"] == "discrete":
            return a.long()
        return a.float()

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
        frames = self.prepare_frames(context_frames)
        B, C = frames.shape[:2]
        tokens = self.tokenizer.encode(frames.flatten(0, 1))  # (B·C, h, w)
        tokens = tokens.view(B, C, *tokens.shape[1:])  # (B, C, h, w)
        ca = None if context_actions is None else self.prepare_actions(context_actions)
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
        frames = self.prepare_frames(context_frames)
        acts = self.prepare_actions(actions)
        if frames.dim() == 4:  # one rollout
            frames, acts = frames[None], acts[None]
            context_actions = None if context_actions is None else self.prepare_actions(context_actions)[None]
        B = frames.shape[0]
        horizon = horizon or acts.shape[1]
        if acts.shape[1] < horizon:
            raise ValueError(f"need {horizon} actions, got {acts.shape[1]}")
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
