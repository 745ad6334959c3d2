"""worldmodel.metrics.rollout_eval on known predictions: a perfect dream, and one shifted by 3 px."""
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
