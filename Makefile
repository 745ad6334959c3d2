# WorldGym: the README's two commands.
#   make demo   create .venv, install, run the main job headless (writes out/)
#   make test   create .venv, install, run the test suite (slow tests: make test-slow)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Without a GPU, torch comes as this CPU-only build first, so that the project's plain torch
# requirement does not pull a multi-GB CUDA build. TORCH_INDEX adds a package index for it
# (e.g. PyTorch's CPU wheel index) on machines where PyPI would serve a CUDA build.
TORCH_CPU_VERSION ?= 2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=

export SDL_VIDEODRIVER ?= dummy
export SDL_AUDIODRIVER ?= dummy
export PYGAME_HIDE_SUPPORT_PROMPT ?= 1

.PHONY: demo test test-slow lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	@if command -v nvidia-smi >/dev/null 2>&1; then \
		echo "GPU found: torch comes from the project's requirements"; \
	elif ! $(PY) -c "import torch" 2>/dev/null; then \
		echo "no GPU: installing CPU torch $(TORCH_CPU_VERSION) first"; \
		$(PY) -m pip install --quiet "torch==$(TORCH_CPU_VERSION)" \
			$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)); \
	fi
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m envs.demo --steps 300 --out out/scenes.mp4
	$(PY) -m collect --env WorldGym/BouncingBalls-v0 --episodes 8 --max-steps 200 --policy heuristic \
		--seed 0 --out out/data/bb --resume
	$(PY) -m collect.inspect out/data/bb
	$(PY) -m collect.video out/data/bb --episodes 0-3 --out out/dataset.mp4
	$(PY) -m evaluate --env WorldGym/BouncingBalls-v0 --predictor copy-last --episodes 8 --horizon 32 \
		--samples 2 --out out/eval-bb
	@echo "demo outputs: out/scenes.mp4, out/data/bb, out/dataset.mp4, out/eval-bb/report.html"

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m envs.bench

clean:
	rm -rf $(VENV) out .pytest_cache
