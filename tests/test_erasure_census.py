"""worldmodel/recipes/erasure_census.py on the shipped BouncingBalls checkpoint: the tokenizer's codes
are stable, and the first pass's odds at changed codes are probabilities of the right codes."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_PATH = ROOT / "worldmodel" / "recipes" / "erasure_census.py"
_spec = importlib.util.spec_from_file_location("erasure_census", _PATH)
erasure_census = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(erasure_census)


@pytest.fixture(scope="module")
def shipped():
    return str(ROOT / "checkpoints" / "bouncing_balls")


def test_census_of_the_shipped_checkpoint(shipped, capsys):
    out = erasure_census.main([shipped, "--episodes", "2", "--thumb-episodes", "2"])
    tok, first = out["tokenizer"], out["first_pass_at_changed_codes"]
    assert tok["same_pixels_same_code"] == 1.0  # a patch-local encoder: same pixels, same code
    assert first["starts"] == 4 and first["changed_codes"] > 0  # two starts per episode
    for key in ("p_real", "p_was_there", "p_background", "argmax_is_background"):
        assert 0.0 <= first[key] <= 1.0, key
    # a trained model: the real code is far likelier than chance (1/512), the argmax near it
    assert first["p_real"] > 0.1 and first["rms_real_to_argmax"] < first["rms_real_to_background"]
    assert '"first_pass_at_changed_codes"' in capsys.readouterr().out
    assert erasure_census.main([shipped, "--episodes", "2", "--thumb-episodes", "2"]) == out  # seeded


def test_bad_counts_are_refused(shipped):
    with pytest.raises(SystemExit):
        erasure_census.main([shipped, "--episodes", "0"])
