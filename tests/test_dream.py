"""The dream environment: ``WorldGym/Dream-v0`` (DreamEnv), DreamVectorEnv, the SB3 adapter, the play
CLI and the soak benchmark, on a micro world model saved as a real run directory (untrained weights:
these tests check the environment machinery, not what the model has learned)."""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from worldmodel.checkpoint import save_stage
from worldmodel.config import DynamicsConfig, TokenizerConfig, WorldModelConfig, space_spec
from worldmodel.dream_env import DreamEnv
from worldmodel.dream_vector import DreamVectorEnv, to_sb3
from worldmodel.graphs import StepGraph
from worldmodel.model import WorldModel

ROOT = Path(__file__).resolve().parents[1]
SCENE = "WorldGym/BouncingBalls-v0"
K = 3  # the micro model's attention window (frames)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _save_run(run: Path, continuous: bool = False) -> Path:
    real = gym.make(SCENE, continuous=continuous)
    cfg = WorldModelConfig(
        tokenizer=TokenizerConfig(height=64, width=64, channels=(8, 16, 16), codebook_size=64, code_dim=16),
        dynamics=DynamicsConfig(d_model=32, n_layers=2, n_heads=2, token_dim=16, context=K, train_frames=5,
                                memory_slots=4, maskgit_steps=2),
        action_space=space_spec(real.action_space), env_id=SCENE).sync()
    torch.manual_seed(0)
    model = WorldModel(cfg)
    save_stage(run, "tokenizer", model.tokenizer, cfg, train_state={"step": 0})
    save_stage(run, "dynamics", model.dynamics, cfg, train_state={"step": 0})
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return _save_run(tmp_path_factory.mktemp("dream") / "run")


def _rollout(env, seed, actions, reset_on_end=True):
    obs, _ = env.reset(seed=seed)
    frames, rewards, ends = [obs], [], []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        frames.append(obs)
        rewards.append(r)
        ends.append((term, trunc))
        if reset_on_end and (term or trunc):
            obs, _ = env.reset()
            frames.append(obs)
    return np.stack(frames), np.asarray(rewards), ends


# ---------------------------------------------------------------------- registration and spaces
def test_import_envs_registers_the_dream_without_importing_torch():
    code = ("import sys, gymnasium as gym, envs; assert 'WorldGym/Dream-v0' in gym.registry; "
            "assert 'WorldGym/Dream-v0' not in envs.SCENE_IDS; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_gym_make_spaces_equal_the_real_scene(run):
    env = gym.make("WorldGym/Dream-v0", checkpoint=str(run), temperature=1.0, context=4, horizon=200,
                   device="auto")
    real = gym.make(SCENE, width=64, height=64)
    assert env.observation_space == real.observation_space
    assert env.action_space == real.action_space
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert info["start"] == "real" and info["scene_seed"] == 0 and info["context"] == 4
    np.testing.assert_array_equal(obs, _real_frames(0, env.unwrapped)[-1])  # the real context's last frame
    obs, reward, term, trunc, info = env.step(1)
    assert env.observation_space.contains(obs) and isinstance(reward, float)
    assert 0.0 <= info["termination_prob"] <= 1.0 and info["step"] == 1
    env.close()


def _real_frames(seed, env: DreamEnv):
    """What the default reset should have used: the scene with ``seed``, random actions from np_random."""
    rng = gym.utils.seeding.np_random(seed)[0]
    real = gym.make(SCENE, width=64, height=64)
    frames = [real.reset(seed=seed)[0]]
    for _ in range(env.core.context - 1):
        frames.append(real.step(int(rng.integers(3)))[0])
    return frames


def test_gymnasium_and_sb3_env_checkers_pass_without_warnings(run):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("WorldGym/Dream-v0", checkpoint=str(run), horizon=50).unwrapped  # with a spec
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
        sb3_check_env(env)
    assert [str(w.message) for w in caught] == []


def test_continuous_scene_gets_a_box_action_space(tmp_path):
    env = DreamEnv(_save_run(tmp_path / "box", continuous=True), horizon=5)
    assert env.action_space == gym.make(SCENE, continuous=True).action_space
    env.reset(seed=1)
    env.step(np.array([0.5], np.float32))
    with pytest.raises(ValueError, match="outside"):
        env.step(np.array([2.0], np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(2, np.float32))


# ---------------------------------------------------------------------- determinism and starts
def test_same_seed_and_actions_give_identical_dreams(run):
    actions = np.random.default_rng(0).integers(0, 3, 25)
    a = _rollout(DreamEnv(run, horizon=3), 5, actions)
    b = _rollout(DreamEnv(run, horizon=3), 5, actions)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    assert any(t for t, _ in a[2]) and any(t for _, t in a[2])  # sampled ends and the horizon both occur
    c = _rollout(DreamEnv(run, horizon=3), 6, actions)
    assert not np.array_equal(a[0][:5], c[0][:5])


def test_termination_modes_and_truncation(run):
    env = DreamEnv(run, horizon=3, termination="off")
    env.reset(seed=0)
    ends = [env.step(0)[2:4] for _ in range(3)]
    assert ends == [(False, False), (False, False), (False, True)]
    env = DreamEnv(run, termination="threshold")
    env.reset(seed=0)
    _, _, term, _, info = env.step(0)
    assert term == (info["termination_prob"] > 0.5)


def test_image_start_is_resized(run):
    img = np.zeros((40, 50, 3), np.uint8)
    img[10:20, 10:30] = (200, 40, 40)
    env = DreamEnv(run)
    obs, info = env.reset(seed=0, options={"image": img})
    assert obs.shape == (64, 64, 3) and info == {"start": "image", "context": 1}
    assert obs[24, 25].tolist() == [200, 40, 40] and obs[2, 2].tolist() == [0, 0, 0]
    frames = [env.step(i % 3)[0] for i in range(5)]
    again = DreamEnv(run)
    again.reset(seed=0, options={"image": img})
    assert all(np.array_equal(f, again.step(i % 3)[0]) for i, f in enumerate(frames))


def test_context_frames_start(run):
    frames = np.stack(_real_frames(3, DreamEnv(run)))[:3]
    env = DreamEnv(run)
    obs, info = env.reset(seed=0, options={"context_frames": frames, "context_actions": [1, 2]})
    np.testing.assert_array_equal(obs, frames[-1])
    assert info == {"start": "context_frames", "context": 3}
    assert env.step(0)[0].shape == (64, 64, 3)
    obs, _ = env.reset(seed=0, options={"context_frames": frames})  # actions are optional
    np.testing.assert_array_equal(obs, frames[-1])
    for none in ([], np.zeros(0, np.int64)):  # one frame: no actions between frames (once a dtype error)
        obs, _ = env.reset(seed=0, options={"context_frames": frames[-1:], "context_actions": none})
        np.testing.assert_array_equal(obs, frames[-1])


def test_bad_options_actions_and_checkpoints_fail_clearly(run, tmp_path):
    env = DreamEnv(run)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    bad = [({"images": frames[0]}, "unknown reset options"),
           ({"image": frames[0].astype(np.float32)}, "uint8"),
           ({"image": frames}, r"\(H, W, 3\)"),
           ({"image": frames[0], "context_frames": frames}, "either"),
           ({"context_actions": [0, 1]}, "needs options"),
           ({"context_frames": frames, "context_actions": [0]}, "needs 2 actions"),
           ({"context_frames": frames, "context_actions": [0, 7]}, "out of range")]
    for options, message in bad:
        with pytest.raises(ValueError, match=message):
            env.reset(seed=0, options=options)
    env.reset(seed=0)
    first = env.step(1)[0]
    with pytest.raises(ValueError):  # a refused reset keeps the running dream
        env.reset(seed=1, options={"context_frames": frames, "context_actions": [0, 7]})
    assert env.step(1)[0].shape == first.shape
    for action, error in [(3, ValueError), (-1, ValueError), (1.0, TypeError), ("left", TypeError),
                          (True, TypeError)]:
        with pytest.raises(error, match="action"):
            env.step(action)
    env.step(np.int64(2))
    env.step(np.array([1]))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        DreamEnv(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        DreamEnv(tmp_path / "empty")
    for kw, message in [({"horizon": 0}, "horizon"), ({"context": 0}, "context"),
                        ({"temperature": -1.0}, "temperature"), ({"termination": "maybe"}, "termination"),
                        ({"schedule": "linear"}, "schedule must be None .* or one of"),
                        ({"passes": 0}, "passes must be None .* or an integer >= 1"),
                        ({"passes": 10**6}, "passes must be in"), ({"top_k": 10**6}, "exceeds")]:
        with pytest.raises(ValueError, match=message):
            DreamEnv(run, **kw)


def test_evaluate_checkpoint_spec_takes_a_schedule_and_passes(run):
    from evaluate.predictors import make_predictor

    pred = make_predictor(f"checkpoint:{run}@0.5:adaptive")
    assert (pred.temperature, pred.schedule) == (0.5, "adaptive")
    assert make_predictor(f"checkpoint:{run}@1").schedule is None  # the checkpoint's own
    with pytest.raises(ValueError, match="schedule must be one of"):
        make_predictor(f"checkpoint:{run}@1:linear")
    # and the MaskGIT passes per frame, in either order; used by generate
    pred = make_predictor(f"checkpoint:{run}@0:1:adaptive")
    assert (pred.temperature, pred.schedule, pred.passes) == (0.0, "adaptive", 1)
    assert make_predictor(f"checkpoint:{run}@1").passes is None
    with pytest.raises(ValueError, match="steps must be in"):
        make_predictor(f"checkpoint:{run}@1:0")
    calls = []
    original = pred.model.dynamics.predict_with
    pred.model.dynamics.predict_with = lambda state, action, u, *a: calls.append(u.shape[1]) or \
        original(state, action, u, *a)
    h, w = pred.model.cfg.tokenizer.height, pred.model.cfg.tokenizer.width
    context, no_actions = np.zeros((1, 2, h, w, 3), np.uint8), np.zeros((1, 1), np.int64)
    pred.predict(context, no_actions, np.zeros((1, 2), np.int64), 1)
    assert calls == [1, 1]


# ---------------------------------------------------------------------- vector env
# context 2 < K: freshly reset dreams step in their own group first; "adaptive": each row's count of
# codes left masked is its own (a tensor per row), which must not couple the rows either
def test_dream_env_takes_the_passes_per_frame(run):
    seen = []
    env = DreamEnv(run, horizon=5, passes=1)
    dyn = env.core.model.dynamics
    original = dyn.predict_with
    dyn.predict_with = lambda state, action, u, *a: seen.append(u.shape[1]) or original(state, action, u, *a)
    env.reset(seed=0)
    for _ in range(3):
        env.step(0)
    assert seen == [1, 1, 1]
    assert DreamEnv(run, horizon=5).core.passes == dyn.cfg.maskgit_steps  # the checkpoint's


@pytest.mark.parametrize("context,schedule", [(4, None), (2, None), (4, "adaptive")])
def test_batched_dreams_equal_dreams_alone(run, context, schedule):
    N, T = 3, 14
    actions = np.random.default_rng(context).integers(0, 3, (T, N))
    venv = DreamVectorEnv(run, N, context=context, horizon=6, schedule=schedule)
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    obs, _ = venv.reset(seed=100)
    frames, rewards, terms, truncs, finals = [obs], [], [], [], []
    for t in range(T):
        obs, r, term, trunc, infos = venv.step(actions[t])
        frames.append(obs)
        rewards.append(r)
        terms.append(term)
        truncs.append(trunc)
        finals.append(infos.get("final_obs"))
    assert np.any(terms) and np.any(truncs)
    for i in range(N):
        env = DreamEnv(run, context=context, horizon=6, schedule=schedule)
        obs, _ = env.reset(seed=100 + i)
        np.testing.assert_array_equal(obs, frames[0][i])
        for t in range(T):
            obs, r, term, trunc, _ = env.step(actions[t, i])
            assert (r, term, trunc) == (rewards[t][i], terms[t][i], truncs[t][i]), (i, t)
            if term or trunc:
                np.testing.assert_array_equal(obs, finals[t][i])
                obs, _ = env.reset()
            np.testing.assert_array_equal(obs, frames[t + 1][i], err_msg=f"env {i} step {t}")
    venv.close()


@pytest.mark.parametrize("context", [4, 2])
def test_graph_step_gives_the_eager_dreams_across_resets(run, context):
    """``cuda_graph=True``, run here through the graph's uncaptured path (the same static buffers and
    write-back; capture itself needs CUDA): the same rewards and episode ends as the eager step, through
    same-step resets that rebuild the batch's state. Frames may differ by a grey level on CPU, where the
    eager path decodes row by row (see DreamCore)."""
    N, T = 3, 14
    actions = np.random.default_rng(context).integers(0, 3, (T, N))
    eager = DreamVectorEnv(run, N, context=context, horizon=6)
    graphed = DreamVectorEnv(run, N, context=context, horizon=6)
    graph = graphed.core.graph = StepGraph(graphed.model, capture=False)
    replays = []
    graph_step = graph.step
    graph.step = lambda *a: replays.append(1) or graph_step(*a)
    obs_e, _ = eager.reset(seed=100)
    obs_g, _ = graphed.reset(seed=100)
    np.testing.assert_array_equal(obs_e, obs_g)
    ends = 0
    for t in range(T):
        obs_e, r_e, term_e, trunc_e, _ = eager.step(actions[t])
        obs_g, r_g, term_g, trunc_g, _ = graphed.step(actions[t])
        np.testing.assert_array_equal(r_e, r_g, err_msg=f"step {t}")
        assert np.array_equal(term_e, term_g) and np.array_equal(trunc_e, trunc_g), t
        assert np.abs(obs_e.astype(int) - obs_g.astype(int)).max() <= 1, t
        ends += int(np.sum(term_e | trunc_e))
    # episodes ended and restarted; the graph served every step where all rows had a full cache
    assert ends >= N and len(replays) >= (T - 3 if context == 4 else 3), len(replays)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        DreamVectorEnv(run, 2, cuda_graph=True)
    with pytest.raises(ValueError, match="pass cuda_graph=True too"):
        DreamEnv(run, compile=True)


def test_vector_env_validates_actions_and_state_stays_bounded(run):
    venv = DreamVectorEnv(run, 2, horizon=500, termination="off")
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros(2, np.int64))
    venv.reset(seed=0)
    for bad in [np.zeros(3, np.int64), np.array([0, 5]), 1]:
        with pytest.raises(ValueError):
            venv.step(bad)

    def state_numel():
        st = venv.core.groups[0].state
        return st.memory.numel() + sum(k.numel() + v.numel() for k, v in st.cache)

    sizes = []
    for _ in range(30):
        venv.step(venv.action_space.sample())
        assert len(venv.core.groups) == 1 and venv.core.groups[0].state.frames <= K
        sizes.append(state_numel())
    assert len(set(sizes[2:])) == 1


def test_reset_mask_resets_only_the_masked_dreams(run):
    venv = DreamVectorEnv(run, 3, horizon=500, termination="off")
    with pytest.raises(ValueError, match="first reset"):
        venv.reset(options={"reset_mask": np.array([True, False, False])})
    first, _ = venv.reset(seed=0)
    for _ in range(3):
        moved, *_ = venv.step(np.array([1, 2, 1]))
    alone = DreamVectorEnv(run, 3, horizon=500, termination="off")
    again, _ = alone.reset(seed=0)
    obs, infos = venv.reset(seed=0, options={"reset_mask": np.array([False, True, False])})
    assert np.array_equal(obs[1], again[1]) and np.array_equal(obs[[0, 2]], moved[[0, 2]])
    masks = [v.tolist() for k, v in infos.items() if k.startswith("_")]
    assert masks and all(m == [False, True, False] for m in masks), infos  # infos of the reset dream only
    assert venv._steps.tolist() == [3, 0, 3]
    for bad in (np.array([1, 0, 0]), np.array([False, False, False]), np.array([True, False])):
        with pytest.raises(ValueError, match="reset_mask"):
            venv.reset(options={"reset_mask": bad})


def test_make_vec_batches_the_dreams_and_async_workers_do_not_hang(run):
    vec = gym.make_vec("WorldGym/Dream-v0", num_envs=2, checkpoint=str(run), horizon=5)
    assert isinstance(vec, DreamVectorEnv)
    obs, _ = vec.reset(seed=0)
    rewards = vec.step(np.array([1, 2]))[1]
    vec.close()
    # async: the parent builds one dream (loading torch's thread pool), then forks its workers, which
    # deadlocked loading their models; a subprocess with a timeout keeps a regression from hanging the suite
    code = ("import gymnasium as gym, numpy as np, sys, envs; "
            "v = gym.make_vec('WorldGym/Dream-v0', num_envs=2, vectorization_mode='async', "
            "checkpoint=sys.argv[1], horizon=5); v.reset(seed=0); "
            "print(v.step(np.array([1, 2]))[1].tolist()); v.close()")
    out = subprocess.run([sys.executable, "-c", code, str(run)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert np.allclose(json.loads(out.stdout.strip().splitlines()[-1]), rewards)


def test_soak_reports_no_growth_and_finite_values(run, tmp_path):
    from worldmodel import soak

    report = soak.main(["--checkpoint", str(run), "--steps", "200", "--num-envs", "2",
                        "--json", str(tmp_path / "soak.json")])
    assert report["ok"] and report["resets"] == 0 and not any(report["nonfinite"].values())
    assert report["memory_growth_mb"] < 20 and "memory_at_step_100_mb" in report
    assert report["failed"] == [] and "memory growth from step 100 to step 200" in report["checked"]
    assert (tmp_path / "soak.json").exists()


def test_soak_refuses_runs_shorter_than_its_watch_window_and_missing_checkpoints(run, tmp_path, capsys):
    from worldmodel import soak

    for argv, message in [(["--checkpoint", str(run), "--steps", "20"], "--steps must be > 100"),
                          (["--checkpoint", str(run), "--threads", "-1"], "--threads must be >= 0"),
                          (["--checkpoint", str(tmp_path / "nope"), "--steps", "101"], "is not a directory")]:
        with pytest.raises(SystemExit) as e:  # --steps 20 once reported "memory_at_step_100_mb" at step 20
            soak.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and "Traceback" not in err, err
    with pytest.raises(SystemExit):
        soak.main(["--help"])
    out = capsys.readouterr().out
    assert "unbroken episode" in out and "--max-growth-mb" in out  # the whole docstring, not its first line


# ---------------------------------------------------------------------- Stable-Baselines3
def test_ppo_cnn_policy_trains_on_the_sb3_adapter(run):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecEnv

    vec = to_sb3(DreamVectorEnv(run, 2, horizon=20))
    assert isinstance(vec, VecEnv) and type(vec).__name__ == "Sb3DreamVecEnv"
    vec.seed(0)
    obs = vec.reset()
    assert obs.shape == (2, 64, 64, 3)
    done_infos = []
    for _ in range(10):
        obs, rewards, dones, infos = vec.step(np.array([1, 2]))
        done_infos += [info for info, d in zip(infos, dones) if d]
    assert done_infos and all(info["terminal_observation"].shape == (64, 64, 3) for info in done_infos)
    assert all("TimeLimit.truncated" in info for info in done_infos)
    model = PPO("CnnPolicy", vec, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    with pytest.raises(TypeError):
        to_sb3(DreamEnv(run))
    with pytest.raises(ValueError, match="shared by every dream"):
        vec.set_attr("horizon", 5, indices=[0])
    vec.set_attr("horizon", 7)
    assert vec.get_attr("horizon") == [7, 7]


# ---------------------------------------------------------------------- play CLI
def test_headless_play_records_a_video(run, tmp_path):
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    out = subprocess.run([sys.executable, "-m", "worldmodel.dream", "--checkpoint", str(run), "--steps", "20",
                          "--record", str(tmp_path / "tmp.mp4"), "--side-by-side", "--fps", "0",
                          "--scale", "1", "--record-scale", "1"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "frames/s" in out.stdout and (tmp_path / "tmp.mp4").stat().st_size > 0
    assert "unpaced" in out.stdout and "paced to 0" not in out.stdout


@pytest.mark.parametrize("flag, message", [
    (["--fps", "-5"], "--fps must be a number >= 0"),  # once "paced to -5"
    (["--steps", "-1"], "--steps must be >= 0 (0: play on)"),  # once played one step
    (["--threads", "-1"], "--threads must be >= 0 (0: torch's choice)"),
    (["--seed", "-1"], "--seed must be >= 0"),  # once a gymnasium traceback
    (["--record", "play.gif"], "--record must end in .mp4"),  # once refused by moviepy after playing
    (["--passes", "1000"], "--passes must be in [1, codes per frame]"),
    (["--scale", "0"], "--scale must be >= 1"),
    (["--temperature", "-1", "--policy", "random"], "temperature must be"),  # the dream env's check
])
def test_play_cli_refuses_bad_numbers_with_argparse_errors(run, capsys, flag, message):
    from worldmodel import dream

    with pytest.raises(SystemExit) as e:
        dream.main(["--checkpoint", str(run), *flag])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err, err
    assert dream.parse_args(["--checkpoint", str(run), "--threads", "0"]).threads == 0  # as evaluate.transfer


def test_play_cli_names_a_missing_checkpoint_with_exit_status_2(tmp_path, capsys):
    from worldmodel import dream

    with pytest.raises(SystemExit) as e:
        dream.main(["--checkpoint", str(tmp_path / "nope"), "--policy", "random", "--steps", "1"])
    assert e.value.code == 2 and "is not a directory" in capsys.readouterr().err


def test_worldmodel_exports_the_dream():
    import worldmodel

    assert worldmodel.DreamEnv is DreamEnv and worldmodel.DreamVectorEnv is DreamVectorEnv
    assert worldmodel.to_sb3 is to_sb3
