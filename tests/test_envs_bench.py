"""``python -m envs.bench``: the figures the README's tables come from are produced end to end."""
import json
import os

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from envs import bench


def test_busy_env_is_a_valid_env():
    check_env(bench.BusyEnv(step_us=10, size=16), skip_render_check=True)


def test_vec_with_ceiling_reports_every_figure(tmp_path):
    out = tmp_path / "vec.json"
    bench.main(["--vec", "--ceiling", "--scenes", "BouncingBalls", "--size", "32", "--seconds", "0.1",
                "--rounds", "1", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["size"] == 32
    row = result["WorldGym/BouncingBalls-v0"]
    assert row["one_process"] > 0 and row["async_x2"] > 0
    assert row["speedup"] == row["async_x2"] / row["one_process"]
    assert row["busy_env_speedup"] > 0
    assert result["busy_1000us"] > 0 and result["busy_3000us"] > 0


def test_scene_names_and_full_ids():
    assert bench.scene_ids("") == list(bench.envs.SCENE_IDS)
    assert bench.scene_ids("WorldGym/TopDown-v0, BouncingBalls,TopDown") == [
        "WorldGym/TopDown-v0", "WorldGym/BouncingBalls-v0"]


@pytest.mark.parametrize("argv, message", [
    (["--scenes", "bouncingballs"], "unknown scene 'bouncingballs'; valid: BouncingBalls, Platformer"),
    (["--scenes", "WorldGym/Nope-v0"], "unknown scene"),
    (["--cpu", str(max(os.sched_getaffinity(0)) + 1)], "is not a core this process may run on"),
    (["--cpu", "-2"], "--cpu must be"),
    (["--rounds", "0"], "--rounds"),
    (["--size", "16"], "--size must be in"),
    (["--vec", "--vec-kwargs", "{bad"], "--vec-kwargs is not JSON"),
    (["--vec-kwargs", '{"context": "fork"}'], "--vec-kwargs only applies with --vec"),
    (["--pin"], "--pin only applies with --vec"),
    (["--ceiling", "--pin"], "--pin and --ceiling only apply with --vec"),
])
def test_bad_arguments_are_usage_errors(argv, message, capsys):
    """argparse errors (exit 2, a one-line reason), not StatisticsError or a raw OSError."""
    with pytest.raises(SystemExit) as exit_:
        bench.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_returns_use_the_frame_size(tmp_path, monkeypatch):
    made = []
    real_make = gym.make
    monkeypatch.setattr(gym, "make", lambda *a, **kw: made.append(kw) or real_make(*a, **kw))
    out = tmp_path / "returns.json"
    bench.main(["--returns", "--scenes", "BouncingBalls", "--size", "32", "--seconds", "0.05",
                "--rounds", "1", "--episodes", "1", "--cpu", "-1", "--json", str(out)])
    assert made and all((kw["width"], kw["height"]) == (32, 32) for kw in made)
    row = json.loads(out.read_text())["WorldGym/BouncingBalls-v0"]
    assert {"steps_per_s", "heuristic_return", "random_return"} <= set(row)


def test_repeated_scenes_add_up(tmp_path):
    out = tmp_path / "two.json"
    bench.main(["--scenes", "BouncingBalls", "--scenes", "TopDown", "--size", "32", "--seconds", "0.05",
                "--rounds", "1", "--cpu", "-1", "--json", str(out)])
    result = json.loads(out.read_text())
    assert set(result) == {"size", "WorldGym/BouncingBalls-v0", "WorldGym/TopDown-v0"}
