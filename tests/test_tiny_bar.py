"""worldmodel/recipes/tiny_bar.py: the 30-minute CPU bar read from evaluate reports: passing and failing
rows, the t ≤ 16 window of persistence, and reports that lack a row they need."""
import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "worldmodel" / "recipes" / "tiny_bar.py"
_spec = importlib.util.spec_from_file_location("tiny_bar", _PATH)
tiny_bar = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_bar)

H = 32


def _row(name, psnr, persistence):
    return {"predictor": name, "curves": {"psnr": [psnr] * H, "persistence": [persistence] * H}}


def _report(tmp_path, *rows, name="report.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"scenes": {"WorldGym/BouncingBalls-v0": {"rows": list(rows)}}}))
    return str(path)


def test_a_model_2_db_above_copy_last_that_keeps_its_objects_passes(tmp_path, capsys):
    path = _report(tmp_path, _row("copy-last", 18.0, 1.0), _row("checkpoint:run@0", 20.5, 0.6))
    assert tiny_bar.main([path]) == 0
    assert "+2.50 / +2.50 / +2.50 dB" in capsys.readouterr().out


def test_each_half_of_the_bar_can_fail_it(tmp_path, capsys):
    erased = _row("checkpoint:run@0", 21.0, 0.0)  # beats copy-last by erasing the balls
    kept = _row("checkpoint:run@1", 18.5, 0.9)  # keeps them, but barely above copy-last
    path = _report(tmp_path, _row("copy-last", 18.0, 1.0), erased, kept)
    assert tiny_bar.main([path]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL") == 2 and "persistence up to t = 16: 0.00" in out


def test_a_dip_in_persistence_before_t_16_fails_and_after_it_does_not(tmp_path):
    row = _row("checkpoint:run@0", 21.0, 0.9)
    row["curves"]["persistence"][15] = 0.4  # t = 16
    assert tiny_bar.main([_report(tmp_path, _row("copy-last", 18.0, 1.0), row)]) == 1
    row["curves"]["persistence"][15], row["curves"]["persistence"][16] = 0.9, 0.4  # t = 17
    assert tiny_bar.main([_report(tmp_path, _row("copy-last", 18.0, 1.0), row)]) == 0


def test_a_report_without_the_rows_it_needs_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="not a readable evaluate report"):
        tiny_bar.main([str(tmp_path / "missing.json")])
    (tmp_path / "cut.json").write_text('{"scenes": ')
    with pytest.raises(SystemExit, match="not a readable evaluate report"):
        tiny_bar.main([str(tmp_path / "cut.json")])
    (tmp_path / "other.json").write_text('{"summary": {}}')
    with pytest.raises(SystemExit, match="not an evaluate report"):
        tiny_bar.main([str(tmp_path / "other.json")])
    with pytest.raises(SystemExit, match="no copy-last row"):
        tiny_bar.main([_report(tmp_path, _row("checkpoint:run@0", 21.0, 0.9))])
    with pytest.raises(SystemExit, match="no checkpoint: row"):
        tiny_bar.main([_report(tmp_path, _row("copy-last", 18.0, 1.0))])
