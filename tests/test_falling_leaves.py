"""Physics sanity checks for FallingLeaves: air drag, wind, and the basket's catch."""
import gymnasium as gym
import numpy as np
import pymunk
import pytest

import envs  # noqa: F401  (registers WorldGym/*)

ENV_ID = "WorldGym/FallingLeaves-v0"
CALM = {"wind": 0.0, "spawn_interval": (1000, 1000)}  # no wind, no new leaves


def calm_scene(**options):
    """A scene with no leaves in the air, the basket parked at the left edge."""
    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0, options={**CALM, **options})
    scene = env.unwrapped
    for leaf in scene._leaves():
        scene.remove_thing(leaf)
    scene.basket.body.position = (scene.basket_half, scene.basket.body.position.y)
    return env, scene


def drop_leaf(scene, x, y):
    leaf = scene._spawn_leaf(y=y)
    assert leaf is not None
    leaf.body.position = (x, y)
    leaf.body.velocity = (0.0, 0.0)
    return leaf


def drop_ball(scene, x, y, r=8.0):
    """A plain circle body with pymunk's default velocity function (free fall)."""
    body = pymunk.Body(1.0, pymunk.moment_for_circle(1.0, 0, r))
    body.position = (x, y)
    scene.space.add(body, pymunk.Circle(body, r))
    return body


def test_leaf_falls_slower_than_a_ball():
    env, scene = calm_scene()
    leaf = drop_leaf(scene, 0.3 * scene.world_width, 10.0)
    ball = drop_ball(scene, 0.7 * scene.world_width, 10.0)
    xs, angles = [], []
    for _ in range(30):  # one second
        env.step(0)
        xs.append(leaf.body.position.x)
        angles.append(leaf.body.angle)
    g = scene.space.gravity.y
    ball_drop, leaf_drop = ball.position.y - 10.0, leaf.body.position.y - 10.0
    assert ball_drop == pytest.approx(0.5 * g * 1.0**2, rel=0.05)  # free fall
    assert 0 < leaf_drop < 0.4 * ball_drop
    assert leaf.body.velocity.y < 0.3 * ball.velocity.y  # near its terminal speed
    assert np.ptp(angles) > 0.1 and np.ptp(xs) > 1.0  # it sways, it doesn't just sink


def test_without_drag_a_leaf_falls_like_a_ball():
    env, scene = calm_scene(drag=0.0)
    leaf = drop_leaf(scene, 0.3 * scene.world_width, 10.0)
    ball = drop_ball(scene, 0.7 * scene.world_width, 10.0)
    for _ in range(20):
        env.step(0)
    assert leaf.body.position.y == pytest.approx(ball.position.y, rel=1e-6)
    assert leaf.body.position.x == pytest.approx(0.3 * scene.world_width)


def test_wind_carries_leaves_downwind():
    drift = {}
    for wind in (0.0, 50.0):
        env, scene = calm_scene()
        leaf = drop_leaf(scene, 0.3 * scene.world_width, 10.0)
        scene.wind = scene.wind_target = wind  # a steady wind
        scene.gust_timer = 10_000
        for _ in range(45):
            env.step(0)
        drift[wind] = leaf.body.position.x - 0.3 * scene.world_width
        vx = leaf.body.velocity.x
    assert drift[50.0] - drift[0.0] > 25.0
    assert vx > 20.0


def test_leaf_in_basket_is_caught_and_one_on_the_ground_is_missed():
    env, scene = calm_scene()
    bx, by = scene.basket.body.position
    caught = drop_leaf(scene, bx, by - 60.0)
    missed = drop_leaf(scene, scene.world_width - 30.0, by - 60.0)
    rewards, contacts = [], []
    for _ in range(120):
        _, r, _, _, info = env.step(0)
        rewards.append(r)
        contacts.extend(info["contacts"])  # (id_a, id_b) pairs
        if not scene._leaves():
            break
    assert caught not in scene.things and missed not in scene.things
    assert sum(rewards) == pytest.approx(1.0 - 0.1)
    assert sorted(r for r in rewards if r) == pytest.approx([-0.1, 1.0])
    assert (scene.basket.id, caught.id) in contacts or (caught.id, scene.basket.id) in contacts


def test_colours_stay_distinct_over_a_long_episode():
    """Leaves come and go all episode (about 80 here): a removed leaf gives its colour back, so the
    palette never runs out and relaxes its rule; live objects stay MIN_DISTANCE apart throughout."""
    from envs.palette import MIN_DISTANCE, max_channel_distance

    env = gym.make(ENV_ID, render_mode="rgb_array")
    _, info = env.reset(seed=0, options={"spawn_interval": (3, 8)})
    seen, worst = set(), 255
    for _ in range(1000):
        _, _, _, _, info = env.step(env.unwrapped.heuristic())
        st = info["state"]
        seen.update(st["id"].tolist())
        colours = [tuple(c) for c in st["color"].tolist()]
        worst = min([worst] + [max_channel_distance(a, b) for i, a in enumerate(colours)
                               for b in colours[i + 1:]])
    assert len(seen) > 60, "many leaves came and went"
    assert worst >= MIN_DISTANCE, f"two live objects only {worst} apart"


def test_three_leaves_at_the_start():
    env = gym.make("WorldGym/FallingLeaves-v0")
    for seed in range(40):
        _, info = env.reset(seed=seed)
        assert (info["state"]["kind"] == envs.KIND_INDEX["leaf"]).sum() == 3
