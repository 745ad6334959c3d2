"""worldmodel.metrics.rollout_eval on known predictions: a perfect dream, and one shifted by 3 px."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from worldmodel.data import EpisodeStore
from worldmodel.metrics import rollout_eval


class Oracle:
    """Stands in for a WorldModel: 'dreams' the real future frames (optionally rolled sideways) and
    has an identity tokenizer, so every number rollout_eval reports is known in advance."""

    def __init__(self, store, shift: int = 0):
        self.store, self.shift = store, shift
        self.device = torch.device("cpu")
        self.cfg = SimpleNamespace(tokenizer=SimpleNamespace(height=64, width=64))
        self.tokenizer = SimpleNamespace(encode=lambda x: x, decode=lambda x: x)

    def generate(self, context, actions, horizon, num_samples=1, context_actions=None, **_):
        self.calls = getattr(self, "calls", []) + [dict(actions=actions, context_actions=context_actions)]
        C = context.shape[1]
        future = np.stack([e.frames[C:C + horizon] for e in self.store.episodes[: len(context)]])
        future = np.roll(future, self.shift, axis=3)  # along the width
        return SimpleNamespace(frames=torch.from_numpy(np.repeat(future[:, None], num_samples, 1)))


@pytest.fixture(scope="module")
def store():
    _, val = EpisodeStore.from_env("WorldGym/BouncingBalls-v0", episodes=10, steps=12, val_fraction=0.3)
    return val


def test_a_perfect_dream_finds_every_object_within_a_pixel(store):
    res = rollout_eval(Oracle(store), store, episodes=2, context=2, horizon=6)
    for row in ("model", "recon"):
        assert np.all(res[f"persistence/{row}"] == 1.0)
        assert np.all(res[f"within_1px/{row}"] == 1.0)
        assert np.allclose(res[f"position_error/{row}"], res["position_error/recon"])
    assert np.all(res["psnr/model"] > 90)


def test_rollouts_take_the_episodes_actions_and_copy_the_last_context_frame(store):
    oracle = Oracle(store)
    res = rollout_eval(oracle, store, episodes=2, context=2, horizon=6)
    call, eps = oracle.calls[-1], store.episodes[:2]
    for b, ep in enumerate(eps):  # a_{C-1} is taken in the last context frame; a_0 … a_{C-2} before it
        assert np.array_equal(call["actions"][b], ep.actions[1:7])
        assert np.array_equal(call["context_actions"][b], ep.actions[:1])
        assert all(np.array_equal(res["frames"]["copy"][b, 0, t], ep.frames[1]) for t in range(6))


def test_a_shifted_dream_keeps_objects_but_not_within_a_pixel(store):
    res = rollout_eval(Oracle(store, shift=3), store, episodes=2, context=2, horizon=6)
    assert np.all(res["persistence/model"] > 0.9)  # the colours are all still there ...
    assert np.all(res["within_1px/model"] < 0.2)  # ... but 3 px off
    assert np.all(res["position_error/model"] > 2.0)


# ---------------------------------------------------------------------- the CLI
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = str(ROOT / "checkpoints" / "bouncing_balls")


def test_cli_evaluates_every_temperature_given_and_takes_passes(monkeypatch, capsys):
    """Repeated --temperature flags add up (argparse kept only the last); --passes is the MaskGIT
    passes per frame, --steps its deprecated name."""
    from worldmodel import metrics

    calls = []

    def fake_eval(model, val, episodes, context, horizon, temperature, seed, samples, passes):
        calls.append((temperature, passes))
        return {"episodes": 1, "psnr/model": np.zeros(horizon)}

    monkeypatch.setattr(metrics, "open_data", lambda p, args: (None, None))
    monkeypatch.setattr(metrics, "rollout_eval", fake_eval)
    base = ["--checkpoint", "RUN", "--data", "DIR", "--horizon", "4"]
    out = metrics.main([*base, "--temperature", "1.0", "--temperature", "0.0", "0.5", "--passes", "2"])
    assert list(out) == ["1.0", "0.0", "0.5"] and calls == [(1.0, 2), (0.0, 2), (0.5, 2)]
    calls.clear()
    metrics.main(base)
    assert calls == [(1.0, None)]  # the defaults: temperature 1, the checkpoint's passes
    calls.clear()
    metrics.main([*base, "--steps", "3"])
    assert calls == [(1.0, 3)] and "deprecated" in capsys.readouterr().err


@pytest.mark.parametrize("flag, message", [
    (["--episodes", "0"], "--episodes must be >= 1"),
    (["--temperature", "1", "-1"], "--temperature must be a finite number >= 0"),
    (["--passes", "0"], "--passes must be None (the checkpoint's) or an integer >= 1"),
    (["--passes", "2", "--steps", "3"], "--steps is the deprecated name of --passes"),
    (["--threads", "-1"], "--threads must be >= 0"),
])
def test_cli_refuses_bad_numbers(flag, message, capsys):
    from worldmodel import metrics

    with pytest.raises(SystemExit) as e:
        metrics.main(["--checkpoint", SHIPPED, "--data", "DIR", *flag])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_cli_names_a_missing_checkpoint_or_dataset_and_data_of_another_scene(tmp_path, capsys):
    from collect_helpers import make_dataset

    from worldmodel import metrics

    make_dataset(tmp_path / "td", env="WorldGym/TopDown-v0", episodes=2, max_steps=5, shard_episodes=2)
    for argv, message in [
            (["--checkpoint", str(tmp_path / "nope"), "--data", str(tmp_path / "td")], "no config.json"),
            (["--checkpoint", SHIPPED, "--data", str(tmp_path / "nope")], "--data: "),
            # once a traceback about action ranges, deep inside generation
            (["--checkpoint", SHIPPED, "--data", str(tmp_path / "td")],
             "is WorldGym/TopDown-v0 (actions"),
            (["--checkpoint", SHIPPED, "--data", str(tmp_path / "td")],
             "was trained on WorldGym/BouncingBalls-v0 (actions")]:
        with pytest.raises(SystemExit) as e:
            metrics.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and "Traceback" not in err, err
