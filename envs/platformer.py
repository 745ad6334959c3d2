"""
## Description

A one-screen platform game. A small character runs and jumps from a start pad on one side of the
screen to a goal door on the other (the level is mirrored at random, so the goal is on the left or
on the right). The floor is broken by pits; floating ledges (up to three storeys) and moving
platforms can be jumped onto from below, as they are one-way, and ridden; coins float over pits,
ledges, platforms and the floor.

## Action Space

`Discrete(6)`:

| action | meaning                 |
|--------|-------------------------|
| 0      | do nothing (keep momentum in the air, friction brakes on the ground) |
| 1      | run left                |
| 2      | run right               |
| 3      | jump (only when standing on something) |
| 4      | run left and jump       |
| 5      | run right and jump      |

Keys: ← / → (or a / d) to run, ↑ / space / w to jump; any run key held with any jump key is a
running jump (a+space, d+↑, ←+w, …).

## Observation Space

`Box(0, 255, (height, width, 3), uint8)`: the rendered frame (default 64×64). Flat colours, no HUD.
Walls, floor and ledges are grey; the goal door is drawn in the palette's zone colour.

## State

`info["state"]` (see `envs.base`): one row for the character (kind `character`, `controlled=True`),
one per moving platform (kind `platform`) and one per coin (kind `coin`; a collected coin stays in the
table with `visible=False`). `info["contacts"]`: pairs of ids that began touching this step, `-1`
standing for static geometry (touching a coin counts). `info["coins_left"]`, `info["grounded"]`.

## Rewards

+1 per coin, +5 for reaching the goal door, −1 for falling into a pit, and +1 spread over the run
towards the goal (paid for each new furthest point). Over episodes of up to 1,000 steps (seeds
0–19, default options, 64×64) the heuristic earns a mean of 9.92 (20/20 reach the door, in 45–282
steps) and uniform random actions 5.24 (11 reach the door by chance, 9 fall into a pit).

## Starting State

The character stands on the start pad. The floor has 1–3 pits (`num_pits`) of 28–52 units
(`pit_width`); 2–4 one-way ledges (`num_ledges`) stand 60 units above the floor, some with more
storeys 60 units higher; 1–2 moving platforms (`num_movers`) swing sideways at ledge height or ride
up and down as lifts (sinusoidal, period 2.5–4 s); 4–7 coins (`num_coins`) of radius 7 go on a
jump's path over pits, over ledges and platforms, and on the floor. Pits, ledges and platforms
never overlap on one storey. The counts are per square screen: a frame twice as wide as tall gets
twice as many; what does not fit is left out. In frames narrower than about 1:3 the door stands next
to the start; narrower than about 1:4, one storey above the floor on a ledge of its own, a jump away.

## Episode End

Terminated when the character reaches the goal door or falls out of the bottom of the frame through
a pit; truncated at 1,000 steps (the registered `max_episode_steps`).

## Physics

dt = 1/30 s in 4 substeps; gravity 900 units/s² downward (`gravity`; world: 256 units tall). The
character is a 14 × 20 box of mass 1 with infinite moment (it never tips over). It runs by friction:
while grounded its surface velocity is set against the run direction and its friction is
`ground accel / gravity` (accel 2,000 units/s²), so it grips the floor and the moving platforms alike
and is carried by them; in the air it steers at 900 units/s². Top speed 140 units/s (`run_speed`);
a jump sets the upward speed to √(2·g·h) for a 72-unit apex (`jump_height`), relative to the ground
it leaves. It is grounded when one of its contact arbiters has a normal within ~45° of straight
down. Speed is capped at 700 units/s. Coins and the door are sensor shapes reported by collision
handlers; ledges and moving platforms (kinematic bodies on a sinusoid) are one-way through a `begin`
handler that rejects contacts from below or the side. No elasticity, no damping.

## Arguments

```python
gym.make("WorldGym/Platformer-v0", render_mode="rgb_array", width=64, height=64)
env.reset(seed=0, options={"gravity": 600.0, "num_pits": (3, 3), "pit_width": (40.0, 60.0)})
```

Options: `gravity`, `jump_height`, `run_speed`, `num_pits`, `pit_width`, `num_ledges`, `num_movers`,
`num_coins`.

## Version History

* v0: initial release.
"""
from __future__ import annotations

import math

import numpy as np
import pymunk

from envs.base import PymunkScene, speed_limit
from envs.options import Option

WALL = 6.0
FLOOR = 24.0                # floor thickness: its top is FLOOR above the frame's bottom
TIER = 60.0                 # height of a ledge above the floor, and of each storey above the last
PAD = 48.0                  # start and goal pads (no pits, no ledges) at each end
CHAR_W, CHAR_H, CHAR_R = 14.0, 20.0, 0.5  # box, plus a rounding radius around it
GROUND_ACCEL, AIR_ACCEL = 2000.0, 900.0
MAX_SPEED = 700.0
LEDGE_H, MOVER_W, MOVER_H = 10.0, 40.0, 12.0
COIN_R = 7.0
DOOR_W, DOOR_H = 20.0, 34.0
DOOR_GAP = 4.0  # least floor between the start and the door (else the door goes one storey up)
CHAR, COIN, GOAL, ONEWAY = 1, 2, 3, 4  # collision types
LEFT_KEYS, RIGHT_KEYS, JUMP_KEYS = ("left", "a"), ("right", "d"), ("up", "space", "w")


class Platformer(PymunkScene):
    ACTIONS = ("noop", "left", "right", "jump", "left+jump", "right+jump")
    KEYS = {**{(k,): 1 for k in LEFT_KEYS}, **{(k,): 2 for k in RIGHT_KEYS}, **{(k,): 3 for k in JUMP_KEYS},
            **{(k, j): 4 for k in LEFT_KEYS for j in JUMP_KEYS},  # every run key with every jump key
            **{(k, j): 5 for k in RIGHT_KEYS for j in JUMP_KEYS}}
    OPTIONS = {
        "gravity": Option(900.0, "downward acceleration, units/s²", 100.0, 3000.0),
        "jump_height": Option(72.0, "apex of a jump above the take-off, units", 10.0, 180.0),
        "run_speed": Option(140.0, "top running speed, units/s", 20.0, 400.0),
        "num_pits": Option((1, 3), "number of pits in the floor", 0, 8),
        "pit_width": Option((28.0, 52.0), "pit width range, units", 8.0, 120.0),
        "num_ledges": Option((2, 4), "number of one-way ledges", 0, 10),
        "num_movers": Option((1, 2), "number of moving platforms", 0, 6),
        "num_coins": Option((4, 7), "number of coins", 0, 20),
    }

    # ------------------------------------------------------------------ world building
    def _build(self) -> None:
        o = self.opt
        self.space.gravity = (0.0, o["gravity"])
        self.floor_y = self.world_height - FLOOR
        self.mirror = bool(self.np_random.random() < 0.5)  # goal on the left
        self.space.on_collision(CHAR, COIN, begin=self._on_coin)
        self.space.on_collision(CHAR, GOAL, begin=self._on_goal)
        self.space.on_collision(CHAR, ONEWAY, begin=self._on_oneway)
        self.scenery: list[tuple[float, float, float, float]] = []  # static boxes, drawn as rects
        self.storeys: list[list[tuple[float, float]]] = [[], [], []]  # taken u-intervals per storey
        self.ledges: list[tuple[float, float, float]] = []  # (u0, u1, top y)
        self._add_walls()
        screens = max(1, round(self.world_width / self.world_height))  # counts are per square screen
        self.start_u = min(WALL + 6.0 + CHAR_W / 2, self.world_width / 2)
        self.goal_u = max(self.world_width - WALL - 4.0 - DOOR_W / 2, self.world_width / 2)
        self._add_floor(self.randint(*o["num_pits"]) * screens)
        self._add_movers(self.randint(*o["num_movers"]) * screens)
        self._add_ledges(self.randint(*o["num_ledges"]) * screens)
        self._add_goal()
        self._add_coins(self.randint(*o["num_coins"]) * screens)
        self._add_character()
        self.reached_goal, self._coins_now, self._substep = False, 0, 0
        self.best_u = self._u(self.character.body.position.x)
        self._coin_px = None  # pixels of the uncollected coins, rebuilt on demand
        self._h_target, self._h_steps, self._h_skip, self._h_feet = -1, 0, [], self.floor_y  # heuristic's

    def _x(self, u: float) -> float:
        """Level coordinate u (0 at the start wall, growing towards the goal) → world x."""
        return self.world_width - u if self.mirror else u

    _u = _x  # the mirror is its own inverse

    def _box(self, u0: float, y0: float, u1: float, y1: float, kind: int = 0, sensor=False):
        """A static box between level coordinates u0..u1 and heights y0..y1."""
        xa, xb = sorted((self._x(u0), self._x(u1)))
        shape = pymunk.Poly(self.space.static_body, [(xa, y0), (xb, y0), (xb, y1), (xa, y1)])
        shape.friction, shape.collision_type, shape.sensor = 1.0, kind, sensor
        self.add_static(shape, drawn=False)
        if not sensor:
            self.scenery.append((xa, y0, xb, y1))
        return shape

    @staticmethod
    def _free(lo: float, hi: float, taken, gap: float = 12.0) -> bool:
        return all(hi + gap <= a or lo - gap >= b for a, b in taken)

    def _add_walls(self) -> None:
        w, h = self.world_width, self.world_height
        for u0, u1 in ((-WALL, WALL), (w - WALL, w + WALL)):
            self._box(u0, -WALL, u1, h + WALL)
        self._box(0.0, -WALL, w, WALL)

    def _add_floor(self, n: int) -> None:
        lo, hi = PAD + WALL, self.world_width - PAD - WALL
        self.pits: list[tuple[float, float]] = []
        for _ in range(n):
            for _attempt in range(30):
                w = self.uniform(*self.opt["pit_width"])
                u0 = self.uniform(lo, max(lo, hi - w))
                if u0 + w <= hi and self._free(u0, u0 + w, self.pits, gap=40.0):
                    self.pits.append((u0, u0 + w))
                    break
        self.pits.sort()
        edges = [0.0] + [e for pit in self.pits for e in pit] + [self.world_width]
        for u0, u1 in zip(edges[::2], edges[1::2]):
            self._box(u0, self.floor_y, u1, self.world_height + WALL)

    def _add_ledges(self, n: int) -> None:
        """Ledges on the first storey; some stacked one storey above an earlier ledge, to one side."""
        lo, hi = WALL + 24.0, self.world_width - WALL - 24.0
        for _ in range(n):
            for _attempt in range(12):
                w = self.uniform(36.0, 56.0)
                if self.ledges and self.np_random.random() < 0.5:
                    a, b, top = self.ledges[self.randint(0, len(self.ledges) - 1)]
                    side = 1 if self.np_random.random() < 0.5 else -1
                    u0, level = (a + b) / 2 + side * self.uniform(24.0, 48.0) - w / 2, self._storey(top) + 1
                else:
                    u0, level = self.uniform(lo, max(lo, hi - w)), 0
                if level < len(self.storeys) and lo <= u0 and u0 + w <= hi and \
                        self._free(u0, u0 + w, self.storeys[level]):
                    self.storeys[level].append((u0, u0 + w))
                    top = self.floor_y - TIER * (level + 1)
                    self.ledges.append((u0, u0 + w, top))
                    self._box(u0, top, u0 + w, top + LEDGE_H, ONEWAY)
                    break

    def _storey(self, top: float) -> int:
        return round((self.floor_y - top) / TIER) - 1

    def _add_movers(self, n: int) -> None:
        """Kinematic platforms on a sinusoid: sideways on the first storey, or lifts up to the second."""
        self.movers = []
        lo, hi = WALL + 24.0, self.world_width - WALL - 24.0
        for _ in range(n):
            lift = self.np_random.random() < 0.4
            reach = 0.0 if lift else self.uniform(16.0, 36.0)
            half = MOVER_W / 2 + reach
            c = self.uniform(lo + half, max(lo + half, hi - half))
            levels = self.storeys[:2] if lift else self.storeys[:1]
            if c + half > hi or not all(self._free(c - half, c + half, s) for s in levels):
                continue
            for s in levels:
                s.append((c - half, c + half))
            if lift:  # top surface between 24 units over the floor and the second storey
                low, high = self.floor_y - 24.0, self.floor_y - 2 * TIER
                base, axis, amp = (self._x(c), (low + high + MOVER_H) / 2), (0.0, 1.0), (low - high) / 2
            else:
                base, axis, amp = (self._x(c), self.floor_y - TIER + MOVER_H / 2), (1.0, 0.0), reach
            body = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
            omega, phase = 2 * math.pi / self.uniform(2.5, 4.0), self.uniform(0.0, 2 * math.pi)
            d = dict(base=base, axis=axis, amp=amp, omega=omega, phase=phase, u=c)
            body.position = self._mover_at(d, 0.0)
            shape = pymunk.Poly.create_box(body, (MOVER_W, MOVER_H))
            shape.friction, shape.collision_type = 1.0, ONEWAY
            thing = self.add_thing(body, [shape], "platform")
            thing.data.update(d, half=(MOVER_W / 2, MOVER_H / 2))
            self.movers.append(thing)

    @staticmethod
    def _mover_at(d: dict, t: float) -> tuple[float, float]:
        s = d["amp"] * math.sin(d["omega"] * t + d["phase"])
        return (d["base"][0] + d["axis"][0] * s, d["base"][1] + d["axis"][1] * s)

    def _add_goal(self) -> None:
        """The door on the floor at the far end. Where the floor is too narrow for it beside the start
        (frames narrower than about 1:4), it stands one storey up on a ledge of its own: otherwise the
        character would touch it where it starts and win on the first step."""
        u0, u1, bottom = self.goal_u - DOOR_W / 2, self.goal_u + DOOR_W / 2, self.floor_y
        if u0 < self.start_u + CHAR_W / 2 + CHAR_R + DOOR_GAP:
            bottom = self.floor_y - TIER
            self.storeys[0].append((u0, u1))
            self.ledges.append((u0, u1, bottom))
            self._box(u0, bottom, u1, bottom + LEDGE_H, ONEWAY)
        self.door = self._box(u0, bottom - DOOR_H, u1, bottom, GOAL, sensor=True)

    def _add_coins(self, n: int) -> None:
        """Coins on a jump's path over pits, over ledges and platforms, then on the floor to make up n."""
        spots = [((a + b) / 2, self.floor_y - 66.0) for a, b in self.pits
                 if self._free((a + b) / 2, (a + b) / 2, self.storeys[0], gap=COIN_R)]
        spots += [(self.uniform(a + 8, b - 8), top - 14.0) for a, b, top in self.ledges]
        for m in self.movers:
            d = m.data
            spots.append((d["u"], d["base"][1] - d["amp"] * d["axis"][1] - MOVER_H / 2 - 14.0))
        spots = [spots[i] for i in self.np_random.permutation(len(spots))]
        lo, hi = WALL + COIN_R + 2, self.world_width - WALL - COIN_R - 2  # off the walls (narrow frames)
        a, b = min(max(PAD, lo), hi), min(max(PAD, self.goal_u - DOOR_W), hi)
        on_floor = [self.uniform(a, max(a, b)) for _ in range(3 * n)] if lo <= hi else []
        spots += [(u, self.floor_y - 12.0) for u in on_floor
                  if self._free(u, u, self.pits, gap=COIN_R + 4)]
        self.coins, placed = [], []
        for u, y in spots[:]:
            if len(self.coins) == n:
                break
            if all(abs(u - p) > 20 or abs(y - q) > 20 for p, q in placed):
                placed.append((u, y))
                body = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
                body.position = (self._x(u), y)
                shape = pymunk.Circle(body, COIN_R)
                shape.sensor, shape.collision_type = True, COIN
                self.coins.append(self.add_thing(body, [shape], "coin"))
        self._coin_of = {c.shapes[0]: c for c in self.coins}

    def _add_character(self) -> None:
        body = speed_limit(pymunk.Body(1.0, math.inf), MAX_SPEED)
        body.position = (self._x(self.start_u), self.floor_y - CHAR_H / 2 - CHAR_R)
        shape = pymunk.Poly.create_box(body, (CHAR_W, CHAR_H), CHAR_R)
        shape.collision_type = CHAR
        self.character = self.add_thing(body, [shape], "character", controlled=True)
        self.character.data["half"] = (CHAR_W / 2 + CHAR_R, CHAR_H / 2 + CHAR_R)

    # ------------------------------------------------------------------ collision handlers
    def _on_coin(self, arbiter, space, data) -> None:
        coin = self._coin_of[arbiter.shapes[1]]
        if not coin.hidden:
            coin.hidden, self._coin_px = True, None
            self._coins_now += 1
            space.remove(*coin.shapes)  # gone: no more contacts (pymunk defers it to the step's end)

    def _on_goal(self, arbiter, space, data) -> None:
        self.reached_goal = True

    def _on_oneway(self, arbiter, space, data) -> None:
        """Ledges and platforms hold the character only when it comes down onto them from above."""
        ch, plat = arbiter.shapes
        feet = ch.body.position.y + CHAR_H / 2
        arbiter.process_collision = arbiter.normal.y > 0.7 and feet <= plat.bb.bottom + 6.0  # min y

    def ground(self) -> pymunk.Body | None:
        """The body the character stands on: a live contact whose normal points down, or None."""
        found = []

        def check(arb):
            if arb.process_collision and not arb.shapes[1].sensor and arb.normal.y > 0.7:
                found.append(arb.shapes[1].body)

        self.character.body.each_arbiter(check)
        return found[0] if found else None

    # ------------------------------------------------------------------ dynamics
    def _control(self, action) -> None:
        sub_dt = self.DT / self.SUBSTEPS
        first = self._substep % self.SUBSTEPS == 0
        self._substep += 1
        for m in self.movers:  # kinematic: the velocity that lands on the path at the substep's end
            x, y = self._mover_at(m.data, self._substep * sub_dt)
            m.body.velocity = ((x - m.body.position.x) / sub_dt, (y - m.body.position.y) / sub_dt)
        if first:
            self._coins_now = 0
        body, shape = self.character.body, self.character.shapes[0]
        run = (0, -1, 1, 0, -1, 1)[action] * self.opt["run_speed"]
        g = self.space.gravity.y
        under = self.ground()
        if under is not None:
            shape.friction, shape.surface_velocity = GROUND_ACCEL / g, (-run, 0.0)
            if first and action >= 3 and body.velocity.y > under.velocity.y - 50.0:
                jump = math.sqrt(2 * g * self.opt["jump_height"])
                body.velocity = (body.velocity.x, under.velocity.y - jump)
        else:
            shape.friction = 0.0
            if run:
                vx, dv = body.velocity.x, AIR_ACCEL * sub_dt
                body.velocity = (vx + max(-dv, min(dv, run - vx)), body.velocity.y)

    def _update(self, action) -> tuple[float, bool]:
        body = self.character.body
        reward = float(self._coins_now)
        u = self._u(body.position.x)
        if min(u, self.goal_u) > self.best_u:
            reward += (min(u, self.goal_u) - self.best_u) / (self.goal_u - self.start_u)
            self.best_u = min(u, self.goal_u)
        if self.reached_goal:
            return reward + 5.0, True
        if body.position.y - CHAR_H / 2 > self.world_height:
            return reward - 1.0, True
        return reward, False

    def _extra_info(self) -> dict:
        return {"coins_left": sum(not c.hidden for c in self.coins), "grounded": self.ground() is not None}

    # ------------------------------------------------------------------ drawing
    def _draw(self, canvas) -> None:
        """Boxes as rects (no rotation anywhere); coins as exact discs cached per episode (speed)."""
        if self._coin_px is None:
            self._coin_px = self._rasterise_coins(canvas)
        for x0, y0, x1, y1 in self.scenery:
            canvas.rect(x0, y0, x1, y1, self.palette.static)
        canvas.shape(self.door, self.palette.zone)
        xs, ys, colors = self._coin_px
        if len(xs):
            canvas.paint(xs, ys, colors)
        for t in self.movers + [self.character]:
            (x, y), (hw, hh) = t.body.position, t.data["half"]
            canvas.rect(x - hw, y - hh, x + hw, y + hh, t.color)

    def _rasterise_coins(self, canvas):
        """Pixel columns, rows and colours of the uncollected coins, drawn once with the canvas's discs."""
        coins = [c for c in self.coins if not c.hidden]
        canvas.clear((0, 0, 0))
        for i, c in enumerate(coins):
            canvas.circle(c.body.position, COIN_R, (i + 1, 0, 0))
        code = canvas.to_array()[..., 0]  # (H, W)
        canvas.clear(self.palette.background)
        rows, cols = np.nonzero(code)
        palette = np.array([c.color for c in coins], np.uint8).reshape(-1, 3)
        return cols, rows, palette[code[rows, cols].astype(np.int64) - 1]

    # ------------------------------------------------------------------ scripted policy
    def heuristic(self):
        """Nearest reachable coin (ahead first), else the door. Jumps at pit edges and under coins,
        walks off ledge ends to get down, and steers in the air so as not to land in a pit.
        A coin chased for 3 s without success is given up.
        """
        body, under = self.character.body, self.ground()
        u, y, feet = self._u(body.position.x), body.position.y, body.position.y + CHAR_H / 2 + CHAR_R
        if under is not None:
            self._h_feet = feet
        coins = [c for c in self.coins if not c.hidden and c.id not in self._h_skip]
        low = [c for c in coins if c.body.position.y > self._h_feet - TIER - 40.0]  # within a jump
        key = [abs(self._u(c.body.position.x) - u) + 30.0 * (self._u(c.body.position.x) < u)
               for c in low or coins]
        target = (low or coins)[int(np.argmin(key))] if coins else None
        self._h_steps = self._h_steps + 1 if target is not None and target.id == self._h_target else 0
        self._h_target = target.id if target is not None else -1
        if self._h_steps > 90:
            self._h_skip.append(target.id)
        tu, ty = (self._u(target.body.position.x), target.body.position.y) if target else \
            (self.goal_u, self.floor_y - CHAR_H / 2)
        stairs = [(a + b) / 2 for a, b, top in self.ledges if abs(self._h_feet - TIER - top) < 4.0]
        if target is not None and not low and stairs:  # climb: jump onto the ledge above nearest it
            tu, ty = min(stairs, key=lambda c: abs(c - tu)), y - TIER
        if under is not None and ty > y + 20.0 and feet < self.floor_y - 2.0:  # get down: a ledge's end
            for a, b, top in self.ledges:
                if abs(top - feet) < 4.0 and a - 4 <= u <= b + 4:
                    tu = a - CHAR_W if abs(tu - a) < abs(tu - b) else b + CHAR_W
        du = tu - u
        step = 0 if abs(du) < 3.0 else (1 if du > 0 else -1)
        g, vy = self.space.gravity.y, body.velocity.y
        if under is None and feet < self.floor_y:  # steer to land beside, not in, a pit
            t = (-vy + math.sqrt(vy * vy + 2 * g * (self.floor_y - feet))) / g
            vu, run = (-1 if self.mirror else 1) * body.velocity.x, self.opt["run_speed"]
            ahead = 1 if vu >= 0 else -1
            land = {p: u + _drift(vu, AIR_ACCEL * abs(p), p * run, t) for p in (-1, 0, 1)}  # by push
            for a, b in self.pits:
                inside = {p: a - CHAR_W / 2 < x < b + CHAR_W / 2 for p, x in land.items()}
                if inside[0]:  # coasting would land in it: push on, or back if only that clears it
                    step = -ahead if inside[ahead] and not inside[-ahead] else ahead
        jump = False
        if under is not None:
            front = u + step * (CHAR_W / 2 + 12.0)
            jump = bool(step) and any(a - 2 < front < b + 2 for a, b in self.pits) or \
                (ty < y - 24.0 and abs(du) < (28.0 if low else 6.0))
        move = -step if self.mirror else step  # level direction → screen direction
        return (0, 2, 1)[move] + 3 * jump


def _drift(v: float, accel: float, target: float, t: float) -> float:
    """Distance covered in time t from speed v, changing speed towards target at accel."""
    t_reach = abs(target - v) / accel if accel > 0 else math.inf
    if t_reach >= t:
        return v * t + 0.5 * math.copysign(accel, target - v) * t * t
    return (v + target) / 2 * t_reach + target * (t - t_reach)
