"""The shard writer process of ``collect.writer_process.WriterProcess`` (run as
``python _writer_helper.py MEMFD SIZE PARENT_PID``; the protocol is described there).

One thread, in request order: deflate the chunks a message names straight from shared memory and
free their slots, rebuild the episode's record, and hand it to the same ``GroupWriter`` a worker uses
inline. Every request that frees slots or finishes shards gets one answer. EOF on stdin (the
collector closed it, or died) drops the open shard's temp file and ends the process.
"""
import os
import sys

# first of all: the repo on sys.path instead of collect/, whose inspect.py would shadow the stdlib's
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import ctypes  # noqa: E402
import fcntl  # noqa: E402
import json  # noqa: E402
import mmap  # noqa: E402
import signal  # noqa: E402
import traceback  # noqa: E402
from dataclasses import asdict  # noqa: E402

import numpy as np  # noqa: E402

from collect.deflate import InlineDeflater, Part  # noqa: E402
from collect.record import EpisodeRecord  # noqa: E402
from collect.writer import FrameChunker, GroupWriter, _nested_infos  # noqa: E402
from collect.writer_process import HEADER, descr_from_json, pack  # noqa: E402


def die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)


def read_exact(fd: int, n: int):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            return None
        got += k
    return buf


def read_msg(fd: int):
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    data = read_exact(fd, HEADER.unpack(head)[0])
    return None if data is None else json.loads(bytes(data))


def write_msg(fd: int, msg: dict) -> None:
    data = memoryview(pack(msg))
    while data:
        data = data[os.write(fd, data):]


class Helper:
    def __init__(self, shm: memoryview, config: dict):
        self.shm = shm
        self.deflater = InlineDeflater()
        self.group = GroupWriter(config["out_dir"], config["chunk_frames"], config["level"],
                                 config["shard_mb"], self.deflater, seal=True)
        self.chunk_frames, self.level = config["chunk_frames"], config["level"]
        self.jobs: list[int] = []  # the current episode's frame chunks (deflater jobs)

    def chunks(self, chunks: list, freed: list) -> None:
        for offset, nbytes, filled, level, kind, mem_level, wbits in chunks:
            if filled < nbytes:  # the episode's last chunk, stored at full size
                self.shm[offset + filled:offset + nbytes] = bytes(nbytes - filled)
            part = Part(self.shm[offset:offset + nbytes], level, kind, mem_level, wbits)
            self.jobs.append(self.deflater.submit([part]))
            freed.append(offset)

    def episode(self, msg: dict, freed: list) -> None:
        self.chunks(msg["chunks"], freed)
        data = b"".join(self.shm[o:o + n] for o, n in msg["payload"])
        freed.extend(o for o, _ in msg["payload"])
        arrays, pos = {}, 0
        for name, descr, shape in msg["arrays"]:
            dtype = descr_from_json(descr)
            count = int(np.prod(shape))
            arrays[name] = np.frombuffer(data, dtype, count, pos).reshape(shape)
            pos += count * dtype.itemsize
        frames = FrameChunker.submitted(self.deflater, self.chunk_frames, self.level, msg["count"],
                                        msg["shape"], msg["dtype"], msg["rows"], self.jobs)
        self.jobs = []
        self.group.add(EpisodeRecord(
            index=msg["index"], seed=msg["seed"], policy_seed=msg["policy_seed"], options=msg["options"],
            frames=frames, actions=arrays["actions"], rewards=arrays["rewards"],
            terminations=arrays["terminations"], truncations=arrays["truncations"],
            infos=_nested_infos(arrays)))

    def handle(self, msg: dict) -> dict:
        op, freed, out = msg["op"], [], {}
        if op == "chunks":
            self.chunks(msg["chunks"], freed)
        elif op == "episode":
            self.episode(msg, freed)
        elif op == "end":
            self.group.end_group()
        elif op == "abort":
            for job in self.jobs:
                self.deflater.result(job)
            self.jobs = []
            self.group.abort()
        elif op == "sync":
            out["synced"] = 1
        else:
            raise ValueError(f"unknown request {op!r}")
        if freed:
            out["freed"] = freed
        done = self.group.take()
        if done:
            out["shards"] = [asdict(i) for i in done]
        return out


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the collector's business
    fd, size, parent = (int(x) for x in sys.argv[1:4])
    die_with_parent(parent)
    shm = memoryview(mmap.mmap(fd, size))
    inp, out = sys.stdin.fileno(), sys.stdout.fileno()
    helper = None
    try:
        config = read_msg(inp)
        if config is None:
            os._exit(0)
        if config.get("lock") and os.path.exists(config["lock"]):
            lock = os.open(config["lock"], os.O_RDWR)  # held (shared) until this process exits,
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)  # like a worker's (collect.worker)
        helper = Helper(shm, config)
        while (msg := read_msg(inp)) is not None:
            answer = helper.handle(msg)
            if answer:
                write_msg(out, answer)
        helper.group.abort()
    except BrokenPipeError:
        if helper is not None:
            helper.group.abort()
    except BaseException:
        if helper is not None:
            helper.group.abort()
        try:
            write_msg(out, {"error": traceback.format_exc()})
        except OSError:
            pass
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    main()
