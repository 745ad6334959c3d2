"""A collection worker: one env, one policy, groups of episode indices → finished shard files.

The same :class:`Worker` runs in the main process (``--workers 1``) or in spawned processes that
talk to the main process through two queues. Workers never publish anything: they hand finished
temp files to the main process, which records them in metadata.json and renames them. With a core
to spare (``overlap``) the shard files are written by a helper process
(``collect.writer_process``), otherwise in the worker itself (``collect.writer.GroupWriter``).
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
from collect.policies import make_policy
from collect.record import run_episode
from collect.writer import GroupWriter, ShardInfo


def make_sink(plan: Plan, out_dir: str, overlap: bool, seal: bool = True):
    """Where episodes go: a ``WriterProcess`` if ``overlap`` and one can start, else a
    ``GroupWriter`` in this process (``seal``: fsync and hash each shard as it is closed)."""
    if overlap and hasattr(os, "memfd_create"):
        from collect.writer_process import WriterProcess

        lock = os.path.join(out_dir, f".lock-{plan.slice_index}of{plan.slices}")
        try:
            return WriterProcess(out_dir, plan.chunk_frames, plan.level, plan.shard_mb, lock)
        except OSError:
            pass
    return GroupWriter(out_dir, plan.chunk_frames, plan.level, plan.shard_mb, seal=seal)


class Worker:
    """``overlap``: write shards in a helper process, for when a core is spare. ``seal=False``: an
    in-process writer hands shards over closed but not yet fsynced and hashed (``ShardInfo.seal``),
    for a caller that does that off the stepping thread (the helper process always seals)."""

    def __init__(self, plan: Plan, out_dir: str, env=None, policy=None, overlap: bool = False,
                 seal: bool = True):
        self.plan, self.out_dir = plan, out_dir
        self.sink = make_sink(plan, out_dir, overlap, seal)
        self.env = env if env is not None else plan.make_env()
        self.policy = policy if policy is not None else make_policy(plan.policy, self.env)

    @property
    def overlapped(self) -> bool:
        return self.sink.overlapped

    @property
    def cpu_seconds(self) -> float:
        """CPU time of the helper process (known after ``close``)."""
        return self.sink.cpu_seconds

    def close(self) -> None:
        self.sink.close()

    def run_group(self, indices: list[int], on_episode: Callable[[int, int], None],
                  on_shard: Callable[[ShardInfo], None]) -> None:
        """Collects ``indices`` in order into one shard (more if it outgrows ``shard_mb``). Shards
        reach ``on_shard`` as they are finished, which with a helper process may be during a later
        group or at ``flush``."""
        p, sink = self.plan, self.sink
        try:
            for index in indices:
                rec = run_episode(self.env, self.policy, index, p.seed, p.options, p.max_steps,
                                  frames=sink.frame_sink())
                sink.add(rec)
                on_episode(index, rec.steps)
                for info in sink.take():
                    on_shard(info)
            sink.end_group()
            for info in sink.take():
                on_shard(info)
        except BaseException:
            sink.abort()
            raise

    def flush(self, on_shard: Callable[[ShardInfo], None]) -> None:
        """Waits for every shard still being written and hands each to ``on_shard``."""
        for info in self.sink.sync():
            on_shard(info)


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
        def on_shard(info: ShardInfo) -> None:
            results.put(("shard", asdict(info)))

        while (group := tasks.get()) is not None:
            if lifeline.poll():
                os._exit(1)
            worker.run_group(group, on_episode, on_shard)
        worker.flush(on_shard)
        worker.close()
        results.put(("exit", os.getpid(), time.process_time() + worker.cpu_seconds))
    except BaseException:
        results.put(("error", traceback.format_exc()))
