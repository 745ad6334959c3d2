"""Random numbers and code sampling for generation.

A generated frame draws all its random numbers *up front*, in one call: per batch row, per MaskGIT
step, one uniform per code to sample the code and one to randomise which codes stay (``draw``).
The decoding loop itself then only does arithmetic on fixed shapes, with no host-device
synchronisation, which is what lets one frame be captured and replayed as a CUDA graph
(``worldmodel.graphs``) and still give exactly the eager path's samples from the same generator.

Codes are sampled by inverting the cumulative distribution with the code's uniform (exact categorical
sampling, like Gumbel-max, but with one random number per code instead of one per code *and* vocabulary
entry, so a frame's draw stays small at any batch size).

Training draws its masks and noise with ``keyed_uniform``: uniforms that are a pure function of (a
sample's seed, a stream number, a counter), computed by an integer hash on the seeds' device. Sample i
of a batch then gets the same numbers in any batch and on any number of processes (the DDP equality),
with a handful of vectorised kernels instead of one ``torch.Generator`` and one host call per sample and
draw (measured: 115 ms of host time per step at 1,024 windows, on the GPU's critical path).
"""
from __future__ import annotations

import math

import numpy as np
import torch


def check_sampling(temperature: float, top_k: int | None = None, schedule: str | None = None,
                   passes: int | None = None) -> None:
    """``ValueError`` naming the first bad generation setting: temperature (finite, >= 0; 0 = argmax),
    top_k (None or >= 1), schedule (None = the checkpoint's, or one of ``config.SCHEDULES``), passes
    (None = the checkpoint's, or >= 1 MaskGIT passes per frame)."""
    from worldmodel.config import SCHEDULES

    number = isinstance(temperature, (int, float, np.number)) and not isinstance(temperature, np.bool_ | bool)
    if not (number and np.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if top_k is not None and not (isinstance(top_k, (int, np.integer)) and top_k >= 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if schedule is not None and schedule not in SCHEDULES:
        raise ValueError(f"schedule must be None (the checkpoint's) or one of {SCHEDULES}, got {schedule!r}")
    if passes is not None and not (isinstance(passes, (int, np.integer)) and passes >= 1):
        raise ValueError(f"passes must be None (the checkpoint's) or an integer >= 1, got {passes!r}")


def draw(batch: int, shape: tuple[int, ...], generator, device) -> torch.Tensor:
    """Uniforms in [0, 1) of shape (batch, *shape). ``generator``: None (the device's default), one
    ``torch.Generator``, or a list with one per batch row: row b is then drawn from generator[b]
    alone, so a rollout samples the same numbers whatever batch it runs in (the dream vector env)."""
    if isinstance(generator, list):
        if len(generator) != batch:
            raise ValueError(f"{len(generator)} generators for a batch of {batch}")
        u = torch.stack([torch.rand(shape, generator=g, device=g.device).to(device) for g in generator])
    else:
        u = torch.rand((batch, *shape), generator=generator, device=generator.device if generator else device)
    return u.to(device)


_M32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply) on int64 tensors holding values in [0, 2^32). Both
    multipliers are below 2^31, so no product leaves int64: the same bits on every device."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x31848BAB) & _M32
    return x ^ (x >> 16)


def keyed_uniform(seeds: torch.Tensor, stream: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Uniforms in [0, 1) of shape (B, *shape), float32, on ``seeds``' device: element j of row b is a
    hash of (seeds[b], stream, j) alone. seeds (B,) int64 ≥ 0; ``stream`` separates a caller's draws."""
    seeds = seeds.long()
    key = _mix32((seeds & _M32) ^ _mix32(((seeds >> 32) & _M32) ^ _mix32(torch.full_like(seeds, stream))))
    count = torch.arange(math.prod(shape), device=seeds.device)
    bits = _mix32(_mix32((key[:, None] + count[None] * 0x9E3779B9) & _M32) ^ key[:, None])
    return ((bits >> 8).float() * 2.0 ** -24).view(len(seeds), *shape)


def gumbel(u: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise from uniforms."""
    return -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-10)))


def sample_codes(logits: torch.Tensor, temperature: float, top_k: int | None, u: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (..., V), uniforms u (...) -> (sampled code, its log-probability), each (...).
    Temperature 0 = argmax (u unused); top_k keeps only the k most likely codes.

    Why one softmax and no log-softmax over the vocabulary: this runs on every code of every MaskGIT
    pass (256 × 512 values per frame at 64×64), and on a CPU each full sweep over those values costs
    about as much as a transformer layer. A code's log-probability is needed only for the sampled code."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if temperature <= 0:
        conf, idx = logits.log_softmax(-1).max(-1)
        return idx, conf
    probs = (logits if temperature == 1 else logits / temperature).softmax(-1)
    cdf = probs.cumsum(-1)  # (..., V)
    # right=True: the first code whose cumulative mass exceeds u·total, so a zero-probability code
    # (top-k) is never picked, even at u = 0
    target = (u.clamp_max(1 - 1e-6) * cdf[..., -1]).unsqueeze(-1).contiguous()
    idx = torch.searchsorted(cdf, target, right=True)[..., 0].clamp_max(logits.shape[-1] - 1)
    return idx, probs.gather(-1, idx[..., None])[..., 0].log()
