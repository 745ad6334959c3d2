"""Speed and memory of a world model: parameters, generated frames/s, peak memory, training step time.

    python -m worldmodel.bench --preset tiny --device cpu --threads 2
    python -m worldmodel.bench --checkpoint runs/bb --device cuda
    python -m worldmodel.bench --preset seed163m --device cuda --train-batch 2 --train-frames 16
    python -m worldmodel.bench --preset small --threads 1 --no-generate --train-stages dynamics \
        --warmup 0 --repeats 1 --set dynamics.checkpoint_activations=true train.dynamics_batch=4

Generation is measured end to end (context encoding excluded, then per frame: ``maskgit_steps``
transformer passes + decoding to uint8 pixels), single stream (batch 1) and batched (batch 64), after
a warm-up; eagerly, and with ``--cuda-graph`` / ``--bf16`` also as one CUDA graph per frame
(``worldmodel.graphs``) and under bf16 autocast; ``--compile`` adds the graph of a ``torch.compile``d
frame (under bf16 with ``--bf16``). ``--profile`` lists the operators that take a frame's time
(eager, so that each kernel is seen; on CUDA by device time). A training step is forward + backward +
AdamW on one batch, for each stage (bf16 autocast on CUDA, as in training); the optimizer state exists
before the first step (a zero-gradient step), so every step's memory is the steady state's.

Peak memory, per measurement: on CUDA the max allocated; on CPU the process's peak resident set size
(VmHWM, reset through /proc/self/clear_refs before each measurement on Linux). ``peak_mb`` is that
peak; ``peak_delta_mb`` (training) is the peak minus what was in use when the stage started (weights
of both stages, optimizer state, the batch): activations, gradients and workspace. On CPU the figure
is cleanest with one stage per process (``--no-generate --train-stages STAGE``): memory the allocator
kept from an earlier measurement is counted in the baseline and reused, which hides part of the delta.
glibc also keeps freed mid-sized blocks mapped, so the RSS peak exceeds the tensors' peak; run with
``MALLOC_MMAP_THRESHOLD_=131072`` (every block of 128 kB or more is then its own mapping, returned when
freed) for an RSS close to what the tensors need. ``--set dynamics.checkpoint_activations=true|false``
(and ``tokenizer.``) compares activation checkpointing on and off.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import time

import numpy as np
import torch

from worldmodel.config import preset
from worldmodel.model import WorldModel
from worldmodel.train import apply_overrides, make_optimizer

STAGES = ("tokenizer", "dynamics")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m worldmodel.bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="random weights of a preset")
    src.add_argument("--checkpoint", help="a run directory")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch; 0 or None: torch's choice")
    p.add_argument("--batches", type=int, nargs="+", action="extend", default=None,
                   help="generation batch sizes (repeatable); None: 1 64")
    p.add_argument("--frames", type=int, default=30, help="timed generated frames per batch size")
    p.add_argument("--context", type=int, default=4, help="context frames")
    p.add_argument("--no-generate", action="store_true", help="skip the generation timing")
    p.add_argument("--cuda-graph", action="store_true",
                   help="also time generation with each frame replayed as one CUDA graph (CUDA only)")
    p.add_argument("--bf16", action="store_true", help="also time generation under bf16 autocast")
    p.add_argument("--compile", action="store_true",
                   help="also time the CUDA graph of a torch.compile'd frame (CUDA only; compiles once per "
                        "batch size, tens of seconds each)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile 3 eager frames at each batch size and print the N operators "
                        "with the most self time (device time on CUDA; under bf16 with --bf16)")
    p.add_argument("--train-batch", type=int, default=None,
                   help="dynamics windows per training step; None: the config's train.dynamics_batch "
                        "(the tokenizer's batch is train.tokenizer_batch: see --set)")
    p.add_argument("--train-frames", type=int, default=None,
                   help="frames per training window; None: the config's dynamics.train_frames")
    p.add_argument("--train-stages", nargs="+", action="extend", choices=STAGES, default=None,
                   help="training stages to time (repeatable); None: both")
    p.add_argument("--warmup", type=int, default=1, help="untimed training steps per stage before timing")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed training steps per stage (the median is shown)")
    p.add_argument("--no-train", action="store_true", help="skip the training step timing")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides as in worldmodel.train, e.g. --set "
                        "dynamics.checkpoint_activations=true tokenizer.checkpoint_activations=true "
                        "train.tokenizer_batch=4 (with --checkpoint only settings read at run time make "
                        "sense: checkpointing, batch sizes)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    args = p.parse_args(argv)
    # "extend" adds to a default list: the defaults are filled in here
    args.batches = args.batches or [1, 64]
    args.train_stages = args.train_stages or list(STAGES)
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be at least 1 and --warmup at least 0")
    for name, value in (("--batches", min(args.batches)), ("--frames", args.frames),
                        ("--context", args.context)):
        if value < 1:
            p.error(f"{name} must be >= 1, got {value}")
    if args.threads is not None and args.threads < 0:
        p.error(f"--threads must be >= 0 (0: torch's choice), got {args.threads}")
    from worldmodel.distributed import resolve_device

    try:
        resolve_device(args.device)
    except ValueError as e:
        p.error(f"--device: {e}")
    if (args.cuda_graph or args.compile) and not args.device.startswith("cuda"):
        p.error("--cuda-graph and --compile need --device cuda")
    if args.checkpoint:
        check_run(p, args.checkpoint)
    return args


def check_run(p: argparse.ArgumentParser, run: str) -> None:
    """An argparse error unless ``run`` has a readable config and both stages' weights (the weights
    themselves are read later)."""
    from worldmodel.checkpoint import has_stage, load_config

    try:
        load_config(run)
    except (OSError, ValueError) as e:
        p.error(f"--checkpoint: {e}")
    missing = [stage for stage in STAGES if not has_stage(run, stage)]
    if missing:
        p.error(f"--checkpoint: {run} has no {' or '.join(missing)} checkpoint (train it first)")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proc_status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in MB; None where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak(device: torch.device) -> None:
    """Starts a new peak-memory measurement: CUDA's peak stats, or on CPU the process's peak RSS (Linux:
    writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS; elsewhere the peak stays the
    process's peak since it started)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _current_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    rss = _proc_status_mb("VmRSS")
    return rss if rss is not None else _peak_mb(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _context(model: WorldModel, batch: int, n: int) -> np.ndarray:
    """Real-looking context: a BouncingBalls episode's first frames (any frames would do for timing)."""
    H, W = model.cfg.tokenizer.height, model.cfg.tokenizer.width
    try:
        from worldmodel.generate import real_rollout

        frames, _ = real_rollout("WorldGym/BouncingBalls-v0", 0, n, "noop", (H, W))
        frames = frames[:n]
    except Exception:  # scenes unavailable: random pixels
        frames = np.random.default_rng(0).integers(0, 255, (n, H, W, 3), dtype=np.uint8)
    return np.repeat(frames[None], batch, 0)


def _warm_rollout(model: WorldModel, batch: int, context: int, cuda_graph: bool, compile: bool):
    """A rollout of ``batch`` streams stepped until its KV cache is full (the steady state; a graph is
    captured at that point). Returns (state, the actions each step takes)."""
    ctx = _context(model, batch, context)
    space = model.cfg.action_space
    acts = (torch.zeros(batch, dtype=torch.long) if space["type"] == "discrete"
            else torch.zeros(batch, *space["shape"]))
    state = model.reset(ctx, seed=0, cuda_graph=cuda_graph, compile=compile)
    for _ in range(3 + max(0, model.cfg.dynamics.context - context)):
        model.step(state, acts)
    return state, acts


def _autocast(dev: torch.device, bf16: bool):
    return torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


@torch.no_grad()
def generation_speed(model: WorldModel, batch: int, frames: int, context: int, cuda_graph: bool = False,
                     bf16: bool = False, compile: bool = False) -> dict:
    dev = model.device
    _reset_peak(dev)
    with _autocast(dev, bf16):
        state, acts = _warm_rollout(model, batch, context, cuda_graph, compile)
        _sync(dev)
        t = time.perf_counter()
        for _ in range(frames):
            model.step(state, acts)
        _sync(dev)
        dt = time.perf_counter() - t
    return {"batch": batch, "frames_per_s": batch * frames / dt, "ms_per_step": 1000 * dt / frames,
            "passes_per_frame": model.cfg.dynamics.maskgit_steps, "peak_mb": _peak_mb(dev),
            "cuda_graph": cuda_graph, "bf16": bf16, "compile": compile}


@torch.no_grad()
def generation_profile(model: WorldModel, batch: int, context: int, bf16: bool, top: int) -> str:
    """The ``top`` operators by self time over 3 eager frames (device time on CUDA), as a table."""
    from torch.profiler import ProfilerActivity, profile

    dev = model.device
    cuda = dev.type == "cuda"
    with _autocast(dev, bf16):
        state, acts = _warm_rollout(model, batch, context, False, False)
        _sync(dev)
        activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda
        with profile(activities=activities) as prof:
            for _ in range(3):
                model.step(state, acts)
            _sync(dev)
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top)


def _prime(opt: torch.optim.Optimizer) -> None:
    """Creates the optimizer state with a zero-gradient step (no weight decay in the benchmark, so the
    weights do not change): the first timed step then holds the same memory as every later one."""
    for group in opt.param_groups:
        for p in group["params"]:
            p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)


def _time_steps(module, loss_fn, dev: torch.device, warmup: int, repeats: int) -> dict:
    """forward + backward + AdamW on one batch, ``warmup`` untimed then ``repeats`` timed steps."""
    cuda = dev.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    opt = make_optimizer(module, 1e-4, 0.0)
    module.train()
    _prime(opt)
    if cuda:
        torch.cuda.empty_cache()
    _sync(dev)
    start = _current_mb(dev)
    _reset_peak(dev)
    times = []
    for i in range(warmup + repeats):
        _sync(dev)
        t = time.perf_counter()
        with autocast:
            loss = loss_fn()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        del loss
        _sync(dev)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    peak = _peak_mb(dev)
    module.eval()
    del opt
    return {"s_per_step": float(np.median(times)), "steps_timed": repeats, "peak_mb": peak,
            "peak_delta_mb": peak - start, "checkpoint_activations": bool(module.cfg.checkpoint_activations)}


def train_step_time(model: WorldModel, batch: int, frames: int, repeats: int = 3, warmup: int = 1,
                    stages=STAGES) -> dict:
    dev = model.device
    cfg = model.cfg
    out = {}
    if "tokenizer" in stages:
        tb = cfg.train.tokenizer_batch
        size = (tb, cfg.tokenizer.height, cfg.tokenizer.width, 3)
        x = torch.randint(0, 255, size, dtype=torch.uint8, device=dev)
        res = _time_steps(model.tokenizer, lambda: model.tokenizer.compute_loss(x).loss, dev, warmup, repeats)
        out["tokenizer"] = {"batch": tb, **res}
        del x
    if "dynamics" in stages:
        h, w = cfg.tokenizer.grid
        V = cfg.tokenizer.codebook_size
        g = torch.Generator().manual_seed(0)
        tokens = torch.randint(0, V, (batch, frames, h, w), generator=g).to(dev)
        space = cfg.action_space
        if space["type"] == "discrete":
            acts = torch.randint(0, space["n"], (batch, frames - 1), generator=g).to(dev)
        else:
            acts = torch.rand(batch, frames - 1, *space["shape"], generator=g).to(dev)
        zeros = torch.zeros(batch, frames - 1, device=dev)
        seeds = torch.arange(batch)

        def loss_fn():
            return model.dynamics.compute_loss(tokens, acts, zeros, zeros, seeds).loss

        out["dynamics"] = {"batch": batch, "frames": frames,
                           **_time_steps(model.dynamics, loss_fn, dev, warmup, repeats)}
    return out


def _override(model: WorldModel, pairs: list[str]) -> None:
    """Applies ``--set`` to a loaded model's config in place (the modules hold these config objects)."""
    import dataclasses

    new = apply_overrides(model.cfg, pairs)
    for name in ("tokenizer", "dynamics", "train"):
        for f in dataclasses.fields(getattr(new, name)):
            setattr(getattr(model.cfg, name), f.name, getattr(getattr(new, name), f.name))


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.checkpoint:
        import worldmodel

        try:
            model = worldmodel.load(args.checkpoint, device=dev)
        except (OSError, ValueError) as e:  # damaged weights (a missing run is an argument error)
            raise SystemExit(f"python -m worldmodel.bench: error: --checkpoint: {e}") from None
        if args.set:
            _override(model, args.set)
    else:
        torch.manual_seed(0)
        model = WorldModel(apply_overrides(preset(args.preset), args.set)).to(dev).eval()
    cfg = model.cfg
    res = {"model": args.checkpoint or args.preset, "device": str(dev), "threads": torch.get_num_threads(),
           "frame": [cfg.tokenizer.height, cfg.tokenizer.width], "parameters": model.num_parameters(),
           "set": list(args.set), "generation": []}
    if not args.no_generate:
        modes = [(False, False, False)] + [(True, False, False)] * args.cuda_graph
        modes += [(False, True, False)] * args.bf16 + [(True, True, False)] * (args.cuda_graph and args.bf16)
        modes += [(True, args.bf16, True)] * args.compile  # one compile per batch size: bf16 with --bf16
        res["generation"] = [generation_speed(model, b, args.frames, args.context, graph, bf16, comp)
                             for graph, bf16, comp in modes for b in args.batches]
    for b in args.batches if args.profile else []:
        table = generation_profile(model, b, args.context, args.bf16, args.profile)
        print(f"profile, batch {b}, eager" + " bf16" * args.bf16 + f", 3 frames:\n{table}", flush=True)
    if not args.no_train:
        res["train_step"] = train_step_time(model, args.train_batch or cfg.train.dynamics_batch,
                                            args.train_frames or cfg.dynamics.train_frames,
                                            repeats=args.repeats, warmup=args.warmup,
                                            stages=args.train_stages)
    if args.json:
        print(json.dumps(res))
        return res
    p = res["parameters"]
    print(f"{res['model']} on {res['device']} ({res['threads']} threads), frames {cfg.tokenizer.height}×"
          f"{cfg.tokenizer.width}: {p['total'] / 1e6:.2f}M parameters "
          f"(tokenizer {p['tokenizer'] / 1e6:.2f}M, dynamics {p['dynamics'] / 1e6:.2f}M)")
    for g in res["generation"]:
        mode = "+".join(["graph"] * g["cuda_graph"] + ["compiled"] * g["compile"] + ["bf16"] * g["bf16"])
        mode = mode or "eager"
        print(f"  generate batch {g['batch']:4d} ({mode:19s}): {g['frames_per_s']:9.1f} frames/s "
              f"({g['ms_per_step']:.1f} ms per step, {g['passes_per_frame']} passes/frame), "
              f"peak {g['peak_mb']:.0f} MB")
    for stage, t in res.get("train_step", {}).items():
        print(f"  train {stage:9s}: {t['s_per_step'] * 1000:8.1f} ms/step (batch {t['batch']}"
              + (f" × {t['frames']} frames" if "frames" in t else "") + f"), peak {t['peak_mb']:.0f} MB "
              f"(+{t['peak_delta_mb']:.0f} MB during the step"
              + (", activation checkpointing" if t["checkpoint_activations"] else "") + ")")
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
