"""
## Description

A top-down view of a floor with no gravity. The agent is a round puck that thrusts in eight
directions among fixed grey obstacles. Square boxes lie about; each one slides with floor friction
when pushed and stops when left alone. The floor carries as many target zones (flat green-grey
squares, drawn but not physical) as there are boxes: push every box onto a target (Sokoban-style, any
box may fill any target) to finish. The puck can only push: a box jammed into a corner is lost.

## Action Space

`Discrete(9)` by default:

| action | meaning               |
|--------|-----------------------|
| 0      | do nothing (coast)    |
| 1      | thrust up             |
| 2      | thrust up-right       |
| 3      | thrust right          |
| 4      | thrust down-right     |
| 5      | thrust down           |
| 6      | thrust down-left      |
| 7      | thrust left           |
| 8      | thrust up-left        |

With `continuous=True`: `Box(-1, 1, (2,), float32)`, the thrust vector (x right, y down) as a fraction
of full thrust; vectors longer than 1 are scaled back to length 1. Keys: arrows (or w a s d), two at
once for the diagonals.

## Observation Space

`Box(0, 255, (height, width, 3), uint8)`: the rendered frame (default 64×64). Flat colours, no HUD.

## State

`info["state"]` (see `envs.base`): one row per box (kind `box`) and one for the puck (kind `agent`,
`controlled=True`), in the frame's pixel coordinates. `info["contacts"]`: pairs of ids that began
touching this step, `-1` standing for walls and obstacles. `info["targets"]`: a tuple of the n target
centres `(x, y)` in pixels (a tuple, not an array, so vector envs keep it per sub-environment);
`info["boxes_on_targets"]`: how many targets are covered, each by a box of its own.

## Rewards

Each step: +1 for every target that became covered (−1 for every one uncovered), plus a shaping term
0.01 × the decrease of the total box–target distance (world units) under the best one-to-one
matching of boxes to targets. A box covers a target when its centre is within (target half side −
box half side / 2) of the target's centre on both axes: three quarters of the box on the zone. Both
terms are differences of a function of the state, so no loop earns reward. Over 1,000-step episodes
(seeds 0–19, default options) the heuristic earns a mean of 4.08 (19 of 20 solved, in 387 steps on
average) and uniform random actions −0.01; with `continuous=True` 4.11 (19 of 20) and 0.00.

## Starting State

2–3 boxes (option `num_boxes`) of side 18–24 units (`box_size`) at random spots at least 48 units
from the frame's edges (a quarter of the shorter side on small frames); each target 60–150 units from
a distinct box; 1–3 obstacles (`num_obstacles`), rectangles of 16–56 × 12–28 units placed clear of
the boxes, the targets, the straight lanes between them and the puck (an obstacle that finds no room
is left out). Everything starts at rest.

## Episode End

Terminated when every target holds a box; truncated at 1,000 steps (the registered
`max_episode_steps`).

## Physics

dt = 1/30 s in 2 substeps; no gravity; `space.damping` 0.3 (`damping`: the fraction of velocity
kept after one second); floor friction as in pymunk's tank example: a `PivotJoint` and a
`GearJoint` to the static body with `max_bias = 0`, whose `max_force` is the Coulomb friction
(boxes decelerate at 300 units/s², `box_friction`; the puck at 150). Puck: radius 9, mass 1,
infinite moment (it does not spin), thrust 900 units/s² (`thrust`), speed capped at 220 units/s.
Box mass = side² / 400. Walls and obstacles are static boxes; elasticity 0.1 and friction 0.4 for
every shape.

## Arguments

```python
gym.make("WorldGym/TopDown-v0", render_mode="rgb_array", width=64, height=64, continuous=False)
env.reset(seed=0, options={"num_boxes": (4, 4), "num_obstacles": (0, 0), "damping": 0.8})
```

Options: `damping`, `num_boxes`, `num_obstacles`, `box_size`, `box_friction`, `thrust`.

## Version History

* v0: initial release.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pymunk

from envs.base import PymunkScene, speed_limit
from envs.options import Option

WALL = 6.0
AGENT_RADIUS = 9.0
AGENT_FRICTION = 150.0  # puck's floor deceleration, units/s²
MAX_SPEED = 220.0
ZONE_SCALE = 1.6  # target side / box side
SHAPING = 0.01  # reward per world unit of box-target distance removed
# action k ≥ 1 thrusts at (k - 1) × 45° clockwise from up (y is down)
DIRECTIONS = np.array([(0.0, 0.0)] + [(math.sin(k * math.pi / 4), -math.cos(k * math.pi / 4))
                                      for k in range(8)])


class TopDown(PymunkScene):
    SUBSTEPS = 2
    ACTIONS = ("noop", "up", "up_right", "right", "down_right", "down", "down_left", "left", "up_left")
    CONTINUOUS_DIM = 2
    KEYS = {("up",): 1, ("up", "right"): 2, ("right",): 3, ("down", "right"): 4, ("down",): 5,
            ("down", "left"): 6, ("left",): 7, ("up", "left"): 8,
            ("w",): 1, ("d", "w"): 2, ("d",): 3, ("d", "s"): 4, ("s",): 5, ("a", "s"): 6, ("a",): 7,
            ("a", "w"): 8}
    OPTIONS = {
        "damping": Option(0.3, "space.damping: fraction of velocity kept after 1 s", 0.0, 1.0),
        "num_boxes": Option((2, 3), "number of boxes (and targets), drawn per episode", 1, 5),
        "num_obstacles": Option((1, 3), "number of static obstacles, drawn per episode", 0, 8),
        "box_size": Option((18.0, 24.0), "box side range, units", 8.0, 48.0),
        "box_friction": Option(300.0, "boxes' floor friction as a deceleration, units/s²", 0.0, 2000.0),
        "thrust": Option(900.0, "puck's thrust as an acceleration, units/s²", 0.0, 5000.0),
    }

    def _build(self) -> None:
        o = self.opt
        self.space.damping = o["damping"]
        w, h = self.world_width, self.world_height
        self._scenery: list[list[tuple[float, float]]] = []  # static rectangles' corners, to draw
        for x0, y0, x1, y1 in ((0, 0, WALL, h), (w - WALL, 0, w, h), (0, 0, w, WALL), (0, h - WALL, w, h)):
            self._add_block(x0, y0, x1, y1)
        self._placed: list[tuple[float, float, float]] = []  # (x, y, radius) of what is laid out
        self.boxes, targets = [], []
        margin = min(48.0, min(w, h) / 4)  # room to get behind a box anywhere (less on small frames)
        for _ in range(self.randint(*o["num_boxes"])):
            size = self.uniform(*o["box_size"])
            x, y = self._free_spot(size * 0.75, margin)
            tx, ty = self._free_spot(size * ZONE_SCALE * 0.75, margin, near=(x, y))
            self.boxes.append(self._add_box(x, y, size))
            targets.append((tx, ty, size * ZONE_SCALE / 2))
        self.targets = np.array(targets)  # (n, 3): x, y, half side
        self.agent = self._add_agent(*self._free_spot(AGENT_RADIUS + 4, margin=WALL + AGENT_RADIUS))
        for _ in range(self.randint(*o["num_obstacles"])):
            self._add_obstacle()
        n = len(self.boxes)
        self._perms = np.array(list(itertools.permutations(range(n))))  # (n!, n) matchings
        self._covered, self._distance = self._score()

    # ------------------------------------------------------------------ world building
    def _free_spot(self, radius: float, margin: float, near=None, tries: int = 200):
        """A random point ≥ margin from the frame's edges, clear of everything placed and, given
        ``near``, 60-150 units from it; where there is no room (small frames) the best point tried."""
        w, h = self.world_width, self.world_height
        best, best_score = None, -math.inf
        for _ in range(tries):
            x, y = self._span(margin, w - margin), self._span(margin, h - margin)
            gap = min((math.hypot(x - px, y - py) - radius - pr for px, py, pr in self._placed),
                      default=math.inf)
            miss = 0.0  # how far outside 60-150 units from `near`
            if near is not None:
                d = math.dist(near, (x, y))
                miss = max(60.0 - d, d - 150.0, 0.0)
            if gap > 4 and miss == 0:
                best = (x, y)
                break
            if min(gap, 4) - miss > best_score:
                best, best_score = (x, y), min(gap, 4) - miss
        self._placed.append((*best, radius))
        return best

    def _span(self, lo: float, hi: float) -> float:
        return self.uniform(lo, hi) if hi > lo else (lo + hi) / 2

    def _add_box(self, x: float, y: float, size: float):
        mass = size * size / 400.0
        body = pymunk.Body(mass, pymunk.moment_for_box(mass, (size, size)))
        body.position = (x, y)
        shape = pymunk.Poly.create_box(body, (size, size))
        shape.elasticity, shape.friction = 0.1, 0.4
        box = self.add_thing(body, [shape], "box")
        box.data["half"] = size / 2
        box.data["corners"] = np.array(shape.get_vertices())  # (4, 2) in the body's frame
        self._add_floor_friction(body, mass * self.opt["box_friction"], size / 2)
        return box

    def _add_agent(self, x: float, y: float):
        body = speed_limit(pymunk.Body(1.0, math.inf), MAX_SPEED)  # a puck that does not spin
        body.position = (x, y)
        shape = pymunk.Circle(body, AGENT_RADIUS)
        shape.elasticity, shape.friction = 0.1, 0.4
        agent = self.add_thing(body, [shape], "agent", controlled=True)
        self._add_floor_friction(body, AGENT_FRICTION, 0.0)
        return agent

    def _add_floor_friction(self, body: pymunk.Body, force: float, arm: float) -> None:
        """Coulomb friction with the floor (pymunk's tank example): joints to the static body that
        only cancel velocity (``max_bias = 0``), with at most ``force`` (and ``force × arm`` torque)."""
        pivot = pymunk.PivotJoint(self.space.static_body, body, (0, 0), (0, 0))
        pivot.max_bias, pivot.max_force = 0.0, force
        joints = [pivot]
        if arm > 0:
            gear = pymunk.GearJoint(self.space.static_body, body, 0.0, 1.0)
            gear.max_bias, gear.max_force = 0.0, force * arm
            joints.append(gear)
        self.space.add(*joints)

    def _add_obstacle(self) -> None:
        """A static rectangle clear of what is placed and of the lanes from boxes to targets."""
        w, h = self.world_width, self.world_height
        for _ in range(100):
            hx, hy = self.uniform(8.0, 28.0), self.uniform(6.0, 14.0)
            if self.randint(0, 1):
                hx, hy = hy, hx
            x, y = self._span(WALL + hx, w - WALL - hx), self._span(WALL + hy, h - WALL - hy)
            r = math.hypot(hx, hy)
            if all(math.hypot(x - px, y - py) > r + pr + 6 for px, py, pr in self._placed) and all(
                    _segment_distance((x, y), b.body.position, t[:2]) > r + t[2] + AGENT_RADIUS
                    for b, t in zip(self.boxes, self.targets)):
                break
        else:
            return
        self._placed.append((x, y, r))
        self._add_block(x - hx, y - hy, x + hx, y + hy)

    def _add_block(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """A static rectangle (wall or obstacle), drawn by ``_draw`` from its kept corners."""
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        shape = pymunk.Poly(self.space.static_body, corners)
        shape.elasticity, shape.friction = 0.1, 0.4
        self.add_static(shape, drawn=False)
        self._scenery.append(corners)

    # ------------------------------------------------------------------ dynamics
    def _control(self, action) -> None:
        if self.continuous:
            direction = action / max(1.0, math.hypot(*action))  # no faster on the diagonal
        else:
            direction = DIRECTIONS[action]
        fx, fy = direction * (self.opt["thrust"] * self.agent.body.mass)
        self.agent.body.force = (float(fx), float(fy))  # pymunk clears forces after each substep

    def _match(self):
        """Box positions (n, 2), whether box i is on target j (n, n), and the one-to-one matching
        (box i → target match[i]) with the least total distance, with that distance."""
        boxes = np.array([b.body.position for b in self.boxes])  # (n, 2)
        delta = np.abs(boxes[:, None, :] - self.targets[None, :, :2])  # (boxes, targets, 2)
        tolerance = self.targets[:, 2] - np.array([b.data["half"] for b in self.boxes])[:, None] / 2
        on = np.all(delta < tolerance[..., None], axis=-1)
        cost = np.hypot(delta[..., 0], delta[..., 1])[np.arange(len(boxes)), self._perms].sum(axis=1)
        best = int(np.argmin(cost))  # (n!,) costs → the best permutation
        return boxes, on, self._perms[best], float(cost[best])

    def _score(self) -> tuple[int, float]:
        """(targets covered, total box-target distance under the best matching). A target counts only
        with a box of its own: where zones overlap (small frames), one box on two zones covers one."""
        _, on, _, distance = self._match()
        covered = on[np.arange(len(self.boxes)), self._perms].sum(axis=1).max(initial=0)
        return int(covered), distance

    def _update(self, action) -> tuple[float, bool]:
        covered, distance = self._score()
        reward = (covered - self._covered) + SHAPING * (self._distance - distance)
        self._covered, self._distance = covered, distance
        return reward, covered == len(self.boxes)

    def _draw(self, canvas) -> None:
        for x, y, half in self.targets:
            canvas.rect(x - half, y - half, x + half, y + half, self.palette.zone)
        for corners in self._scenery:
            canvas.polygon(corners, self.palette.static)
        for box in self.boxes:  # corners rotated here: cheaper than pymunk's per-vertex calls
            c, s = box.body.rotation_vector
            corners = box.data["corners"] @ np.array([[c, s], [-s, c]]) + tuple(box.body.position)
            canvas.polygon(corners.tolist(), box.color)
        canvas.circle(self.agent.body.position, AGENT_RADIUS, self.agent.color)

    def _extra_info(self) -> dict:
        return {"targets": tuple(map(tuple, (self.targets[:, :2] * self.scale).tolist())),
                "boxes_on_targets": self._covered}

    # ------------------------------------------------------------------ scripted policy
    def heuristic(self):
        """Take the off-target box nearest its matched target; get behind it (relative to the
        target), going round it if on the wrong side, then push through its centre, coasting when
        friction alone will carry the box home."""
        steer = self._steer()
        if self.continuous:
            return np.clip(steer, -1, 1).astype(np.float32)
        if math.hypot(*steer) < 0.2:
            return 0
        return int(np.argmax(DIRECTIONS[1:] @ steer)) + 1

    def _steer(self) -> np.ndarray:
        me = np.array(self.agent.body.position)
        vel = np.array(self.agent.body.velocity)
        boxes, on, match, _ = self._match()
        todo = [i for i in range(len(self.boxes)) if not on[i, match[i]]]
        if not todo:
            return -vel / MAX_SPEED  # all home: brake
        # the box nearest its target first; every 250 steps the next one, to get out of dead ends
        order = sorted(todo, key=lambda k: np.hypot(*(boxes[k] - self.targets[match[k], :2])))
        i = order[(self.steps // 250) % len(order)]
        box, target, half = boxes[i], self.targets[match[i], :2], self.boxes[i].data["half"]
        to_target = target - box
        remaining = np.hypot(*to_target)
        d = to_target / remaining
        side = np.array([-d[1], d[0]])
        reach = half * 1.5 + AGENT_RADIUS  # clear of the box's corners
        rel = me - box
        along, across = rel @ d, rel @ side
        if along > -(half + AGENT_RADIUS) * 0.85 or abs(across) > half * 0.8:  # not behind: go there
            goal = box - d * (reach + 4)
            if along > -reach * 0.5 and abs(across) < reach * 1.2:  # the box is in the way: go round,
                # first sideways, then back past its side
                goal = box + side * np.sign(across or 1.0) * (reach + 8) + d * (
                    along if along > reach * 0.3 else -reach)
            lo = WALL + AGENT_RADIUS + 2
            goal = np.clip(goal, lo, (self.world_width - lo, self.world_height - lo))
            want = goal - me
            return want / max(np.hypot(*want), 1e-9) - 0.3 * vel / MAX_SPEED
        box_speed = np.array(self.boxes[i].body.velocity) @ d
        if box_speed > 0 and box_speed ** 2 > 2 * self.opt["box_friction"] * remaining:
            return np.zeros(2)  # coast: friction stops the box on the target
        return d - 0.04 * across * side


def _segment_distance(p, a, b) -> float:
    """Distance from point p to the segment a-b."""
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    t = ((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-9)
    t = min(max(t, 0.0), 1.0)
    return math.hypot(px - ax - t * dx, py - ay - t * dy)
