"""Training across processes: the context one training process runs in (rank, world size, device) and
the collectives the loop needs. ``torchrun`` sets WORLD_SIZE / RANK / LOCAL_RANK; without it, every
helper here is a no-op for one process. NCCL on CUDA, gloo on CPU (how the tests run DDP)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.nn as nn

from worldmodel.config import WorldModelConfig

if TYPE_CHECKING:
    from worldmodel.train import Args


@dataclass
class Ctx:
    """What every part of a training run needs: its arguments, config, run directory, and where this
    process sits (device, rank of world)."""

    args: Args
    cfg: WorldModelConfig
    run: Path
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` (CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:N``; ``ValueError`` for anything
    else or for CUDA on a machine without it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {str(device)!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: this machine has no CUDA device (use cpu or auto)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


def setup_distributed(device_arg: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; joins the process group when world > 1.
    ``auto`` means CUDA when there is one; on CUDA, TF32 matmuls are allowed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_arg)
    if device.type == "cuda":
        device = torch.device("cuda", local if world > 1 else (device.index or 0))
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def mean_across(values, ctx: Ctx) -> torch.Tensor:
    """The mean over processes of a list or tensor of numbers, as a float64 tensor on the CPU. The
    collective runs on ``ctx.device``: NCCL reduces only CUDA tensors."""
    t = torch.as_tensor(values, dtype=torch.float64)
    if ctx.world == 1:
        return t
    t = t.to(ctx.device)
    dist.all_reduce(t)
    return (t / ctx.world).cpu()


def any_across(flag: bool, ctx: Ctx) -> bool:
    if ctx.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(ctx: Ctx) -> None:
    if ctx.world > 1:
        dist.barrier()


class LossModule(nn.Module):
    """Wraps a model so that DDP's forward is the model's ``compute_loss``."""

    def __init__(self, model: nn.Module, extra: dict | None = None):
        super().__init__()
        self.model = model
        self.extra = dict(extra or {})  # a plain dict: not submodules (not trained, saved or synced)

    def forward(self, *args, **kwargs):
        return self.model.compute_loss(*args, **kwargs, **self.extra)
