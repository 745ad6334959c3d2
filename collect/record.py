"""Run one episode and return it as arrays (``EpisodeRecord``).

The env is stepped directly, never through a vector env: Gymnasium's vector envs autoreset on the
*next* step, and that step's transition is not real. So an episode is exactly
``reset`` + ``T`` steps, stored as ``T + 1`` observations with index 0 the reset frame, and the
transition ``observations[t] --actions[t]--> observations[t + 1]`` for every ``t < T``.

``info["state"]`` has one row per object and the row count changes within an episode (objects are
spawned and removed), so it is stored **padded per episode** as one structured array ``(T + 1, N)``
whose fields are the state's keys (``state["position"]`` is ``(T + 1, N, 2)`` float32, …), ``N`` the
most rows any frame of the episode has, plus ``state_count`` ``(T + 1,)``: rows ``>= count`` are
padding (``id = -1``, everything else 0). Contacts likewise: ``(T + 1, K, 2)`` padded with ``-2``
(``-1`` is the walls' id) and ``contacts_count``. Padded arrays slice into windows without offsets
and compress to almost nothing where they are padding; one structured dataset instead of ten keeps
the per-episode HDF5 overhead (≈ 400 bytes and ≈ 40 µs per dataset) small for short episodes.

Per step the recorder only keeps references (info arrays are fresh objects per the scene contract) and
hands the observation to ``frames`` (by default a list; the collector passes the writer's
``FrameChunker``, which submits every 16 frames for compression while the env steps on); all
stacking happens once at the end of the episode, which keeps the per-step overhead to a few
microseconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from numbers import Number

import numpy as np

#: dtypes of the ``info["state"]`` fields in the scene contract (README.md, "Scenes").
STATE_DTYPES = {
    "id": np.int64, "kind": np.int64, "position": np.float32, "velocity": np.float32,
    "angle": np.float32, "angular_velocity": np.float32, "radius": np.float32, "color": np.uint8,
    "visible": np.bool_, "controlled": np.bool_,
}
STATE_ID_PAD = -1
CONTACT_PAD = -2


def episode_seeds(seed: int, index: int) -> tuple[int, int]:
    """(env reset seed, policy seed) of episode ``index`` in a dataset collected with ``seed``.

    Both come from ``SeedSequence([seed, index])``: independent of the worker count, the shard an
    episode lands in and the order episodes run in, so any episode can be regenerated alone. 63-bit
    values so that a million episodes do not share a seed by the birthday paradox (32 bits would).
    """
    a, b = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint64)
    return int(a) >> 1, int(b) >> 1


@dataclass
class EpisodeRecord:
    """One episode as arrays; see the module docstring for the layout."""

    index: int
    seed: int
    policy_seed: int
    options: dict
    frames: list = field(repr=False)  # T+1 arrays (H, W, 3) uint8 (or the writer's FrameChunker)
    actions: np.ndarray  # (T,) int64 or (T, D) float32
    rewards: np.ndarray  # (T,) float64
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray  # (T,) bool
    infos: dict = field(default_factory=dict)  # state, state_count, contacts, contacts_count, extras

    @property
    def steps(self) -> int:
        return len(self.rewards)

    @cached_property
    def observations(self) -> np.ndarray:
        """(T+1, H, W, 3) uint8, index 0 the reset frame. Stacked on first use only: the writer
        compresses straight from ``frames``, sparing the collector a copy of every frame."""
        if not isinstance(self.frames, list):
            raise AttributeError("this record's frames went straight to a shard writer; "
                                 "read them back from the dataset")
        return np.stack(self.frames)

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum())


def _scalar_extras(info: dict) -> list[str]:
    """Extra info keys worth recording: numeric scalars (e.g. ``balls_in_play``)."""
    keys = []
    for k, v in info.items():
        if k in ("state", "contacts"):
            continue
        if isinstance(v, (Number, np.number, np.bool_)) or (isinstance(v, np.ndarray) and v.ndim == 0):
            keys.append(k)
    return keys


def stack_infos(infos: list[dict]) -> dict:
    """Per-step info dicts → the padded ``infos`` arrays of an :class:`EpisodeRecord`."""
    out: dict = {}
    first = infos[0]
    if "state" in first:
        # envs.state.ObjectState keeps its arrays in a plain dict: reading that directly is ~10x
        # faster than the Mapping protocol (a Python-level __getitem__ per field and step)
        states = [i["state"].arrays() for i in infos]
        names = list(first["state"])
        n0 = names[0]
        counts = np.fromiter([len(st[n0]) for st in states], np.int32, len(states))
        flat = {}
        for name in names:
            f = np.concatenate([st[name] for st in states])
            flat[name] = f.astype(STATE_DTYPES[name], copy=False) if name in STATE_DTYPES else f
        dtype = np.dtype([(name, f.dtype, f.shape[1:]) for name, f in flat.items()])
        T, N = len(states), int(counts.max(initial=0))
        if counts.min(initial=0) == N:  # same objects all episode: plain reshapes, no padding
            state = np.empty((T, N), dtype)  # every byte is some field's
            for name, f in flat.items():
                state[name] = f.reshape((T, N) + f.shape[1:])
        else:  # rows packed per field, then scattered at once into the valid (t, row) slots
            packed = np.empty(len(flat[n0]), dtype)
            for name, f in flat.items():
                packed[name] = f
            valid = np.arange(N) < counts[:, None]
            state = np.zeros((T, N), dtype)
            state[valid] = packed
            if "id" in flat:
                state["id"][~valid] = STATE_ID_PAD
        out["state"], out["state_count"] = state, counts
    if "contacts" in first:
        contacts = [i["contacts"] for i in infos]  # (K, 2) arrays or tuples of id pairs
        counts = np.fromiter([len(c) for c in contacts], np.int32, len(contacts))
        flat = np.array([pair for c in contacts for pair in c], np.int64).reshape(-1, 2)
        K = int(counts.max(initial=0))
        padded = np.full((len(contacts), K, 2), CONTACT_PAD, np.int64)
        padded[np.arange(K) < counts[:, None]] = flat
        out["contacts"], out["contacts_count"] = padded, counts
    for key in _scalar_extras(first):
        out[key] = np.asarray([i.get(key, 0) for i in infos])
    return out


def run_episode(env, policy, index: int, seed: int, options: dict | None = None,
                max_steps: int | None = None, frames=None) -> EpisodeRecord:
    """Resets ``env`` with episode ``index``'s seed and runs ``policy`` until the episode ends.

    ``max_steps`` is a safety net only: the env's own ``TimeLimit`` (``max_episode_steps``) is what
    normally sets the truncation flag. ``frames``: where observations go (``append``), a new list
    by default.
    """
    env_seed, policy_seed = episode_seeds(seed, index)
    policy.reset(policy_seed)
    obs, info = env.reset(seed=env_seed, options=dict(options) if options else None)
    frames = [] if frames is None else frames
    frames.append(obs)
    infos, actions, rewards, terms, truncs = [info], [], [], [], []
    limit = max_steps if max_steps is not None else np.inf
    while True:
        action = policy(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        frames.append(obs)
        infos.append(info)
        actions.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        if terminated or truncated:
            break
        if len(rewards) >= limit:
            truncs[-1] = True
            break
    return EpisodeRecord(
        index=int(index), seed=env_seed, policy_seed=policy_seed, options=dict(options or {}),
        frames=frames,
        actions=_stack_actions(actions, env.action_space),
        rewards=np.asarray(rewards, np.float64),
        terminations=np.asarray(terms, bool),
        truncations=np.asarray(truncs, bool),
        infos=stack_infos(infos),
    )


def _stack_actions(actions: list, space) -> np.ndarray:
    dtype = np.int64 if np.issubdtype(space.dtype, np.integer) else space.dtype
    shape = getattr(space, "shape", ()) or ()
    return np.asarray(actions, dtype).reshape(len(actions), *shape)
