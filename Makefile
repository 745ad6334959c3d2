# WorldGym: the README's two commands.
#   make demo   create .venv, install, run the main job headless (writes out/, report: out/report.html)
#   make test   create .venv, install, run the test suite (slow tests: make test-slow)
# make demo QUICK=1 runs the same stages in under a minute (tiny data, steps and budgets);
# OUT=DIR writes elsewhere; THREADS=N sets torch's CPU threads (1 on a machine others are using:
# two OpenMP threads competing with other work run 10-20x slower, see worldmodel/README.md).

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
OUT ?= out
QUICK ?=
THREADS ?= $(shell nproc 2>/dev/null || echo 1)

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

# The main job (about 11 min on 2 shared cores with THREADS=1; QUICK=1 about 35 s): scenes grid →
# dataset → world model (`tiny`, fixed time budget) → a dream recorded beside the real scene →
# dream-to-real transfer (PPO in the dream vs in the scene) → evaluation of the checkpoint against the
# reference rows, written with the transfer section and the videos to $(OUT)/report.html. Reruns are
# cheap: collect, train and transfer --resume redo only what is missing or changed.
DEMO_ENV := WorldGym/BouncingBalls-v0
ifeq ($(QUICK),)
DEMO_TAG := bb
DEMO_SCENES := --steps 300
DEMO_COLLECT := --episodes 96 --max-steps 100
DEMO_TRAIN := --minutes 7
DEMO_EVAL := --episodes 8 --horizon 32 --samples 2
DEMO_DREAM := --steps 200
DEMO_TRANSFER := --timesteps 3072 --n-steps 64 --num-envs 8 --eval-episodes 20 --max-steps 100
else
DEMO_TAG := bb-quick
DEMO_SCENES := --steps 30
DEMO_COLLECT := --episodes 6 --max-steps 40
DEMO_TRAIN := --steps 10 --no-eval
DEMO_EVAL := --episodes 2 --horizon 8 --samples 2 --no-diversity
DEMO_DREAM := --steps 16
DEMO_TRANSFER := --timesteps 64 --eval-episodes 4 --max-steps 20 --num-envs 2
endif
DEMO_DATA := $(OUT)/data/$(DEMO_TAG)
# the shipped BouncingBalls checkpoint (3 H100-minutes) is evaluated beside the one the demo trains
SHIPPED := checkpoints/bouncing_balls
DEMO_RUN := $(OUT)/runs/$(DEMO_TAG)

demo: $(STAMP)
	$(PY) -m envs.demo $(DEMO_SCENES) --out $(OUT)/scenes.mp4
	$(PY) -m collect --env $(DEMO_ENV) $(DEMO_COLLECT) --policy random --seed 0 --workers 1 \
		--out $(DEMO_DATA) --resume
	$(PY) -m collect.inspect $(DEMO_DATA)
	$(PY) -m collect.video $(DEMO_DATA) --episodes 0-3 --out $(OUT)/dataset.mp4
	$(PY) -m worldmodel.train --data $(DEMO_DATA) --preset tiny --out $(DEMO_RUN) $(DEMO_TRAIN) \
		--threads $(THREADS) --resume
	$(PY) -m worldmodel.dream --checkpoint $(DEMO_RUN) $(DEMO_DREAM) --policy random --fps 0 --side-by-side \
		--threads $(THREADS) --record $(OUT)/dream.mp4
	$(PY) -m evaluate.transfer --env $(DEMO_ENV) --checkpoint $(DEMO_RUN) $(DEMO_TRANSFER) --seed 0 \
		--threads $(THREADS) --out $(OUT)/transfer --resume
	OMP_NUM_THREADS=$(THREADS) $(PY) -m evaluate --env $(DEMO_ENV) \
		--predictor checkpoint:$(DEMO_RUN),checkpoint:$(SHIPPED) \
		$(DEMO_EVAL) --seed 1000 --transfer $(OUT)/transfer/transfer.json \
		--attach "real | dream=$(OUT)/dream.mp4,scenes=$(OUT)/scenes.mp4,dataset=$(OUT)/dataset.mp4" \
		--out $(OUT)
	@echo "demo outputs: $(OUT)/report.html (metrics, plots, real | dream videos, transfer), $(OUT)/scenes.mp4,"
	@echo "  $(DEMO_DATA), $(OUT)/dataset.mp4, $(DEMO_RUN) (checkpoint), $(OUT)/dream.mp4, $(OUT)/transfer"

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
