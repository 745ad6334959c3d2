"""Training data: episodes held in memory, sampled as frames (tokenizer) or windows (dynamics).

Two sources behind one :class:`EpisodeStore`:

* ``EpisodeStore.from_dataset(DIR)``: a dataset written by ``python -m collect`` (split by episode
  with ``Dataset.split``, so held-out episodes never leak into training);
* ``EpisodeStore.from_env(ID, episodes, steps, seed)``: rollouts of a random policy made on the spot
  (for tests and quick experiments without a collected dataset).

Episodes are kept whole in RAM as uint8 (a 64² frame is 12 KB: 100k frames ≈ 1.2 GB); the dynamics
stage keeps only their token grids (512 B per 16×16 frame at int16). Sampling is a pure function of
(seed, step), so a resumed run or a run split across DDP processes sees exactly the same batches.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class Episode:
    frames: np.ndarray  # (T+1, H, W, 3) uint8
    actions: np.ndarray  # (T,) int64 or (T, k) float32
    rewards: np.ndarray  # (T,) float32
    terminations: np.ndarray  # (T,) bool
    # per frame and object, for evaluation (padded to the episode's most objects; radius 0 = absent)
    positions: np.ndarray | None = None  # (T+1, N, 2) float32 pixels
    radii: np.ndarray | None = None  # (T+1, N) float32 pixels
    colors: np.ndarray | None = None  # (T+1, N, 3) uint8
    seed: int | None = None

    @property
    def length(self) -> int:
        """Number of frames."""
        return len(self.frames)


@dataclass
class EpisodeStore:
    episodes: list[Episode]
    action_space: dict
    env_id: str | None = None
    tokens: list[np.ndarray] | None = field(default=None, repr=False)  # per episode (T+1, h, w) int16
    # (tokens, their episodes concatenated) for windows_at, rebuilt when `tokens` is replaced
    _flat_cache: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return self.episodes[0].frames.shape[1:]

    @property
    def num_frames(self) -> int:
        return sum(e.length for e in self.episodes)

    # -------------------------------------------------------------- sources
    @classmethod
    def from_dataset(cls, path: str | Path, val_fraction: float = 0.1, seed: int = 0):
        """(train, val) stores from a collected dataset directory."""
        import collect

        ds = collect.open_dataset(path)
        train, val = ds.split(val=val_fraction, seed=seed) if val_fraction > 0 else (ds, ds.subset([]))
        space = _space_of_dataset(ds)
        return (cls([_from_collect(e) for e in train], space, ds.env_id),
                cls([_from_collect(e) for e in val], space, ds.env_id))

    @classmethod
    def from_env(cls, env_id: str, episodes: int, steps: int = 100, seed: int = 0, val_fraction: float = 0.1,
                 width: int = 64, height: int = 64, continuous: bool = False):
        """(train, val) stores of random-policy rollouts made now; episode i uses seed (seed, i);
        ``continuous``: the scene's Box actions."""
        import gymnasium as gym

        import envs  # noqa: F401  (registers the scenes)
        from worldmodel.config import space_spec

        env = gym.make(env_id, width=width, height=height, **({"continuous": True} if continuous else {}))
        eps = []
        for i in range(episodes):
            ep_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
            rng = np.random.default_rng(ep_seed)
            env.action_space.seed(int(rng.integers(2**31)))
            obs, info = env.reset(seed=ep_seed)
            frames, acts, rews, terms, states = [obs], [], [], [], [info["state"]]
            for _ in range(steps):
                a = env.action_space.sample()
                obs, r, term, trunc, info = env.step(a)
                frames.append(obs)
                acts.append(a)
                rews.append(r)
                terms.append(term)
                states.append(info["state"])
                if term or trunc:
                    break
            pos, rad, col = _pad_states(states)
            eps.append(Episode(np.stack(frames), np.asarray(acts), np.asarray(rews, np.float32),
                               np.asarray(terms, bool), pos, rad, col, ep_seed))
        space = space_spec(env.action_space)
        env.close()
        n_val = int(round(episodes * val_fraction))
        return cls(eps[n_val:], space, env_id), cls(eps[:n_val], space, env_id)

    # -------------------------------------------------------------- sampling
    def frame_index(self) -> np.ndarray:
        """(F, 2) int64: (episode, t) of every frame."""
        return np.concatenate([np.stack([np.full(e.length, i), np.arange(e.length)], 1)
                               for i, e in enumerate(self.episodes)])

    def window_index(self, length: int) -> np.ndarray:
        """(W, 2) int64: (episode, start) of every window of ``length`` frames inside one episode."""
        rows = [np.stack([np.full(e.length - length + 1, i), np.arange(e.length - length + 1)], 1)
                for i, e in enumerate(self.episodes) if e.length >= length]
        if not rows:
            raise ValueError(f"no episode has {length} frames")
        return np.concatenate(rows)

    def frames_at(self, index: np.ndarray) -> torch.Tensor:
        """(B, 2) (episode, t) -> (B, H, W, 3) uint8."""
        return torch.from_numpy(np.stack([self.episodes[e].frames[t] for e, t in index]))

    def windows_at(self, index: np.ndarray, length: int) -> dict[str, torch.Tensor]:
        """(B, 2) (episode, start) -> tokens (B, L, h, w) int16 (needs ``tokens``; ``.long()`` them on
        the device: a quarter of the bytes to copy), actions, rewards, terminations (B, L-1).

        One gather from the episodes concatenated (built once): a Python loop over 1,024 windows cost
        milliseconds of host time per step."""
        flat = self._flat()
        e, s = np.asarray(index).T
        frames = (flat["frame_start"][e] + s)[:, None] + np.arange(length)  # (B, L)
        steps = (flat["step_start"][e] + s)[:, None] + np.arange(length - 1)  # (B, L-1)
        return {"tokens": torch.from_numpy(flat["tokens"][frames]),
                **{k: torch.from_numpy(flat[k][steps]) for k in ("actions", "rewards", "terminations")}}

    def _flat(self) -> dict[str, np.ndarray]:
        if self._flat_cache is None or self._flat_cache[0] is not self.tokens:
            eps = self.episodes
            flat = {"tokens": np.concatenate(self.tokens),
                    "actions": np.concatenate([e.actions for e in eps]),
                    "rewards": np.concatenate([e.rewards for e in eps]),
                    "terminations": np.concatenate([e.terminations for e in eps]),
                    "frame_start": np.cumsum([0] + [len(t) for t in self.tokens[:-1]]),
                    "step_start": np.cumsum([0] + [len(e.actions) for e in eps[:-1]])}
            self._flat_cache = (self.tokens, flat)
        return self._flat_cache[1]

    @torch.no_grad()
    def tokenize(self, tokenizer, device, batch: int | None = None, progress: bool = False,
                 cache: str | Path | None = None, stop: Callable[[], bool] | None = None) -> bool:
        """Encodes every frame once (the tokenizer is frozen while the dynamics trains). With ``cache``,
        the token grids are kept in that .npz file, named by a digest of the tokenizer's weights and
        the episodes, and reused by later runs and resumes.

        ``batch`` frames per encoder call; by default 256 on a GPU and about 16k codes' worth on a CPU
        (16 frames of a 32×32 grid), where the encoder is memory-bound: its activations then stay in
        cache, measured 1.7× faster than 256 frames per call. ``stop`` is polled between episodes (a
        32×32 grid takes minutes to encode): when it returns True, nothing is kept and the call returns
        False. Returns True when every episode is encoded."""
        from tqdm import tqdm

        from worldmodel.tokenizer import resize_frames

        if cache is not None:
            cache = Path(cache) / f"tokens-{self._digest(tokenizer)}.npz"
            if cache.exists():
                with np.load(cache) as z:
                    self.tokens = [z[f"e{i}"] for i in range(len(self.episodes))]
                return True
        cfg = tokenizer.cfg
        if batch is None:
            gh, gw = cfg.grid
            batch = 256 if torch.device(device).type == "cuda" else max(1, 16384 // (gh * gw))
        out = []
        for ep in tqdm(self.episodes, desc="tokenize", disable=not progress, leave=False):
            if stop is not None and stop():
                return False
            parts = []
            for i in range(0, ep.length, batch):
                x = resize_frames(torch.from_numpy(ep.frames[i:i + batch]).to(device), cfg.height, cfg.width)
                parts.append(tokenizer.encode(x).to(torch.int16).cpu().numpy())
            out.append(np.concatenate(parts))
        self.tokens = out
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.stem + ".partial.npz")
            np.savez(tmp, **{f"e{i}": t for i, t in enumerate(out)})
            tmp.replace(cache)
        return True

    def frames_and_tokens(self, height: int, width: int, max_frames: int = 20_000):
        """Yields (frames (n, height, width, 3) uint8, their codes (n, h, w)) per episode, for
        ``Dynamics.set_code_pixels``, after ``tokenize``; at most about ``max_frames`` frames, from
        episodes spread over the store."""
        from worldmodel.tokenizer import resize_frames

        if self.tokens is None:
            raise RuntimeError("frames_and_tokens needs tokenize() first")
        every = max(1, math.ceil(self.num_frames / max_frames))
        for ep, tok in list(zip(self.episodes, self.tokens))[::every]:
            yield resize_frames(torch.from_numpy(ep.frames), height, width), tok

    def _digest(self, tokenizer) -> str:
        import hashlib

        h = hashlib.sha1()
        for k, v in sorted(tokenizer.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        h.update(str([(e.length, e.seed) for e in self.episodes]).encode())
        for e in self.episodes[:: max(1, len(self.episodes) // 16)]:
            h.update(e.frames[:: max(1, e.length // 4)].tobytes())
        return h.hexdigest()[:16]


def sample_rows(index: np.ndarray, n: int, seed: int, stage: str, step: int) -> np.ndarray:
    """n rows of ``index`` drawn with replacement, a pure function of (seed, stage, step)."""
    tag = {"tokenizer": 1, "dynamics": 2}.get(stage, 3)
    rng = np.random.default_rng([seed, tag, step])
    return index[rng.integers(len(index), size=n)]


def sample_seeds(n: int, seed: int, step: int) -> torch.Tensor:
    """Per-sample seeds of a global batch (for masks and noise)."""
    return torch.from_numpy(np.random.default_rng([seed, 7, step]).integers(2**62, size=n))


# ---------------------------------------------------------------------- helpers
def _space_of_dataset(ds) -> dict:
    from worldmodel.config import space_spec

    env = ds.make_env()
    try:
        return space_spec(env.action_space)
    finally:
        env.close()


def _from_collect(e) -> Episode:
    pos = rad = col = None
    if e.state is not None:
        s = e.state
        present = s["id"] >= 0
        if "visible" in s.dtype.names:
            present &= s["visible"]
        pos = s["position"].astype(np.float32)
        rad = np.where(present, s["radius"], 0).astype(np.float32)
        col = s["color"].astype(np.uint8)
    return Episode(np.asarray(e.observations), np.asarray(e.actions), np.asarray(e.rewards, np.float32),
                   np.asarray(e.terminations, bool), pos, rad, col, getattr(e, "seed", None))


def _pad_states(states: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = max(len(np.asarray(s["id"])) for s in states)
    T = len(states)
    pos = np.zeros((T, n, 2), np.float32)
    rad = np.zeros((T, n), np.float32)
    col = np.zeros((T, n, 3), np.uint8)
    for t, s in enumerate(states):
        k = len(np.asarray(s["id"]))
        vis = np.asarray(s["visible"], bool)
        pos[t, :k] = s["position"]
        rad[t, :k] = np.where(vis, s["radius"], 0)
        col[t, :k] = s["color"]
    return pos, rad, col
