"""Shared helpers for the collect tests (small datasets, replay, one-line CLI errors)."""
from __future__ import annotations

import numpy as np

from collect import CollectArgs, collect_dataset

ENV = "WorldGym/BouncingBalls-v0"


def make_dataset(out, **kw):
    """A small dataset collected in this process (workers=1 unless given)."""
    args = dict(env=ENV, episodes=6, max_steps=100, policy="random", workers=1, seed=3,
                shard_episodes=2, progress=False)
    args.update(kw)
    return collect_dataset(CollectArgs(out=str(out), **args))


def assert_state_equal(stored: dict, live: dict):
    assert set(stored) == set(live)
    for k, v in live.items():
        np.testing.assert_array_equal(stored[k], np.asarray(v), err_msg=k)
