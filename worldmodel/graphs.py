"""One generated frame as a CUDA graph: ``model.reset(..., cuda_graph=True)``.

Why: a small world model generating on a GPU is bound by kernel *launches*, not arithmetic. A `tiny`
frame is 4 MaskGIT passes × 4 layers of ~20 kernels plus sampling and decoding, about 14 ms of Python
and launch overhead on an H100 whether the batch is 1 or 64 (measured). A CUDA graph records those
kernels once and replays them with one launch.

How: a graph replays fixed memory addresses, so the rollout's state lives in static buffers that the
frame's kernels read and then overwrite in place: the memory bank (B, M, d), the KV cache at its
steady-state length of K frames per layer, the newest frame's codes and action. Before each replay
the step's action and its random numbers (``worldmodel.sampling.draw``, drawn from the rollout's
generator outside the graph) are copied in. The captured function is ``Dynamics.predict_with`` plus
``Tokenizer.decode``, the same code as the eager path, so a graph gives the eager path's samples from
the same generator (tested on CPU through the uncaptured path, which runs the same buffers eagerly).

``compile=True`` also passes that function through ``torch.compile`` before capture: Triton fuses
the many small elementwise and reduction kernels (sampling over 512 codes, norms, masks) into fewer,
which matters once the graph has removed the launch overhead and the batch is large. The compile costs
tens of seconds once per rollout shape; the samples are the eager path's (codes bit-identical on CPU,
tested; pixels within one grey level).

Until the cache holds K-1 frames (a rollout started from fewer context frames) steps run eagerly.
After the switch the buffers *are* the rollout's state: ``state.dynamics`` points at them.
"""
from __future__ import annotations

import torch

from worldmodel.dynamics import DynamicsState


def step_graph(model, cuda_graph: bool, compile: bool) -> StepGraph | None:
    """The graph a rollout steps through: None without ``cuda_graph``; ``compile`` applies only to it."""
    if compile and not cuda_graph:
        raise ValueError("compile=True applies to the captured frame: pass cuda_graph=True too")
    return StepGraph(model, compile=compile) if cuda_graph else None


class StepGraph:
    """Generates frames of one rollout batch by replaying a captured CUDA graph.

    ``capture=False`` runs the same buffer-in, buffer-out function eagerly (for tests on CPU);
    ``compile=True`` runs it through ``torch.compile`` (see the module's docstring)."""

    def __init__(self, model, capture: bool = True, compile: bool = False):
        if capture and model.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device; the model is on {model.device}")
        self.model, self.capture = model, capture
        self._run = torch.compile(self._frame, dynamic=False) if compile else self._frame
        self.K = model.cfg.dynamics.context
        self.graph: torch.cuda.CUDAGraph | None = None
        self.key: tuple | None = None  # (temperature, top_k, steps, schedule) the graph was captured with
        self.buffers: dict[str, torch.Tensor] | None = None
        self.out: tuple[torch.Tensor, ...] = ()

    def ready(self, state: DynamicsState) -> bool:
        """True once the cache holds the K-1 frames that the steady-state step reads."""
        return self.buffers is not None or state.frames >= self.K - 1

    # ---------------------------------------------------------------- buffers
    def _adopt(self, state: DynamicsState) -> None:
        """Copies the rollout's state into static buffers (cache padded to K frames) and points
        ``state`` at them."""
        P, K = self.model.dynamics.P, self.K
        b = {"memory": state.memory.clone(), "pending": state.pending.clone(),
             "pending_action": state.pending_action.clone(), "pending_known": state.pending_known.clone()}
        for i, (k, v) in enumerate(state.cache or []):
            pad = K * P - k.shape[2]  # the oldest frame slot is dropped before it is read
            b[f"k{i}"] = torch.cat([k.new_zeros(*k.shape[:2], pad, k.shape[3]), k], 2)
            b[f"v{i}"] = torch.cat([v.new_zeros(*v.shape[:2], pad, v.shape[3]), v], 2)
        if self.buffers is None:
            self.buffers = b
        else:  # same shapes, new values: the captured graph stays valid
            for name, t in b.items():
                want = tuple(self.buffers[name].shape)
                if want != tuple(t.shape):
                    raise ValueError(f"this StepGraph replays {name} of shape {want}, the state has "
                                     f"{tuple(t.shape)}")
            for name, t in b.items():
                self.buffers[name].copy_(t)
        self._bind(state)

    def load(self, state: DynamicsState) -> None:
        """Makes ``state`` (same batch size, cache holding at least K-1 frames) the rollout that the next
        ``step`` continues: its values are copied into the graph's buffers, and it points at them. The
        dream envs call this after rows were reset, which rebuilds the state's tensors."""
        if state.frames < self.K - 1:
            raise ValueError(f"a graph step needs a cache of {self.K - 1} frames, the state has "
                             f"{state.frames}")
        if self.buffers is None or state.memory is not self.buffers["memory"]:
            self._adopt(state)

    def _bind(self, state: DynamicsState) -> None:
        b = self.buffers
        n_layers = len(self.model.dynamics.blocks)
        state.memory, state.pending = b["memory"], b["pending"]
        state.pending_action, state.pending_known = b["pending_action"], b["pending_known"]
        state.cache = [(b[f"k{i}"], b[f"v{i}"]) for i in range(n_layers)] if "k0" in b else None
        state.frames = self.K

    def _frame(self, action: torch.Tensor, u: torch.Tensor, temperature: float, top_k: int | None,
               schedule: str) -> None:
        """The captured function: one frame from the buffers, written back into them."""
        b = self.buffers
        state = DynamicsState(b["memory"], None, 0, b["pending"], b["pending_action"], b["pending_known"])
        self._bind(state)
        tokens, reward, term = self.model.dynamics.predict_with(state, action, u, temperature, top_k,
                                                                schedule)
        frames = self.model.tokenizer.decode(tokens)
        b["memory"].copy_(state.memory)
        if "k0" in b:  # (a 1-frame window caches nothing between frames)
            for i, (k, v) in enumerate(state.cache):
                b[f"k{i}"].copy_(k)
                b[f"v{i}"].copy_(v)
        b["pending"].copy_(tokens)
        b["pending_action"].copy_(action)
        b["pending_known"].fill_(True)
        self.out = (tokens, frames, reward, term)

    # ---------------------------------------------------------------- capture / replay
    def _capture(self, temperature: float, top_k: int | None, schedule: str) -> None:
        b = self.buffers
        saved = {k: v.clone() for k, v in b.items()}  # warm-up runs advance the rollout: undo them
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # compilation, allocator, cuBLAS and attention-bias caches settle outside
                self._run(b["action"], b["u"], temperature, top_k, schedule)
        torch.cuda.current_stream().wait_stream(side)
        for k, v in saved.items():
            b[k].copy_(v)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._run(b["action"], b["u"], temperature, top_k, schedule)

    def step(self, state: DynamicsState, action: torch.Tensor, u: torch.Tensor, temperature: float,
             top_k: int | None, schedule: str | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One frame: returns codes (B, h, w), frames (B, H, W, 3) uint8, rewards (B,), termination
        probabilities (B,), each a fresh tensor (the graph's outputs are overwritten by the next replay)."""
        if self.buffers is None:
            self._adopt(state)
        elif state.memory is not self.buffers["memory"]:
            raise ValueError("this StepGraph belongs to another rollout state; reset() makes a new one")
        b = self.buffers
        if "action" not in b:
            b["action"], b["u"] = action.clone(), u.clone()
        elif b["action"].shape != action.shape or b["u"].shape != u.shape:
            want, got = (tuple(b["action"].shape), tuple(b["u"].shape)), (tuple(action.shape), tuple(u.shape))
            raise ValueError(f"a CUDA graph replays fixed shapes (actions, random numbers) {want}, got {got}")
        b["action"].copy_(action)
        b["u"].copy_(u)
        schedule = self.model.dynamics.check_schedule(schedule)
        key = (float(temperature), top_k, u.shape[1], schedule)
        if not self.capture:
            self._run(b["action"], b["u"], temperature, top_k, schedule)
        else:
            if self.key != key:
                self._capture(temperature, top_k, schedule)
                self.key = key
            self.graph.replay()
        self._bind(state)
        state.passes += u.shape[1]
        return tuple(t.clone() for t in self.out)
