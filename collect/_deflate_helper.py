"""The deflate helper process of ``collect.deflate.ProcessDeflater`` (standard library only; run as
``python -I -S _deflate_helper.py MEMFD SIZE``). Requests arrive on stdin, answers leave on stdout,
in order; frame chunks are read from the shared memory (the collector's ``memfd``, inherited).

Three threads so that neither pipe can deadlock: one reads requests, one compresses (``zlib``
releases the GIL), one writes answers from an unbounded queue of compressed results, so that
compressing never waits for the collector to read. The collector bounds the work in flight (its
slots, one request of small arrays per episode). EOF on stdin ends all three.
"""
import mmap
import os
import queue
import struct
import sys
import threading
import zlib

_REQ, _PART, _RESP_PART = struct.Struct("<IH"), struct.Struct("<BBBBBQQ"), struct.Struct("<Q")
COMPRESSOBJ, SHARED = 0, 1


def deflate_part(kind, level, mem_level, wbits, data):  # the same lines as collect.deflate.deflate_part
    if kind == COMPRESSOBJ:
        co = zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level)
        return co.compress(data) + co.flush()
    return zlib.compress(data, level)


def read_exact(fd, n):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            return None
        got += k
    return buf


def reader(fd, shm, jobs):
    try:
        while True:
            head = read_exact(fd, _REQ.size)
            if head is None:
                break
            job, n = _REQ.unpack(head)
            specs = [_PART.unpack(read_exact(fd, _PART.size)) for _ in range(n)]
            parts = []
            for kind, level, mem, wbits, source, offset, size in specs:
                if source == SHARED:
                    data = shm[offset:offset + size]
                else:
                    data = read_exact(fd, size) if size else b""
                parts.append((kind, level, mem, wbits, data))
            jobs.put((job, parts))
    finally:
        jobs.put(None)


def writer(fd, results):
    while (item := results.get()) is not None:
        job, outs = item
        sizes = [_RESP_PART.pack(len(o)) for o in outs]
        data = memoryview(b"".join([_REQ.pack(job, len(outs)), *sizes, *outs]))
        while data:
            data = data[os.write(fd, data):]


def main():
    shm = memoryview(mmap.mmap(int(sys.argv[1]), int(sys.argv[2])))
    jobs, results = queue.Queue(), queue.Queue()
    threading.Thread(target=reader, args=(sys.stdin.fileno(), shm, jobs), daemon=True).start()
    out = threading.Thread(target=writer, args=(sys.stdout.fileno(), results), daemon=True)
    out.start()
    try:
        while (item := jobs.get()) is not None:
            job, parts = item
            results.put((job, [deflate_part(*p) for p in parts]))
        results.put(None)
        out.join()
    except BrokenPipeError:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
