"""Physics sanity checks specific to the Platformer scene."""
import math

import gymnasium as gym
import numpy as np
import pytest

from envs.platformer import CHAR_H, CHAR_R, COIN_R, MOVER_H, WALL

FLAT = {"num_pits": (0, 0), "num_ledges": (0, 0), "num_movers": (0, 0), "num_coins": (0, 0)}
NOOP, RIGHT, JUMP = 0, 2, 3


@pytest.fixture
def env():
    env = gym.make("WorldGym/Platformer-v0", render_mode="rgb_array")
    yield env
    env.close()


def test_jump_reaches_its_apex_and_only_from_the_ground(env):
    env.reset(seed=0, options=FLAT)
    scene = env.unwrapped
    body, g, h = scene.character.body, scene.opt["gravity"], scene.opt["jump_height"]
    env.step(NOOP)  # contacts (and so the ground) exist after the first physics step
    y0 = body.position.y
    assert scene.ground() is not None
    env.step(JUMP)
    assert body.velocity.y == pytest.approx(-math.sqrt(2 * g * h) + g * scene.DT, rel=0.02)
    vy_before = body.velocity.y
    env.step(JUMP)  # in the air: no second jump, gravity keeps slowing the rise
    assert body.velocity.y == pytest.approx(vy_before + g * scene.DT, rel=0.02)
    top = y0
    for _ in range(40):
        env.step(NOOP)
        top = min(top, body.position.y)
    assert y0 - top == pytest.approx(h, rel=0.05)
    assert body.position.y == pytest.approx(y0, abs=0.5) and scene.ground() is not None  # landed


def test_moving_platform_carries_the_character_by_friction(env):
    for seed in range(30):
        env.reset(seed=seed, options={**FLAT, "num_movers": (1, 1)})
        scene = env.unwrapped
        if scene.movers and scene.movers[0].data["axis"] == (1.0, 0.0):
            break
    mover, body = scene.movers[0].body, scene.character.body
    body.position = (mover.position.x, mover.position.y - MOVER_H / 2 - CHAR_H / 2 - CHAR_R - 0.5)
    body.velocity = mover.velocity
    env.step(NOOP)
    offset, xs = body.position.x - mover.position.x, []
    for _ in range(45):
        env.step(NOOP)
        xs.append(mover.position.x)
        assert scene.ground() is mover
        assert body.position.x - mover.position.x == pytest.approx(offset, abs=2.0)
    assert max(xs) - min(xs) > 20.0  # the platform did travel


def test_one_way_ledge_is_passed_from_below_and_stood_on(env):
    env.reset(seed=1, options={**FLAT, "num_ledges": (1, 1)})
    scene = env.unwrapped
    (a, b, top), body = scene.ledges[0], scene.character.body
    body.position = (scene._x((a + b) / 2), body.position.y)  # on the floor, under the ledge
    env.step(NOOP)
    env.step(JUMP)
    for _ in range(40):
        env.step(NOOP)
    assert body.position.y + CHAR_H / 2 + CHAR_R == pytest.approx(top, abs=0.5)
    assert scene.ground() is not None


def test_coin_is_a_sensor_collected_once_and_a_pit_ends_the_episode(env):
    env.reset(seed=2, options={**FLAT, "num_coins": (1, 1)})
    scene = env.unwrapped
    coin, body = scene.coins[0], scene.character.body
    body.position = (coin.body.position.x - 30.0, body.position.y)
    rewards, contacts = [], []
    for _ in range(15):
        _, r, term, _, info = env.step(RIGHT)
        rewards.append(r)
        contacts += [tuple(p) for p in np.asarray(info["contacts"]).tolist()]
    assert coin.hidden and info["coins_left"] == 0
    assert sum(r >= 1.0 for r in rewards) == 1  # paid once
    assert (scene.character.id, coin.id) in contacts or (coin.id, scene.character.id) in contacts
    assert abs(body.position.x - coin.body.position.x) > 20.0  # ran through it
    body.position, body.velocity = coin.body.position, (0.0, 0.0)  # back onto the collected coin
    _, r, *_, info = env.step(NOOP)
    assert r < 1.0 and coin.id not in np.asarray(info["contacts"])  # gone: no more contacts
    env.reset(seed=2, options={**FLAT, "num_pits": (1, 1)})
    scene, body = env.unwrapped, env.unwrapped.character.body
    a, b = scene.pits[0]
    body.position = (scene._x((a + b) / 2), body.position.y)
    for _ in range(30):
        _, r, term, _, _ = env.step(NOOP)
        if term:
            break
    assert term and r == pytest.approx(-1.0, abs=0.05)


def test_every_run_key_with_every_jump_key_is_a_running_jump(env):
    """a+space, d+up, left+w, …: each run key (arrow or a/d) held with each jump key (up, space, w)."""
    from collections import defaultdict

    from envs.base import key_code
    from envs.play import action_from_keys

    keys = env.unwrapped.get_keys_to_action()
    for run_keys, action in ((("left", "a"), 4), (("right", "d"), 5)):
        for run in run_keys:
            for jump in ("up", "space", "w"):
                held = (key_code(run), key_code(jump))
                assert keys[tuple(sorted(held))] == action, (run, jump)
                assert action_from_keys(defaultdict(bool, dict.fromkeys(held, True)), keys) == action
    assert env.unwrapped.ACTIONS[4:] == ("left+jump", "right+jump")


@pytest.mark.parametrize("size", [(32, 160), (32, 512), (32, 128)])
def test_narrow_frames_are_not_won_where_the_character_starts(size):
    """Too narrow for the door beside the start: it stands a storey up, reached by a jump."""
    env = gym.make("WorldGym/Platformer-v0", width=size[0], height=size[1])
    for seed in range(3):
        env.reset(seed=seed)
        scene = env.unwrapped
        if scene.world_width > 2 * (WALL + COIN_R):  # room for a coin (not at 32×512: 16 units wide)
            assert all(WALL < c.body.position.x < scene.world_width - WALL for c in scene.coins)
        _, r, term, *_ = env.step(NOOP)
        assert not term and r < 5.0
        for _ in range(60):
            _, r, term, *_ = env.step(env.unwrapped.heuristic())
            if term:
                break
        assert term and r >= 5.0  # the door is reachable
