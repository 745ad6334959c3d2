#!/usr/bin/env bash
# One short GPU session, end to end, with the project's own commands (about 9 minutes on one H100):
#
#   1. collect random-policy datasets (CPU workers) while the GPU measures the seed163m preset and
#      batched generation (python -m worldmodel.bench);
#   2. train several runs at once on the one GPU (python -m worldmodel.train --minutes M): BouncingBalls
#      `tiny` (large batch) and `small`, and `tiny` for two more scenes;
#   3. evaluate every run on held-out seeds (python -m evaluate --predictor checkpoint:RUN, and
#      python -m worldmodel.metrics on the held-out episodes of its dataset);
#   4. pack the `tiny` weights, logs and reports under $OUT.
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
MINUTES=${MINUTES:-4.5}          # training budget per run (tokenizer + dynamics), all runs in parallel
EPISODES=${EPISODES:-3000}       # BouncingBalls episodes (random policy, ≤ 200 steps each)
OTHER_EPISODES=${OTHER_EPISODES:-1200}
EVAL_EPISODES=${EVAL_EPISODES:-24}
DEVICE=${DEVICE:-cuda}
SCENES_TINY=${SCENES_TINY:-"FallingLeaves"}
TINY_BATCH=${TINY_BATCH:-256}    # dynamics windows per step (tiny); the tokenizer uses the same number of frames
SMALL_BATCH=${SMALL_BATCH:-48}
export PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy PYGAME_HIDE_SUPPORT_PROMPT=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$OUT" $W/logs $W/eval
stamp() { echo "[$(date +%T)] $*"; }

stamp "device: $($PY -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")')"

# ---------------------------------------------------------------- 1. data (CPU) + benchmarks (GPU)
stamp "collect"
$PY -m collect --env WorldGym/BouncingBalls-v0 --episodes "$EPISODES" --max-steps 200 --workers 8 \
    --seed 0 --out $W/data/bb --overwrite --no-progress > $W/logs/collect_bb.log 2>&1 &
for s in $SCENES_TINY; do
    $PY -m collect --env "WorldGym/$s-v0" --episodes "$OTHER_EPISODES" --max-steps 200 --workers 3 \
        --seed 0 --out "$W/data/$s" --overwrite --no-progress > "$W/logs/collect_$s.log" 2>&1 &
done
if [ "$DEVICE" = cuda ]; then
    stamp "bench seed163m"
    timeout 120 $PY -m worldmodel.bench --preset seed163m --device cuda --batches 1 8 --frames 10 \
        --train-batch 2 --train-frames 16 --json > $W/logs/bench_seed163m.json 2> $W/logs/bench_seed163m.err
    stamp "bench tiny"
    timeout 60 $PY -m worldmodel.bench --preset tiny --device cuda --batches 1 64 1024 --frames 20 \
        --train-batch 256 --json > $W/logs/bench_tiny.json 2> $W/logs/bench_tiny.err
    stamp "bench small"
    timeout 60 $PY -m worldmodel.bench --preset small --device cuda --batches 1 64 1024 --frames 20 \
        --json > $W/logs/bench_small.json 2> $W/logs/bench_small.err
    tail -n 2 $W/logs/bench_*.err
    cat $W/logs/bench_*.json
fi
wait
tail -n 3 $W/logs/collect_*.log
stamp "collected: $(du -sh $W/data | cut -f1)"

# ---------------------------------------------------------------- 2. training, all runs at once
train() {  # name data preset extra-args...
    local name=$1 data=$2 pre=$3
    shift 3
    $PY -m worldmodel.train --data "$data" --preset "$pre" --out "$W/runs/$name" --minutes "$MINUTES" \
        --device "$DEVICE" --no-progress --no-eval "$@" > "$W/logs/train_$name.log" 2>&1
}
stamp "train ($MINUTES min each)"
TINY=(--set "train.tokenizer_batch=$TINY_BATCH" "train.dynamics_batch=$TINY_BATCH" train.eval_every=100000
      train.checkpoint_every=1000 train.dynamics_steps=100000 train.tokenizer_steps=100000)
train bb_tiny $W/data/bb tiny "${TINY[@]}" &
# ablation: context-noise augmentation at a sixth of the preset's strength
train bb_tiny_lownoise $W/data/bb tiny "${TINY[@]}" dynamics.noise_max=0.05 dynamics.noise_prob=0.5 &
train bb_small $W/data/bb small --set train.tokenizer_batch=128 "train.dynamics_batch=$SMALL_BATCH" \
    train.eval_every=100000 train.checkpoint_every=2000 &
for s in $SCENES_TINY; do train "${s}_tiny" "$W/data/$s" tiny "${TINY[@]}" & done
wait
for f in $W/logs/train_*.log; do echo "== $f"; grep -v "^\s*$" "$f" | tail -n 4; done

# ---------------------------------------------------------------- 3. evaluation on held-out seeds
stamp "evaluate"
evaluate() {  # scene run
    timeout 120 $PY -m evaluate --env "WorldGym/$1-v0" --predictor "checkpoint:$W/runs/$2" \
        --episodes "$EVAL_EPISODES" --horizon 32 --samples 2 --seed 100000 --no-videos --quiet \
        --out "$W/eval/$2" > "$W/logs/eval_$2.log" 2>&1
}
evaluate BouncingBalls bb_tiny &
evaluate BouncingBalls bb_tiny_lownoise &
evaluate BouncingBalls bb_small &
for s in $SCENES_TINY; do evaluate "$s" "${s}_tiny" & done
for r in bb_tiny bb_tiny_lownoise bb_small; do
    timeout 120 $PY -m worldmodel.metrics --checkpoint "$W/runs/$r" --data $W/data/bb --episodes 48 --horizon 30 \
        --temperature 1.0 0.5 0.0 --json "$W/logs/metrics_$r.json" > "$W/logs/metrics_$r.log" 2>&1 &
done
wait
tail -n 12 $W/logs/eval_*.log
tail -n 40 $W/logs/metrics_*.log

# ---------------------------------------------------------------- 4. pack (≤ 8 files of ≤ 16 MiB come back)
stamp "pack"
for r in $W/runs/*; do
    n=$(basename "$r")
    mkdir -p "$W/pack/$n"
    for st in tokenizer dynamics; do
        [ -d "$r/$st" ] && mkdir -p "$W/pack/$n/$st" && cp "$r/$st/config.json" "$r/$st/model.safetensors" \
            "$r/$st/train_state.json" "$W/pack/$n/$st/" 2>/dev/null
    done
    cp -r "$r/config.json" "$r/logs" "$r/commands.jsonl" "$W/pack/$n/" 2>/dev/null
done
# bb_small (≈ 100 MB of fp32) comes back as bf16 in ≤ 15 MB parts: cat part.* > small_bf16.safetensors
$PY - "$W" <<'PYEOF'
import sys, torch
from safetensors.torch import load_file, save_file
w = sys.argv[1]
for st in ("tokenizer", "dynamics"):
    try:
        t = load_file(f"{w}/runs/bb_small/{st}/model.safetensors")
    except FileNotFoundError:
        continue
    save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in t.items()},
              f"{w}/pack/bb_small/{st}/model.safetensors")
PYEOF
tar cf $W/bb_small_bf16.tar -C $W/pack bb_small && split -b 15M $W/bb_small_bf16.tar "$OUT/bb_small_bf16.tar.part"
rm -rf $W/pack/bb_small
tar czf "$OUT/runs_bb.tgz" -C $W/pack $(cd $W/pack && ls -d bb_*)
tar czf "$OUT/runs_other.tgz" -C $W/pack $(cd $W/pack && ls -d * | grep -v '^bb_') 2>/dev/null
tar czf "$OUT/logs.tgz" -C $W logs eval 2>/dev/null
ls -la "$OUT"
stamp "done"
