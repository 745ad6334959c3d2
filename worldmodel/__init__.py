"""World model: VQ-VAE tokenizer + action-conditioned memory-bank transformer (see README.md).

    import worldmodel
    model = worldmodel.load("runs/bb")                       # rebuilt from RUN/config.json, no pickle
    out = model.generate(context_frames, actions, horizon=30, num_samples=4, seed=0)

Command lines: ``python -m worldmodel.train``, ``python -m worldmodel.generate``,
``python -m worldmodel.bench``.
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
           "Tokenizer", "Dynamics", "MemoryBank"]
