"""``make demo QUICK=1`` end to end, headless, into a temporary OUT: scenes video → dataset → world
model → dream recording → dream-to-real transfer → evaluation report with the checkpoint row, the
reference rows, plots, real | dream videos and the transfer section; a rerun reuses what exists.

Both runs take about 55 s on 2 shared cores (the first ~35 s), so the test is in the default suite.
Also: ``python -m envs.demo`` refuses bad flags before it plays anything."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluate.transfer import load_transfer

ROOT = Path(__file__).resolve().parents[1]


def _make(out: Path) -> subprocess.CompletedProcess:
    """``make demo QUICK=1 OUT=out`` with this interpreter, one torch thread, and without installing
    anything: the install stamp is a path that ``-o`` tells make never to remake, so the test runs in
    the environment it was started from whatever VENV is."""
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("MAKEFLAGS", None)
    stamp = out.parent / "installed.stamp"
    args = ["make", "--no-print-directory", "-o", str(stamp), "demo", f"STAMP={stamp}", "QUICK=1",
            f"OUT={out}", "THREADS=1", f"PY={sys.executable}"]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("argv, message", [
    (["--steps", "-3"], "--steps must be at least 1, got -3"),
    (["--steps", "0"], "--steps must be at least 1, got 0"),
    (["--size", "20"], "--size must be in [32, 512], got 20"),
    (["--size", "600"], "--size must be in [32, 512], got 600"),
    (["--scale", "0"], "--scale must be at least 1"),
    (["--out", "x.txt"], "--out must end in .mp4"),
])
def test_scenes_demo_refuses_bad_flags(argv, message, capsys, tmp_path):
    from envs import demo

    with pytest.raises(SystemExit) as e:
        demo.main([*argv] if "--out" in argv else [*argv, "--out", str(tmp_path / "s.mp4")])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_scenes_demo_help_states_every_default(capsys):
    from envs import demo

    with pytest.raises(SystemExit):
        demo.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--steps", "--size", "--scale", "--seed", "--out"):
        assert flag in text
    assert text.count("(default") == 5


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shards(data: Path) -> list:
    """The dataset's shard files and checksums (metadata.json's "updated" time changes on --resume)."""
    return json.loads((data / "metadata.json").read_text())["shards"]


def _check_outputs(out: Path) -> dict:
    run = out / "runs" / "bb-quick"
    for name in ("scenes.mp4", "dataset.mp4", "dream.mp4", "report.html", "report.json",
                 "data/bb-quick/metadata.json", "runs/bb-quick/config.json",
                 "runs/bb-quick/dynamics/model.safetensors", "transfer/policies/dream.zip"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    transfer = load_transfer(out / "transfer" / "transfer.json")
    assert transfer["checkpoint"] == str(run)
    report = json.loads((out / "report.json").read_text())
    scene = report["scenes"]["WorldGym/BouncingBalls-v0"]
    predictors = [r["predictor"] for r in scene["rows"]]
    # the checkpoint the demo trained, beside the shipped one
    assert predictors == ["real", "real-perturbed", "copy-last", f"checkpoint:{run}",
                          "checkpoint:checkpoints/bouncing_balls"]
    assert all(r["summary"]["episodes_failed"] == 0 for r in scene["rows"])
    assert f"checkpoint:{run}" in scene["videos"]  # real | predicted | |difference|
    for rel in [*scene["plots"], *scene["videos"].values(), report["transfer_plot"],
                *report["attachments"].values()]:
        assert (out / rel).is_file(), rel
    assert report["attachments"]["real | dream"] == "dream.mp4"
    assert report["transfer"] == transfer
    page = (out / "report.html").read_text()
    assert "Dream-to-real transfer" in page and "src='dream.mp4'" in page and f"checkpoint:{run}" in page
    return transfer


def _check_rerun(out: Path, done: subprocess.CompletedProcess, before: dict) -> None:
    """The second run keeps the dataset and the checkpoint, and reuses both trained policies."""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[tokenizer] resumed at step" in done.stdout and "[dynamics] resumed at step" in done.stdout
    assert _sha(out / "runs/bb-quick/dynamics/model.safetensors") == before["weights"]
    assert _shards(out / "data/bb-quick") == before["shards"]
    again = _check_outputs(out)
    assert again["policies"]["real-trained"]["resumed"] and again["policies"]["dream-trained"]["resumed"]
    for name in ("random", "real-trained", "dream-trained"):
        first = before["transfer"]["policies"][name]["real"]["returns"]
        assert again["policies"][name]["real"]["returns"] == first


def test_make_demo_quick_end_to_end_and_rerun(tmp_path):
    out = tmp_path / "out"
    done = _make(out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "demo outputs:" in done.stdout
    before = {"transfer": _check_outputs(out),
              "weights": _sha(out / "runs/bb-quick/dynamics/model.safetensors"),
              "shards": _shards(out / "data/bb-quick")}
    _check_rerun(out, _make(out), before)
