"""``--minutes``: the deadline planner, with a fake clock."""
import pytest

from worldmodel.schedule import DeadlinePlanner, lr_at


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def run(planner: DeadlinePlanner, clock: Clock, seconds_per_step, until: int) -> list[tuple[int, int]]:
    """Steps 1..until, each taking seconds_per_step(step); returns the (step, plan) of every new plan."""
    plans = []
    for step in range(1, until + 1):
        clock.t += seconds_per_step(step)
        plan = planner.observe(step)
        if plan is not None:
            planner.adopt(step, plan)
            plans.append((step, plan))
    return plans


def test_a_slow_first_sample_is_corrected_once():
    """Slow first steps (another process starting) plan too few steps; the second sample fixes it."""
    clock = Clock()
    planner = DeadlinePlanner(deadline=5100.0, cap=100_000, step0=0, clock=clock)
    plans = run(planner, clock, lambda s: 3.8 if s <= 15 else 1.45, until=400)
    (first_at, first), (second_at, second) = plans
    assert first_at == 15 and first == pytest.approx(15 + (5100 - 15 * 3.8) / 3.8, abs=1)
    assert second_at == 15 + (first - 15) // 10
    left = 5100 - 15 * 3.8 - (second_at - 15) * 1.45
    assert second == pytest.approx(second_at + left / 1.45, abs=1)
    assert second > 2.5 * first  # the 85-minute run: 1,346 planned steps -> about 3,500


def test_plans_respect_the_cap_and_a_passed_deadline():
    clock = Clock()
    plans = run(DeadlinePlanner(deadline=1e6, cap=500, step0=0, clock=clock), clock, lambda s: 1.0, until=200)
    assert [p for _, p in plans] == [500, 500]
    clock = Clock()
    plans = run(DeadlinePlanner(deadline=10.0, cap=500, step0=0, clock=clock), clock, lambda s: 1.0, until=60)
    assert plans == [(15, 15), (35, 35)]  # out of time: plan = the current step (the loop stops)


def test_samples_count_from_the_resumed_step():
    clock = Clock()
    planner = DeadlinePlanner(deadline=1000.0, cap=10_000, step0=300, clock=clock)
    assert not planner.due(15) and planner.due(305) and planner.due(315)
    for step in range(301, 316):
        clock.t += 2.0
        plan = planner.observe(step)
    assert plan == 315 + int((1000 - 30) / 2.0)
    planner.adopt(315, 400)  # under DDP: the mean of the processes' proposals sets the second sample
    assert planner.second_at == 315 + 20 and planner.due(335)
    assert planner.observe(335) is not None and planner.observe(355) is None  # corrected once


def test_lr_warms_up_then_decays_to_a_tenth():
    peak = 1e-3
    assert lr_at(0, 100, peak, 10) == pytest.approx(peak / 10)
    assert lr_at(9, 100, peak, 10) == pytest.approx(peak)
    assert lr_at(10, 100, peak, 10) == pytest.approx(peak)
    assert lr_at(100, 100, peak, 10) == pytest.approx(0.1 * peak)
    assert lr_at(500, 100, peak, 10) == pytest.approx(0.1 * peak)
