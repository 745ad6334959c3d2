"""Training-loop tests: the real ``python -m worldmodel.train`` on micro configs (same code path as the
presets), with in-memory BouncingBalls rollouts: loss goes down, resume continues the step count and
is bit-exact, kill -9 is survivable, and DDP with 2 CPU processes (gloo) matches 1 process."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from worldmodel import train

ROOT = Path(__file__).resolve().parents[1]
MICRO = ["tokenizer.height=32", "tokenizer.width=32", "tokenizer.channels=[8,16,16]",
         "tokenizer.codebook_size=64", "tokenizer.code_dim=16", "tokenizer.restart_every=4",
         "dynamics.d_model=32", "dynamics.n_layers=2", "dynamics.n_heads=2", "dynamics.token_dim=16",
         "dynamics.context=3", "dynamics.train_frames=5", "dynamics.memory_slots=4",
         "dynamics.maskgit_steps=2",
         "train.tokenizer_batch=8", "train.dynamics_batch=4", "train.warmup=2", "train.eval_every=1000",
         "train.checkpoint_every=3", "train.log_every=1", "train.eval_episodes=2", "train.eval_horizon=4"]
DATA = ["--env", "WorldGym/BouncingBalls-v0", "--episodes", "12", "--episode-steps", "30"]


def _args(out, *extra, steps=8):
    return [*DATA, "--preset", "tiny", "--out", str(out), "--steps", str(steps), "--threads", "1",
            "--no-progress", *extra, "--set", *MICRO]


def _log(run, stage):
    return [json.loads(line) for line in (Path(run) / "logs" / f"{stage}.jsonl").read_text().splitlines()]


def _weights(run, stage):
    return load_file(str(Path(run) / stage / "model.safetensors"))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_loss_decreases_on_a_small_dataset(tmp_path):
    lrs = ["--set", "train.tokenizer_lr=0.003", "train.dynamics_lr=0.003"]
    states = train.main(_args(tmp_path / "run", *lrs, steps=40))
    assert states["tokenizer"]["done"] and states["dynamics"]["done"]
    for stage in ("tokenizer", "dynamics"):
        losses = [r["loss"] for r in _log(tmp_path / "run", stage)]
        assert len(losses) == 40
        assert sum(losses[-5:]) / 5 < 0.95 * sum(losses[:5]) / 5, (stage, losses[:5], losses[-5:])
    run = tmp_path / "run"
    assert (run / "tb" / "tokenizer").is_dir() and (run / "tb" / "dynamics").is_dir()
    import worldmodel

    model = worldmodel.load(run)
    ctx, acts = torch.zeros(1, 2, 64, 64, 3, dtype=torch.uint8), torch.zeros(1, 3, dtype=torch.long)
    out = model.generate(ctx, acts, 3)
    assert out.frames.shape == (1, 1, 3, 32, 32, 3)
    _check_export(run, tmp_path / "shipped", model)


def _check_export(run, shipped, model):
    """The exported checkpoint: half the bytes, loads with worldmodel.load, same weights to fp16
    precision, a model card citing the training command; refuses to overwrite."""
    import worldmodel
    from worldmodel import export

    export.main([str(run), "--out", str(shipped)])
    assert (shipped / "MODEL_CARD.md").read_text().count("python -m worldmodel.train") == 1
    assert not list(shipped.rglob("optimizer.safetensors"))
    small = worldmodel.load(shipped)
    for (k, a), (_, b) in zip(model.state_dict().items(), small.state_dict().items()):
        assert b.dtype == a.dtype, k
        if a.is_floating_point():
            torch.testing.assert_close(b, a, atol=2e-3, rtol=2e-3)
        else:
            assert torch.equal(a, b), k
    size = lambda d: sum(f.stat().st_size for f in Path(d).rglob("model.safetensors"))  # noqa: E731
    assert size(shipped) < 0.6 * size(run)
    with pytest.raises(FileExistsError, match="--overwrite"):
        export.export(run, shipped)
    # --passes sets the copy's generation passes (every config in it), and the card says so
    assert small.cfg.dynamics.maskgit_steps == 2  # the run's (_args)
    export.main([str(run), "--out", str(shipped), "--overwrite", "--passes", "1"])
    for cfg in [shipped / "config.json", *shipped.glob("*/config.json")]:
        assert json.loads(cfg.read_text())["dynamics"]["maskgit_steps"] == 1, cfg
    assert worldmodel.load(shipped).cfg.dynamics.maskgit_steps == 1
    assert "1 passes per frame" in (shipped / "MODEL_CARD.md").read_text()
    with pytest.raises(ValueError, match="passes must be in"):
        export.export(run, shipped, overwrite=True, passes=0)
    assert worldmodel.load(shipped).cfg.dynamics.maskgit_steps == 1  # a refused export loses nothing
    with pytest.raises(ValueError, match="not a readable evaluate report"):
        export.export(run, shipped, overwrite=True, eval_reports=[shipped / "missing.json"])
    assert worldmodel.load(shipped).cfg.dynamics.maskgit_steps == 1  # ... whatever fails
    for onto in (run, run.parent):
        with pytest.raises(ValueError, match="would replace the run"):
            export.export(run, onto, overwrite=True)
    assert (run / "dynamics" / "model.safetensors").exists()


def test_resume_continues_the_step_count_bit_exactly(tmp_path):
    train.main(_args(tmp_path / "a"))
    first = train.main(_args(tmp_path / "b", "--stop-at", "5"))
    assert first["tokenizer"]["step"] == 5 and "dynamics" not in first  # stopped inside the tokenizer
    with pytest.raises(SystemExit):  # refuses to overwrite without --resume
        train.main(_args(tmp_path / "b"))
    second = train.main(_args(tmp_path / "b", "--resume"))
    assert second["tokenizer"]["step"] == 8 and second["dynamics"]["step"] == 8
    assert [r["step"] for r in _log(tmp_path / "b", "tokenizer")] == list(range(1, 9))
    for stage in ("tokenizer", "dynamics"):
        a, b = _weights(tmp_path / "a", stage), _weights(tmp_path / "b", stage)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), stage
    assert json.loads((tmp_path / "b" / "dynamics" / "train_state.json").read_text())["step"] == 8



def test_a_run_keeps_its_config_scene_and_seed_across_invocations(tmp_path, capsys):
    run = tmp_path / "r"
    wide = ["--set", "dynamics.d_model=48", "train.val_fraction=0.25"]
    train.main([*_args(run, "--stage", "tokenizer", steps=2), *wide[1:]])
    assert "9 train / 3 val episodes" in capsys.readouterr().out  # train.val_fraction is used
    # the two-step flow, without the overrides again: the run's config.json wins over the preset
    train.main([*DATA, "--out", str(run), "--steps", "2", "--threads", "1", "--no-progress",
                "--stage", "dynamics"])
    assert json.loads((run / "config.json").read_text())["dynamics"]["d_model"] == 48
    assert _weights(run, "dynamics")["in_proj.weight"].shape[0] == 48
    tokenizer = _weights(run, "tokenizer")
    commands = (run / "commands.jsonl").read_text()
    refused = [
        ([*_args(run, "--resume", steps=4)[2:], "--env", "WorldGym/TopDown-v0"], "trained with actions"),
        (_args(run, "--resume", "--seed", "9", steps=4), "--seed 9"),
        (_args(run, steps=4), "exists: pass --resume"),
        # an override that changes a trained stage's shapes: one line, not a traceback after recording
        ([*_args(run, "--resume", steps=4), "tokenizer.code_dim=8"],
         r"tokenizer/model.safetensors does not fit the tokenizer .* "
         r"\(--set .*tokenizer.code_dim=8: a trained stage"),
    ]
    for argv, message in refused:
        with pytest.raises(SystemExit, match=message):
            train.main(argv)
    assert all(torch.equal(tokenizer[k], v) for k, v in _weights(run, "tokenizer").items())  # untouched
    assert (run / "commands.jsonl").read_text() == commands  # refused commands are not provenance
    fresh = tmp_path / "fresh"  # a stage copied into a new run (gpu_small.sh) is checked as well
    shutil.copytree(run / "tokenizer", fresh / "tokenizer")
    with pytest.raises(SystemExit, match="does not fit the tokenizer"):
        train.main([*_args(fresh, "--stage", "dynamics", steps=2), "tokenizer.code_dim=8"])
    assert sorted(p.name for p in fresh.iterdir()) == ["tokenizer"]  # nothing written


@pytest.mark.parametrize("pair, message", [
    ("dynamics.d_model", "expected KEY=VALUE"),
    ("train.seed=abc", "TrainConfig.seed: expected an integer, got 'abc'"),
    ("foo.bar=1", "no section 'foo'"),
    ("dynamics.codebook_size=64", "derived from tokenizer.codebook_size"),
])
def test_bad_set_overrides_are_one_clear_error_and_write_nothing(tmp_path, pair, message):
    with pytest.raises(SystemExit, match=message):
        train.main([*DATA, "--out", str(tmp_path / "r"), "--steps", "1", "--set", pair])
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flag, message", [
    (["--steps", "0"], "--steps must be >= 1, got 0"),  # once trained the preset's whole schedule
    (["--steps", "-5"], "--steps must be >= 1, got -5"),  # once "train the tokenizer first", recorded
    (["--minutes", "-1"], "--minutes must be a number > 0"),  # once one step per stage
    (["--minutes", "nan"], "--minutes must be a number > 0"),
    (["--stop-at", "0"], "--stop-at must be >= 1"),
    (["--episodes", "0"], "--episodes must be >= 1"),
    (["--threads", "-2"], "--threads must be >= 0 (0: torch's choice)"),  # once a RuntimeError
])
def test_out_of_range_numbers_are_argument_errors_that_write_nothing(tmp_path, capsys, flag, message):
    with pytest.raises(SystemExit) as e:
        train.main([*DATA, "--out", str(tmp_path / "r"), *flag])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # no commands.jsonl line for a refused command
    assert train.parse_args([*DATA, "--threads", "0"]).threads == 0  # 0: torch's choice, as documented


def _micro_run(run: Path, done: bool = True) -> Path:
    """A run directory of an untrained micro model, as worldmodel.train leaves it (fast to export)."""
    from test_worldmodel import micro_cfg

    from worldmodel.checkpoint import save_stage
    from worldmodel.model import WorldModel

    cfg = micro_cfg()
    torch.manual_seed(0)
    model = WorldModel(cfg)
    for stage in ("tokenizer", "dynamics"):
        state = {"stage": stage, "step": 8 if done else 3, "planned_steps": 8, "done": done, "seed": 0,
                 "elapsed_s": 1.0}
        save_stage(run, stage, getattr(model, stage), cfg, train_state=state)  # and RUN/config.json
    return run


def _report(path: Path, predictor: str) -> Path:
    """A minimal evaluate report.json (valid under evaluate.schema) with one row of ``predictor``."""
    from evaluate.metrics.coherence import CHECKS

    config = dict.fromkeys(("episodes", "horizon", "context", "samples", "policy", "seed", "options",
                            "width", "height"), 0)
    row = {"env_id": "WorldGym/BouncingBalls-v0", "predictor": predictor, "config": config,
           "summary": {"coherence": 0.5, "episodes_ok": 1, "episodes_failed": 0, "psnr@1": 31.5},
           "curves": {k: [1.0] for k in ("psnr", "ssim", "pos_err", "persistence")},
           "checks": {**dict.fromkeys(CHECKS, 0.0), "abnormal": 0.0}, "floors": {},
           "episodes": [{"seed": 0, "error": None}], "wall_time_s": 1.0}
    scene = {"rows": [row], "plots": [], "videos": {}, "error": None}
    path.write_text(json.dumps({"schema_version": 1, "created": "now", "command": "python -m evaluate",
                                "scenes": {"WorldGym/BouncingBalls-v0": scene}}))
    return path


def test_export_copies_only_reports_of_this_run_and_fails_in_one_line(tmp_path, capsys, monkeypatch):
    from worldmodel import export

    run, out = _micro_run(tmp_path / "run"), tmp_path / "shipped"
    (tmp_path / "transfer.json").write_text(json.dumps({"env": "WorldGym/BouncingBalls-v0", "rows": []}))
    refused = [
        (["--eval", str(_report(tmp_path / "other.json", f"checkpoint:{tmp_path / 'other'}@0"))],
         "no row of checkpoint:"),  # once copied another checkpoint's numbers onto this card
        (["--eval", str(tmp_path / "transfer.json")], "not a readable evaluate report.json"),  # KeyError
        (["--passes", "0"], "passes must be in"),
    ]
    for extra, message in refused:
        with pytest.raises(SystemExit) as e:
            export.main([str(run), "--out", str(out), *extra])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and "Traceback" not in err, err
        assert not out.exists() and not (tmp_path / "shipped.partial").exists()
    for argv, message in [([str(tmp_path / "nope"), "--out", str(out)], "no config.json"),
                          ([str(run), "--out", str(run)], "would replace the run")]:
        with pytest.raises(SystemExit) as e:
            export.main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # a report's relative checkpoint path is read from the current directory
    reports = [_report(tmp_path / "t0.json", f"checkpoint:{run}@0"),
               _report(tmp_path / "t1.json", "checkpoint:run@1:adaptive")]
    export.main([str(run), "--out", str(out), *[a for r in reports for a in ("--eval", str(r))]])
    card = (out / "MODEL_CARD.md").read_text()
    assert "| checkpoint:run@1:adaptive | 31.5 |" in card and f"checkpoint:{run}@0" in card
    with pytest.raises(SystemExit) as e:
        export.main([str(run), "--out", str(out)])
    assert e.value.code == 2 and "pass --overwrite" in capsys.readouterr().err
    monkeypatch.setattr(export, "model_card", lambda *a: 1 / 0)  # a failure while writing ...
    with pytest.raises(ZeroDivisionError):
        export.export(run, out, overwrite=True)
    assert not (tmp_path / "shipped.partial").exists() and (out / "MODEL_CARD.md").read_text() == card


def test_exporting_a_half_trained_run_says_so(tmp_path, capsys):
    from worldmodel import export

    run = _micro_run(tmp_path / "run", done=False)
    export.main([str(run), "--out", str(tmp_path / "shipped")])
    err = capsys.readouterr().err
    assert "warning:" in err and "run/dynamics is not finished (step 3 of 8 planned)" in err, err
    assert "of 8 planned: not finished" in (tmp_path / "shipped" / "MODEL_CARD.md").read_text()
    export.main([str(_micro_run(tmp_path / "done")), "--out", str(tmp_path / "shipped2")])
    assert "warning" not in capsys.readouterr().err


def test_episode_encoding_is_cached_stops_on_request_and_does_not_depend_on_the_batch(tmp_path):
    from worldmodel.data import EpisodeStore
    from worldmodel.tokenizer import Tokenizer

    store, _ = EpisodeStore.from_env("WorldGym/BouncingBalls-v0", 3, steps=12, width=32, height=32)
    cfg = train.apply_overrides(train.preset("tiny", store.action_space), MICRO)
    tok = Tokenizer(cfg.tokenizer).eval()
    cpu = torch.device("cpu")
    assert not store.tokenize(tok, cpu, cache=tmp_path, stop=lambda: True)  # a stop request keeps nothing
    assert store.tokens is None and not list(tmp_path.iterdir())
    assert store.tokenize(tok, cpu, batch=5, cache=tmp_path)  # several calls per episode, then cached
    by_five = store.tokens
    assert len(list(tmp_path.glob("tokens-*.npz"))) == 1
    assert store.tokenize(tok, cpu)  # the CPU's default batch (whole episodes here), no cache
    assert all(np.array_equal(a, b) for a, b in zip(by_five, store.tokens, strict=True))
    assert store.tokenize(tok, cpu, cache=tmp_path, stop=lambda: True)  # read back: nothing to stop
    assert all(np.array_equal(a, b) for a, b in zip(by_five, store.tokens, strict=True))

def test_a_finished_run_without_optimizer_state_trains_further_after_a_fresh_warm_up(tmp_path):
    """An exported run (weights, no optimizer) resumed with a larger --steps: the schedule stretches to
    the new total and the learning rate warms up again instead of hitting fresh Adam moments at full
    strength."""
    run = tmp_path / "r"
    train.main(_args(run))
    (run / "dynamics" / "optimizer.safetensors").unlink()
    more = train.main(_args(run, "--resume", "--stage", "dynamics", steps=12))
    assert more["dynamics"]["step"] == 12
    state = json.loads((run / "dynamics" / "train_state.json").read_text())
    assert state["rewarm_from"] == 8
    lrs = {r["step"]: r["lr"] for r in _log(run, "dynamics")}
    peak = train.preset("tiny").train.dynamics_lr
    assert lrs[9] == pytest.approx(0.5 * train.lr_at(8, 12, peak, 2))  # warm-up of 2 steps (MICRO)
    assert lrs[10] == pytest.approx(train.lr_at(9, 12, peak, 2))


def test_minutes_plans_the_schedule_to_end_in_time(tmp_path, monkeypatch):
    """--minutes with --steps as a cap: the loop runs the planner's schedule to its end. The planner's
    clock is faked (0.2 s per step, about 10× the real step) so that the plan does not depend on this
    machine's load: 30 s of budget minus start-up is 115-165 planned steps, finished early in real time."""
    from worldmodel.schedule import DeadlinePlanner

    def fake_clock():
        fake_clock.t = time.time() if fake_clock.t is None else fake_clock.t + 0.2
        return fake_clock.t

    fake_clock.t = None
    monkeypatch.setattr(train, "DeadlinePlanner", lambda *a: DeadlinePlanner(*a, clock=fake_clock))
    run = tmp_path / "m"
    states = train.main([*_args(run, "--stage", "tokenizer", "--minutes", "0.5", steps=100_000)])
    state = json.loads((run / "tokenizer" / "train_state.json").read_text())
    assert state["calibrated"] and state["done"] and 115 <= state["planned_steps"] <= 165
    assert states["tokenizer"]["step"] == state["planned_steps"]
    peak = train.preset("tiny").train.tokenizer_lr
    assert _log(run, "tokenizer")[-1]["lr"] == pytest.approx(0.1 * peak, rel=0.01)  # the cosine's end


def test_a_resume_with_minutes_keeps_its_learning_rate_until_the_new_plan(tmp_path, monkeypatch):
    """A finished stage resumed with --minutes and a larger --steps: until the planner's first speed
    sample the schedule's new length is unknown, and the learning rate stays at the end of the old
    schedule (10% of the peak) instead of jumping to a cosine over --steps (near the peak); then it
    follows the stretched schedule, which ends in time."""
    from worldmodel.schedule import DeadlinePlanner

    def fake_clock():  # the planner's: 0.2 s per step from the trainer's frozen start
        fake_clock.t = frozen if fake_clock.t is None else fake_clock.t + 0.2
        return fake_clock.t

    run = tmp_path / "r"
    train.main(_args(run, "--stage", "tokenizer"))
    fake_clock.t, frozen = None, time.time()
    monkeypatch.setattr(train, "DeadlinePlanner", lambda *a: DeadlinePlanner(*a, clock=fake_clock))
    # the trainer's own clock stands still: its hard deadline (real seconds) must not cut the plan short
    # on a loaded machine (it did, with the suite niced beside a training run)
    monkeypatch.setattr(train, "time", types.SimpleNamespace(time=lambda: frozen, strftime=time.strftime))
    train.main(_args(run, "--resume", "--stage", "tokenizer", "--minutes", "0.5", steps=100_000))
    state = json.loads((run / "tokenizer" / "train_state.json").read_text())
    assert state["calibrated"] and state["done"] and state["planned_steps"] > 100
    lrs = {r["step"]: r["lr"] for r in _log(run, "tokenizer")}
    peak = train.preset("tiny").train.tokenizer_lr
    first_sample = 8 + DeadlinePlanner.FIRST
    assert all(lrs[s] == pytest.approx(0.1 * peak) for s in range(9, first_sample + 1))
    assert lrs[first_sample + 1] == pytest.approx(train.lr_at(first_sample, state["planned_steps"], peak, 2))
    assert lrs[state["planned_steps"]] == pytest.approx(0.1 * peak, rel=0.01)


def _env():
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("WORLD_SIZE", None)
    return env


@pytest.mark.slow
def test_resume_after_kill_9(tmp_path):
    run = tmp_path / "k"
    every_step = ["--set", "train.checkpoint_every=1"]
    cmd = [sys.executable, "-m", "worldmodel.train", *_args(run, *every_step, steps=400)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    state = run / "tokenizer" / "train_state.json"
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["step"] >= 5:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((run / "tokenizer" / "train_state.json").read_text())["step"]
    assert killed_at >= 5
    done = subprocess.run([sys.executable, "-m", "worldmodel.train", *_args(run, "--resume", steps=12)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resumed at step {killed_at}" in done.stdout
    steps = [r["step"] for r in _log(run, "tokenizer")]
    assert steps == list(range(1, 13))


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(tmp_path):
    """torchrun with 2 CPU processes (gloo) and the same global batch gives the same losses."""
    common = ["--steps", "3"]
    one = subprocess.run([sys.executable, "-m", "worldmodel.train", *_args(tmp_path / "one", *common)],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "worldmodel.train", *_args(tmp_path / "two", *common)],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 process(es)" in two.stdout
    for stage in ("tokenizer", "dynamics"):
        a, b = _log(tmp_path / "one", stage), _log(tmp_path / "two", stage)
        assert len(a) == len(b) == 3
        for ra, rb in zip(a, b):
            assert abs(ra["loss"] - rb["loss"]) <= 1e-4 * max(1.0, abs(ra["loss"])), (stage, ra, rb)


def test_box_actions_from_collect_through_train_to_evaluate(tmp_path, capsys):
    """The continuous pipeline: ``collect --continuous`` → train on Box actions → ``evaluate
    --continuous`` scores the checkpoint; without the flag it is refused before anything runs."""
    from collect.__main__ import main as collect_main
    from evaluate.__main__ import main as evaluate_main

    data, run = tmp_path / "data", tmp_path / "run"
    assert collect_main(["--out", str(data), "--episodes", "4", "--max-steps", "12", "--size", "32",
                         "--workers", "1", "--continuous", "--no-progress"]) == 0
    meta = json.loads((data / "metadata.json").read_text())
    assert meta["settings"]["continuous"] is True and meta["env"]["action_space"]["type"] == "Box"
    train.main(["--data", str(data), "--preset", "tiny", "--out", str(run), "--steps", "2", "--threads", "1",
                "--no-progress", "--no-eval", "--set", *MICRO])
    assert json.loads((run / "config.json").read_text())["action_space"]["type"] == "box"
    common = ["--env", "WorldGym/BouncingBalls-v0", "--predictor", f"checkpoint:{run}@0", "--episodes", "1",
              "--horizon", "3", "--context", "2", "--samples", "2", "--width", "32", "--height", "32",
              "--no-videos", "--quiet"]
    assert evaluate_main([*common, "--out", str(tmp_path / "refused")]) == 2
    assert "evaluate it with --continuous" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    assert evaluate_main([*common, "--continuous", "--out", str(tmp_path / "eval")]) == 0
    rows = json.loads((tmp_path / "eval" / "report.json").read_text())["scenes"]["WorldGym/BouncingBalls-v0"]
    row = rows["rows"][-1]
    assert row["predictor"] == f"checkpoint:{run}@0" and row["config"]["continuous"] is True
    assert row["summary"]["episodes_ok"] == 1


def test_box_actions_from_an_env_in_memory(tmp_path, capsys):
    run = tmp_path / "run"
    train.main([*_args(run, "--continuous", steps=2)])
    assert json.loads((run / "config.json").read_text())["action_space"]["type"] == "box"
    from worldmodel import export

    export.main([str(run), "--out", str(tmp_path / "exported")])  # its card's evaluate line works as shown
    card = (tmp_path / "exported" / "MODEL_CARD.md").read_text()
    evaluate_lines = [ln for ln in card.splitlines() if ln.startswith("python -m evaluate")]
    assert evaluate_lines[-1].endswith(" --continuous")
    with pytest.raises(SystemExit):
        train.main(["--data", str(tmp_path), "--continuous", "--out", str(tmp_path / "x")])
    assert "--continuous applies to --env" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no continuous action mode"):
        train.main(["--env", "WorldGym/Platformer-v0", "--continuous", "--out", str(tmp_path / "y"),
                    "--steps", "1", "--no-progress"])
    assert not (tmp_path / "y" / "tokenizer").exists()


def test_an_out_of_range_option_of_the_model_is_one_line_that_writes_nothing(tmp_path):
    with pytest.raises(SystemExit, match="^error: own_context_steps must be >= 1, got 0"):
        train.main(_args(tmp_path / "r", "--set", "dynamics.own_context_steps=0", steps=1))
    assert not (tmp_path / "r").exists()
