"""Shared test set-up: headless pygame, and every scene registered."""
import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import envs  # noqa: E402,F401  (registers WorldGym/*)
