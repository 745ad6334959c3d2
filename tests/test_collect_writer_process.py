"""The shard writer helper process: the same files as the inline writer, back-pressure, and clear
errors when the helper fails or dies; a killed collector's helper dies with it."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from collect_helpers import ENV, cli_env, kill_after_shards

from collect import open_dataset
from collect.config import make_env
from collect.policies import make_policy
from collect.record import run_episode
from collect.verify import verify
from collect.writer import GroupWriter
from collect.writer_process import WriterProcess, WriterProcessError

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 16 * 64 * 64 * 3


def _write(sink, recs_or_runs, groups):
    """Episodes in ``groups`` (lists of positions) → finished shards, as a worker does."""
    infos = []
    for g in groups:
        for k in g:
            sink.add(recs_or_runs(k, sink))
            infos += sink.take()
        sink.end_group()
        infos += sink.take()
    infos += sink.sync()
    return infos


def test_writer_process_and_inline_writer_write_identical_shards(tmp_path):
    """Streamed to a helper through a shared memory of only six chunk slots (a 300-step episode
    needs 19 chunks: the collector announces early and waits for slots), or written inline from
    lists: the same files, cut at the same episodes by size (episode 1 is shorter than a chunk).
    Byte for byte at a zlib level; igzip may code the same bytes two ways (collect/writer.py)."""
    env = make_env(ENV, 64, 64, 300)
    policy = make_policy("random", env)
    lengths = (40, 9, 300, 40, 70)
    recs = [run_episode(env, policy, i, 0, max_steps=n) for i, n in enumerate(lengths)]
    groups = [[0, 1, 2], [3, 4]]
    for name in ("inline", "process"):
        (tmp_path / name).mkdir()
    inline = GroupWriter(tmp_path / "inline", 16, 4, shard_mb=0.008)
    a = _write(inline, lambda k, sink: recs[k], groups)
    proc = WriterProcess(tmp_path / "process", 16, 4, shard_mb=0.008, shm_bytes=6 * CHUNK)

    def streamed(k, sink):
        rec = run_episode(env, policy, k, 0, max_steps=lengths[k], frames=sink.frame_sink())
        np.testing.assert_array_equal(rec.actions, recs[k].actions)
        return rec

    try:
        b = _write(proc, streamed, groups)
    finally:
        proc.close()
    assert proc.cpu_seconds > 0
    assert [i.episodes for i in a] == [i.episodes for i in b] and len(a) > len(groups)
    assert [i.sha256 for i in a] == [i.sha256 for i in b]
    for info in a:
        assert (tmp_path / "inline" / info.tmp).read_bytes() == (tmp_path / "process" / info.tmp).read_bytes()


def test_a_failing_helper_reports_its_traceback(tmp_path):
    env = make_env(ENV, 64, 64, 20)
    policy = make_policy("random", env)
    proc = WriterProcess(tmp_path / "missing" / "dir", 16, 3, shard_mb=256)
    try:
        with pytest.raises(WriterProcessError, match="(?s)failed:.*Traceback.*(No such file|unable to)"):
            proc.add(run_episode(env, policy, 0, 0, max_steps=20, frames=proc.frame_sink()))
            proc.sync()
    finally:
        proc.close()


def test_a_dead_helper_is_an_error_not_a_hang(tmp_path):
    env = make_env(ENV, 64, 64, 20)
    policy = make_policy("random", env)
    proc = WriterProcess(tmp_path, 16, 3, shard_mb=256)
    try:
        proc.add(run_episode(env, policy, 0, 0, max_steps=20, frames=proc.frame_sink()))
        proc.sync()
        os.kill(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait()
        with pytest.raises(WriterProcessError, match="exit code -9"):
            for i in range(1, 5):
                proc.add(run_episode(env, policy, i, 0, max_steps=20, frames=proc.frame_sink()))
            proc.sync()
    finally:
        proc.close()


def test_sigkill_of_a_one_worker_collector_then_resume(tmp_path):
    """With one worker the shards are written by its helper process: after a kill -9 of the
    collector the helper dies too (nothing keeps writing), and --resume completes the dataset."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "collect", "--env", ENV, "--out", str(out), "--episodes", "24",
           "--max-steps", "200", "--policy", "heuristic", "--workers", "1", "--deflate", "process",
           "--shard-episodes", "1", "--seed", "5", "--no-progress"]
    kill_after_shards(cmd, out, settle=0.5)
    assert verify(out, deep=True).ok
    assert 3 <= len(open_dataset(out)) < 24
    done = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(open_dataset(out).indices, np.arange(24))
    assert verify(out, deep=True).ok and not list(out.glob("*.tmp"))
