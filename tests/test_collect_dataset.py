"""Reading: windows (shapes, alignment with the env, no autoreset), splits, DataLoader workers,
corruption detection, Minari, inspect, video and the benchmark's plumbing."""
import json
import re
import shutil

import h5py
import numpy as np
import pytest
import torch
from collect_helpers import make_dataset

from collect import DatasetError, open_dataset
from collect.compare import compare
from collect.compare import main as compare_main
from collect.verify import main as verify_main
from collect.verify import verify


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    make_dataset(out, episodes=6, max_steps=60, policy="noisy:0.5", seed=11)
    return out


@pytest.fixture(scope="module")
def ds(data_dir):
    return open_dataset(data_dir)


def test_windows_shapes_and_counts(ds):
    w = ds.windows(16, stride=4)
    expected = sum(max((t + 1 - 16) // 4 + 1, 0) for t in ds.steps)
    assert len(w) == expected > 0
    item = w[len(w) - 1]
    assert item["frames"].shape == (16, 64, 64, 3) and item["frames"].dtype == np.uint8
    assert item["actions"].shape == (15,) and item["rewards"].shape == (15,)
    for k in ("terminations", "truncations", "dones"):
        assert item[k].shape == (15,) and item[k].dtype == bool
    n = ds.max_objects
    assert item["state"]["position"].shape == (16, n, 2) and item["state"]["id"].shape == (16, n)
    assert item["state_count"].shape == (16,) and item["contacts"].shape == (16, ds.max_contacts, 2)
    with pytest.raises(IndexError):
        w[len(w)]
    ds.files.max_open = 1  # shards closed behind the window cache's back are reopened
    try:
        for j in np.random.default_rng(1).integers(len(w), size=40):
            np.testing.assert_array_equal(w[int(j)]["frames"], ds.windows(16, stride=4)[int(j)]["frames"])
    finally:
        ds.files.max_open = 64


def test_windows_follow_the_env_and_never_cross_episodes(ds):
    """frames[k + 1] is what the env shows after actions[k], checked by replaying from the seed."""
    w = ds.windows(8, stride=3)
    env = ds.make_env()
    rng = np.random.default_rng(0)
    touched = 0
    for j in [0, len(w) - 1, *rng.integers(len(w), size=4)]:
        item = w[int(j)]
        pos, t = w.locate(int(j))
        ep = ds.episode(pos)
        assert item["episode"] == ep.index and item["start"] == t and t + 8 <= ep.steps + 1
        obs, _ = env.reset(seed=ep.seed, options=ep.options or None)
        for a in ep.actions[:t]:
            obs, *_ = env.step(a)
        np.testing.assert_array_equal(item["frames"][0], obs)
        for k, a in enumerate(item["actions"]):
            obs, r, term, trunc, info = env.step(a)
            np.testing.assert_array_equal(item["frames"][k + 1], obs)
            assert item["rewards"][k] == np.float32(r) and item["dones"][k] == (term or trunc)
            c = item["state_count"][k + 1]
            np.testing.assert_array_equal(item["state"]["position"][k + 1, :c], info["state"]["position"])
            assert (item["state"]["id"][k + 1, c:] == -1).all()
            n = item["contacts_count"][k + 1]
            np.testing.assert_array_equal(item["contacts"][k + 1, :n], np.asarray(info["contacts"]))
            assert (item["contacts"][k + 1, n:] == -2).all()
            touched += n > 0
        # a done can only be the episode's last transition: no autoreset inside a window
        assert not item["dones"][:-1].any()
        assert item["dones"][-1] == (t + 8 == ep.steps + 1)
    assert touched, "no contacts in the windows checked: their alignment went untested"


def test_last_window_reaches_the_final_frame(ds):
    w = ds.windows(4, stride=1)
    pos, t = w.locate(int(w.ends[0]) - 1)
    ep = ds.episode(pos)
    item = w[int(w.ends[0]) - 1]
    np.testing.assert_array_equal(item["frames"][-1], ep.observations[-1])
    assert item["dones"][-1]


def test_split_is_deterministic_disjoint_and_complete(ds):
    train, val = ds.split(val=0.34)
    train2, val2 = ds.split(val=0.34)
    np.testing.assert_array_equal(val.indices, val2.indices)
    assert len(val) == 2 and len(train) == 4
    assert sorted([*train.indices, *val.indices]) == list(ds.indices)
    other = ds.split(val=0.34, seed=1)[1]
    assert len(other) == 2
    tiny_val = ds.split(val=0.01)[1]
    assert len(tiny_val) == 1
    assert len(val.windows(16)) + len(train.windows(16)) == len(ds.windows(16))
    same = ds.episode(ds.position(val.indices[0]))
    np.testing.assert_array_equal(val.episode(0).observations, same.observations)


@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_dataloader_with_worker_processes(ds, context):
    w = ds.windows(16, stride=8)
    ds.episode(0)  # the parent has open handles before the workers start
    order = list(range(0, len(w), 3))
    loader = torch.utils.data.DataLoader(w, batch_size=4, sampler=order, num_workers=2,
                                         multiprocessing_context=context)
    got = [b for b in loader]
    assert got[0]["frames"].shape == (4, 16, 64, 64, 3) and got[0]["frames"].dtype == torch.uint8
    frames = torch.cat([b["frames"] for b in got])
    for k, j in enumerate(order):
        np.testing.assert_array_equal(frames[k].numpy(), w[j]["frames"])
    assert got[0]["state"]["position"].shape[:2] == (4, 16)


def _flip_byte_in_frames(path, index):
    with h5py.File(path, "r") as f:
        off = f[f"episode_{index}/observations"].id.get_chunk_info(1).byte_offset
    b = bytearray(path.read_bytes())
    b[off + 40] ^= 0x10
    path.write_bytes(bytes(b))


def test_corruption_is_detected_and_named(data_dir, tmp_path, capsys):
    d = tmp_path / "damaged"
    shutil.copytree(data_dir, d)
    meta = json.loads((d / "metadata.json").read_text())
    good, flipped, cut = meta["shards"]
    _flip_byte_in_frames(d / flipped["file"], flipped["episodes"][1])
    data = (d / cut["file"]).read_bytes()
    (d / cut["file"]).write_bytes(data[: len(data) // 2])

    report = verify(d)
    assert not report.ok and report.ok_shards == [good["file"]]
    assert flipped["episodes"][1] in report.damaged_episodes
    assert flipped["episodes"][0] not in report.damaged_episodes
    assert set(cut["episodes"]) <= set(report.damaged_episodes)
    assert verify_main([str(d)]) == 1
    out = capsys.readouterr().out
    assert f"{flipped['file']}: episode {flipped['episodes'][1]}" in out
    assert f"{cut['file']}: cannot open" in out

    ds = open_dataset(d)  # the other shards still load
    for idx in good["episodes"] + flipped["episodes"][:1]:
        assert ds.episode(ds.position(idx)).observations.shape[0] > 1
    bad = rf"{flipped['file']}: episode {flipped['episodes'][1]}: observations"
    with pytest.raises(DatasetError, match=bad):
        ds.episode(ds.position(flipped["episodes"][1]))
    with pytest.raises(DatasetError, match=rf"{cut['file']}: cannot open shard"):
        ds.episode(ds.position(cut["episodes"][0]))
    assert verify_main([str(data_dir)]) == 0


def test_minari_loads_the_export(data_dir, ds, tmp_path, monkeypatch):
    minari = pytest.importorskip("minari", reason="minari is not installed (pip install minari)")
    from collect.export_minari import main as export_main

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    assert export_main([str(data_dir), "--dataset-id", "worldgym/test/links-v0"]) == 0
    assert export_main([str(data_dir), "--dataset-id", "worldgym/test/copy-v0", "--copy"]) == 0
    for dataset_id in ("worldgym/test/links-v0", "worldgym/test/copy-v0"):
        m = minari.load_dataset(dataset_id)
        assert m.total_episodes == len(ds) and m.total_steps == int(ds.steps.sum())
        for k, e in enumerate(m.iterate_episodes()):
            ours = ds.episode(k)
            np.testing.assert_array_equal(e.observations, ours.observations)
            np.testing.assert_array_equal(e.actions, ours.actions)
            np.testing.assert_array_equal(e.rewards, ours.rewards)
            np.testing.assert_array_equal(e.terminations, ours.terminations)
            np.testing.assert_array_equal(e.infos["state"]["position"], ours.state["position"])
        assert m.observation_space.shape == (64, 64, 3) and m.action_space.n == 3
        assert m.recover_environment().spec.id == ds.env_id


def test_a_failed_minari_re_export_keeps_the_old_one(data_dir, tmp_path, capsys):
    from collect.export_minari import main as export_main

    root = tmp_path / "minari"
    args = ["--root", str(root), "--dataset-id", "worldgym/test/copy-v0", "--copy"]
    assert export_main([str(data_dir), *args]) == 0
    data = root / "worldgym/test/copy-v0/data"
    before = {f.name: f.read_bytes() for f in data.iterdir()}
    damaged = tmp_path / "damaged"
    shutil.copytree(data_dir, damaged)
    shard = json.loads((damaged / "metadata.json").read_text())["shards"][0]
    cut = (damaged / shard["file"]).read_bytes()
    (damaged / shard["file"]).write_bytes(cut[: len(cut) // 2])
    with pytest.raises(SystemExit) as e:  # once h5py's traceback, after deleting the old export
        export_main([str(damaged), *args, "--overwrite"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"cannot copy episode {shard['episodes'][0]} of {shard['file']}" in err
    assert {f.name: f.read_bytes() for f in data.iterdir()} == before
    assert sorted(p.name for p in data.parent.iterdir()) == ["data"]  # no partial left


def test_inspect_and_video(data_dir, tmp_path, capsys):
    from collect.inspect import main as inspect_main
    from collect.video import main as video_main

    assert inspect_main([str(data_dir), str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 requested" in out and "raw frames" in out and "returns per policy" in out
    mp4 = tmp_path / "eps.mp4"
    assert video_main([str(data_dir), "--episodes", "0,2-3", "--out", str(mp4), "--max-frames", "12"]) == 0
    import imageio.v3 as iio

    frames = iio.imread(mp4)
    assert frames.shape[0] == 12 and frames.shape[1] >= 256


@pytest.mark.parametrize("episodes, message", [
    ("3-1", "--episodes: the range '3-1' is reversed; write 1-3"),
    ("0,a", "--episodes: 'a' is not an episode index or a range like 0-3"),
    ("1-x", "--episodes: '1-x' is not an episode index"),
    (",", "--episodes is empty"),
    ("2,9,7", "episodes 9, 7 are not in "),
    ("9", "episode 9 is not in "),
])
def test_video_names_what_is_wrong_with_episodes(data_dir, tmp_path, capsys, episodes, message):
    from collect.video import main as video_main

    with pytest.raises(SystemExit) as e:
        video_main([str(data_dir), "--episodes", episodes, "--out", str(tmp_path / "v.mp4")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and message in err, err
    if "not in" in message:
        assert err.endswith("which holds episodes 0, 1, 2, 3, 4, 5")
    assert not (tmp_path / "v.mp4").exists()


def test_video_lists_the_episodes_a_dataset_holds():
    from collect.video import _holding

    assert _holding(np.array([0, 1, 4, 5])) == "episodes 0, 1, 4, 5"
    assert _holding(np.array([3])) == "episode 3"
    assert _holding(np.array([], int)) == "no episodes"
    assert _holding(np.arange(100)) == "100 episodes, indices 0…99"
    assert _holding(np.delete(np.arange(20), [3, 7])) == "18 episodes, indices 0…19 except 3, 7"


def test_bench_only_and_scenes_arguments(capsys):
    from collect.bench import SECTIONS, main, scene_list

    with pytest.raises(SystemExit) as e:
        main(["--only", "bogus,loader"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert f"--only: unknown section(s) 'bogus'; choose from {', '.join(SECTIONS)}" in err
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in SECTIONS)
    ids = ["WorldGym/A-v0", "WorldGym/B-v0"]
    assert scene_list(["all"], ids) == ids and scene_list(["none"], ids) == []
    assert scene_list(["WorldGym/B-v0", "WorldGym/C-v0,WorldGym/B-v0"], ids) == ["WorldGym/B-v0",
                                                                                  "WorldGym/C-v0"]
    assert scene_list(["WorldGym/C-v0", "all"], ids) == ["WorldGym/C-v0", *ids]


def test_bench_plumbing(tmp_path):
    from collect.bench import bench_bytes, bench_codecs, bench_overhead

    o = bench_overhead(tmp_path, "WorldGym/BouncingBalls-v0", "random", 2, 20, 1)
    assert o["steps"] > 0 and o["raw_s"] > 0 and o["collect_s"] > 0
    rows = bench_bytes(tmp_path, ["WorldGym/BouncingBalls-v0", "WorldGym/NotAScene-v0"], 2, 20)
    assert 0 < rows[0]["frames_ratio"] < rows[0]["ratio"] < 0.1 and "error" in rows[1]
    codecs = bench_codecs("WorldGym/BouncingBalls-v0", 2, 20, 1, levels=(1, 6))
    assert [c["codec"] for c in codecs] == ["isal.igzip", "zlib"]
    assert all(c["us_per_frame"] > 0 and 0 < c["ratio"] < 0.1 for c in codecs)


def test_compare_tells_the_same_episodes_from_other_ones(tmp_path, capsys):
    """``python -m collect.compare``: 0 for the same episodes stored in other shards or slices; 1
    naming what differs (settings, an episode's attribute or values, episodes on one side only); 2
    for a path that is not a dataset."""
    make_dataset(tmp_path / "a", episodes=3, max_steps=30, shard_episodes=1)
    make_dataset(tmp_path / "b", episodes=4, max_steps=30, shard_episodes=4)  # other shards, one more
    make_dataset(tmp_path / "c", episodes=3, max_steps=30, seed=4)
    assert compare(tmp_path / "a", tmp_path / "b") == ["1 episode(s) only in B: [3]"]
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "a")]) == 0
    assert "the same episodes" in capsys.readouterr().out
    diffs = compare(tmp_path / "a", tmp_path / "c")
    assert diffs[0] == "settings: seed: 3 vs 4"
    assert any(d.startswith("episode 0: attribute 'seed'") for d in diffs)
    assert any(d.startswith("episode 0: observations: ") for d in diffs)
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "c"), "--max", "2"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == diffs[:2] and lines[2:] == [f"… and {len(diffs) - 2} more (--max {len(diffs)} "
                                                     "lists them all)"]
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "c"), "--max", str(len(diffs))]) == 1
    assert capsys.readouterr().out.splitlines() == diffs  # all of them: no "more" line
    # one episode's stored rewards changed in place: named, and nothing else is
    with h5py.File(next((tmp_path / "b").glob("shard-*.h5")), "r+") as f:
        f["episode_1/rewards"][0] += 1.0
    assert compare(tmp_path / "a", tmp_path / "b") == ["1 episode(s) only in B: [3]",
                                                       "episode 1: rewards: the values differ"]
    # a dataset collected in two slices (two metadata parts in one directory) is read whole
    for i in range(2):
        make_dataset(tmp_path / "sliced", episodes=3, max_steps=30, shard_episodes=1, shard=f"{i}/2")
    assert compare(tmp_path / "a", tmp_path / "sliced") == []
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "empty")]) == 2
    assert "not a collected dataset" in capsys.readouterr().err


def test_subset_takes_positions_or_a_boolean_mask(ds):
    mask = np.zeros(len(ds), bool)
    mask[[0, 2]] = True
    np.testing.assert_array_equal(ds.subset(mask).indices, ds.indices[[0, 2]])
    np.testing.assert_array_equal(ds.subset([2, 0]).indices, ds.indices[[2, 0]])
    assert len(ds.subset([])) == 0
    with pytest.raises(ValueError, match="boolean mask must have shape"):
        ds.subset(mask[:-1])
    with pytest.raises(TypeError, match="integers or a boolean mask"):
        ds.subset([0.5])


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("settings"), "'settings' must be an object"),
    (lambda m: m.update(shards=None), "'shards' must be a list"),
    (lambda m: m.update(format_version="1"), "format_version must be an integer"),
    (lambda m: m["shards"][0].pop("steps"), "shards[0].steps must be list"),
    (lambda m: m["shards"][0].update(file="../x.h5"), "is not a shard name"),
])
def test_damaged_metadata_is_a_clear_error_everywhere(data_dir, tmp_path, capsys, edit, message):
    from collect.__main__ import main as collect_main

    bad = tmp_path / "bad"
    shutil.copytree(data_dir, bad)
    meta = json.loads((bad / "metadata.json").read_text())
    edit(meta)
    (bad / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=re.escape(message)):
        open_dataset(bad)
    with pytest.raises(SystemExit) as e:  # the collector refuses instead of collecting over it
        collect_main(["--out", str(bad), "--episodes", "2", "--no-progress", "--workers", "1"])
    assert e.value.code == 2 and message in capsys.readouterr().err


def _val_by_documented_keys(ds, val, seed):
    """What ``split`` documents: the round(val * n) episodes with the smallest
    ``SeedSequence([seed, index])`` keys, by collection index."""
    keys = {int(i): np.random.SeedSequence([seed, int(i)]).generate_state(1, np.uint64)[0]
            for i in ds.indices}
    return sorted(sorted(keys, key=keys.get)[:round(val * len(ds))])


def test_split_follows_the_seed_and_the_collection_index(ds):
    """The val set depends on the split seed, and an episode's side on its collection index, not its
    position: a subset (or a grown dataset) keeps each episode's key, so a dataset that grows
    moves few episodes across the split."""
    vals = set()
    for seed in range(4):
        _, val = ds.split(val=0.5, seed=seed)
        assert sorted(val.indices.tolist()) == _val_by_documented_keys(ds, 0.5, seed)
        vals.add(tuple(val.indices.tolist()))
    assert len(vals) > 1, "every seed gives the same split"
    for positions in ([1, 3, 4, 5], [5, 2, 0]):
        part = ds.subset(positions)
        for seed in range(4):
            val = part.split(val=0.34, seed=seed)[1]
            assert sorted(val.indices.tolist()) == _val_by_documented_keys(part, 0.34, seed)


def test_verify_names_an_episode_whose_chunk_decodes_to_other_data(data_dir, tmp_path, capsys):
    """A chunk replaced by a valid zlib stream of other bytes decodes fine: only the episode's crc32
    tells, and verify names that episode (not just "file structure")."""
    import zlib

    d = tmp_path / "swapped"
    shutil.copytree(data_dir, d)
    shard = json.loads((d / "metadata.json").read_text())["shards"][1]
    victim = shard["episodes"][0]
    with h5py.File(d / shard["file"], "r+") as f:
        obs = f[f"episode_{victim}/observations"]
        mask, chunk = obs.id.read_direct_chunk((0, 0, 0, 0))
        raw = bytearray(zlib.decompress(chunk))
        raw[100] ^= 0xFF
        obs.id.write_direct_chunk((0, 0, 0, 0), zlib.compress(bytes(raw)), mask)
    report = verify(d)
    assert report.damaged_episodes == [victim]
    assert any(p.episode == victim and "crc32" in p.message for p in report.problems)
    assert verify_main([str(d)]) == 1
    assert f"{shard['file']}: episode {victim}: data checksum (crc32) mismatch" in capsys.readouterr().out


def test_verify_flags_unlisted_shards_and_episodes_held_twice(data_dir, tmp_path):
    first = json.loads((data_dir / "metadata.json").read_text())["shards"][0]
    stray = tmp_path / "stray"
    shutil.copytree(data_dir, stray)
    shutil.copy(stray / first["file"], stray / "shard-00000099.h5")
    report = verify(stray)
    assert [(p.file, p.episode) for p in report.problems] == [("shard-00000099.h5", None)]
    assert "not listed" in report.problems[0].message

    twice = tmp_path / "twice"  # an intact copy of a shard, listed too: its episodes are held twice
    shutil.copytree(data_dir, twice)
    shutil.copy(twice / first["file"], twice / "shard-00000099.h5")
    meta = json.loads((twice / "metadata.json").read_text())
    meta["shards"].append({**first, "file": "shard-00000099.h5"})
    (twice / "metadata.json").write_text(json.dumps(meta))
    report = verify(twice)
    assert sorted(report.damaged_episodes) == sorted(first["episodes"])
    assert all("also in" in p.message and first["file"] in p.message for p in report.problems)


def test_slices_with_different_settings_are_refused_together(tmp_path):
    """Two slices collected apart with other seeds, then copied into one directory: the reader
    refuses the mix, and verify reports it."""
    merged = tmp_path / "merged"
    for i, seed in enumerate((3, 4)):
        make_dataset(tmp_path / f"part{i}", episodes=2, max_steps=20, shard_episodes=1, shard=f"{i}/2",
                     seed=seed)
        shutil.copytree(tmp_path / f"part{i}", merged, dirs_exist_ok=True)
    with pytest.raises(DatasetError, match=r"disagree on settings: .*seed: 3 vs 4"):
        open_dataset(merged)
    report = verify(merged)
    assert [p.file for p in report.problems] == ["metadata-1of2.json"]
    assert "settings disagree" in report.problems[0].message and "seed: 3 vs 4" in report.problems[0].message


def test_video_grid_frames_follow_the_episode(ds):
    """Grid frame t shows each episode's observation t (scaled up; the label only covers the top-left
    corner), and a finished episode holds its last frame, dimmed."""
    from collect.video import GUTTER, Grid

    obs = ds.episode(0).observations
    grid = Grid([(0, obs), (1, obs[:3])], scale=2)
    assert grid.length == len(obs)
    assert not np.array_equal(obs[0][8:], obs[5][8:])
    for t in (0, 5):
        frame = grid.frame(t)
        tile = frame[GUTTER:GUTTER + grid.th, GUTTER:GUTTER + grid.tw]
        np.testing.assert_array_equal(tile[16:], obs[t].repeat(2, 0).repeat(2, 1)[16:])
    x = GUTTER + grid.tw + GUTTER
    held = grid.frame(5)[GUTTER:GUTTER + grid.th, x:x + grid.tw]
    np.testing.assert_array_equal(held[16:], (obs[2] // 2).repeat(2, 0).repeat(2, 1)[16:])
