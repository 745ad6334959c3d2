"""
## Description

Balls drop one by one from the top of the frame onto a row of spinning rotors (wheels, bars and
gears, each pinned to the background by a pivot and turned by a motor). A cup stands on the bottom
edge. The agent sets the motors' speed: spin the rotors so that they bat, carry or deflect each
falling ball into the cup. A ball that misses the cup falls out of the frame and is lost.

All motors share one drive: the agent sets one target rate and every rotor follows it times its own
gear ratio, so all rotors turn the same way at somewhat different speeds.

## Action Space

`Discrete(4)` by default; the target rate persists between steps:

| action | meaning                                                       |
|--------|---------------------------------------------------------------|
| 0      | do nothing (keep the current target rate)                     |
| 1      | faster clockwise (target rate + 1/8 of `max_rate`)            |
| 2      | faster counter-clockwise (target rate − 1/8 of `max_rate`)    |
| 3      | brake (target rate 0)                                         |

With `continuous=True`: `Box(-1, 1, (1,), float32)`, the target rate as a fraction of `max_rate`
(positive = clockwise on screen). Keys: → / d (clockwise), ← / a (counter-clockwise), space / s (brake).

## Observation Space

`Box(0, 255, (height, width, 3), uint8)`: the rendered frame (default 64×64). Flat colours, no HUD.

## State

`info["state"]` (see `envs.base`): one row per rotor (kind `rotor`, `controlled=True`, position =
its pivot) and one per ball in play (kind `ball`), in the frame's pixel coordinates. The cup and the
side walls are static geometry (grey, not reported). `info["contacts"]`: pairs of ids that began
touching this step, `-1` standing for static geometry (walls, cup). Extra keys: `info["motor_rate"]`
(the target rate, rad/s, positive = clockwise), `info["caught"]` and `info["lost"]` (totals so far).

## Rewards

+1 for each ball that lands in the cup, −0.2 for each ball lost (fallen out of the bottom of the
frame, or flung more than a frame height above it). Over 1,000-step episodes (seeds 0–19, default
options) the heuristic earns a mean of 9.78 (11.7 balls caught, 9.4 lost) and uniform random actions
0.96 (4.3 caught, 16.5 lost); with `continuous=True` 9.96 and 1.62. The heuristic replays the next
ball's fall in a scratch space for nine drive rates and picks one that lands it in the cup.

## Starting State

2–3 rotors (option `num_rotors`; fewer where the frame is too narrow for them) spread across the
middle band of the frame, each a wheel (a disc with a knob that shows its turning), a bar (with a
hub) or a gear (a hub with 2–3 crossing teeth), of swept radius 22–36 units (option `rotor_size`),
at a random angle and at rest, keeping a gap wider than a ball from each other and from the walls;
the target rate is 0. The cup (inner width `cup_width`) stands on the bottom edge at a random x.
The first ball drops after 5 steps, the next ones every 30–60 steps (option `spawn_interval`), at
most 6 at a time, from just above the frame over a random rotor.

## Episode End

Never terminated (balls keep coming); truncated at 1,000 steps (the registered `max_episode_steps`).

## Physics

dt = 1/30 s in 3 substeps; gravity 400 units/s² downward (world: 256 units tall). Each rotor is a
dynamic body held by a `PivotJoint` to the static body and driven by a `SimpleMotor` whose torque is
capped (`motor_torque` × the rotor's moment of inertia), so balls visibly slow it down and a jam
stalls it. Each rotor turns at the target rate × its own gear ratio (drawn in [0.7, 1.3]). Rotors
and balls (radius 6–9 units, `ball_radius`) have the same density (mass = area / 100); a wheel's
knob puts its centre of mass off the pivot, so gravity swings it when the motor is weak. Elasticity
0.5, friction 0.7 (walls 0.5 / 0.5); ball speed capped at 700 units/s. The cup: three segments
(elasticity 0.2, friction 0.8) with a sensor on its floor; a ball that touches it is caught.

## Arguments

```python
gym.make("WorldGym/SpinningObjects-v0", render_mode="rgb_array", width=64, height=64, continuous=False)
env.reset(seed=0, options={"num_rotors": (3, 3), "gravity": 250.0, "max_rate": 10.0})
```

Options: `gravity`, `num_rotors`, `rotor_size`, `ball_radius`, `spawn_interval`, `max_rate`,
`motor_torque`, `cup_width`.

## Version History

* v0: initial release.
"""
from __future__ import annotations

import math

import numpy as np
import pymunk

from envs.base import PymunkScene, speed_limit
from envs.kinds import KIND_INDEX
from envs.options import Option

WALL = 6.0
MAX_BALLS = 6
MAX_BALL_SPEED = 700.0
RATE_STEPS = 8  # discrete actions change the target rate by max_rate / RATE_STEPS
CUP_DEPTH = 28.0
LOST_PENALTY = 0.2
BALL, CUP_SENSOR = 1, 2  # collision types
ELASTICITY, FRICTION = 0.5, 0.7
REPLAN = 6  # heuristic: steps between plans for the same ball
LOOKAHEAD = 60  # heuristic: look-ahead substeps (of 2 × dt / SUBSTEPS)


class SpinningObjects(PymunkScene):
    SUBSTEPS = 3
    ACTIONS = ("noop", "clockwise", "counter_clockwise", "brake")
    CONTINUOUS_DIM = 1
    KEYS = {("right",): 1, ("d",): 1, ("left",): 2, ("a",): 2, ("space",): 3, ("s",): 3}
    OPTIONS = {
        "gravity": Option(400.0, "downward acceleration, units/s²", 0.0, 5000.0),
        "num_rotors": Option((2, 3), "number of rotors, drawn per episode (fewer if they don't fit)", 1, 6),
        "rotor_size": Option((22.0, 36.0), "rotor swept radius range, units", 8.0, 120.0),
        "ball_radius": Option((6.0, 9.0), "ball radius range, units", 4.0, 30.0),
        "spawn_interval": Option((30, 60), "steps between ball drops", 1, 1000),
        "max_rate": Option(6.0, "top motor rate, rad/s", 0.1, 40.0),
        "motor_torque": Option(60.0, "motor torque cap / rotor moment (rad/s² at no load)", 0.1, 10000.0),
        "cup_width": Option(48.0, "inner width of the cup, units", 12.0, 240.0),
    }

    def _build(self) -> None:
        o = self.opt
        self.space.gravity = (0.0, o["gravity"])
        self.add_walls(top=False, bottom=False, thickness=WALL, elasticity=0.5, friction=0.5)
        self._add_cup(o["cup_width"])
        self.rotors = []
        gap = 2 * o["ball_radius"][1] + 4.0  # kept between rotors and walls, so balls don't jam
        fit = int((self.world_width - 2 * WALL - gap) // (2 * o["rotor_size"][0] + gap))
        n = max(1, min(self.randint(*o["num_rotors"]), fit))
        for i in range(n):
            self._add_rotor(i, n, gap)
        self.ball_colors = self.palette.take_many(MAX_BALLS)
        self.rate = 0.0  # target rate of the drive, rad/s, positive = clockwise on screen
        self.next_drop = 5
        self.caught = self.lost = 0
        self._in_cup: list[pymunk.Shape] = []
        self._plan = None  # heuristic: (ball id, replan step, rate)
        self.space.on_collision(BALL, CUP_SENSOR, begin=self._on_cup)

    def _add_cup(self, width: float) -> None:
        """A U of three static segments on the bottom edge, with a sensor lying on its floor."""
        w, h, t = self.world_width, self.world_height, 3.0
        half = min(width / 2, (w - 2 * WALL) / 2 - 2 * t)
        x = self.uniform(WALL + half + t, w - WALL - half - t)
        floor, rim = h - t, h - CUP_DEPTH
        body = self.space.static_body
        segs = [pymunk.Segment(body, (x - half - t, rim), (x - half - t, floor), t),
                pymunk.Segment(body, (x - half - t, floor), (x + half + t, floor), t),
                pymunk.Segment(body, (x + half + t, floor), (x + half + t, rim), t)]
        for s in segs:
            s.elasticity, s.friction = 0.2, 0.8
        self.add_static(*segs)
        top = floor - t - 8.0
        sensor = pymunk.Poly(body, [(x - half, top), (x + half, top), (x + half, floor), (x - half, floor)])
        sensor.sensor, sensor.collision_type = True, CUP_SENSOR
        self.add_static(sensor, drawn=False)
        self.cup_x, self.cup_half, self.cup_rim = x, half, rim

    def _add_rotor(self, i: int, n: int, gap: float) -> None:
        """Rotor i of n in its own slot across the middle band: a wheel, a bar or a gear."""
        o = self.opt
        slot = (self.world_width - 2 * WALL - gap) / n
        r = max(min(self.uniform(*o["rotor_size"]), (slot - gap) / 2), 8.0)
        x = WALL + gap / 2 + slot * (i + 0.5) + self.uniform(-1, 1) * max((slot - gap) / 2 - r, 0.0)
        y = self.world_height * self.uniform(0.42, 0.6)
        body = pymunk.Body()
        body.position, body.angle = (x, y), self.uniform(0, 2 * math.pi)
        shapes = getattr(self, "_" + ("wheel", "bar", "gear")[self.randint(0, 2)])(body, r)
        for s in shapes:
            s.density, s.elasticity, s.friction = 0.01, ELASTICITY, FRICTION  # as balls: mass = area / 100
        thing = self.add_thing(body, shapes, "rotor", controlled=True)
        ratio = self.uniform(0.7, 1.3)
        motor = pymunk.SimpleMotor(self.space.static_body, body, 0.0)
        motor.max_force = o["motor_torque"] * body.moment
        self.space.add(pymunk.PivotJoint(self.space.static_body, body, (x, y)), motor)
        thing.data.update(motor=motor, ratio=ratio, size=r)
        self.rotors.append(thing)

    @staticmethod
    def _wheel(body, r):
        """A disc with a knob on its rim, so its turning shows."""
        disc = r - max(6.0, 0.3 * r)
        return [pymunk.Circle(body, disc), pymunk.Poly(body, [(0, -6), (r, -6), (r, 6), (0, 6)])]

    @staticmethod
    def _bar(body, r):
        """A flat bar turning about its middle; the hub covers the pivot at every size."""
        return [pymunk.Poly.create_box(body, (2 * r, 10.0)), pymunk.Circle(body, 7.0)]

    def _gear(self, body, r):
        """A hub with 2 or 3 teeth crossing it (a plus or a six-pointed star)."""
        k = self.randint(2, 3)
        tooth = [(-r, -4.5), (r, -4.5), (r, 4.5), (-r, 4.5)]
        teeth = [pymunk.Poly(body, tooth, pymunk.Transform.rotation(math.pi * j / k)) for j in range(k)]
        return [pymunk.Circle(body, 0.45 * r), *teeth]

    def _drop_ball(self) -> None:
        o = self.opt
        r = self.uniform(*o["ball_radius"])
        mass = math.pi * r * r / 100.0
        body = speed_limit(pymunk.Body(mass, pymunk.moment_for_circle(mass, 0, r)), MAX_BALL_SPEED)
        rotor = self.rotors[self.randint(0, len(self.rotors) - 1)]  # drop over a rotor
        x = rotor.body.position.x + self.uniform(-0.8, 0.8) * rotor.data["size"]
        body.position = (min(max(x, WALL + r), self.world_width - WALL - r), -r)
        body.velocity = (self.uniform(-30, 30), self.uniform(0, 40))
        shape = pymunk.Circle(body, r)
        shape.elasticity, shape.friction, shape.collision_type = ELASTICITY, FRICTION, BALL
        used = [b.color for b in self._balls()]
        color = next(c for c in self.ball_colors if c not in used)
        self.add_thing(body, [shape], "ball", color=color)

    def _on_cup(self, arbiter: pymunk.Arbiter, space, data) -> None:
        self._in_cup.append(arbiter.shapes[0])

    # ------------------------------------------------------------------ dynamics
    def _control(self, action) -> None:
        if self.continuous:
            self.rate = float(action[0]) * self.opt["max_rate"]
        elif action:
            top = self.opt["max_rate"]
            self.rate = 0.0 if action == 3 else min(max(
                self.rate + (top if action == 1 else -top) / RATE_STEPS / self.SUBSTEPS, -top), top)
        for rotor in self.rotors:
            rotor.data["motor"].rate = -self.rate * rotor.data["ratio"]  # pymunk: w_b = -rate

    def _balls(self):
        return [t for t in self.things if t.kind == KIND_INDEX["ball"]]

    def _update(self, action) -> tuple[float, bool]:
        reward = 0.0
        caught = set(self._in_cup)
        self._in_cup.clear()
        for ball in self._balls():
            if ball.shapes[0] in caught:
                self.remove_thing(ball)
                self.caught += 1
                reward += 1.0
            elif not -self.world_height < ball.body.position.y - ball.radius < self.world_height:
                self.remove_thing(ball)
                self.lost += 1
                reward -= LOST_PENALTY
        if self.steps >= self.next_drop and len(self._balls()) < MAX_BALLS:
            self._drop_ball()
            self.next_drop = self.steps + self.randint(*self.opt["spawn_interval"])
        return reward, False

    def _extra_info(self) -> dict:
        return {"motor_rate": float(self.rate), "caught": self.caught, "lost": self.lost}

    def _draw(self, canvas) -> None:
        """The cup's inside, then the walls and cup as plain rectangles (cheaper than the default
        rounded segments, and the same at these sizes), then the rotors and balls."""
        x, half, rim, h = self.cup_x, self.cup_half, self.cup_rim, self.world_height
        canvas.rect(x - half, rim, x + half, h - 6.0, self.palette.zone)
        for x0, x1, y0 in ((0, WALL, 0), (self.world_width - WALL, self.world_width, 0),
                           (x - half - 6.0, x - half, rim), (x + half, x + half + 6.0, rim),
                           (x - half - 6.0, x + half + 6.0, h - 6.0)):
            canvas.rect(x0, y0, x1, h, self.palette.static)
        self.draw_things(canvas)

    # ------------------------------------------------------------------ scripted policy
    def heuristic(self):
        """Drive at the rate that, in a scratch look-ahead, drops the next incoming ball into the cup.

        The plan is kept for a ball for ``REPLAN`` steps (planning costs a few milliseconds).
        """
        ball = self._next_ball()
        if ball is None:
            want = 0.0
        else:
            if self._plan is None or self._plan[0] != ball.id or self.steps >= self._plan[1]:
                self._plan = (ball.id, self.steps + REPLAN, self._best_rate(ball))
            want = self._plan[2]
        top = self.opt["max_rate"]
        if self.continuous:
            return np.array([np.clip(want / top, -1, 1)], np.float32)
        if want == 0.0 and abs(self.rate) > top / 4:
            return 3
        dead = top / RATE_STEPS / 2
        return 0 if abs(want - self.rate) <= dead else (1 if want > self.rate else 2)

    def _next_ball(self):
        """The lowest ball that has not yet fallen past every rotor."""
        band = max(r.body.position.y + r.data["size"] for r in self.rotors)
        balls = [b for b in self._balls() if b.body.position.y < band]
        return max(balls, key=lambda b: b.body.position.y, default=None)

    def _best_rate(self, ball) -> float:
        """Of nine rates, the one whose neighbours also land in the cup (chaos makes lone hits
        unreliable), then the one nearest the cup, then the one nearest the current rate."""
        rates = np.linspace(-self.opt["max_rate"], self.opt["max_rate"], 9)
        miss = np.array([max(abs(self._landing(ball, float(r)) - self.cup_x) - self.cup_half, 0.0)
                         for r in rates])
        support = np.convolve(miss == 0, np.ones(3), "same")
        return float(rates[np.lexsort((np.abs(rates - self.rate), miss, -support))[0]])

    def _landing(self, ball, rate: float) -> float:
        """Where the ball crosses the cup's rim if the drive ramps to ``rate``: a cheap re-enactment
        with the rotors as kinematic bodies, the static geometry and this one ball."""
        space = pymunk.Space()
        space.gravity = self.space.gravity
        for s in self._static_shapes:
            space.add(pymunk.Segment(space.static_body, s.a, s.b, s.radius))
        rotors = []
        for r in self.rotors:
            body = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
            body.position, body.angle, body.angular_velocity = (r.body.position, r.body.angle,
                                                                 r.body.angular_velocity)
            space.add(body, *(pymunk.Circle(body, s.radius, s.offset) if isinstance(s, pymunk.Circle)
                              else pymunk.Poly(body, s.get_vertices()) for s in r.shapes))
            rotors.append((body, r.data["ratio"]))
        b = ball.body
        body = pymunk.Body(b.mass, b.moment)
        body.position, body.velocity = b.position, b.velocity
        space.add(body, pymunk.Circle(body, ball.radius))
        for s in space.shapes:
            s.elasticity, s.friction = ELASTICITY, FRICTION
        dt = 2 * self.DT / self.SUBSTEPS
        ramp = min(self.opt["max_rate"] / RATE_STEPS / self.DT, self.opt["motor_torque"]) * dt
        for _ in range(LOOKAHEAD):
            for rb, ratio in rotors:
                w = rb.angular_velocity
                rb.angular_velocity = w + min(max(rate * ratio - w, -ramp), ramp)
            space.step(dt)
            if body.position.y > self.cup_rim:
                break
        return body.position.x
