"""Dream-to-real transfer (``python -m evaluate.transfer``) on a micro checkpoint trained here with the
real training CLI: a valid transfer.json whose ratio and gap follow their formulas, --resume reuses the
policies, clear errors for a mismatched scene or a bad checkpoint, and the report's transfer section."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluate import transfer

ROOT = Path(__file__).resolve().parents[1]
# A micro world model at 64x64 (CnnPolicy's NatureCNN needs >= 36 px): seconds to train on one thread.
MICRO = ["tokenizer.channels=[8,16,16]", "tokenizer.codebook_size=64", "tokenizer.code_dim=16",
         "tokenizer.encoder_width=32", "dynamics.d_model=32", "dynamics.n_layers=1", "dynamics.n_heads=2",
         "dynamics.token_dim=16", "dynamics.train_frames=5", "dynamics.memory_slots=4",
         "dynamics.maskgit_steps=1", "train.tokenizer_batch=4", "train.dynamics_batch=2", "train.warmup=2"]
TINY = ["--timesteps", "48", "--eval-episodes", "3", "--max-steps", "12", "--num-envs", "2", "--n-steps", "8",
        "--n-epochs", "1", "--threads", "1", "--quiet"]


def _env():
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("WORLD_SIZE", None)
    return env


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("wm") / "run"
    done = _cli("-m", "worldmodel.train", "--env", "WorldGym/BouncingBalls-v0", "--episodes", "6",
                "--episode-steps", "30", "--preset", "tiny", "--out", str(run), "--steps", "4",
                "--threads", "1", "--no-progress", "--no-eval", "--set", *MICRO)
    assert done.returncode == 0, done.stderr[-3000:]
    return run


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_transfer_cli_writes_a_valid_json_with_the_ratio_by_its_formula(checkpoint, tmp_path):
    out = tmp_path / "t"
    done = _cli("-m", "evaluate.transfer", "--env", "WorldGym/BouncingBalls-v0",
                "--checkpoint", str(checkpoint), *TINY, "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "transfer ratio" in done.stdout and "exploitation gap" in done.stdout
    t = transfer.load_transfer(out / "transfer.json")  # validates against the schema
    pol = t["policies"]
    assert t["env_id"] == "WorldGym/BouncingBalls-v0" and t["config"]["timesteps"] == 48
    seeds = t["config"]["eval_seeds"]
    assert seeds == list(range(transfer.EVAL_SEED, transfer.EVAL_SEED + 3))
    for name in transfer.POLICY_NAMES:
        s = pol[name]["real"]
        assert s["seeds"] == seeds and len(s["returns"]) == 3
        assert all(1 <= n <= 12 for n in s["lengths"])
        assert math.isclose(s["mean"], sum(s["returns"]) / 3)
    dream = pol["dream-trained"]["dream"]
    assert len(dream["returns"]) == 3 and all(1 <= n <= 12 for n in dream["lengths"])
    rand, real, dr = (pol[n]["real"]["mean"] for n in ("random", "real-trained", "dream-trained"))
    if real - rand > 1e-9:
        assert math.isclose(t["transfer_ratio"], (dr - rand) / (real - rand), rel_tol=1e-9)
    else:
        assert t["transfer_ratio"] is None and not t["transfer_ratio_reliable"]
    assert math.isclose(t["exploitation_gap"], dream["mean"] - pol["dream-trained"]["real"]["mean"],
                        rel_tol=1e-9, abs_tol=1e-12)
    # the saved policies load without unpickling and act in the real scene (collect's sb3: policy)
    for where in ("dream", "real"):
        assert (out / "policies" / f"{where}.zip").is_file()
        meta = json.loads((out / "policies" / f"{where}.json").read_text())
        assert meta["timesteps"] == 48 and meta["trained_timesteps"] == 48
        # the dream policy depends on the world model's weights; the real one only on the frame size
        assert meta.get("checkpoint_sha256") == (t["checkpoint_sha256"] if where == "dream" else None)
    import gymnasium as gym

    from collect.policies import make_policy

    env = gym.make("WorldGym/BouncingBalls-v0", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert env.action_space.contains(make_policy(f"sb3:{out / 'policies' / 'dream.zip'}", env)(obs))

    # --resume reuses both policies: same returns, no training
    again = transfer.run(transfer.parse_args(["--checkpoint", str(checkpoint), *TINY, "--out", str(out),
                                              "--resume"]))
    assert again["policies"]["real-trained"]["resumed"] and again["policies"]["dream-trained"]["resumed"]
    for name in ("real-trained", "dream-trained"):
        assert again["policies"][name]["real"]["returns"] == pol[name]["real"]["returns"]
    # --stochastic: the same policies sample their actions, reproducibly
    runs = [transfer.run(transfer.parse_args(["--checkpoint", str(checkpoint), *TINY, "--out", str(out),
                                              "--resume", "--stochastic"])) for _ in range(2)]
    assert runs[0]["config"]["deterministic"] is False and t["config"]["deterministic"] is True
    assert runs[0]["policies"]["dream-trained"]["resumed"]
    assert runs[0]["policies"]["dream-trained"]["real"]["returns"] == runs[1]["policies"]["dream-trained"][
        "real"]["returns"]
    # another budget is another policy: not reused; 24 steps are rounded up to two whole rollouts of
    # 8 steps x 2 environments, and the policy's .json says what was trained
    other = transfer.parse_args(["--checkpoint", str(checkpoint), *TINY, "--out", str(out), "--resume"])
    other.timesteps = 24
    model, _, resumed = transfer.train_policy(other, transfer.check_checkpoint(checkpoint), "real", out)
    assert not resumed and model.num_timesteps == transfer.trained_steps(other) == 32
    meta = json.loads((out / "policies" / "real.json").read_text())
    assert meta["timesteps"] == 24 and meta["trained_timesteps"] == 32


def test_the_budget_is_rounded_up_to_whole_rollouts():
    """SB3 trains whole rollouts of n_steps x num_envs: the report states that count, not --timesteps."""
    def steps(*argv):
        return transfer.trained_steps(transfer.parse_args(["--checkpoint", "runs/x", *argv]))

    assert steps("--timesteps", "24", "--n-steps", "8", "--num-envs", "2") == 32
    assert steps("--timesteps", "48", "--n-steps", "8", "--num-envs", "2") == 48
    assert steps("--timesteps", "100000") == 100_352  # 196 rollouts of 128 steps x 4 environments
    assert steps() == 20_480
    assert steps("--timesteps", "5", "--num-envs", "4") == 8  # one rollout of the minimum 2 steps


def test_mismatched_scene_and_bad_checkpoints_are_clear_errors(checkpoint, tmp_path):
    done = _cli("-m", "evaluate.transfer", "--env", "WorldGym/Platformer-v0", "--checkpoint", str(checkpoint),
                *TINY, "--out", str(tmp_path / "x"), timeout=120)
    assert done.returncode == 2
    assert "trained on WorldGym/BouncingBalls-v0, not WorldGym/Platformer-v0" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "x" / "transfer.json").exists()
    with pytest.raises(transfer.TransferError, match="no such directory"):
        transfer.check_checkpoint(tmp_path / "nothing")
    with pytest.raises(transfer.TransferError, match="not a world model run folder"):
        transfer.check_checkpoint(tmp_path)
    with pytest.raises(transfer.TransferError, match="unknown scene"):
        transfer.check_checkpoint(checkpoint, "WorldGym/Nope-v0")
    assert transfer.check_checkpoint(checkpoint).env_id == "WorldGym/BouncingBalls-v0"  # the default
    half = tmp_path / "half"  # a run whose dynamics stage was never trained
    half.mkdir()
    (half / "config.json").write_text((checkpoint / "config.json").read_text())
    with pytest.raises(transfer.TransferError, match="no trained tokenizer or dynamics stage"):
        transfer.check_checkpoint(half)


def _stats(returns):
    return transfer.stats(returns, [10] * len(returns), list(range(len(returns))))


def test_transfer_figures_formula_and_reliability():
    pol = {"random": {"real": _stats([0.0, 0.0, 0.0, 0.0])},
           "real-trained": {"real": _stats([4.0, 4.0, 4.0, 4.0])},
           "dream-trained": {"real": _stats([1.0, 1.0, 1.0, 1.0]), "dream": _stats([3.0, 3.0, 3.0, 3.0])}}
    f = transfer.transfer_figures(pol)
    assert f["transfer_ratio"] == pytest.approx(0.25) and f["transfer_ratio_reliable"]
    assert f["exploitation_gap"] == pytest.approx(2.0)
    pol["real-trained"]["real"] = _stats([-3.0, 5.0, -3.0, 5.0])  # mean 1 ± 2: within noise
    f = transfer.transfer_figures(pol)
    assert f["transfer_ratio"] == pytest.approx(1.0) and not f["transfer_ratio_reliable"]
    assert "2 standard errors" in f["note"]
    pol["real-trained"]["real"] = _stats([-1.0, -1.0])  # worse than random: no ratio
    f = transfer.transfer_figures(pol)
    assert f["transfer_ratio"] is None and not f["transfer_ratio_reliable"]


def test_evaluate_report_carries_the_transfer_section_and_attachments(tmp_path, capsys):
    from evaluate.__main__ import main as evaluate_main

    pol = {"random": {"real": _stats([-1.0, 0.0])},
           "real-trained": {"real": _stats([2.0, 3.0]), "train_time_s": 1.0, "resumed": False},
           "dream-trained": {"real": _stats([0.5, 0.9]), "dream": _stats([4.0, 5.0]), "train_time_s": 1.0,
                             "resumed": False}}
    t = {"schema": transfer.SCHEMA, "created": "now", "command": "python -m evaluate.transfer …",
         "env_id": "WorldGym/BouncingBalls-v0", "checkpoint": "runs/x", "checkpoint_sha256": "0" * 64,
         "config": {"timesteps": 10, "eval_episodes": 2, "eval_seeds": [0, 1], "seed": 0, "max_steps": 10,
                    "num_envs": 1, "temperature": 1.0, "context": 4, "device": "cpu", "deterministic": True,
                    "width": 64, "height": 64, "ppo": {}},
         "policies": pol, **transfer.transfer_figures(pol), "wall_time_s": 1.0}
    (tmp_path / "transfer.json").write_text(json.dumps(t))
    (tmp_path / "dream.mp4").write_bytes(b"not really a video")
    out = tmp_path / "report"
    rc = evaluate_main(["--predictor", "copy-last", "--episodes", "1", "--horizon", "4", "--samples", "1",
                        "--no-diversity", "--no-controllability", "--no-videos", "--quiet", "--out", str(out),
                        "--transfer", str(tmp_path / "transfer.json"),
                        "--attach", f"real | dream={tmp_path / 'dream.mp4'}"])
    assert rc == 0
    page = (out / "report.html").read_text()
    assert "Dream-to-real transfer" in page and "exploitation gap" in page and "0.400" in page
    assert "src='videos/attachments/real_dream.mp4'" in page and "real | dream" in page
    report = json.loads((out / "report.json").read_text())
    assert report["transfer"]["transfer_ratio"] == pytest.approx(0.4)
    assert (out / report["transfer_plot"]).is_file()
    # a missing transfer.json or video fails before the evaluation, with a one-line error
    assert evaluate_main(["--transfer", str(tmp_path / "none.json"), "--out", str(out)]) == 2
    assert evaluate_main(["--attach", str(tmp_path / "none.mp4"), "--out", str(out)]) == 2
    # a transfer.json about another scene is refused (once embedded without a word)
    assert evaluate_main(["--env", "WorldGym/TopDown-v0", "--transfer", str(tmp_path / "transfer.json"),
                          "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is about WorldGym/BouncingBalls-v0, which this report does not evaluate" in err
