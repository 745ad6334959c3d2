"""The memory bank: M learned slots that summarise every frame seen so far, in constant size.

Write (once per frame t)::

    u   = CrossAttention(query = LN(m), keys/values = LN(frame tokens of t))    # slots read the frame
    z   = sigmoid(W [m, u])                                                     # per-slot, per-channel gate
    m'  = (1 - z) * m + z * u                                                   # gated (GRU-like) update
    m'  = m' + MLP(LN(m'))

Read: every transformer block cross-attends from the window's tokens to the slots (see
``layers.Block``). The window itself only holds the last K frames; whatever happened earlier reaches
the model only through these slots. The state is always (B, M, d): cost and memory per generated
frame are constant however long the rollout (tested over 200 frames).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from worldmodel.config import DynamicsConfig


class CrossAttention(nn.Module):
    """Multi-head attention from x (B, S, d) to a context c (B, N, d); no mask."""

    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.h = n_heads
        self.q = nn.Linear(d, d, bias=False)
        self.kv = nn.Linear(d, 2 * d, bias=False)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        B, S, d = x.shape
        hd = d // self.h
        q = self.q(x).view(B, S, self.h, hd).transpose(1, 2)  # (B, h, S, hd)
        k, v = self.kv(c).view(B, c.shape[1], 2, self.h, hd).permute(2, 0, 3, 1, 4)  # 2 × (B, h, N, hd)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, h, S, hd)
        return self.proj(y.transpose(1, 2).reshape(B, S, d))  # (B, S, d)


class MemoryBank(nn.Module):
    def __init__(self, cfg: DynamicsConfig):
        super().__init__()
        d = cfg.d_model
        self.slots = nn.Parameter(torch.randn(cfg.memory_slots, d) * 0.02)  # initial memory (M, d)
        self.ln_m, self.ln_x = nn.LayerNorm(d), nn.LayerNorm(d)
        self.read_frame = CrossAttention(d, cfg.n_heads)
        self.gate = nn.Linear(2 * d, d)
        nn.init.constant_(self.gate.bias, -1.0)  # start mostly "keep": sigmoid(-1) ≈ 0.27
        self.ln_mlp = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def init(self, batch: int) -> torch.Tensor:
        """The empty memory: (B, M, d)."""
        return self.slots.unsqueeze(0).expand(batch, -1, -1)

    def write(self, m: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """m (B, M, d), frame tokens (B, P, d) -> the memory after seeing this frame (B, M, d)."""
        u = self.read_frame(self.ln_m(m), self.ln_x(frame))  # (B, M, d)
        z = torch.sigmoid(self.gate(torch.cat([m, u], -1)))  # (B, M, d)
        m = (1 - z) * m + z * u
        return m + self.mlp(self.ln_mlp(m))
