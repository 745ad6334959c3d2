"""The layers of the dynamics transformer (``dynamics.py``): the action embedding and one transformer
block (self-attention over a frame group and its KV cache, a read of the memory bank, an MLP).

Each block has two entry points: ``forward``, one frame group at a time with a cache (generation, and
training by default), and ``frames``, every group of a training window at once
(``dynamics.parallel_frames``). Both see exactly the same keys, so they give the same result; ``frames``
only makes fewer, larger calls (fewer eager ops: the per-frame loop made training host-bound on a GPU).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from worldmodel.config import DynamicsConfig
from worldmodel.memory import CrossAttention


# ---------------------------------------------------------------------- actions
class ActionEncoder(nn.Module):
    """Discrete(n): an embedding table with one extra row for "no action known";
    Box(k): a linear layer, and a learned vector for "no action known"."""

    def __init__(self, space: dict, d: int):
        super().__init__()
        self.kind = space["type"]
        if self.kind == "discrete":
            self.n = int(space["n"])
            self.table = nn.Embedding(self.n + 1, d)
        elif self.kind == "box":
            self.dim = int(math.prod(space["shape"]))
            self.linear = nn.Linear(self.dim, d)
            self.none = nn.Parameter(torch.zeros(d))
        else:
            raise ValueError(f"unsupported action space {space}")

    def forward(self, actions: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """actions (B, N) int or (B, N, k) float, known (B, N) bool -> (B, N, d)."""
        if self.kind == "discrete":
            a = torch.where(known, actions.long(), torch.full_like(actions.long(), self.n))
            return self.table(a)
        e = self.linear(actions.float().reshape(*actions.shape[:2], self.dim))  # (B, N, d)
        return torch.where(known[..., None], e, self.none.to(e.dtype))


# ---------------------------------------------------------------------- transformer block
class SelfAttention(nn.Module):
    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.h = n_heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, past: tuple | None, n_keep: int):
        """x (B, S, d); bias (1, h, S, S_past + S); past (k, v) each (B, h, S_past, hd), or each a
        sequence of such tensors (one per cached frame, concatenated here), or None.
        Returns y (B, S, d) and (k, v) of x's first ``n_keep`` tokens (to be cached)."""
        B, S, d = x.shape
        q, k, v = self.qkv(x).view(B, S, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)  # 3 × (B, h, S, hd)
        keep = (k[:, :, :n_keep], v[:, :, :n_keep])
        if past is not None:
            pk, pv = ([t] if torch.is_tensor(t) else list(t) for t in past)
            k, v = torch.cat([*pk, k], 2), torch.cat([*pv, v], 2)  # (B, h, S_past + S, hd)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))  # (B, h, S, hd)
        return self.proj(y.transpose(1, 2).reshape(B, S, d)), keep

    def frames(self, x: torch.Tensor, biases: list, n_ctx: int) -> torch.Tensor:
        """All groups of a window at once: x (B, N, S, d), group t = [context block (n_ctx tokens)][query
        block]. Group t attends to itself and to the context blocks of the K-1 groups before it (fewer
        at the window's start), the keys the per-group loop's cache holds; ``biases[n]`` is the bias of
        a group with n groups before it, n = 0 … K-1. The groups with K-1 before them share one 4-D
        attention call (one bias, the fused kernels apply); the first K-1 of a window get one each.
        Returns (B, N, S, d)."""
        B, N, S, d = x.shape
        hd, before = d // self.h, len(biases) - 1
        q, k, v = self.qkv(x).view(B, N, S, 3, self.h, hd).permute(3, 0, 1, 4, 2, 5)  # (B, N, h, S, hd)
        kc, vc = k[..., :n_ctx, :], v[..., :n_ctx, :]  # (B, N, h, P, hd): the context blocks' keys

        def flat(c):  # (B, n, h, P, hd) -> (B, h, n·P, hd), oldest group first
            return c.transpose(1, 2).reshape(B, self.h, c.shape[1] * c.shape[3], hd)  # n = 0: no keys

        out = []
        for t in range(min(before, N)):
            kt, vt = torch.cat([flat(kc[:, :t]), k[:, t]], 2), torch.cat([flat(vc[:, :t]), v[:, t]], 2)
            y = F.scaled_dot_product_attention(q[:, t], kt, vt, attn_mask=biases[t].to(q.dtype))
            out.append(y[:, None])
        if N > before:
            n = N - before
            kt, vt = k[:, before:], v[:, before:]  # (B, n, h, S, hd)
            if before:  # the context keys of the groups before, (B, n, h, before·P, hd) each
                kt = torch.cat([_windows(kc, before)[:, :n], kt], 3)
                vt = torch.cat([_windows(vc, before)[:, :n], vt], 3)
            kt, vt = (t.reshape(B * n, self.h, -1, hd) for t in (kt, vt))
            y = F.scaled_dot_product_attention(q[:, before:].reshape(B * n, self.h, S, hd), kt, vt,
                                               attn_mask=biases[before].to(q.dtype))
            out.append(y.view(B, n, self.h, S, hd))
        y = torch.cat(out, 1)  # (B, N, h, S, hd)
        return self.proj(y.transpose(2, 3).reshape(B, N, S, d))


def _windows(c: torch.Tensor, n: int) -> torch.Tensor:
    """c (B, N, h, P, hd) -> (B, N-n+1, h, n·P, hd): window s holds groups s … s+n-1, oldest first."""
    B, _, h, P, hd = c.shape
    w = c.unfold(1, n, 1)  # (B, N-n+1, h, P, hd, n), a view
    return w.permute(0, 1, 2, 5, 3, 4).reshape(B, w.shape[1], h, n * P, hd)


class Block(nn.Module):
    def __init__(self, cfg: DynamicsConfig):
        super().__init__()
        d = cfg.d_model
        self.ln1, self.attn = nn.LayerNorm(d), SelfAttention(d, cfg.n_heads)
        self.ln2, self.ln_mem, self.mem = nn.LayerNorm(d), nn.LayerNorm(d), CrossAttention(d, cfg.n_heads)
        self.ln3 = nn.LayerNorm(d)
        hidden = int(cfg.mlp_ratio * d)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))

    def forward(self, x, bias, past, n_keep, memory):
        a, keep = self.attn(self.ln1(x), bias, past, n_keep)
        x = x + a
        x = x + self.mem(self.ln2(x), self.ln_mem(memory))  # read the memory bank
        x = x + self.mlp(self.ln3(x))
        return x, keep

    def frames(self, x, biases: list, n_ctx: int, memory):
        """All groups of a window at once (``SelfAttention.frames``): x (B, N, S, d), memory (B, N, M, d)
        the bank as group t reads it."""
        B, N, S, d = x.shape
        x = (x + self.attn.frames(self.ln1(x), biases, n_ctx)).reshape(B * N, S, d)
        x = x + self.mem(self.ln2(x), self.ln_mem(memory.reshape(B * N, -1, d)))
        x = x + self.mlp(self.ln3(x))
        return x.view(B, N, S, d)
