"""The learning-rate schedule and how ``--minutes`` turns a deadline into a number of steps."""
from __future__ import annotations

import math
import time


def lr_at(step: int, planned: int, peak: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 10% of ``peak`` at ``planned``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, planned - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class DeadlinePlanner:
    """Plans a stage's steps so that its cosine schedule ends at the deadline (at most ``cap`` steps).

    The speed is sampled twice. First over steps 5-15 of this invocation (the first steps pay for
    warm-up), so that the schedule is set early; then over a longer stretch, a tenth of the planned
    remainder (at least 20 steps), and the plan is corrected once. Why twice: a 10-step sample is
    taken while other processes may still be starting. Two CPU tokenizers started together measured
    3.8 s per step where they then ran at 1.45, so 85-minute runs planned 1,346 steps and would have
    finished after 33 minutes. The correction comes early in the cosine, where moving its end changes
    the learning rate little.

    After every step: :meth:`due` (flush the step's scalars first when it is: a sample must time
    finished steps, not queued ones), then :meth:`observe`, and :meth:`adopt` the plan it proposes.
    Under DDP every process samples at the same steps; the caller averages the proposals and adopts
    the mean, from which the second sample's step follows, so that it is the same on every process."""

    WARM, FIRST = 5, 15

    def __init__(self, deadline: float, cap: int, step0: int, clock=time.time):
        self.deadline, self.cap, self.step0, self.clock = deadline, cap, step0, clock
        self.t_warm = self.t_first = None
        self.step_first = self.second_at = None

    def due(self, step: int) -> bool:
        """Whether ``observe(step)`` takes a speed sample."""
        return step - self.step0 in (self.WARM, self.FIRST) or step == self.second_at

    def observe(self, step: int) -> int | None:
        """After step ``step``: a proposed planned step count at the sample points, else None."""
        k, now = step - self.step0, self.clock()
        if k == self.WARM:
            self.t_warm = now
        elif k == self.FIRST:
            self.t_first, self.step_first = now, step
            return self._plan(step, (now - self.t_warm) / (self.FIRST - self.WARM), now)
        elif step == self.second_at:
            self.second_at = None
            return self._plan(step, (now - self.t_first) / (step - self.step_first), now)
        return None

    def adopt(self, step: int, plan: int) -> None:
        """The plan in force after step ``step``; the first one also sets when to sample again."""
        if step == self.step_first and self.second_at is None:
            self.second_at = step + max(20, (plan - step) // 10)

    def _plan(self, step: int, per_step: float, now: float) -> int:
        left = max(0.0, self.deadline - now)
        return max(step, min(self.cap, step + int(left / max(per_step, 1e-9))))
