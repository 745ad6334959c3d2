"""Physics sanity checks specific to TopDown: thrust, floor friction, pushing, targets."""
import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers WorldGym/*)

ONE_BOX = {"num_boxes": (1, 1), "num_obstacles": (0, 0)}


def make(**options):
    env = gym.make("WorldGym/TopDown-v0", render_mode="rgb_array")
    env.reset(seed=0, options=options)
    return env, env.unwrapped


def test_thrust_moves_the_puck_and_floor_friction_stops_it():
    env, scene = make(**ONE_BOX)
    scene.boxes[0].body.position = (30, 30)  # out of the way
    scene.agent.body.position = (60, 128)
    for _ in range(12):
        env.step(3)  # right
    vx, vy = scene.agent.body.velocity
    assert vx > 150 and abs(vy) < 1e-6, (vx, vy)
    assert np.hypot(vx, vy) <= 220 + 1e-6  # the speed cap
    for _ in range(40):
        env.step(0)
    assert scene.agent.body.velocity.length < 1e-3, "Coulomb friction brings the puck to rest"
    assert scene.agent.body.angle == 0.0  # a puck that does not spin


def test_box_rests_without_gravity_and_slides_to_a_stop():
    def slide(friction):
        env, scene = make(**ONE_BOX, box_friction=friction)
        box = scene.boxes[0].body
        scene.agent.body.position = (20, 20)
        box.position, box.velocity = (60, 128), (0, 0)
        env.step(0)
        assert box.position == (60, 128), "no gravity: an untouched box stays put"
        box.velocity = (150, 0)
        for _ in range(30):
            env.step(0)
        return box.position.x - 60, box.velocity.length

    rough, v_rough = slide(300.0)
    smooth, v_smooth = slide(0.0)
    assert v_rough < 1e-3 and v_smooth > 1.0
    assert 20 < rough < 0.6 * smooth, (rough, smooth)


def test_pushing_a_box_onto_its_target_pays_and_ends_the_episode():
    env, scene = make(**ONE_BOX)
    tx, ty = scene.targets[0, :2]
    x0 = max(tx - 60, 50.0)
    scene.boxes[0].body.position = (x0, ty)
    scene.agent.body.position = (x0 - 35, ty)
    scene._covered, scene._distance = scene._score()
    rewards = []
    for _ in range(200):
        _, r, terminated, _, info = env.step(scene.heuristic())
        rewards.append(r)
        if terminated:
            break
    assert terminated and info["boxes_on_targets"] == 1
    assert rewards[-1] > 0.9  # +1 on entering
    assert 1.0 < sum(rewards) < 1.0 + 0.01 * (tx - x0) + 0.1  # entering + the distance shaping


def test_knocking_a_box_off_its_target_costs_what_entering_paid():
    env, scene = make(**ONE_BOX)
    tx, ty = scene.targets[0, :2]
    scene.agent.body.position = (20, 20)
    scene.boxes[0].body.position = (tx, ty)
    _, r_in, terminated, _, _ = env.step(0)
    assert terminated and r_in > 0.9
    scene.boxes[0].body.position = (tx, ty + 30)
    _, r_out, terminated, _, info = env.step(0)
    assert not terminated and info["boxes_on_targets"] == 0
    np.testing.assert_allclose(r_out, -1.0 - 0.3, atol=0.01)


def test_one_box_on_two_overlapping_targets_covers_one():
    """In a narrow frame target zones can overlap; each target needs a box of its own."""
    env = gym.make("WorldGym/TopDown-v0", render_mode="rgb_array", width=32, height=160)
    env.reset(seed=24)
    scene = env.unwrapped
    (ax, ay, _), (bx, by, _) = scene.targets[1], scene.targets[2]
    box = scene.boxes[0]
    box.body.position = ((ax + bx) / 2, (ay + by) / 2)
    _, on, *_ = scene._match()
    assert on[0, 1] and on[0, 2], "the seed no longer overlaps targets 1 and 2; pick another"
    scene.boxes[1].body.position = tuple(scene.targets[0, :2])
    _, _, term, _, info = env.step(0)
    assert info["boxes_on_targets"] == 2 and not term
