"""``report.json`` + ``report.html``: summary tables, metric-vs-horizon plots and side-by-side videos.

Layout of an output folder::

    report.json            every row of every scene (schema: evaluate/schema.py)
    report.html            the same, readable: tables, plots, videos
    plots/<scene>.png      PSNR, SSIM, position error and persistence against the horizon
    videos/<scene>_<predictor>.mp4   real | predicted | |difference|, first episode, sample 0
"""
from __future__ import annotations

import datetime as dt
import html
import json
import math
import re
from pathlib import Path

import numpy as np

from evaluate.metrics.coherence import ABNORMAL, CHECKS
from evaluate.schema import METRICS, SCHEMA_VERSION, validate
from evaluate.suite import EvalResult

TABLE = ("psnr@1", "psnr@8", "psnr@16", "psnr@32", "ssim@8", "persistence", "flicker", "teleport_rate",
         "pos_err", "vel_err", "gravity_err", "collision_precision", "collision_recall", "interpenetration",
         "outcome_kappa", "coherence", "delta_psnr@4", "delta_psnr@16", "cf_cos", "div_ratio")
FLOORS = ("parser_err_median_px", "parser_err_p90_px", "parser_object_frames",
          "collision_detector_precision", "collision_detector_recall", "gravity_fit_floor",
          "free_flight_segments")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def plot_curves(rows: list[EvalResult], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    names = {"psnr": "PSNR (dB, 100 = identical)", "ssim": "SSIM", "pos_err": "position error (px)",
             "persistence": "persistence"}
    for ax, (key, label) in zip(axes, names.items()):
        for r in rows:
            y = np.array([np.nan if v is None else v for v in r.curves.get(key, [])], float)
            if key == "psnr":
                y = np.minimum(y, 60.0)  # keep the exact 100 dB of `real` from flattening the others
            ax.plot(np.arange(1, len(y) + 1), y, label=r.predictor, marker=".", ms=3)
        ax.set_xlabel("future step t")
        ax.set_title(label + (" (clipped at 60)" if key == "psnr" else ""), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(rows[0].env_id, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_video(result: EvalResult, path: Path, scale: int = 4, fps: float = 8) -> Path | None:
    """real | predicted | |difference| of the first episode's first sample, context frame first."""
    from envs.video import grid, upscale, write_mp4

    ex = result.example
    if ex is None:
        return None
    real = np.concatenate([ex["context"][None], ex["real"]])
    pred = np.concatenate([ex["context"][None], ex["dream"]])
    diff = np.abs(real.astype(np.int16) - pred.astype(np.int16)).astype(np.uint8)
    frames = [grid([upscale(a, scale), upscale(b, scale), upscale(c, scale)],
                   [f"real t={t}", result.predictor, "|difference|"], cols=3)
              for t, (a, b, c) in enumerate(zip(real, pred, diff))]
    return write_mp4(frames, path, fps=fps)


def _doc(key: str) -> str:
    return METRICS.get(re.sub(r"@\d+", "@t", key), CHECKS[key].doc if key in CHECKS else "")


def _table(rows: list[dict], keys, title: str, source: str) -> str:
    head = "".join(f"<th title='{html.escape(_doc(k))}'>{k}</th>" for k in keys)
    body = ""
    for r in rows:
        cells = "".join(f"<td>{_fmt(r[source].get(k))}</td>" for k in keys)
        body += f"<tr><th>{html.escape(r['predictor'])}</th>{cells}</tr>"
    return f"<h3>{title}</h3><table><tr><th>predictor</th>{head}</tr>{body}</table>"


def _html(report: dict) -> str:
    parts = ["<!doctype html><meta charset='utf-8'><title>WorldGym evaluation</title><style>",
             "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}",
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}h3{margin-top:1.5em}",
             "video{image-rendering:pixelated;margin:4px}</style>",
             f"<h1>WorldGym evaluation</h1><p><code>{html.escape(report['command'])}</code><br>"
             f"{report['created']} — rows: real (ceiling), real-perturbed (physical variance), copy-last "
             "(floor), then the predictors asked for. Hover a column for its definition.</p>"]
    for env_id, scene in report["scenes"].items():
        parts.append(f"<h2>{html.escape(env_id)}</h2>")
        if scene["error"]:
            parts.append(f"<p style='color:#b00'>scene failed: {html.escape(scene['error'])}</p>")
        rows = scene["rows"]
        if not rows:
            continue
        c = rows[0]["config"]
        parts.append(f"<p>{c['episodes']} episodes from seed {c['seed']}, context {c['context']}, "
                     f"horizon {c['horizon']}, {c['samples']} samples, policy {c['policy']}, "
                     f"options {html.escape(json.dumps(c['options']))}</p>")
        parts.append(_table(rows, [k for k in TABLE if any(k in r["summary"] for r in rows)],
                            "Summary", "summary"))
        parts.append(_table(rows, [*CHECKS, "abnormal"], "Checks: fraction of rollouts flagged "
                            f"(abnormal = any of {', '.join(ABNORMAL)})", "checks"))
        parts.append(_table(rows[:1], FLOORS, "Parser and detector floors on real frames", "floors"))
        for r in rows:
            bad = [e for e in r["episodes"] if e["error"]]
            if bad:
                items = "".join(f"<li>seed {e['seed']}: {html.escape(e['error'])}</li>" for e in bad)
                parts.append(f"<p style='color:#b00'>{r['predictor']}: {len(bad)} failed episode(s)"
                             f"<ul>{items}</ul></p>")
        for p in scene["plots"]:
            parts.append(f"<p><img src='{html.escape(p)}' style='max-width:100%'></p>")
        for name, v in scene["videos"].items():
            parts.append(f"<figure style='display:inline-block'><video src='{html.escape(v)}' controls loop "
                         f"muted width='420'></video><figcaption>{html.escape(name)}</figcaption></figure>")
    return "\n".join(parts)


def write_report(scenes: dict[str, list[EvalResult]], out: str | Path, command: str = "",
                 videos: bool = True, errors: dict[str, str] | None = None) -> Path:
    """Writes report.json, report.html, plots and videos under ``out``; returns the JSON's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"schema_version": SCHEMA_VERSION, "created": dt.datetime.now().isoformat(timespec="seconds"),
              "command": command, "scenes": {}}
    for env_id in sorted(set(scenes) | set(errors or {})):
        rows = scenes.get(env_id, [])
        entry = {"rows": [r.to_json() for r in rows], "plots": [], "videos": {},
                 "error": (errors or {}).get(env_id)}
        if rows:
            png = plot_curves(rows, out / "plots" / f"{_slug(env_id)}.png")
            entry["plots"].append(str(png.relative_to(out)))
            if videos:
                for r in rows:
                    mp4 = write_video(r, out / "videos" / f"{_slug(env_id)}_{_slug(r.predictor)}.mp4")
                    if mp4 is not None:
                        entry["videos"][r.predictor] = str(mp4.relative_to(out))
        report["scenes"][env_id] = entry
    validate(report)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=1))
    (out / "report.html").write_text(_html(report))
    return path
