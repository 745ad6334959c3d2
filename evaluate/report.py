"""``report.json`` + ``report.html``: summary tables, metric-vs-horizon plots and side-by-side videos.

Layout of an output folder::

    report.json            every row of every scene (schema: evaluate/schema.py)
    report.html            the same, readable: tables, plots, videos
    plots/<scene>.png      PSNR, SSIM, position error and persistence against the horizon
    videos/<scene>_<predictor>.mp4   real | predicted | |difference|, first episode, sample 0
    plots/transfer.png     with ``transfer=``: per-episode returns of the dream-to-real transfer run
    videos/attachments/<caption>.mp4   with ``attachments=``: videos from outside the folder, copied
                           (``<caption>-2.mp4``… where two captions make the same file name)

Optional sections: ``transfer`` (a ``transfer.json`` of ``python -m evaluate.transfer``: policies'
returns, transfer ratio, exploitation gap) and ``attachments`` (caption → extra MP4s such as a dream
recording), both stored in ``report.json`` too.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np

from evaluate.metrics.coherence import ABNORMAL, CHECKS
from evaluate.schema import METRICS, SCHEMA_VERSION, validate
from evaluate.suite import EvalResult

TABLE = ("psnr@1", "psnr@8", "psnr@16", "psnr@32", "ssim@8", "persistence", "flicker", "teleport_rate",
         "pos_err", "within_1px", "vel_err", "speed_gain", "gravity_err", "collision_precision",
         "collision_recall", "interpenetration", "outcome_kappa", "coherence", "delta_psnr@4",
         "delta_psnr@16", "cf_cos", "div_ratio")
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
    _save_figure(fig, path)
    return path


def _save_figure(fig, path: Path) -> None:
    """Temp file + rename, like every output here."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, dpi=90)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


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
                parts.append(f"<p style='color:#b00'>{html.escape(r['predictor'])}: {len(bad)} failed "
                             f"episode(s)<ul>{items}</ul></p>")
        for p in scene["plots"]:
            parts.append(f"<p><img src='{html.escape(p)}' style='max-width:100%'></p>")
        for name, v in scene["videos"].items():
            parts.append(_video(v, name, "width='420'"))
    if report.get("transfer"):
        parts.append(transfer_html(report["transfer"], report.get("transfer_plot")))
    if report.get("attachments"):
        parts.append("<h2>Videos</h2>")
        for name, v in report["attachments"].items():
            parts.append(_video(v, name, "style='max-width:100%'"))
    return "\n".join(parts)


def _video(src: str, caption: str, size: str) -> str:
    return (f"<figure style='display:inline-block'><video src='{html.escape(src)}' controls loop muted "
            f"{size}></video><figcaption>{html.escape(caption)}</figcaption></figure>")


def _stat(s: dict | None) -> str:
    return "–" if not s else f"{s['mean']:.3f} ± {s['sem']:.3f}"


def transfer_html(t: dict, plot: str | None = None) -> str:
    """The dream-to-real transfer section: returns per policy in the real scene (and the dream),
    transfer ratio and exploitation gap, from a ``transfer.json`` (schema: ``evaluate/transfer.py``)."""
    c, pol = t["config"], t["policies"]
    rows = ""
    for name, where in (("random", "–"), ("real-trained", f"{c['timesteps']} real steps"),
                        ("dream-trained", f"{c['timesteps']} dream steps")):
        p = pol[name]
        length = float(np.mean(p["real"]["lengths"])) if p["real"]["lengths"] else float("nan")
        rows += (f"<tr><th>{name}</th><td>{html.escape(where)}</td><td>{_stat(p['real'])}</td>"
                 f"<td>{_stat(p.get('dream'))}</td><td>{length:.1f}</td>"
                 f"<td>{_fmt(p.get('train_time_s'))}</td></tr>")
    ratio = "undefined" if t["transfer_ratio"] is None else f"{t['transfer_ratio']:.3f}"
    flag = "" if t["transfer_ratio_reliable"] else " <span style='color:#b00'>(not reliable)</span>"
    gap = "–" if t["exploitation_gap"] is None else f"{t['exploitation_gap']:+.3f}"
    parts = [f"<h2>Dream-to-real transfer: {html.escape(t['env_id'])}</h2>",
             f"<p><code>{html.escape(t.get('command', ''))}</code><br>PPO (CnnPolicy) with the same budget "
             f"of {c['timesteps']} steps in the dream of <code>{html.escape(t['checkpoint'])}</code> and in "
             f"the real scene ({c['num_envs']} environments, seed {c['seed']}); every policy plays the real "
             f"scene on the same {c['eval_episodes']} held-out seeds (from {c['eval_seeds'][0]}), episodes "
             f"capped at {c['max_steps']} steps, trained policies "
             f"{'deterministic' if c.get('deterministic', True) else 'sampling their actions'}.</p>",
             "<table><tr><th>policy</th><th>trained on</th><th>real return (mean ± s.e.)</th>"
             "<th>dream return</th><th>mean real length</th><th>train s</th></tr>" + rows + "</table>",
             f"<p><b>transfer ratio</b> (dream-trained − random) / (real-trained − random) = {ratio}{flag}: "
             f"{html.escape(t['note'])}<br><b>exploitation gap</b> (dream − real return of the "
             f"dream-trained policy) = {gap}: how much of its dream return exists only in the dream.</p>"]
    if plot:
        parts.append(f"<p><img src='{html.escape(plot)}' style='max-width:100%'></p>")
    return "\n".join(parts)


def plot_transfer(t: dict, path: Path) -> Path:
    """Per-episode returns of each policy (real scene; the dream-trained policy also in the dream)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pol = t["policies"]
    series = [(f"{n}\n(real)", pol[n]["real"]["returns"])
              for n in ("random", "real-trained", "dream-trained")]
    series.append(("dream-trained\n(dream)", pol["dream-trained"]["dream"]["returns"]))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    rng = np.random.default_rng(0)
    for i, (_, ys) in enumerate(series):
        ys = np.asarray(ys, float)
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(ys)), ys, s=10, alpha=0.6)
        ax.errorbar(i + 0.3, ys.mean(), yerr=ys.std(ddof=1) / np.sqrt(len(ys)) if len(ys) > 1 else 0,
                    fmt="o", color="k", capsize=3)
    ax.set_xticks(range(len(series)), [s[0] for s in series], fontsize=8)
    ax.set_ylabel("episode return")
    ax.set_title(f"{t['env_id']}: dream-to-real transfer (mean ± s.e. in black)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, path)
    return path


def write_report(scenes: dict[str, list[EvalResult]], out: str | Path, command: str = "",
                 videos: bool = True, errors: dict[str, str] | None = None, transfer: dict | None = None,
                 attachments: dict[str, str] | None = None) -> Path:
    """Writes report.json, report.html, plots and videos under ``out``; returns the JSON's path.

    ``transfer``: a loaded ``transfer.json`` to add as a section (with ``plots/transfer.png``);
    ``attachments``: caption → MP4 path, copied into ``out/videos/attachments`` and embedded at the end."""
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
    if transfer is not None:
        report["transfer"] = transfer
        png = plot_transfer(transfer, out / "plots" / "transfer.png")
        report["transfer_plot"] = str(png.relative_to(out))
    if attachments:
        report["attachments"] = _attach_all(attachments, out)
    validate(report)
    path = out / "report.json"
    atomic_write_text(path, json.dumps(report, indent=1))
    atomic_write_text(out / "report.html", _html(report))
    return path


def atomic_write_text(path: Path, text: str) -> None:
    """Temp file + rename: an interrupted run leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")  # not the locale's: the HTML has "—", "Δ", "≥"
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _attach_all(attachments: dict[str, str], out: Path) -> dict[str, str]:
    """caption → each attached video's path relative to ``out``: as it is when already inside ``out``,
    else copied into ``out/videos/attachments`` (the report folder stays whole when moved or zipped)
    under a name of its own: captions that slug alike ("real | dream", "real_dream") get ``-2``…,
    and no copy replaces a video attached from inside ``out``."""
    root = out.resolve()
    sources = {caption: Path(src).resolve() for caption, src in attachments.items()}
    inside = {c: str(src.relative_to(root)) for c, src in sources.items() if src.is_relative_to(root)}
    taken = set(inside.values())
    result = {}
    for caption, src in sources.items():
        if caption in inside:
            result[caption] = inside[caption]
            continue
        stem = _slug(caption) or "video"
        if src.suffix and stem.lower().endswith(src.suffix.lower()):
            stem = stem[:-len(src.suffix)] or "video"  # a caption "clip.mp4" gives clip.mp4, not clip.mp4.mp4
        rel = _unique(f"videos/attachments/{stem}", src.suffix, taken)
        taken.add(rel)
        _copy(src, out / rel)
        result[caption] = rel
    return result


def _unique(stem: str, suffix: str, taken: set[str]) -> str:
    """``stem + suffix``, or ``stem-2 + suffix``, ``-3``… : the first not in ``taken``."""
    name, k = f"{stem}{suffix}", 1
    while name in taken:
        k += 1
        name = f"{stem}-{k}{suffix}"
    return name


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
