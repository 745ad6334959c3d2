"""Export a trained run as a small, shippable checkpoint with a model card.

    python -m worldmodel.export runs/bb --out checkpoints/bouncing_balls \
        --eval reports/bb/report.json --dtype float16

The result is a run directory that ``worldmodel.load`` opens like any other (config.json, tokenizer/,
dynamics/), without optimizer state, with floating-point weights stored as float16 (half the bytes;
``load_state_dict`` casts them back to the model's float32), plus ``MODEL_CARD.md``: the scene, the
preset and parameter counts, how long it trained and with which commands (``RUN/commands.jsonl``,
written by ``worldmodel.train``), and the metrics of an evaluation report (``python -m evaluate …
--predictor checkpoint:RUN``) copied from its ``report.json`` — the card's numbers are read, never typed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from worldmodel.checkpoint import STAGES, load_config
from worldmodel.dynamics import check_passes

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
CARD_METRICS = ("psnr@1", "psnr@8", "psnr@16", "psnr@32", "persistence", "persistence@16", "pos_err",
                "coherence", "delta_psnr@4", "cf_cos", "div_ratio")


def export(run: str | Path, out: str | Path, dtype: str = "float16", eval_reports=(),
           overwrite: bool = False, note: str = "", passes: int | None = None) -> Path:
    """Writes the shippable copy of ``run`` to ``out``; ``eval_reports``: evaluate report.json paths,
    each with a ``checkpoint:RUN`` row. ``passes``: the MaskGIT passes per frame the copy generates with
    (its config's ``maskgit_steps``; None keeps the run's). A generation setting: measure it
    (``checkpoint:RUN@T:N`` in evaluate) before shipping it. Every check runs before anything is
    written; a failure while writing removes the partial copy."""
    run, out = Path(run), Path(out)
    cfg = load_config(run)
    if passes is not None:
        cfg.dynamics.maskgit_steps = check_passes(cfg.dynamics, passes, "passes")
    for stage in STAGES:
        if not (run / stage / "model.safetensors").exists():
            raise FileNotFoundError(f"{run}: no {stage} checkpoint (train it first)")
    if out.resolve() == run.resolve() or run.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"--out {out} would replace the run {run} it exports: choose another folder")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists: pass --overwrite to replace it")
    if isinstance(eval_reports, (str, Path)):
        eval_reports = [eval_reports]
    # read before anything is written: a bad path must not cost the old copy
    reports = [(str(path), read_report(path, run)) for path in eval_reports]
    states = {stage: _train_state(run / stage) for stage in STAGES}
    for stage, st in states.items():
        if st.get("done") is False:
            print(f"warning: {run}/{stage} is not finished (step {st.get('step')} of "
                  f"{st.get('planned_steps')} planned): exporting a half-trained {stage}", file=sys.stderr)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write(run, tmp, cfg, dtype)
        (tmp / "MODEL_CARD.md").write_text(model_card(run, cfg, states, reports, dtype, out, note, passes))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():  # the old copy goes only once the new one is whole
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return out


def _write(run: Path, tmp: Path, cfg, dtype: str) -> None:
    """The weights cast to ``dtype``, the configs and the train states, into ``tmp``."""
    tmp.mkdir(parents=True)
    for stage in STAGES:
        (tmp / stage).mkdir()
        weights = load_file(str(run / stage / "model.safetensors"))
        cast = {k: v.to(DTYPES[dtype]) if v.is_floating_point() else v for k, v in weights.items()}
        save_file(cast, str(tmp / stage / "model.safetensors"), metadata={"stage": stage, "dtype": dtype})
        cfg.to_json(tmp / stage / "config.json")  # the run's, with the export's settings
        if (run / stage / "train_state.json").exists():
            shutil.copy(run / stage / "train_state.json", tmp / stage / "train_state.json")
    cfg.to_json(tmp / "config.json")


def _train_state(stage_dir: Path) -> dict:
    path = stage_dir / "train_state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def read_report(path: str | Path, run: Path) -> dict:
    """An evaluate ``report.json`` (checked against ``evaluate.schema``) with at least one row of
    ``checkpoint:RUN`` (the path before '@' is resolved from the current directory): the card must not
    show the numbers of another checkpoint as this one's. ``ValueError`` otherwise."""
    from evaluate.schema import validate

    try:
        report = json.loads(Path(path).read_text())
        validate(report)
    except (OSError, ValueError) as e:
        raise ValueError(f"--eval {path}: not a readable evaluate report.json ({e})") from None
    measured = sorted({row["predictor"] for scene in report["scenes"].values() for row in scene["rows"]
                       if row["predictor"].startswith("checkpoint:")})
    if not any(Path(name[len("checkpoint:"):].split("@")[0]).resolve() == run.resolve() for name in measured):
        raise ValueError(f"--eval {path}: it has no row of checkpoint:{run} (its checkpoints: "
                         f"{', '.join(measured) or 'none'}); evaluate this run with "
                         f"`python -m evaluate --predictor checkpoint:{run}`")
    return report


def _commands(run: Path) -> list[str]:
    path = run / "commands.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["command"] for line in path.read_text().splitlines() if line.strip()]


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def model_card(run: Path, cfg, states: dict, reports: list[tuple[str, dict]], dtype: str, out: Path,
               note: str = "", passes: int | None = None) -> str:
    from worldmodel.model import WorldModel

    counts = WorldModel(cfg).num_parameters()
    lines = [f"# {cfg.env_id or 'world model'} — `{cfg.preset}` preset", "",
             f"VQ-VAE tokenizer ({counts['tokenizer'] / 1e6:.2f}M parameters, {cfg.tokenizer.codebook_size} "
             f"codes, {cfg.tokenizer.grid[0]}×{cfg.tokenizer.grid[1]} tokens per "
             f"{cfg.tokenizer.height}×{cfg.tokenizer.width} frame) + memory-bank MaskGIT dynamics "
             f"({counts['dynamics'] / 1e6:.2f}M parameters, {cfg.dynamics.context} context frames, "
             f"{cfg.dynamics.memory_slots} memory slots, {cfg.dynamics.maskgit_steps} passes per frame). "
             f"Weights stored as {dtype}.", "", "## Training", ""]
    if note:
        lines += [note, ""]
    for stage, st in states.items():
        unfinished = f", of {st.get('planned_steps')} planned: not finished" * (st.get("done") is False)
        lines.append(f"- {stage}: {st.get('step')} steps in {st.get('elapsed_s', 0) / 60:.1f} min "
                     f"(seed {st.get('seed')}{unfinished})")
    cmds = _commands(run)
    if cmds:
        lines += ["", "Made with (in order):", "", "```bash", *cmds,
                  f"python -m worldmodel.export {run} --out {out} --dtype {dtype}"
                  + (f" --passes {passes}" if passes is not None else "")
                  + "".join(f" --eval {path}" for path, _ in reports), "```"]
    if reports:
        lines += ["", "## Measured (copied from the evaluation reports)"]
    for path, report in reports:
        lines += ["", f"`{report.get('command', '')}` → `{path}`", ""]
        for env_id, scene in report["scenes"].items():
            lines += [f"{env_id}:", "", "| predictor | " + " | ".join(CARD_METRICS) + " |",
                      "|---" * (len(CARD_METRICS) + 1) + "|"]
            for row in scene["rows"]:
                cells = " | ".join(_fmt(row["summary"].get(k)) for k in CARD_METRICS)
                lines.append(f"| {row['predictor']} | {cells} |")
            lines.append("")
    lines += ["", "## Use", "", "```bash", f"python -m worldmodel.dream --checkpoint {out} --side-by-side",
              f"python -m evaluate --env {cfg.env_id} --predictor checkpoint:{out}"
              + (" --continuous" if cfg.action_space.get("type") == "box" else ""), "```", "", "```python",
              "import gymnasium as gym, envs, worldmodel", f"model = worldmodel.load(\"{out}\")",
              f"env = gym.make(\"WorldGym/Dream-v0\", checkpoint=\"{out}\")", "```", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m worldmodel.export", description=__doc__.split("\n")[0])
    p.add_argument("run", help="a trained run directory (both stages)")
    p.add_argument("--out", required=True, help="directory to create")
    p.add_argument("--dtype", default="float16", choices=sorted(DTYPES), help="storage type of the weights")
    p.add_argument("--eval", action="append", default=[], metavar="REPORT",
                   help="an evaluate report.json with a checkpoint:RUN row, to copy the metrics from "
                        "(repeatable)")
    p.add_argument("--passes", type=int, default=None,
                   help="MaskGIT passes per frame the copy generates with (default: the run's)")
    p.add_argument("--note", default="", help="provenance for the card (where and on what data it trained)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out (the old copy goes only once the new one is whole)")
    return p


def main(argv=None) -> Path:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        out = export(args.run, args.out, args.dtype, args.eval, args.overwrite, args.note, args.passes)
    except (OSError, ValueError) as e:  # a missing or damaged run, an existing --out, a bad report
        p.error(str(e))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({size / 2**20:.2f} MB)")
    return out


if __name__ == "__main__":
    main()
