"""The collector as a whole: determinism, kill -9 + resume, slices, directory safety, CLI errors."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from collect_helpers import ENV, cli_env, kill_after_shards, make_dataset

import envs
from collect import open_dataset
from collect.__main__ import main as collect_main
from collect.compare import compare
from collect.verify import verify

ROOT = Path(__file__).resolve().parents[1]


def shard_entries(out, with_sha: bool = False):
    """Each shard's (file, episodes, steps[, sha256]) as the metadata lists it."""
    meta = json.loads((Path(out) / "metadata.json").read_text())
    return [(s["file"], s["episodes"], s["steps"], *([s["sha256"]] if with_sha else []))
            for s in meta["shards"]]


def test_dataset_is_identical_across_runs_and_worker_counts(tmp_path):
    """The same shards, holding the same episodes, whether one process or two worker processes wrote
    them and whether compression ran inline or in shard writer helper processes: every array and
    attribute a reader sees (``collect.compare``), at the default igzip level."""
    assert make_dataset(tmp_path / "a", workers=1, deflate="inline").deflate == "inline"
    assert make_dataset(tmp_path / "b", workers=1, deflate="process").deflate == "process"
    make_dataset(tmp_path / "c", workers=2)
    assert make_dataset(tmp_path / "d", workers=2, deflate="process").deflate == "process"
    a = shard_entries(tmp_path / "a")
    assert len(a) == 3 and all(shard_entries(tmp_path / x) == a for x in "bcd")
    for x in "bcd":
        assert compare(tmp_path / "a", tmp_path / x) == [], f"run {x!r} stored other episodes than run 'a'"


def test_zlib_shards_are_byte_identical_across_worker_counts(tmp_path):
    """At a zlib level (4-9) the files themselves are byte-identical, and so are their sha256 in
    the metadata: the writer adds no timestamps and lays out the same objects in the same order,
    whichever process wrote them."""
    make_dataset(tmp_path / "a", workers=1, deflate="inline", level=4)
    make_dataset(tmp_path / "b", workers=2, deflate="process", level=4)
    a, b = (shard_entries(tmp_path / x, with_sha=True) for x in "ab")
    assert a == b and len(a) == 3
    for f, *_ in a:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_shard_groups_cover_everything_and_shrink_towards_the_end():
    from collect.runner import shard_groups

    for n, cap in [(1000, 64), (300, 64), (150, 64), (9, 64), (6, 64), (30, 2), (7, 1)]:
        groups = shard_groups(list(range(n)), cap)
        assert [i for g in groups for i in g] == list(range(n))  # in order, each once
        sizes = [len(g) for g in groups]
        assert max(sizes) <= cap and sizes == sorted(sizes, reverse=True)
    sizes = [len(g) for g in shard_groups(list(range(1000)), 64)]
    assert sizes[0] == 63 and sizes[-2:] == [5, 4]  # a short last pair, not one long last group


def test_every_level_stores_the_same_arrays(tmp_path):
    """igzip (levels 1-3, the default 1) and zlib (4-9) both write what HDF5's gzip filter reads:
    the stored episodes are equal, the metadata names the codec, and level 1 is not larger than
    zlib's level 4 by more than half (it is usually smaller than zlib's 1-3)."""
    fast, slow = make_dataset(tmp_path / "igzip", level=1), make_dataset(tmp_path / "zlib", level=4)
    a, b = open_dataset(tmp_path / "igzip"), open_dataset(tmp_path / "zlib")
    for i in range(len(a)):
        ea, eb = a.episode(i), b.episode(i)
        np.testing.assert_array_equal(ea.observations, eb.observations)
        np.testing.assert_array_equal(ea.state, eb.state)
        np.testing.assert_array_equal(ea.rewards, eb.rewards)
    assert a.metadata["storage"]["codec"] == "isal.igzip" and b.metadata["storage"]["codec"] == "zlib"
    assert fast.bytes < 1.5 * slow.bytes


def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "collect", "--env", ENV, "--out", str(out), "--episodes", "30",
           "--max-steps", "200", "--policy", "heuristic", "--workers", "2", "--shard-episodes", "1",
           "--seed", "5", "--no-progress"]
    kill_after_shards(cmd, out)  # workers notice (lifeline pipe) at the end of their current episode

    # what is visible after the kill: only complete, checksummed shards
    report = verify(out, deep=True)
    assert report.ok, [str(p) for p in report.problems]
    partial = open_dataset(out)
    assert 3 <= len(partial) < 30

    done = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    ds = open_dataset(out)
    np.testing.assert_array_equal(ds.indices, np.arange(30))
    assert verify(out, deep=True).ok
    assert not list(out.glob("*.tmp"))
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["complete"] and meta["counts"]["episodes"] == 30
    listed = [i for s in meta["shards"] for i in s["episodes"]]
    assert sorted(listed) == list(range(30))

    # episodes from before and after the kill are exactly what a clean run makes
    ref = tmp_path / "ref"
    make_dataset(ref, episodes=30, max_steps=200, policy="heuristic", seed=5, shard_episodes=30)
    ref_ds = open_dataset(ref)
    for i in (0, int(partial.indices[-1]) + 1, 29):
        a, b = ds.episode(i), ref_ds.episode(i)
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.state, b.state)


def test_resume_extends_and_rerun_with_same_settings_continues(tmp_path):
    out = tmp_path / "grow"
    s = make_dataset(out, episodes=3)
    assert s.complete and s.collected == 3
    # killed between listing a shard in metadata.json and renaming it: verify notes it, resume publishes it
    last = sorted(out.glob("shard-*.h5"))[-1]
    last.rename(last.with_name(last.name + ".tmp"))
    report = verify(out)
    assert report.ok and any("not yet renamed" in n for n in report.notes)
    s = make_dataset(out, episodes=3, resume=True)
    assert s.collected == 0 and s.complete and last.exists()
    s = make_dataset(out, episodes=5, resume=True)
    assert s.collected == 2 and s.present == 5
    s = make_dataset(out, episodes=5)  # same settings, no flag: nothing left to do
    assert s.collected == 0 and s.complete
    np.testing.assert_array_equal(open_dataset(out).indices, np.arange(5))


def test_slices_merge_by_directory(tmp_path):
    full = tmp_path / "full"
    make_dataset(full, episodes=5)
    merged = tmp_path / "merged"
    for i in range(2):
        part = tmp_path / f"part{i}"
        s = make_dataset(part, episodes=5, shard=f"{i}/2")
        assert s.target == (3 if i == 0 else 2) and s.complete
        shutil.copytree(part, merged, dirs_exist_ok=True)
    same_dir = tmp_path / "same"
    for i in range(2):
        make_dataset(same_dir, episodes=5, shard=f"{i}/2")
    a, b, c = open_dataset(full), open_dataset(merged), open_dataset(same_dir)
    assert sorted(b.metadata["parts"]) == ["metadata-0of2.json", "metadata-1of2.json"]
    for ds in (b, c):
        np.testing.assert_array_equal(ds.indices, np.arange(5))
        for i in range(5):
            np.testing.assert_array_equal(ds.episode(i).observations, a.episode(i).observations)
    assert verify(merged).ok and verify(same_dir).ok


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as e:
        collect_main(argv)
    err = capsys.readouterr().err
    return e.value.code, err


@pytest.mark.parametrize("argv, message", [
    (["--env", "WorldGym/Nope-v0"], "unknown env id 'WorldGym/Nope-v0'; registered ids: "),
    (["--policy", "greedy"], "unknown policy 'greedy'; policies: random, heuristic, noisy:EPS, sb3:PATH.zip"),
    (["--policy", "noisy:3"], "EPS must be a number in [0, 1]"),
    (["--shard", "2/2"], "--shard I/N needs 0 <= I < N"),
    (["--options", "{bad"], "--options is not valid JSON"),
    (["--options", '{"gravty": 1}'], "unknown option(s) ['gravty']"),
    (["--size", "8"], "width must be an integer in [32, 512]"),
    (["--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
    (["--deflate", "gpu"], "--deflate must be auto, process or inline"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--workers", "-3"], "--workers must be >= 0"),
    (["--width", "0"], "--width must be >= 1 pixel, got 0"),
    (["--shard-mb", "0"], "--shard-mb must be > 0"),
])
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys, argv, message):
    code, err = run_cli(["--out", str(tmp_path / "x"), "--episodes", "1", "--no-progress", *argv], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m collect: error: "), err
    assert message in lines[0]
    if "registered ids" in message:
        assert all(i in lines[0] for i in envs.SCENE_IDS)


def test_continuous_records_box_actions_that_replay_exactly(tmp_path):
    make_dataset(tmp_path / "box", episodes=2, max_steps=15, continuous=True)
    ds = open_dataset(tmp_path / "box")
    assert ds.settings["continuous"] is True
    env = ds.make_env()
    assert env.action_space.shape == (1,)
    e = ds.episode(0)
    assert e.actions.dtype == np.float32 and e.actions.shape == (len(e.actions), 1)
    obs, _ = env.reset(seed=e.seed, options=ds.settings["options"] or None)
    for a, want in zip(e.actions, e.observations[1:]):
        obs = env.step(a)[0]
        np.testing.assert_array_equal(obs, want)


def test_cli_refuses_a_directory_made_with_other_settings(tmp_path, capsys):
    out = tmp_path / "d"
    make_dataset(out, episodes=2)
    code, err = run_cli(["--out", str(out), "--episodes", "2", "--seed", "9", "--policy", "random",
                         "--max-steps", "100", "--workers", "1", "--no-progress"], capsys)
    assert code == 2 and "different settings" in err and "seed: 9 vs 3" in err and "--overwrite" in err
    # the policy decides the episodes too: random's directory does not take heuristic episodes
    code, err = run_cli(["--out", str(out), "--episodes", "2", "--seed", "3", "--policy", "heuristic",
                         "--max-steps", "100", "--workers", "1", "--no-progress"], capsys)
    assert code == 2 and "different settings" in err and "policy: 'heuristic' vs 'random'" in err
    code, err = run_cli(["--out", str(out), "--episodes", "2", "--seed", "9", "--resume", "--no-progress"],
                        capsys)
    assert code == 2 and "different settings" in err
    # and the action mode: Discrete episodes do not continue as Box ones
    code, err = run_cli(["--out", str(out), "--episodes", "2", "--seed", "3", "--max-steps", "100",
                         "--continuous", "--workers", "1", "--no-progress"], capsys)
    assert code == 2 and "different settings" in err and "continuous" in err
    assert "continuous" not in open_dataset(out).settings  # what datasets made before the flag hold
    assert collect_main(["--out", str(out), "--episodes", "2", "--seed", "9", "--max-steps", "100",
                         "--overwrite", "--workers", "1", "--no-progress"]) == 0
    assert open_dataset(out).settings["seed"] == 9
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, err = run_cli(["--out", str(foreign), "--episodes", "1", "--no-progress"], capsys)
    assert code == 2 and "not empty and holds no collect dataset" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]  # a refused run leaves nothing


def test_fewer_episodes_than_the_dataset_holds_is_refused(tmp_path, capsys):
    """Rerunning a dataset of 6 episodes with --episodes 4 would call it complete and keep all 6:
    refused (plain and --resume alike) before anything changes; --overwrite collects the 4 anew, and
    more episodes than it holds still extend it."""
    from collect.config import CollectError

    out = tmp_path / "d"
    make_dataset(out, episodes=6)
    before = (out / "metadata.json").read_text()
    code, err = run_cli(["--out", str(out), "--episodes", "4", "--seed", "3", "--max-steps", "100",
                         "--workers", "1", "--no-progress"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "already holds 6 episodes (indices up to 5), more than --episodes 4" in err
    assert "pass --episodes >= 6 to keep them or --overwrite" in err
    with pytest.raises(CollectError, match="already holds 6 episodes"):
        make_dataset(out, episodes=4, resume=True)
    assert (out / "metadata.json").read_text() == before
    s = make_dataset(out, episodes=4, overwrite=True)
    assert s.complete and s.present == 4
    np.testing.assert_array_equal(open_dataset(out).indices, np.arange(4))
    assert json.loads((out / "metadata.json").read_text())["episodes_requested"] == 4
    s = make_dataset(out, episodes=6)
    assert s.collected == 2 and s.complete


def test_overwrite_on_one_slice_keeps_its_siblings(tmp_path):
    out = tmp_path / "shared"
    for i in range(2):
        make_dataset(out, episodes=6, shard=f"{i}/2")
    s = make_dataset(out, episodes=6, shard="1/2", overwrite=True)
    assert s.collected == 3 and s.complete
    np.testing.assert_array_equal(open_dataset(out).indices, np.arange(6))  # slice 0's work survived
    s = make_dataset(out, episodes=6, shard="1/2", overwrite=True, seed=4)  # other settings: all replaced
    assert sorted(p.name for p in out.glob("metadata*.json")) == ["metadata-1of2.json"]
    np.testing.assert_array_equal(open_dataset(out).indices, [1, 3, 5])


def test_overwrite_of_a_whole_run_replaces_every_slice(tmp_path):
    """Slices are siblings only of slices: a whole run's --overwrite (once "0 collected, complete",
    keeping the slices' old episodes) collects everything anew, and so does a slice over a whole run."""
    out = tmp_path / "sliced"
    for i in range(2):
        make_dataset(out, episodes=6, shard=f"{i}/2")
    s = make_dataset(out, episodes=6, overwrite=True)
    assert s.collected == 6 and s.complete
    assert sorted(p.name for p in out.glob("metadata*.json")) == ["metadata.json"]
    s = make_dataset(out, episodes=6, shard="0/2", overwrite=True)
    assert s.collected == 3 and sorted(p.name for p in out.glob("metadata*.json")) == ["metadata-0of2.json"]
    np.testing.assert_array_equal(open_dataset(out).indices, [0, 2, 4])


def test_a_truncated_shard_is_collected_again(tmp_path, capsys):
    out, ref = tmp_path / "cut", tmp_path / "ref"
    make_dataset(out, episodes=4)
    make_dataset(ref, episodes=4)
    victim = sorted(out.glob("shard-*.h5"))[-1]
    with open(victim, "r+b") as f:
        f.truncate(1000)
    assert not verify(out).ok
    s = make_dataset(out, episodes=4)
    assert s.collected == 2 and s.complete and "collecting its episodes again" in capsys.readouterr().err
    assert verify(out).ok and compare(out, ref) == []


def test_a_second_collector_on_the_same_slice_is_refused(tmp_path, capsys):
    import fcntl

    out = tmp_path / "busy"
    make_dataset(out, episodes=2)
    fd = os.open(out / ".lock-0of1", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what a running collector (or its last orphaned worker) holds
    try:
        code, err = run_cli(["--out", str(out), "--episodes", "3", "--seed", "3", "--max-steps", "100",
                             "--workers", "1", "--no-progress"], capsys)
        assert code == 2 and "another collector" in err
    finally:
        os.close(fd)
    assert make_dataset(out, episodes=3).present == 3


def test_cli_help_and_subprocess_error_has_no_traceback(capsys):
    with pytest.raises(SystemExit) as e:
        collect_main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for flag in ("--env", "--episodes", "--policy", "--workers", "--seed", "--size", "--max-steps",
                 "--options", "--shard", "--resume", "--overwrite"):
        assert flag in out
    r = subprocess.run([sys.executable, "-m", "collect", "--out", "/tmp/never", "--env", "Bad-v9"], cwd=ROOT,
                       env=cli_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]


def test_each_shard_records_how_it_was_stored(tmp_path):
    out = tmp_path / "mixed"
    make_dataset(out, episodes=2)
    make_dataset(out, episodes=4, chunk_frames=4, level=5)  # continued with other storage settings
    meta = json.loads((out / "metadata.json").read_text())
    stored = [(s["episodes"], s["storage"]["chunk_frames"], s["storage"]["level"]) for s in meta["shards"]]
    assert stored == [([0, 1], 16, 1), ([2, 3], 4, 5)]
    assert meta["storage"]["level"] == 5  # the header: the latest run's
    assert verify(out).ok


def test_a_rerun_deletes_its_own_stale_temp_shards_only(tmp_path):
    """A killed run leaves ``shard-*.h5.tmp`` files; the next run on that slice deletes its own
    (episode index % N == I) and leaves another slice's, which may still be writing them."""
    out = tmp_path / "sliced"
    make_dataset(out, episodes=4, shard="0/2")
    mine, theirs = out / "shard-00000004.h5.tmp", out / "shard-00000005.h5.tmp"
    for p in (mine, theirs):
        p.write_bytes(b"half a shard")
    s = make_dataset(out, episodes=4, shard="0/2")
    assert s.collected == 0 and s.complete
    assert not mine.exists() and theirs.read_bytes() == b"half a shard"
    mine = out / "shard-00000008.h5.tmp"
    mine.write_bytes(b"half a shard")
    s = make_dataset(out, episodes=6, shard="0/2", resume=True)  # a resume cleans up the same way
    assert s.collected == 1 and not mine.exists() and theirs.exists()
