"""``python -m collect.verify DIR``: is every shard intact, and which episodes are damaged if not?

Checks, per shard listed in the metadata: the file exists; its sha256 matches; every listed episode
is present with the right shapes (observations ``(T+1, H, W, 3)``, per-step arrays ``(T,)``,
infos ``(T+1, …)``). Where a checksum fails (or with ``--deep``, everywhere) each episode's chunks
are re-checksummed (the ``crc32`` attribute) and fully decoded, so the report names the damaged
episodes. Also flags shard files that no metadata lists and episodes held twice.
Exit status: 0 all good, 1 damage found, 2 usage error.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from collect import meta as meta_mod
from collect.cli import summary
from collect.writer import TMP_SUFFIX, episode_crc32, sha256_file

PROG = "python -m collect.verify"


@dataclass
class Problem:
    file: str
    episode: int | None
    message: str

    def __str__(self) -> str:
        where = self.file + (f": episode {self.episode}" if self.episode is not None else "")
        return f"{where}: {self.message}"


@dataclass
class Report:
    root: str
    shards: int = 0
    episodes: int = 0
    ok_shards: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def damaged_episodes(self) -> list[int]:
        return sorted({p.episode for p in self.problems if p.episode is not None})


def _check_episode(g: h5py.Group, index: int, steps: int, frame: tuple, deep: bool) -> list[str]:
    """Shape checks (and with ``deep`` a crc and full decode) of one episode group."""
    errs = []
    a = g.attrs
    if int(a.get("total_steps", -1)) != steps:
        errs.append(f"total_steps {a.get('total_steps')} != {steps} in metadata")
    want = {"observations": (steps + 1, *frame), "rewards": (steps,), "terminations": (steps,),
            "truncations": (steps,)}
    for name, shape in want.items():
        if name not in g:
            errs.append(f"{name}: missing")
        elif g[name].shape != shape:
            errs.append(f"{name}: shape {g[name].shape}, expected {shape}")
    if "actions" not in g or g["actions"].shape[:1] != (steps,):
        errs.append(f"actions: missing or not {steps} long")
    names: list[str] = []
    if "infos" in g:
        g["infos"].visit(lambda n: names.append(n) if isinstance(g["infos"][n], h5py.Dataset) else None)
        for n in names:
            if g["infos"][n].shape[:1] != (steps + 1,):
                errs.append(f"infos/{n}: shape {g['infos'][n].shape}, expected {steps + 1} rows")
    if deep and not errs:
        try:
            if episode_crc32(g) != int(a["crc32"]):
                errs.append("data checksum (crc32) mismatch")
        except (OSError, KeyError, RuntimeError) as e:
            errs.append(f"cannot read chunks ({e})")
        head = ["observations", "actions", "rewards", "terminations", "truncations"]
        for n in head + [f"infos/{x}" for x in names]:
            try:
                g[n][()]
            except (OSError, RuntimeError, ValueError) as e:
                errs.append(f"{n}: cannot decode ({e})")
    return errs


def _check_shard(root: Path, s: dict, frame: tuple, deep: bool, report: Report) -> None:
    name, path = s["file"], root / s["file"]
    episodes = list(s["episodes"])
    span = f"episodes {_ranges(episodes)}"
    if not path.exists():
        tmp = root / (name + TMP_SUFFIX)
        if tmp.exists() and sha256_file(tmp) == s["sha256"]:  # listed, then killed before the rename
            report.notes.append(f"{name}: finished but not yet renamed ({span}; an interrupted "
                                "collection: --resume publishes it)")
        else:
            report.problems.append(Problem(name, None, f"missing (listed in metadata; {span} lost)"))
        return
    digest = sha256_file(path)
    bad_sum = digest != s["sha256"]
    if bad_sum:
        report.problems.append(Problem(name, None, f"sha256 mismatch: metadata {s['sha256'][:12]}…, "
                                                   f"file {digest[:12]}… ({path.stat().st_size} bytes, "
                                                   f"{s['bytes']} expected)"))
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        report.problems.append(Problem(name, None, f"cannot open ({e}); {span} unreadable"))
        for idx in episodes:
            report.problems.append(Problem(name, idx, "unreadable (shard cannot be opened)"))
        return
    found_problem = False
    with f:
        for idx, steps in zip(episodes, s["steps"]):
            try:
                g = f[f"episode_{idx}"]
                errs = _check_episode(g, idx, steps, frame, deep or bad_sum)
            except (KeyError, OSError, RuntimeError, ValueError) as e:
                errs = [f"group unreadable ({e})"]
            for e in errs:
                report.problems.append(Problem(name, idx, e))
                found_problem = True
    if bad_sum and not found_problem:
        report.problems.append(Problem(name, None, "every episode decodes and matches its crc32: the damage "
                                                   "is in file structure or attributes"))
    if not bad_sum and not found_problem:
        report.ok_shards.append(name)


def _ranges(xs: list[int]) -> str:
    xs = sorted(xs)
    out, start = [], None
    for k, x in enumerate(xs):
        if start is None:
            start = x
        if k + 1 == len(xs) or xs[k + 1] != x + 1:
            out.append(str(start) if start == x else f"{start}-{x}")
            start = None
    return ",".join(out)


def verify(path: str | Path, deep: bool = False) -> Report:
    root = Path(path)
    report = Report(str(root))
    try:
        parts = meta_mod.read_parts(root)
    except ValueError as e:
        report.problems.append(Problem(str(root), None, str(e)))
        return report
    if not parts:
        report.problems.append(Problem(str(root), None, "no metadata.json: not a collected dataset"))
        return report
    base = parts[0][1]["settings"]
    for p, m in parts[1:]:
        diff = meta_mod.settings_diff(base, m["settings"])
        if diff:
            report.problems.append(Problem(p.name, None,
                                           f"settings disagree with {parts[0][0].name}: {diff}"))
    frame = (base["height"], base["width"], 3)
    listed, owner = set(), {}
    for _, m in parts:
        for s in m["shards"]:
            if s["file"] in listed:
                continue
            listed.add(s["file"])
            report.shards += 1
            report.episodes += len(s["episodes"])
            for idx in s["episodes"]:
                if idx in owner:
                    report.problems.append(Problem(s["file"], idx, f"also in {owner[idx]}"))
                owner[idx] = s["file"]
            _check_shard(root, s, frame, deep, report)
    for f in sorted(root.glob("shard-*.h5")):
        if f.name not in listed:
            report.problems.append(Problem(f.name, None,
                                           "not listed in any metadata*.json (cannot be verified)"))
    tmp = sorted(root.glob("shard-*.h5.tmp"))
    if tmp:
        report.notes.append(f"{len(tmp)} unfinished temp shard(s) (an interrupted or running collection; "
                            "--resume cleans them up)")
    requested = max(m.get("episodes_requested", 0) for _, m in parts)
    if report.episodes < requested:
        report.notes.append(f"{report.episodes} of {requested} requested episodes present")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=summary(__doc__))
    p.add_argument("dir", help="dataset directory")
    p.add_argument("--deep", action="store_true",
                   help="decode and re-checksum every episode, not only those in shards that fail sha256")
    args = p.parse_args(argv)
    if not Path(args.dir).is_dir():
        p.error(f"{args.dir}: no such directory")
    report = verify(args.dir, deep=args.deep)
    for name in report.ok_shards:
        print(f"ok    {name}")
    for prob in report.problems:
        print(f"FAIL  {prob}")
    for note in report.notes:
        print(f"note  {note}")
    if report.ok:
        print(f"{args.dir}: OK, {report.shards} shards, {report.episodes} episodes verified")
        return 0
    damaged = report.damaged_episodes
    print(f"{args.dir}: DAMAGED: {len(report.problems)} problem(s); damaged episodes: "
          f"{_ranges(damaged) or 'none named'}; {len(report.ok_shards)} of {report.shards} shards intact")
    print("to repair: delete the shard files marked FAIL and rerun the collection's command (the same "
          "settings); it collects exactly the missing episodes again, bit-identical to the lost ones")
    return 1


if __name__ == "__main__":
    sys.exit(main())
