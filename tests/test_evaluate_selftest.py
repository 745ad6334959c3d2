"""The judge's own tests: each corruption trips the check meant for it; `real` trips none."""
import numpy as np
import pytest

from evaluate.corrupt import CORRUPTIONS, INTENDED, apply
from evaluate.rollouts import Episode, run
from evaluate.selftest import detection_table, format_table

BB = "WorldGym/BouncingBalls-v0"


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruptions_are_pure_and_seeded(name):
    ro = run(Episode(BB, 3), 20)
    frames, states = ro.frames[3:], ro.states[3:]
    before = frames.copy()
    out, info = apply(name, frames, states, seed=3)
    again, _ = apply(name, frames, states, seed=3)
    assert np.array_equal(frames, before)  # input untouched
    assert np.array_equal(out, again)  # seeded
    assert np.array_equal(out[0], frames[0])  # the context frame is never corrupted
    assert info is None or not np.array_equal(out, frames)


def _assert_detects(table, minimum):
    print("\n" + format_table(table))
    assert all(v == 0.0 for v in table["real"]["checks"].values()), table["real"]
    for name, check in INTENDED.items():
        row = table[name]
        assert row["applied"] >= 1, f"{name} found nothing to corrupt"
        assert row["checks"][check] >= minimum, (name, check, row)


def test_detection_table_quick():
    _assert_detects(detection_table(BB, episodes=3, horizon=24), minimum=1.0)


@pytest.mark.slow
def test_detection_table_full():
    _assert_detects(detection_table(BB, episodes=16, horizon=32), minimum=0.9)


def test_selftest_exit_status_says_whether_a_scene_failed(capsys):
    from evaluate.selftest import main

    assert main(["--env", "WorldGym/Nope-v0", "--episodes", "1", "--horizon", "4"]) == 2
    assert "FAILED" in capsys.readouterr().out
