#!/usr/bin/env bash
# One short GPU session, end to end, with the project's own commands (about 8 minutes on one H100):
#
#   1. collect random-policy datasets (CPU workers) while the GPU measures the seed163m preset and
#      batched generation (python -m worldmodel.bench);
#   2. train one run at a time (python -m worldmodel.train --minutes M): BouncingBalls `tiny` at batch
#      128, then optional `tiny` runs of other scenes (SCENES_TINY) and BouncingBalls `small` (SMALL=1);
#   3. held-out rollouts of every run (python -m worldmodel.metrics on its dataset's held-out episodes);
#   4. pack the `tiny` weights (fp32; ship them with python -m worldmodel.export), logs and benchmarks.
#
# The shipped checkpoints/bouncing_balls came from this recipe's step 2 (3 minutes), resumed in a second
# session (see its MODEL_CARD.md) with, on the device:
#   BENCH=last CONTINUE=runs/gpu/bb_tiny2 CONTINUE_STEPS=4300 MINUTES=5 TINY_BATCH=256 METRICS_TIMEOUT=60 \
#       bash worldmodel/recipes/gpu_session.sh 2>&1 | tee $OUT/session.log       (≈ 8 minutes in all)
# and resumed again in a third session at 1,024 windows per step (the step loop no longer waits for
# the GPU, so a bigger batch costs little more time per step):
#   BENCH=none ROLLOUTS=0 CONTINUE=checkpoints/bouncing_balls CONTINUE_STEPS=100000 MINUTES=7 \
#       TINY_BATCH=1024 bash worldmodel/recipes/gpu_session.sh 2>&1 | tee $OUT/session.log
# Another start: dynamics on the better CPU-trained tokenizer (runs/tok_long/bb2k_more: 31-33 dB
# held-out against the shipped 28-30; carry it): BENCH=none TOKENIZER=runs/tok_long/bb2k_more ...
#
# Sizes come from the environment so that the same script runs as a dry run on a CPU:
#   MINUTES=0.3 EPISODES=16 OTHER_EPISODES=10 EVAL_EPISODES=2 TINY_BATCH=4 SMALL_BATCH=2 DEVICE=cpu \
#       bash worldmodel/recipes/gpu_session.sh
# On the device: install the wheels the image lacks (gymnasium, pymunk, cffi, pycparser, pygame), then
#   bash worldmodel/recipes/gpu_session.sh 2>&1 | tee $OUT/session.log
set -u
W=${WORK:-.gpu_session}          # data, runs, logs (ignored by git)
OUT=${OUT:-out/gpu_session}
PY=${PY:-python3}
MINUTES=${MINUTES:-5}            # training budget per run (tokenizer + dynamics)
EPISODES=${EPISODES:-3000}       # BouncingBalls episodes (random policy, ≤ 200 steps each)
OTHER_EPISODES=${OTHER_EPISODES:-1200}
EVAL_EPISODES=${EVAL_EPISODES:-24}
DEVICE=${DEVICE:-cuda}
SCENES_TINY=${SCENES_TINY:-""}      # e.g. "FallingLeaves Platformer": more tiny runs after bb_tiny
TINY_BATCH=${TINY_BATCH:-128}    # dynamics windows per step (tiny); the tokenizer uses the same number of frames
SMALL_BATCH=${SMALL_BATCH:-48}
# Continue a packed `tiny` run instead of starting bb_tiny afresh (carry its directory to the device):
# CONTINUE=runs/gpu/bb_tiny2 resumes its dynamics stage for MINUTES, to at most CONTINUE_STEPS optimizer
# steps (the cosine schedule is stretched to the total that fits; the packed runs hold no optimizer
# state, so Adam restarts and the learning rate warms up again).
CONTINUE=${CONTINUE:-""}
# TOKENIZER=RUN starts bb_tiny from RUN's trained tokenizer stage (carry RUN to the device) and trains
# only the dynamics, for MINUTES, on its codes.
TOKENIZER=${TOKENIZER:-""}
CONTINUE_STEPS=${CONTINUE_STEPS:-100000}
# More config overrides for the tiny runs (space-separated KEY=VALUE), e.g. the own-prediction context
# against drift: TINY_SET="dynamics.own_context_prob=0.5"
TINY_SET=${TINY_SET:-""}
ROLLOUTS=${ROLLOUTS:-1}           # 0: no held-out rollouts on the device (evaluate where the weights land)
export PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy PYGAME_HIDE_SUPPORT_PROMPT=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$OUT" $W/logs
stamp() { echo "[$(date +%T)] $*"; }

stamp "device: $($PY -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")')"

# ---------------------------------------------------------------- 1. data (CPU) and benchmarks (GPU)
collect_data() {
    $PY -m collect --env WorldGym/BouncingBalls-v0 --episodes "$EPISODES" --max-steps 200 --workers 8 \
        --seed 0 --out $W/data/bb --overwrite --no-progress > $W/logs/collect_bb.log 2>&1 &
    for s in $SCENES_TINY; do
        $PY -m collect --env "WorldGym/$s-v0" --episodes "$OTHER_EPISODES" --max-steps 200 --workers 3 \
            --seed 0 --out "$W/data/$s" --overwrite --no-progress > "$W/logs/collect_$s.log" 2>&1 &
    done
    wait
    tail -n 1 $W/logs/collect_*.log
    stamp "collected: $(du -sh $W/data | cut -f1)"
}
benchmarks() {  # generation eager, as one CUDA graph per frame, and under bf16 autocast (worldmodel.graphs)
    [ "$DEVICE" = cuda ] || return 0
    stamp "bench seed163m"
    timeout 120 $PY -m worldmodel.bench --preset seed163m --device cuda --batches 1 8 --frames 10 \
        --cuda-graph --bf16 --train-batch 2 --train-frames 16 --json \
        > $W/logs/bench_seed163m.json 2> $W/logs/bench_seed163m.err
    # the preset checkpoints activations (CPU: 10.3 -> 3.1 GB at 2 x 8); the same step without, to compare
    timeout 45 $PY -m worldmodel.bench --preset seed163m --device cuda --no-generate --train-batch 2 \
        --train-frames 16 --train-stages dynamics --set dynamics.checkpoint_activations=false --json \
        > $W/logs/bench_seed163m_nockpt.json 2> $W/logs/bench_seed163m_nockpt.err
    stamp "bench tiny"
    timeout 60 $PY -m worldmodel.bench --preset tiny --device cuda --batches 1 64 1024 --frames 20 \
        --cuda-graph --bf16 --no-train --json > $W/logs/bench_tiny.json 2> $W/logs/bench_tiny.err
    if [ "${SMALL:-0}" = 1 ]; then
        stamp "bench small"
        timeout 60 $PY -m worldmodel.bench --preset small --device cuda --batches 1 64 1024 --frames 20 \
            --cuda-graph --json > $W/logs/bench_small.json 2> $W/logs/bench_small.err
    fi
    tail -n 2 $W/logs/bench_*.err
    cat $W/logs/bench_*.json
    stamp "benchmarks done"
}

# ---------------------------------------------------------------- 2. training, one run at a time
# Measured on an H100 (2026-11-26): four training processes sharing the GPU each ran ≈ 4× slower
# than one alone (time-slicing; these models are launch-bound), so runs go one after another.
train() {  # name data preset extra-args...
    local name=$1 data=$2 pre=$3
    shift 3
    stamp "train $name ($MINUTES min)"
    $PY -m worldmodel.train --data "$data" --preset "$pre" --out "$W/runs/$name" --minutes "$MINUTES" \
        --device "$DEVICE" --no-progress --no-eval "$@" > "$W/logs/train_$name.log" 2>&1
    grep -v "^\s*$" "$W/logs/train_$name.log" | tail -n 2
}
train_runs() {
    local TINY=(--set "train.tokenizer_batch=$TINY_BATCH" "train.dynamics_batch=$TINY_BATCH" train.eval_every=100000
                train.checkpoint_every=1000 train.dynamics_steps=100000 train.tokenizer_steps=100000
                train.tokenizer_time_fraction=0.25 $TINY_SET)
    if [ -n "$CONTINUE" ]; then
        rm -rf "$W/runs/bb_tiny" && mkdir -p "$W/runs" && cp -r "$CONTINUE" "$W/runs/bb_tiny"
        train bb_tiny $W/data/bb tiny --resume --stage dynamics --steps "$CONTINUE_STEPS" "${TINY[@]}"
    elif [ -n "$TOKENIZER" ]; then
        rm -rf "$W/runs/bb_tiny" && mkdir -p "$W/runs/bb_tiny" && cp -r "$TOKENIZER/tokenizer" "$W/runs/bb_tiny/"
        train bb_tiny $W/data/bb tiny --stage dynamics "${TINY[@]}"
    else
        train bb_tiny $W/data/bb tiny "${TINY[@]}"
    fi
    for s in $SCENES_TINY; do train "${s}_tiny" "$W/data/$s" tiny "${TINY[@]}"; done
    if [ "${SMALL:-0}" = 1 ]; then
        train bb_small $W/data/bb small --set train.tokenizer_batch=128 "train.dynamics_batch=$SMALL_BATCH" \
            train.eval_every=100000 train.checkpoint_every=2000 train.tokenizer_time_fraction=0.25
    fi
}

# ---------------------------------------------------------------- 3. held-out rollouts (the full
# evaluation, python -m evaluate --predictor checkpoint:RUN, is CPU-bound: run it where the weights land)
rollouts() {
    [ "$ROLLOUTS" = 1 ] || return 0
    stamp "held-out rollouts"
    for r in $(ls $W/runs); do
        timeout "${METRICS_TIMEOUT:-90}" $PY -m worldmodel.metrics --checkpoint "$W/runs/$r" \
            --data "$W/data/${r%_*}" --episodes 48 --horizon 30 --temperature 1.0 0.0 --json "$W/logs/metrics_$r.json" > "$W/logs/metrics_$r.log" 2>&1
        grep -v pkg_resources "$W/logs/metrics_$r.log" | tail -n 22
    done
}

# ---------------------------------------------------------------- 4. pack
# What comes back: at most 8 files of ≤ 16 MiB, 64 MiB together. A `tiny` run is ≈ 7 MB of fp32;
# `small` (≈ 100 MB) comes back as bf16 split in 15 MB parts (cat them, then tar x).
pack_runs() {
    stamp "pack"
    for r in $W/runs/*; do
        n=$(basename "$r")
        mkdir -p "$W/pack/$n"
        for st in tokenizer dynamics; do
            [ -d "$r/$st" ] && mkdir -p "$W/pack/$n/$st" && cp "$r/$st/config.json" "$r/$st/model.safetensors" \
                "$r/$st/train_state.json" "$W/pack/$n/$st/"
        done
        cp -r "$r/config.json" "$r/logs" "$r/commands.jsonl" "$W/pack/$n/"
        if [ "$n" = bb_small ]; then
            $PY -c "import sys, torch; from safetensors.torch import load_file, save_file
for f in sys.argv[1:]:
    save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in load_file(f).items()}, f)" \
                "$W"/pack/bb_small/*/model.safetensors
            tar cf "$W/bb_small_bf16.tar" -C "$W/pack" bb_small && split -b 15M "$W/bb_small_bf16.tar" "$OUT/bb_small_bf16.tar.part"
        else
            tar czf "$OUT/run_$n.tgz" -C "$W/pack" "$n"
        fi
    done
}

# ---------------------------------------------------------------- the session
# BENCH=first: benchmarks while the data is collected, then training; BENCH=last: training first (its
# weights are packed before the benchmarks start, so a time limit cuts only benchmarks); BENCH=none.
case "${BENCH:-first}" in
    first) collect_data & benchmarks; wait; train_runs; rollouts; pack_runs ;;
    last) collect_data; train_runs; rollouts; pack_runs; tar czf "$OUT/logs.tgz" -C $W logs; benchmarks ;;
    none) collect_data; train_runs; rollouts; pack_runs ;;
    *) echo "BENCH must be first, last or none" >&2; exit 2 ;;
esac
tar czf "$OUT/logs.tgz" -C $W logs
ls -la "$OUT"
stamp "done"
