"""Shared test set-up: headless pygame, and every scene registered."""
import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pytest  # noqa: E402

import envs  # noqa: E402,F401  (registers WorldGym/*)


@pytest.fixture
def one_torch_thread():
    """torch at one thread for the test: on a shared 2-core machine two OpenMP threads competing with
    other work run 10-20x slower (worldmodel/README.md). Test files opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
