"""Physics sanity checks for GrowingStructures: holding, falling, landing, stacking and toppling."""
import gymnasium as gym
import pymunk
import pytest

import envs  # noqa: F401

ENV_ID = "WorldGym/GrowingStructures-v0"
BOXES = {"odd_shapes": 0.0, "block_size": (24.0, 24.0), "cooldown": 5}
NOOP, LEFT, RIGHT, DROP = 0, 1, 2, 3


def make(seed=0, **options):
    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=seed, options={**BOXES, **options})
    return env, env.unwrapped


def place_crane(scene, x):
    """Teleports the crane and its held block to x (both kinematic, colliding with nothing)."""
    scene.crane.body.position = (x, scene.crane.body.position.y)
    if scene.held is not None:
        scene.held.body.position = (x, scene.held.body.position.y)


def drop_and_settle(env, scene, steps=60):
    block = scene.held
    env.step(DROP)
    for _ in range(steps):
        assert not env.step(NOOP)[2], "no fall or collapse"
    return block


def test_held_block_follows_the_crane_and_does_not_fall():
    env, scene = make()
    block = scene.held
    y0 = block.body.position.y
    for action in [RIGHT] * 5 + [NOOP] * 20 + [LEFT] * 3:
        env.step(action)
        assert block.body.position.x == pytest.approx(scene.crane.body.position.x)
        assert block.body.position.y == y0
    assert scene.held is block and block.body.body_type == pymunk.Body.KINEMATIC
    assert not scene.dropped


def test_dropped_block_accelerates_then_rests_on_the_platform():
    env, scene = make(gravity=300.0)
    place_crane(scene, scene.world_width / 2)
    block = scene.held
    env.step(DROP)
    assert block.body.body_type == pymunk.Body.DYNAMIC and not block.controlled
    v1 = block.body.velocity.y
    env.step(NOOP)
    env.step(NOOP)
    assert block.body.velocity.y - v1 == pytest.approx(2 * 300.0 * scene.DT, rel=0.1)  # g·t (damping aside)
    total = 0.0
    for _ in range(80):
        _, r, term, _, info = env.step(NOOP)
        total += r
        assert not term
    bottom = block.shapes[0].bb.top  # pymunk's bb is y-up: top = largest y = the block's underside
    assert bottom == pytest.approx(scene.platform_top, abs=0.5)
    assert block.body.velocity.length < 1.0
    height = scene.platform_top - block.shapes[0].bb.bottom
    assert info["tower_height"] == pytest.approx(height, abs=0.5)
    assert total == pytest.approx(height / 16.0, abs=0.05)


def test_block_dropped_beside_the_platform_ends_the_episode():
    env, scene = make(platform_width=60.0)
    place_crane(scene, scene.crane_lo)  # far left, well beyond the platform's end
    env.step(DROP)
    for _ in range(60):
        _, r, term, _, _ = env.step(NOOP)
        if term:
            break
    assert term and r == pytest.approx(-1.0)


def test_aligned_box_stands_but_overhanging_box_topples():
    angles = {}
    for offset in (0.0, 20.0):  # a 24-unit box on a 24-unit box: centre beyond the edge at > 12
        env, scene = make(seed=3, friction=0.9)
        cx = scene.world_width / 2
        place_crane(scene, cx)
        drop_and_settle(env, scene)
        while scene.held is None:
            env.step(NOOP)
        place_crane(scene, cx + offset)
        top = drop_and_settle(env, scene, steps=40)
        angles[offset] = abs(top.body.angle)
    assert angles[0.0] < 0.05
    assert angles[20.0] > 0.5
