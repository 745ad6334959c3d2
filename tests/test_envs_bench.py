"""``python -m envs.bench``: the figures the README's tables come from are produced end to end."""
import json

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
