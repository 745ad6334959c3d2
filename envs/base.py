"""``PymunkScene``: the mechanics every WorldGym scene shares.

A scene file only lays out its world and its rules (MiniGrid's split): it sets a few class constants
and overrides the hooks ``_build`` (bodies for a new episode), ``_control`` (the action, applied
before every physics substep), ``_update`` (reward and termination after the physics) and
``heuristic``; ``_draw`` only when the default look (static shapes grey, each object in its colour)
is not enough. This class owns everything else, once:

* a fresh ``pymunk.Space`` per ``reset`` (rebuilding from the seed is bit-identical; copying a
  space is not, because the contact cache is lost), fixed ``DT`` split into ``SUBSTEPS``;
* all randomness from ``self.np_random``; per-episode palette; option validation;
* action validation (``TypeError`` for a wrong type, ``ValueError`` for out-of-range or NaN);
* the tracked objects ("things") and their export as ``info["state"]`` (an ``ObjectState``) in the
  observation's pixel frame, and ``info["contacts"]`` (``Contacts``) from a wildcard
  ``space.on_collision`` handler (see envs/state.py for why these are not a dict and an ndarray).
  ``visible`` is a cheap bound, not a pixel test: the thing is not ``hidden`` and its bounding
  circle's square ``[x - r, x + r] × [y - r, y + r]`` (``position``, ``radius``) overlaps the frame
  ``(0, width) × (0, height)``; a visible thing may still show no pixel (only a corner of that
  square on the frame, or covered by another object);
* rendering through :class:`envs.render.Canvas`, and the human window.

World coordinates: x right, y down, origin top-left, in world units; the frame shows
``WORLD_HEIGHT`` units vertically and ``WORLD_HEIGHT * width / height`` horizontally, so one world
unit is ``height / WORLD_HEIGHT`` pixels on both axes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pymunk
from gymnasium import spaces
from gymnasium.utils import EzPickle

from envs import options as scene_options
from envs.actions import check_action
from envs.kinds import KIND_INDEX
from envs.palette import Palette
from envs.render import Canvas
from envs.state import Contacts, ObjectState

MIN_SIZE, MAX_SIZE = 32, 512

#: Object id used in ``info["contacts"]`` for static geometry (walls, floors, pivots).
STATIC_ID = -1

_KEY_NAMES = {"left": 1073741904, "right": 1073741903, "up": 1073741906, "down": 1073741905,
              "space": 32}


def key_code(name: str) -> int:
    """pygame key code for a key name ('left', 'space', 'a', …) without importing pygame."""
    return _KEY_NAMES[name] if name in _KEY_NAMES else ord(name)


@dataclass(eq=False)
class Thing:
    """A dynamic object the scene tracks and reports: one row of ``info["state"]``."""

    id: int
    kind: int
    body: pymunk.Body
    shapes: list
    color: tuple
    radius: float  # bounding radius, world units, around body.position
    controlled: bool = False
    hidden: bool = False  # not drawn (e.g. collected); still reported, with visible=False
    # ``controlled`` and ``hidden`` may change mid-episode (a crane's block is controlled until dropped).
    own_color: bool = False  # picked by the palette for this thing: given back when it is removed
    # its centre of gravity is not its origin (a wheel with a knob): body.velocity, the centre of
    # gravity's, is then not the velocity of the position reported
    off_centre: bool = False
    data: dict = field(default_factory=dict)  # scene-specific bookkeeping


def fit(low: float, high: float) -> tuple[float, float]:
    """``(low, high)``, or both at their middle when the range is empty.

    For the ranges a scene places things in: in a narrow frame (say 32×160, 51 units wide) a margin
    meant for 64×64 may leave no room, and a uniform draw from an empty range would raise.
    """
    return (low, high) if low <= high else ((low + high) / 2,) * 2


def bounding_radius(body: pymunk.Body, shapes) -> float:
    """Largest distance from the body's origin to any point of its shapes."""
    r = 0.0
    for s in shapes:
        if isinstance(s, pymunk.Circle):
            r = max(r, s.offset.length + s.radius)
        elif isinstance(s, pymunk.Poly):
            r = max(r, max(v.length for v in s.get_vertices()) + s.radius)
        elif isinstance(s, pymunk.Segment):
            r = max(r, max(s.a.length, s.b.length) + s.radius)
    return r


class PymunkScene(gym.Env, EzPickle):
    """Base class of the eight scenes. See the module docstring for the hooks to override."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array", "human"], "render_fps": 30}

    WORLD_HEIGHT: ClassVar[float] = 256.0
    DT: ClassVar[float] = 1.0 / 30.0
    SUBSTEPS: ClassVar[int] = 4
    #: Names of the Discrete actions, index = action; index 0 must be "noop".
    ACTIONS: ClassVar[tuple[str, ...]] = ("noop",)
    #: Size of the ``Box(-1, 1)`` action when ``continuous=True``; 0 = Discrete only.
    CONTINUOUS_DIM: ClassVar[int] = 0
    #: Key names (see :func:`key_code`) → Discrete action, for play and ``get_keys_to_action``.
    KEYS: ClassVar[dict[tuple[str, ...], int]] = {}
    OPTIONS: ClassVar[dict[str, scene_options.Option]] = {}

    def __init__(self, render_mode: str | None = None, width: int = 64, height: int = 64,
                 continuous: bool = False):
        EzPickle.__init__(self, render_mode=render_mode, width=width, height=height,
                          continuous=continuous)
        for name, v in (("width", width), ("height", height)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not MIN_SIZE <= v <= MAX_SIZE:
                raise ValueError(f"{name} must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {v!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        if not isinstance(continuous, (bool, np.bool_)):  # "no" or 0 must not silently pick a mode
            raise TypeError(f"continuous must be a bool (True or False), got {continuous!r}")
        if continuous and not self.CONTINUOUS_DIM:
            raise ValueError(f"{type(self).__name__} has no continuous action mode")
        assert self.ACTIONS[0] == "noop", "action 0 must be 'do nothing'"
        self.render_mode = render_mode
        self.width, self.height = int(width), int(height)
        self.continuous = bool(continuous)
        self.canvas = Canvas(self.width, self.height, self.WORLD_HEIGHT)
        self.world_width, self.world_height = self.canvas.world_width, self.WORLD_HEIGHT
        self.scale = self.canvas.scale
        self.observation_space = spaces.Box(0, 255, (self.height, self.width, 3), np.uint8)
        if self.continuous:
            self.action_space = spaces.Box(-1.0, 1.0, (self.CONTINUOUS_DIM,), np.float32)
        else:
            self.action_space = spaces.Discrete(len(self.ACTIONS))
        self.space: pymunk.Space | None = None
        self._window = None
        self._frame: np.ndarray | None = None

    # ------------------------------------------------------------------ hooks for scenes
    def _build(self) -> None:
        """Create this episode's bodies (``self.opt`` holds the resolved options)."""
        raise NotImplementedError

    def _control(self, action) -> None:
        """Apply the (validated) action; called before each physics substep."""

    def _update(self, action) -> tuple[float, bool]:
        """Game logic after the physics of one step: returns (reward, terminated)."""
        return 0.0, False

    def heuristic(self):
        """A scripted action from the true state (Discrete, or Box when ``continuous``)."""
        raise NotImplementedError

    def _draw(self, canvas: Canvas) -> None:
        """Default look: static geometry, then every visible thing in its colour."""
        self.draw_static(canvas)
        self.draw_things(canvas)

    def _extra_info(self) -> dict:
        """Scene-specific additions to ``info`` (fresh objects every call)."""
        return {}

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        # options first: a refused reset leaves the episode (and its RNG) as it was
        opt = scene_options.resolve(type(self).__name__, self.OPTIONS, options)
        super().reset(seed=seed)
        self.opt = opt
        self.space = pymunk.Space()
        self.space.on_collision(begin=self._on_contact_begin)
        self.palette = Palette(self.np_random)
        self.things: list[Thing] = []
        self._owner: dict[pymunk.Shape, int] = {}
        self._static_shapes: list[pymunk.Shape] = []
        self._next_id = 0
        self._contacts: dict[tuple[int, int], None] = {}
        self.steps = 0
        self._build()
        self._contacts.clear()
        self._frame = self._render_frame()
        if self.render_mode == "human":
            self._show()
        return self._frame.copy(), self._info()

    def step(self, action):
        if self.space is None:
            raise RuntimeError("call reset() before step()")
        action = self._check_action(action)
        self._contacts = {}
        sub_dt = self.DT / self.SUBSTEPS
        for _ in range(self.SUBSTEPS):
            self._control(action)
            self.space.step(sub_dt)
        self.steps += 1
        reward, terminated = self._update(action)
        self._frame = self._render_frame()
        if self.render_mode == "human":
            self._show()
        return self._frame.copy(), float(reward), bool(terminated), False, self._info()

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass render_mode='rgb_array'.")
            return None
        if self._frame is None:
            raise RuntimeError("call reset() before render()")
        if self.render_mode == "human":
            self._show()
            return None
        return self._frame.copy()

    def close(self):
        if self._window is not None:
            self._window.close()
            self._window = None

    def get_keys_to_action(self) -> dict[tuple[int, ...], int]:
        return {tuple(sorted(key_code(k) for k in keys)): a for keys, a in self.KEYS.items()}

    # ------------------------------------------------------------------ world building verbs
    def add_thing(self, body: pymunk.Body, shapes, kind: str, color=None, controlled: bool = False,
                  radius: float | None = None) -> Thing:
        """Adds a body and its shapes to the space and starts reporting it."""
        shapes = list(shapes)
        if body.space is None:
            self.space.add(body)
        self.space.add(*shapes)
        thing = Thing(id=self._next_id, kind=KIND_INDEX[kind], body=body, shapes=shapes,
                      color=tuple(color) if color is not None else self.palette.take(),
                      radius=radius if radius is not None else bounding_radius(body, shapes),
                      controlled=controlled, own_color=color is None,
                      off_centre=tuple(body.center_of_gravity) != (0.0, 0.0))
        self._next_id += 1
        for s in shapes:
            self._owner[s] = thing.id
        self.things.append(thing)
        return thing

    def remove_thing(self, thing: Thing) -> None:
        """Takes a thing out of the space and the state; a colour the palette picked for it is freed
        (scenes that keep spawning, like FallingLeaves, would otherwise run out of distinct colours)."""
        if thing.own_color:
            self.palette.release(thing.color)
        self.space.remove(*thing.shapes)
        if thing.body.space is not None and thing.body.body_type != pymunk.Body.STATIC:
            self.space.remove(thing.body)
        for s in thing.shapes:
            self._owner.pop(s, None)
        self.things.remove(thing)

    def add_static(self, *shapes: pymunk.Shape, drawn: bool = True) -> None:
        """Static geometry: added to the space, drawn in the palette's static colour."""
        self.space.add(*shapes)
        if drawn:
            self._static_shapes.extend(shapes)

    def add_walls(self, left=True, right=True, top=True, bottom=True, thickness: float = 6.0,
                  elasticity: float = 0.9, friction: float = 0.5) -> list[pymunk.Segment]:
        """Segments along the frame edges (their inner faces at ``thickness`` from the border)."""
        w, h, t = self.world_width, self.world_height, thickness
        body = self.space.static_body
        ends = {"left": ((t / 2, 0), (t / 2, h)), "right": ((w - t / 2, 0), (w - t / 2, h)),
                "top": ((0, t / 2), (w, t / 2)), "bottom": ((0, h - t / 2), (w, h - t / 2))}
        segs = []
        for side, keep in (("left", left), ("right", right), ("top", top), ("bottom", bottom)):
            if keep:
                seg = pymunk.Segment(body, *ends[side], t / 2)
                seg.elasticity, seg.friction = elasticity, friction
                segs.append(seg)
        self.add_static(*segs)
        return segs

    def bounded_rate(self, rate: float, value: float, low: float, high: float) -> float:
        """``rate`` (per second) clipped so that ``value`` stays in [low, high] over one substep.

        Kinematic bodies (paddles, baskets, cranes) pass through static geometry, so their travel is
        bounded here: they stop exactly at the end instead of overshooting it.
        """
        sub_dt = self.DT / self.SUBSTEPS
        return min(max(rate, (low - value) / sub_dt), (high - value) / sub_dt)

    def uniform(self, low: float, high: float) -> float:
        return float(self.np_random.uniform(low, high))

    def randint(self, low: int, high: int) -> int:
        """Integer in [low, high], both inclusive."""
        return int(self.np_random.integers(low, high + 1))

    def draw_static(self, canvas: Canvas) -> None:
        for s in self._static_shapes:
            canvas.shape(s, self.palette.static)

    def draw_things(self, canvas: Canvas) -> None:
        for t in self.things:
            if not t.hidden:
                for s in t.shapes:
                    if not s.sensor:  # sensors are invisible trigger zones
                        canvas.shape(s, t.color)

    # ------------------------------------------------------------------ state export
    def _state(self) -> ObjectState:
        things = self.things
        s, dt = self.scale, self.DT
        if things:
            pos = np.array([t.body.position for t in things], np.float64) * s
            vel = np.array([t.body.velocity_at_local_point((0.0, 0.0)) if t.off_centre else t.body.velocity
                            for t in things], np.float64) * (s * dt)
            ang = np.array([t.body.angle for t in things], np.float32)
            angv = np.array([t.body.angular_velocity for t in things], np.float32) * np.float32(dt)
            rad = np.array([t.radius for t in things], np.float32) * np.float32(s)
        else:
            pos = vel = np.zeros((0, 2))
            ang = angv = rad = np.zeros(0, np.float32)
        visible = ((pos[:, 0] + rad > 0) & (pos[:, 0] - rad < self.width)
                   & (pos[:, 1] + rad > 0) & (pos[:, 1] - rad < self.height)
                   & ~np.array([t.hidden for t in things], bool))
        return ObjectState({
            "id": np.array([t.id for t in things], np.int64),
            "kind": np.array([t.kind for t in things], np.int64),
            "position": pos.astype(np.float32),
            "velocity": vel.astype(np.float32),
            "angle": ang,
            "angular_velocity": angv,
            "radius": rad,
            "color": np.array([t.color for t in things], np.uint8).reshape(-1, 3),
            "visible": visible,
            "controlled": np.array([t.controlled for t in things], bool),
        })

    def _info(self) -> dict[str, Any]:
        return {"state": self._state(), "contacts": Contacts(self._contacts), **self._extra_info()}

    def _on_contact_begin(self, arbiter: pymunk.Arbiter, space, data) -> None:
        a, b = arbiter.shapes
        if not arbiter.process_collision and not (a.sensor or b.sensor):
            return  # rejected by a scene's handler (e.g. a one-way ledge passed from below)
        ia, ib = self._owner.get(a, STATIC_ID), self._owner.get(b, STATIC_ID)
        if ia != ib:
            self._contacts[(min(ia, ib), max(ia, ib))] = None

    # ------------------------------------------------------------------ actions and frames
    def _check_action(self, action):
        return check_action(self.action_space, action, type(self).__name__, self.ACTIONS, np.float64)

    def _render_frame(self) -> np.ndarray:
        self.canvas.clear(self.palette.background)
        self._draw(self.canvas)
        return self.canvas.to_array()

    def _show(self) -> None:
        if self._window is None:
            from envs.window import HumanWindow

            self._window = HumanWindow(self.width, self.height, caption=type(self).__name__)
        self._window.show(self._frame, self.metadata["render_fps"])


def speed_limit(body: pymunk.Body, max_speed: float):
    """A velocity function that caps a body's speed (keeps tunnelling and blow-ups out)."""
    def velocity_func(b, gravity, damping, dt):
        pymunk.Body.update_velocity(b, gravity, damping, dt)
        v = b.velocity.length
        if v > max_speed:
            b.velocity = b.velocity * (max_speed / v)
    body.velocity_func = velocity_func
    return body


