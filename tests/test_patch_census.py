"""worldmodel/recipes/patch_census.py: distinct patches and codebook coverage, on counts known in advance
and on a real scene."""
import importlib.util
from collections import Counter
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "worldmodel" / "recipes" / "patch_census.py"
_spec = importlib.util.spec_from_file_location("patch_census", _PATH)
patch_census = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(patch_census)


def test_coverage_counts_the_most_common_patches_first():
    counts = Counter({b"a": 6, b"b": 3, b"c": 1})
    assert patch_census.coverage(counts, 1) == pytest.approx(0.6)
    assert patch_census.coverage(counts, 2) == pytest.approx(0.9)
    assert patch_census.coverage(counts, 5) == 1.0


def test_census_of_a_scene_counts_every_patch_of_every_frame():
    counts = patch_census.census("WorldGym/BouncingBalls-v0", 4, episodes=1, steps=3, seed=0)
    assert sum(counts.values()) == 4 * 16 * 16  # the first frame and three more, 64², of 4×4 patches
    assert all(len(k) == 4 * 4 * 3 for k in counts)
    assert 1 < len(counts) < 4 * 16 * 16  # a flat background repeats; the balls and walls differ
    again = patch_census.census("WorldGym/BouncingBalls-v0", 4, episodes=1, steps=3, seed=0)
    assert again == counts  # seeded: the same frames
