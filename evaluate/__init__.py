"""Physics-consistency evaluators: judge predicted frames against the real scene, object by object.

    import evaluate
    result = evaluate.run_suite("WorldGym/BouncingBalls-v0", "copy-last", episodes=8, horizon=32)
    result.summary["coherence"], result.curves["psnr"]

    python -m evaluate --env WorldGym/BouncingBalls-v0 --predictor copy-last --out reports/bb
    python -m evaluate.selftest          # corruption × check detection table

Pieces: ``rollouts`` (paired real episodes), ``predictors`` (the ``Predictor`` interface and the
real / real-perturbed / copy-last rows), ``parser`` (pixels → objects by colour), ``metrics`` (one
module per family, definitions in their docstrings), ``corrupt`` (the self-test's corruptions),
``suite`` (``run_suite`` → ``EvalResult``), ``report`` (JSON + HTML), ``schema`` (report.json schema).
"""
from evaluate.predictors import Predictor, make_predictor, register_predictor
from evaluate.rollouts import Episode
from evaluate.suite import EvalResult, run_suite

__all__ = ["run_suite", "EvalResult", "Predictor", "make_predictor", "register_predictor", "Episode"]
