"""Physics sanity checks specific to ParticleSystems."""
import gymnasium as gym
import numpy as np

import envs

ID = "WorldGym/ParticleSystems-v0"
PARTICLE = envs.KINDS.index("particle")


def make(**kw):
    return gym.make(ID, render_mode="rgb_array", **kw)


def by_id(state):
    return {i: row for row, i in enumerate(state["id"].tolist())}


def test_gravity_accelerates_particles_and_batch_readout_matches_bodies():
    env = make()
    for g in (0.0, 400.0):
        env.reset(seed=0, options={"gravity": g, "num_pegs": (0, 0), "spread": 0.0})
        scene = env.unwrapped
        for _ in range(5):
            *_, info = env.step(0)
        before = info["state"]
        *_, after = env.step(0)
        after = after["state"]
        rows_a, rows_b = by_id(before), by_id(after)
        common = [i for i in rows_a if i in rows_b and before["kind"][rows_a[i]] == PARTICLE]
        assert len(common) > 10
        dvy = np.array([after["velocity"][rows_b[i], 1] - before["velocity"][rows_a[i], 1] for i in common])
        expected = g * scene.DT * scene.scale * scene.DT  # pixels/step gained per step
        np.testing.assert_allclose(dvy, expected, atol=1e-4)
        # the batched read-out (pymunk.batch) is row for row what the bodies say
        for thing, (x, y, vx, vy) in zip((scene._thing_of[i] for i in scene._i[:scene._n, 0]),
                                         scene._f[:scene._n]):
            assert tuple(thing.body.position) == (x, y) and tuple(thing.body.velocity) == (vx, vy)


def test_particles_hit_static_geometry_but_not_each_other():
    env = make()
    env.reset(seed=3, options={"num_pegs": (8, 8), "spread": 0.6})
    env.action_space.seed(3)
    static_hits = 0
    for _ in range(150):
        *_, info = env.step(env.action_space.sample())
        contacts = np.asarray(info["contacts"])
        assert not np.any((contacts[:, 0] > 0) & (contacts[:, 1] > 0)), "particles collided"
        static_hits += int(np.count_nonzero(contacts[:, 0] == -1))
    assert static_hits > 20
    assert info["particles"] > 100  # hundreds alive in flight, overlapping freely


def test_particles_land_in_the_target_and_expire():
    env = make()
    env.reset(seed=1, options={"num_pegs": (0, 0), "spread": 0.0, "lifetime": (6.0, 6.0)})
    scene = env.unwrapped
    total = 0.0
    for _ in range(120):  # park above the target, nozzle straight down: every particle is caught
        target_x = (scene.bin_edges[scene.target] + scene.bin_edges[scene.target + 1]) / 2
        x = scene.emitter.body.position.x
        a = 1 if x > target_x + 3 else 2 if x < target_x - 3 else 4 if scene.aim < -0.05 else (
            3 if scene.aim > 0.05 else 0)
        total += env.step(a)[1]
    assert scene.caught > 150 and np.isclose(total, 0.1 * scene.caught)
    floor_top = (scene.world_height - 8.0) * scene.scale
    st = env.unwrapped._state()
    assert np.all(st["position"][1:, 1] + st["radius"][1:] < floor_top + 0.5)  # landed ones are gone
    # a short lifetime bounds how many are alive, however they fly
    env.reset(seed=1, options={"lifetime": (0.2, 0.2), "emit_rate": 4.0})
    for _ in range(30):
        *_, info = env.step(0)
    assert info["particles"] <= 4 * 6


def test_colour_follows_age_bands():
    env = make()
    _, info = env.reset(seed=2, options={"lifetime": (0.4, 0.4), "gravity": 0.0, "speed": (20.0, 20.0)})
    scene = env.unwrapped
    bands = [tuple(c) for c in scene.band_colors.tolist()]
    assert len(set(bands)) == 4
    *_, info = env.step(0)
    pid = int(info["state"]["id"][1])  # the first particle, born after step 1, lives 12 steps
    seen = []
    for _ in range(11):
        st = info["state"]
        row = by_id(st)[pid]
        seen.append(bands.index(tuple(st["color"][row].tolist())))
        *_, info = env.step(0)
    assert seen == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert pid in by_id(info["state"])
    *_, info = env.step(0)
    assert pid not in by_id(info["state"])  # expired after 12 steps



def test_batched_particle_drawing_matches_canvas_dots():
    """The scene scatters particle discs itself (4x faster); the pixels are those of Canvas.dots."""
    for size, opts in (((64, 64), {}), ((96, 48), {"gravity": -200.0}), ((160, 120), {"spread": 1.0})):
        env = make(width=size[0], height=size[1])
        env.reset(seed=5, options=opts)
        env.action_space.seed(5)
        for _ in range(40):
            ours, *_ = env.step(env.action_space.sample())
        scene = env.unwrapped
        assert scene._n > 20
        scene._paint_background()  # leaves the canvas showing the background alone
        xy, colors = scene._f[:scene._n, :2], scene.band_colors[scene._band]
        scene.canvas.dots(xy, 4.0, colors)
        scene.canvas.dots(xy, 0.0, colors)
        scene.canvas.shape(scene.emitter.shapes[0], scene.emitter.color)
        np.testing.assert_array_equal(ours, scene.canvas.to_array())
