"""evaluate/: parser accuracy, exactness on `real`, predictors, metrics, report schema, CLI smoke."""
import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs
from evaluate import EvalResult, make_predictor, run_suite
from evaluate.metrics import control, fidelity, persistence, physics
from evaluate.metrics.coherence import CHECKS
from evaluate.predictors import REFERENCE_ROWS, CopyLast, Real, RealPerturbed, RealRedrawn
from evaluate.rollouts import Episode, make_scene, redraw_directions, run
from evaluate.schema import REPORT_SCHEMA, validate
from evaluate.selftest import parser_accuracy

BB = "WorldGym/BouncingBalls-v0"
ROOT = Path(__file__).resolve().parents[1]


def _scene_or_skip(env_id):
    try:
        gym.make(env_id).reset(seed=0)
    except Exception as e:  # a scene still being written by someone else
        pytest.skip(f"{env_id} does not run yet: {type(e).__name__}: {e}")


@pytest.mark.parametrize("env_id", envs.SCENE_IDS)
def test_parser_centroid_within_half_pixel(env_id):
    _scene_or_skip(env_id)
    acc = parser_accuracy(env_id, episodes=2, steps=48)
    assert acc["all"]["n"] > 20, acc
    assert acc["all"]["median"] < 0.5, acc
    assert acc["missed"] == 0, acc


@pytest.mark.parametrize("env_id", envs.SCENE_IDS)
def test_real_against_itself_is_exact(env_id):
    _scene_or_skip(env_id)
    r = run_suite(env_id, "real", episodes=1, horizon=8, context=2, samples=2, progress=False)
    s = r.summary
    assert r.failed == 0, r.episodes
    assert s["persistence"] == 1.0 and s["count_acc"] == 1.0 and s["coherence"] == 1.0
    for key in ("pos_err", "vel_err", "teleports", "flicker", "identity_err", "interpenetration", "spurious",
                "background"):
        assert s[key] == 0.0 or math.isnan(s[key]), (key, s[key])
    assert s["gravity_err"] == 0.0 or math.isnan(s["gravity_err"])
    assert s["speed_gain"] == 1.0 or math.isnan(s["speed_gain"])
    assert all(v == 0.0 or math.isnan(v) for v in r.checks.values()), r.checks  # NaN: not measured
    assert r.checks["abnormal"] == 0.0 and r.checks["persistence"] == 0.0
    assert s["psnr@1"] == fidelity.MAX_PSNR and s["ssim@8"] == 1.0
    assert s["cf_cos"] == 1.0 or math.isnan(s["cf_cos"])
    assert s["outcome_acc"] == 1.0


def test_predictors_shapes_and_determinism():
    k, T, S = 3, 5, 2
    ep = Episode(BB, 7)
    ro = run(ep, k + T - 1)
    cf, ca, fa = ro.frames[None, :k], ro.actions[None, :k - 1], ro.actions[None, k - 1:]
    real = Real().predict(cf, ca, fa, S, [ep])
    assert real.shape == (1, S, T, 64, 64, 3) and real.dtype == np.uint8
    assert np.array_equal(real[0, 0], ro.frames[k:]) and np.array_equal(real[0, 1], ro.frames[k:])
    pert = RealPerturbed().predict(cf, ca, fa, S, [ep])
    assert not np.array_equal(pert[0, 0], ro.frames[k:])  # nudged
    assert not np.array_equal(pert[0, 0], pert[0, 1])  # per-sample generators
    assert np.array_equal(pert, RealPerturbed().predict(cf, ca, fa, S, [ep]))  # seeded
    last = CopyLast().predict(cf, ca, fa, S, [ep])
    assert last.shape == real.shape and np.all(last == ro.frames[k - 1])
    with pytest.raises(ValueError, match="Episode"):
        Real().predict(cf, ca, fa, S, None)
    with pytest.raises(ValueError, match="context frames"):
        Real().predict(cf, ca, fa, S, [Episode(BB, 8)])


def test_real_redrawn_keeps_speeds_and_redraws_directions():
    """The one-frame diversity reference: same positions and speeds, new headings, seeded per sample."""
    ep = Episode(BB, 7)
    scene = make_scene(ep)
    scene.reset(seed=ep.seed)
    bodies = [t.body for t in scene.things if t.body.body_type == t.body.DYNAMIC]
    before = [(b.position, b.velocity) for b in bodies]
    redraw_directions(np.random.default_rng(0))(scene)
    assert bodies and all(b.position == p for b, (p, _) in zip(bodies, before))
    assert all(abs(b.velocity.length - v.length) < 1e-9 for b, (_, v) in zip(bodies, before))
    assert all(abs(b.velocity.get_angle_between(v)) > 1e-3 for b, (_, v) in zip(bodies, before))
    scene.close()
    ro = run(ep, 12)
    cf, ca, fa = ro.frames[None, :1], ro.actions[None, :0], ro.actions[None, :12]
    red = RealRedrawn().predict(cf, ca, fa, 3, [ep])
    assert not np.array_equal(red[0, 0], red[0, 1])  # per-sample generators
    assert np.array_equal(red, RealRedrawn().predict(cf, ca, fa, 3, [ep]))  # seeded
    assert make_predictor("real-redrawn").name == "real-redrawn"


def test_diversity_ratio_is_pooled_over_episodes():
    from evaluate.metrics import diversity

    dream, real = [1.0, 1.0, 3.0], [2.0, 4.0, 0.06]  # the last reference barely spreads: its ratio is 50
    assert diversity.pooled_ratio(dream, real) == pytest.approx(5 / 6.06)
    assert diversity.pooled_ratio([1.0], [0.01]) != diversity.pooled_ratio([1.0], [0.01])  # NaN: no spread


def test_make_predictor_specs():
    assert [make_predictor(s).name for s in REFERENCE_ROWS] == list(REFERENCE_ROWS)
    assert make_predictor("corrupt:shift").name == "corrupt:shift"
    with pytest.raises(ValueError, match="unknown predictor"):
        make_predictor("nope")


def test_checkpoint_spec_without_worldmodel(monkeypatch):
    monkeypatch.setitem(sys.modules, "worldmodel", None)  # import worldmodel -> ImportError
    with pytest.raises(RuntimeError, match="not available yet"):
        make_predictor("checkpoint:runs/x")


def test_checkpoint_spec_wraps_worldmodel_generate(monkeypatch):
    calls = []

    class FakeModel:
        def generate(self, context_frames, actions, horizon, num_samples, temperature, seed, context_actions):
            calls.append(dict(horizon=horizon, seed=seed, context_actions=context_actions,
                              temperature=temperature))
            B = context_frames.shape[0]
            return types.SimpleNamespace(frames=np.zeros((B, num_samples, horizon, 64, 64, 3), np.uint8))

    FakeModel.cfg = types.SimpleNamespace(env_id=BB, tokenizer=types.SimpleNamespace(width=64, height=64),
                                          action_space={"type": "discrete", "n": 3})
    import worldmodel.config as real_config  # the scene check's space_spec

    fake = types.ModuleType("worldmodel")
    fake.load = lambda path, device="cpu": FakeModel()
    monkeypatch.setitem(sys.modules, "worldmodel", fake)
    monkeypatch.setitem(sys.modules, "worldmodel.config", real_config)
    pred = make_predictor("checkpoint:runs/fake")
    assert pred.name == "checkpoint:runs/fake"
    r = run_suite(BB, pred, episodes=1, horizon=4, context=2, samples=2, seed=5, progress=False)
    assert r.failed == 0, r.episodes
    first = calls[0]  # the main prediction: 2 context frames, 1 action between them
    assert first["seed"] == 5 and first["horizon"] == 4 and first["context_actions"].shape == (1, 1)
    assert calls[-1]["context_actions"] is None  # diversity: one context frame
    cold = make_predictor("checkpoint:runs/fake@0.5")
    assert cold.name == "checkpoint:runs/fake@0.5" and cold.temperature == 0.5 and pred.temperature == 1.0
    assert {c["temperature"] for c in calls} == {1.0}
    run_suite(BB, cold, episodes=1, horizon=2, context=1, samples=1, progress=False, controllability=False,
              diversity=False)
    assert calls[-1]["temperature"] == 0.5  # the spec's temperature reaches generate
    for bad in ("checkpoint:runs/fake@hot", "checkpoint:runs/fake@-1", "checkpoint:runs/fake@nan"):
        with pytest.raises(ValueError, match="temperature"):
            make_predictor(bad)


class _FailsOnSeed1(CopyLast):
    name = "fails-on-seed-1"

    def predict(self, context_frames, context_actions, future_actions, num_samples, episodes=None):
        if episodes[0].seed == 1:
            raise RuntimeError("boom")
        return super().predict(context_frames, context_actions, future_actions, num_samples, episodes)


def test_failed_episode_is_reported_not_hidden():
    r = run_suite(BB, _FailsOnSeed1(), episodes=3, horizon=4, samples=1, progress=False,
                  controllability=False)
    assert r.failed == 1 and r.summary["episodes_ok"] == 2
    bad = [e for e in r.episodes if e["error"]]
    assert bad[0]["seed"] == 1 and "boom" in bad[0]["error"]
    validate(r.to_json(), REPORT_SCHEMA["properties"]["scenes"]["additionalProperties"]["properties"]
             ["rows"]["items"])


class _Blank(CopyLast):
    name = "blank"

    def predict(self, context_frames, context_actions, future_actions, num_samples, episodes=None):
        return np.zeros_like(super().predict(context_frames, context_actions, future_actions, num_samples))


@pytest.mark.filterwarnings("error")
def test_a_blank_dream_is_scored_not_crashed():
    r = run_suite(BB, _Blank(), episodes=1, horizon=6, context=2, samples=2, progress=False)
    assert r.failed == 0, r.episodes
    assert r.summary["persistence"] == 0.0 and r.summary["coherence"] == 0.0
    assert r.checks["persistence"] == 1.0 and r.checks["counterfactual"] == 1.0


def test_speed_gain_reads_dream_friction_in_free_flight_only():
    t = np.arange(10.0)
    rp = np.stack([2.0 * t, np.zeros(10)], -1)[:, None]  # (n, 1, 2): 2 px/step
    dp = rp * np.array([0.5, 1.0])  # half the speed: 1 px/step
    pr = np.ones((10, 1), bool)
    assert physics.speed_gain(rp, dp, pr, pr, [(0, 0, 10)]) == pytest.approx(0.5)
    assert physics.speed_gain(rp, rp, pr, pr, [(0, 0, 10)]) == 1.0
    assert physics.speed_gain(rp, rp[:1].repeat(10, 0), pr, pr, [(0, 0, 10)]) == 0.0  # copy-last
    fast = dp.copy()
    fast[6:] += 50.0  # a jump outside the segment is not free flight, so not counted
    assert physics.speed_gain(rp, fast, pr, pr, [(0, 0, 6)]) == pytest.approx(0.5)
    gone = pr.copy()
    gone[3] = False  # the dream lost the object at t = 3: steps 2→3 and 3→4 are not measured
    assert physics.speed_gain(rp, dp, pr, gone, [(0, 0, 10)]) == pytest.approx(0.5)
    jitter = rp.copy()
    jitter[1::2, 0, 1] += 3.0  # sideways zigzag at the right speed: longer path, same momentum
    assert physics.speed_gain(rp, jitter, pr, pr, [(0, 0, 10)]) == pytest.approx(1.0)
    assert math.isnan(physics.speed_gain(rp, dp, pr, pr, []))
    assert math.isnan(physics.speed_gain(rp * 0.1, dp, pr, pr, [(0, 0, 10)]))  # 0.2 px/step: noise


def test_speed_gain_of_the_reference_rows():
    def ratio(pred):
        return run_suite(BB, pred, episodes=2, horizon=12, context=2, samples=1, progress=False,
                         controllability=False, diversity=False).summary["speed_gain"]

    assert ratio("copy-last") == 0.0  # frozen objects: no momentum at all
    assert ratio("real-perturbed") == pytest.approx(1.0, abs=0.05)  # nudged, not slowed


def test_continuous_scenes_get_the_counterfactual_with_opposite_box_actions():
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    a, b = control.opposite_box_actions(space)
    assert a.tolist() == [-1.0, 0.0] and b.tolist() == [1.0, 0.0] and a.dtype == np.float32
    r = run_suite(BB, "copy-last", episodes=1, horizon=6, context=2, samples=2, progress=False,
                  continuous=True)
    assert r.config["continuous"] is True and r.summary["cf_cos"] == 0.0  # frozen: no response at all
    real = run_suite(BB, "real", episodes=1, horizon=6, context=2, samples=1, progress=False, continuous=True)
    assert real.summary["cf_cos"] == 1.0 and real.checks["counterfactual"] == 0.0


def test_all_scenes_with_continuous_leaves_out_the_discrete_only_ones(tmp_path, capsys):
    from evaluate.__main__ import main

    assert main(["--all-scenes", "--continuous", "--episodes", "1", "--horizon", "2", "--context", "1",
                 "--samples", "1", "--no-videos", "--quiet", "--no-controllability", "--out",
                 str(tmp_path)]) == 0
    assert "WorldGym/Platformer-v0 have no Box actions, left out" in capsys.readouterr().err
    scenes = json.loads((tmp_path / "report.json").read_text())["scenes"]
    assert "WorldGym/Platformer-v0" not in scenes and len(scenes) == len(envs.SCENE_IDS) - 1


def test_metric_definitions_on_toys():
    a = np.zeros((3, 16, 16, 3), np.uint8)
    assert np.all(fidelity.psnr(a, a) == 100.0) and np.allclose(fidelity.ssim(a, a), 1.0)
    b = a.copy()
    b[:, 0, 0, 0] = 255  # one channel of one pixel fully wrong: MSE = 1 / 768
    assert np.allclose(fidelity.psnr(a, b), 10 * np.log10(768))
    pr = np.ones((8, 1), bool)
    pd = pr.copy()
    pd[3:5] = False  # gone for 2 frames, back after
    assert persistence.flicker(pr, pd) == pytest.approx(100 / 7)
    assert persistence.persistence_rate(pr, pd) == pytest.approx(5 / 7)
    pos = np.zeros((4, 1, 2))
    jump = pos.copy()
    jump[2:, 0, 0] = 10.0
    assert persistence.teleports(pos, jump, pr[:4], pr[:4], np.array([2.0]))[0] == 1
    # within 1 px: frame 0 is context; of the 3 future frames, one is 10 px off and one is absent
    near = pos + 0.5
    near[2, 0, 0] = 10.0
    shown = pr[:4].copy()
    shown[3] = False
    assert physics.within(pos, near, pr[:4], shown, 1.0) == pytest.approx(1 / 3)
    assert physics.within(pos, pos, pr[:4], pr[:4], 1.0) == 1.0
    assert physics._lens(np.array(0.0), 1.0, 1.0) == pytest.approx(np.pi)
    assert physics._lens(np.array(2.0), 1.0, 1.0) == 0.0
    assert physics.cohen_kappa([(True, True), (False, False)]) == (1.0, 1.0)
    assert physics.cohen_kappa([(True, False), (False, True)])[1] < 0
    real_a, real_b = np.array([[10.0, 0.0]]), np.array([[0.0, 0.0]])
    assert control.counterfactual(real_a, real_b, real_a, real_b) == (1.0, 1.0)
    assert control.counterfactual(real_a, real_b, real_b, real_b) == (0.0, 0.0)
    assert control.opposite_actions(("noop", "left", "right")) == (1, 2)


def test_cli_smoke_and_report_schema(tmp_path):
    out = tmp_path / "bb"
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    cmd = [sys.executable, "-m", "evaluate", "--env", BB, "--predictor", "copy-last,corrupt:shift",
           "--episodes", "2", "--horizon", "8", "--samples", "1", "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    validate(report)
    rows = report["scenes"][BB]["rows"]
    assert [r["predictor"] for r in rows] == [*REFERENCE_ROWS, "corrupt:shift"]
    assert all(set(r["checks"]) >= set(CHECKS) for r in rows)
    assert (out / "report.html").stat().st_size > 0
    for rel in [*report["scenes"][BB]["plots"], *report["scenes"][BB]["videos"].values()]:
        assert (out / rel).stat().st_size > 0, rel
    assert "PSNR@1" in proc.stdout


def test_cli_repeated_flags_add_up_instead_of_replacing_each_other():
    from evaluate.__main__ import parse_args

    args = parse_args(["--predictor", "tokenizer:runs/a", "--predictor", "copy-last,corrupt:shift",
                       "--env", BB, "--env", "WorldGym/TopDown-v0", "--attach", "a.mp4", "--attach", "b.mp4"])
    assert args.predictor == "tokenizer:runs/a,copy-last,corrupt:shift"
    assert args.env == f"{BB},WorldGym/TopDown-v0"
    assert args.attach == "a.mp4,b.mp4"
    defaults = parse_args([])
    assert (defaults.predictor, defaults.env, defaults.attach) == ("copy-last", BB, "")


SHIPPED = str(ROOT / "checkpoints" / "bouncing_balls")
QUICK = ["--episodes", "1", "--horizon", "4", "--samples", "1", "--quiet", "--no-videos",
         "--no-controllability", "--no-diversity"]


@pytest.mark.parametrize("argv, message", [
    (["--env", "WorldGym/Platformer-v0", "--predictor", f"checkpoint:{SHIPPED}"],
     "was trained on WorldGym/BouncingBalls-v0, not WorldGym/Platformer-v0"),
    (["--width", "32", "--height", "32", "--predictor", f"checkpoint:{SHIPPED}"],
     "makes 64x64 frames, the suite renders 32x32"),
    (["--env", f"WorldGym/TopDown-v0,{BB}", "--options", '{"gravity": 600}'],
     "unknown option(s) ['gravity']"),
    (["--options", "[1]"], "--options must be a JSON object"),
    (["--horizon", "1"], "horizon >= 2"),
    (["--policy", "greedy"], "unknown policy 'greedy'"),
    (["--tolerance", "-1"], "--tolerance must be >= 0"),
    (["--start", "-5"], "--start must be >= 0"),
    (["--seed", "-3"], "--seed must be >= 0"),  # once an all-NaN report
])
def test_cli_checks_everything_before_it_runs_anything(tmp_path, capsys, argv, message):
    from evaluate.__main__ import main

    out = tmp_path / "old"
    out.mkdir()
    (out / "report.json").write_text("an earlier report")
    assert main([*QUICK, "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["report.json"]
    assert (out / "report.json").read_text() == "an earlier report"


def test_cli_refuses_an_unwritable_out_before_it_evaluates(tmp_path, capsys, monkeypatch):
    from evaluate import __main__ as cli

    (tmp_path / "afile").write_text("")
    ran = []
    monkeypatch.setattr(cli, "run_suite", lambda *a, **k: ran.append(a))
    assert cli.main([*QUICK, "--out", str(tmp_path / "afile" / "sub")]) == 2  # once a traceback at the end
    assert "cannot be written" in capsys.readouterr().err and not ran


def test_cli_evaluates_a_repeated_predictor_or_scene_once(tmp_path, monkeypatch):
    """Once evaluated twice: two rows sharing one video file, or one scene's result replacing the other."""
    from evaluate import __main__ as cli

    specs, scenes = [], []
    real_make = cli.make_predictor
    monkeypatch.setattr(cli, "make_predictor", lambda spec: specs.append(spec) or real_make(spec))

    def suite(env_id, *args, **kwargs):
        scenes.append(env_id)
        raise RuntimeError("not evaluated in this test")

    monkeypatch.setattr(cli, "run_suite", suite)
    cli.main([*QUICK, "--predictor", "corrupt:shift,corrupt:shift", "--env", f"{BB},{BB}",
              "--out", str(tmp_path / "r")])
    assert specs.count("corrupt:shift") == 1 and scenes == [BB]


def test_a_check_whose_metric_was_never_measured_is_nan_not_passed():
    from evaluate.metrics.coherence import flags, rates

    measured = [{"cf_fail": 1.0}, {"cf_fail": float("nan")}, {}]
    r = rates(measured, [flags(m) for m in measured])
    assert r["counterfactual"] == 1.0  # over the one rollout that measured it, not 1/3
    assert math.isnan(r["gravity"]) and r["abnormal"] == 0.0


def test_cli_exit_status_is_2_when_a_predictor_fails_every_episode(tmp_path, capsys, monkeypatch):
    from evaluate import predictors
    from evaluate.__main__ import main

    class Broken(CopyLast):
        name = "broken"

        def predict(self, *args, **kwargs):
            raise RuntimeError("boom")

    monkeypatch.setitem(predictors._FACTORIES, "broken", lambda arg: Broken())
    assert main([*QUICK, "--predictor", "broken", "--out", str(tmp_path / "r")]) == 2
    assert "broken: every episode FAILED (first: RuntimeError: boom)" in capsys.readouterr().err
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "every episode failed" in report["scenes"][BB]["error"]
    broken = next(r for r in report["scenes"][BB]["rows"] if r["predictor"] == "broken")
    assert broken["curves"]["psnr"] == [] and "mse" not in broken["curves"]


def test_attached_videos_are_copied_into_the_report(tmp_path, capsys):
    from evaluate.__main__ import main

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video, but a file")
    assert main([*QUICK, "--attach", f"my dream={clip}", "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    rel = report["attachments"]["my dream"]
    assert rel == "videos/attachments/my_dream.mp4"
    assert (tmp_path / "r" / rel).read_bytes() == clip.read_bytes()
    # --horizon 4: the table shows PSNR at 1 and at the horizon, no columns past it
    out = capsys.readouterr().out
    assert "| PSNR@1 | PSNR@4 | persistence |" in out and "PSNR@8" not in out


def test_psnr_columns_stop_at_the_horizon():
    from evaluate.__main__ import _psnr_times

    assert _psnr_times(4) == [1, 4]
    assert _psnr_times(10) == [1, 8, 10]
    assert _psnr_times(32) == [1, 8, 16, 32]
    assert _psnr_times(64) == [1, 8, 16, 32, 64]


def _clips(tmp_path, *names):
    """Small distinct files standing in for videos, at the given relative paths."""
    paths = []
    for name in names:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"video {name}".encode())
        paths.append(path)
    return paths


def test_attach_captions_default_to_the_file_stem_and_must_differ(tmp_path, capsys):
    from evaluate.__main__ import _extras, main, parse_args

    a, b, dream = _clips(tmp_path, "a/v.mp4", "b/v.mp4", "dream.mp4")
    _, attachments = _extras(parse_args(["--attach", f"{a},real | dream={dream}"]), [BB])
    assert attachments == {"v": str(a), "real | dream": str(dream)}
    with pytest.raises(ValueError, match="caption 'v' is used twice"):
        _extras(parse_args(["--attach", f"{a},{b}"]), [BB])
    out = tmp_path / "r"
    out.mkdir()
    assert main([*QUICK, "--out", str(out), "--attach", f"x={a}", "--attach", f"x={b}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "caption 'x' is used twice" in err and "CAPTION=PATH" in err
    assert list(out.iterdir()) == []  # refused before anything ran


def test_attached_videos_get_a_file_each(tmp_path):
    """Captions that slug alike, files of the same name, and a video already inside the report
    folder: every caption plays its own video."""
    from evaluate.report import write_report

    out = tmp_path / "r"
    a, b, dream, seq, inside = _clips(tmp_path, "a/v.mp4", "b/v.mp4", "dream.mp4", "seq.mp4",
                                      "r/videos/attachments/real_dream.mp4")
    sources = {"v": a, "v.mp4": b, "real | dream": dream, "real_dream": seq, "mine": inside}
    report = json.loads(write_report({}, out, attachments={c: str(p) for c, p in sources.items()})
                        .read_text())
    got = report["attachments"]
    assert got == {"v": "videos/attachments/v.mp4", "v.mp4": "videos/attachments/v-2.mp4",
                   "real | dream": "videos/attachments/real_dream-2.mp4",
                   "real_dream": "videos/attachments/real_dream-3.mp4",
                   "mine": "videos/attachments/real_dream.mp4"}
    for caption, src in sources.items():
        assert (out / got[caption]).read_bytes() == src.read_bytes(), caption


def test_schema_validator_rejects_broken_reports():
    good = {"schema_version": 1, "created": "now", "command": "", "scenes": {}}
    validate(good)
    with pytest.raises(ValueError, match="missing required key 'scenes'"):
        validate({k: v for k, v in good.items() if k != "scenes"})
    with pytest.raises(ValueError, match=r"\$\.command: expected string"):
        validate({**good, "command": 3})
    with pytest.raises(ValueError, match=r"rows\[0\]: missing required key"):
        validate({**good, "scenes": {"x": {"rows": [{"env_id": "x"}], "plots": [], "videos": {},
                                               "error": None}}})


def test_eval_result_json_has_no_nan():
    r = run_suite(BB, "copy-last", episodes=1, horizon=4, samples=1, progress=False)
    assert isinstance(r, EvalResult)
    text = json.dumps(r.to_json(), allow_nan=False)  # NaN would raise here
    assert "example" not in json.loads(text)


def test_each_abnormal_check_alone_makes_a_rollout_abnormal():
    from evaluate.metrics.coherence import ABNORMAL, flags

    assert not flags({})["abnormal"]
    for name in ABNORMAL:  # persistence, teleport, interpenetration, final position
        check = CHECKS[name]
        bad = check.threshold - 0.01 if check.op == "<" else check.threshold + 1.0
        assert flags({check.metric: bad})["abnormal"], name
    assert set(ABNORMAL) == {"persistence", "teleport", "interpenetration", "final_position"}
    assert flags({"persistence": 0.94})["persistence"] and not flags({"persistence": 0.95})["persistence"]


class _BlankAfter(Real):
    """The real future up to frame K, then black: the summary's horizons must read the curve at t − 1."""

    name, K = "blank-after", 7

    def predict(self, *args, **kwargs):
        out = super().predict(*args, **kwargs)
        out[:, :, self.K:] = 0
        return out


def test_summary_horizons_index_the_curves():
    r = run_suite(BB, _BlankAfter(), episodes=1, horizon=9, samples=1, progress=False,
                  controllability=False, diversity=False)
    assert r.failed == 0, r.episodes
    psnr = r.curves["psnr"]
    assert psnr[:7] == [100.0] * 7 and psnr[7] < 40
    assert r.summary["psnr@1"] == psnr[0] and r.summary["psnr@8"] == psnr[7]


def test_run_suite_checks_tolerance_and_start_like_the_cli():
    with pytest.raises(ValueError, match="--tolerance must be >= 0"):
        run_suite(BB, "copy-last", episodes=1, horizon=2, tolerance=-1)
    with pytest.raises(ValueError, match="--start must be >= 0"):
        run_suite(BB, "copy-last", episodes=1, horizon=2, start=-5)


def test_config_records_diversity_only_when_it_ran():
    one = run_suite(BB, "copy-last", episodes=1, horizon=2, samples=1, controllability=False, progress=False)
    two = run_suite(BB, "copy-last", episodes=1, horizon=2, samples=2, controllability=False, progress=False)
    assert one.config["diversity"] is False and "div_ratio" not in one.summary  # once recorded as run
    assert two.config["diversity"] is True
