"""Command line: ``python -m evaluate --env WorldGym/BouncingBalls-v0 --predictor copy-last``.

Evaluates each predictor beside the reference rows (``real`` ceiling, ``real-perturbed`` physical
variance, ``copy-last`` floor) on every scene asked for, and writes ``report.json`` + ``report.html``
(plots, videos) under ``--out``. Settings, predictor specs, and whether each predictor can dream
each scene (a checkpoint's scene, frame size and actions) are checked before anything runs. Exit
status 0; 2 for bad arguments, or when a scene, or any predictor on it, could not be evaluated at
all (every episode failed; single failed episodes are listed in the report, not fatal).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import envs
from evaluate.predictors import REFERENCE_ROWS, make_predictor
from evaluate.report import write_report
from evaluate.suite import check_scene, check_settings, run_suite


def _arg(default, help: str, repeatable: bool = False):
    """A flag; a ``repeatable`` one may be given several times, its values joined by commas (argparse
    would otherwise keep only the last ``--predictor`` of several, silently)."""
    return field(default=default, metadata={"help": help, "repeatable": repeatable})


@dataclass
class Args:
    env: str = _arg("WorldGym/BouncingBalls-v0", "scene id, or several separated by commas or given as "
                    "repeated --env", repeatable=True)
    all_scenes: bool = _arg(False, "evaluate every scene in envs.SCENE_IDS (overrides --env)")
    predictor: str = _arg("copy-last", "predictor spec(s), comma-separated: real, real-perturbed, "
                          "real-redrawn, copy-last, corrupt:NAME, checkpoint:PATH[@T[:SCHEDULE][:PASSES]], "
                          "tokenizer:PATH (or repeated --predictor); the reference rows are always added",
                          repeatable=True)
    episodes: int = _arg(32, "episodes per scene and predictor")
    horizon: int = _arg(32, "future frames predicted per rollout (T)")
    context: int = _arg(4, "real context frames given to the predictor (k)")
    samples: int = _arg(4, "samples per context (S); diversity needs >= 2")
    policy: str = _arg("random", "policy for the real actions: random | heuristic | noop")
    seed: int = _arg(0, "first episode seed (episode i uses seed + i): held-out seeds are one flag away")
    options: str = _arg("", "JSON dict of reset options (out-of-distribution runs), e.g. "
                        "'{\"gravity\": 600}'")
    continuous: bool = _arg(False, "the scenes' Box(-1, 1) actions (gym.make(..., continuous=True)), for "
                            "checkpoints trained on data collected with --continuous")
    out: str = _arg("reports/eval", "output folder for report.json, report.html, plots/, videos/")
    width: int = _arg(64, "frame width")
    height: int = _arg(64, "frame height")
    start: int = _arg(0, "policy steps played before the context window starts")
    tolerance: int = _arg(40, "parser colour tolerance (max-channel distance) for predicted frames")
    no_videos: bool = _arg(False, "skip the MP4 videos (faster)")
    no_controllability: bool = _arg(False, "skip ΔtPSNR and the counterfactual test")
    no_diversity: bool = _arg(False, "skip the one-context-frame diversity test")
    quiet: bool = _arg(False, "no progress bars")
    transfer: str = _arg("", "a transfer.json (python -m evaluate.transfer) to add to the report")
    attach: str = _arg("", "extra MP4s to embed in the report, comma-separated PATH or CAPTION=PATH "
                       "(e.g. a dream recording of python -m worldmodel.dream; the caption defaults to "
                       "the file name without its suffix, and must differ between videos); may be repeated",
                       repeatable=True)


def parse_args(argv=None) -> Args:
    p = argparse.ArgumentParser(prog="python -m evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(Args):
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            p.add_argument(flag, action="store_true", help=f.metadata["help"])
        elif f.metadata["repeatable"]:
            p.add_argument(flag, action="append", help=f"{f.metadata['help']} (default: {f.default!r})")
        else:
            kind = {"int": int, "str": str}.get(f.type, f.type) if isinstance(f.type, str) else f.type
            p.add_argument(flag, type=kind, default=f.default,
                           help=f"{f.metadata['help']} (default: {f.default!r})")
    values = vars(p.parse_args(argv))
    for f in fields(Args):
        if f.metadata["repeatable"]:
            values[f.name] = f.default if values[f.name] is None else ",".join(values[f.name])
    return Args(**values)


def _check_writable(out: Path) -> None:
    """Creates ``out`` and writes a probe file there (a file in the way or no permission: ``OSError``)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OSError(f"--out {out} cannot be written: {e.strerror or e}") from None


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        options = json.loads(args.options) if args.options else None
    except json.JSONDecodeError as e:
        print(f"error: --options is not valid JSON: {e}", file=sys.stderr)
        return 2
    if options is not None and not isinstance(options, dict):
        print(f"error: --options must be a JSON object like '{{\"gravity\": 600}}', got {args.options}",
              file=sys.stderr)
        return 2
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"error: --out {args.out} exists and is not a folder", file=sys.stderr)
        return 2
    if args.seed < 0:
        print(f"error: --seed must be >= 0, got {args.seed}", file=sys.stderr)
        return 2
    scenes = list(dict.fromkeys(e.strip() for e in args.env.split(",") if e.strip()))  # each once
    scenes = list(envs.SCENE_IDS) if args.all_scenes else scenes
    if args.all_scenes and args.continuous:  # every scene that has Box actions; say which are left out
        import gymnasium as gym
        from gymnasium.envs.registration import load_env_creator

        discrete = [e for e in scenes if not load_env_creator(gym.spec(e).entry_point).CONTINUOUS_DIM]
        scenes = [e for e in scenes if e not in discrete]
        if discrete:
            print(f"--continuous: {', '.join(discrete)} have no Box actions, left out", file=sys.stderr)
    asked = list(dict.fromkeys(s.strip() for s in args.predictor.split(",") if s.strip()))
    specs = list(REFERENCE_ROWS) + [s for s in asked if s not in REFERENCE_ROWS]
    try:  # fail fast: bad settings, a bad spec, or a predictor that cannot dream a scene
        check_settings(args.episodes, args.horizon, args.context, args.samples, args.policy, args.tolerance,
                       args.start)
        predictors = [make_predictor(s) for s in specs]
        for env_id in scenes:
            for pred in predictors:
                check_scene(env_id, pred, args.width, args.height, options, args.continuous)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:  # the extras and the output folder are checked before the long evaluation, not after it
        transfer, attachments = _extras(args, scenes)
        _check_writable(Path(args.out))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    command = "python -m evaluate " + shlex.join(sys.argv[1:] if argv is None else argv)
    results, errors = {}, {}
    t0 = time.perf_counter()
    for env_id in scenes:
        try:
            results[env_id] = [run_suite(env_id, p, args.episodes, args.horizon, args.context, args.samples,
                                         args.policy, args.seed, options, width=args.width,
                                         height=args.height, start=args.start, tolerance=args.tolerance,
                                         controllability=not args.no_controllability,
                                         diversity=not args.no_diversity, progress=not args.quiet,
                                         continuous=args.continuous)
                               for p in predictors]
        except Exception as e:  # the scene itself is broken: report it, go on with the others
            errors[env_id] = f"{type(e).__name__}: {e}"
            print(f"{env_id}: FAILED {errors[env_id]}", file=sys.stderr)
            continue
        for r in results[env_id]:
            if r.summary["episodes_ok"] == 0:
                first = next((e["error"] for e in r.episodes if e.get("error")), "")
                print(f"{env_id}: {r.predictor}: every episode FAILED (first: {first})", file=sys.stderr)
                errors.setdefault(env_id, f"{r.predictor}: every episode failed ({first})")
    if not results:
        print("error: nothing was evaluated; no report written", file=sys.stderr)
        return 2
    path = write_report(results, args.out, command, videos=not args.no_videos, errors=errors,
                        transfer=transfer, attachments=attachments)
    for env_id, rows in results.items():
        print(f"\n{env_id}  (PSNR in dB; 100 = identical)")
        times = _psnr_times(args.horizon)
        print("| predictor | " + " | ".join(f"PSNR@{t}" for t in times) + " | persistence | pos err px "
              "| within 1 px | coherence | failed | time s |")
        print("|---" * (len(times) + 7) + "|")
        for r in rows:
            s, psnr = r.summary, r.curves.get("psnr") or []
            cells = [psnr[t - 1] if len(psnr) >= t else float("nan") for t in times]
            cells += [s.get(k, float("nan")) for k in ("persistence", "pos_err", "within_1px", "coherence")]
            print(f"| {r.predictor} | " + " | ".join(f"{c:.2f}" for c in cells)
                  + f" | {r.failed} | {r.wall_time_s:.1f} |")
    print(f"\nwrote {path} and {path.with_suffix('.html')} in {time.perf_counter() - t0:.1f} s")
    return 2 if errors else 0


def _psnr_times(horizon: int) -> list[int]:
    """The future steps the console table shows PSNR at: 1, 8, 16, 32 up to the horizon, and the
    horizon itself (``--horizon 4`` shows PSNR@1 and PSNR@4, not three columns of NaN)."""
    return sorted({1, horizon, *(t for t in (8, 16, 32) if t <= horizon)})


def _extras(args: Args, scenes: list[str]) -> tuple[dict | None, dict[str, str]]:
    """The --transfer JSON (validated, and about one of ``scenes``) and the --attach videos (caption →
    path; the report copies them)."""
    transfer = None
    if args.transfer:
        from evaluate.transfer import load_transfer

        try:
            transfer = load_transfer(args.transfer)
        except FileNotFoundError:
            raise ValueError(f"--transfer {args.transfer}: no such file "
                             "(write it with python -m evaluate.transfer)") from None
        except ValueError as e:
            raise ValueError(f"--transfer {args.transfer}: not a valid transfer.json ({e})") from None
        if transfer["env_id"] not in scenes:
            raise ValueError(f"--transfer {args.transfer} is about {transfer['env_id']}, which this report "
                             f"does not evaluate ({', '.join(scenes)})")
    attachments: dict[str, str] = {}
    for item in (s.strip() for s in args.attach.split(",")):
        if not item:
            continue
        caption, _, path = item.rpartition("=")
        if not os.path.isfile(path):
            raise ValueError(f"--attach {path}: no such file")
        caption = caption.strip() or Path(path).stem
        if caption in attachments:  # the report maps caption → video: one of the two would vanish
            raise ValueError(f"--attach: caption {caption!r} is used twice ({attachments[caption]} and "
                             f"{path}); give each video its own caption, CAPTION=PATH")
        attachments[caption] = path
    return transfer, attachments


if __name__ == "__main__":
    sys.exit(main())
