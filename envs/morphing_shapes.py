"""
## Description

A soft blob must travel from the left of a one-screen level to the goal zone on the right. The blob
is a ring of small circles (the outline nodes) held to a centre body and to each other by damped
springs; the agent changes the springs' rest lengths to inflate, deflate or stretch the blob, and
drives the outline round the centre like a tank tread to roll. On the way stand bumps, which only a
round blob rolls over, and tunnels hanging from the ceiling, which only a flattened blob fits under.
Some episodes add a light loose ball that gets shoved around.

## Action Space

`Discrete(9)` by default:

| action | meaning                                   | keys    |
|--------|-------------------------------------------|---------|
| 0      | do nothing (round rest shape)             |         |
| 1      | inflate (×1.35)                           | ↑       |
| 2      | deflate (×0.6)                            | ↓       |
| 3      | stretch wide (flat, 1.45 × 0.5)           | s       |
| 4      | stretch tall (0.6 × 1.5)                  | w       |
| 5      | roll left                                 | ←       |
| 6      | roll right                                | →       |
| 7      | roll left while flat (squeeze through)    | ← + ↓   |
| 8      | roll right while flat (squeeze through)   | → + ↓   |

With `continuous=True`: `Box(-1, 1, (3,), float32)` = (size, aspect, roll): size −1 deflated … +1
inflated, aspect −1 tall … +1 wide, roll −1 left … +1 right (a fraction of the tread's top speed).
The discrete actions are points of this box (inflate = (1, 0, 0), flat roll right = (0, 1, 1)). It
has a third axis because without the roll the blob cannot travel.

## Observation Space

`Box(0, 255, (height, width, 3), uint8)`: the rendered frame (default 64×64). Flat colours, no HUD.
The blob is one filled polygon through its node centres plus the node discs, all in its colour; the
goal zone is a column in the palette's zone colour.

## State

`info["state"]` (see `envs.base`): first the centre (kind `soft_center`, radius = the round blob's
bounding radius, `body_radius` + 5), then one row per outline node in ring order (kind `soft_node`,
radius 5, angle always 0: nodes do not spin), then one per ball (kind `ball`). Centre and nodes share
the blob's colour and are all `controlled=True`. `info["contacts"]`: pairs of ids that began
touching this step, `-1` standing for static geometry (the blob's own parts never collide).
`info["goal_x"]`: the goal zone's left edge in pixels; `info["progress"]`: the centre's travel as a
fraction of the course (1 when the blob touches the goal).

## Rewards

Each step, the centre's rightward displacement as a fraction of the course (its travel from the start
until the blob touches the goal zone), so a full traverse sums to 1; +1 on reaching the goal. Over
1,000-step episodes (seeds 0–19, default options) the heuristic earns a mean of 1.99 (20/20 reach
the goal, in 66 steps on average) and uniform random actions 0.24 (0/20 reach it; `continuous=True`:
1.99 and 0.33) (`python -m envs.bench --returns`).

## Starting State

The blob rests round near the left wall. Between it and the goal zone (the right 32 units)
`num_obstacles` obstacles stand at least a blob's width apart, each at random a bump (a trapezoid of
height `step_height` with 34° flanks) or a tunnel (a block hanging from the ceiling, leaving
`gap_height` above the floor, corners rounded by 4 units). Obstacles that do not fit are dropped:
the default 256-unit-wide world holds at most two, a world narrower than about 200 units (a frame
much taller than wide) none, and below about 100 units the blob starts at the goal. `num_balls`
balls (radius 10–14) rest on the floor ahead of the blob, clear of the bumps.

## Episode End

Terminated when the blob touches the goal zone (its rightmost node reaches the zone's left edge);
truncated at 1,000 steps (the registered `max_episode_steps`).

## Physics

dt = 1/30 s in 4 substeps; gravity 400 units/s² downward (world: 256 units tall). The blob has
`num_nodes` nodes (mass 1, radius 5, no rotation, friction 1) on a ring of radius `body_radius` round
a centre of mass 3 (radius 4). `pymunk.DampedSpring`s of stiffness `stiffness` and damping 40 tie
each node to the centre (spoke), to the next node (rim) and to the one after (brace). Their rest
lengths, set once per step, place the nodes evenly on an ellipse kept level in the world frame and
turned with the ring, so the outline keeps its shape while it circulates. The blob's parts do not
collide with each other; a `pymunk.SlideJoint` per node keeps it at least 9 units from the centre
(without these struts and the braces a hard squeeze could turn the outline inside out). Rolling
pushes each node along the ring towards a tread speed of 100 units/s relative to the centre (at most
300 force units per node, applied as one impulse per step), the centre taking the opposite net push.
Floor, walls and bumps: friction 1; tunnel blocks: friction 0.1; elasticity 0.2. Balls: mass
0.15 r²/25, friction 0.2, elasticity 0.3.

## Arguments

```python
gym.make("WorldGym/MorphingShapes-v0", render_mode="rgb_array", width=64, height=64, continuous=False)
env.reset(seed=0, options={"gravity": 600.0, "num_obstacles": (2, 2), "gap_height": (31.0, 33.0)})
```

Options: `gravity`, `num_nodes`, `body_radius`, `stiffness`, `num_obstacles`, `gap_height`,
`step_height`, `num_balls`. A tunnel lower than the flat blob (about `body_radius` + 10) cannot be
passed.

## Version History

* v0: initial release.
"""
from __future__ import annotations

import math

import numpy as np
import pymunk

from envs.base import PymunkScene
from envs.options import Option

WALL = 6.0
FLOOR = 16.0  # floor thickness; its top is at world_height - FLOOR
GOAL_WIDTH = 32.0
NODE_RADIUS, CORE_RADIUS = 5.0, 4.0
NODE_BIT = 0b10  # collision category of the blob's parts, which never collide with each other
ALL = pymunk.ShapeFilter.ALL_MASKS()
NODE_MASS, CENTER_MASS = 1.0, 3.0
DAMPING = 40.0
TREAD_SPEED, TREAD_GAIN, TREAD_FORCE = 100.0, 8.0, 300.0
INFLATE, DEFLATE = 0.35, 0.4  # size ×(1 + 0.35 u) for u > 0, ×(1 + 0.4 u) for u < 0
WIDE, TALL = (0.45, -0.5), (-0.4, 0.5)  # (sx, sy) offsets at aspect +1 (wide) and −1 (tall)


class MorphingShapes(PymunkScene):
    ACTIONS = ("noop", "inflate", "deflate", "wide", "tall", "roll_left", "roll_right",
               "roll_left_flat", "roll_right_flat")
    #: Each discrete action as a point (size, aspect, roll) of the continuous box.
    CONTROLS = ((0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, -1), (0, 0, 1),
                (0, 1, -1), (0, 1, 1))
    CONTINUOUS_DIM = 3
    KEYS = {("up",): 1, ("down",): 2, ("s",): 3, ("w",): 4, ("left",): 5, ("right",): 6,
            ("down", "left"): 7, ("down", "right"): 8}
    OPTIONS = {
        "gravity": Option(400.0, "downward acceleration, units/s²", -2000.0, 2000.0),
        "num_nodes": Option(12, "outline nodes of the soft body", 8, 24),
        "body_radius": Option(18.0, "rest radius of the node ring, units", 10.0, 32.0),
        "stiffness": Option(2500.0, "stiffness of every spring (spokes, rims, braces)", 800.0, 6000.0),
        "num_obstacles": Option((1, 2), "bumps and tunnels, drawn per episode (fewer if no room)", 0, 6),
        "gap_height": Option((30.0, 36.0), "tunnel clearance above the floor, units", 20.0, 200.0),
        "step_height": Option((10.0, 18.0), "bump height, units", 0.0, 40.0),
        "num_balls": Option((0, 1), "loose balls, drawn per episode", 0, 3),
    }

    def _build(self) -> None:
        o = self.opt
        self.space.gravity = (0.0, o["gravity"])
        w, h = self.world_width, self.world_height
        self.floor_y = h - FLOOR
        self._polys: list[list[tuple[float, float]]] = []  # static outlines, drawn as they are
        for box in ((0, 0, w, WALL), (0, 0, WALL, h), (w - WALL, 0, w, h), (0, self.floor_y, w, h)):
            self._add_box(*box, friction=1.0)
        R = o["body_radius"]
        self.start_x = WALL + (1 + WIDE[0]) * R + NODE_RADIUS + 2  # room to stretch wide
        self.goal_x = max(w - WALL - GOAL_WIDTH, self.start_x + 1)
        self.obstacles: list[tuple[str, float, float]] = []  # (kind, x0, x1), for the heuristic
        self._add_obstacles(self.randint(*o["num_obstacles"]), self.start_x + R + 16, self.goal_x - 8)
        self._add_blob(self.start_x, self.floor_y - R - NODE_RADIUS, R, o["num_nodes"])
        for _ in range(self.randint(*o["num_balls"])):
            self._spawn_ball()
        self._sample()
        self.last_x = float(self._c[0])
        self.course = max(self.goal_x - (self.start_x + R + NODE_RADIUS), 1.0)  # travel to touch the goal
        self._xs: list[float] = []  # the centre's x after every step, for the heuristic
        self._back_until = -30  # the heuristic backs off until this step
        self._planned = -1  # the step whose springs and tread are set
        self._shape = None

    # ------------------------------------------------------------------ world building
    def _add_box(self, x0, y0, x1, y1, friction, bevel=0.0, rounded=0.0):
        """A static box: a trapezoid when ``bevel`` > 0 (the top narrower by ``bevel`` each side), with
        corners rounded by ``rounded`` (a sharp corner could poke between two outline nodes)."""
        pts = [(x0, y1), (x1, y1), (x1 - bevel, y0), (x0 + bevel, y0)]
        r = rounded
        inner = [(x0 + r, y1 - r), (x1 - r, y1 - r), (x1 - bevel - r, y0 + r), (x0 + bevel + r, y0 + r)]
        shape = pymunk.Poly(self.space.static_body, inner, radius=r)
        shape.friction, shape.elasticity = friction, 0.2
        self.add_static(shape, drawn=False)
        self._polys.append(pts)

    def _add_obstacles(self, n: int, lo: float, hi: float) -> None:
        """Up to n bumps and tunnels in [lo, hi], at least a blob's width apart (fewer if no room)."""
        o = self.opt
        clear = 2 * (o["body_radius"] + NODE_RADIUS)
        plan = []  # (kind, width, height or clearance)
        for _ in range(n):
            if self.np_random.random() < 0.5:  # a bump with 34° flanks
                h = self.uniform(*o["step_height"])
                plan.append(("bump", self.uniform(8.0, 18.0) + 3 * h, h))
            else:  # a tunnel: a block hanging from the ceiling
                plan.append(("tunnel", self.uniform(24.0, 48.0), self.uniform(*o["gap_height"])))
        while plan and sum(w for _, w, _ in plan) + (len(plan) - 1) * clear > hi - lo:
            plan.pop()
        # below 0 only when nothing fits at all (a narrow frame): the plan is empty then
        free = max(hi - lo - sum(w for _, w, _ in plan) - (len(plan) - 1) * clear, 0.0)
        x = lo
        cuts = np.diff(np.sort(self.np_random.uniform(0, free, len(plan))), prepend=0.0)  # spare room
        for (kind, width, h), cut in zip(plan, cuts.tolist()):
            x += cut
            if kind == "bump":
                self._add_box(x, self.floor_y - h, x + width, self.floor_y, 1.0, bevel=1.5 * h)
            else:
                self._add_box(x, WALL, x + width, max(self.floor_y - h, WALL + 10), 0.1, rounded=4.0)
            self.obstacles.append((kind, x, x + width))
            x += width + clear

    def _add_blob(self, x: float, y: float, R: float, n: int) -> None:
        """Centre body and a ring of n nodes, each node tied by springs to the centre (spoke), to the next
        node (rim) and to the one after (brace), and kept off the centre by a strut (a SlideJoint).

        Spokes and rims alone have folded states that cost nothing (a triangle of the fan flipped
        over, the centre squeezed out of the ring): braces and struts rule them out.
        """
        color = self.palette.take()
        body = pymunk.Body(CENTER_MASS, pymunk.moment_for_circle(CENTER_MASS, 0, CORE_RADIUS))
        body.position = (x, y)
        core = pymunk.Circle(body, CORE_RADIUS)
        core.friction, core.filter = 0.5, pymunk.ShapeFilter(categories=NODE_BIT, mask=ALL ^ NODE_BIT)
        self.center = self.add_thing(body, [core], "soft_center", color, controlled=True,
                                     radius=R + NODE_RADIUS)
        self.nodes, spokes, struts = [], [], []
        k = self.opt["stiffness"]
        for i in range(n):
            a = 2 * math.pi * i / n
            nb = pymunk.Body(NODE_MASS, math.inf)  # no spin: a spinning node would roll, not grip
            nb.position = (x + R * math.cos(a), y + R * math.sin(a))
            shape = pymunk.Circle(nb, NODE_RADIUS)
            shape.filter = pymunk.ShapeFilter(categories=NODE_BIT, mask=ALL ^ NODE_BIT)
            shape.friction, shape.elasticity = 1.0, 0.1
            self.nodes.append(self.add_thing(nb, [shape], "soft_node", color, controlled=True))
            spokes.append(pymunk.DampedSpring(body, nb, (0, 0), (0, 0), R, k, DAMPING))
            struts.append(pymunk.SlideJoint(body, nb, (0, 0), (0, 0), CORE_RADIUS + NODE_RADIUS, 10 * R))
        ties = [pymunk.DampedSpring(self.nodes[i].body, self.nodes[(i + j) % n].body, (0, 0), (0, 0),
                                    2 * R * math.sin(j * math.pi / n), k, DAMPING)
                for j in (1, 2) for i in range(n)]  # rims, then braces
        self.springs = spokes + ties
        self.space.add(*self.springs, *struts)
        self._slots = 2 * np.pi * np.arange(n) / n
        self._next = np.roll(np.arange(n), -1)

    def _spawn_ball(self) -> None:
        """A ball resting on the floor ahead of the blob, clear of the bumps (skipped if none fits)."""
        r = self.uniform(10.0, 14.0)
        lo, hi = self.start_x + 36, self.world_width - WALL - r
        for _ in range(20 if lo < hi else 0):
            x = self.uniform(lo, hi)
            if all(not (x0 - r < x < x1 + r) for kind, x0, x1 in self.obstacles if kind == "bump"):
                break
        else:
            return
        mass = 0.15 * r * r / 25.0  # a light beach ball: shoved ahead, or squeezed past
        body = pymunk.Body(mass, pymunk.moment_for_circle(mass, 0, r))
        body.position = (x, self.floor_y - r)
        shape = pymunk.Circle(body, r)
        shape.friction, shape.elasticity = 0.2, 0.3
        self.add_thing(body, [shape], "ball")

    # ------------------------------------------------------------------ dynamics
    def _control(self, action) -> None:
        """Once per step (before its first substep): the springs' rest lengths and the tread's push."""
        if self._planned == self.steps:
            return
        self._planned = self.steps
        size, aspect, roll = (float(v) for v in (action if self.continuous else self.CONTROLS[action]))
        g = 1 + (INFLATE if size > 0 else DEFLATE) * size
        dx, dy = WIDE if aspect > 0 else TALL
        a = self.opt["body_radius"] * g * (1 + dx * abs(aspect))  # ellipse semi-axes
        b = self.opt["body_radius"] * g * (1 + dy * abs(aspect))
        d = self._p - self._c  # (n, 2) nodes relative to the centre
        phi = np.arctan2(d[:, 1], d[:, 0])
        if a != b or self._shape != (a, b):
            self._set_rest_lengths(phi, a, b)
        if roll != 0.0:
            self._tread(phi, roll)

    def _set_rest_lengths(self, phi: np.ndarray, a: float, b: float) -> None:
        """Spokes, rims and braces of an ellipse fixed in the world frame, turned with the ring.

        Node i sits at (a cos t_i, b sin t_i) with t_i evenly spaced and turned by the ring's mean
        rotation, so that spokes and rims describe one consistent polygon however the nodes drifted
        (and a stretched blob keeps its long axis horizontal while its outline rolls like a tread).
        """
        self._shape = (a, b)
        off = np.arctan2(np.sin(phi) / b, np.cos(phi) / a) - self._slots
        t = self._slots + math.atan2(np.sin(off).sum(), np.cos(off).sum())
        px, py = a * np.cos(t), b * np.sin(t)  # (n,) each
        nxt, nnxt = self._next, self._next[self._next]
        lengths = np.concatenate([np.hypot(px, py), np.hypot(px[nxt] - px, py[nxt] - py),
                                  np.hypot(px[nnxt] - px, py[nnxt] - py)])
        for spring, length in zip(self.springs, lengths.tolist()):
            spring.rest_length = length

    def _tread(self, phi: np.ndarray, roll: float) -> None:
        """Pushes every node along the ring (clockwise on screen rolls right), the centre takes the net.

        A speed controller towards ``roll × TREAD_SPEED``, capped at ``TREAD_FORCE`` per node. It acts
        for the whole step and is given as one impulse: the velocity change of a constant force over
        the substeps, in fewer calls.
        """
        v = self._v - self._vc  # (n, 2)
        tx, ty = -np.sin(phi), np.cos(phi)
        f = np.clip(TREAD_GAIN * (roll * TREAD_SPEED - (v[:, 0] * tx + v[:, 1] * ty)),
                    -TREAD_FORCE, TREAD_FORCE) * self.DT
        jx, jy = f * tx, f * ty
        for t, j in zip(self.nodes, zip(jx.tolist(), jy.tolist())):
            t.body.apply_impulse_at_local_point(j)
        self.center.body.apply_impulse_at_local_point((-float(jx.sum()), -float(jy.sum())))

    def _sample(self) -> None:
        """Reads the blob once per step, for the drawing and the next step's control."""
        self._p = np.array([t.body.position for t in self.nodes])  # (n, 2)
        self._v = np.array([t.body.velocity for t in self.nodes])  # (n, 2)
        body = self.center.body
        self._c, self._vc = np.array(body.position), np.array(body.velocity)  # (2,) each

    def _update(self, action) -> tuple[float, bool]:
        self._sample()
        x = float(self._c[0])
        reward = (x - self.last_x) / self.course
        self.last_x = x
        self._xs.append(x)
        reached = float(self._p[:, 0].max()) + NODE_RADIUS >= self.goal_x
        return reward + (1.0 if reached else 0.0), reached

    def _extra_info(self) -> dict:
        return {"goal_x": float(self.goal_x * self.scale),
                "progress": float((self.last_x - self.start_x) / self.course)}

    # ------------------------------------------------------------------ drawing
    def _draw(self, canvas) -> None:
        """Goal zone, static boxes, balls, then the blob: one polygon through the nodes, node discs, core."""
        canvas.rect(self.goal_x, WALL, self.world_width - WALL, self.floor_y, self.palette.zone)
        for pts in self._polys:
            canvas.polygon(pts, self.palette.static)
        for t in self.things[len(self.nodes) + 1:]:  # the balls (the blob came first)
            canvas.shape(t.shapes[0], t.color)
        canvas.polygon(self._p.tolist(), self.center.color)
        canvas.dots(self._p, NODE_RADIUS, self.center.color)
        canvas.circle(self._c, CORE_RADIUS, self.center.color)

    # ------------------------------------------------------------------ scripted policy
    def heuristic(self):
        """Roll right, flat while under or just before a tunnel; after a second without progress, back
        off for 12 steps and try again (a ball jammed against a bump, say)."""
        x, xs, now = float(self._c[0]), self._xs, self.steps
        if now >= self._back_until + 30 and len(xs) > 30 and xs[-1] - xs[-31] < 2.0:
            self._back_until = now + 12  # idempotent within a step: the next check is 42 steps away
        reach = self.opt["body_radius"] * (1 + WIDE[0]) + NODE_RADIUS + 14
        flat = any(kind == "tunnel" and x0 - reach < x < x1 for kind, x0, x1 in self.obstacles)
        roll = -1.0 if now < self._back_until else 1.0
        if self.continuous:
            return np.array([0.0, 1.0 if flat else 0.0, roll], np.float32)
        return (8 if flat else 6) if roll > 0 else (7 if flat else 5)
