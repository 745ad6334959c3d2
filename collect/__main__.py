"""``python -m collect``: roll out a scene with a policy and write an HDF5 dataset.

    python -m collect --env WorldGym/BouncingBalls-v0 --episodes 1000 --out data/bb
    python -m collect --out data/bb --episodes 1000 --resume          # after an interruption
    python -m collect --out data/bb --episodes 1000 --shard 2/8       # slice 2 of 8 (array jobs)
"""
from __future__ import annotations

import argparse
import os
import sys

from collect.cli import add_dataclass_args, die
from collect.config import CollectArgs, CollectError

PROG = "python -m collect"
METAVARS = {"out": "DIR", "env": "ID", "episodes": "N", "policy": "SPEC", "workers": "N", "seed": "S",
            "size": "PX", "width": "PX", "height": "PX", "max_steps": "T", "options": "JSON", "shard": "I/N",
            "shard_episodes": "N", "shard_mb": "MB", "chunk_frames": "C", "level": "L", "deflate": "WHERE"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Roll out a scene with a policy and write a sharded, compressed HDF5 dataset.",
        epilog="Episode i's env and policy seeds derive from (--seed, i), so every episode can be "
               "regenerated from metadata.json. Read with collect.open_dataset(DIR); check with "
               "python -m collect.verify DIR; look with python -m collect.inspect / collect.video.")
    add_dataclass_args(p, CollectArgs, METAVARS)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    ns = build_parser().parse_args(argv)
    from collect.runner import WorkerError, collect_dataset
    from collect.writer_process import WriterProcessError

    try:
        summary = collect_dataset(CollectArgs(**vars(ns)))
    except CollectError as e:
        die(PROG, str(e))
    except (WorkerError, WriterProcessError) as e:  # a worker or the shard writer failed or died
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished shards are kept: rerun with --resume to continue",
              file=sys.stderr)
        return 130
    print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
