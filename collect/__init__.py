"""Rollout datasets: collect scenes into sharded HDF5, read them back as episodes or training windows.

    python -m collect --env WorldGym/BouncingBalls-v0 --episodes 1000 --out data/bb
    >>> import collect
    >>> ds = collect.open_dataset("data/bb")
    >>> ep = ds.episode(0)                        # arrays + seeds + options
    >>> train, val = ds.split(val=0.1)            # by episode, deterministic
    >>> windows = train.windows(16, stride=1)     # torch Dataset of (16, 64, 64, 3) uint8 frames, …

Storage layout: ``collect/writer.py``; the padded state layout: ``collect/record.py``; metadata:
``collect/meta.py``. Tools: ``python -m collect.verify | compare | inspect | video | export_minari |
bench``.
"""
from collect.config import CollectArgs, CollectError
from collect.dataset import Dataset, DatasetError, Episode, open_dataset
from collect.record import episode_seeds


def collect_dataset(args: CollectArgs):
    """Runs a collection (what ``python -m collect`` does) and returns its ``Summary``."""
    from collect.runner import collect_dataset as run

    return run(args)


__all__ = ["open_dataset", "Dataset", "Episode", "DatasetError", "CollectArgs", "CollectError",
           "collect_dataset", "episode_seeds"]
