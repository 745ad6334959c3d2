"""Checkpoints without pickle: JSON config + safetensors weights, written atomically.

Layout of a run directory::

    RUN/config.json                the WorldModelConfig (rebuilds the model from nothing)
    RUN/tokenizer/                 one directory per training stage
        config.json                the same config, so a stage directory is self-contained
        model.safetensors          the stage module's state_dict (parameters and buffers)
        optimizer.safetensors      AdamW moments as tensors; param groups as JSON metadata
        train_state.json           step, planned steps, seed, elapsed time, latest metrics
    RUN/dynamics/                  same files
    RUN/tb/                        TensorBoard logs

A stage directory is written whole into ``RUN/.<stage>.tmp``, then swapped in with two renames
(old → ``RUN/.<stage>.old``, tmp → ``RUN/<stage>``), and the old one deleted: a ``kill -9`` at any
moment leaves either the previous or the new checkpoint, never a mix (``_recover`` puts ``.old``
back if it was interrupted between the renames).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from collect.writer import fsync_dir
from worldmodel.config import WorldModelConfig
from worldmodel.distributed import resolve_device

STAGES = ("tokenizer", "dynamics")


def _recover(run: Path, stage: str) -> Path:
    final, old = run / stage, run / f".{stage}.old"
    if not final.exists() and old.exists():
        os.rename(old, final)
    return final


def has_stage(run: str | Path, stage: str) -> bool:
    """Whether ``run`` holds weights of ``stage`` (a stage directory is written whole, see above)."""
    return (_recover(Path(run), stage) / "model.safetensors").exists()


def _load_weights(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=device)
    except Exception as e:  # safetensors raises its own error types for a damaged file
        raise ValueError(f"{path}: unreadable weights ({type(e).__name__}: {e})") from None


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """An optimizer's state_dict as flat tensors + JSON metadata (param groups, non-tensor state)."""
    sd = opt.state_dict()
    tensors, extra = {}, {}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"state.{idx}.{name}"] = v.detach().cpu().contiguous()
            else:
                extra[f"{idx}.{name}"] = v
    meta = {"param_groups": json.dumps(sd["param_groups"]), "extra": json.dumps(extra)}
    return tensors, meta


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    for key, v in json.loads(meta.get("extra", "{}")).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    groups = json.loads(meta["param_groups"])
    for g in groups:  # JSON has no tuples: betas etc. come back as lists
        for k, v in g.items():
            if isinstance(v, list) and k != "params":
                g[k] = tuple(v)
    return {"state": state, "param_groups": groups}


def _read_meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def weights_mismatch(run: str | Path, stage: str, module: torch.nn.Module) -> str | None:
    """Why the stage's saved weights would not load into ``module`` (tensors missing, unexpected or of
    another shape), or None when they fit. Reads only the file's header."""
    from safetensors import safe_open

    path = _recover(Path(run), stage) / "model.safetensors"
    try:
        with safe_open(str(path), framework="pt") as f:
            saved = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for a damaged file
        return f"{path}: unreadable weights ({type(e).__name__}: {e})"
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    problems = [f"{k} {saved[k]} saved, {want[k]} built" for k in sorted(want.keys() & saved.keys())
                if saved[k] != want[k]]
    problems += [f"{k} not saved" for k in sorted(want.keys() - saved.keys())]
    problems += [f"{k} saved, not built" for k in sorted(saved.keys() - want.keys())]
    if not problems:
        return None
    more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
    return f"{path} does not fit the {stage} this config builds: {'; '.join(problems[:3])}{more}"


def save_stage(run: str | Path, stage: str, module: torch.nn.Module, cfg: WorldModelConfig,
               optimizer: torch.optim.Optimizer | None = None, train_state: dict | None = None) -> Path:
    """Writes RUN/<stage>/ atomically (see module docstring)."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    final, tmp, old = run / stage, run / f".{stage}.tmp", run / f".{stage}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    state = dict(train_state or {})
    step = str(state.get("step", 0))
    weights = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(weights, str(tmp / "model.safetensors"), metadata={"stage": stage, "step": step})
    if optimizer is not None:
        tensors, meta = optimizer_to_tensors(optimizer)
        save_file(tensors, str(tmp / "optimizer.safetensors"), metadata={**meta, "step": step})
    cfg.to_json(tmp / "config.json")
    (tmp / "train_state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(tmp, final)
    fsync_dir(run)
    shutil.rmtree(old, ignore_errors=True)
    write_config(run, cfg)
    return final


def write_config(run: Path, cfg: WorldModelConfig) -> None:
    """``RUN/config.json``, atomically (temp file + rename)."""
    cfg.to_json(run / ".config.json.tmp")
    os.replace(run / ".config.json.tmp", run / "config.json")


def load_stage(run: str | Path, stage: str, module: torch.nn.Module,
               optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Loads weights (strict) and optionally the optimizer into existing objects; returns the train state."""
    path = _recover(Path(run), stage)
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"no {stage} checkpoint in {path}")
    weights = _load_weights(path / "model.safetensors", str(_device_of(module)))
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path / 'model.safetensors'} does not fit the model its config.json builds "
                         f"({str(e).splitlines()[0]} …)") from None
    state_file = path / "train_state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    if optimizer is not None and (path / "optimizer.safetensors").exists():
        meta = _read_meta(path / "optimizer.safetensors")
        tensors = _load_weights(path / "optimizer.safetensors")
        optimizer.load_state_dict(optimizer_from_tensors(tensors, meta))
    return state


def _device_of(module: torch.nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def load_config(run: str | Path) -> WorldModelConfig:
    run = Path(run)
    for path in (run / "config.json", _recover(run, "dynamics") / "config.json",
                 _recover(run, "tokenizer") / "config.json"):
        if path.exists():
            try:
                return WorldModelConfig.from_json(path)
            except (ValueError, TypeError) as e:  # JSONDecodeError is a ValueError
                raise ValueError(f"{path}: not a valid world model config ({e})") from None
    raise FileNotFoundError(f"{run}: no config.json (is this a run directory?)")


def load(run: str | Path, device: str | torch.device = "cpu", require_dynamics: bool = True):
    """``worldmodel.load(RUN)``: rebuilds the WorldModel from RUN/config.json and loads both stages
    (``device="auto"``: CUDA when there is one). Errors name the file that is missing or damaged."""
    from worldmodel.model import WorldModel

    run = Path(run)
    cfg = load_config(run)
    model = WorldModel(cfg).to(resolve_device(device))
    load_stage(run, "tokenizer", model.tokenizer)
    if has_stage(run, "dynamics"):
        load_stage(run, "dynamics", model.dynamics)
    elif require_dynamics:
        raise FileNotFoundError(f"{run}: the dynamics stage has no checkpoint yet (train --stage dynamics)")
    return model.eval()
