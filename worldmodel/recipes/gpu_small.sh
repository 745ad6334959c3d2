#!/usr/bin/env bash
# The `small` dynamics (22M parameters, 8 layers, 8 context frames, 16 memory slots) trained on one GPU
# on the codes of the shipped BouncingBalls tokenizer, then evaluated on the device with the project's
# evaluator on held-out seeds, next to the shipped `tiny` checkpoint (≈ 9.5 minutes on one H100).
#
# Why on the shipped tokenizer: a `small` tokenizer trained in the same session would get a minute or
# two, and the dynamics is the part whose capacity limits the `tiny` checkpoint (its changed-code
# accuracy flattens near 0.55 at 1.55M parameters; worldmodel/README.md). The tokenizer's settings are
# read from its config.json and passed as --set overrides, so the run's config rebuilds both stages.
#
# Steps: 1. collect the shipped checkpoint's dataset (3,000 random-policy episodes, seed 0) on the CPU
# cores, and, with BENCH=1, time a training step with and without dynamics.parallel_frames; 2. train the
# dynamics stage for MINUTES; 3. pack its weights (bf16, split in 15 MB parts:
# `cat bb_small_bf16.tar.part* | tar x`) with the logs, before anything else can time out; 4. evaluate
# (`python -m evaluate ... --predictor checkpoint:RUN@0[,checkpoint:SHIPPED@0]`, then RUN@1:adaptive), each
# call cut off at the session's deadline (DEADLINE seconds after the start).
#
# Measured on one H100 (2026-11-27, BATCH=64 MINUTES=5.5 SHIPPED=checkpoints/bouncing_balls, before the
# step bench existed; worldmodel/README.md, "Sixth H100 session"): the command took 562 s; 645 steps
# in 5.5 minutes, 0.50 s per step. That is 2.4x
# slower per window than the bench's figure because the step is host-bound (15,553 eager ops per
# forward + backward, whatever the batch), hence BATCH=128 now (51.6 GB peak in the bench): about the
# same time per step for twice the windows. Held-out T = 0: above copy-last at every horizon,
# persistence 0.56 (the shipped `tiny`: 0.86; on the H100 it gave the CPU's figures, so it is no
# longer evaluated by default: SHIPPED=checkpoints/bouncing_balls to add it back). The first evaluation
# took 136 s with the shipped row and left 44 s, too few for the second. With the step bench (≈ 1
# minute) the defaults now train 3.5 minutes so that both evaluations (≈ 100 s each, estimated from
# that run's rows) fit within the 600-s limit of one device command. The bench has been run since
# (eleventh session: 0.52 s per step with the loop, 0.42 s with parallel_frames, at 128 windows), so
# it is off by default and the minute it took goes to training (MINUTES=4.5).
#
# Sessions add up with CONTINUE=RUN (a packed run carried to the device, e.g. the sixth session's
# runs/gpu_small/bb_small838): its dynamics stage is resumed for MINUTES instead of a fresh one trained
# (`--resume --stage dynamics --steps 100000`, the cosine stretched to what fits; a packed run holds no
# optimizer state, so Adam restarts and the learning rate warms up again), with this script's batch,
# learning rate and parallel_frames. Each lent session then takes `small` further, where a fresh start
# would throw away the minutes of the ones before (the bar needs hours; worldmodel/README.md).
#
# Dry run on a CPU:
#   DEVICE=cpu MINUTES=0.3 EPISODES=12 EVAL_EPISODES=2 EVAL_HORIZON=4 BATCH=2 bash worldmodel/recipes/gpu_small.sh
#   (add CONTINUE=runs/gpu_small/bb_small838 to dry-run a resume, SET="dynamics.pixel_codes=true" to
#   try an option; with CONTINUE, an option that changes the trained weights' shapes is refused)
# On the device: install the wheels the image lacks (gymnasium, pymunk, cffi, pycparser, pygame, isal,
# farama-notifications), then
#   bash worldmodel/recipes/gpu_small.sh 2>&1 | tee $OUT/session.log
set -u
START=$(date +%s)
W=${WORK:-.gpu_small}
OUT=${OUT:-out/gpu_small}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-4.5}           # dynamics training budget
EPISODES=${EPISODES:-3000}        # the shipped checkpoint's dataset: same scene, policy, count and seed
BATCH=${BATCH:-128}               # windows of 16 frames per step
LR=${LR:-8e-4}
WARMUP=${WARMUP:-150}
TOKENIZER=${TOKENIZER:-checkpoints/bouncing_balls}
CONTINUE=${CONTINUE:-""}          # a packed bb_small run to resume (its own tokenizer stage comes with it)
SHIPPED=${SHIPPED:-""}            # a checkpoint to evaluate beside the new run, e.g. checkpoints/bouncing_balls
EVAL_EPISODES=${EVAL_EPISODES:-32}
EVAL_HORIZON=${EVAL_HORIZON:-32}
DEADLINE=${DEADLINE:-560}         # seconds after the start by which every evaluation has ended
PARALLEL=${PARALLEL:-true}        # dynamics.parallel_frames: one pass per layer for all frames of a window
BENCH=${BENCH:-0}                 # 1: first time a training step with and without parallel_frames
SET=${SET:-}                      # more space-separated KEY=VALUE overrides, e.g. "dynamics.pixel_codes=true"
export PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy PYGAME_HIDE_SUPPORT_PROMPT=1
mkdir -p "$OUT" $W/logs $W/runs $W/reports
stamp() { echo "[$(date +%T)] $*"; }
left() { echo $((DEADLINE - ($(date +%s) - START))); }
stamp "device: $($PY -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")')"

# ---------------------------------------------------------------- 1. data
$PY -m collect --env WorldGym/BouncingBalls-v0 --episodes "$EPISODES" --max-steps 200 --workers 12 --seed 0 \
    --out $W/data/bb --overwrite --no-progress > $W/logs/collect.log 2>&1 || { cat $W/logs/collect.log; exit 1; }
tail -n 1 $W/logs/collect.log
stamp "collected: $(du -sh $W/data | cut -f1)"

# ---------------------------------------------------------------- 1b. the step, with and without
# parallel_frames (the same loss; 15,553 -> 5,691 eager ops per 16-frame window, counted on a CPU)
if [ "$BENCH" = 1 ] && [ "$DEVICE" = cuda ]; then
    for p in false true; do
        timeout 90 $PY -m worldmodel.bench --preset small --device cuda --no-generate --train-stages dynamics \
            --train-batch "$BATCH" --train-frames 16 --set "dynamics.parallel_frames=$p" --json \
            > "$W/logs/bench_parallel_$p.json" 2> "$W/logs/bench_parallel_$p.err"
        stamp "bench parallel_frames=$p: $(tail -c 400 "$W/logs/bench_parallel_$p.json")"
    done
fi

# ---------------------------------------------------------------- 2. train
RUN=$W/runs/bb_small
rm -rf "$RUN"
if [ -n "$CONTINUE" ]; then  # the run's config.json (tokenizer included) wins; --set adds the rest
    mkdir -p "$W/runs" && cp -r "$CONTINUE" "$RUN"
    FROM=(--resume --steps 100000)
    TOKSET=()
else
    mkdir -p "$RUN" && cp -r "$TOKENIZER/tokenizer" "$RUN/"
    FROM=()
    mapfile -t TOKSET < <($PY -c "import json, sys
for k, v in json.load(open(sys.argv[1]))['tokenizer'].items(): print(f'tokenizer.{k}={json.dumps(v)}')" \
        "$TOKENIZER/tokenizer/config.json")
fi
stamp "train bb_small ($MINUTES min, batch $BATCH, lr $LR${CONTINUE:+, resuming $CONTINUE})"
$PY -m worldmodel.train --data $W/data/bb --preset small --out "$RUN" --stage dynamics --minutes "$MINUTES" \
    "${FROM[@]}" --device "$DEVICE" --no-progress --no-eval --set "${TOKSET[@]}" "train.dynamics_batch=$BATCH" \
    "train.dynamics_lr=$LR" "train.warmup=$WARMUP" train.checkpoint_every=500 train.dynamics_steps=100000 \
    "dynamics.parallel_frames=$PARALLEL" $SET \
    > $W/logs/train_bb_small.log 2>&1
grep -v "^\s*$" $W/logs/train_bb_small.log | tail -n 3
stamp "trained"

# ---------------------------------------------------------------- 3. pack (before anything can time out)
mkdir -p $W/pack/bb_small/dynamics
cp "$RUN/config.json" "$RUN/commands.jsonl" $W/pack/bb_small/ && cp -r "$RUN/logs" $W/pack/bb_small/
cp "$RUN/dynamics/config.json" "$RUN/dynamics/train_state.json" $W/pack/bb_small/dynamics/
$PY -c "import sys, torch; from safetensors.torch import load_file, save_file
w = load_file(sys.argv[1])
save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in w.items()}, sys.argv[2])" \
    "$RUN/dynamics/model.safetensors" $W/pack/bb_small/dynamics/model.safetensors
tar cf $W/bb_small_bf16.tar -C $W/pack bb_small && split -b 15M $W/bb_small_bf16.tar "$OUT/bb_small_bf16.tar.part"
tar czf "$OUT/logs.tgz" -C $W logs
stamp "packed: $(ls "$OUT" | tr '\n' ' ')"

# ---------------------------------------------------------------- 4. evaluate on held-out seeds
evaluate() {  # name predictors (comma-separated)
    local name=$1 preds=$2 t
    t=$(left)
    [ "$t" -gt 20 ] || { stamp "no time left for $name"; return 0; }
    stamp "evaluate $name (at most ${t} s)"
    timeout "$t" $PY -m evaluate --env WorldGym/BouncingBalls-v0 --predictor "$preds" --episodes "$EVAL_EPISODES" \
        --horizon "$EVAL_HORIZON" --samples 4 --seed 100000 --no-diversity --no-controllability --no-videos \
        --quiet --out "$W/reports/$name" > "$W/logs/evaluate_$name.log" 2>&1
    tail -n 12 "$W/logs/evaluate_$name.log"
    [ -f "$W/reports/$name/report.json" ] && cp "$W/reports/$name/report.json" "$OUT/report_$name.json"
}
evaluate t0 "checkpoint:$RUN@0${SHIPPED:+,checkpoint:$SHIPPED@0}"
evaluate t1_adaptive "checkpoint:$RUN@1:adaptive"
tar czf "$OUT/logs.tgz" -C $W logs
ls -la "$OUT"
stamp "done"
