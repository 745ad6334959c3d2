"""Physics sanity checks for SpinningObjects: motors, gravity, the cup."""
import gymnasium as gym
import numpy as np
import pytest

ENV_ID = "WorldGym/SpinningObjects-v0"


def make(**kw):
    env = gym.make(ENV_ID, render_mode="rgb_array", **kw)
    return env, env.unwrapped


@pytest.mark.parametrize("fraction", [1.0, -0.5])
def test_motor_spins_each_rotor_at_the_set_rate(fraction):
    env, scene = make(continuous=True)
    env.reset(seed=0, options={"num_rotors": (3, 3), "spawn_interval": (1000, 1000)})
    action = np.array([fraction], np.float32)
    for _ in range(30):
        *_, info = env.step(action)
    rate = fraction * scene.opt["max_rate"]
    assert info["motor_rate"] == pytest.approx(rate)
    for rotor in scene.rotors:  # rad/s; positive = clockwise on screen (y points down)
        assert rotor.body.angular_velocity == pytest.approx(rate * rotor.data["ratio"], rel=0.02)
    st = info["state"]  # per step, in the state export
    expected = [rate * r.data["ratio"] * scene.DT for r in scene.rotors]
    np.testing.assert_allclose(st["angular_velocity"][st["controlled"]], expected, rtol=0.02)


def test_discrete_actions_ramp_brake_and_hold_the_rate():
    env, scene = make()
    env.reset(seed=1)
    top = scene.opt["max_rate"]
    rates = [env.step(1)[-1]["motor_rate"] for _ in range(3)]
    np.testing.assert_allclose(rates, np.arange(1, 4) * top / 8)
    assert env.step(0)[-1]["motor_rate"] == pytest.approx(rates[-1])  # noop keeps the speed
    assert env.step(3)[-1]["motor_rate"] == 0.0
    for _ in range(20):
        *_, info = env.step(2)
    assert info["motor_rate"] == pytest.approx(-top)  # capped at max_rate
    for _ in range(10):
        env.step(0)
    assert all(r.body.angular_velocity < 0 for r in scene.rotors)  # counter-clockwise on screen


def test_motor_torque_is_capped():
    env, scene = make(continuous=True)
    env.reset(seed=2, options={"num_rotors": (1, 1), "motor_torque": 3.0, "gravity": 0.0})
    rotor = scene.rotors[0]
    for _ in range(3):
        env.step(np.array([1.0], np.float32))
    # the torque cap allows 3 rad/s² without load: 0.3 rad/s after 0.1 s, not the 6 rad/s asked for
    assert rotor.body.angular_velocity == pytest.approx(0.3, rel=0.1)  # pivot off the centroid: < 0.3


def test_gravity_accelerates_a_falling_ball():
    env, scene = make()
    env.reset(seed=3, options={"num_rotors": (1, 1)})
    while not scene._balls():
        env.step(0)
    ball = scene._balls()[0]
    vy = []
    for _ in range(5):
        *_, info = env.step(0)
        row = list(info["state"]["id"]).index(ball.id)
        vy.append(info["state"]["velocity"][row, 1])
    dv = np.diff(vy)  # pixels per step per step: g * dt² * scale
    expected = scene.opt["gravity"] * scene.DT ** 2 * scene.scale
    np.testing.assert_allclose(dv, expected, rtol=0.05)


def test_a_ball_dropped_into_the_cup_scores_and_disappears():
    env, scene = make()
    env.reset(seed=4, options={"spawn_interval": (1000, 1000)})
    while not scene._balls():
        env.step(0)
    ball = scene._balls()[0]
    ball.body.position, ball.body.velocity = (scene.cup_x, scene.cup_rim - 20), (0, 0)
    total = 0.0
    for _ in range(30):
        _, r, *_ , info = env.step(0)
        total += r
    assert total == 1.0 and info["caught"] == 1
    assert ball.id not in info["state"]["id"]


def test_an_off_centre_rotor_reports_the_velocity_of_its_position():
    """A wheel's knob moves its centre of gravity off the pivot; the state reports the pivot's
    velocity (the position's), not the centre of gravity's."""
    env, scene = make(width=256, height=256)
    env.reset(seed=0)
    off = [r for r in scene.rotors if tuple(r.body.center_of_gravity) != (0.0, 0.0)]
    assert off, "seed 0 has no off-centre rotor; pick another"
    for _ in range(30):
        *_, info = env.step(1)
    st = info["state"]
    rows = np.isin(st["id"], [r.id for r in off])
    assert np.abs(st["angular_velocity"][rows]).max() > 0.05  # spinning
    assert np.abs(st["velocity"][rows]).max() < 0.05  # the pivot stays put
