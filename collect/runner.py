"""Drives a collection run: checks the output directory, works out what is missing, runs workers.

Resumability comes from the file protocol, not from bookkeeping: a shard is written under a temp
name, listed in metadata.json (with its sha256), then renamed. So after a ``kill -9`` at any moment
every visible shard is complete and checksummed; ``--resume`` drops or re-publishes the one shard
that may have been between the two steps, deletes leftover temp files of its slice, and collects
every target episode index that no visible shard holds. Episodes are pure functions of
(settings, index), so a redone episode is bit-identical to the lost one. Only this process renames;
workers of a killed collector see their lifeline pipe close and exit before their next episode, and
hold the slice lock (shared) until they do, so a ``--resume`` cannot start beside them.
"""
from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
import queue
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from collect import meta as meta_mod
from collect.config import CollectArgs, CollectError, Plan, resolve, usable_cpus
from collect.deflate import codec
from collect.writer import FORMAT, FORMAT_VERSION, TMP_SUFFIX, ShardInfo, publish, sha256_file

#: Pending episodes are cut into shard groups (``shard_groups``) of at least MIN_GROUP_SIZE episodes
#: (within --shard-episodes), each at most 1/MIN_GROUPS of what is left, so that up to 16 workers
#: have work; independent of --workers, so the files written do not depend on it.
MIN_GROUPS, MIN_GROUP_SIZE = 16, 8
_SHARD_RE = re.compile(r"^shard-(\d{8,})\.h5$")
_TMP_RE = re.compile(r"^shard-(\d{8,})\.h5\.tmp$")


class WorkerError(RuntimeError):
    """A worker process raised or died; the message carries its traceback."""


@dataclass
class Summary:
    out: str
    collected: int  # episodes collected by this run
    steps: int
    seconds: float
    present: int  # episodes of this slice now on disk
    target: int  # episodes this slice should have
    bytes: int  # this slice's shard bytes
    raw_frame_bytes: int
    deflate: str = "inline"  # where compression and HDF5 ran: "process" (a shard writer per worker: a core
    #                          was spare) or "inline" (in the worker)
    worker_cpu_seconds: float = 0.0  # CPU time of worker and shard writer processes (not this one's)

    @property
    def complete(self) -> bool:
        return self.present == self.target

    def line(self) -> str:
        ratio = self.bytes / self.raw_frame_bytes if self.raw_frame_bytes else 0.0
        fps = self.steps / self.seconds if self.seconds > 0 else 0.0
        state = "complete" if self.complete else f"{self.target - self.present} episodes still missing"
        return (f"collected {self.collected} episodes ({self.steps:,} steps, {fps:,.0f} steps/s) into "
                f"{self.out}: {self.present}/{self.target} episodes, {self.bytes / 1e6:.2f} MB on disk = "
                f"{ratio:.2%} of raw frames; {state}")


def _is_ours(name: str) -> bool:
    return bool(_SHARD_RE.match(name) or _TMP_RE.match(name) or meta_mod.is_metadata_name(name)
                or name.startswith(".lock-") or (name.startswith("metadata") and name.endswith(TMP_SUFFIX)))


class _SliceLock:
    """``flock`` on ``DIR/.lock-IofN``: one collector per slice and directory at a time. Taken
    exclusively to check, then held shared by the collector and each of its workers."""

    def __init__(self, out: Path, plan: Plan):
        self.path = out / f".lock-{plan.slice_index}of{plan.slices}"
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise CollectError(f"another collector (or a killed one's last worker) is writing into "
                               f"{self.path.parent} (lock {self.path.name} is held); retry in a moment"
                               ) from None
        fcntl.flock(self.fd, fcntl.LOCK_SH)  # exclusive was the check; workers share it from now on
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _header(plan: Plan, env) -> dict:
    extra = ("torch", "stable-baselines3") if plan.policy.startswith("sb3:") else ()
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "settings": plan.settings(),
        "env": meta_mod.env_description(env, plan.env_id),
        "policy": plan.policy,
        "seeding": meta_mod.SEEDING,
        "slice": [plan.slice_index, plan.slices],
        "episodes_requested": plan.episodes,
        "storage": {"layout": "collect/writer.py", "chunk_frames": plan.chunk_frames,
                    "compression": "gzip", "level": plan.level,
                    "codec": codec(plan.level), "shard_episodes": plan.shard_episodes,
                    "state": "padded per episode: infos/state (T+1, N) structured + infos/state_count; "
                             "padding id -1, rest 0; contacts (T+1, K, 2) padded -2 + contacts_count"},
        "versions": meta_mod.package_versions(extra),
    }


def _check_out_dir(out: Path, args: CollectArgs) -> list[tuple[Path, dict]]:
    """The metadata parts already in ``out``, after refusing a directory that holds something else
    (before the slice lock is taken, so that a refused run leaves nothing behind)."""
    try:
        parts = meta_mod.read_parts(out)
    except ValueError as e:
        if not args.overwrite:
            raise CollectError(f"{e}; pass --overwrite to replace the dataset") from None
        parts = []
    names = [p.name for p in out.iterdir()]
    foreign = [n for n in names if not _is_ours(n)]
    if not parts and foreign:
        raise CollectError(f"{out} is not empty and holds no collect dataset "
                           f"({', '.join(sorted(foreign)[:3])}"
                           f"{', …' if len(foreign) > 3 else ''}); choose a new or empty --out")
    if not parts and any(_SHARD_RE.match(n) for n in names) and not args.overwrite:
        raise CollectError(f"{out} has shard files but no metadata*.json; pass --overwrite to replace them")
    return parts


def _siblings(plan: Plan, parts: list[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
    """The parts an ``--overwrite`` keeps: the other slices of this run's slicing (``--shard I/N``, the
    same N and settings). A whole run has none: it replaces every part, slices included."""
    own_name = meta_mod.metadata_name(plan.slice_index, plan.slices)
    return [(p, m) for p, m in parts if plan.slices > 1 and p.name != own_name
            and list(m.get("slice", (0, 1)))[1] == plan.slices
            and not meta_mod.settings_diff(plan.settings(), m["settings"])]


def _overwrite(out: Path, plan: Plan, parts: list[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
    """``--overwrite``: deletes everything but the parts of sibling slices (``_siblings``: ``--shard I/N``
    jobs may share a directory, and one slice's --overwrite must not delete its siblings' work).
    Returns the parts kept."""
    kept = _siblings(plan, parts)
    kept_files = {p.name for p, _ in kept} | {s["file"] for _, m in kept for s in m["shards"]}
    for n in os.listdir(out):
        if not _is_ours(n) or n.startswith(".lock-") or n in kept_files:
            continue
        m = _SHARD_RE.match(n) or _TMP_RE.match(n)
        if m and kept and int(m.group(1)) % plan.slices != plan.slice_index:
            continue  # another slice's file (its shard in flight, say): not ours to delete
        (out / n).unlink(missing_ok=True)
    return kept


def _refuse_fewer(out: Path, plan: Plan, parts: list[tuple[Path, dict]], overwrite: bool) -> None:
    """Refuses an ``--episodes`` below what the dataset already holds (episode indices past the new
    count): the run would call the dataset complete, record the smaller count as requested, and keep
    every episode. More episodes extend the dataset; the same number continues it. With
    ``--overwrite``, only the parts it keeps count (other slices with the same settings)."""
    if overwrite:
        parts = _siblings(plan, parts)
    held = {i for _, m in parts for s in m["shards"] for i in s["episodes"]}
    if held and max(held) >= plan.episodes:
        keep = f"pass --episodes >= {max(held) + 1} to keep them"
        raise CollectError(f"{out} already holds {len(held)} episodes (indices up to {max(held)}), more than "
                           f"--episodes {plan.episodes}; {keep}"
                           + ("" if overwrite else " or --overwrite to collect a new dataset"))


def _intact(out: Path, shard: dict) -> bool:
    """The listed shard's file is there with the size its metadata records (``collect.verify``
    checks the sha256; this cheap check catches a truncated or replaced file on resume)."""
    try:
        return (out / shard["file"]).stat().st_size == shard["bytes"]
    except OSError:
        return False


def _prepare(out: Path, plan: Plan, env, args: CollectArgs) -> tuple[Path, dict, list[int]]:
    """Checks ``out`` against the plan; returns (own metadata path, own metadata, pending indices)."""
    parts = _check_out_dir(out, args)
    diffs = [(p.name, meta_mod.settings_diff(plan.settings(), m["settings"])) for p, m in parts]
    diffs = [(n, d) for n, d in diffs if d]
    if diffs and not args.overwrite:
        name, d = diffs[0]
        raise CollectError(f"{out} holds a dataset made with different settings ({name}: "
                           f"{'; '.join(d)} [this run vs existing]); pass --overwrite to replace it "
                           "or choose another --out")
    _refuse_fewer(out, plan, parts, args.overwrite)
    if args.overwrite:
        parts = _overwrite(out, plan, parts)

    own_path = out / meta_mod.metadata_name(plan.slice_index, plan.slices)
    own = next((m for p, m in parts if p == own_path), None)
    shards = []
    for s in (own or {}).get("shards", []):
        final, tmp = out / s["file"], out / (s["file"] + TMP_SUFFIX)
        if not final.exists() and tmp.exists() and sha256_file(tmp) == s["sha256"]:
            os.replace(tmp, final)  # killed between the metadata write and the rename
        if _intact(out, s):
            shards.append(s)
        elif final.exists():
            print(f"{final}: {final.stat().st_size} bytes where its metadata lists {s['bytes']}; "
                  f"collecting its episodes again", file=sys.stderr)
            final.unlink()
    for n in os.listdir(out):
        m = _TMP_RE.match(n)
        if (m and int(m.group(1)) % plan.slices == plan.slice_index) or (
                n.startswith(own_path.name + ".") and n.endswith(TMP_SUFFIX)):
            (out / n).unlink(missing_ok=True)

    meta = _header(plan, env)
    meta["created"] = (own or {}).get("created", _now())
    meta["updated"] = _now()
    meta["shards"] = shards
    present: set[int] = set()
    for p, m in parts:
        for s in (shards if p == own_path else m["shards"]):
            if _intact(out, s):
                present.update(s["episodes"])
    pending = [i for i in range(plan.episodes)
               if i % plan.slices == plan.slice_index and i not in present]
    meta["complete"] = not pending
    meta_mod.write(own_path, meta)
    return own_path, meta, pending


def collect_dataset(args: CollectArgs) -> Summary:
    """Runs a collection described by ``args`` (the CLI's arguments) and returns a summary."""
    plan, env, policy = resolve(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CollectError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    _check_out_dir(out, args)  # a refusal before the lock file exists; _prepare checks again under the lock
    with _SliceLock(out, plan):
        own_path, meta, pending = _prepare(out, plan, env, args)
        target = [i for i in range(plan.episodes) if i % plan.slices == plan.slice_index]
        if args.progress and len(pending) < len(target):
            print(f"{out}: {len(target) - len(pending)} of {len(target)} episodes already there with these "
                  f"settings; collecting the {len(pending)} missing", file=sys.stderr)
        start = time.perf_counter()
        try:
            done_steps, deflate, cpu = _run(plan, out, own_path, meta, pending, args.progress, env, policy,
                                            args.deflate)
        finally:
            env.close()
        seconds = time.perf_counter() - start
        have: set[int] = set()
        for _, m in meta_mod.read_parts(out):
            for s in m["shards"]:
                if (out / s["file"]).exists():
                    have.update(s["episodes"])
        present = len(have.intersection(target))
        meta["complete"] = present == len(target)
        meta["updated"] = _now()
        meta_mod.write(own_path, meta)
        c = meta["counts"]
        return Summary(str(out), len(pending), done_steps, seconds, present, len(target), c["bytes"],
                       c["raw_frame_bytes"], deflate, cpu)


def busy_elsewhere(samples: int = 5) -> int:
    """Runnable tasks right now besides this one (``/proc/loadavg``'s running count, the least of a
    few samples 1 ms apart). Unlike the load average, it does not lag by a minute nor count the
    collector's own previous runs."""
    try:
        counts = []
        for k in range(samples):
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
            if k + 1 < samples:
                time.sleep(0.001)
        return max(min(counts), 0)
    except (OSError, ValueError, IndexError):
        return 0


def overlap_deflate(mode: str, workers: int) -> bool:
    """Write shards in helper processes (``collect.writer_process``)? ``auto``: only while a core is
    spare beside the workers and whatever else runs now: a helper on a busy machine only adds its
    IPC and start-up (~0.3 s of CPU importing numpy and h5py) to the CPU bill."""
    if mode == "auto":
        return workers + busy_elsewhere() < usable_cpus()
    return mode == "process"


def shard_groups(pending: list[int], shard_episodes: int) -> list[list[int]]:
    """Consecutive groups of ``pending``, each one shard (more if it outgrows ``--shard-mb``),
    handed to whichever worker is free. Sizes shrink as the work runs out (guided scheduling): a
    group is at most 1/16 of the episodes left, so the last groups are short and the workers finish
    together rather than one waiting out another's long last group."""
    groups, k = [], 0
    while k < len(pending):
        rest = len(pending) - k
        size = min(shard_episodes, max(MIN_GROUP_SIZE, -(-rest // MIN_GROUPS)))
        if size < rest < 2 * MIN_GROUP_SIZE:
            size = min(size, -(-rest // 2))  # the last two groups share what is left, rather than a stub last
        groups.append(pending[k:k + size])
        k += size
    return groups


def _run(plan: Plan, out: Path, own_path: Path, meta: dict, pending: list[int], progress: bool,
         env, policy, deflate: str = "auto") -> tuple[int, str, float]:
    groups = shard_groups(pending, plan.shard_episodes)
    if not groups:
        return 0, "inline", 0.0
    from tqdm import tqdm

    bar = tqdm(total=len(pending), unit="ep", desc=out.name or str(out), disable=not progress,
               dynamic_ncols=True, file=sys.stderr)
    start, steps = time.perf_counter(), 0

    def on_episode(index: int, n: int) -> None:
        nonlocal steps
        steps += n
        bar.update(1)
        bar.set_postfix_str(f"{steps / max(time.perf_counter() - start, 1e-9):,.0f} frames/s", refresh=False)

    def on_shard(info: ShardInfo) -> None:
        # each shard records how it was stored: a continued run may use other --chunk-frames/--level
        meta["shards"].append({**info.entry(), "storage": {"chunk_frames": plan.chunk_frames,
                                                           "level": plan.level, "codec": codec(plan.level)}})
        meta["shards"].sort(key=lambda s: s["episodes"][0])
        meta["updated"] = _now()
        meta_mod.write(own_path, meta)  # listed first, then visible: every visible shard has a checksum
        publish(out, info)

    try:
        workers = min(plan.workers, len(groups))
        overlap = overlap_deflate(deflate, workers)
        if workers <= 1:
            from collect.worker import Worker

            worker = Worker(plan, str(out), env, policy, overlap, seal=False)
            publisher = _Publisher(out, on_shard)
            try:
                for g in groups:
                    worker.run_group(g, on_episode, publisher.submit)
                worker.flush(publisher.submit)
            finally:
                worker.close()
                publisher.close()  # every shard handed over is published, even after an error
            cpu, overlap = worker.cpu_seconds, worker.overlapped
        else:
            cpu = _run_processes(plan, out, groups, workers, overlap, on_episode, on_shard)
    finally:
        bar.close()
    return steps, "process" if overlap else "inline", cpu


class _Publisher:
    """Seals (fsync + sha256) and publishes (metadata, then rename) the in-process worker's shards in
    one background thread, in order: that is ~5 ms per shard of mostly GIL-free waiting and hashing
    that the stepping thread no longer does. Errors surface at the next ``submit`` or at ``close``."""

    def __init__(self, out: Path, on_shard):
        from concurrent.futures import ThreadPoolExecutor

        self.out, self.on_shard = out, on_shard
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="collect-publish")
        self.futures: list = []

    def _publish(self, info: ShardInfo) -> None:
        self.on_shard(info.seal(self.out))

    def submit(self, info: ShardInfo) -> None:
        self._check()
        self.futures.append(self.pool.submit(self._publish, info))

    def _check(self) -> None:
        while self.futures and self.futures[0].done():
            self.futures.pop(0).result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        futures, self.futures = self.futures, []
        for f in futures:
            f.result()


def _context(plan: Plan):
    """forkserver where available: the server imports the worker's modules once and forks each worker
    from there, which saves each worker the ~0.5 s (CPU) of importing numpy, gymnasium, pymunk, h5py
    and the scene that spawn costs; unlike a plain fork it inherits no threads or open files."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    import gymnasium as gym

    spec = gym.spec(plan.env_id)
    scene = spec.entry_point.split(":")[0] if isinstance(spec.entry_point, str) else None
    ctx.set_forkserver_preload(["collect.worker", "envs", *([scene] if scene else [])])
    return ctx


def _run_processes(plan: Plan, out: Path, groups, workers: int, overlap: bool, on_episode,
                   on_shard) -> float:
    """Runs the groups on worker processes; returns the workers' CPU seconds."""
    from collect.worker import worker_main

    ctx = _context(plan)
    tasks, results = ctx.Queue(), ctx.Queue()
    for g in groups:
        tasks.put(g)
    for _ in range(workers):
        tasks.put(None)
    lifeline_r, lifeline_w = ctx.Pipe(duplex=False)  # only this process holds the write end
    lock = str(out / f".lock-{plan.slice_index}of{plan.slices}")
    args = (plan.to_dict(), str(out), tasks, results, lifeline_r, lock, overlap)
    procs = [ctx.Process(target=worker_main, args=args, daemon=True, name=f"collect-worker-{k}")
             for k in range(workers)]
    for p in procs:
        p.start()
    lifeline_r.close()
    exited, worker_cpu = 0, 0.0
    try:
        while exited < workers:
            try:
                msg = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise WorkerError(f"worker {dead[0].name} died with exit code "
                                      f"{dead[0].exitcode}") from None
                continue
            kind = msg[0]
            if kind == "episode":
                on_episode(msg[1], msg[2])
            elif kind == "shard":
                on_shard(ShardInfo(**msg[1]))
            elif kind == "exit":
                exited += 1
                worker_cpu += msg[2]
            elif kind == "error":
                raise WorkerError(f"a collect worker failed:\n{msg[1]}")
        for p in procs:
            p.join()
        return worker_cpu
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
        lifeline_w.close()
