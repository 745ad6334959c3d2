"""worldmodel/recipes/placement_census.py on the reference predictors, whose answers are known:
copy-last leaves every object behind by its whole real displacement; real-perturbed moves them as far
as the real scene, within a pixel."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_PATH = ROOT / "worldmodel" / "recipes" / "placement_census.py"
_spec = importlib.util.spec_from_file_location("placement_census", _PATH)
placement_census = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(placement_census)


def test_copy_last_is_behind_by_the_whole_way_and_real_perturbed_is_not(capsys):
    copy = placement_census.main(["copy-last", "--episodes", "3", "--horizon", "9"])
    assert set(copy) == {1, 3, 5, 9}
    for row in copy.values():
        assert row["objects"] > 0 and row["moved_ratio"] == 0.0 and row["across"] == pytest.approx(0.0)
        assert row["along"] == pytest.approx(-row["distance"])
    assert copy[9]["distance"] > copy[1]["distance"] > 0.5  # balls move: the error grows with t
    real = placement_census.main(["real-perturbed", "--episodes", "3", "--horizon", "9"])
    for row in real.values():
        assert row["distance"] < 1.0 and abs(row["along"]) < 0.5
        assert row["moved_ratio"] == pytest.approx(1.0, abs=0.1)
    assert '"moved_ratio"' in capsys.readouterr().out


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        placement_census.main(["copy-last", "--episodes", "0"])
    with pytest.raises(SystemExit):
        placement_census.main(["no-such-predictor", "--episodes", "1"])
    shipped = ROOT / "checkpoints" / "bouncing_balls"
    with pytest.raises(SystemExit):  # the checkpoint dreams BouncingBalls, not TopDown
        placement_census.main([f"checkpoint:{shipped}@0", "--env", "WorldGym/TopDown-v0", "--episodes", "1"])
