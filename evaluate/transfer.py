"""Dream-to-real transfer: does a policy trained only inside the world model work in the real scene?

    python -m evaluate.transfer --env WorldGym/BouncingBalls-v0 --checkpoint runs/bb --timesteps 20000 \\
        --eval-episodes 20 --max-steps 200 --seed 0 --out reports/transfer

Stable-Baselines3 PPO (``CnnPolicy`` on the H×W×3 uint8 frames, the same hyperparameters, seed, number
of parallel environments and budget of ``--timesteps`` environment steps, rounded up to whole rollouts
of ``n_steps`` × ``--num-envs``: ``config.timesteps`` is what was trained) is trained twice:

* **dream-trained**: in the dream (``worldmodel.dream_vector.DreamVectorEnv`` of ``--checkpoint``, all
  dreams stepped in one batched call; rewards and terminations come from the model's heads);
* **real-trained**: in the real scene at the checkpoint's frame size (an SB3 ``DummyVecEnv``: on a
  2-core machine, one process beats subprocess workers, see the README's vector-env note).

Then three policies play the REAL scene on the same held-out seeds (``--eval-seed`` … ``+ episodes-1``;
training never resets to an explicit seed there): the dream-trained policy, the real-trained policy and
uniformly random actions; trained policies act deterministically (the mode of their action
distribution; ``--stochastic`` samples instead). The dream-trained policy also plays the dream from
the same seeds (a dream episode starts from the real frames of its seed), which gives

    transfer_ratio    = (R_real(dream-trained) − R_real(random)) / (R_real(real-trained) − R_real(random))
    exploitation_gap  = R_dream(dream-trained) − R_real(dream-trained)

A ratio of 1 means the dream was as good a training ground as the scene itself, 0 no better than
acting at random. A large positive gap means the policy found rewards that exist only in the dream
(model errors it exploits). The ratio is only meaningful when the real-trained policy clearly beats
random: ``transfer_ratio`` is null when it does not beat random at all, and ``transfer_ratio_reliable``
is false unless the margin exceeds two standard errors. Episodes are capped at ``--max-steps`` steps
in training and evaluation (the dream's horizon), so small budgets stay affordable. A dream episode
begins after the ``--context`` real frames it starts from, so it is up to context − 1 steps shorter
than the real episode of the same seed.

Outputs under ``--out``: ``transfer.json`` (schema below, validated on write), ``policies/dream.zip``
and ``policies/real.zip`` (SB3 models; ``python -m collect --policy sb3:DIR/policies/dream.zip``
records the policy, loaded without unpickling) with a ``.json`` each saying how it was trained:
``--resume`` reuses a policy whose training settings and checkpoint weights are unchanged.

``transfer.json``::

    {"schema": "worldgym.transfer/1", "created": ISO time, "command": str, "env_id": str,
     "checkpoint": str, "checkpoint_sha256": str (tokenizer + dynamics weights),
     "config": {"timesteps" (trained), "timesteps_requested", "eval_episodes", "eval_seeds": [int, …],
                "seed", "max_steps", "num_envs", "temperature", "context", "device", "deterministic",
                "width", "height", "ppo": {SB3 PPO hyperparameters}},
     "policies": {"random":        {"real": STATS},
                  "real-trained":  {"real": STATS, "train_time_s": float, "resumed": bool},
                  "dream-trained": {"real": STATS, "dream": STATS, "train_time_s": float, "resumed": bool}},
     "transfer_ratio": float | null, "transfer_ratio_reliable": bool, "note": str,
     "exploitation_gap": float, "wall_time_s": float}
    STATS = {"mean", "std", "sem" (std / √n), "min", "max": float, "episodes": int,
             "returns": [float, …], "lengths": [int, …], "seeds": [int, …]}

Exit status 0, or 2 with a one-line ``error:`` for a bad checkpoint, an ``--env`` the checkpoint was
not trained on, or bad arguments.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import envs  # noqa: E402,F401  (registers WorldGym/*)
from evaluate.schema import validate  # noqa: E402

SCHEMA = "worldgym.transfer/1"
#: First evaluation seed by default: far from the small seeds training and ``collect`` start from.
EVAL_SEED = 1_000_000
#: NatureCNN (SB3's CnnPolicy) needs at least 36 px per side: 8/4 → 4/2 → 3/1 convolutions.
MIN_CNN_SIZE = 36
POLICY_NAMES = ("random", "real-trained", "dream-trained")

_STATS = {"type": "object",
          "required": ["mean", "std", "sem", "min", "max", "episodes", "returns", "lengths", "seeds"],
          "properties": {"mean": {"type": "number"}, "std": {"type": "number"}, "sem": {"type": "number"},
                         "episodes": {"type": "integer"},
                         "returns": {"type": "array", "minItems": 1, "items": {"type": "number"}},
                         "lengths": {"type": "array", "items": {"type": "integer"}},
                         "seeds": {"type": "array", "items": {"type": "integer"}}}}
_TRAINED = {"type": "object", "required": ["real", "train_time_s", "resumed"],
            "properties": {"real": _STATS, "dream": _STATS, "train_time_s": {"type": "number"},
                           "resumed": {"type": "boolean"}}}
TRANSFER_SCHEMA = {
    "type": "object",
    "required": ["schema", "created", "command", "env_id", "checkpoint", "checkpoint_sha256", "config",
                 "policies", "transfer_ratio", "transfer_ratio_reliable", "note", "exploitation_gap",
                 "wall_time_s"],
    "properties": {
        "schema": {"enum": [SCHEMA]},
        "env_id": {"type": "string"},
        "checkpoint": {"type": "string"},
        "config": {"type": "object", "required": ["timesteps", "eval_episodes", "eval_seeds", "seed",
                                                  "max_steps", "num_envs", "temperature", "context",
                                                  "width", "height", "ppo"]},
        "policies": {"type": "object", "required": list(POLICY_NAMES),
                     "properties": {"random": {"type": "object", "required": ["real"],
                                               "properties": {"real": _STATS}},
                                    "real-trained": _TRAINED,
                                    "dream-trained": {**_TRAINED,
                                                      "required": ["real", "dream", "train_time_s",
                                                                   "resumed"]}}},
        "transfer_ratio": {"type": ["number", "null"]},
        "transfer_ratio_reliable": {"type": "boolean"},
        "note": {"type": "string"},
        "exploitation_gap": {"type": ["number", "null"]},
        "wall_time_s": {"type": "number"},
    },
}


class TransferError(Exception):
    """A problem with the inputs (checkpoint, scene, arguments): reported as one ``error:`` line."""


def _arg(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class Args:
    checkpoint: str = _arg("", "world model run folder (python -m worldmodel.train --out RUN); required")
    env: str = _arg("", "scene id; must be the scene the checkpoint was trained on (default: that scene)")
    timesteps: int = _arg(20_000, "PPO training steps, the same budget in the dream and in the real scene "
                           "(rounded up to whole rollouts of n-steps x num-envs)")
    eval_episodes: int = _arg(20, "evaluation episodes per policy (the same held-out seeds for every policy)")
    eval_seed: int = _arg(EVAL_SEED, "first evaluation seed (episode i uses eval_seed + i)")
    seed: int = _arg(0, "training seed (PPO, real environments, dream starts) and the random policy's")
    max_steps: int = _arg(200, "episode length cap in training and evaluation (the dream's horizon)")
    num_envs: int = _arg(4, "parallel environments for PPO, in the dream and in the real scene")
    n_steps: int = _arg(128, "PPO rollout length per environment (reduced for tiny budgets)")
    n_epochs: int = _arg(4, "PPO epochs per rollout")
    learning_rate: float = _arg(2.5e-4, "PPO learning rate")
    temperature: float = _arg(1.0, "dream sampling temperature")
    context: int = _arg(4, "real frames a dream episode starts from")
    device: str = _arg("auto", "auto | cpu | cuda | cuda:N, for the world model and PPO")
    threads: int = _arg(0, "CPU threads for torch (0: torch's choice; use 1 on a busy shared machine)")
    out: str = _arg("reports/transfer", "output folder for transfer.json and policies/")
    stochastic: bool = _arg(False, "trained policies sample their actions in evaluation (default: the mode; "
                            "an undertrained deterministic policy often repeats one action)")
    resume: bool = _arg(False, "reuse policies in --out/policies trained with the same settings")
    quiet: bool = _arg(False, "no progress bars")


def parse_args(argv=None) -> Args:
    p = argparse.ArgumentParser(prog="python -m evaluate.transfer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(Args):
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            p.add_argument(flag, action="store_true", help=f.metadata["help"])
        else:
            kind = {"int": int, "str": str, "float": float}[f.type] if isinstance(f.type, str) else f.type
            p.add_argument(flag, type=kind, default=f.default, required=f.name == "checkpoint",
                           help=f"{f.metadata['help']} (default: {f.default!r})")
    args = Args(**vars(p.parse_args(argv)))
    checks = {"--timesteps": args.timesteps >= 2, "--eval-episodes": args.eval_episodes >= 1,
              "--max-steps": args.max_steps >= 1, "--num-envs": args.num_envs >= 1,
              "--n-steps": args.n_steps >= 1, "--n-epochs": args.n_epochs >= 1,
              "--context": args.context >= 1,
              "--temperature": math.isfinite(args.temperature) and args.temperature >= 0,
              "--threads": args.threads >= 0}
    problems = [name for name, ok in checks.items() if not ok]
    if problems:
        p.error(f"out of range: {', '.join(problems)} (timesteps >= 2, the others >= 1, "
                "temperature and threads >= 0)")
    from worldmodel.distributed import resolve_device

    try:
        resolve_device(args.device)
    except ValueError as e:
        p.error(f"--device: {e}")
    return args


# ---------------------------------------------------------------------- the checkpoint and the scene
@dataclass
class Target:
    """What the checkpoint and the scene agree on: scene id, frame size, action mode."""

    env_id: str
    width: int
    height: int
    continuous: bool
    sha256: str

    def make(self, max_steps: int | None = None) -> gym.Env:
        kw = {"continuous": True} if self.continuous else {}
        return gym.make(self.env_id, render_mode="rgb_array", width=self.width, height=self.height,
                        max_episode_steps=max_steps, **kw)


def check_checkpoint(checkpoint: str | Path, env_id: str = "") -> Target:
    """Checks that ``checkpoint`` is a trained run of ``env_id`` (default: its own scene) that PPO's
    CnnPolicy can use; raises ``TransferError`` saying what is wrong and what to do."""
    from worldmodel.checkpoint import has_stage, load_config
    from worldmodel.config import space_spec

    run = Path(checkpoint)
    if not run.is_dir():
        raise TransferError(f"--checkpoint {run}: no such directory (expected a run folder of "
                            "`python -m worldmodel.train --out RUN`)")
    try:
        cfg = load_config(run)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as e:
        raise TransferError(f"--checkpoint {run}: not a world model run folder ({e})") from None
    missing = [s for s in ("tokenizer", "dynamics") if not has_stage(run, s)]
    if missing:
        raise TransferError(f"--checkpoint {run}: no trained {' or '.join(missing)} stage yet "
                            "(train it with python -m worldmodel.train)")
    if not env_id:
        if not cfg.env_id:
            raise TransferError(f"--checkpoint {run} does not record its scene: pass --env")
        env_id = cfg.env_id
    if env_id not in gym.registry:
        raise TransferError(f"--env {env_id}: unknown scene; choose from {', '.join(envs.SCENE_IDS)}")
    if cfg.env_id and cfg.env_id != env_id:
        raise TransferError(f"--checkpoint {run} was trained on {cfg.env_id}, not {env_id}: a dream of "
                            f"one scene says nothing about another (pass --env {cfg.env_id})")
    width, height = int(cfg.tokenizer.width), int(cfg.tokenizer.height)
    if min(width, height) < MIN_CNN_SIZE:
        raise TransferError(f"--checkpoint {run} makes {width}x{height} frames; SB3's CnnPolicy "
                            f"(NatureCNN) needs at least {MIN_CNN_SIZE}x{MIN_CNN_SIZE}")
    continuous = cfg.action_space.get("type") == "box"
    target = Target(env_id, width, height, continuous, _weights_sha256(run))
    env = target.make()
    try:
        if space_spec(env.action_space) != cfg.action_space:
            raise TransferError(f"--checkpoint {run} acts in {cfg.action_space}, {env_id} in "
                                f"{space_spec(env.action_space)}: not the scene it was trained on")
    finally:
        env.close()
    return target


def _weights_sha256(run: Path) -> str:
    h = hashlib.sha256()
    for stage in ("tokenizer", "dynamics"):
        with open(run / stage / "model.safetensors", "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------- environments
def real_vec_env(target: Target, num_envs: int, max_steps: int, seed: int):
    """SB3 VecEnv of the real scene (Monitor-wrapped, episodes capped at ``max_steps``)."""
    from stable_baselines3.common.env_util import make_vec_env

    kw = {"render_mode": "rgb_array", "width": target.width, "height": target.height,
          "max_episode_steps": max_steps, **({"continuous": True} if target.continuous else {})}
    return make_vec_env(target.env_id, n_envs=num_envs, seed=seed, env_kwargs=kw)


def _dream_api():
    try:
        from worldmodel.dream_vector import DreamVectorEnv, to_sb3
    except ImportError as e:
        raise TransferError(f"the dream environment (worldmodel.dream_vector) is not available: {e}") from e
    return DreamVectorEnv, to_sb3


def dream_vec(args: Args, num_envs: int):
    DreamVectorEnv, _ = _dream_api()
    return DreamVectorEnv(args.checkpoint, num_envs, temperature=args.temperature, context=args.context,
                          horizon=args.max_steps, device=args.device)


# ---------------------------------------------------------------------- PPO
def ppo_params(args: Args) -> dict:
    """PPO hyperparameters (Atari-style, sized down for small budgets: one rollout of ``n_steps`` per
    environment is never much more than ``--timesteps``)."""
    n_steps = max(2, min(args.n_steps, math.ceil(args.timesteps / args.num_envs)))
    return {"n_steps": n_steps, "batch_size": min(64, n_steps * args.num_envs), "n_epochs": args.n_epochs,
            "learning_rate": args.learning_rate, "gamma": 0.99, "gae_lambda": 0.95, "clip_range": 0.1,
            "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5}


def trained_steps(args: Args) -> int:
    """The environment steps PPO trains on: SB3 collects whole rollouts of ``n_steps`` × ``--num-envs``
    until it has at least ``--timesteps``, so the budget is rounded up to that (``--timesteps 24
    --n-steps 8 --num-envs 2`` trains 32 steps; the default 20,000 with 4 environments, 20,480)."""
    rollout = ppo_params(args)["n_steps"] * args.num_envs
    return math.ceil(args.timesteps / rollout) * rollout


def _progress_callback(total: int, desc: str, disable: bool):
    from stable_baselines3.common.callbacks import BaseCallback

    class Progress(BaseCallback):
        """tqdm over environment steps (SB3's own bar needs ``rich``)."""

        def _on_training_start(self) -> None:
            self.bar = tqdm(total=total, desc=desc, unit="step", disable=disable, file=sys.stderr,
                            dynamic_ncols=True)

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return Progress()


def _train_meta(args: Args, target: Target, where: str) -> dict:
    """Everything a trained policy depends on: equal metadata means an equal policy (``--resume``)."""
    # a policy trained in the real scene does not depend on the world model, only on the frame size
    model = ({"checkpoint_sha256": target.sha256} if where == "dream"
             else {"size": [target.width, target.height]})
    return {"schema": SCHEMA, "where": where, "env_id": target.env_id, **model,
            "timesteps": args.timesteps, "seed": args.seed, "max_steps": args.max_steps,
            "num_envs": args.num_envs, "ppo": ppo_params(args),
            **({"temperature": args.temperature, "context": args.context} if where == "dream" else {})}


def load_policy(path: Path, device: str = "cpu"):
    """An SB3 PPO zip, loaded without unpickling (``collect.policies``' loader)."""
    from collect.policies import _sb3_class, _without_pickle

    cls, data = _sb3_class(path)
    return cls.load(str(path), device=device, custom_objects=_without_pickle(data, str(path)))


def train_policy(args: Args, target: Target, where: str, out: Path):
    """PPO in the ``dream`` or the ``real`` scene; returns (model, train seconds, resumed?)."""
    from stable_baselines3 import PPO

    zip_path, meta_path = out / "policies" / f"{where}.zip", out / "policies" / f"{where}.json"
    meta = _train_meta(args, target, where)
    if args.resume and zip_path.exists() and meta_path.exists():
        old = json.loads(meta_path.read_text())
        if {k: v for k, v in old.items() if k not in ("train_time_s", "trained_timesteps")} == meta:
            print(f"[{where}] reusing {zip_path} (same settings and checkpoint)", file=sys.stderr)
            return load_policy(zip_path, args.device), float(old.get("train_time_s", 0.0)), True
        print(f"[{where}] {zip_path} was trained with other settings: training again", file=sys.stderr)
    if where == "dream":
        _, to_sb3 = _dream_api()
        venv = to_sb3(dream_vec(args, args.num_envs))
    else:
        venv = real_vec_env(target, args.num_envs, args.max_steps, args.seed)
    t0 = time.perf_counter()
    try:
        model = PPO("CnnPolicy", venv, seed=args.seed, device=args.device, verbose=0,
                    **ppo_params(args))
        desc = "PPO in the " + ("real scene" if where == "real" else "dream")
        steps = trained_steps(args)
        model.learn(steps, callback=_progress_callback(steps, desc, args.quiet))
    finally:
        venv.close()
    seconds = time.perf_counter() - t0
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    # the training-time buffers (last observations, episode infos) would be stored as pickles
    model.save(str(zip_path), exclude=["_last_obs", "_last_original_obs", "_last_episode_starts",
                                       "ep_info_buffer", "ep_success_buffer"])
    _write_json(meta_path, {**meta, "trained_timesteps": int(model.num_timesteps), "train_time_s": seconds})
    return model, seconds, False


# ---------------------------------------------------------------------- evaluation
def sb3_actor(model, deterministic: bool = True):
    """Batched actions (the mode of the policy's distribution, or a sample): (n, H, W, 3) uint8 → (n,)
    or (n, D). Sampling draws from torch's global generator, seeded in ``run``."""
    def act(obs: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(obs, deterministic=deterministic)[0])
    return act


def random_actor(action_space: gym.Space, seed: int):
    space = copy.deepcopy(action_space)
    space.seed(int(seed))

    def act(obs: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(space.sample()) for _ in range(len(obs))])
    return act


def evaluate_real(act, target: Target, seeds: list[int], max_steps: int, desc: str = "",
                  progress: bool = True) -> dict:
    """One real episode per seed (capped at ``max_steps``), all stepped together so the policy sees
    one batch per step; returns STATS (see the module docstring)."""
    scenes = [target.make(max_steps) for _ in seeds]
    n = len(seeds)
    obs = np.stack([e.reset(seed=int(s))[0] for e, s in zip(scenes, seeds)])
    returns, lengths, live = np.zeros(n), np.zeros(n, np.int64), np.ones(n, bool)
    bar = tqdm(total=n, desc=desc, unit="episode", disable=not progress, file=sys.stderr, leave=False)
    while live.any():
        idx = np.flatnonzero(live)
        actions = act(obs[idx])
        for j, i in enumerate(idx):
            a = actions[j]
            o, r, term, trunc, _ = scenes[i].step(int(a) if np.ndim(a) == 0 else a)
            returns[i] += float(r)
            lengths[i] += 1
            obs[i] = o
            if term or trunc:
                live[i] = False
                bar.update(1)
    bar.close()
    for e in scenes:
        e.close()
    return stats(returns, lengths, seeds)


def evaluate_dream(act, args: Args, seeds: list[int], desc: str = "", progress: bool = True,
                   batch: int = 32) -> dict:
    """One dream episode per seed (starting from the real frames of that seed), ``batch`` dreams per
    batched model call; an episode counts until its first termination or truncation."""
    returns, lengths = np.zeros(len(seeds)), np.zeros(len(seeds), np.int64)
    bar = tqdm(total=len(seeds), desc=desc, unit="episode", disable=not progress, file=sys.stderr,
               leave=False)
    for start in range(0, len(seeds), batch):
        chunk = seeds[start:start + batch]
        vec = dream_vec(args, len(chunk))
        try:
            obs, _ = vec.reset(seed=[int(s) for s in chunk])
            live = np.ones(len(chunk), bool)
            for _ in range(args.max_steps + args.context + 1):  # the dream truncates at max_steps
                if not live.any():
                    break
                obs, rew, term, trunc, _ = vec.step(act(np.asarray(obs)))
                rows = np.flatnonzero(live)
                returns[start + rows] += np.asarray(rew, np.float64)[rows]
                lengths[start + rows] += 1
                ended = live & (np.asarray(term) | np.asarray(trunc))
                live &= ~ended
                bar.update(int(ended.sum()))
            if live.any():
                raise RuntimeError(f"the dream did not end its episodes within {args.max_steps} steps "
                                   "(expected truncation at --max-steps)")
        finally:
            vec.close()
    bar.close()
    return stats(returns, lengths, seeds)


def stats(returns, lengths, seeds) -> dict:
    r = np.asarray(returns, np.float64)
    std = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    return {"mean": float(r.mean()), "std": std, "sem": std / math.sqrt(len(r)), "min": float(r.min()),
            "max": float(r.max()), "episodes": len(r), "returns": [float(x) for x in r],
            "lengths": [int(x) for x in lengths], "seeds": [int(s) for s in seeds]}


def transfer_figures(policies: dict) -> dict:
    """transfer_ratio (null unless the real-trained policy beats random), whether the margin is
    reliable (> 2 standard errors of the difference), a note saying why, and the exploitation gap."""
    rand, real = policies["random"]["real"], policies["real-trained"]["real"]
    dream = policies["dream-trained"]
    margin = real["mean"] - rand["mean"]
    se = math.hypot(real["sem"], rand["sem"])
    if margin <= 1e-9:
        ratio, reliable = None, False
        note = (f"the real-trained policy does not beat random ({real['mean']:.3f} vs {rand['mean']:.3f}): "
                "no budget to compare against; train longer (--timesteps)")
    else:
        ratio = (dream["real"]["mean"] - rand["mean"]) / margin
        reliable = margin > 2 * se
        note = ("real-trained beats random by more than 2 standard errors" if reliable else
                f"real-trained beats random by {margin:.3f}, within 2 standard errors ({2 * se:.3f}): "
                "the ratio is noise; more --timesteps or --eval-episodes")
    gap = dream["dream"]["mean"] - dream["real"]["mean"]
    return {"transfer_ratio": ratio, "transfer_ratio_reliable": bool(reliable), "note": note,
            "exploitation_gap": gap}


# ---------------------------------------------------------------------- output
def _write_json(path: Path, obj: dict) -> None:
    from evaluate.report import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def table(result: dict) -> str:
    """The result as a Markdown table and two lines of figures."""
    pol = result["policies"]
    cfg = result["config"]

    def cell(s):
        return f"{s['mean']:.3f} ± {s['sem']:.3f}" if s else "–"

    rows = ["| policy | trained on | real return (mean ± s.e.) | dream return | mean length (real) |",
            "|---|---|---|---|---|"]
    for name, where in (("random", "–"), ("real-trained", f"{cfg['timesteps']} real steps"),
                        ("dream-trained", f"{cfg['timesteps']} dream steps")):
        p = pol[name]
        rows.append(f"| {name} | {where} | {cell(p['real'])} | {cell(p.get('dream'))} | "
                    f"{np.mean(p['real']['lengths']):.1f} |")
    ratio = result["transfer_ratio"]
    rows.append("")
    rows.append("transfer ratio (dream-trained − random) / (real-trained − random): "
                + ("undefined" if ratio is None else f"{ratio:.3f}")
                + ("" if result["transfer_ratio_reliable"] else "  [not reliable]")
                + f"\n  {result['note']}")
    gap = result["exploitation_gap"]
    rows.append("exploitation gap (dream − real return of the dream-trained policy): "
                + ("–" if gap is None else f"{gap:+.3f}"))
    return "\n".join(rows)


def run(args: Args, command: str = "") -> dict:
    """Trains, evaluates, writes ``transfer.json``; returns its content."""
    t0 = time.perf_counter()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    target = check_checkpoint(args.checkpoint, args.env)
    _dream_api()  # fail before any training when the dream is missing
    if trained_steps(args) != args.timesteps:
        print(f"note: --timesteps {args.timesteps} is rounded up to {trained_steps(args)}: PPO trains on "
              f"whole rollouts of {ppo_params(args)['n_steps']} steps x {args.num_envs} environments",
              file=sys.stderr)
    if args.eval_episodes < 20:
        print(f"note: {args.eval_episodes} evaluation episodes (< 20): the returns are noisy",
              file=sys.stderr)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file in the way, no permission: before any training
        raise TransferError(f"--out {out} cannot be created: {e.strerror or e}") from None
    seeds = [args.eval_seed + i for i in range(args.eval_episodes)]
    progress = not args.quiet
    policies: dict = {}
    trained = {}
    for where in ("real", "dream"):
        model, seconds, resumed = train_policy(args, target, where, out)
        trained[where] = model
        policies[f"{where}-trained"] = {"train_time_s": seconds, "resumed": resumed}
    probe = target.make()
    action_space = probe.action_space
    probe.close()
    policies["random"] = {"real": evaluate_real(random_actor(action_space, args.seed), target, seeds,
                                                args.max_steps, "random in the real scene", progress)}
    import torch

    deterministic = not args.stochastic
    for where in ("real", "dream"):
        torch.manual_seed(args.seed)
        policies[f"{where}-trained"]["real"] = evaluate_real(
            sb3_actor(trained[where], deterministic), target, seeds, args.max_steps,
            f"{where}-trained in the real scene", progress)
    torch.manual_seed(args.seed)
    policies["dream-trained"]["dream"] = evaluate_dream(sb3_actor(trained["dream"], deterministic), args,
                                                        seeds, "dream-trained in the dream", progress)
    result = {"schema": SCHEMA, "created": dt.datetime.now().isoformat(timespec="seconds"),
              "command": command, "env_id": target.env_id, "checkpoint": str(args.checkpoint),
              "checkpoint_sha256": target.sha256,
              "config": {"timesteps": trained_steps(args), "timesteps_requested": args.timesteps,
                         "eval_episodes": args.eval_episodes,
                         "eval_seeds": seeds, "seed": args.seed, "max_steps": args.max_steps,
                         "num_envs": args.num_envs,
                         "temperature": args.temperature, "context": args.context, "device": args.device,
                         "deterministic": deterministic, "width": target.width, "height": target.height,
                         "ppo": ppo_params(args)},
              "policies": {k: policies[k] for k in POLICY_NAMES},
              **transfer_figures(policies), "wall_time_s": 0.0}
    result["wall_time_s"] = time.perf_counter() - t0
    validate(result, TRANSFER_SCHEMA)
    _write_json(out / "transfer.json", result)
    return result


def load_transfer(path: str | Path) -> dict:
    """A ``transfer.json``, validated (``ValueError`` naming what is wrong)."""
    data = json.loads(Path(path).read_text())
    validate(data, TRANSFER_SCHEMA)
    return data


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "python -m evaluate.transfer " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        result = run(args, command)
    except TransferError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"\n{result['env_id']}, checkpoint {result['checkpoint']}: {args.eval_episodes} real episodes per "
          f"policy (seeds {args.eval_seed}…), at most {args.max_steps} steps")
    print(table(result))
    print(f"\nwrote {Path(args.out) / 'transfer.json'} in {result['wall_time_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
