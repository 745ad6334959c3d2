"""Physics sanity checks specific to MorphingShapes: the soft blob's springs, shape control and tread."""
import gymnasium as gym
import numpy as np
import pytest

ID = "WorldGym/MorphingShapes-v0"
OPEN_FLOOR = {"num_obstacles": (0, 0), "num_balls": (0, 0)}


def area(scene) -> float:
    """Shoelace area of the polygon through the outline nodes (world units²)."""
    p = np.array([t.body.position for t in scene.nodes])  # (n, 2)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def settled(seed=0, **options):
    env = gym.make(ID, render_mode="rgb_array")
    env.reset(seed=seed, options={**OPEN_FLOOR, **options})
    for _ in range(20):
        env.step(0)
    return env, env.unwrapped


def test_inflate_increases_and_deflate_decreases_the_area():
    env, scene = settled()
    rest = area(scene)
    for _ in range(30):
        env.step(scene.ACTIONS.index("inflate"))
    inflated = area(scene)
    for _ in range(30):
        env.step(scene.ACTIONS.index("deflate"))
    deflated = area(scene)
    assert inflated > 1.5 * rest  # (1.35)² ≈ 1.8
    assert deflated < 0.5 * rest  # (0.6)² ≈ 0.36


def test_springs_restore_the_shape_after_an_impact():
    env, scene = settled()
    rest_area = area(scene)
    rest_shape = np.array([t.body.position - scene.center.body.position for t in scene.nodes])
    for t in scene.things:  # lift the whole blob and let it fall onto the floor
        t.body.position += (60.0, -150.0)
    areas = []
    for _ in range(60):
        env.step(0)
        areas.append(area(scene))
    shape = np.array([t.body.position - scene.center.body.position for t in scene.nodes])
    assert min(areas) < 0.85 * rest_area, "the impact squashes the blob"
    assert abs(areas[-1] - rest_area) < 0.03 * rest_area, "and the springs restore its area"
    assert np.abs(shape - rest_shape).max() < 1.5, "and its shape (node by node, world units)"


def test_a_blob_squeezed_under_a_press_springs_back():
    import pymunk

    env, scene = settled()
    rest_area = area(scene)
    c = scene.center.body.position
    press = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
    press.position = (c.x, c.y - 30.0)  # just above the blob's top
    plate = pymunk.Poly.create_box(press, (120.0, 10.0))
    scene.space.add(press, plate)
    press.velocity = (0.0, 45.0)
    for _ in range(12):  # the plate comes down 18 units
        env.step(0)
    squeezed = area(scene)
    scene.space.remove(press, plate)
    for _ in range(40):
        env.step(0)
    assert squeezed < 0.85 * rest_area
    assert abs(area(scene) - rest_area) < 0.03 * rest_area


def tunnel_seed():
    env = gym.make(ID)
    for seed in range(50):
        env.reset(seed=seed, options={"num_obstacles": (1, 1), "num_balls": (0, 0)})
        if env.unwrapped.obstacles[0][0] == "tunnel":
            return seed
    pytest.fail("no seed with a tunnel")


@pytest.mark.parametrize("action, passes", [("roll_right", False), ("roll_right_flat", True)])
def test_only_a_flattened_blob_rolls_under_a_tunnel(action, passes):
    env = gym.make(ID)
    env.reset(seed=tunnel_seed(), options={"num_obstacles": (1, 1), "num_balls": (0, 0),
                                           "gap_height": (32.0, 32.0)})
    scene = env.unwrapped
    start, (_, x0, x1) = scene.center.body.position.x, scene.obstacles[0]
    terminated = False
    for _ in range(200):
        _, _, terminated, _, info = env.step(scene.ACTIONS.index(action))
        if terminated:
            break
    x = scene.center.body.position.x
    assert x > start + 20, "the tread rolls the blob right"
    assert terminated == passes
    assert (x > x1) == passes, (x, x0, x1)
