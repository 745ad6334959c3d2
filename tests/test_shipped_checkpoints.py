"""The checkpoints shipped in checkpoints/: each loads, dreams its scene through gym.make, is small, and
carries a model card that cites the command that trained it and metrics copied from a report."""
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the scenes and WorldGym/Dream-v0)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for p in (ROOT / "checkpoints").iterdir() if (p / "config.json").exists())


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bouncing_balls_is_shipped():
    assert "bouncing_balls" in [p.name for p in SHIPPED]


@pytest.mark.parametrize("ckpt", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_checkpoint_dreams_its_scene(ckpt):
    size = sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file())
    assert size <= 5 * 2**20, f"{ckpt.name}: {size / 2**20:.2f} MB > 5 MB"
    card = (ckpt / "MODEL_CARD.md").read_text()
    assert "python -m worldmodel.train" in card and "python -m evaluate" in card
    env = gym.make("WorldGym/Dream-v0", checkpoint=str(ckpt), horizon=5, termination="off")
    real = gym.make(env.unwrapped.model.cfg.env_id, width=64, height=64)
    assert env.observation_space == real.observation_space and env.action_space == real.action_space
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(5):
        obs, reward, term, trunc, _ = env.step(env.action_space.sample())
        assert obs.shape == real.observation_space.shape and obs.dtype == np.uint8 and np.isfinite(reward)
    assert trunc


@pytest.mark.parametrize("ckpt", SHIPPED, ids=[p.name for p in SHIPPED])
def test_tokenizer_reconstructions_keep_the_objects(ckpt):
    """``tokenizer:PATH`` in the evaluator: the real future through the checkpoint's tokenizer; the
    parser finds most objects in it, near where they are (figures for the shipped one: README)."""
    from evaluate import make_predictor, run_suite

    pred = make_predictor(f"tokenizer:{ckpt}")
    assert pred.name == f"tokenizer:{ckpt}"
    env_id = pred.model.cfg.env_id
    r = run_suite(env_id, pred, episodes=2, horizon=4, context=2, samples=1, seed=100000,
                  controllability=False, diversity=False, progress=False)
    assert r.failed == 0
    assert r.summary["psnr@1"] > 25 and r.summary["persistence"] > 0.8 and r.summary["within_1px"] > 0.7
    with pytest.raises(ValueError, match="makes 64x64 frames, the suite renders 48x48"):
        run_suite(env_id, pred, episodes=1, horizon=2, context=1, samples=1, width=48, height=48,
                  controllability=False, diversity=False, progress=False)


def test_generate_cli_from_a_scene_or_a_picture_and_its_errors(tmp_path, capsys):
    from PIL import Image

    from worldmodel import generate

    ckpt = str(ROOT / "checkpoints" / "bouncing_balls")
    out = generate.main(["--checkpoint", ckpt, "--env", "WorldGym/BouncingBalls-v0", "--horizon", "3",
                         "--samples", "2", "--out", str(tmp_path / "seq.mp4")])
    assert out.stat().st_size > 0 and "3 tiles × 3 frames" in capsys.readouterr().out  # real + 2 dreams
    Image.fromarray(np.zeros((50, 70, 4), np.uint8)).save(tmp_path / "start.png")  # any size, RGBA
    sheet = generate.main(["--checkpoint", ckpt, "--image", str(tmp_path / "start.png"), "--horizon", "2",
                           "--samples", "1", "--out", str(tmp_path / "sheet.png")])
    assert Image.open(sheet).size[0] > 0
    for argv, message in (
            (["--env", "WorldGym/TopDown-v0"], "was trained on WorldGym/BouncingBalls-v0"),
            (["--env", "WorldGym/BouncingBalls-v0", "--top-k", "0"], "--top-k must be"),
            (["--env", "WorldGym/BouncingBalls-v0", "--horizon", "0"], "--horizon must be >= 1"),
            (["--env", "WorldGym/BouncingBalls-v0", "--out", "x.gif"], "--out must end in .mp4"),
            (["--image", str(tmp_path / "start.png"), "--policy", "heuristic"], "needs the real scene")):
        with pytest.raises(SystemExit):
            generate.main(["--checkpoint", ckpt, *argv])
        assert message in capsys.readouterr().err
