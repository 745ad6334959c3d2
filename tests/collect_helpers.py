"""Shared helpers for the collect tests (small datasets, replay, one-line CLI errors)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from collect import CollectArgs, collect_dataset

ENV = "WorldGym/BouncingBalls-v0"
ROOT = Path(__file__).resolve().parents[1]


def cli_env() -> dict:
    """The environment for running the collector's CLI in a subprocess (headless, repo importable)."""
    return dict(os.environ, SDL_VIDEODRIVER="dummy", PYTHONPATH=str(ROOT))


def kill_after_shards(cmd: list[str], out: Path, shards: int = 3, settle: float = 1.0) -> None:
    """Starts the collector ``cmd``, SIGKILLs it once ``out`` holds ``shards`` shards, waits
    ``settle`` seconds, and asserts that nothing (orphaned worker or helper) writes there afterwards."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("shard-*.h5"))) < shards and proc.poll() is None:
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.fail(f"the collection ended (rc {proc.returncode}) before it could be killed: "
                    f"{proc.stderr.read().decode()[-2000:]}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(settle)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    time.sleep(1.0)
    assert before == {p.name: p.stat().st_mtime_ns for p in out.iterdir()}, "something kept writing"


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
