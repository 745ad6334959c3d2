"""Action-conditioned dynamics: a frame-block transformer over token frames with a memory bank.

Vocabulary: a frame is a (h, w) grid of tokenizer codes; p×p neighbouring codes are merged into one
transformer *position* (their embeddings concatenated and projected), so a 16×16-code frame is 8×8 = 64
positions (P). One code id, V = codebook size, means "masked".

Two kinds of frame blocks flow through the same transformer, in *groups*, one group per time step t:

* the **context** block c_t: frame t's (clean or noised) codes + the action a_{t-1} that led to it;
* the **query** block q_{t+1}: frame t+1's codes, partly or wholly masked, + the action a_t.

Group t = [c_t ; q_{t+1}] is processed in one pass with a KV cache holding the context blocks of the
K-1 previous frames. Attention rules (enforced by the cache's length and one mask):
c_t sees c_{t-K+1..t}; q_{t+1} sees c_{t-K+1..t} and itself (bidirectional within a frame); nothing
ever sees a query block of another frame, and no context sees a query. Attention logits get a learned
relative bias per head: spatial (Δy, Δx) between positions and temporal (frame distance), so "the
token just left of me one frame ago" is one table entry, the same everywhere in the frame.
Frames older than the window reach the model only through the memory bank (``memory.py``): it is
written with c_t before group t's pass, and every block cross-attends to it.

Training (``compute_loss``) runs exactly the passes of generation, teacher-forced: for a window of T
frames it streams groups t = 0..T-2, so every window gives T-1 next-frame predictions, each from a
context of 1..K frames (generation from a single start frame is in the training distribution).

Generation (``start`` / ``predict``): MaskGIT. All codes of the next frame start masked; each of
``maskgit_steps`` passes samples every masked code (temperature, top-k), keeps the most confident
ones and re-masks the rest on a schedule. The first pass is merged with the context pass of the
previous frame, so a frame costs exactly ``maskgit_steps`` sequential passes (≤ 4), and the KV cache
and memory keep per-frame cost constant. Schedules (``SCHEDULES``; ``maskgit_schedule`` in the config,
or per call):

* ``cosine`` (MaskGIT's): pass s of S leaves ⌊n·cos(π/2·s/S)⌋ codes masked, whatever the model knows.
  With 4 passes over 256 codes it commits only 20 in the first pass and leaves 97 to the last one,
  which samples them all at once and independently: exactly the uncertain codes of moving objects.
* ``adaptive``: every masked code whose most likely value has probability ≥ ``maskgit_confidence``
  (the background, walls, resting bodies) is committed in the pass that first sees it; the *unsure*
  codes are spread evenly over the passes left (pass s keeps the unsure share (S-s)/(S-s+1) masked,
  never more than the cosine schedule would), the most confident first. The codes that need joint
  decoding are then decoded in groups, each conditioned on the ones before. Measured on the shipped
  BouncingBalls checkpoint at temperature 1 (README.md): +3.1 dB at t = 32 and coherent rollouts
  0.02 → 0.08; at temperature 0 it is 0.2-0.3 dB below ``cosine`` (a sure code committed early is
  predicted with less of the frame visible), so ``cosine`` stays the default.

Why this does not collapse into "copy the last frame" (the prototype's failure; see README.md):

1. **Joint, iterative decoding.** A one-pass model samples every code independently; where a ball's
   edge is uncertain each code hedges towards background, and balls erode. Here the confident codes
   are committed first and the uncertain codes of a moving ball are sampled *given* the committed
   ones, so the model picks one consistent ball position (fully so with the ``adaptive`` schedule,
   which commits background, walls and paddle in the first pass; ``cosine`` leaves the least confident
   38% of the codes to its last pass).
2. **Masked prediction is not next-frame copying.** With a random share of the target frame visible
   (cosine schedule), the model is trained to complete a frame *consistently with its visible parts*:
   a visible displaced ball edge forces the rest of the ball to move with it. Copying the previous
   frame contradicts the visible tokens, so it is not a minimum of this loss.
3. **Motion is one lookup away.** Context frames t-K+1..t are all visible (velocity and
   acceleration are observable), and the relative spatio-temporal attention bias gives every head a
   translation-equivariant way to look at "the same place one and two frames ago". It starts as an
   ALiBi-style locality prior (−slope·distance): from a zero start, attention is uniform and Adam needs
   thousands of steps to make it local (measured: masked accuracy 0.25 → 0.59 at step 250).
4. **The loss counts what moves.** Target codes that differ from the previous frame's code get
   ``changed_weight``× the weight; per-sample normalisation keeps frames with small balls from being
   drowned by frames with large ones.
5. **Drift.** Context codes are replaced by random codes at a random level (GameNGen's noise
   augmentation, with the level embedded; 0 at inference), so the model learns to correct its own
   errors rather than copy them.
6. Optional (``pixel_weight`` > 0): a loss in pixels through the frozen decoder on the expected code
   vector, so near-miss codes get partial credit and erased balls cost what they look like.

Measured limits (README.md): on 2 CPU cores for 30 minutes (``recipes/cpu_tiny30.sh``) this still
does not learn ball motion (22% of changed codes right). At temperature 1 the balls break up, and at
low temperature they vanish; the dynamics needs far more steps than a CPU gives in minutes.
"""
from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from worldmodel import sampling
from worldmodel.config import SCHEDULES, DynamicsConfig
from worldmodel.layers import ActionEncoder, Block
from worldmodel.memory import MemoryBank

THUMB = 3 * 4 * 4  # config.pixel_codes: a code's thumbnail, 4×4 RGB values
PIXEL_KEY = 32  # ... and the size of the keys the second head scores codes with


@torch.no_grad()
def code_thumbnails(frames_and_tokens, V: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What each of V codes looks like: the mean of the pixels it stood for, over
    ``frames_and_tokens``, an iterable of (frames (n, H, W, 3) uint8 at the tokenizer's size, their codes
    (n, h, w)), pooled to 4×4 RGB and scaled to [-1, 1]. Returns (thumbnails (V, THUMB) float64, zero
    for codes never seen; counts (V,))."""
    sums = torch.zeros(V, THUMB, dtype=torch.float64)
    counts = torch.zeros(V, dtype=torch.float64)
    for frames, tokens in frames_and_tokens:
        frames, tokens = torch.as_tensor(frames), torch.as_tensor(tokens).long().cpu()
        n, (h, w) = tokens.shape[0], tokens.shape[1:]
        x = frames.cpu().permute(0, 3, 1, 2).double() / 127.5 - 1  # (n, 3, H, W)
        x = F.adaptive_avg_pool2d(x, (4 * h, 4 * w))  # 4×4 pixels per code
        x = x.view(n, 3, h, 4, w, 4).permute(0, 2, 4, 1, 3, 5).reshape(-1, THUMB)  # (n·h·w, 3·4·4)
        sums.index_add_(0, tokens.reshape(-1), x)
        counts += torch.bincount(tokens.reshape(-1), minlength=V).double()
    return sums / counts.clamp_min(1)[:, None], counts


# ---------------------------------------------------------------------- outputs
@dataclass
class DynamicsOutput:
    logits: torch.Tensor  # (B, N, h, w, V): next-frame code logits, one frame per query block
    reward: torch.Tensor  # (B, N): predicted symlog reward of the transition into that frame
    termination: torch.Tensor  # (B, N): termination logit


@dataclass
class DynamicsLoss:
    loss: torch.Tensor
    token_loss: torch.Tensor  # weighted cross-entropy on masked codes
    reward_loss: torch.Tensor
    termination_loss: torch.Tensor
    accuracy: torch.Tensor  # argmax accuracy on masked codes
    changed_accuracy: torch.Tensor  # ... on masked codes that differ from the previous frame
    pixel_loss: torch.Tensor  # decoded expected codes vs decoded target, last frame of each window


@dataclass
class DynamicsState:
    """Streaming state of a batch of rollouts: bounded (K frames of KV cache, M memory slots)."""

    memory: torch.Tensor  # (B, M, d)
    cache: list[tuple[torch.Tensor, torch.Tensor]] | None  # per layer (k, v), (B, h, frames·P, hd)
    frames: int  # context frames in the cache
    pending: torch.Tensor  # (B, h, w) codes of the newest frame, not yet passed as context
    pending_action: torch.Tensor  # the action that led to it
    pending_known: torch.Tensor  # (B,) bool
    passes: int = 0  # transformer passes so far (for tests / benchmarks)
    extra: dict = field(default_factory=dict)


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


# ---------------------------------------------------------------------- the model
class Dynamics(nn.Module):
    def __init__(self, cfg: DynamicsConfig, action_space: dict):
        super().__init__()
        self.cfg = cfg
        d, p, V = cfg.d_model, cfg.patch, cfg.codebook_size
        gh, gw = cfg.grid
        if gh % p or gw % p:
            raise ValueError(f"token grid {gh}×{gw} is not a multiple of patch {p}")
        if d % cfg.n_heads:
            raise ValueError("d_model must be a multiple of n_heads")
        self.check_schedule()
        if not 0 < cfg.maskgit_confidence <= 1:
            raise ValueError(f"maskgit_confidence must be in (0, 1], got {cfg.maskgit_confidence}")
        if cfg.own_context_steps < 1:
            raise ValueError(f"own_context_steps must be >= 1, got {cfg.own_context_steps}")
        if cfg.own_context_steps > 1 and cfg.own_context_prob <= 0:
            raise ValueError(f"own_context_steps {cfg.own_context_steps} does nothing without "
                             "own_context_prob > 0 (the share of context frames replaced)")
        self.V, self.p = V, p
        self.Hp, self.Wp = cfg.positions
        self.P = self.Hp * self.Wp
        self.tok_emb = nn.Embedding(V + 1, cfg.token_dim)  # id V = mask
        self.in_proj = nn.Linear(p * p * cfg.token_dim, d)
        self.pos_emb = nn.Parameter(torch.randn(self.P, d) * 0.02)
        self.stream_emb = nn.Parameter(torch.randn(2, d) * 0.02)  # 0: context block, 1: query block
        self.noise_emb = nn.Embedding(cfg.noise_buckets, d)
        self.action = ActionEncoder(action_space, d)
        self.memory = MemoryBank(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, p * p * V)
        self.copy_gate = nn.Linear(d, p * p) if cfg.copy_logit > 0 else None  # config.copy_logit
        if cfg.pixel_codes:  # config.pixel_codes: each code's thumbnail, in [-1, 1] (set_code_pixels)
            self.register_buffer("code_pixels", torch.zeros(V, THUMB))
            self.pixel_in = nn.Linear(THUMB, cfg.token_dim)  # thumbnail -> input embedding
            self.pixel_key = nn.Linear(THUMB, PIXEL_KEY)  # thumbnail -> key of the second head
            self.pixel_query = nn.Linear(d, p * p * PIXEL_KEY)  # state -> per-code query
        else:
            self.pixel_in = self.pixel_key = self.pixel_query = None
        self.scalar_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 2))  # reward, termination
        # relative attention bias, shared by all layers: spatial (Δy, Δx) and temporal (frame distance
        # 0..K for context keys, K+1 for the query block's own keys)
        self.space_bias = nn.Parameter(self._locality_prior(cfg.n_heads))
        self.time_bias = nn.Parameter(torch.zeros(cfg.n_heads, cfg.context + 2))
        self._layouts: dict[tuple, tuple[torch.Tensor, ...]] = {}
        self._bias_cache: dict[tuple, torch.Tensor] = {}
        self.apply(self._init)
        for block in self.blocks:  # GPT-2 scaled init of residual projections
            for proj in (block.attn.proj, block.mem.proj, block.mlp[2]):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))
        if self.copy_gate is not None:  # every gate starts open at copy_logit
            nn.init.zeros_(self.copy_gate.weight)
            nn.init.constant_(self.copy_gate.bias, cfg.copy_logit)

    def _locality_prior(self, n_heads: int) -> torch.Tensor:
        """ALiBi-style start for the spatial bias: −slope·distance, slopes 2, …, 0.25 across heads.

        With a zero start attention is uniform over every key of K frames, and Adam moves a bias by
        about lr per step: sharp local attention ("what was here, and next to here, one frame ago")
        would take thousands of steps to appear. Motion on a 2D grid is local, so heads start local at
        different scales and learn from there."""
        dy = torch.arange(-(self.Hp - 1), self.Hp).float()
        dx = torch.arange(-(self.Wp - 1), self.Wp).float()
        dist = torch.sqrt(dy[:, None] ** 2 + dx[None] ** 2).reshape(-1)  # ((2Hp-1)·(2Wp-1),)
        slopes = 2.0 * 0.125 ** (torch.arange(n_heads).float() / max(n_heads - 1, 1))  # 2 … 0.25
        return -slopes[:, None] * dist[None]

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    @torch.no_grad()
    def init_embeddings_from_codebook(self, codebook: torch.Tensor) -> bool:
        """Starts code embeddings at the tokenizer's (standardised) code vectors, so codes that decode
        alike start alike. Returns False (and does nothing) when the dimensions differ."""
        if codebook.shape != (self.V, self.cfg.token_dim):
            return False
        cb = (codebook - codebook.mean(0)) / (codebook.std() + 1e-6)
        self.tok_emb.weight[: self.V].copy_(cb)
        return True

    @torch.no_grad()
    def set_code_pixels(self, frames_and_tokens) -> int:
        """Measures each code's thumbnail (``config.pixel_codes``) with ``code_thumbnails``; a code never
        seen gets the mean thumbnail of those seen. Returns how many codes were seen."""
        means, counts = code_thumbnails(frames_and_tokens, self.V)
        seen = counts > 0
        if not seen.any():
            raise ValueError("set_code_pixels: no frames given")
        means[~seen] = means[seen].mean(0)
        self.code_pixels.copy_(means.to(self.code_pixels))
        return int(seen.sum())

    # -------------------------------------------------------------- embedding
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, h, w) codes (V = mask) -> (B, N, P, d)."""
        B, N, h, w = tokens.shape
        p = self.p
        e = self.tok_emb(tokens)  # (B, N, h, w, e)
        if self.pixel_in is not None:  # + what the code looks like (the mask id V: a zero thumbnail)
            thumbs = F.pad(self.code_pixels, (0, 0, 0, 1))  # (V + 1, THUMB)
            e = e + self.pixel_in(F.embedding(tokens, thumbs))
        e = e.view(B, N, self.Hp, p, self.Wp, p, -1).permute(0, 1, 2, 4, 3, 5, 6)  # (B, N, Hp, Wp, p, p, e)
        e = e.reshape(B, N, self.P, -1)  # (B, N, P, p·p·e)
        return self.in_proj(e) + self.pos_emb

    def context_input(self, tokens, prev_actions, prev_known, noise_level) -> torch.Tensor:
        """Context blocks: codes (B, N, h, w), action that led to each frame, noise bucket (B, N)."""
        x = self.embed(tokens) + self.stream_emb[0]
        x = x + self.action(prev_actions, prev_known)[:, :, None] + self.noise_emb(noise_level)[:, :, None]
        return x  # (B, N, P, d)

    def query_input(self, tokens, actions) -> torch.Tensor:
        """Query blocks: partly masked codes (B, N, h, w) and the action taken from the frame before."""
        known = torch.ones(actions.shape[:2], dtype=torch.bool, device=actions.device)
        return self.embed(tokens) + self.stream_emb[1] + self.action(actions, known)[:, :, None]

    def unpatch(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, P, p·p·V) -> (B, h, w, V)."""
        return self.from_patches(logits.view(logits.shape[0], self.P, self.p * self.p, self.V))

    def to_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Per-code values (B, h, w, ...) -> the head's order (B, P, p·p, ...)."""
        B, p = x.shape[0], self.p
        x = x.view(B, self.Hp, p, self.Wp, p, *x.shape[3:]).transpose(2, 3)  # (B, Hp, Wp, p, p, ...)
        return x.reshape(B, self.P, p * p, *x.shape[5:])

    def from_patches(self, x: torch.Tensor) -> torch.Tensor:
        """The head's order (B, P, p·p, ...) -> per-code values (B, h, w, ...)."""
        B, p = x.shape[0], self.p
        x = x.view(B, self.Hp, self.Wp, p, p, *x.shape[3:]).transpose(2, 3)  # (B, Hp, p, Wp, p, ...)
        return x.reshape(B, self.Hp * p, self.Wp * p, *x.shape[5:])

    # -------------------------------------------------------------- attention layout
    def _layout(self, n_cache: int, with_ctx: bool, with_query: bool, device) -> tuple[torch.Tensor, ...]:
        """Index tensors of one pass: (space_idx, time_idx, allowed), each (rows, cache + new tokens)."""
        key = (n_cache, with_ctx, with_query, str(device))
        if key in self._layouts:
            return self._layouts[key]
        K = self.cfg.context
        # frames relative to the newest context frame t; query = t + 1
        if with_ctx:
            cols = [(f, False) for f in range(-n_cache, 0)] + [(0, False)]
        else:
            cols = [(f, False) for f in range(-n_cache + 1, 1)]
        rows = ([(0, False)] if with_ctx else []) + ([(1, True)] if with_query else [])
        if with_query:
            cols.append((1, True))
        ys, xs = torch.meshgrid(torch.arange(self.Hp), torch.arange(self.Wp), indexing="ij")
        ys, xs = ys.reshape(-1), xs.reshape(-1)  # (P,)
        dy, dx = ys[:, None] - ys[None] + self.Hp - 1, xs[:, None] - xs[None] + self.Wp - 1  # (P, P) each
        space = dy * (2 * self.Wp - 1) + dx
        space_rows, time_rows, allow_rows = [], [], []
        for rf, rq in rows:
            s_blocks, t_blocks, a_blocks = [], [], []
            for cf, cq in cols:
                t = K + 1 if cq else rf - cf
                ok = (not cq) or rq  # a query block sees only itself; contexts see no query
                s_blocks.append(space)
                t_blocks.append(torch.full((self.P, self.P), t))
                a_blocks.append(torch.full((self.P, self.P), ok))
            space_rows.append(torch.cat(s_blocks, 1))
            time_rows.append(torch.cat(t_blocks, 1))
            allow_rows.append(torch.cat(a_blocks, 1))
        out = tuple(torch.cat(r, 0).to(device) for r in (space_rows, time_rows, allow_rows))
        self._layouts[key] = out
        return out

    def _bias(self, n_cache: int, with_ctx: bool, with_query: bool, device) -> torch.Tensor:
        key = (n_cache, with_ctx, with_query, str(device), self.space_bias._version, self.time_bias._version)
        if not torch.is_grad_enabled() and key in self._bias_cache:  # generation: the same few layouts
            return self._bias_cache[key]
        space, time, allowed = self._layout(n_cache, with_ctx, with_query, device)
        b = self.space_bias[:, space] + self.time_bias[:, time]  # (h, R, C)
        b = b.masked_fill(~allowed, float("-inf")).unsqueeze(0)  # (1, h, R, C)
        if not torch.is_grad_enabled():
            if len(self._bias_cache) > 64:
                self._bias_cache.clear()
            self._bias_cache[key] = b
        return b

    def _pass(self, x, memory, cache, n_cache, with_ctx, with_query, bias=None):
        """One transformer pass over a group. x (B, S, d) = [context block][query block];
        returns hidden (B, S, d) and per layer the (k, v) of the context block (empty if none).
        ``bias``: the pass's attention bias if the caller already has it (default: built here)."""
        if bias is None:
            bias = self._bias(n_cache, with_ctx, with_query, x.device)
        n_keep = self.P if with_ctx else 0
        recompute = self._checkpointing()
        kept = []
        for i, block in enumerate(self.blocks):
            past = None if cache is None else cache[i]
            if recompute:  # keeps only the block's inputs; its activations are recomputed in backward
                x, keep = checkpoint(block, x, bias, past, n_keep, memory, use_reentrant=False)
            else:
                x, keep = block(x, bias, past, n_keep, memory)
            kept.append(keep)
        return self.ln_f(x), kept

    def _checkpointing(self) -> bool:
        """Activation checkpointing is on for training passes only (``cfg.checkpoint_activations``, the
        module in training mode, gradients enabled); generation and no-grad passes run plainly. A block
        draws no random numbers (no dropout), so the recomputation is exact."""
        return bool(self.cfg.checkpoint_activations) and self.training and torch.is_grad_enabled()

    @staticmethod
    def _append(cache, kept, keep_frames: int, P: int):
        """Adds a context block to the cache and keeps only the newest ``keep_frames`` frames."""
        if cache is None:
            cache = [(k, v) for k, v in kept]
        else:
            cache = [(torch.cat([ck, k], 2), torch.cat([cv, v], 2)) for (ck, cv), (k, v) in zip(cache, kept)]
        n = keep_frames * P
        return [(k[:, :, -n:], v[:, :, -n:]) for k, v in cache]

    def _heads(self, hq: torch.Tensor, last: torch.Tensor, unpatch: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Query hidden (B, P, d) and the newest context frame's codes (B, h, w) -> logits (B, h, w, V)
        (``unpatch=False``: in the head's order, (B, P, p·p, V)), reward (B,), termination logit (B,)."""
        scal = self.scalar_head(hq.mean(1))  # (B, 2)
        logits = self.head(hq).view(hq.shape[0], self.P, self.p * self.p, self.V)
        if self.pixel_query is not None:  # every code scored by its thumbnail: alike codes, alike logits
            q = self.pixel_query(hq).view(hq.shape[0], self.P, self.p * self.p, PIXEL_KEY)
            logits = logits + (q @ self.pixel_key(self.code_pixels).T).to(logits.dtype)
        if self.copy_gate is not None:  # each code's logit of the code that was there gets the gate
            gate = self.copy_gate(hq).unsqueeze(-1).to(logits.dtype)  # (B, P, p·p, 1)
            logits = logits.scatter_add(-1, self.to_patches(last).unsqueeze(-1), gate)
        if unpatch:
            return self.from_patches(logits), scal[:, 0], scal[:, 1]
        return logits, scal[:, 0], scal[:, 1]

    # -------------------------------------------------------------- teacher-forced forward
    def forward(self, context_tokens, query_tokens, actions, prev_known, noise_level) -> DynamicsOutput:
        """context_tokens (B, N, h, w): frames 0..N-1 (possibly noised); query_tokens (B, N, h, w): frames
        1..N with masks; actions (B, N[, k]): a_t leads from frame t to t+1; prev_known (B, N) bool: is
        a_{t-1} given to context block t (False at t = 0); noise_level (B, N) buckets."""
        B, N = context_tokens.shape[:2]
        K = self.cfg.context
        none = torch.zeros_like(actions[:, :1])
        prev_actions = torch.cat([none, actions[:, :-1]], 1)  # a_{t-1} for context block t
        ctx = self.context_input(context_tokens, prev_actions, prev_known, noise_level)  # (B, N, P, d)
        qry = self.query_input(query_tokens, actions)  # (B, N, P, d)
        if self.cfg.parallel_frames:
            return self._forward_frames(ctx, qry, context_tokens)
        memory = self.memory.init(B)
        # the cache as per-layer lists of per-frame (k, v), concatenated inside the attention: a
        # checkpointed block then keeps references to these small per-frame tensors (each shared by
        # the K-1 passes that read it) instead of a fresh K-1-frame concatenation per pass and layer
        frames: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in self.blocks]
        # one attention bias per cache length (at most K different ones), shared by the passes that
        # have that length: with checkpointing, every pass's bias is kept until the backward pass
        biases: dict[int, torch.Tensor] = {}
        logits, rewards, terms = [], [], []
        for t in range(N):
            memory = self.memory.write(memory, ctx[:, t])
            n_cache = len(frames[0])
            cache = [(tuple(k for k, _ in f), tuple(v for _, v in f)) for f in frames] if n_cache else None
            if n_cache not in biases:
                biases[n_cache] = self._bias(n_cache, True, True, ctx.device)
            h, kept = self._pass(torch.cat([ctx[:, t], qry[:, t]], 1), memory, cache, n_cache, True, True,
                                 biases[n_cache])
            if K > 1:
                for f, (k, v) in zip(frames, kept):  # copies: a view would keep the whole qkv output alive
                    f.append((k.contiguous(), v.contiguous()))
                    del f[: -(K - 1)]
            lg, r, term = self._heads(h[:, self.P:], context_tokens[:, t])
            logits.append(lg)
            rewards.append(r)
            terms.append(term)
        return DynamicsOutput(torch.stack(logits, 1), torch.stack(rewards, 1), torch.stack(terms, 1))

    def _forward_frames(self, ctx: torch.Tensor, qry: torch.Tensor, context_tokens: torch.Tensor
                        ) -> DynamicsOutput:
        """``forward`` with each layer's N group passes batched into one (``parallel_frames``).

        Exact because the memory bank is written from the context inputs alone: its N states come
        first, then every group reads the state after its own frame, as in the loop."""
        B, N, P, d = ctx.shape
        memory, states = self.memory.init(B), []
        for t in range(N):
            memory = self.memory.write(memory, ctx[:, t])
            states.append(memory)
        memory = torch.stack(states, 1)  # (B, N, M, d)
        biases = [self._bias(n, True, True, ctx.device) for n in range(self.cfg.context)]
        x = torch.cat([ctx, qry], 2)  # (B, N, 2P, d)
        recompute = self._checkpointing()
        for block in self.blocks:
            if recompute:
                x = checkpoint(block.frames, x, biases, P, memory, use_reentrant=False)
            else:
                x = block.frames(x, biases, P, memory)
        lg, r, term = self._heads(self.ln_f(x)[:, :, P:].reshape(B * N, P, d), context_tokens.flatten(0, 1))
        return DynamicsOutput(lg.view(B, N, *lg.shape[1:]), r.view(B, N), term.view(B, N))

    # -------------------------------------------------------------- training loss
    def compute_loss(self, tokens, actions, rewards, terminations, seeds, pixel_decoder=None) -> DynamicsLoss:
        """tokens (B, T, h, w) clean codes; actions (B, T-1[, k]); rewards, terminations (B, T-1);
        seeds (B,) int64: all randomness (masks, noise) of sample i comes from seeds[i], so the loss
        of a sample does not depend on how a global batch is split across processes.
        pixel_decoder: the (frozen) Tokenizer, for the pixel loss (``pixel_weight``); None skips it."""
        cfg = self.cfg
        B, T, h, w = tokens.shape
        N, n = T - 1, h * w
        dev = tokens.device
        seeds, streams = seeds.to(dev), itertools.count(1)

        def rand(*shape):  # per-sample uniform draws, (B, *shape); each call its own stream
            return sampling.keyed_uniform(seeds, next(streams), shape)

        # masks for the queries: per frame, a share cos(π/2·u) of the codes (at least one)
        u = rand(N)  # (B, N)
        n_mask = (torch.cos(math.pi / 2 * u) * n).ceil().clamp(1, n).long()  # (B, N)
        rank = rand(N, n).argsort(-1).argsort(-1)  # (B, N, n): a random rank per code
        masked = (rank < n_mask[..., None]).view(B, N, h, w)
        target = tokens[:, 1:]  # (B, N, h, w)
        query = torch.where(masked, torch.full_like(target, self.V), target)
        # context noise: per frame, a level bucket; that share·noise_max of codes replaced by random codes
        levels = (rand(N) * cfg.noise_buckets).long().clamp_max(cfg.noise_buckets - 1)  # (B, N)
        levels = torch.where(rand(N) < cfg.noise_prob, levels, torch.zeros_like(levels))
        frac = levels.float() / max(cfg.noise_buckets - 1, 1) * cfg.noise_max  # (B, N)
        swap = rand(N, n).view(B, N, h, w) < frac[..., None, None]
        random_codes = (rand(N, n) * self.V).long().clamp_max(self.V - 1).view(B, N, h, w)
        # context actions hidden for some windows; never for the first frame's (unknown anyway)
        show = rand(1) >= cfg.context_action_drop  # (B, 1)
        prev_known = show.expand(B, N).clone()
        prev_known[:, 0] = False
        clean = tokens[:, :-1]
        if cfg.own_context_prob > 0:
            clean = self._own_context(tokens, actions, prev_known, rand(N) < cfg.own_context_prob)
        context = torch.where(swap, random_codes, clean)

        out = self(context, query, actions, prev_known, levels)
        logits = out.logits.float()
        ce = F.cross_entropy(logits.reshape(-1, self.V), target.reshape(-1), reduction="none")
        ce = ce.view(B, N, h, w)
        changed = target != tokens[:, :-1]
        weight = masked.float() * (1.0 + (cfg.changed_weight - 1.0) * changed.float())  # (B, N, h, w)
        per_sample = (ce * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-6)  # (B,)
        token_loss = per_sample.mean()
        reward_loss = F.mse_loss(out.reward.float(), symlog(rewards.float()))
        term_loss = F.binary_cross_entropy_with_logits(out.termination.float(), terminations.float())
        loss = token_loss + cfg.reward_weight * reward_loss + cfg.termination_weight * term_loss
        pixel_loss = torch.zeros((), device=dev)
        if pixel_decoder is not None and cfg.pixel_weight > 0:
            pixel_loss = self.pixel_loss(logits[:, -1], target[:, -1], masked[:, -1], pixel_decoder)
            loss = loss + cfg.pixel_weight * pixel_loss
        with torch.no_grad():
            hit = (logits.argmax(-1) == target) & masked
            acc = hit.sum() / masked.sum().clamp_min(1)
            mc = masked & changed
            changed_acc = (hit & mc).sum() / mc.sum().clamp_min(1)
        return DynamicsLoss(loss, token_loss.detach(), reward_loss.detach(), term_loss.detach(), acc,
                            changed_acc, pixel_loss.detach())

    @torch.no_grad()
    def _own_context(self, tokens, actions, prev_known, use) -> torch.Tensor:
        """Context frames 0..N-1 where frame t ≥ 1 is, where use[:, t] (B, N) holds, the model's own
        prediction of it: all codes of every query masked, one pass, argmax, each frame predicted from
        the context frames before it (teacher-forced, so one forward serves the whole window). The
        first forward reads the real frames; each of the ``own_context_steps`` - 1 further ones reads
        the previous one's result, so a run of used frames becomes the model's own multi-step rollout
        (exactly, for the first ``own_context_steps`` frames of the run)."""
        real = tokens[:, :-1]
        query = torch.full_like(tokens[:, 1:], self.V)
        levels = torch.zeros(real.shape[:2], dtype=torch.long, device=tokens.device)
        use = use.clone()
        use[:, 0] = False  # frame 0 has no prediction
        context = real
        for _ in range(self.cfg.own_context_steps):
            own = self(context, query, actions, prev_known, levels).logits.argmax(-1)  # frames 1..N
            own = torch.cat([real[:, :1], own[:, :-1]], 1)  # prediction of context frame t, t ≥ 1
            context = torch.where(use[..., None, None], own, real)
        return context

    @staticmethod
    def pixel_loss(logits, target, masked, tokenizer) -> torch.Tensor:
        """An objective that sees objects: the expected code vector Σ p(v)·codebook[v] at every masked
        code (the true one elsewhere) goes through the frozen decoder and is compared with the decoded
        target frame in pixels (foreground-weighted, per-sample normalised). Cross-entropy gives no
        credit to a near-miss; this loss does. A ball drawn with a look-alike code, or 1 px off, costs
        little, and a ball erased to background costs a lot: the erosion the prototype showed.
        logits (B, h, w, V), target (B, h, w), masked (B, h, w) -> scalar."""
        from worldmodel.tokenizer import foreground_mask, to_uint8

        cb = tokenizer.quantizer.codebook  # (V, D)
        hard = F.embedding(target, cb)  # (B, h, w, D)
        soft = logits.float().softmax(-1) @ cb  # (B, h, w, D)
        z = torch.where(masked[..., None], soft, hard).permute(0, 3, 1, 2)  # (B, D, h, w)
        pred = tokenizer.decoder(z)  # (B, 3, H, W)
        with torch.no_grad():
            ref = tokenizer.decoder(hard.permute(0, 3, 1, 2))  # (B, 3, H, W)
            fg = foreground_mask(to_uint8(ref)).float()[:, None]  # (B, 1, H, W)
        w = 1.0 + (tokenizer.cfg.fg_weight - 1.0) * fg
        err = (pred.float() - ref.float()).pow(2) * w
        return (err.sum((1, 2, 3)) / (w.sum((1, 2, 3)) * 3)).mean()

    # -------------------------------------------------------------- generation
    @torch.no_grad()
    def start(self, context_tokens: torch.Tensor, context_actions: torch.Tensor | None = None
              ) -> DynamicsState:
        """Reads C context frames (B, C, h, w); context_actions (B, C-1[, k]) or None (unknown).
        Frames 0..C-2 are passed now; the newest one is passed together with the first prediction."""
        B, C = context_tokens.shape[:2]
        dev = context_tokens.device
        proto = self._action_proto(B, dev, context_actions)
        if context_actions is None:
            context_actions = proto.unsqueeze(1).expand(B, max(C - 1, 0), *proto.shape[1:])
            known = torch.zeros(B, max(C - 1, 0), dtype=torch.bool, device=dev)
        else:
            known = torch.ones(B, C - 1, dtype=torch.bool, device=dev)
        # the action before each frame: none for frame 0
        prev = torch.cat([proto.unsqueeze(1), context_actions], 1)  # (B, C, ...)
        prev_known = torch.cat([torch.zeros(B, 1, dtype=torch.bool, device=dev), known], 1)  # (B, C)
        state = DynamicsState(self.memory.init(B), None, 0, context_tokens[:, -1], prev[:, -1],
                              prev_known[:, -1])
        for t in range(C - 1):
            self._advance(state, context_tokens[:, t], prev[:, t], prev_known[:, t], query=None)
        return state

    def _action_proto(self, B: int, dev, like: torch.Tensor | None) -> torch.Tensor:
        if self.action.kind == "discrete":
            return torch.zeros(B, dtype=torch.long, device=dev)
        return torch.zeros(B, self.action.dim, device=dev)

    def _advance(self, state: DynamicsState, tokens, prev_action, prev_known, query: torch.Tensor | None):
        """Writes frame ``tokens`` (B, h, w) into memory and cache; if ``query`` (B, P, d) is given it
        rides along in the same pass and its hidden state (B, P, d) is returned."""
        B = tokens.shape[0]
        zeros = torch.zeros(B, 1, dtype=torch.long, device=tokens.device)
        x = self.context_input(tokens[:, None], prev_action[:, None], prev_known[:, None], zeros)
        x = x[:, 0]  # (B, 1, P, d) -> (B, P, d)
        state.memory = self.memory.write(state.memory, x)
        K = self.cfg.context
        cache = state.cache
        if cache is not None and state.frames > K - 1:  # keep K-1 frames before the new one
            n = (K - 1) * self.P
            cache = [(k[:, :, -n:], v[:, :, -n:]) for k, v in cache] if n else None
        n_cache = 0 if cache is None else cache[0][0].shape[2] // self.P
        inp = x if query is None else torch.cat([x, query], 1)
        h, kept = self._pass(inp, state.memory, cache, n_cache, True, query is not None)
        state.cache = self._append(cache, kept, K, self.P)
        state.frames = state.cache[0][0].shape[2] // self.P
        state.passes += 1
        return None if query is None else h[:, self.P:]

    def check_steps(self, steps: int | None) -> int:
        """MaskGIT passes per frame: ``steps`` (None: the config's), validated."""
        return check_passes(self.cfg, steps)

    def check_schedule(self, schedule: str | None = None) -> str:
        """The commit schedule: ``schedule`` or the config's, validated."""
        schedule = schedule or self.cfg.maskgit_schedule
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        return schedule

    @torch.no_grad()
    def predict(self, state: DynamicsState, action: torch.Tensor, steps: int | None = None,
                temperature: float = 1.0, top_k: int | None = None, generator=None,
                schedule: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Samples the next frame's codes given ``action`` (B,) or (B, k) and advances the state.
        ``generator``: None, a torch.Generator or one per batch row (``sampling.draw``).
        Returns codes (B, h, w), reward (B,) and termination probability (B,)."""
        u = self.frame_uniforms(action.shape[0], steps, generator, state.pending.device)
        return self.predict_with(state, action, u, temperature, top_k, schedule)

    def frame_uniforms(self, batch: int, steps: int | None, generator, device) -> torch.Tensor:
        """The random numbers of one generated frame for ``predict_with``: (B, steps, 2, h, w)."""
        return sampling.draw(batch, (self.check_steps(steps), 2, *self.cfg.grid), generator, device)

    def predict_with(self, state: DynamicsState, action: torch.Tensor, u: torch.Tensor,
                     temperature: float = 1.0, top_k: int | None = None, schedule: str | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``predict`` with the frame's random numbers given: u (B, steps, 2, h, w) uniforms, [:, s, 0]
        to sample the codes of step s, [:, s, 1] to choose the codes re-masked after it. Fixed shapes
        and no host-device synchronisation: one call can be captured as a CUDA graph."""
        schedule = self.check_schedule(schedule)
        B, steps = u.shape[:2]
        h, w = self.cfg.grid
        n = h * w
        tokens = torch.full((B, h, w), self.V, dtype=torch.long, device=u.device)
        act = action[:, None]
        for s in range(1, steps + 1):
            q = self.query_input(tokens[:, None], act)[:, 0]  # (B, P, d)
            if s == 1:  # merged with the context pass of the newest frame
                hq = self._advance(state, state.pending, state.pending_action, state.pending_known, q)
            else:
                hq, _ = self._pass(q, state.memory, state.cache, state.frames, False, True)
                hq = hq[:, : self.P]
                state.passes += 1
            # sampled in the head's patch order: per-code arithmetic, so only the codes and their
            # confidences are reordered, not the (B, h, w, V) logits (a copy as large as the head)
            logits, reward, term = self._heads(hq, state.pending, unpatch=False)  # pending: frame t
            masked = tokens == self.V
            sampled, conf = sampling.sample_codes(logits.float(), temperature, top_k,
                                                  self.to_patches(u[:, s - 1, 0]))
            sampled, conf = self.from_patches(sampled), self.from_patches(conf)
            tokens = torch.where(masked, sampled, tokens)
            conf = conf.masked_fill(~masked, float("inf"))  # committed codes stay
            remain = int(math.floor(n * math.cos(math.pi / 2 * s / steps)))  # codes left masked
            if remain > 0:
                if temperature > 0:  # MaskGIT: randomise which codes are kept, less so as decoding ends
                    conf = conf + temperature * (1 - s / steps) * sampling.gumbel(u[:, s - 1, 1])
                if schedule == "cosine":
                    lowest = conf.view(B, n).topk(remain, dim=1, largest=False).indices  # (B, remain)
                    tokens = tokens.view(B, n).scatter(1, lowest, self.V).view(B, h, w)
                else:
                    keep = self._unsure_left(logits, masked, remain, steps - s)  # (B,)
                    tokens = tokens.view(B, n).masked_fill(_ranks(conf.view(B, n)) < keep[:, None], self.V)
                    tokens = tokens.view(B, h, w)
        state.pending, state.pending_action = tokens, action
        state.pending_known = torch.ones(B, dtype=torch.bool, device=u.device)
        return tokens, symexp(reward.float()), torch.sigmoid(term.float())

    def _unsure_left(self, logits, masked, remain: int, passes_left: int) -> torch.Tensor:
        """The ``adaptive`` schedule: how many codes per row stay masked after this pass (B,), a
        tensor so that rows differ without a host sync. Unsure = masked with p(most likely) <
        ``maskgit_confidence``; a share passes_left / (passes_left + 1) of them stays masked.
        logits (B, P, p·p, V), in the head's order."""
        p_max = self.from_patches(logits.float().softmax(-1).amax(-1))  # (B, h, w)
        unsure = (masked & (p_max < self.cfg.maskgit_confidence)).flatten(1).sum(1)
        keep = torch.div(unsure * passes_left, passes_left + 1, rounding_mode="floor")
        return keep.clamp_max(remain)


def check_passes(cfg: DynamicsConfig, passes: int | None, name: str = "steps") -> int:
    """MaskGIT passes per frame: ``passes`` (None, not 0: ``cfg.maskgit_steps``), from 1 to the codes
    of a frame. ``name``: the caller's word for it, in the error."""
    passes = cfg.maskgit_steps if passes is None else passes
    if isinstance(passes, bool) or not isinstance(passes, numbers.Integral) or not (
            1 <= passes <= cfg.grid[0] * cfg.grid[1]):
        raise ValueError(f"{name} must be in [1, codes per frame] (an integer), got {passes!r}")
    return int(passes)


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Rank of each entry within its row (0 = smallest), (B, n) -> (B, n) long."""
    order = x.argsort(1)
    ranks = torch.arange(x.shape[1], device=x.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, ranks)
