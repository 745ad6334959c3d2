"""The schema of ``report.json`` (a JSON-Schema subset) and a small validator for it.

    {"schema_version": 1, "created": ISO time, "command": str,
     "scenes": {ENV_ID: {"rows": [ROW, …], "plots": [png, …], "videos": {predictor: mp4}, "error": str|null}}}

ROW is one ``EvalResult.to_json()``: env_id, predictor, config (the run's arguments), summary
(metric → number or null; names in ``METRICS``), curves (psnr, ssim, pos_err, persistence: one value
per future step), checks (check → fraction of the rollouts that measured it flagged; null when none
did), floors (parser and detector errors on real frames), episodes (seed, error or null, metrics,
flags), wall_time_s. NaN is written as null.
Every scene's rows start with the reference rows ``real``, ``real-perturbed``, ``copy-last``.
"""
from __future__ import annotations

from evaluate.metrics.coherence import CHECKS

SCHEMA_VERSION = 1

#: Summary metrics, one line each (the module docstrings in evaluate/metrics give exact definitions).
METRICS = {
    "psnr@t": "PSNR (dB) of future frame t; identical frames 100 dB",
    "ssim@t": "SSIM of future frame t (Gaussian σ=1.5, K1=0.01, K2=0.03, data range 1)",
    "persistence": "real object-frames also present (area ≥ ½ A_ref) in the dream",
    "flicker": "absent-for-1–3-frames-then-back events per 100 real object-frames",
    "count_acc": "future frames where the dream shows as many objects as the real",
    "spurious": "extra object-coloured blobs per frame, beyond the real's",
    "size_constancy": "(max r − min r)/r₀ of the equivalent radius in the dream",
    "size_excess": "largest dream − real size constancy over objects",
    "teleports": "dream steps longer than max(1.5 v_max, 2r) per rollout",
    "teleport_rate": "teleports per dream object-step",
    "identity_err": "object-frames the dream-to-real Hungarian matching reassigns",
    "pos_err": "mean ‖p̂ − p‖ (px) over object-frames present in both",
    "pos_err_frac": "pos_err as a fraction of the frame width",
    "within_1px": "real object-frames the dream shows within 1 px (absent = miss)",
    "final_err_exceeds": "rollouts whose final position error exceeds an object's radius",
    "vel_err": "mean ‖v̂ − v‖ (px/step)",
    "vel_rel_max": "largest per-object Σ‖v̂ − v‖ / Σ‖v‖ (objects ≥ 0.5 px/step)",
    "speed_gain": "free flight Σ v̂·v / Σ ‖v‖²: < 1 = the dream slows objects down between contacts",
    "angle_err": "mean orientation error of elongated objects (rad, mod π)",
    "gravity_err": "free flight |ĝ_dream − ĝ_real| / |g|",
    "gravity_err_true": "free flight |ĝ_dream − g| / |g| (on real: the fit floor)",
    "gravity_abs_err": "free flight |ĝ_dream − ĝ_real| (px/step²)",
    "collision_precision": "dream collision events with a real one within ±2 frames",
    "collision_recall": "real collision events with a dream one within ±2 frames",
    "interpenetration": "future frames with overlapping round objects or an object in a wall",
    "outcome_acc": "agreement on 'object still in view at the end' (pooled)",
    "outcome_kappa": "Cohen's κ of the same",
    "background": "mean |ô_t − ô_{t−1}| on never-moving background pixels",
    "coherence": "1 − abnormal rate (persistence < 0.95, teleport, interpenetration, final error > r)",
    "delta_psnr@t": "ΔtPSNR: PSNR with the true − with random actions at t",
    "cf_cos": "cosine of dream vs real displacement under opposite actions",
    "cf_gain": "‖Δp_dream‖ / ‖Δp_real‖ under opposite actions",
    "div_ratio": "spread of final positions (1 context frame) / real-redrawn's, pooled over episodes",
    "div_dissimilarity": "mean pairwise 1 − SSIM of the samples' final frames",
    "div_best_over_mean": "best-of-K / mean-of-K final position error",
}

_NUM = {"type": ["number", "null"]}
_EPISODE = {
    "type": "object",
    "required": ["seed", "error"],
    "properties": {
        "seed": {"type": "integer"},
        "error": {"type": ["string", "null"]},
        "traceback": {"type": ["string", "null"]},
        "terminated_at": {"type": ["integer", "null"]},
        "metrics": {"type": "object", "additionalProperties": _NUM},
        "flags": {"type": "object", "additionalProperties": _NUM},
    },
}
ROW_SCHEMA = {
    "type": "object",
    "required": ["env_id", "predictor", "config", "summary", "curves", "checks", "floors", "episodes",
                 "wall_time_s"],
    "properties": {
        "env_id": {"type": "string"},
        "predictor": {"type": "string"},
        "config": {"type": "object", "required": ["episodes", "horizon", "context", "samples", "policy",
                                                  "seed", "options", "width", "height"]},
        "summary": {"type": "object", "required": ["coherence", "episodes_ok", "episodes_failed"],
                    "additionalProperties": _NUM},
        "curves": {"type": "object", "required": ["psnr", "ssim", "pos_err", "persistence"],
                   "additionalProperties": {"type": "array", "items": _NUM}},
        "checks": {"type": "object", "required": [*CHECKS, "abnormal"], "additionalProperties": _NUM},
        "floors": {"type": "object", "additionalProperties": _NUM},
        "episodes": {"type": "array", "minItems": 1, "items": _EPISODE},
        "wall_time_s": {"type": "number"},
    },
}
REPORT_SCHEMA = {
    "type": "object",
    "required": ["schema_version", "created", "command", "scenes"],
    "properties": {
        "schema_version": {"enum": [SCHEMA_VERSION]},
        "created": {"type": "string"},
        "command": {"type": "string"},
        "scenes": {"type": "object", "additionalProperties": {
            "type": "object",
            "required": ["rows", "plots", "videos", "error"],
            "properties": {
                "rows": {"type": "array", "items": ROW_SCHEMA},
                "plots": {"type": "array", "items": {"type": "string"}},
                "videos": {"type": "object", "additionalProperties": {"type": "string"}},
                "error": {"type": ["string", "null"]},
            },
        }},
    },
}

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def validate(instance, schema: dict = REPORT_SCHEMA, path: str = "$") -> None:
    """Raises ``ValueError`` naming the first place where ``instance`` breaks ``schema``."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(instance, k) for k in kinds):
            raise ValueError(f"{path}: expected {' or '.join(kinds)}, got {type(instance).__name__}")
    if "enum" in schema and instance not in schema["enum"]:
        raise ValueError(f"{path}: {instance!r} is not one of {schema['enum']}")
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                raise ValueError(f"{path}: missing required key {key!r}")
        props, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in props:
                validate(value, props[key], f"{path}.{key}")
            elif extra is False:
                raise ValueError(f"{path}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                validate(value, extra, f"{path}.{key}")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            raise ValueError(f"{path}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, value in enumerate(instance):
                validate(value, schema["items"], f"{path}[{i}]")
