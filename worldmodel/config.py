"""Configuration dataclasses and presets.

A :class:`WorldModelConfig` holds everything needed to rebuild a model from nothing (no weights, no
pickle): the tokenizer, the dynamics, the training recipe and the scene's spaces. It round-trips
through JSON (``to_json`` / ``from_json``); checkpoints store it as ``config.json``.

Presets (``preset(name)``) share one code path and differ only in sizes:

=========  ==========  ======================  ===========================================
preset     frames      tokens / frame          use
=========  ==========  ======================  ===========================================
tiny       64×64       16×16 (8×8 positions)   trains on 2 CPU cores in minutes
small      64×64       16×16 (8×8 positions)   one GPU, hours
base       128×128     16×16 (8×8 positions)   one GPU, a day
seed163m   256×256     32×32 (16×16 positions) the seed prototype's size (≈163M parameters)
=========  ==========  ======================  ===========================================
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TokenizerConfig:
    height: int = 64  # frame height in pixels (frames of another size are resized)
    width: int = 64  # frame width in pixels
    channels: tuple[int, ...] = (16, 32, 64)  # decoder conv widths, full resolution first (one per level)
    res_blocks: int = 1  # residual blocks per resolution level (decoder; encoder "conv")
    encoder: str = "patch"  # "patch": a code sees only its own pixels (stable codes); "conv": a conv pyramid
    encoder_width: int = 128  # hidden width of the patch encoder
    encoder_blocks: int = 2  # residual per-patch MLP blocks of the patch encoder
    codebook_size: int = 512  # number of discrete codes V
    code_dim: int = 32  # dimension of a code vector
    ema_decay: float = 0.99  # EMA decay of the codebook statistics
    commitment: float = 0.25  # weight of the commitment loss ||z - sg(q)||²
    restart_every: int = 50  # look for dead codes every this many training steps
    fg_weight: float = 8.0  # loss weight of pixels that differ from the frame's background colour
    # recompute each residual block's activations in the backward pass instead of keeping them (training
    # only; same loss and gradients, less memory, about one extra forward of those blocks in time)
    checkpoint_activations: bool = False

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channels) - 1)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w): the token grid of one frame."""
        return self.height // self.downsample, self.width // self.downsample


SCHEDULES = ("cosine", "adaptive")  # MaskGIT commit schedules (worldmodel/dynamics.py's docstring)


@dataclass
class DynamicsConfig:
    d_model: int = 128  # transformer width
    n_layers: int = 4  # transformer blocks
    n_heads: int = 4  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden = mlp_ratio × d_model
    token_dim: int = 32  # embedding size of one token (initialised from the tokenizer's codebook when equal)
    patch: int = 2  # p: p×p neighbouring tokens are merged into one transformer position
    context: int = 4  # K: frames in the self-attention window (older frames live only in the memory bank)
    train_frames: int = 6  # T: frames per training window (T-1 next-frame predictions per window)
    memory_slots: int = 8  # M: slots of the recurrent memory bank
    maskgit_steps: int = 4  # sequential passes per generated frame (MaskGIT)
    # which codes each pass commits: "cosine" (MaskGIT's) or "adaptive" (all sure codes at once, the
    # unsure ones spread over the passes; dynamics.py); a generation setting, overridable per call
    maskgit_schedule: str = "cosine"
    maskgit_confidence: float = 0.9  # "adaptive": a code is sure when p(most likely value) ≥ this
    changed_weight: float = 4.0  # loss weight of target tokens that differ from the previous frame's token
    noise_max: float = 0.3  # largest fraction of context tokens replaced by random codes (augmentation)
    noise_buckets: int = 8  # noise levels, embedded and given to the model (level 0 at inference)
    noise_prob: float = 0.7  # probability that a context frame is noised at all
    context_action_drop: float = 0.2  # probability that a window's context actions are hidden
    # probability that a context frame (not the first) is replaced by the model's own one-pass argmax
    # prediction of it from the real frames before it (no gradient): training on its own errors against
    # drift, DIAMOND/scheduled-sampling style (0 = off; costs one forward without gradients per step;
    # measured as a fine-tune: more balls kept, less precisely drawn; worldmodel/README.md)
    own_context_prob: float = 0.0
    # how many of its own steps those predictions go back: 1 = each from the real frames before it; k =
    # the one-pass prediction fed back k times (a Jacobi iteration of the rollout: the first k context
    # frames are exactly the model's own k-step argmax rollout from the window's first frame), so the
    # model learns from contexts that drifted over several of its own frames, as in a dream (k forwards
    # without gradients per step; k = 3 measured as a CPU fine-tune: no less "dream friction" than k = 1
    # or none, worldmodel/README.md)
    own_context_steps: int = 1
    # > 0: a copy path. A learned gate (per code, from the query's state) adds to each code's logits a
    # bonus for the code that was at its place in the newest context frame; the gate starts at this
    # value. Without it, keeping a rare code (a ball's) needs a learned identity map from its input
    # embedding to its logit, which rare codes get late: the model erases them. 0 = off (no weights).
    copy_logit: float = 0.0
    # True: codes are also described by what they look like, their mean pixels on the training data
    # (a 4×4 RGB thumbnail each, measured when the dynamics starts and kept in the checkpoint): they
    # are added to each code's input embedding, and a second head scores every code by its thumbnail.
    # Codes that look alike then share what is learned about them: a ball moving a pixel turns its
    # codes into other codes, and without this each such pair is learned on its own. False = off.
    # Measured on a CPU `tiny` (worldmodel/README.md): faster learning of changed codes; worse rollouts
    # at 1,200-2,400 steps, better at 4,800; in no preset until a GPU A/B.
    pixel_codes: bool = False
    pixel_weight: float = 0.0  # weight of the pixel loss through the frozen decoder (0 = off; 10 tried)
    reward_weight: float = 1.0  # weight of the reward regression loss (symlog MSE)
    termination_weight: float = 0.1  # weight of the termination BCE loss
    # recompute each transformer block's activations in the backward pass instead of keeping them
    # (training only; generation and no-grad passes are unchanged; same loss and gradients)
    checkpoint_activations: bool = False
    # training forward: all frames of a window in one pass per layer instead of one pass per frame (the
    # same loss; far fewer, larger ops: a `small` step is 15,553 eager ops per frame loop, host-bound on
    # a GPU). Opt-in until measured on a GPU (worldmodel/README.md, "Sixth H100 session")
    parallel_frames: bool = False
    # filled from the tokenizer and the scene when a WorldModelConfig is made:
    codebook_size: int = 512
    grid: tuple[int, int] = (16, 16)

    @property
    def positions(self) -> tuple[int, int]:
        """(H, W): transformer positions per frame after merging p×p tokens."""
        return self.grid[0] // self.patch, self.grid[1] // self.patch


@dataclass
class TrainConfig:
    seed: int = 0  # seeds model init, data order, masks and noise
    # tokenizer stage
    tokenizer_steps: int = 3000  # optimizer steps (--steps overrides)
    tokenizer_batch: int = 32  # frames per global batch
    tokenizer_lr: float = 2e-3  # peak learning rate (AdamW, linear warm-up, cosine decay to 10%)
    # dynamics stage
    dynamics_steps: int = 4000
    dynamics_batch: int = 16  # windows per global batch
    dynamics_lr: float = 1e-3
    # shared
    warmup: int = 100  # warm-up steps
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    tokenizer_time_fraction: float = 0.3  # share of --minutes given to the tokenizer when --stage all
    val_fraction: float = 0.1  # episodes held out for validation (by episode)
    log_every: int = 20  # scalars to TensorBoard every N steps
    eval_every: int = 500  # validation (PSNR, rollouts vs copy-last, sample video) every N steps
    checkpoint_every: int = 200  # checkpoint every N steps (and at the end, and on Ctrl-C)
    eval_episodes: int = 16  # held-out episodes per validation
    eval_horizon: int = 16  # generated frames per validation rollout


@dataclass
class WorldModelConfig:
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # the scene's spaces: {"type": "discrete", "n": 3} or {"type": "box", "shape": [1], "low": -1, "high": 1}
    action_space: dict = field(default_factory=lambda: {"type": "discrete", "n": 3})
    env_id: str | None = None  # the scene the data came from (informational)
    preset: str | None = None

    def __post_init__(self):
        self.sync()

    def sync(self) -> WorldModelConfig:
        """Copies what the dynamics must know about the tokenizer into it."""
        self.dynamics.codebook_size = self.tokenizer.codebook_size
        self.dynamics.grid = tuple(self.tokenizer.grid)
        return self

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, d: dict) -> WorldModelConfig:
        d = dict(d)
        sub = {"tokenizer": TokenizerConfig, "dynamics": DynamicsConfig, "train": TrainConfig}
        for key, kind in sub.items():
            if key in d:
                d[key] = _build(kind, d[key])
        return _build(cls, d)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> WorldModelConfig:
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        return cls.from_dict(json.loads(text))


def _build(kind, d: dict):
    """Dataclass from a dict: unknown keys are an error, lists become tuples where the field is a tuple,
    and a bool field given as text ("True", "false", "1", ...; ``--set`` passes what is not JSON as
    text) becomes a bool: the string "False" would otherwise be truthy."""
    names = {f.name: f for f in dataclasses.fields(kind)}
    unknown = set(d) - set(names)
    if unknown:
        raise ValueError(f"{kind.__name__}: unknown keys {sorted(unknown)}; valid: {sorted(names)}")
    out: dict[str, Any] = {}
    for k, v in d.items():
        out[k] = _as_type(f"{kind.__name__}.{k}", str(names[k].type), v)
    return kind(**out)


def _as_type(name: str, hint: str, v):
    """``v`` as the field's type, or a ``ValueError`` naming the field: a hand-edited config.json or a
    ``--set`` with a typo must fail here, not deep inside training or generation."""
    if hint.endswith(" | None"):
        if v is None:
            return None
        hint = hint.removesuffix(" | None")
    if hint in ("bool", "<class 'bool'>"):
        return v if isinstance(v, bool) else _as_bool(name, v)
    if hint in ("int", "<class 'int'>"):
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        raise ValueError(f"{name}: expected an integer, got {v!r}")
    if hint in ("float", "<class 'float'>"):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        raise ValueError(f"{name}: expected a number, got {v!r}")
    if hint in ("str", "<class 'str'>"):
        if isinstance(v, str):
            return v
        raise ValueError(f"{name}: expected text, got {v!r}")
    if hint.startswith("tuple"):
        if isinstance(v, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return tuple(v)
        raise ValueError(f"{name}: expected a list of integers, got {v!r}")
    return v


def _as_bool(name: str, v) -> bool:
    text = str(v).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name}: expected true or false, got {v!r}")


# ---------------------------------------------------------------------- presets
def _tiny() -> WorldModelConfig:
    # dynamics batch 8 / lr 2e-3: on 2 CPU cores the step count, not the batch, limits learning.
    # copy_logit 4: without the copy path a CPU-trained tiny erased every ball and the paddle
    # (persistence 0.00 at T = 0 after 1,200 steps; 0.50 with it: worldmodel/README.md, "The copy path")
    return WorldModelConfig(dynamics=DynamicsConfig(copy_logit=4.0),
                            train=TrainConfig(dynamics_batch=8, dynamics_lr=2e-3, warmup=50), preset="tiny")


def _small() -> WorldModelConfig:
    return WorldModelConfig(
        tokenizer=TokenizerConfig(channels=(64, 128, 128), res_blocks=2, encoder_width=256,
                                  codebook_size=1024, code_dim=64),
        dynamics=DynamicsConfig(d_model=384, n_layers=8, n_heads=6, token_dim=64, context=8,
                                train_frames=16, memory_slots=16),
        train=TrainConfig(tokenizer_steps=20_000, tokenizer_batch=64, tokenizer_lr=1e-3,
                          dynamics_steps=100_000, dynamics_batch=32, dynamics_lr=6e-4, warmup=1000,
                          eval_every=2000, checkpoint_every=1000, eval_episodes=48, eval_horizon=30),
        preset="small")


def _base() -> WorldModelConfig:
    return WorldModelConfig(
        tokenizer=TokenizerConfig(height=128, width=128, channels=(64, 128, 192, 256), res_blocks=2,
                                  encoder_width=384, encoder_blocks=3, codebook_size=1024, code_dim=64),
        dynamics=DynamicsConfig(d_model=768, n_layers=12, n_heads=12, token_dim=64, context=8,
                                train_frames=16, memory_slots=32),
        train=TrainConfig(tokenizer_steps=50_000, tokenizer_batch=64, tokenizer_lr=5e-4,
                          dynamics_steps=200_000, dynamics_batch=32, dynamics_lr=3e-4, warmup=2000,
                          eval_every=5000, checkpoint_every=2000, eval_episodes=64, eval_horizon=30),
        preset="base")


def _seed163m() -> WorldModelConfig:
    """The seed prototype's size: ≈25M tokenizer + ≈138M dynamics, 8 layers, memory bank, 256², seq 32.

    Activation checkpointing is on in both stages. One training step (forward + backward + AdamW) on
    CPU (fp32, 1 thread, ``python -m worldmodel.bench``; worldmodel/README.md) needed, over the weights
    and the optimizer state: dynamics at 2 windows × 8 frames 10.3 GB without, 3.1 GB with (2 × 16
    frames: 5.5 GB with; without, it does not fit in this 23 GB machine); tokenizer at batch 4 3.9 GB
    without, 2.0 GB with. The step was no slower on CPU; on a GPU expect about one extra forward.

    On one H100 (bf16 autocast, worldmodel/README.md): dynamics at 2 × 16 frames 4.25 GB peak; the
    tokenizer 3.59 GB at batch 8, 6.29 GB at 16, 12.3 GB at 32. Its batch is 8 frames, so that both
    stages train within the seed's 5.7 GB."""
    return WorldModelConfig(
        tokenizer=TokenizerConfig(height=256, width=256, channels=(128, 256, 384, 512), res_blocks=2,
                                  encoder_width=512, encoder_blocks=4, codebook_size=1024, code_dim=64,
                                  checkpoint_activations=True),
        dynamics=DynamicsConfig(d_model=960, n_layers=8, n_heads=12, mlp_ratio=4.375, token_dim=64,
                                context=8, train_frames=32, memory_slots=32, checkpoint_activations=True),
        train=TrainConfig(tokenizer_steps=200_000, tokenizer_batch=8, tokenizer_lr=2e-4,
                          dynamics_steps=200_000, dynamics_batch=2, dynamics_lr=2e-4, warmup=2000,
                          eval_every=5000, checkpoint_every=2000, eval_episodes=64, eval_horizon=30),
        preset="seed163m")


PRESETS = {"tiny": _tiny, "small": _small, "base": _base, "seed163m": _seed163m}


def preset(name: str, action_space: dict | None = None, env_id: str | None = None) -> WorldModelConfig:
    """A fresh config for a preset; ``action_space`` from :func:`space_spec` of the scene."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    cfg = PRESETS[name]()
    if action_space is not None:
        cfg.action_space = dict(action_space)
    cfg.env_id = env_id
    return cfg.sync()


def space_spec(space) -> dict:
    """A JSON description of a Gymnasium action space (Discrete or Box)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"type": "discrete", "n": int(space.n)}
    if isinstance(space, spaces.Box):
        return {"type": "box", "shape": [int(s) for s in space.shape],
                "low": [float(x) for x in space.low.reshape(-1)],
                "high": [float(x) for x in space.high.reshape(-1)]}
    raise TypeError(f"unsupported action space {space!r}: only Discrete and Box")
