"""
## Description

Leaves drift down from the top of the frame, swaying, gliding and now and then tumbling in the air
while gusts of wind push them sideways. The agent slides a basket along the ground and catches as
many as it can. A leaf is gone once it lands in the basket, touches the ground or is blown out of
the frame; new leaves keep appearing at the top.

## Action Space

`Discrete(3)` by default:

| action | meaning                        |
|--------|--------------------------------|
| 0      | do nothing (basket stops)      |
| 1      | move basket left               |
| 2      | move basket right              |

With `continuous=True`: `Box(-1, 1, (1,), float32)`, the basket's velocity as a fraction of its top
speed. Keys: ← / → (or a / d).

## Observation Space

`Box(0, 255, (height, width, 3), uint8)`: the rendered frame (default 64×64). Flat colours, no HUD.

## State

`info["state"]` (see `envs.base`): one row per leaf in the air (kind `leaf`) and one for the basket
(kind `basket`, `controlled=True`), in the frame's pixel coordinates. `info["contacts"]`: pairs of ids
that began touching this step (`-1` is the ground; a leaf entering the basket pairs with the basket).
`info["wind"]`: the current wind, pixels per step (positive = to the right); `info["caught"]` and
`info["missed"]`: leaves caught / landed on the ground this step.

## Rewards

+1 for each leaf caught, −0.1 for each leaf that lands on the ground (none for one blown out of
the frame). Over 1,000-step episodes (seeds 0–19, default options) the heuristic earns a mean of
24.8 (25 caught, 1.4 missed), uniform random actions 7.0 and doing nothing 5.2.

## Starting State

Three leaves already in the upper half of the frame (fewer only where they do not fit), the basket
at a random x, a random wind. Every leaf has its own palette colour and a convex, leaf-like outline
between an ellipse and a pointed lens, `leaf_length` × `leaf_width` units (default 20–32 × 10–14), at
a random angle.

## Episode End

Never terminated (leaves keep falling); truncated at 1,000 steps (the registered `max_episode_steps`).

## Physics

dt = 1/30 s in 2 substeps (enough: leaves move < 3 units per substep); gravity 300 units/s²
downward (world: 256 units tall). Each leaf has a custom `velocity_func` modelling a thin plate
moving at velocity u relative to the wind (uₜ along the leaf, uₙ across it, α the angle of attack):
quadratic drag −k|uₙ|uₙ across and a five times weaker one along the leaf (applied implicitly, so
stable at any speed), a lift ∝ |u|² sin 2α perpendicular to u, and a pitching torque
−(k₁uₜuₙ + k₂|u|² sin 2θ / 2) with quadratic angular damping, which turns a leaf broadside to the
flow and back towards lying flat: leaves overshoot, glide sideways, sway to and fro, and tumble
(about one in four turns over) when a sway or gust goes too far. Every leaf's coefficients are
scaled by its own factor in [0.8, 1.25] times `drag`; broadside terminal speed ≈ 45–55 units/s,
where a ball in free fall reaches 300 units/s in one second. The wind eases towards a target
redrawn every 1–3 s in ±`wind` units/s; new leaves appear upwind so that most cross the frame.
Leaves collide with each other and the basket (elasticity 0.1, friction 0.6). The basket is a
kinematic trapezoid (`basket_width` × 14 units, 220 units/s) that stops at the frame edges; a
sensor along its rim catches leaves.

## Arguments

```python
gym.make("WorldGym/FallingLeaves-v0", render_mode="rgb_array", width=64, height=64, continuous=False)
env.reset(seed=0, options={"wind": 120.0, "drag": 0.5, "spawn_interval": (10, 20)})
```

Options: `gravity`, `drag`, `wind`, `spawn_interval`, `max_leaves`, `leaf_length`, `leaf_width`,
`basket_width` (clamped to the frame's width in narrow frames).

## Version History

* v0: initial release.
"""
from __future__ import annotations

import math

import numpy as np
import pymunk

from envs.base import PymunkScene
from envs.options import Option

GROUND = 8.0  # ground thickness at the bottom of the frame
BASKET_HEIGHT = 14.0
BASKET_SPEED = 220.0
K_NORMAL = 0.12  # drag across the leaf, 1/units (acceleration = k·u²)
K_TANGENT = 0.025  # drag along the leaf
K_LIFT = 0.03  # lift, 1/units
K_PITCH = 0.0005  # pitching torque towards broadside to the airflow, rad/units²
K_LEVEL = 0.003  # pitching torque towards lying flat, rad/units²
K_SPIN = 0.2  # quadratic angular damping, 1/rad
LEAF, CATCHER, SOIL = 1, 2, 3  # collision types


class FallingLeaves(PymunkScene):
    SUBSTEPS = 2
    ACTIONS = ("noop", "left", "right")
    CONTINUOUS_DIM = 1
    KEYS = {("left",): 1, ("a",): 1, ("right",): 2, ("d",): 2}
    OPTIONS = {
        "gravity": Option(300.0, "downward acceleration, units/s²", 0.0, 3000.0),
        "drag": Option(1.0, "multiplier on the leaves' drag and lift", 0.0, 10.0),
        "wind": Option(45.0, "largest gust speed, units/s", 0.0, 400.0),
        "spawn_interval": Option((20, 45), "steps between new leaves, drawn per leaf", 1, 1000),
        "max_leaves": Option(10, "most leaves in the air at once", 1, 40),
        "leaf_length": Option((20.0, 32.0), "leaf length range, units", 8.0, 80.0),
        "leaf_width": Option((10.0, 14.0), "leaf width range (the thin side), units", 4.0, 40.0),
        "basket_width": Option(52.0, "basket width at the rim, units", 16.0, 200.0),
    }

    def _build(self) -> None:
        o = self.opt
        self.space.gravity = (0.0, o["gravity"])
        self._add_ground()
        self._add_basket(o["basket_width"])
        self.wind_limit = o["wind"]
        self.wind = self.wind_target = self.uniform(-1, 1) * self.wind_limit
        self.gust_timer = self.randint(30, 90)
        self.spawn_timer = self.randint(*o["spawn_interval"])
        self.caught = self.missed = 0
        self._leaf_of: dict[pymunk.Shape, object] = {}  # lookups only, never iterated
        for _ in range(3):  # a spot taken (the wind piles leaves at an edge): another try
            for _attempt in range(20):
                if self._spawn_leaf(y=self.uniform(0.1, 0.5) * self.world_height) is not None:
                    break
        self.space.on_collision(LEAF, CATCHER, begin=self._on_leaf_hit)
        self.space.on_collision(LEAF, SOIL, begin=self._on_leaf_hit)

    def _add_ground(self) -> None:
        y = self.world_height - GROUND / 2
        ground = pymunk.Segment(self.space.static_body, (0, y), (self.world_width, y), GROUND / 2)
        ground.collision_type, ground.friction = SOIL, 0.8
        self.add_static(ground, drawn=False)  # drawn as a plain strip in `_draw`

    def _add_basket(self, width: float) -> None:
        """A solid trapezoid (centred on its body) with a catching sensor along its rim."""
        body = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        width = min(width, self.world_width)  # a narrow frame: no wider than the frame
        w, b, h = width / 2, 0.35 * width, BASKET_HEIGHT / 2
        half = max(w, b)
        body.position = (self.uniform(half, self.world_width - half),
                         self.world_height - GROUND - h)
        bowl = pymunk.Poly(body, [(-w, -h), (w, -h), (b, h), (-b, h)])
        bowl.elasticity, bowl.friction = 0.1, 0.6
        rim = pymunk.Poly(body, [(-w + 2, -h - 5), (w - 2, -h - 5), (w - 2, -h + 1), (-w + 2, -h + 1)])
        rim.sensor, rim.collision_type = True, CATCHER
        self.basket = self.add_thing(body, [bowl, rim], "basket", controlled=True,
                                     radius=math.hypot(w, h))
        self.basket_half = half

    def _spawn_leaf(self, y: float | None = None):
        """A leaf at a free spot along the top (None when the sky is full or the spot taken)."""
        o = self.opt
        leaves = self._leaves()
        if len(leaves) >= o["max_leaves"]:
            return None
        length, width = self.uniform(*o["leaf_length"]), self.uniform(*o["leaf_width"])
        r = length / 2
        # upwind of where it should land: the wind carries it ~2 s worth across the frame
        x = min(max(self.uniform(0.08, 0.92) * self.world_width - 2.0 * self.wind, r),
                self.world_width - r)
        y = -r if y is None else y
        if any(math.hypot(x - t.body.position.x, y - t.body.position.y) < r + t.radius for t in leaves):
            return None
        # Outline between an ellipse (p = 0.5) and a pointed lens (p = 1): y = ±w/2 (1 - (2x/L)²)^p.
        p = self.uniform(0.5, 1.0)
        xs = r * np.cos(np.linspace(0, math.pi, 7))
        ys = width / 2 * (1 - (xs / r) ** 2).clip(0) ** p
        verts = [(float(a), float(-b)) for a, b in zip(xs, ys)] + \
                [(float(a), float(b)) for a, b in zip(xs[-2:0:-1], ys[-2:0:-1])]
        mass = length * width / 100.0
        body = pymunk.Body(mass, pymunk.moment_for_poly(mass, verts))
        body.position = (x, y)
        body.angle = self.uniform(-0.6, 0.6)
        body.angular_velocity = self.uniform(-1.0, 1.0)
        body.velocity = (self.wind, self.uniform(20.0, 40.0))
        body.velocity_func = self._air(self.uniform(0.8, 1.25) * o["drag"])
        shape = pymunk.Poly(body, verts)
        shape.elasticity, shape.friction, shape.collision_type = 0.1, 0.6, LEAF
        leaf = self.add_thing(body, [shape], "leaf")
        leaf.data.update(fate=None, local=verts)  # local: the outline, for drawing
        self._leaf_of[shape] = leaf
        return leaf

    def _air(self, drag: float):
        """The leaf's velocity function: gravity, then plate aerodynamics in the wind's frame."""
        kn, kt, kl = K_NORMAL * drag, K_TANGENT * drag, K_LIFT * drag
        kp, kf = K_PITCH * drag, K_LEVEL * drag

        def air(body, gravity, damping, dt):
            vx, vy = body.velocity
            c, s = math.cos(body.angle), math.sin(body.angle)
            ux, uy = vx + gravity[0] * dt - self.wind, vy + gravity[1] * dt
            ut, un = ux * c + uy * s, uy * c - ux * s  # along / across the leaf
            # pitching: turn broadside to the airflow, and back towards lying flat (∝ sin 2θ)
            w = body.angular_velocity - (kp * ut * un + kf * (ut * ut + un * un) * s * c) * dt
            body.angular_velocity = w / (1.0 + K_SPIN * abs(w) * dt)
            speed = math.hypot(ut, un)
            if speed > 1e-9:  # lift ⟂ u, |lift| = kl |u|² sin 2α / 2
                f = kl * ut * un * dt / speed
                ut, un = ut + f * un, un - f * ut
            ut /= 1.0 + kt * abs(ut) * dt  # quadratic drag, implicit
            un /= 1.0 + kn * abs(un) * dt
            body.velocity = (ut * c - un * s + self.wind, ut * s + un * c)

        return air

    # ------------------------------------------------------------------ dynamics
    def _control(self, action) -> None:
        if self.continuous:
            vx = float(action[0]) * BASKET_SPEED
        else:
            vx = (0.0, -BASKET_SPEED, BASKET_SPEED)[action]
        x = self.basket.body.position.x
        lo, hi = self.basket_half, self.world_width - self.basket_half
        vx = self.bounded_rate(vx, x, lo, hi)  # stop at the frame edges
        self.basket.body.velocity = (vx, 0.0)

    def _on_leaf_hit(self, arbiter: pymunk.Arbiter, space, data) -> None:
        """Marks a leaf caught (basket rim) or missed (ground); `_update` removes it."""
        a, b = arbiter.shapes
        leaf, other = (a, b) if a.collision_type == LEAF else (b, a)
        thing = self._leaf_of.get(leaf)
        if thing is not None and thing.data["fate"] is None:
            thing.data["fate"] = "caught" if other.collision_type == CATCHER else "missed"

    def _leaves(self):
        return [t for t in self.things if t is not self.basket]

    def _update(self, action) -> tuple[float, bool]:
        self.caught = self.missed = 0
        w = self.world_width
        for leaf in self._leaves():
            x, y = leaf.body.position
            fate = leaf.data["fate"]
            if fate is None and (x < -2 * leaf.radius or x > w + 2 * leaf.radius or y > self.world_height
                                 or y < -3 * self.world_height):
                fate = "gone"
            if fate is not None:
                self.caught += fate == "caught"
                self.missed += fate == "missed"
                self._leaf_of.pop(leaf.shapes[0], None)
                self.remove_thing(leaf)
        self._blow()
        self.spawn_timer -= 1
        if self.spawn_timer <= 0:
            self._spawn_leaf()
            self.spawn_timer = self.randint(*self.opt["spawn_interval"])
        return self.caught - 0.1 * self.missed, False

    def _blow(self) -> None:
        """Gusts: the wind eases towards a target that is redrawn every 1–3 s."""
        self.gust_timer -= 1
        if self.gust_timer <= 0:
            self.wind_target = self.uniform(-1, 1) * self.wind_limit
            self.gust_timer = self.randint(30, 90)
        self.wind += 0.05 * (self.wind_target - self.wind)

    def _extra_info(self) -> dict:
        return {"wind": float(self.wind * self.scale * self.DT), "caught": self.caught, "missed": self.missed}

    # ------------------------------------------------------------------ drawing
    def _draw(self, canvas) -> None:
        """Ground, basket (without its invisible sensor), then leaves from cached outlines."""
        canvas.rect(0, self.world_height - GROUND, self.world_width, self.world_height, self.palette.static)
        canvas.shape(self.basket.shapes[0], self.basket.color)
        for leaf in self._leaves():
            (px, py), a = leaf.body.position, leaf.body.angle
            c, s = math.cos(a), math.sin(a)
            canvas.polygon([(px + c * x - s * y, py + s * x + c * y) for x, y in leaf.data["local"]],
                           leaf.color)

    # ------------------------------------------------------------------ scripted policy
    def heuristic(self):
        """Go under the leaf that reaches the rim soonest among those the basket can still reach."""
        bx = self.basket.body.position.x
        rim = self.basket.body.position.y - BASKET_HEIGHT / 2
        target, best = bx, math.inf
        for leaf in self._leaves():
            (x, y), (vx, vy) = leaf.body.position, leaf.body.velocity
            t = (rim - y) / max(vy, 30.0)
            if t < 0:
                continue
            # drift: current sideways speed for ~0.3 s, then the wind
            land = x + vx * min(t, 0.3) + self.wind * max(t - 0.3, 0.0)
            land = min(max(land, self.basket_half), self.world_width - self.basket_half)
            if abs(land - bx) - 0.7 * self.basket_half <= BASKET_SPEED * t and t < best:
                target, best = land, t
        dx = target - bx
        if self.continuous:
            return np.array([np.clip(dx / (BASKET_SPEED * self.DT), -1, 1)], np.float32)
        if abs(dx) < 4.0:
            return 0
        return 1 if dx < 0 else 2
