"""
## Description

Several elastic balls of varied size, mass and colour bounce in a box under gravity. The box has
walls left, right and on top but no floor: the agent slides a paddle along the bottom to keep the
balls in play. A ball that drops below the frame is lost.

## Action Space

`Discrete(3)` by default:

| action | meaning            |
|--------|--------------------|
| 0      | do nothing (paddle stops) |
| 1      | move paddle left   |
| 2      | move paddle right  |

With `continuous=True`: `Box(-1, 1, (1,), float32)`, the paddle's velocity as a fraction of its top speed.
Keys: ← / → (or a / d).

## Observation Space

`Box(0, 255, (height, width, 3), uint8)`: the rendered frame (default 64×64). Flat colours, no HUD.

## State

`info["state"]` (see `envs.base`): one row per ball (kind `ball`) and one for the paddle (kind
`paddle`, `controlled=True`), in the frame's pixel coordinates. `info["contacts"]`: pairs of ids that
began touching this step, `-1` standing for walls. `info["balls_in_play"]`: how many are left.

## Rewards

+0.01 per ball in play per step, −1 for each ball lost. Over 1,000-step episodes (seeds 0–19, default
options) the heuristic earns a mean of 11.30 and uniform random actions −1.46
(`python -m envs.bench --returns --scenes BouncingBalls`).

## Starting State

2–4 balls (option `num_balls`) of radius 9–16 units placed without overlap in the upper two thirds,
each with a random direction and a speed of 80–200 units/s; the paddle at a random x. Masses are
density × area / 100 (area in units²), the density drawn in [0.8, 1.2].

## Episode End

Terminated when every ball is lost; truncated at 1,000 steps (the registered `max_episode_steps`).

## Physics

dt = 1/30 s in 4 substeps; gravity 350 units/s² downward (world: 256 units tall); ball elasticity
0.98 against walls and paddle (1.0), friction 0.2; no damping; ball speed capped at 900 units/s.
The paddle is a kinematic body (56 × 8 units, 320 units/s) that stops at the walls.

## Arguments

```python
gym.make("WorldGym/BouncingBalls-v0", render_mode="rgb_array", width=64, height=64, continuous=False)
env.reset(seed=0, options={"num_balls": (3, 3), "gravity": 600.0, "radius": (6.0, 10.0)})
```

Options: `gravity`, `num_balls`, `radius`, `speed`, `density`, `elasticity`, `paddle_width`. In a
frame too narrow for them (e.g. 32×160) the paddle and the balls are clamped to the room between the walls.

## Version History

* v0: initial release.
"""
from __future__ import annotations

import math

import numpy as np
import pymunk

from envs.base import PymunkScene, fit, speed_limit
from envs.options import Option

PADDLE_HEIGHT = 8.0
PADDLE_SPEED = 320.0
PADDLE_MARGIN = 22.0  # paddle centre above the bottom edge
WALL = 6.0
MAX_BALL_SPEED = 900.0


class BouncingBalls(PymunkScene):
    ACTIONS = ("noop", "left", "right")
    CONTINUOUS_DIM = 1
    KEYS = {("left",): 1, ("a",): 1, ("right",): 2, ("d",): 2}
    OPTIONS = {
        "gravity": Option(350.0, "downward acceleration, units/s²", -5000.0, 5000.0),
        "num_balls": Option((2, 4), "number of balls, drawn per episode", 1, 12),
        "radius": Option((9.0, 16.0), "ball radius range, units", 2.0, 60.0),
        "speed": Option((80.0, 200.0), "initial ball speed range, units/s", 0.0, 900.0),
        "density": Option((0.8, 1.2), "ball density range (mass = density × area / 100)", 0.01, 100.0),
        "elasticity": Option(0.98, "ball elasticity", 0.0, 1.0),
        "paddle_width": Option(56.0, "paddle width, units", 8.0, 240.0),
    }

    def _build(self) -> None:
        o = self.opt
        self.space.gravity = (0.0, o["gravity"])
        self.add_walls(bottom=False, thickness=WALL, elasticity=1.0, friction=0.2)
        self._add_paddle(o["paddle_width"])
        self._add_balls(self.randint(*o["num_balls"]))

    def _add_paddle(self, width: float) -> None:
        body = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        width = min(width, self.world_width - 2 * WALL)  # a narrow frame: as wide as the walls allow
        half = width / 2
        body.position = (self.uniform(*fit(WALL + half, self.world_width - WALL - half)),
                         self.world_height - PADDLE_MARGIN)
        shape = pymunk.Poly.create_box(body, (width, PADDLE_HEIGHT))
        shape.elasticity, shape.friction = 1.0, 0.2
        self.paddle = self.add_thing(body, [shape], "paddle", controlled=True)
        self.paddle_half = half

    def _add_balls(self, n: int) -> None:
        o = self.opt
        placed: list[tuple[float, float, float]] = []
        for _ in range(n):
            r = min(self.uniform(*o["radius"]), (self.world_width - 2 * WALL) / 2)  # fits between the walls
            for _attempt in range(100):  # rejection sampling for a free spot
                x = self.uniform(*fit(WALL + r, self.world_width - WALL - r))
                y = self.uniform(WALL + r, self.world_height * 2 / 3)
                if all(math.hypot(x - px, y - py) > r + pr + 2 for px, py, pr in placed):
                    break
            placed.append((x, y, r))
            mass = self.uniform(*o["density"]) * math.pi * r * r / 100.0
            body = speed_limit(pymunk.Body(mass, pymunk.moment_for_circle(mass, 0, r)),
                               MAX_BALL_SPEED)
            body.position = (x, y)
            heading = self.uniform(0, 2 * math.pi)
            speed = self.uniform(*o["speed"])
            body.velocity = (speed * math.cos(heading), speed * math.sin(heading))
            shape = pymunk.Circle(body, r)
            shape.elasticity, shape.friction = o["elasticity"], 0.2
            self.add_thing(body, [shape], "ball")

    # ------------------------------------------------------------------ dynamics
    def _control(self, action) -> None:
        if self.continuous:
            vx = float(action[0]) * PADDLE_SPEED
        else:
            vx = (0.0, -PADDLE_SPEED, PADDLE_SPEED)[action]
        x = self.paddle.body.position.x
        lo, hi = fit(WALL + self.paddle_half, self.world_width - WALL - self.paddle_half)
        vx = self.bounded_rate(vx, x, lo, hi)  # stop at the walls
        self.paddle.body.velocity = (vx, 0.0)

    def _balls(self):
        return [t for t in self.things if t is not self.paddle]

    def _update(self, action) -> tuple[float, bool]:
        reward = 0.0
        for ball in self._balls():
            if ball.body.position.y - ball.radius > self.world_height:
                self.remove_thing(ball)
                reward -= 1.0
        left = len(self.things) - 1
        reward += 0.01 * left
        return reward, left == 0

    def _extra_info(self) -> dict:
        return {"balls_in_play": len(self.things) - 1}

    # ------------------------------------------------------------------ scripted policy
    def heuristic(self):
        """Move under the ball that will next cross the paddle's line (gravity-aware, walls folded)."""
        paddle_y = self.paddle.body.position.y - PADDLE_HEIGHT / 2
        g = self.space.gravity.y
        best_t, target = math.inf, self.paddle.body.position.x
        for ball in self._balls():
            (x, y), (vx, vy) = ball.body.position, ball.body.velocity
            dy = paddle_y - ball.radius - y
            if dy < -ball.radius:  # already below the paddle
                continue
            # time to fall dy: 0.5 g t² + vy t - dy = 0
            if abs(g) > 1e-9:
                disc = vy * vy + 2 * g * dy
                t = (-vy + math.sqrt(disc)) / g if disc >= 0 else math.inf
            else:
                t = dy / vy if vy > 1e-9 else math.inf
            if 0 <= t < best_t:
                best_t, target = t, self._fold(x + vx * t, ball.radius)
        dx = target - self.paddle.body.position.x
        if self.continuous:
            return np.array([np.clip(dx / (PADDLE_SPEED * self.DT), -1, 1)], np.float32)
        if abs(dx) < 3.0:
            return 0
        return 1 if dx < 0 else 2

    def _fold(self, x: float, r: float) -> float:
        """Where a ball that travels to x lands after bouncing between the side walls."""
        lo, hi = WALL + r, self.world_width - WALL - r
        span = hi - lo
        if span <= 0:
            return (lo + hi) / 2
        u = (x - lo) % (2 * span)
        return lo + (u if u <= span else 2 * span - u)
