"""World model: VQ-VAE tokenizer + action-conditioned memory-bank transformer (see README.md).

    import worldmodel
    model = worldmodel.load("runs/bb")                       # rebuilt from RUN/config.json, no pickle
    out = model.generate(context_frames, actions, horizon=30, num_samples=4, seed=0)

Command lines: ``python -m worldmodel.train``, ``python -m worldmodel.generate``,
``python -m worldmodel.bench``, ``python -m worldmodel.dream`` (play a dream), ``python -m worldmodel.soak``.

Dreams as environments: ``DreamEnv`` (``gym.make("WorldGym/Dream-v0", checkpoint=RUN)``),
``DreamVectorEnv`` and ``to_sb3`` (imported on first use: they pull in gymnasium and the scenes).
"""
from worldmodel.checkpoint import load, load_config, load_stage, save_stage
from worldmodel.config import (
                               DynamicsConfig,
                               TokenizerConfig,
                               TrainConfig,
                               WorldModelConfig,
                               preset,
                               space_spec,
)
from worldmodel.dynamics import Dynamics
from worldmodel.memory import MemoryBank
from worldmodel.model import GenerateOutput, WorldModel
from worldmodel.tokenizer import Tokenizer

__all__ = ["load", "load_config", "load_stage", "save_stage", "WorldModelConfig", "TokenizerConfig",
           "DynamicsConfig", "TrainConfig", "preset", "space_spec", "WorldModel", "GenerateOutput",
           "Tokenizer", "Dynamics", "MemoryBank", "DreamEnv", "DreamVectorEnv", "to_sb3"]

_LAZY = {"DreamEnv": "worldmodel.dream_env", "DreamVectorEnv": "worldmodel.dream_vector",
         "to_sb3": "worldmodel.dream_vector"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'worldmodel' has no attribute {name!r}")
