"""BouncingBalls physics sanity: gravity, elastic bounces, losing balls."""
import gymnasium as gym
import numpy as np

ONE_BALL = {"num_balls": (1, 1), "speed": (0.0, 0.0), "radius": (12.0, 12.0)}


def make():
    return gym.make("WorldGym/BouncingBalls-v0", render_mode="rgb_array")


def ball_row(info):
    st = info["state"]
    return int(np.flatnonzero(~st["controlled"])[0])


def test_gravity_accelerates_a_falling_ball():
    env = make()
    _, info = env.reset(seed=0, options={**ONE_BALL, "gravity": 300.0})
    scene = env.unwrapped
    vys = []
    for _ in range(8):
        _, _, _, _, info = env.step(0)
        vys.append(info["state"]["velocity"][ball_row(info), 1])
    expected = 300.0 * scene.DT * scene.DT * scene.scale  # pixels/step gained per step
    np.testing.assert_allclose(np.diff(vys), expected, rtol=1e-3)


def test_elastic_bounce_keeps_normal_speed():
    """With elasticity 1, a wall bounce flips the normal velocity component and keeps its size."""
    env = make()
    _, info = env.reset(seed=3, options={"num_balls": (1, 1), "gravity": 0.0, "speed": (200.0, 200.0),
                                         "elasticity": 1.0})
    before = info["state"]["velocity"][ball_row(info)]
    for _ in range(120):
        _, _, term, _, info = env.step(0)
        assert not term
        after = info["state"]["velocity"][ball_row(info)]
        if any(-1 in pair for pair in info["contacts"]):
            flipped = np.sign(after) != np.sign(before)
            assert flipped.sum() == 1, (before, after)
            np.testing.assert_allclose(abs(after[flipped]), abs(before[flipped]), rtol=0.02)
            return
        before = after
    raise AssertionError("the ball never hit a wall")


def test_losing_every_ball_ends_the_episode_with_penalties():
    env = make()
    env.reset(seed=1, options={"num_balls": (2, 2), "gravity": 2000.0, "paddle_width": 8.0})
    total, steps, term = 0.0, 0, False
    while not term and steps < 300:
        away = {0: 0, 1: 2, 2: 1}[env.unwrapped.heuristic()]  # dodge the balls
        _, r, term, _, info = env.step(away)
        total, steps = total + r, steps + 1
    assert term and info["balls_in_play"] == 0
    assert total < -1.5  # two balls lost (−1 each), a little in-play reward before that


def test_radius_is_reported_in_pixels():
    """A 12-unit ball in a 256-unit-tall world: 3 px at 64×64, 6 px at 128×128."""
    for size, px in ((64, 3.0), (128, 6.0)):
        env = gym.make("WorldGym/BouncingBalls-v0", width=size, height=size)
        _, info = env.reset(seed=0, options=ONE_BALL)
        assert info["state"]["radius"][ball_row(info)] == px


def test_a_wall_bounce_is_reported_on_one_step_only():
    """Contacts are those that began this step: the bounce's (-1, ball) pair is not reported again
    while the ball flies away from the wall."""
    env = make()
    _, info = env.reset(seed=3, options={"num_balls": (1, 1), "gravity": 0.0, "speed": (200.0, 200.0),
                                         "elasticity": 1.0})
    ball = int(info["state"]["id"][ball_row(info)])
    hits = []
    for t in range(120):
        _, _, _, _, info = env.step(0)
        if (-1, ball) in info["contacts"]:
            hits.append(t)
    assert hits, "the ball never hit a wall"
    assert all(b - a > 5 for a, b in zip(hits, hits[1:])), hits


def test_a_range_option_takes_a_numpy_pair():
    env = gym.make("WorldGym/BouncingBalls-v0", render_mode="rgb_array")
    as_tuple, _ = env.reset(seed=0, options={"radius": (6.0, 10.0)})
    as_array, _ = env.reset(seed=0, options={"radius": np.array([6.0, 10.0])})
    np.testing.assert_array_equal(as_tuple, as_array)
