"""A collection worker: one env, one policy, groups of episode indices → finished shard files.

The same :class:`Worker` runs in the main process (``--workers 1``) or in spawned processes that
talk to the main process through two queues. Workers never publish anything: they hand finished
temp files to the main process, which records them in metadata.json and renames them.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict

from collect.config import Plan
from collect.deflate import make_deflater
from collect.policies import make_policy
from collect.record import run_episode
from collect.writer import ShardInfo, ShardWriter


class Worker:
    """``overlap``: deflate in a helper process (``collect.deflate``), for when a core is spare."""

    def __init__(self, plan: Plan, out_dir: str, env=None, policy=None, overlap: bool = False):
        self.plan, self.out_dir = plan, out_dir
        self.deflater = make_deflater(overlap)
        self.env = env if env is not None else plan.make_env()
        self.policy = policy if policy is not None else make_policy(plan.policy, self.env)

    @property
    def overlapped(self) -> bool:
        return self.deflater.overlapped

    def close(self) -> None:
        self.deflater.close()

    def run_group(self, indices: list[int], on_episode: Callable[[int, int], None],
                  on_shard: Callable[[ShardInfo], None], seal: bool = True) -> None:
        """Collects ``indices`` in order into one shard (more if it outgrows ``shard_mb``).
        ``seal=False``: shards reach ``on_shard`` closed but not yet fsynced and hashed
        (``ShardInfo.seal``), for a caller that does that off the stepping thread."""
        p = self.plan
        limit = p.shard_mb * 1e6
        writer = None
        try:
            for index in indices:
                if writer is None:
                    writer = ShardWriter(self.out_dir, index, p.chunk_frames, p.level, self.deflater)
                rec = run_episode(self.env, self.policy, index, p.seed, p.options, p.max_steps,
                                  frames=writer.frame_sink())
                writer.add(rec)
                on_episode(index, rec.steps)
                if writer.bytes_estimate >= limit:
                    on_shard(writer.close(seal))
                    writer = None
            if writer is not None:
                on_shard(writer.close(seal))
                writer = None
        finally:
            if writer is not None:
                writer.abort()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (spawn: the collector). A backstop only:
    under forkserver the parent is the server, which outlives a killed collector while workers run."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def hold_slice_lock(path: str) -> int:
    """A shared ``flock`` on the collector's slice lock, held until this worker exits: a new collector
    (``--resume``) cannot take the lock while an orphan of a killed one still writes."""
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    return fd


def worker_main(plan_dict: dict, out_dir: str, tasks, results, lifeline, lock_path: str,
                overlap: bool) -> None:
    """Process entry point: groups from ``tasks`` until ``None``; messages to ``results``.

    ``lifeline`` is the read end of a pipe whose write end only the collector holds: it becomes
    readable (EOF) when the collector dies, however it dies, and the worker then exits before
    starting another episode (a killed collector's orphans must not keep writing)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's business

    def on_episode(index: int, steps: int) -> None:
        if lifeline.poll():
            os._exit(1)
        results.put(("episode", index, steps))

    try:
        if lifeline.poll():
            os._exit(1)
        hold_slice_lock(lock_path)
        worker = Worker(Plan(**plan_dict), out_dir, overlap=overlap)
        while (group := tasks.get()) is not None:
            if lifeline.poll():
                os._exit(1)
            worker.run_group(group, on_episode, lambda info: results.put(("shard", asdict(info))))
        worker.close()
        results.put(("exit", os.getpid(), time.process_time() + worker.deflater.cpu_seconds))
    except BaseException:
        results.put(("error", traceback.format_exc()))
