"""The scene contract (README.md, "Scenes"), checked for every id in ``envs.SCENE_IDS``."""
import json
import os
import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs

SCENES = envs.SCENE_IDS
STATE_FIELDS = {
    "id": (np.int64, 1), "kind": (np.int64, 1), "position": (np.float32, 2),
    "velocity": (np.float32, 2), "angle": (np.float32, 1), "angular_velocity": (np.float32, 1),
    "radius": (np.float32, 1), "color": (np.uint8, 2), "visible": (np.bool_, 1),
    "controlled": (np.bool_, 1),
}
DOC_SECTIONS = ["## Description", "## Action Space", "## Observation Space", "## State", "## Rewards",
                "## Starting State", "## Episode End", "## Physics", "## Arguments", "## Version History"]


def make(env_id, **kw):
    return gym.make(env_id, render_mode="rgb_array", **kw)


def rollout(env, seed, steps, policy="random"):
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    frames, rewards, infos = [obs], [], [info]
    for _ in range(steps):
        a = env.unwrapped.heuristic() if policy == "heuristic" else env.action_space.sample()
        obs, r, term, trunc, info = env.step(a)
        frames.append(obs)
        rewards.append(r)
        infos.append(info)
        if term or trunc:
            break
    return frames, rewards, infos


def continuous_ids():
    from gymnasium.envs.registration import load_env_creator

    return [i for i in SCENES if load_env_creator(gym.spec(i).entry_point).CONTINUOUS_DIM]


@pytest.mark.parametrize("env_id", SCENES)
def test_gymnasium_check_env_without_warnings(env_id):
    env = make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", SCENES)
def test_sb3_check_env(env_id):
    from stable_baselines3.common.env_checker import check_env as sb3_check

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check(make(env_id), warn=True)


@pytest.mark.parametrize("env_id", continuous_ids())
def test_continuous_mode_passes_checkers(env_id):
    env = make(env_id, continuous=True)
    assert isinstance(env.action_space, gym.spaces.Box)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.reset(seed=0)
    for _ in range(20):
        a = env.unwrapped.heuristic()
        assert env.action_space.contains(a), a
        env.step(a)


_DIGEST_SCRIPT = """
import hashlib, json, sys, gymnasium as gym, numpy as np, envs
env = gym.make(sys.argv[1], render_mode="rgb_array")
h = hashlib.sha256()
obs, info = env.reset(seed=123)
env.action_space.seed(7)
h.update(obs.tobytes())
for _ in range(120):
    obs, r, te, tr, info = env.step(env.action_space.sample())
    h.update(obs.tobytes()); h.update(repr(float(r)).encode())
    for k in sorted(info["state"]):
        h.update(info["state"][k].tobytes())
    h.update(np.asarray(info["contacts"]).tobytes())
    if te or tr:
        obs, info = env.reset(seed=5)
print(json.dumps(h.hexdigest()))
"""


@pytest.mark.parametrize("env_id", SCENES)
def test_determinism_across_processes(env_id):
    env_vars = {"SDL_VIDEODRIVER": "dummy", "PYTHONHASHSEED": "random"}
    digests = [
        json.loads(subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT, env_id], check=True,
                                  capture_output=True, text=True, env={**os.environ, **env_vars}
                                  ).stdout.strip().splitlines()[-1])
        for _ in range(2)
    ]
    assert digests[0] == digests[1]


@pytest.mark.parametrize("env_id", SCENES)
def test_different_seeds_give_different_first_frames(env_id):
    env = make(env_id)
    first = [env.reset(seed=s)[0] for s in range(4)]
    assert len({f.tobytes() for f in first}) == 4


@pytest.mark.parametrize("env_id", SCENES)
def test_same_seed_same_episode_in_one_process(env_id):
    env = make(env_id)
    a = rollout(env, 3, 60)
    b = rollout(env, 3, 60)
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0]))
    assert a[1] == b[1]


@pytest.mark.parametrize("env_id", SCENES)
def test_pickle_round_trip(env_id):
    """A pickled env comes back fresh (EzPickle rebuilds it from its arguments), not mid-episode."""
    env = make(env_id, width=48, height=40)
    env.reset(seed=1)
    env.step(0)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.unwrapped.space is None
    with pytest.raises((RuntimeError, gym.error.ResetNeeded), match="reset"):
        clone.step(0)
    np.testing.assert_array_equal(env.reset(seed=9)[0], clone.reset(seed=9)[0])
    assert clone.observation_space.shape == (40, 48, 3)


@pytest.mark.parametrize("env_id", SCENES)
@pytest.mark.parametrize("size", [(32, 32), (96, 48), (48, 96), (160, 120), (32, 160), (64, 256), (32, 512)])
def test_sizes_including_non_square(env_id, size):
    """(width, height): narrow frames too, where a 64×64 layout does not fit and is clamped."""
    w, h = size
    env = make(env_id, width=w, height=h)
    for seed in (1, 2):
        obs, info = env.reset(seed=seed)
        assert obs.shape == (h, w, 3) and obs.dtype == np.uint8
        obs, *_ = env.step(env.action_space.sample())
        obs, *_ = env.step(env.unwrapped.heuristic())
        assert obs.shape == (h, w, 3)
        assert env.observation_space.contains(obs)


@pytest.mark.parametrize("env_id", SCENES)
@pytest.mark.parametrize("size", [(32, 160), (48, 64), (64, 96)])
def test_option_bounds_fit_narrow_frames(env_id, size):
    """Every option at either end of its range (paddle_width=240, basket_width=200, …) still builds
    a world in a narrow frame: what does not fit is clamped, never a bare numpy error."""
    w, h = size
    env = make(env_id, width=w, height=h)
    for name, opt in env.unwrapped.OPTIONS.items():
        for value in _bounds(opt):
            obs, _ = env.reset(seed=0, options={name: value})
            obs, *_ = env.step(env.unwrapped.heuristic())
            assert obs.shape == (h, w, 3), (name, value)


@pytest.mark.parametrize("env_id", SCENES)
def test_continuous_must_be_a_bool(env_id):
    for bad in ("no", 1, 0, None):
        with pytest.raises(TypeError, match="continuous must be a bool"):
            gym.make(env_id, continuous=bad)
    assert isinstance(make(env_id, continuous=np.bool_(False)).action_space, gym.spaces.Discrete)


@pytest.mark.parametrize("env_id", SCENES)
def test_bad_sizes_and_render_modes_raise(env_id):
    for kw in ({"width": 31}, {"height": 513}, {"width": 64.0}):
        with pytest.raises(ValueError, match="width|height"):
            gym.make(env_id, **kw)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="render_mode"):
        gym.make(env_id, render_mode="ascii")


@pytest.mark.parametrize("env_id", SCENES)
def test_state_schema_and_fresh_arrays(env_id):
    env = make(env_id)
    _, info0 = env.reset(seed=2)
    _, _, _, _, info1 = env.step(0)
    for info in (info0, info1):
        st = info["state"]
        assert set(st) == set(STATE_FIELDS)
        n = len(st["id"])
        assert n > 0
        for key, (dtype, ndim) in STATE_FIELDS.items():
            assert st[key].dtype == dtype, key
            assert st[key].shape[0] == n and st[key].ndim == ndim, key
        assert st["position"].shape == (n, 2) and st["color"].shape == (n, 3)
        assert len(set(st["id"].tolist())) == n, "ids are unique"
        assert np.all((st["kind"] >= 0) & (st["kind"] < len(envs.KINDS)))
        assert st["controlled"].any(), "the agent's object is reported"
        contacts = np.asarray(info["contacts"])
        assert contacts.dtype == np.int64 and contacts.ndim == 2 and contacts.shape[1] == 2
    for key in STATE_FIELDS:
        assert not np.shares_memory(info0["state"][key], info1["state"][key])


@pytest.mark.parametrize("env_id", SCENES)
def test_ids_are_stable_and_objects_keep_their_colour(env_id):
    """An id keeps its kind for the whole episode, and its colour too (particles colour by age)."""
    env = make(env_id)
    _, _, infos = rollout(env, 4, 80, policy="heuristic")
    kinds, colours = {}, {}
    for info in infos:
        st = info["state"]
        for i, k, c in zip(st["id"].tolist(), st["kind"].tolist(), st["color"].tolist()):
            assert kinds.setdefault(i, k) == k
            colours.setdefault(i, set()).add(tuple(c))
    by_age = envs.KIND_INDEX["particle"]
    changed = [i for i, cs in colours.items() if len(cs) > 1 and kinds[i] != by_age]
    assert not changed, f"objects {changed} changed colour"


@pytest.mark.parametrize("env_id", SCENES)
def test_state_positions_land_on_their_colour(env_id):
    """A visible object's reported position falls on a pixel of its own colour (occlusion aside)."""
    env = make(env_id)
    hits = total = 0
    for seed in (0, 1):
        frames, _, infos = rollout(env, seed, 60, policy="heuristic")
        for frame, info in zip(frames, infos):
            st = info["state"]
            h, w = frame.shape[:2]
            for (x, y), c, vis in zip(st["position"], st["color"], st["visible"]):
                if not vis or not (0 <= x < w and 0 <= y < h):
                    continue
                total += 1
                hits += bool(np.all(frame[int(y), int(x)] == c))
    assert total > 0
    assert hits / total >= 0.9, f"{hits}/{total} reported positions on their colour"


@pytest.mark.parametrize("env_id", SCENES)
def test_bad_actions_raise_clearly(env_id):
    env = make(env_id)
    env.reset(seed=0)
    n = env.action_space.n
    with pytest.raises(ValueError, match="out of range"):
        env.step(n)
    with pytest.raises(ValueError, match="out of range"):
        env.step(-1)
    for bad in (1.0, float("nan"), "left", None, [0, 1], True):
        with pytest.raises(TypeError, match="integer action"):
            env.step(bad)
    env.step(np.int64(0))  # numpy scalars and 0-d / 1-element integer arrays are fine
    env.step(np.array([0]))


@pytest.mark.parametrize("env_id", continuous_ids())
def test_bad_continuous_actions_raise_clearly(env_id):
    env = make(env_id, continuous=True)
    env.reset(seed=0)
    dim = env.action_space.shape[0]
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.full(dim, np.nan))
    with pytest.raises(ValueError, match="outside"):
        env.step(np.full(dim, 2.0))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(dim + 1))
    with pytest.raises(TypeError):
        env.step("fast")


@pytest.mark.parametrize("env_id", SCENES)
def test_bad_options_raise_clearly(env_id):
    env = make(env_id)
    valid = sorted(env.unwrapped.OPTIONS)
    assert valid, "every scene documents options"
    with pytest.raises(ValueError, match="valid options") as err:
        env.reset(seed=0, options={"no_such_option": 1})
    assert all(name in str(err.value) for name in valid)
    name, opt = next(iter(env.unwrapped.OPTIONS.items()))
    with pytest.raises(TypeError, match=name):
        env.reset(seed=0, options={name: "nonsense"})


@pytest.mark.parametrize("env_id", SCENES)
def test_a_refused_reset_leaves_the_episode_as_it_was(env_id):
    env, ref = make(env_id), make(env_id)
    env.reset(seed=4)
    ref.reset(seed=4)
    with pytest.raises(ValueError):
        env.reset(seed=9, options={"no_such_option": 1})
    for _ in range(30):  # the episode goes on as if nothing happened (its RNG too)
        a, b = env.step(0), ref.step(0)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]


def _episode(env, options=None, steps=60, policy="random", seed=3):
    """Frames, positions and rewards of a seeded episode (random actions from a seeded space)."""
    obs, info = env.reset(seed=seed, options=options)
    env.action_space.seed(0)
    out = [obs, info["state"]["position"]]
    for _ in range(steps):
        a = env.unwrapped.heuristic() if policy == "heuristic" else env.action_space.sample()
        obs, r, term, trunc, info = env.step(a)
        out += [obs, info["state"]["position"], np.float64(r)]
        if term or trunc:
            break
    return out


def _same(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


def _bounds(opt):
    """Non-default values at the ends of an option's allowed range."""
    d = opt.default
    if isinstance(d, bool):
        return [not d]
    if isinstance(d, tuple):
        cast = type(d[0])
        values = [(cast(opt.low), cast(opt.low)), (cast(opt.high), cast(opt.high))]
    else:
        values = [type(d)(opt.low), type(d)(opt.high)]
    return [v for v in values if v != d]


#: Options that only act in situations the default 60 random steps may not reach: where they show.
OPTION_SETUPS = {
    "box_friction": {"steps": 100, "policy": "heuristic"},  # once the puck pushes a box
    "gap_height": {"options": {"num_obstacles": (6, 6)}},  # needs a tunnel in the level
    "collapse_drop": {"options": {"friction": 0.0, "platform_width": 480.0}, "steps": 300,
                      "policy": "heuristic", "seed": 0},  # needs a tower that slips
}


@pytest.mark.parametrize("env_id", SCENES)
def test_options_are_applied(env_id):
    """Every option given as its default gives the same episode, and one of its bounds changes the
    episode (frames, positions or rewards): an option the scene never reads fails here."""
    env = make(env_id)
    defaults = {k: o.default for k, o in env.unwrapped.OPTIONS.items()}
    assert _same(_episode(env), _episode(env, defaults))
    unread = []
    for name, opt in env.unwrapped.OPTIONS.items():
        setup = dict(OPTION_SETUPS.get(name, {}))
        extra = setup.pop("options", {})
        base = _episode(env, extra, **setup)
        if all(_same(base, _episode(env, {**extra, name: v}, **setup)) for v in _bounds(opt)):
            unread.append(name)
    assert not unread, f"options with no effect at either bound: {unread}"


@pytest.mark.parametrize("env_id", SCENES)
def test_reset_rebuilds_the_space(env_id):
    import pymunk

    env = make(env_id)
    env.reset(seed=0)
    first = env.unwrapped.space
    assert isinstance(first, pymunk.Space) and len(first.bodies) > 0
    env.reset(seed=0)
    assert env.unwrapped.space is not first


@pytest.mark.parametrize("env_id", SCENES)
def test_heuristic_beats_random(env_id):
    env = make(env_id)
    totals = {}
    for policy in ("heuristic", "random"):
        totals[policy] = np.mean([sum(rollout(env, seed, 400, policy)[1]) for seed in range(3)])
    assert totals["heuristic"] > totals["random"], totals


@pytest.mark.parametrize("env_id", SCENES)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec(env_id, mode):
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode)
    try:
        obs, info = venv.reset(seed=0)
        assert obs.shape == (2, 64, 64, 3)
        for _ in range(5):
            obs, r, te, tr, info = venv.step(venv.action_space.sample())
        assert obs.shape == (2, 64, 64, 3) and r.shape == (2,)
        # ground truth stays per sub-environment (object counts differ between them)
        assert info["state"].shape == (2,) and "position" in info["state"][0]
    finally:
        venv.close()


@pytest.mark.parametrize("env_id", SCENES)
def test_info_extras_keep_their_shape(env_id):
    """Array-valued info must not change shape between episodes (vector envs stack arrays)."""
    env = make(env_id)
    shapes = {}
    for seed in range(6):
        _, info = env.reset(seed=seed)
        for key, value in info.items():
            if isinstance(value, np.ndarray):
                assert shapes.setdefault(key, value.shape) == value.shape, key


@pytest.mark.parametrize("env_id", SCENES)
def test_human_mode_runs_headless(env_id):
    env = gym.make(env_id, render_mode="human")
    env.reset(seed=0)
    for _ in range(3):
        env.step(0)
    assert env.render() is None
    env.close()


def test_two_human_envs_share_the_window_and_close_independently():
    """pygame has one display: closing one human env must not break another (SDL_VIDEODRIVER=dummy)."""
    import pygame

    a = gym.make(SCENES[0], render_mode="human")
    b = gym.make(SCENES[2], render_mode="human", width=96, height=48)
    a.reset(seed=0)
    b.reset(seed=0)
    a.step(0)
    a.close()
    for _ in range(3):
        b.step(0)  # was: pygame.error: display Surface quit
    assert pygame.display.get_surface().get_size() == b.unwrapped._window.size
    a.close()  # closing twice is harmless and does not close b's window
    b.step(0)
    b.close()
    assert not pygame.display.get_init()
    a.reset(seed=0)  # a closed env opens a window again on its next frame
    a.step(0)
    a.close()


def test_play_keeps_frames_only_when_recording(monkeypatch, tmp_path):
    """``python -m envs.play`` without --record holds no frames (a long session must not grow)."""
    import tracemalloc

    from envs import play, video

    class Unpaced(play.HumanWindow):
        def show(self, frame, fps=0):
            super().show(frame, 0)

    recorded = []
    monkeypatch.setattr(play, "HumanWindow", Unpaced)
    monkeypatch.setattr(video, "write_mp4", lambda frames, path, fps: recorded.append(len(frames)) or path)
    play.main([SCENES[0], "--seed", "0", "--max-steps", "1"])  # imports and caches, before measuring
    steps, frame_bytes = 400, 64 * 64 * 3
    tracemalloc.start()
    try:
        play.main([SCENES[0], "--seed", "0", "--max-steps", str(steps)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < steps * frame_bytes / 4, f"{peak} bytes held: frames were kept"
    play.main([SCENES[0], "--seed", "0", "--max-steps", "5", "--record", str(tmp_path / "play.mp4")])
    assert recorded == [6]  # the reset frame and one per step


@pytest.mark.parametrize("env_id", SCENES)
def test_metadata_docs_and_keys(env_id):
    env = make(env_id)
    scene = env.unwrapped
    assert scene.metadata["render_fps"] == round(1 / scene.DT)
    assert scene.ACTIONS[0] == "noop"
    doc = sys.modules[type(scene).__module__].__doc__ or ""
    missing = [s for s in DOC_SECTIONS if s not in doc]
    assert not missing, f"docstring lacks {missing}"
    keys = scene.get_keys_to_action()
    assert keys and all(0 < a < env.action_space.n for a in keys.values())
    assert all(isinstance(k, tuple) and all(isinstance(c, int) for c in k) for k in keys)
    for name in scene.OPTIONS:
        assert f"`{name}`" in doc, f"option {name} is not documented"


@pytest.mark.parametrize("env_id", SCENES)
def test_module_prefixed_id(env_id):
    env = gym.make(f"envs:{env_id}")
    assert env.reset(seed=0)[0].shape == (64, 64, 3)


def test_render_without_mode_warns_and_returns_none():
    env = gym.make(SCENES[0])
    env.reset(seed=0)
    with pytest.warns(UserWarning):
        assert env.unwrapped.render() is None


@pytest.mark.parametrize("env_id", SCENES)
def test_state_is_in_pixels_at_every_size(env_id):
    """The same seed at 64×64 and 128×128 builds the same world (the same units across the frame):
    every position and radius is exactly twice as large in the bigger frame."""
    small, big = (make(env_id, width=s, height=s).reset(seed=1)[1]["state"] for s in (64, 128))
    np.testing.assert_allclose(big["radius"], 2 * small["radius"], rtol=1e-5)
    np.testing.assert_allclose(big["position"], 2 * small["position"], rtol=1e-5, atol=1e-3)


class _OverlapScene(envs.base.PymunkScene):
    """Two overlapping balls whose ``_build`` steps the space: a contact that begins while the world
    is built happens before the episode starts and must not be reported by ``reset``."""

    def _build(self):
        import pymunk

        for x in (100.0, 110.0):
            body = pymunk.Body(1.0, 100.0)
            body.position = (x, 100.0)
            self.add_thing(body, [pymunk.Circle(body, 8.0)], "ball")
        self.space.step(self.DT)

    def heuristic(self):
        return 0


def test_contacts_are_only_those_that_began_this_step():
    """A contact that began while the world was built is not the first step's: reset reports none,
    and neither do the steps after it while the two balls fly apart."""
    env = _OverlapScene()
    _, info = env.reset(seed=0)
    assert np.asarray(info["contacts"]).shape == (0, 2)
    for _ in range(5):
        _, _, _, _, info = env.step(0)
        assert np.asarray(info["contacts"]).shape == (0, 2)


@pytest.mark.parametrize("env_id", SCENES)
def test_contacts_do_not_carry_over_between_steps(env_id):
    """A step reports the contacts that began during it: after reset none, and a pair reported on one
    step is, some time later in the episode, absent from the next step's (contacts end)."""
    env = make(env_id)
    _, _, infos = rollout(env, 0, 150, policy="heuristic")
    pairs = [set(map(tuple, np.asarray(i["contacts"]).tolist())) for i in infos]
    assert not pairs[0], "reset reports contacts"
    assert any(pairs[1:]), "no contacts in 150 steps: the check below would be empty"
    assert any(a and not a <= b for a, b in zip(pairs, pairs[1:])), "contacts accumulate"
    assert max(map(len, pairs)) < len(set().union(*pairs)), "contacts accumulate"


def _outside(opt):
    """Values just outside an option's documented [low, high] (ranges with both ends outside)."""
    cast = type(opt.default[0] if isinstance(opt.default, tuple) else opt.default)
    low, high = cast(opt.low - 1), cast(opt.high + 1)
    return [(low, low), (high, high)] if isinstance(opt.default, tuple) else [low, high]


@pytest.mark.parametrize("env_id", SCENES)
def test_options_outside_their_range_raise(env_id):
    """Every numeric option has a documented [low, high]: a value outside it, or a (low, high) range
    given the wrong way round, is a ValueError (never a silently odd world)."""
    env = make(env_id)
    for name, opt in env.unwrapped.OPTIONS.items():
        if isinstance(opt.default, bool):
            continue
        assert opt.low is not None and opt.high is not None, name
        for value in _outside(opt):
            with pytest.raises(ValueError, match=f"'{name}'.*outside"):
                env.reset(seed=0, options={name: value})
        if isinstance(opt.default, tuple):
            cast = type(opt.default[0])
            with pytest.raises(ValueError, match=f"'{name}'.*greater than"):
                env.reset(seed=0, options={name: (cast(opt.high), cast(opt.low))})
        env.reset(seed=0, options={name: opt.default})  # and the default is inside


@pytest.mark.parametrize("env_id", SCENES)
@pytest.mark.parametrize("size", [(64, 256), (160, 32), (256, 48)])
def test_visible_is_the_documented_bound_in_non_square_frames(env_id, size):
    """``visible`` = not hidden and the bounding square [x-r, x+r] × [y-r, y+r] overlaps
    (0, width) × (0, height) (envs/base.py), x against the width and y against the height."""
    w, h = size
    env = make(env_id, width=w, height=h)
    env.reset(seed=2)
    env.action_space.seed(2)
    wide = 0
    for _ in range(40):
        _, _, term, trunc, info = env.step(env.action_space.sample())
        st = info["state"]
        x, y = st["position"][:, 0].astype(np.float64), st["position"][:, 1].astype(np.float64)
        r = st["radius"].astype(np.float64)
        hidden_ids = {t.id for t in env.unwrapped.things if t.hidden}  # (particles are not things)
        hidden = np.isin(st["id"], list(hidden_ids))
        margins = np.stack([x + r, w - (x - r), y + r, h - (y - r)])
        expected = ~hidden & (margins > 0).all(0)
        clear = (np.abs(margins) > 1e-3).all(0)  # float32 rounding aside
        np.testing.assert_array_equal(st["visible"][clear], expected[clear])
        wide += int((st["visible"] & (x > h)).sum())
        if term or trunc:
            break
    if w > h:
        assert wide, "no visible object right of x = height: the check cannot tell width from height"


@pytest.mark.parametrize("env_id", SCENES)
def test_palettes_differ_between_seeds(env_id):
    """The palette comes from the episode's RNG: the first object's colour and the background are
    not the same for seeds 0..3."""
    env = make(env_id)
    firsts, backgrounds = set(), set()
    for seed in range(4):
        _, info = env.reset(seed=seed)
        firsts.add(tuple(info["state"]["color"][0].tolist()))
        backgrounds.add(env.unwrapped.palette.background)
    assert len(firsts) > 1 and len(backgrounds) > 1
