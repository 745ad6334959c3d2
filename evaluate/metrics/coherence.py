"""Checks and coherence: each check flags one rollout (one dream sample) on one metric.

A rollout is **abnormal** if persistence < 0.95, or any teleport, or any interpenetration, or a final
position error above an object's radius (PhyWorld's human-judged notion, made mechanical);
**coherence = 1 − abnormal rate** over all rollouts of a suite. The other checks are the detectors the
self-test's corruptions are aimed at; ``real`` trips none of them (every metric is exact on it).
A NaN metric (not measurable in that rollout) never trips a check.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    metric: str
    op: str  # "<" or ">": the rollout is flagged when ``metric op threshold``
    threshold: float
    doc: str

    def measured(self, metrics: dict) -> bool:
        v = metrics.get(self.metric, math.nan)
        return not (v is None or (isinstance(v, float) and math.isnan(v)))

    def fires(self, metrics: dict) -> bool:
        if not self.measured(metrics):
            return False
        v = metrics[self.metric]
        return v < self.threshold if self.op == "<" else v > self.threshold


CHECKS: dict[str, Check] = {
    "persistence": Check("persistence", "<", 0.95, "fewer than 95% of real object-frames in the dream"),
    "flicker": Check("flicker", ">", 0.0, "an object vanishes for 1-3 frames and comes back"),
    "teleport": Check("teleports", ">", 0.0, "a step beyond max(1.5 v_max, 2r)"),
    "interpenetration": Check("interpenetration", ">", 0.0, "round objects overlap >5%, or enter walls"),
    "final_position": Check("final_err_exceeds", ">", 0.0, "final position error above the radius"),
    "size": Check("size_excess", ">", 0.2, "size constancy worse than real by > 0.2"),
    "identity": Check("identity_err", ">", 0.1, "> 10% of object-frames closer to another's track"),
    "velocity": Check("vel_rel_max", ">", 0.5, "an object's velocity error > 50% of its speed"),
    "gravity": Check("gravity_err", ">", 0.5, "free-flight |ĝ_dream − ĝ_real| > 0.5 |g|"),
    "background": Check("background", ">", 0.01, "background pixels change by > 1% per step"),
    "counterfactual": Check("cf_fail", ">", 0.0, "opposite actions: cos < 0.5 or gain outside [0.5, 2]"),
}
ABNORMAL = ("persistence", "teleport", "interpenetration", "final_position")


def flags(metrics: dict) -> dict[str, bool]:
    flagged = {name: check.fires(metrics) for name, check in CHECKS.items()}
    flagged["abnormal"] = any(flagged[name] for name in ABNORMAL)
    return flagged


def rates(metrics: list[dict], flagged: list[dict]) -> dict[str, float]:
    """Check → fraction of the rollouts *that measured its metric* flagged (NaN when none did: a check
    never measured has not passed); "abnormal" over all rollouts."""
    out = {}
    for name, check in CHECKS.items():
        seen = [f[name] for m, f in zip(metrics, flagged) if check.measured(m)]
        out[name] = sum(seen) / len(seen) if seen else math.nan
    out["abnormal"] = sum(f["abnormal"] for f in flagged) / len(flagged) if flagged else math.nan
    return out


def coherence(abnormal: list[bool]) -> float:
    return 1.0 - sum(abnormal) / len(abnormal) if abnormal else float("nan")
