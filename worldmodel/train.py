"""Train a world model: the tokenizer, then the dynamics (``--stage`` runs one).

    python -m worldmodel.train --data data/bb --preset tiny --out runs/bb --minutes 30
    python -m worldmodel.train --data data/bb --preset tiny --out runs/bb --resume      # after kill -9
    torchrun --nproc_per_node=2 -m worldmodel.train --data data/bb --preset small --out runs/bb2

Both stages share one loop: AdamW (weight decay on matrices only), linear warm-up then cosine decay to
10%, gradient clipping, bf16 autocast + TF32 on CUDA (fp32 on CPU), DDP when started by torchrun
(NCCL on GPUs, gloo on CPU), tqdm progress, TensorBoard under RUN/tb/<stage>, a JSON-lines log under
RUN/logs/<stage>.jsonl, checkpoints every ``checkpoint_every`` steps, at the end and on
Ctrl-C/SIGTERM. Everything random (batches, masks, noise) is a function of (seed, step, sample), so
a resumed run continues exactly where the checkpoint was taken and a batch split over N processes
gives the loss of the same batch in one process.

With ``--minutes M`` the loop measures its speed over steps 5–15 and plans the step count (and so the
learning-rate schedule) to end in time, at most ``--steps`` (default: the preset's); ``--stage all``
gives the tokenizer ``tokenizer_time_fraction`` of M. To train a finished stage further, resume it
with a larger ``--steps`` (and ``--minutes``): its cosine schedule is stretched to the new total.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from worldmodel import checkpoint as ckpt
from worldmodel.config import WorldModelConfig, preset, space_spec
from worldmodel.data import EpisodeStore, sample_rows, sample_seeds
from worldmodel.distributed import Ctx, LossModule, any_across, barrier, mean_across, setup_distributed
from worldmodel.metrics import rollout_eval, summary
from worldmodel.model import WorldModel
from worldmodel.schedule import DeadlinePlanner, lr_at
from worldmodel.tokenizer import psnr, resize_frames


@dataclass
class Args:
    data: str | None = None
    """collected dataset directory (``python -m collect``)"""
    env: str | None = None
    """instead of --data: random-policy rollouts of this scene, made in memory"""
    episodes: int = 200
    """with --env: number of episodes"""
    episode_steps: int = 100
    """with --env: steps per episode at most"""
    continuous: bool = False
    """with --env: the scene's Box(-1, 1) actions (gym.make(..., continuous=True)); a collected
    dataset records its own action mode (python -m collect --continuous)"""
    preset: str = "tiny"
    """tiny | small | base | seed163m (ignored when --out holds a trained stage: its config.json wins)"""
    out: str = "runs/wm"
    """run directory"""
    steps: int | None = None
    """optimizer steps per stage, >= 1 (total, counting steps before a resume; with --minutes, at most
    this many); None: the preset's"""
    minutes: float | None = None
    """wall-clock budget of this invocation in minutes, > 0 (all stages together); None: no budget"""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N"""
    resume: bool = False
    """continue the stages found in --out"""
    stop_at: int | None = None
    """checkpoint and stop when a stage reaches this step (>= 1), keeping its schedule (resume later)"""
    stage: str = "all"
    """tokenizer | dynamics | all"""
    seed: int | None = None
    """overrides train.seed (a new run only: a continued run keeps its seed)"""
    set: list[str] = field(default_factory=list)
    """config overrides, e.g. --set dynamics.d_model=64 train.dynamics_batch=8"""
    threads: int | None = None
    """CPU threads for torch; 0 or None: torch's choice"""
    progress: bool = True
    """tqdm progress bar"""
    eval: bool = True
    """periodic validation (PSNR, rollouts vs copy-last, sample images)"""


def parse_args(argv=None) -> Args:
    p = argparse.ArgumentParser(prog="python -m worldmodel.train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    docs = _field_docs(Args)
    for f in dataclasses.fields(Args):
        name = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if f.type in ("bool", bool):
            p.add_argument(name, action=argparse.BooleanOptionalAction, default=default,
                           help=docs.get(f.name))
        elif f.name == "set":
            p.add_argument(name, nargs="+", action="extend", default=default, metavar="KEY=VALUE",
                           help=docs.get(f.name))
        else:
            kinds = {"int | None": int, "float | None": float, "int": int, "float": float}
            kind = kinds.get(str(f.type), str)
            p.add_argument(name, type=kind, default=default, help=docs.get(f.name))
    ns = p.parse_args(argv)
    args = Args(**vars(ns))
    if (args.data is None) == (args.env is None):
        p.error("give exactly one of --data DIR or --env ID")
    if args.continuous and args.data is not None:
        p.error("--continuous applies to --env: a dataset records its own action mode "
                "(collect it with python -m collect --continuous)")
    if args.stage not in ("tokenizer", "dynamics", "all"):
        p.error("--stage must be tokenizer, dynamics or all")
    problem = check_numbers(args)
    if problem:
        p.error(problem)
    from worldmodel.distributed import resolve_device

    try:
        resolve_device(args.device)
    except ValueError as e:
        p.error(f"--device: {e}")
    return args


def check_numbers(args: Args) -> str | None:
    """The first out-of-range number, as an error line (None: all fine). Checked here, before anything
    is written: ``--steps 0`` once trained the preset's whole schedule and ``--steps -5`` failed later
    with a misleading message, after the refused command was recorded in commands.jsonl."""
    at_least_one = {"--steps": args.steps, "--stop-at": args.stop_at, "--episodes": args.episodes,
                    "--episode-steps": args.episode_steps}
    for name, value in at_least_one.items():
        if value is not None and value < 1:
            return f"{name} must be >= 1, got {value}"
    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        return f"--minutes must be a number > 0, got {args.minutes}"
    if args.threads is not None and args.threads < 0:
        return f"--threads must be >= 0 (0: torch's choice), got {args.threads}"
    return None


def _field_docs(cls) -> dict[str, str]:
    """The docstring under each dataclass field (CleanRL style), read from the source."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(cls))
    docs, body = {}, tree.body[0].body
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
            docs[a.target.id] = str(b.value.value)
    return docs


#: Fields the dynamics copies from the tokenizer (``WorldModelConfig.sync``): set those instead.
DERIVED = {"dynamics.codebook_size": "tokenizer.codebook_size", "dynamics.grid": "the tokenizer's size"}


def apply_overrides(cfg: WorldModelConfig, pairs: list[str]) -> WorldModelConfig:
    """``--set SECTION.FIELD=VALUE`` pairs (VALUE as JSON, else as text), checked against the fields'
    types; ``ValueError`` naming the pair otherwise."""
    d = cfg.to_dict()
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE, e.g. dynamics.d_model=64")
        if key in DERIVED:
            raise ValueError(f"--set {key}: derived from {DERIVED[key]}; set that instead")
        node = d
        *path, last = key.split(".")
        for depth, k in enumerate(path):
            if not isinstance(node, dict) or k not in node:
                valid = sorted(n for n, v in node.items() if isinstance(v, dict)) if isinstance(node, dict) \
                    else []
                raise ValueError(f"--set {key}: no section {'.'.join(path[:depth + 1])!r}; sections: {valid}")
            node = node[k]
        if not isinstance(node, dict) or last not in node or isinstance(node[last], dict):
            raise ValueError(f"--set {key}: no such config field")
        try:
            node[last] = json.loads(value)
        except ValueError:
            node[last] = value
    try:
        return WorldModelConfig.from_dict(d).sync()
    except (TypeError, ValueError) as e:
        raise ValueError(f"--set: {e}") from None


def data_spec(args: Args) -> tuple[dict, str | None]:
    """(action space spec, scene id) of the training data, without loading it."""
    if args.data is not None:
        import collect
        from worldmodel.data import _space_of_dataset

        try:
            ds = collect.open_dataset(args.data)
        except collect.DatasetError as e:
            raise SystemExit(f"--data: {e}") from None
        return _space_of_dataset(ds), ds.env_id
    import gymnasium as gym

    import envs  # noqa: F401  (registers the scenes)

    if args.env not in gym.registry:
        raise SystemExit(f"--env {args.env}: unknown scene id; choose from {', '.join(envs.SCENE_IDS)}")
    try:
        env = gym.make(args.env, **({"continuous": True} if args.continuous else {}))
    except ValueError as e:
        raise SystemExit(f"--env {args.env}: {e}") from None
    try:
        return space_spec(env.action_space), args.env
    finally:
        env.close()


def run_config(args: Args, run: Path) -> tuple[WorldModelConfig, bool]:
    """(config, fresh). A run that has a trained stage keeps its config.json (``--preset`` and
    ``--seed`` do not apply; ``--set`` overrides apply, and the next checkpoint saves them into its
    config.json, which must describe the weights; overrides that change a trained stage's shapes are
    refused in ``main``), so ``--stage dynamics`` after ``--stage tokenizer`` builds the same model;
    its data must be of the same scene and action space. Otherwise the config comes from the preset
    and is written (fresh)."""
    space, env_id = data_spec(args)
    trained = (run / "config.json").exists() and any(ckpt.has_stage(run, s) for s in ckpt.STAGES)
    try:
        if not trained:
            cfg = apply_overrides(preset(args.preset, space, env_id), args.set)
            if args.seed is not None:
                cfg.train.seed = args.seed
            return cfg, True
        cfg = apply_overrides(ckpt.load_config(run), args.set)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    if cfg.action_space != space:
        raise SystemExit(f"{run} was trained with actions {cfg.action_space}; this data has {space}: "
                         "choose another --out")
    if cfg.env_id and env_id and cfg.env_id != env_id:
        raise SystemExit(f"{run} was trained on {cfg.env_id}; this data is {env_id}: choose another --out")
    if args.seed is not None and args.seed != cfg.train.seed:
        raise SystemExit(f"--seed {args.seed}: {run} was trained with seed {cfg.train.seed}, which a "
                         "continued run keeps (choose another --out for another seed)")
    return cfg, False


def make_optimizer(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay = [p for p in module.parameters() if p.requires_grad and p.dim() >= 2]
    other = [p for p in module.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]
    # fused: one kernel for all parameters on CUDA instead of a few per tensor (the tiny models are
    # launch-bound on a GPU)
    fused = all(p.is_cuda for p in decay + other) or None
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=fused)


# ---------------------------------------------------------------------- the shared loop
class _Stop:
    requested = False


def _on_signal(signum, frame):  # noqa: ARG001
    _Stop.requested = True


def train_stage(ctx: Ctx, stage: str, module: nn.Module, batch_fn, eval_fn, peak_lr: float,
                default_steps: int, deadline: float | None, loss_extra: dict | None = None) -> dict:
    """Runs one stage to its planned step count, the deadline or a stop signal. Returns its train state."""
    tc, args = ctx.cfg.train, ctx.args
    opt = make_optimizer(module, peak_lr, tc.weight_decay)
    planned = default_steps if args.steps is None else args.steps
    state = {"stage": stage, "step": 0, "planned_steps": planned, "seed": tc.seed,
             "elapsed_s": 0.0, "done": False, "calibrated": args.minutes is None}
    schedule_until_planned = None
    if ckpt.has_stage(ctx.run, stage):
        if not args.resume:
            raise SystemExit(f"{ctx.run / stage} exists: pass --resume to continue it, "
                             "or choose another --out")
        state.update(ckpt.load_stage(ctx.run, stage, module, opt))
        state["interrupted"] = False
        if not opt.state and state["step"] < (state["planned_steps"] if args.steps is None else args.steps):
            # weights without optimizer state (a packed or exported run): Adam restarts with empty
            # moments, and its first steps at full learning rate knocked a trained model back (the
            # changed-code accuracy fell from 0.51 to 0.20 and took 500 steps to recover), so the
            # learning rate warms up again from here. Saved in the state: a later resume keeps it.
            state["rewarm_from"] = state["step"]
        if args.steps is not None and args.steps != state["planned_steps"]:
            # with --minutes the new length is known only after the planner's first speed sample;
            # until then the learning rate keeps to the schedule the run was on, not to a cosine
            # over --steps (a resumed `small` run spent 15 steps at its peak rate that way)
            schedule_until_planned = state["planned_steps"]
            state.update(planned_steps=args.steps, done=False, calibrated=args.minutes is None)
        if ctx.main:
            print(f"[{stage}] resumed at step {state['step']} of {state['planned_steps']}", flush=True)
    if state["step"] >= state["planned_steps"]:
        state["done"] = True
        return state
    module.train()
    wrapped: nn.Module = LossModule(module, loss_extra)
    if ctx.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        wrapped = DDP(wrapped, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                      broadcast_buffers=False)
    cuda = ctx.device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    writer, log = None, None
    if ctx.main:
        from torch.utils.tensorboard import SummaryWriter

        purge = state["step"] + 1 if state["step"] else None
        writer = SummaryWriter(str(ctx.run / "tb" / stage), purge_step=purge)
        log = _open_log(ctx.run / "logs" / f"{stage}.jsonl", state["step"])
    bar = None
    if ctx.main and args.progress:
        from tqdm import tqdm

        bar = tqdm(total=state["planned_steps"], initial=state["step"], desc=stage, dynamic_ncols=True)
    t_start, step0 = time.time(), state["step"]
    planner = None
    if not state["calibrated"] and deadline is not None:
        planner = DeadlinePlanner(deadline, state["planned_steps"], step0)
    elapsed0 = state["elapsed_s"]
    last_ckpt = state["step"]
    # A step's scalars stay on the device until a flush reads them all at once: reading one (float())
    # waits for the GPU, and a wait every step leaves the GPU idle while the host queues the next.
    pending: list[tuple[int, float, torch.Tensor]] = []  # (step, lr, the scalars in order of `names`)
    names: list[str] = []

    def flush():
        if not pending:
            return
        table = mean_across(torch.stack([vec for *_, vec in pending]).double().cpu(), ctx)
        for (step, lr, _), row in zip(pending, table.tolist()):
            scalars = dict(zip(names, row))
            if ctx.main:
                log.write(json.dumps({"step": step, "lr": lr, **scalars}) + "\n")
                if step % tc.log_every == 0 or step == 1:
                    for k, v in scalars.items():
                        writer.add_scalar(f"{stage}/{k}", v, step)
                    writer.add_scalar(f"{stage}/lr", lr, step)
        if ctx.main:
            log.flush()
        if bar is not None:
            bar.update(len(pending))
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(scalars.items())[:4]}, refresh=False)
        pending.clear()

    def save():
        flush()
        state["elapsed_s"] = elapsed0 + time.time() - t_start
        if ctx.main:
            ckpt.save_stage(ctx.run, stage, module, ctx.cfg, opt, state)
        barrier(ctx)

    try:
        while state["step"] < state["planned_steps"]:
            step = state["step"]
            planned = state["planned_steps"]
            if schedule_until_planned is not None and not state["calibrated"]:
                planned = schedule_until_planned
            lr = lr_at(step, planned, peak_lr, tc.warmup)
            if "rewarm_from" in state:
                lr *= min(1.0, (step - state["rewarm_from"] + 1) / tc.warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            batch = batch_fn(step)
            with autocast:
                out = wrapped(**batch)
            out.loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(module.parameters(), tc.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            state["step"] = step = step + 1
            values = {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
            values = {k: v.detach() for k, v in values.items() if torch.is_tensor(v) and v.dim() == 0}
            values["grad_norm"] = gnorm.detach()
            names[:] = sorted(values)
            pending.append((step, lr, torch.stack([values[k].float() for k in names])))
            if step % tc.log_every == 0 or step == 1 or (planner is not None and planner.due(step)):
                flush()  # a speed sample must see finished steps, not queued ones
            plan = planner.observe(step) if planner is not None else None
            if plan is not None:
                plan = int(mean_across([float(plan)], ctx)[0])
                planner.adopt(step, plan)
                state.update(planned_steps=max(plan, step), calibrated=True)
                if bar is not None:
                    bar.total = state["planned_steps"]
            if step % tc.eval_every == 0:
                flush()  # on every process: under DDP a flush is a collective
                if ctx.main and eval_fn is not None and args.eval:
                    module.eval()
                    eval_fn(step, writer)
                    module.train()
                barrier(ctx)
            if step - last_ckpt >= tc.checkpoint_every:
                save()
                last_ckpt = step
            out_of_time = deadline is not None and time.time() > deadline
            stop_at = args.stop_at is not None and step >= args.stop_at
            if any_across(out_of_time or stop_at or _Stop.requested, ctx):
                state["interrupted"] = bool(stop_at or _Stop.requested)
                break
    except KeyboardInterrupt:
        _Stop.requested = state["interrupted"] = True
    state["done"] = state["step"] >= state["planned_steps"]
    save()
    if ctx.main and eval_fn is not None and args.eval and state["done"] and state["step"] % tc.eval_every:
        module.eval()
        eval_fn(state["step"], writer)
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
        log.close()
    module.eval()
    if state.get("interrupted") and ctx.main:
        print(f"[{stage}] stopped at step {state['step']} of {state['planned_steps']}; "
              "continue with --resume", flush=True)
    elif not state["done"] and ctx.main:  # the deadline came first (e.g. before the planner's sample)
        print(f"[{stage}] out of time at step {state['step']} of {state['planned_steps']} planned; "
              "train further with --resume (and --minutes or --steps)", flush=True)
    return state


def add_gif(writer, tag: str, frames: np.ndarray, step: int, fps: int = 8) -> None:
    """An animated GIF (T, H, W, 3) uint8 as a TensorBoard image summary (what ``add_video`` writes,
    without its moviepy dependency)."""
    import io

    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    frames = [Image.fromarray(f) for f in np.asarray(frames, np.uint8)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps),
                   loop=0)
    h, w = frames[0].height, frames[0].width
    image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=buf.getvalue())
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


def _record_command(run: Path, argv) -> None:
    """Appends this invocation to RUN/commands.jsonl (the model card cites how a run was made)."""
    import shlex
    import sys

    args = sys.argv[1:] if argv is None else list(argv)
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": "python -m worldmodel.train " + " ".join(shlex.quote(str(a)) for a in args)}
    with open(run / "commands.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


def _open_log(path: Path, step: int):
    """The stage's JSON-lines log, truncated to the lines up to ``step`` (after a resume)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = []
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                if json.loads(line)["step"] <= step:
                    keep.append(line)
    path.write_text("".join(line + "\n" for line in keep))
    return open(path, "a")


# ---------------------------------------------------------------------- stages
def _local(n_global: int, ctx: Ctx) -> slice:
    if n_global % ctx.world:
        raise SystemExit(f"the global batch {n_global} is not divisible by {ctx.world} processes")
    b = n_global // ctx.world
    return slice(ctx.rank * b, (ctx.rank + 1) * b)


def run_tokenizer(ctx: Ctx, model: WorldModel, train: EpisodeStore, val: EpisodeStore, deadline) -> dict:
    tc, tk = ctx.cfg.train, ctx.cfg.tokenizer
    index = train.frame_index()
    part = _local(tc.tokenizer_batch, ctx)

    def batch_fn(step):
        rows = sample_rows(index, tc.tokenizer_batch, tc.seed, "tokenizer", step)[part]
        frames = resize_frames(train.frames_at(rows), tk.height, tk.width)
        return {"frames": frames.to(ctx.device, non_blocking=True)}

    held = val if len(val) else train
    vrows = sample_rows(held.frame_index(), 256, tc.seed + 1, "tokenizer", 0)

    def eval_fn(step, writer):
        frames = resize_frames(held.frames_at(vrows), tk.height, tk.width).to(ctx.device)
        with torch.no_grad():
            idx = torch.cat([model.tokenizer.encode(frames[i:i + 64]) for i in range(0, len(frames), 64)])
            recon = torch.cat([model.tokenizer.decode(idx[i:i + 64]) for i in range(0, len(idx), 64)])
        p = float(psnr(recon, frames))
        used = idx.unique().numel() / tk.codebook_size
        writer.add_scalar("tokenizer/val_psnr", p, step)
        writer.add_scalar("tokenizer/val_codes_used", used, step)
        strip = torch.cat([torch.cat(list(frames[:8]), 1), torch.cat(list(recon[:8]), 1)], 0)  # (2H, 8W, 3)
        writer.add_image("tokenizer/real_vs_recon", strip.cpu().numpy(), step, dataformats="HWC")
        print(f"\n[tokenizer] step {step}: val PSNR {p:.2f} dB, {used:.0%} of codes used on 256 val frames",
              flush=True)

    return train_stage(ctx, "tokenizer", model.tokenizer, batch_fn, eval_fn, tc.tokenizer_lr,
                       tc.tokenizer_steps, deadline)


def run_dynamics(ctx: Ctx, model: WorldModel, train: EpisodeStore, val: EpisodeStore, deadline) -> dict:
    tc, dc = ctx.cfg.train, ctx.cfg.dynamics
    if not ckpt.has_stage(ctx.run, "tokenizer"):
        raise SystemExit(f"{ctx.run}: train the tokenizer first (--stage tokenizer)")
    ckpt.load_stage(ctx.run, "tokenizer", model.tokenizer)
    model.tokenizer.eval().requires_grad_(False)
    if not ckpt.has_stage(ctx.run, "dynamics"):
        torch.manual_seed(tc.seed + 1)
        model.dynamics.init_embeddings_from_codebook(model.tokenizer.quantizer.codebook)
    if not train.tokenize(model.tokenizer, ctx.device, progress=ctx.main and ctx.args.progress,
                          cache=ctx.run / "cache" if ctx.main and ctx.world == 1 else None,
                          stop=lambda: _Stop.requested):
        raise SystemExit("[dynamics] stopped while encoding the episodes: nothing was trained yet")
    if dc.pixel_codes and not ckpt.has_stage(ctx.run, "dynamics"):  # a resume loads them with the weights
        seen = model.dynamics.set_code_pixels(
            train.frames_and_tokens(model.cfg.tokenizer.height, model.cfg.tokenizer.width))
        if ctx.main:
            print(f"[dynamics] code thumbnails: {seen} of {model.dynamics.V} codes seen in the training data")
    T = dc.train_frames
    index = train.window_index(T)
    part = _local(tc.dynamics_batch, ctx)

    def batch_fn(step):
        rows = sample_rows(index, tc.dynamics_batch, tc.seed, "dynamics", step)[part]
        b = train.windows_at(rows, T)
        b["seeds"] = sample_seeds(tc.dynamics_batch, tc.seed, step)[part]
        b = {k: v.to(ctx.device, non_blocking=True) for k, v in b.items()}
        b["tokens"] = b["tokens"].long()
        return b

    def eval_fn(step, writer):
        if not len(val):
            return
        res = rollout_eval(model, val, episodes=tc.eval_episodes, context=min(4, dc.context),
                           horizon=tc.eval_horizon, seed=tc.seed)
        for key, vals in res.items():
            if "/" not in key:
                continue
            for t in (1, 4, 8, 16, 30):
                if t <= len(vals):
                    writer.add_scalar(f"rollout_{key}/t{t}", float(vals[t - 1]), step)
        fr = res["frames"]
        rows = [fr["real"][:4], fr["model"][:4, 0], fr["copy"][:4, 0]]  # each (4, horizon, H, W, 3)
        strip = np.concatenate([np.concatenate(list(np.concatenate(list(r), 1)), 1)[None] for r in rows], 0)
        writer.add_image("dynamics/real_dream_copy", np.concatenate(list(strip), 0), step, dataformats="HWC")
        video = np.concatenate([fr["real"][:4], fr["model"][:4, 0]], 2)  # (4, horizon, H, 2W, 3)
        grid = np.concatenate(list(video), 1)  # (horizon, 4H, 2W, 3)
        add_gif(writer, "dynamics/real_left_dream_right", grid, step)
        print(f"\n[dynamics] step {step}: held-out rollouts ({res['episodes']} episodes)\n{summary(res)}",
              flush=True)

    return train_stage(ctx, "dynamics", model.dynamics, batch_fn, eval_fn, tc.dynamics_lr,
                       tc.dynamics_steps, deadline, {"pixel_decoder": model.tokenizer})


# ---------------------------------------------------------------------- entry point
def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = setup_distributed(args.device)
    run = Path(args.out)
    stages = ckpt.STAGES if args.stage == "all" else (args.stage,)
    done = [s for s in stages if ckpt.has_stage(run, s)]
    if done and not args.resume:
        raise SystemExit(f"{run / done[0]} exists: pass --resume to continue it, or choose another --out")
    cfg, fresh = run_config(args, run)
    if args.data is not None:
        train, val = EpisodeStore.from_dataset(args.data, val_fraction=cfg.train.val_fraction, seed=0)
    else:
        train, val = EpisodeStore.from_env(args.env, args.episodes, args.episode_steps, seed=0,
                                           val_fraction=cfg.train.val_fraction, continuous=args.continuous)
    torch.manual_seed(cfg.train.seed)
    try:  # a config that cannot build fails here, before anything is written
        model = WorldModel(cfg).to(device)
    except ValueError as e:
        raise SystemExit(f"error: {e}" + (f" (--set {' '.join(args.set)})" if args.set else "")) from None
    for stage in ckpt.STAGES:  # ... and one its trained weights (or weights copied in) do not fit
        problem = ckpt.has_stage(run, stage) and ckpt.weights_mismatch(run, stage, getattr(model, stage))
        if problem:
            hint = (f" (--set {' '.join(args.set)}: a trained stage keeps the shapes it was trained with; "
                    "choose another --out to train another model)") if args.set else ""
            raise SystemExit(f"error: {problem}{hint}")
    ctx = Ctx(args, cfg, run, device, rank, world)
    if ctx.main:
        run.mkdir(parents=True, exist_ok=True)
        if fresh:
            ckpt.write_config(run, cfg)
        _record_command(run, argv)
    if ctx.main:
        counts = model.num_parameters()
        print(f"world model '{cfg.preset}': tokenizer {counts['tokenizer'] / 1e6:.2f}M, dynamics "
              f"{counts['dynamics'] / 1e6:.2f}M parameters; {len(train)} train / {len(val)} val episodes "
              f"({train.num_frames} frames); device {device}, {world} process(es)", flush=True)
    signal.signal(signal.SIGTERM, _on_signal)
    t0 = time.time()
    deadline = None if args.minutes is None else t0 + 60 * args.minutes
    states = {}
    if args.stage in ("tokenizer", "all"):
        tok_deadline = deadline
        if deadline is not None and args.stage == "all":
            tok_deadline = t0 + 60 * args.minutes * cfg.train.tokenizer_time_fraction
        states["tokenizer"] = run_tokenizer(ctx, model, train, val, tok_deadline)
    if args.stage in ("dynamics", "all") and not states.get("tokenizer", {}).get("interrupted"):
        states["dynamics"] = run_dynamics(ctx, model, train, val, deadline)
    if ctx.main:
        print(json.dumps({k: {"step": v["step"], "planned_steps": v["planned_steps"], "done": v["done"]}
                          for k, v in states.items()}), flush=True)
    if world > 1:
        dist.destroy_process_group()
    if _Stop.requested:
        raise SystemExit(1)
    return states


if __name__ == "__main__":
    main()
