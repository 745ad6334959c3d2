"""Episodes as arrays: seeds, padding of the variable-length state, policies, exact round trip."""
import numpy as np
import pytest
from collect_helpers import ENV, assert_state_equal, make_dataset

from collect import episode_seeds, open_dataset
from collect.config import make_env
from collect.policies import POLICIES, make_policy
from collect.record import CONTACT_PAD, STATE_ID_PAD, run_episode, stack_infos
from envs.state import ObjectState


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    make_dataset(out)
    return open_dataset(out)


def test_episode_seeds_are_a_pure_function_of_seed_and_index():
    assert episode_seeds(3, 7) == episode_seeds(3, 7)
    seeds = {episode_seeds(3, i) for i in range(1000)} | {episode_seeds(4, i) for i in range(1000)}
    assert len(seeds) == 2000
    assert all(0 <= a < 2**63 and 0 <= b < 2**63 for a, b in seeds)


def test_round_trip_equals_a_fresh_replay_from_seed_and_actions(small):
    """Every stored array equals what a fresh env gives for the stored seed, options and actions."""
    env = small.make_env()
    for i in range(len(small)):
        ep = small.episode(i)
        assert (ep.seed, ep.policy_seed) == episode_seeds(small.settings["seed"], ep.index)
        obs, info = env.reset(seed=ep.seed, options=ep.options or None)
        np.testing.assert_array_equal(ep.observations[0], obs)
        assert_state_equal(ep.state_at(0), info["state"])
        for t, action in enumerate(ep.actions):
            obs, r, term, trunc, info = env.step(action)
            np.testing.assert_array_equal(ep.observations[t + 1], obs, err_msg=f"ep {ep.index} t {t + 1}")
            assert (ep.rewards[t], ep.terminations[t], ep.truncations[t]) == (r, term, trunc)
            assert_state_equal(ep.state_at(t + 1), info["state"])
            np.testing.assert_array_equal(ep.contacts_at(t + 1), info["contacts"])
            assert ep.infos["balls_in_play"][t + 1] == info["balls_in_play"]
        # no autoreset transition: only the last step ends the episode
        assert ep.dones[-1] and not ep.dones[:-1].any()
        assert ep.truncations[-1] == (ep.steps == small.settings["max_steps"] and not ep.terminations[-1])


def test_policy_regenerates_the_stored_actions(small):
    env = small.make_env()
    policy = make_policy(small.metadata["policy"], env)
    ep = small.episode(2)
    rec = run_episode(env, policy, ep.index, small.settings["seed"], ep.options, small.settings["max_steps"])
    np.testing.assert_array_equal(rec.actions, ep.actions)
    np.testing.assert_array_equal(rec.observations, ep.observations)


def test_dataset_has_terminated_and_truncated_episodes(small):
    """The fixture exercises both ways an episode ends (random play loses balls before 100 steps)."""
    assert small.episode(0).observations.shape[1:] == (64, 64, 3)
    ends = [small.episode(i) for i in range(len(small))]
    assert any(e.terminations[-1] for e in ends) and any(e.truncations[-1] for e in ends)


def test_stack_infos_pads_rows_and_counts():
    def info(n, k):
        return {"state": ObjectState({"id": np.arange(n, dtype=np.int64),
                                      "position": np.full((n, 2), n, np.float32),
                                      "visible": np.ones(n, bool)}),
                "contacts": np.full((k, 2), 7, np.int64), "score": n * 1.5}

    out = stack_infos([info(3, 0), info(1, 2), info(0, 1)])
    s = out["state"]
    assert s.shape == (3, 3) and s["position"].shape == (3, 3, 2)
    np.testing.assert_array_equal(out["state_count"], [3, 1, 0])
    np.testing.assert_array_equal(s["id"], [[0, 1, 2], [0, STATE_ID_PAD, STATE_ID_PAD], [STATE_ID_PAD] * 3])
    assert (s["position"][1, 1:] == 0).all() and (s["position"][1, 0] == 1).all()
    np.testing.assert_array_equal(out["contacts_count"], [0, 2, 1])
    assert out["contacts"].shape == (3, 2, 2) and (out["contacts"][0] == CONTACT_PAD).all()
    np.testing.assert_array_equal(out["score"], [4.5, 1.5, 0.0])


def test_policies_and_unknown_policy_error():
    env = make_env(ENV, 64, 64, 50)
    obs, _ = env.reset(seed=0)
    for spec in ("random", "heuristic", "noisy:0.5", "noisy:1"):
        p = make_policy(spec, env)
        p.reset(1)
        a = [p(obs) for _ in range(20)]
        p.reset(1)
        assert a == [p(obs) for _ in range(20)], spec
        assert all(env.action_space.contains(np.int64(x)) for x in a)
    with pytest.raises(ValueError, match="unknown policy 'greedy'; policies: random, heuristic"):
        make_policy("greedy", env)
    for bad in ("noisy:2", "noisy:x", "noisy"):
        with pytest.raises(ValueError, match="EPS"):
            make_policy(bad, env)
    with pytest.raises(ValueError, match="no such file"):
        make_policy("sb3:/nonexistent.zip", env)
    assert len(POLICIES) == 4


def test_sb3_policy_loads_a_saved_model_without_unpickling(tmp_path, monkeypatch):
    sb3 = pytest.importorskip("stable_baselines3")
    import cloudpickle

    env = make_env(ENV, 64, 64, 20)
    path = tmp_path / "ppo.zip"
    sb3.PPO("MlpPolicy", env, n_steps=8, batch_size=8, device="cpu").save(path)

    def refuse(*args, **kwargs):
        raise AssertionError("an SB3 model was unpickled")

    monkeypatch.setattr(cloudpickle, "loads", refuse)
    monkeypatch.setattr("pickle.loads", refuse)
    p = make_policy(f"sb3:{path}", env)
    assert p.identity()["policy_sha256"]
    obs, _ = env.reset(seed=0)
    a = p(obs)
    assert isinstance(a, int) and env.action_space.contains(a) and a == p(obs)


def test_sb3_policy_must_fit_the_scene(tmp_path, capsys):
    """A policy of another scene (other actions), another frame size, or whose transfer sidecar names
    another scene is refused with one line, in make_policy and in the CLI before anything is collected."""
    import json

    sb3 = pytest.importorskip("stable_baselines3")
    from collect.__main__ import main as collect_main

    path = tmp_path / "bb.zip"
    sb3.PPO("MlpPolicy", make_env(ENV, 64, 64, 20), n_steps=8, batch_size=8, device="cpu").save(path)
    assert make_policy(f"sb3:{path}", make_env(ENV, 64, 64, 20))  # its own scene and size
    with pytest.raises(ValueError, match=r"acts in Discrete\(3\), WorldGym/TopDown-v0 takes Discrete\(9\)"):
        make_policy(f"sb3:{path}", make_env("WorldGym/TopDown-v0", 64, 64, 20))
    with pytest.raises(ValueError, match="trained on 64x64 frames, WorldGym/BouncingBalls-v0 makes 48x48: "
                                         "pass --width 64 --height 64"):
        make_policy(f"sb3:{path}", make_env(ENV, 48, 48, 20))
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as e:
        collect_main(["--env", "WorldGym/TopDown-v0", "--policy", f"sb3:{path}", "--out", str(out),
                      "--episodes", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "takes Discrete(9)" in err
    assert not out.exists()
    # the sidecar python -m evaluate.transfer writes beside its policies: its scene and size count
    sidecar = path.with_suffix(".json")
    sidecar.write_text(json.dumps({"schema": "worldgym.transfer/1", "env_id": "WorldGym/Platformer-v0"}))
    with pytest.raises(ValueError, match="trained on WorldGym/Platformer-v0, not WorldGym/BouncingBalls-v0"):
        make_policy(f"sb3:{path}", make_env(ENV, 64, 64, 20))
    sidecar.write_text(json.dumps({"schema": "worldgym.transfer/1", "env_id": ENV, "size": [96, 64]}))
    with pytest.raises(ValueError, match="trained on 96x64 frames"):
        make_policy(f"sb3:{path}", make_env(ENV, 64, 64, 20))
    sidecar.write_text(json.dumps({"env_id": "WorldGym/Platformer-v0"}))  # not a transfer sidecar
    assert make_policy(f"sb3:{path}", make_env(ENV, 64, 64, 20))


def test_noisy_takes_a_random_action_with_probability_eps():
    """noisy:0 is the heuristic; noisy:0.2 replaces about a fifth of its actions by random ones (the
    heuristic is stubbed with a marker no random action equals, so every replacement counts)."""
    env = make_env(ENV, 64, 64, 50)
    obs, _ = env.reset(seed=0)
    p = make_policy("noisy:0", env)
    p.reset(1)
    for _ in range(30):
        a = p(obs)
        assert a == env.unwrapped.heuristic()
        obs, *_ = env.step(a)
    p = make_policy("noisy:0.2", env)
    p.reset(2)
    p.heuristic = lambda obs: "heuristic"
    share = np.mean([p(obs) != "heuristic" for _ in range(2000)])
    assert 0.15 < share < 0.25, share
