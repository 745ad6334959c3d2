"""
## Description

A crane runs along a rail at the top of the frame carrying the next block: a box of varied aspect, a
trapezoid, a triangle or a small disc, each in its own colour. The agent moves the crane left and
right and drops the block; blocks fall, stack with friction on a grey platform and can topple. A new
block appears at the crane shortly after each drop, so the structure grows over the episode. The
goal is a tall, stable tower: the faint band near the top marks the height that wins.

## Action Space

`Discrete(4)` by default:

| action | meaning                         |
|--------|---------------------------------|
| 0      | do nothing (crane stops)        |
| 1      | move crane left                 |
| 2      | move crane right                |
| 3      | drop the held block (if any)    |

With `continuous=True`: `Box(-1, 1, (2,), float32)`: the crane's velocity as a fraction of its top
speed, and a trigger that drops the held block when above 0.5 (the block keeps the crane's velocity).
Keys: ← / → (or a / d) move, space (or s) drops.

## Observation Space

`Box(0, 255, (height, width, 3), uint8)`: the rendered frame (default 64×64). Flat colours, no HUD.

## State

`info["state"]` (see `envs.base`): one row for the crane's hook (kind `crane`, `controlled=True`) and
one per block (kind `block`), in the frame's pixel coordinates; a block hanging from the crane is
`controlled=True` until it is dropped. `info["contacts"]`: pairs of ids that began touching this step,
`-1` standing for the platform. `info["tower_height"]`: the best settled height so far (world units
above the platform); `info["holding"]`: whether a block hangs from the crane.

## Rewards

A block is *settled* once its speed stayed under 6 units/s (and its spin under 0.4 rad/s) for 6
steps. The reward is the rise of the highest settled block top above the platform, in block units
(16 world units): +1 for every 16 units the best settled height grows. −1 when the episode ends by a
fall or a collapse. Over episodes of up to 1,000 steps (seeds 0–19, default options) the heuristic
earns a mean of 9.21 (16 of 20 towers reach the band, in 494 steps on average) and uniform random
actions 0.06 (a random block soon lands beside the platform: 78 steps on average).

## Starting State

The crane at a random x with a block on its hook; the platform is empty. Block widths are drawn from
`block_size`; with probability `odd_shapes` a block is a trapezoid, a triangle or a disc instead of a
box (boxes have height/width 0.35–0.9). After a drop the next block appears after `cooldown` steps.

## Episode End

Terminated when a block falls off the platform (its top below the platform's surface, or its centre
out of the frame), when the tower collapses (the current top of all dropped blocks is more than
`collapse_drop` units below the best settled height), or, as a success, when the settled tower
reaches the band near the top. Truncated at 1,000 steps (the registered `max_episode_steps`).

## Physics

dt = 1/30 s in 4 substeps, 20 solver iterations, collision slop 0.2; gravity 300 units/s² downward
(world: 256 units tall); blocks have density 1/100 per unit², elasticity 0, friction `friction`
(platform 1.0); space damping 0.8 (20% of velocity lost per second); no sleeping. The crane is a
kinematic body (`crane_speed` units/s) that collides with nothing; a held block is a kinematic body
moving with it, made dynamic (`body_type = DYNAMIC`, mass from its shape's density) when dropped.

## Arguments

```python
gym.make("WorldGym/GrowingStructures-v0", render_mode="rgb_array", width=64, height=64, continuous=False)
env.reset(seed=0, options={"gravity": 500.0, "odd_shapes": 0.0, "block_size": (24.0, 32.0)})
```

Options: `gravity`, `platform_width`, `block_size`, `odd_shapes`, `friction`, `cooldown`,
`crane_speed`, `collapse_drop`.

## Version History

* v0: initial release.
"""
from __future__ import annotations

import numpy as np
import pymunk

from envs.base import PymunkScene
from envs.options import Option

RAIL_Y = 4.0
HOOK_Y, HOOK_W, HOOK_H = 12.0, 24.0, 8.0  # crane hook centre height and size
HANG_GAP = 2.0  # between the hook and the held block
GOAL_Y = 64.0  # the winning band: settled tower top above this line
PLATFORM_MARGIN, PLATFORM_H = 30.0, 12.0  # platform surface above the bottom edge, thickness
BLOCK_UNIT = 16.0  # reward per this many units of height
SETTLE_SPEED, SETTLE_SPIN, SETTLE_STEPS = 6.0, 0.4, 6
NO_COLLISION = pymunk.ShapeFilter(categories=0, mask=0)
DROP = 3


def centred(verts):
    """Polygon vertices shifted so their area centroid is the origin (the body's position)."""
    v = np.asarray(verts, np.float64)
    x, y = v[:, 0], v[:, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    area = cross.sum() / 2
    cx = ((x + np.roll(x, -1)) * cross).sum() / (6 * area)
    cy = ((y + np.roll(y, -1)) * cross).sum() / (6 * area)
    return [(float(px - cx), float(py - cy)) for px, py in v]


class GrowingStructures(PymunkScene):
    SUBSTEPS = 4
    ACTIONS = ("noop", "left", "right", "drop")
    CONTINUOUS_DIM = 2
    KEYS = {("left",): 1, ("a",): 1, ("right",): 2, ("d",): 2, ("space",): 3, ("s",): 3}
    OPTIONS = {
        "gravity": Option(300.0, "downward acceleration, units/s²", 10.0, 3000.0),
        "platform_width": Option(120.0, "platform width, units (at most 90% of the frame)", 20.0, 480.0),
        "block_size": Option((16.0, 32.0), "block width range, units", 10.0, 40.0),
        "odd_shapes": Option(0.3, "probability that a block is a trapezoid, triangle or disc", 0.0, 1.0),
        "friction": Option(0.9, "block friction", 0.0, 2.0),
        "cooldown": Option(15, "steps after a drop before the next block appears", 1, 200),
        "crane_speed": Option(120.0, "crane top speed, units/s", 10.0, 600.0),
        "collapse_drop": Option(30.0, "height loss (units) below the best that counts as collapse",
                                5.0, 256.0),
    }

    def _build(self) -> None:
        o = self.opt
        self.space.gravity = (0.0, o["gravity"])
        self.space.iterations = 20
        self.space.collision_slop = 0.2
        self.space.damping = 0.8
        self.platform_top = self.world_height - PLATFORM_MARGIN
        self.goal_height = self.platform_top - GOAL_Y
        self.platform_half = min(o["platform_width"], 0.9 * self.world_width) / 2
        self._add_platform(self.platform_half * 2)
        self._add_crane()
        self.held = None
        self.dropped = []
        self.best = 0.0
        self.cooldown = 0
        self._spawn_block()

    def _add_platform(self, width: float) -> None:
        cx = self.world_width / 2
        top, bottom, half = self.platform_top, self.platform_top + PLATFORM_H, width / 2
        corners = [(cx - half, top), (cx + half, top), (cx + half, bottom), (cx - half, bottom)]
        box = pymunk.Poly(self.space.static_body, corners)
        box.friction = 1.0
        rail = pymunk.Segment(self.space.static_body, (0, RAIL_Y), (self.world_width, RAIL_Y), 1.5)
        rail.filter = NO_COLLISION
        self.add_static(box, rail)

    def _add_crane(self) -> None:
        body = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        self.crane_lo, self.crane_hi = HOOK_W / 2, max(self.world_width - HOOK_W / 2, HOOK_W / 2)
        body.position = (self.uniform(self.crane_lo, self.crane_hi), HOOK_Y)
        hook = pymunk.Poly.create_box(body, (HOOK_W, HOOK_H))
        hook.filter = NO_COLLISION
        self.crane = self.add_thing(body, [hook], "crane", controlled=True)

    def _block_shape(self, body: pymunk.Body) -> pymunk.Shape:
        """A random block outline around the body's origin: a box, trapezoid, triangle or disc."""
        w = self.uniform(*self.opt["block_size"])
        odd = self.uniform(0.0, 1.0) < self.opt["odd_shapes"]
        kind = ("trapezoid", "triangle", "disc")[self.randint(0, 2)] if odd else "box"
        if kind == "disc":
            return pymunk.Circle(body, max(w * 0.3, 5.0))
        if kind == "box":
            h = max(w * self.uniform(0.35, 0.9), 8.0)
            return pymunk.Poly(body, centred([(0, 0), (w, 0), (w, h), (0, h)]))
        if kind == "trapezoid":
            h, top = max(w * self.uniform(0.4, 0.7), 8.0), w * self.uniform(0.5, 0.8)
            inset = (w - top) / 2
            return pymunk.Poly(body, centred([(inset, 0), (w - inset, 0), (w, h), (0, h)]))
        h = max(w * self.uniform(0.5, 0.8), 10.0)
        apex = w / 2 + self.uniform(-0.15, 0.15) * w
        return pymunk.Poly(body, centred([(apex, 0), (w, h), (0, h)]))

    def _spawn_block(self) -> None:
        """A new block hangs from the hook: kinematic, colliding with nothing until dropped."""
        body = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        shape = self._block_shape(body)
        shape.density, shape.friction, shape.elasticity = 0.01, self.opt["friction"], 0.0
        shape.filter = NO_COLLISION
        top = (-shape.radius if isinstance(shape, pymunk.Circle)
               else min(v.y for v in shape.get_vertices()))
        body.position = (self.crane.body.position.x, HOOK_Y + HOOK_H / 2 + HANG_GAP - top)
        body.velocity = self.crane.body.velocity
        self.held = self.add_thing(body, [shape], "block", controlled=True)
        self.held.data["still"] = 0

    def _drop(self) -> None:
        block, self.held = self.held, None
        block.body.body_type = pymunk.Body.DYNAMIC
        block.shapes[0].filter = pymunk.ShapeFilter()
        block.controlled = False
        self.dropped.append(block)
        self.cooldown = self.opt["cooldown"]

    # ------------------------------------------------------------------ dynamics
    def _control(self, action) -> None:
        speed = self.opt["crane_speed"]
        if self.continuous:
            vx, drop = float(action[0]) * speed, action[1] > 0.5
        else:
            vx, drop = (0.0, -speed, speed, 0.0)[action], action == DROP
        x = self.crane.body.position.x
        vx = self.bounded_rate(vx, x, self.crane_lo, self.crane_hi)  # rail ends
        self.crane.body.velocity = (vx, 0.0)
        if self.held is not None:
            self.held.body.velocity = (vx, 0.0)
            if drop:
                self._drop()

    def _top(self, block) -> float:
        """Height of a block's top above the platform surface, world units."""
        return self.platform_top - block.shapes[0].bb.bottom  # pymunk bb is y-up: bottom = min y

    def _settled(self, block) -> bool:
        return block.data["still"] >= SETTLE_STEPS

    def _update(self, action) -> tuple[float, bool]:
        fell = False
        for b in self.dropped:
            calm = b.body.velocity.length < SETTLE_SPEED and abs(b.body.angular_velocity) < SETTLE_SPIN
            b.data["still"] = b.data["still"] + 1 if calm else 0
            x = b.body.position.x
            fell |= b.shapes[0].bb.bottom > self.platform_top or not 0 <= x <= self.world_width
        settled = max((self._top(b) for b in self.dropped if self._settled(b)), default=0.0)
        current = max((self._top(b) for b in self.dropped), default=0.0)
        reward = max(settled - self.best, 0.0) / BLOCK_UNIT
        self.best = max(self.best, settled)
        if self.held is None:
            self.cooldown -= 1
            if self.cooldown <= 0:
                self._spawn_block()
        if fell or self.best - current > self.opt["collapse_drop"]:
            return reward - 1.0, True
        return reward, self.best >= self.goal_height

    def _extra_info(self) -> dict:
        return {"tower_height": float(self.best), "holding": self.held is not None}

    # ------------------------------------------------------------------ drawing
    def _draw(self, canvas) -> None:
        canvas.rect(0, GOAL_Y - 1.5, self.world_width, GOAL_Y + 1.5, self.palette.zone)
        self.draw_static(canvas)
        self.draw_things(canvas)

    # ------------------------------------------------------------------ scripted policy
    def heuristic(self):
        """Build one column at the platform's centre from boxes and trapezoids, setting triangles and
        discs aside at the platform's ends (a pointed top would cap the tower): carry the block over
        the column's top block (its centre of mass) and drop once aligned and everything is still."""
        cx, half = self.world_width / 2, self.platform_half
        column = [b for b in self.dropped if abs(b.body.position.x - cx) < half - 28]
        target = max(column, key=self._top).body.position.x if column else cx
        if self.held is not None and not self._flat(self.held):
            piles = [(max((self._top(b) for b in self.dropped if abs(b.body.position.x - x) < 16),
                          default=0.0), x) for x in (cx - half + 14, cx + half - 14)]
            target = min(piles)[1]
        target = min(max(target, self.crane_lo), self.crane_hi)
        dx = target - self.crane.body.position.x
        calm = all(self._settled(b) for b in self.dropped)
        step = self.opt["crane_speed"] * self.DT
        drop = self.held is not None and calm and abs(dx) < max(step / 2, 1.0)
        if self.continuous:
            return np.array([np.clip(dx / step, -1, 1), 1.0 if drop else -1.0], np.float32)
        if drop:
            return DROP
        if abs(dx) < max(step / 2, 1.0):
            return 0
        return 1 if dx < 0 else 2

    @staticmethod
    def _flat(block) -> bool:
        """Whether a block can carry another: a box or trapezoid (four corners)."""
        shape = block.shapes[0]
        return isinstance(shape, pymunk.Poly) and len(shape.get_vertices()) == 4
