"""
## Description

An emitter slides along a rail at the top of the frame and sprays a steady stream of small particles
through its nozzle. The particles fall under gravity, bounce off a few pegs and land in a row of bins
at the bottom; one bin, shaded, is the target. Each particle lives a limited time and changes colour
as it ages (four age bands). The agent moves the emitter and turns its nozzle to pour as many
particles as it can into the target bin; after every 250 caught particles the target moves to
another bin, chosen at random.

## Action Space

`Discrete(5)` by default:

| action | meaning                                  |
|--------|------------------------------------------|
| 0      | do nothing (emitter stops)               |
| 1      | move emitter left                        |
| 2      | move emitter right                       |
| 3      | turn the spray left (clockwise on screen) |
| 4      | turn the spray right (counter-clockwise) |

With `continuous=True`: `Box(-1, 1, (2,), float32)`, (emitter velocity, nozzle turn rate) as fractions
of their top speeds. Keys: ← / → move, a / d turn the nozzle.

## Observation Space

`Box(0, 255, (height, width, 3), uint8)`: the rendered frame (default 64×64). Flat colours, no HUD.

## State

`info["state"]` (see `envs.base`): row 0 is the emitter (kind `emitter`, `controlled=True`; its
`angle` is its rotation: 0 sprays straight down, positive tilts the spray to the left), then one row
per live particle (kind `particle`, 150–250 of them in the standard scene) in order of emission; ids
are never reused. A particle's `color` is its current age-band colour, so it changes as the particle
ages; particles of one band share a colour.
`info["contacts"]`: pairs of ids that began touching this step, `-1` standing for static geometry
(particles touch walls, pegs and dividers, never each other).
`info["particles"]`: how many are alive; `info["caught"]`: particles caught this episode;
`info["target_bin"]`: index of the target bin, counted from the left.

## Rewards

+0.1 for each particle that lands in the target bin (about 3,000 are emitted per episode). Over
1,000-step episodes (seeds 0–19, default options) the heuristic, which picks the emitter position and
aim whose ballistic spray best clears the pegs into the target, earns a mean of 155.6 (±13.5) and
uniform random actions 35.7 (±14.9).

## Starting State

The emitter at a random x on the rail with a random nozzle angle within ±0.5 rad; no particles yet
(in a frame under 52 units wide, e.g. 32×160, the rail has no room: the emitter stays in the middle
and only aims, and the pegs line up down the middle).
`num_bins` bins across the bottom, the target one drawn at random; `num_pegs` pegs of radius 6–10
units placed apart from each other between the rail and the bins. Age-band and emitter colours are
drawn from the episode's palette.

## Episode End

Never terminated; truncated at 1,000 steps (the registered `max_episode_steps`).

## Physics

dt = 1/30 s in 1 substep (particles move under 10 units a step, less than any obstacle's reach);
gravity 110 units/s² downward (world: 256 units tall). The emitter is a kinematic body (8 × 20 units,
150 units/s, nozzle turning 2.4 rad/s within ±1.1 rad) that touches nothing. After each step it
emits `emit_rate` particles (fractions carry over) from the nozzle tip at a speed drawn from `speed`
along the nozzle, jittered by up to ±`spread` rad, plus the emitter's own velocity, spread along the
step's path. Particles are circles of radius 4 units, mass 1, that do not rotate; they collide with
the walls, pegs and dividers (elasticity `elasticity` × 1.0, friction 0.1 × 1.0) but not with each
other nor with the bin floors (`pymunk.ShapeFilter` categories). A particle is removed when it
reaches a bin floor (a position check after the step, so fast ones cannot tunnel through), when it
leaves the frame, or when its lifetime, drawn from `lifetime`, runs out; its age band is
⌊4 × age / lifetime⌋. Particles live in a spatial-hash broadphase (cell 16 units).

## Arguments

```python
gym.make("WorldGym/ParticleSystems-v0", render_mode="rgb_array", width=64, height=64, continuous=False)
env.reset(seed=0, options={"gravity": 400.0, "emit_rate": 3.0, "num_pegs": (0, 0)})
```

Options: `gravity`, `emit_rate`, `lifetime`, `speed`, `spread`, `elasticity`, `num_pegs`, `num_bins`.

## Version History

* v0: initial release.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import pymunk
import pymunk.batch

from envs.base import PymunkScene, Thing, fit
from envs.kinds import KIND_INDEX
from envs.options import Option
from envs.state import ObjectState

WALL = 6.0
RAIL_Y = 22.0  # emitter centre, units below the top
EMITTER_W, EMITTER_LEN = 8.0, 20.0
MOVE_SPEED = 150.0
AIM_RATE = 2.4  # rad/s
AIM_MAX = 1.1  # rad either side of straight down
RADIUS = 4.0  # particle radius
BIN_HEIGHT = 44.0
FLOOR = 8.0  # floor thickness
N_BANDS = 4
NOZZLE = EMITTER_LEN / 2 + RADIUS + 2  # from the emitter's centre to where particles appear
TARGET_QUOTA = 250  # caught particles before the target moves
REWARD = 0.1

# Particles hit walls, pegs and dividers but not each other, and fall into the bin floors, which
# swallow them (a position check counts them): no Python collision callback per landing.
PARTICLE_CAT, FLOOR_CAT = 0b10, 0b100
PARTICLE_FILTER = pymunk.ShapeFilter(
    categories=PARTICLE_CAT, mask=pymunk.ShapeFilter.ALL_MASKS() ^ (PARTICLE_CAT | FLOOR_CAT))
FLOOR_FILTER = pymunk.ShapeFilter(categories=FLOOR_CAT)
EMITTER_FILTER = pymunk.ShapeFilter(categories=0, mask=0)  # touches nothing
BODY_FIELDS = (pymunk.batch.BodyFields.BODY_ID | pymunk.batch.BodyFields.POSITION
               | pymunk.batch.BodyFields.VELOCITY)


class ParticleSystems(PymunkScene):
    SUBSTEPS = 1
    ACTIONS = ("noop", "left", "right", "aim_left", "aim_right")
    CONTINUOUS_DIM = 2
    KEYS = {("left",): 1, ("right",): 2, ("a",): 3, ("d",): 4}
    OPTIONS = {
        "gravity": Option(110.0, "downward acceleration, units/s²", -1000.0, 3000.0),
        "emit_rate": Option(3.0, "particles emitted per step", 0.0, 12.0),
        "lifetime": Option((2.0, 3.0), "particle lifetime range, s", 0.1, 10.0),
        "speed": Option((40.0, 90.0), "nozzle speed range, units/s", 0.0, 600.0),
        "spread": Option(0.15, "nozzle jitter, rad either side", 0.0, 1.5),
        "elasticity": Option(0.5, "particle elasticity", 0.0, 1.0),
        "num_pegs": Option((3, 6), "number of pegs, drawn per episode", 0, 12),
        "num_bins": Option(5, "number of bins across the bottom", 2, 9),
    }

    def _build(self) -> None:
        o = self.opt
        self.space.gravity = (0.0, o["gravity"])
        self.space.use_spatial_hash(16.0, 1000)  # faster than the default tree for many small shapes
        self.add_walls(top=False, bottom=False, thickness=WALL, elasticity=1.0, friction=1.0)
        self._add_bins(o["num_bins"])
        self._add_pegs(self.randint(*o["num_pegs"]))
        self._add_emitter()
        self.band_colors = np.array(self.palette.take_many(N_BANDS), np.uint8)
        self._young = tuple(map(int, self.band_colors[0]))
        self.target = self.randint(0, o["num_bins"] - 1)
        self.caught = 0
        # The first _n rows of these columns are the live particles, in emission order.
        self._n = 0
        self._f = np.zeros((256, 4))  # x, y, vx, vy (world units), refreshed after every step
        self._i = np.zeros((256, 3), np.int64)  # id, step of birth, lifetime in steps
        self._ptr = np.zeros(256, np.uintp)  # pymunk body ids, to find rows in the batch read-out
        self._thing_of: dict[int, Thing] = {}  # particle id → Thing
        self._pool: list = []  # bodies and shapes of dead particles: reusing them is much faster
        self._debt = 0.0  # fraction of a particle owed to the next step
        self._age_bands()
        self._plans = None  # the heuristic's candidate moves for the current target
        self._buf = pymunk.batch.Buffer()
        self._paint_background()

    def _add_bins(self, n: int) -> None:
        w, h, body = self.world_width, self.world_height, self.space.static_body
        self.bin_edges = np.linspace(WALL, w - WALL, n + 1)
        for x0, x1 in zip(self.bin_edges[:-1], self.bin_edges[1:]):
            floor = pymunk.Segment(body, (x0, h - FLOOR / 2), (x1, h - FLOOR / 2), FLOOR / 2)
            floor.filter = FLOOR_FILTER
            self.add_static(floor)
        self.divider_tops = [(x, h - BIN_HEIGHT) for x in self.bin_edges[1:-1]]
        for x, y in self.divider_tops:
            divider = pymunk.Segment(body, (x, y), (x, h - FLOOR), 2.0)
            divider.elasticity, divider.friction = 1.0, 1.0
            self.add_static(divider)

    def _add_pegs(self, n: int) -> None:
        self.pegs: list[tuple[float, float, float]] = []
        lo_y, hi_y = RAIL_Y + 50, self.world_height - BIN_HEIGHT - 25
        for _ in range(n):
            r = self.uniform(6.0, 10.0)
            for _attempt in range(50):  # rejection sampling for a free spot
                x, y = self.uniform(*fit(WALL + 20, self.world_width - WALL - 20)), self.uniform(lo_y, hi_y)
                if all(math.hypot(x - px, y - py) > r + pr + 24 for px, py, pr in self.pegs):
                    self.pegs.append((x, y, r))
                    peg = pymunk.Circle(self.space.static_body, r, (x, y))
                    peg.elasticity, peg.friction = 1.0, 1.0
                    self.add_static(peg)
                    break

    def _add_emitter(self) -> None:
        body = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        self.rail = fit(WALL + EMITTER_LEN, self.world_width - WALL - EMITTER_LEN)  # narrow: one point
        body.position = (self.uniform(*self.rail), RAIL_Y)
        body.angle = -self.uniform(-0.5, 0.5)
        shape = pymunk.Poly.create_box(body, (EMITTER_W, EMITTER_LEN))
        shape.filter = EMITTER_FILTER
        self.emitter = self.add_thing(body, [shape], "emitter", controlled=True)

    def _paint_background(self) -> None:
        """Zone, rail and static geometry change only when the target moves: paint them once, keep
        the raw pixels (padded so that particle discs never index outside) and copy them per frame."""
        c, h = self.canvas, self.world_height
        c.clear(self.palette.background)
        c.rect(self.bin_edges[self.target], h - BIN_HEIGHT, self.bin_edges[self.target + 1], h,
               self.palette.zone)
        c.segment((WALL, RAIL_Y), (self.world_width - WALL, RAIL_Y), 1.0, self.palette.static)
        self.draw_static(c)
        surf, r = c.surface, int(math.ceil(RADIUS * self.scale))
        nbytes = surf.get_bytesize()
        raw = np.frombuffer(surf.get_buffer(), np.uint8).reshape(self.height, surf.get_pitch())
        self._screen = raw[:, :self.width * nbytes].view((np.void, nbytes))  # (H, W) pixels of the surface
        # Padded by a disc and a margin: discs never index outside, and a particle off the frame is
        # parked in the margin (out of sight) instead of being masked out.
        self._pad = 2 * r + 1
        self._bg = np.pad(self._screen.copy(), self._pad)
        self._park = (-r - 1, np.array([self.width + r, self.height + r]))
        oy, ox = np.mgrid[-r:r + 1, -r:r + 1]  # the disc of Canvas.dots, as flat offsets
        disc = ox * ox + oy * oy <= max((RADIUS * self.scale) ** 2, 0.25)
        self._disc = (oy[disc] * self._bg.shape[1] + ox[disc]).astype(np.int64)
        self._band_px = np.array([surf.map_rgb(tuple(map(int, col))).to_bytes(nbytes, sys.byteorder)
                                  for col in self.band_colors], (np.void, nbytes))

    # ------------------------------------------------------------------ dynamics
    @property
    def aim(self) -> float:
        """Nozzle angle, rad: 0 points straight down, positive turns the spray to the right."""
        return -self.emitter.body.angle

    def _control(self, action) -> None:
        if self.continuous:
            vx, turn = float(action[0]) * MOVE_SPEED, float(action[1]) * AIM_RATE
        else:
            vx = (0.0, -MOVE_SPEED, MOVE_SPEED, 0.0, 0.0)[action]
            turn = (0.0, 0.0, 0.0, -AIM_RATE, AIM_RATE)[action]
        body = self.emitter.body
        vx = self.bounded_rate(vx, body.position.x, *self.rail)  # rail ends
        turn = self.bounded_rate(turn, self.aim, -AIM_MAX, AIM_MAX)
        body.velocity, body.angular_velocity = (vx, 0.0), -turn

    def _update(self, action) -> tuple[float, bool]:
        n = self._n
        self._read_particles()
        x, y = self._f[:n, 0], self._f[:n, 1]
        landed = y + RADIUS >= self.world_height - FLOOR
        caught = int(np.count_nonzero(np.searchsorted(self.bin_edges, x[landed]) - 1 == self.target))
        gone = (y < -RADIUS) | (np.abs(x - self.world_width / 2) > self.world_width / 2 + RADIUS)
        dead = landed | gone | (self.steps - self._i[:n, 1] >= self._i[:n, 2])
        if dead.any():
            self._kill(dead)
        self._emit()
        self._age_bands()
        if self.caught // TARGET_QUOTA < (self.caught + caught) // TARGET_QUOTA:
            self.target = (self.target + self.randint(1, self.opt["num_bins"] - 1)) % self.opt["num_bins"]
            self._paint_background()
        self.caught += caught
        return REWARD * caught, False

    def _read_particles(self) -> None:
        """Positions and velocities of all particles in one batched call (no Python per particle)."""
        if self._n == 0:
            return
        self._buf.clear()
        pymunk.batch.get_space_bodies(self.space, BODY_FIELDS, self._buf)
        ptr = np.frombuffer(self._buf.int_buf(), np.uintp)  # in the space's own order
        data = np.frombuffer(self._buf.float_buf(), np.float64).reshape(-1, 4)  # x, y, vx, vy
        order = np.argsort(ptr)
        self._f[:self._n] = data[order[np.searchsorted(ptr[order], self._ptr[:self._n])]]

    def _kill(self, dead: np.ndarray) -> None:
        n = self._n
        for i in self._i[:n, 0][dead].tolist():
            thing = self._thing_of.pop(i)
            self.remove_thing(thing)
            self._pool.append((thing.body, thing.shapes[0]))
        keep = ~dead
        self._n = m = int(np.count_nonzero(keep))
        self._f[:m], self._i[:m], self._ptr[:m] = self._f[:n][keep], self._i[:n][keep], self._ptr[:n][keep]

    def _emit(self) -> None:
        self._debt += self.opt["emit_rate"]
        k = int(self._debt)
        if k == 0:
            return
        self._debt -= k
        n, o, body = self._n, self.opt, self.emitter.body
        if n + k > len(self._f):  # grow the columns
            self._f, self._i, self._ptr = (np.concatenate([c, np.zeros_like(c)]) for c in
                                           (self._f, self._i, self._ptr))
        (s0, s1), (l0, l1), spread = o["speed"], o["lifetime"], o["spread"]
        (ex, ey), (evx, evy), aim = body.position, body.velocity, self.aim
        f, i, p = [], [], []  # new rows of the columns
        for jitter, speed, travel, life in self.np_random.random((k, 4)).tolist():
            a = aim + (2 * jitter - 1) * spread
            dx, dy = math.sin(a), math.cos(a)
            speed = s0 + (s1 - s0) * speed
            vx, vy = dx * speed + evx, dy * speed + evy
            travel *= self.DT  # spread the new ones along this step's path
            x, y = ex + dx * NOZZLE + vx * travel, ey + dy * NOZZLE + vy * travel
            thing = self._spawn((x, y), (vx, vy))
            self._thing_of[thing.id] = thing
            f.append((x, y, vx, vy))
            i.append((thing.id, self.steps, max(round((l0 + (l1 - l0) * life) / self.DT), 1)))
            p.append(thing.body.id)
        self._f[n:n + k], self._i[n:n + k], self._ptr[n:n + k] = f, i, p
        self._n = n + k

    def _spawn(self, pos, vel):
        if self._pool:
            body, shape = self._pool.pop()
        else:
            body = pymunk.Body(1.0, math.inf)
            shape = pymunk.Circle(body, RADIUS)
            shape.filter, shape.elasticity, shape.friction = PARTICLE_FILTER, self.opt["elasticity"], 0.1
        body.position, body.velocity = pos, vel
        # Thing.color is the colour at birth; _state reports the current age band's colour.
        return self.add_thing(body, [shape], "particle", color=self._young, radius=RADIUS)

    def _age_bands(self) -> None:
        """Age band of each particle, 0 (young) to N_BANDS - 1: its colour index."""
        born, life = self._i[:self._n, 1], self._i[:self._n, 2]
        self._band = np.minimum((self.steps - born) * N_BANDS // life, N_BANDS - 1)

    def _extra_info(self) -> dict:
        return {"particles": self._n, "caught": self.caught, "target_bin": self.target}

    # ------------------------------------------------------------------ frames and state
    def _draw(self, canvas) -> None:
        """Background pixels, every particle's disc in one numpy scatter (as ``Canvas.dots`` draws
        them, 4x faster), then the emitter."""
        frame, pad = self._bg.copy(), self._pad
        if self._n:
            px = np.floor(self._f[:self._n, :2] * self.scale).astype(np.int64)
            np.maximum(px, self._park[0], out=px)
            np.minimum(px, self._park[1], out=px)
            flat, colors = frame.reshape(-1), self._band_px[self._band]
            centre = (px[:, 1] + pad) * frame.shape[1] + px[:, 0] + pad
            flat[(centre[:, None] + self._disc).ravel()] = np.repeat(colors, len(self._disc))
            flat[centre] = colors  # centres again on top: each particle shows its own colour there
        self._screen[...] = frame[pad:pad + self.height, pad:pad + self.width]
        (x, y), cos, sin = self.emitter.body.position, math.cos(-self.aim), math.sin(-self.aim)
        hw, hl = EMITTER_W / 2, EMITTER_LEN / 2  # the emitter's box, turned (Canvas.shape, faster)
        canvas.polygon([(x + cos * u - sin * v, y + sin * u + cos * v)
                        for u, v in ((-hw, -hl), (hw, -hl), (hw, hl), (-hw, hl))], self.emitter.color)

    def _state(self) -> ObjectState:
        """The base schema, vectorised: one row for the emitter, then the particles' columns."""
        e, n, s, dt = self.emitter, self._n, self.scale, self.DT
        rows = np.empty((n + 1, 4))
        rows[0], rows[1:] = (*e.body.position, *e.body.velocity), self._f[:n]
        rows *= (s, s, s * dt, s * dt)
        pos, vel = rows[:, :2].astype(np.float32), rows[:, 2:].astype(np.float32)
        ang, angv = np.zeros(n + 1, np.float32), np.zeros(n + 1, np.float32)
        ang[0], angv[0] = e.body.angle, np.float32(e.body.angular_velocity) * np.float32(dt)
        rad = np.full(n + 1, RADIUS, np.float32) * np.float32(s)
        rad[0] = np.float32(e.radius) * np.float32(s)
        color = np.empty((n + 1, 3), np.uint8)
        color[0], color[1:] = e.color, self.band_colors[self._band]
        kind = np.full(n + 1, KIND_INDEX["particle"], np.int64)
        kind[0] = e.kind
        x, y = pos[:, 0], pos[:, 1]
        visible = (x + rad > 0) & (x - rad < self.width) & (y + rad > 0) & (y - rad < self.height)
        ids = np.empty(n + 1, np.int64)
        ids[0], ids[1:] = e.id, self._i[:n, 0]
        return ObjectState({"id": ids, "kind": kind, "position": pos, "velocity": vel, "angle": ang,
                            "angular_velocity": angv, "radius": rad, "color": color, "visible": visible,
                            "controlled": np.arange(n + 1) == 0})

    # ------------------------------------------------------------------ scripted policy
    def heuristic(self):
        """Head for the nearest (position, aim) from which most of the spray lands in the target."""
        if self._plans is None or self._plans[0] != self.target:
            self._plans = (self.target, *self._score_plans())
        _, ex, aims, score = self._plans
        body = self.emitter.body
        cost = np.abs(ex - body.position.x) / MOVE_SPEED + np.abs(aims - self.aim) / AIM_RATE
        good = score >= min(0.8 * score.max(), score.max())  # near-best, then nearest
        best = np.argmin(np.where(good, cost, np.inf))
        dx, da = ex[best] - body.position.x, aims[best] - self.aim
        if self.continuous:
            return np.array([np.clip(dx / (MOVE_SPEED * self.DT), -1, 1),
                             np.clip(da / (AIM_RATE * self.DT), -1, 1)], np.float32)
        if abs(dx) > MOVE_SPEED * self.DT / 2:
            return 1 if dx < 0 else 2
        if abs(da) > AIM_RATE * self.DT / 2:
            return 3 if da < 0 else 4
        return 0

    def _score_plans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate (emitter x, aim) pairs and how many of 25 sample particles (slowest to fastest,
        jittered either way) would fly clear of pegs and dividers into the target: ballistic paths,
        computed once per target."""
        o, g = self.opt, self.space.gravity.y
        x0, x1 = self.bin_edges[self.target], self.bin_edges[self.target + 1]
        aims = np.repeat(np.linspace(-1.0, 1.0, 41), 5)  # (C,) candidates
        aim_at = (x0 + x1) / 2 + np.tile([-0.3, -0.15, 0.0, 0.15, 0.3], 41) * (x1 - x0)
        if g <= 0:  # nothing ever lands: just sit above the target
            return np.clip(aim_at, *self.rail), aims * 0, aims * 0
        speeds = np.repeat(np.linspace(*o["speed"], 5), 5)  # (S,) samples
        jitter = np.tile(np.linspace(-o["spread"], o["spread"], 5), 5)
        angle = aims[:, None] + jitter  # (C, S)
        d = np.stack([np.sin(angle), np.cos(angle)], -1)  # (C, S, 2)
        v = d * speeds[:, None]
        tip = d * NOZZLE
        dy = self.world_height - FLOOR - RADIUS - RAIL_Y - tip[..., 1]
        t_land = (np.sqrt(v[..., 1] ** 2 + 2 * g * dy) - v[..., 1]) / g  # (C, S)
        ex = aim_at - (tip[:, 12, 0] + v[:, 12, 0] * t_land[:, 12])  # the middle sample hits aim_at
        t = t_land[..., None] * np.linspace(0, 1, 16)  # (C, S, T)
        px = ex[:, None, None] + tip[..., 0:1] + v[..., 0:1] * t
        py = RAIL_Y + tip[..., 1:2] + v[..., 1:2] * t + 0.5 * g * t * t
        obstacles = np.array([*self.pegs, *((x, y, 2.0) for x, y in self.divider_tops)]).reshape(-1, 3)
        gap = np.hypot(px[..., None] - obstacles[:, 0], py[..., None] - obstacles[:, 1]) - obstacles[:, 2]
        clear = (gap.min(-1, initial=np.inf) > RADIUS + 1).all(-1)  # (C, S)
        clear &= ((px > WALL + RADIUS) & (px < self.world_width - WALL - RADIUS)).all(-1)
        inside = (px[..., -1] > x0 + RADIUS) & (px[..., -1] < x1 - RADIUS)
        score = (clear & inside).sum(-1).astype(float)
        score[(ex < self.rail[0]) | (ex > self.rail[1])] = -1
        return np.clip(ex, *self.rail), aims, score
