"""Frame tokenizer: a VQ-VAE (patch-local encoder, conv decoder, EMA codebook with dead-code restarts).

    tok = Tokenizer(TokenizerConfig())
    idx = tok.encode(frames)        # (B, H, W, 3) uint8 -> (B, h, w) int64 codes
    out = tok.decode(idx)           # (B, h, w) -> (B, H, W, 3) uint8

Encoder (``encoder="patch"``, the default of every preset): a stride-d convolution with kernel d (one
embedding per d×d patch), residual per-patch MLPs (1×1 convs) with per-position LayerNorm, a 1×1
projection to ``code_dim``. A code is a function of its own pixels only, so identical patches always
get identical codes. Measured on BouncingBalls 64² (16×16 codes): with the conv pyramid below, 19% of
codes changed between consecutive frames and the most common code covered 39% of a frame, because
its receptive field and GroupNorm statistics span the image and a moving ball re-codes the background
around it. With the patch encoder, 4.3% changed and one background code covered 75%. Unstable codes are
noise that the dynamics must predict, and that its "changed code" weighting would amplify.
``encoder="conv"`` keeps the pyramid (3×3 stem, residual blocks, stride-2 convs) as an option.

Decoder: a conv pyramid (3×3 convs, residual blocks, nearest upsampling, GroupNorm); its wide receptive
field lets neighbouring codes refine each other's edges.

Codebook health (plain VQ uses a small part of a large codebook):

* codes are initialised from the first batch's encoder outputs (data-dependent init);
* EMA updates (decay 0.99, Laplace-smoothed counts) instead of a codebook loss; under
  ``torch.distributed`` the counts and sums are all-reduced so every process holds the same codebook;
* every ``restart_every`` steps, codes that no vector chose since the last check are moved onto
  encoder outputs drawn with probability ∝ their squared quantisation error (k-means++ style, so
  restarts go where the codebook serves the data worst — on flat-coloured frames a uniform draw would
  mostly duplicate the background code);
* usage (share of codes chosen at least once in the last window) and perplexity are reported.

The loss is L1 + L2 on pixels in [-1, 1], with pixels that differ from the frame's background colour
(its most common colour) weighted ``fg_weight``× — a 3-pixel ball is 0.2% of a 64² frame, and without
the weight the cheapest reconstruction erases it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from worldmodel.config import TokenizerConfig


# ---------------------------------------------------------------------- building blocks
def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, ch // 4) if ch >= 8 else 1, ch)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.n1, self.c1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.n2, self.c2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


def _run(module: nn.Module, layers: nn.Sequential, x: torch.Tensor, cfg: TokenizerConfig) -> torch.Tensor:
    """Runs ``layers`` in order. With ``cfg.checkpoint_activations``, in training mode and with gradients
    enabled, each residual block (ResBlock, PatchBlock) keeps only its input and recomputes its
    activations in the backward pass (they draw no random numbers, so the gradients are the same)."""
    if not (cfg.checkpoint_activations and module.training and torch.is_grad_enabled()):
        return layers(x)
    for layer in layers:
        if isinstance(layer, (ResBlock, PatchBlock)):
            x = checkpoint(layer, x, use_reentrant=False)
        else:
            x = layer(x)
    return x


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(3, ch[0], 3, padding=1)]
        for i in range(len(ch) - 1):
            layers += [ResBlock(ch[i], ch[i]) for _ in range(cfg.res_blocks)]
            layers.append(nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1))
        layers += [ResBlock(ch[-1], ch[-1]) for _ in range(cfg.res_blocks)]
        layers += [_norm(ch[-1]), nn.SiLU(), nn.Conv2d(ch[-1], cfg.code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _run(self, self.net, x, self.cfg)  # (B, 3, H, W) -> (B, D, h, w)


class ChannelNorm(nn.Module):
    """LayerNorm over channels at each position: unlike GroupNorm it pools nothing across the image."""

    def __init__(self, ch: int):
        super().__init__()
        self.ln = nn.LayerNorm(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, C, h, w) -> same


class PatchBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.net = nn.Sequential(ChannelNorm(ch), nn.Conv2d(ch, 2 * ch, 1), nn.SiLU(),
                                 nn.Conv2d(2 * ch, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class PatchEncoder(nn.Module):
    """Each code is a function of its own downsample×downsample pixel patch only (receptive field = patch,
    per-position norms): identical patches always get identical codes, so static background never
    "boils" when something moves elsewhere (a conv pyramid's codes do: its receptive field and its
    GroupNorm statistics span the image)."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        d, C = cfg.downsample, cfg.encoder_width
        layers: list[nn.Module] = [nn.Conv2d(3, C, d, stride=d)]
        layers += [PatchBlock(C) for _ in range(cfg.encoder_blocks)]
        layers += [ChannelNorm(C), nn.SiLU(), nn.Conv2d(C, cfg.code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _run(self, self.net, x, self.cfg)  # (B, 3, H, W) -> (B, D, h, w)


class Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.code_dim, ch[-1], 3, padding=1)]
        layers += [ResBlock(ch[-1], ch[-1]) for _ in range(cfg.res_blocks)]
        for i in reversed(range(len(ch) - 1)):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch[i + 1], ch[i], 3, padding=1)]
            layers += [ResBlock(ch[i], ch[i]) for _ in range(cfg.res_blocks)]
        layers += [_norm(ch[0]), nn.SiLU(), nn.Conv2d(ch[0], 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return _run(self, self.net, z, self.cfg)  # (B, D, h, w) -> (B, 3, H, W)


# ---------------------------------------------------------------------- quantizer
@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # (B, D, h, w) straight-through codes
    indices: torch.Tensor  # (B, h, w) int64
    commit_loss: torch.Tensor  # scalar
    perplexity: torch.Tensor  # scalar, exp(entropy) of this batch's code histogram


class EMAQuantizer(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        V, D = cfg.codebook_size, cfg.code_dim
        self.V, self.D, self.decay, self.restart_every = V, D, cfg.ema_decay, cfg.restart_every
        self.register_buffer("codebook", torch.randn(V, D) * 0.1)
        self.register_buffer("ema_count", torch.ones(V))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("hits", torch.zeros(V))  # assignments since the last restart check
        self.register_buffer("usage", torch.zeros(()))  # share of codes hit in the last window
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def nearest(self, flat: torch.Tensor, chunk: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) -> (indices (N,), squared distance (N,)) to the closest code.

        The (rows, V) distance matrix is built ``chunk`` elements at a time: whole, it is 1 GB for 256
        frames of a 32×32 grid with 1,024 codes, and allocating that per batch made encoding a dataset
        for the dynamics 3-7× slower on a CPU (page faults, not arithmetic).

        Always in fp32, also under training's bf16 autocast on CUDA: with bf16's 8-bit mantissa the
        distances of near codes tie or swap, and the EMA statistics then average vectors into the wrong
        codes (measured on CPU autocast: 2 of 1,000 random vectors got another code)."""
        cb, flat = self.codebook.float(), flat.float()
        cb_sq = cb.pow(2).sum(1)[None]  # (1, V)
        idx, dist = [], []
        with torch.autocast(flat.device.type, enabled=False):
            for part in flat.split(max(1, chunk // self.V)):
                d_min, i = torch.addmm(cb_sq, part, cb.t(), alpha=-2).min(1)  # ||c||² − 2 x·c: same argmin
                idx.append(i)
                dist.append(d_min + part.pow(2).sum(1))
        return torch.cat(idx), torch.cat(dist).clamp_min(0)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2)  # (B, h, w) -> (B, D, h, w)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        B, D, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, D).float()  # (B*h*w, D)
        if self.training and not bool(self.initialised):
            self._init_from(flat)
        idx, err = self.nearest(flat)
        counts = torch.bincount(idx, minlength=self.V).float()  # (V,) codes chosen in this batch
        if self.training:
            self._ema_update(flat.detach(), idx, err.detach(), counts.clone())  # all-reduced in place
        q = F.embedding(idx, self.codebook).view(B, h, w, D).permute(0, 3, 1, 2)  # (B, D, h, w)
        commit = F.mse_loss(z, q.detach())
        quantized = q.detach() + (z - z.detach())  # straight-through: value exactly q, gradient to z
        p = counts / counts.sum()
        perplexity = torch.exp(-(p * torch.log(p + 1e-10)).sum())
        return QuantizerOutput(quantized, idx.view(B, h, w), commit, perplexity)

    # -------------------------------------------------------------- codebook maintenance
    def _generator(self, device) -> torch.Generator:
        """Randomness as a function of the update count: a resumed run restarts the same codes."""
        return torch.Generator(device=device).manual_seed(1_000_003 * int(self.updates) + 17)

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        flat = _gather(flat)  # the global batch, in process order: every process picks the same codes
        g = self._generator(flat.device)
        pick = torch.randint(len(flat), (self.V,), device=flat.device, generator=g)
        cb = flat[pick] + 0.01 * torch.randn(self.V, self.D, device=flat.device, generator=g)
        self.codebook.copy_(cb)
        self.ema_sum.copy_(cb)
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor, err: torch.Tensor,
                    counts: torch.Tensor) -> None:
        # per-code sums by scatter, not a (N, V) one-hot matmul: the one-hot is 268 MB for 32 frames
        # of a 32×32 grid with 1,024 codes, and building it took ~18% of a CPU training step
        sums = flat.new_zeros(self.V, self.D).index_add_(0, idx, flat)  # (V, D)
        _all_reduce(counts)
        _all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (n + self.V * 1e-5) * n
        self.codebook.copy_(self.ema_sum / smoothed[:, None])
        self.hits.add_(counts)
        self.updates.add_(1)
        if int(self.updates) % self.restart_every == 0:
            self._restart_dead(flat, err)

    @torch.no_grad()
    def _restart_dead(self, flat: torch.Tensor, err: torch.Tensor) -> None:
        dead = self.hits == 0
        self.usage.fill_(1.0 - dead.float().mean())
        n_dead = int(dead.sum())
        if n_dead:
            # candidates ∝ squared quantisation error, drawn from the global batch (same in every process)
            flat, err = _gather(flat), _gather(err)
            g = self._generator(flat.device)
            pick = torch.multinomial(err + 1e-12, n_dead, replacement=n_dead > len(err), generator=g)
            jitter = torch.randn(n_dead, self.D, device=flat.device, generator=g)
            new = flat[pick] + 0.01 * flat.std() * jitter
            self.codebook[dead] = new
            self.ema_sum[dead] = new
            self.ema_count[dead] = 1.0
        self.hits.zero_()


def _all_reduce(t: torch.Tensor) -> None:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)


def _gather(t: torch.Tensor) -> torch.Tensor:
    """Concatenates equal-sized tensors of all processes along dim 0, in rank order."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


# ---------------------------------------------------------------------- tokenizer
@dataclass
class TokenizerOutput:
    recon: torch.Tensor  # (B, 3, H, W) in [-1, 1] (unclamped)
    indices: torch.Tensor  # (B, h, w)
    commit_loss: torch.Tensor
    perplexity: torch.Tensor


@dataclass
class TokenizerLoss:
    loss: torch.Tensor  # what the optimizer minimises
    recon_loss: torch.Tensor  # weighted L1 + L2
    commit_loss: torch.Tensor
    psnr: torch.Tensor  # dB, on uint8-rounded reconstructions of this batch
    perplexity: torch.Tensor
    usage: torch.Tensor  # share of codes used in the last restart window


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]."""
    return frames.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in [-1, 1] -> (B, H, W, 3) uint8."""
    return x.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def foreground_mask(frames: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, H, W) bool: pixels whose colour is not the frame's most common one."""
    B, H, W, _ = frames.shape
    packed = frames.long()
    packed = (packed[..., 0] << 16) | (packed[..., 1] << 8) | packed[..., 2]  # (B, H, W)
    background = packed.view(B, -1).mode(1).values  # (B,)
    return packed != background[:, None, None]


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean PSNR (dB) of uint8 frames (..., H, W, 3), per frame then averaged."""
    mse = (a.float() - b.float()).div(255).pow(2).flatten(-3).mean(-1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean()


class Tokenizer(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        d = cfg.downsample
        if cfg.height % d or cfg.width % d:
            raise ValueError(f"frame size {cfg.height}×{cfg.width} is not a multiple of the downsample {d}")
        self.cfg = cfg
        if cfg.encoder not in ("patch", "conv"):
            raise ValueError(f"encoder must be 'patch' or 'conv', got {cfg.encoder!r}")
        self.encoder = PatchEncoder(cfg) if cfg.encoder == "patch" else Encoder(cfg)
        self.quantizer = EMAQuantizer(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, frames: torch.Tensor) -> TokenizerOutput:
        q = self.quantizer(self.encoder(to_float(frames)))
        return TokenizerOutput(self.decoder(q.quantized), q.indices, q.commit_loss, q.perplexity)

    def compute_loss(self, frames: torch.Tensor) -> TokenizerLoss:
        """frames (B, H, W, 3) uint8 at the configured size."""
        out = self(frames)
        target = to_float(frames)
        w = 1.0 + (self.cfg.fg_weight - 1.0) * foreground_mask(frames).float()[:, None]  # (B, 1, H, W)
        err = out.recon.float() - target
        # per-frame normalisation: a frame's loss does not depend on the rest of the batch (DDP = 1 process)
        recon = (((err.abs() + err.pow(2)) * w).sum((1, 2, 3)) / (w.sum((1, 2, 3)) * 3)).mean()
        loss = recon + self.cfg.commitment * out.commit_loss
        with torch.no_grad():
            p = psnr(to_uint8(out.recon), frames)
        return TokenizerLoss(loss, recon.detach(), out.commit_loss.detach(), p, out.perplexity,
                             self.quantizer.usage.clone())

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, h, w) int64 code indices."""
        z = self.encoder(to_float(frames))  # (B, D, h, w)
        B, D, h, w = z.shape
        idx, _ = self.quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, D))  # (B*h*w,)
        return idx.view(B, h, w)

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) int64 -> (B, H, W, 3) uint8."""
        return to_uint8(self.decoder(self.quantizer.lookup(indices)))

    @property
    def grid(self) -> tuple[int, int]:
        return self.cfg.grid


def resize_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., height, width, 3) uint8 (area / bilinear; no-op at the right size)."""
    if frames.shape[-3:-1] == (height, width):
        return frames
    lead = frames.shape[:-3]
    x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    shrink = frames.shape[-3] > height
    x = F.interpolate(x, size=(height, width), mode="area" if shrink else "bilinear",
                      align_corners=None if shrink else False)
    x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # (N, height, width, 3)
    return x.reshape(*lead, height, width, 3)


