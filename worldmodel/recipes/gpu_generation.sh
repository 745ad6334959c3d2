#!/usr/bin/env bash
# Generation speed and training memory on one GPU, with the project's own commands (≈ 5 minutes on
# one H100): where a `tiny` frame's time goes (profile), what a torch.compile'd CUDA graph adds, the
# seed163m tokenizer's training memory at small batches, and a `small` dynamics step at a large batch.
#
# Dry run on a CPU (skips what needs CUDA): DEVICE=cpu bash worldmodel/recipes/gpu_generation.sh
# On the device: install the wheels the image lacks (gymnasium, pymunk, cffi, pycparser, pygame, isal),
#   bash worldmodel/recipes/gpu_generation.sh 2>&1 | tee $OUT/session.log
set -u
W=${WORK:-.gpu_session}
OUT=${OUT:-out/gpu_generation}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
COMPILE_BATCHES=${COMPILE_BATCHES:-"64 1 1024"}
export PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy PYGAME_HIDE_SUPPORT_PROMPT=1
mkdir -p "$OUT" $W/logs $W/bench
stamp() { echo "[$(date +%T)] $*"; }
bench() {  # name timeout args...: one worldmodel.bench, its output into $W/bench/NAME.txt
    local name=$1 limit=$2
    shift 2
    stamp "bench $name"
    timeout "$limit" $PY -m worldmodel.bench "$@" > "$W/bench/$name.txt" 2> "$W/logs/bench_$name.err"
    grep -E "^[a-z0-9]+ on (cuda|cpu)|^  (generate|train)" "$W/bench/$name.txt"  # the summary lines
    tail -n 2 "$W/logs/bench_$name.err" | grep -i "error" || true
}

if [ "$DEVICE" = cuda ]; then
    stamp "device: $($PY -c 'import torch; print(torch.cuda.get_device_name(0))')"
    GRAPH=(--cuda-graph --bf16) BATCHES=(1 64 1024)
else
    GRAPH=(--threads 1) BATCHES=(1 4)  # a dry run's sizes
fi
# 1. tiny, random weights: eager / graph / bf16 at three batch sizes, then a kernel profile of eager frames
bench tiny 150 --preset tiny --device "$DEVICE" --batches "${BATCHES[@]}" --frames 20 "${GRAPH[@]}" --no-train --profile 25
grep -A 30 "^profile, batch ${BATCHES[1]}" "$W/bench/tiny.txt" | head -n 32
# 2. the same with the frame torch.compile'd before capture, one process per batch size (a compile each)
if [ "$DEVICE" = cuda ]; then
    for b in $COMPILE_BATCHES; do
        bench "tiny_compiled_$b" 200 --preset tiny --device cuda --batches "$b" --frames 40 --cuda-graph --bf16 \
            --compile --no-train
    done
fi
# 3. seed163m tokenizer training memory at small batches (batch 32 needed 12.3 GB with checkpointing)
for b in 8 16; do
    [ "$DEVICE" = cuda ] || break
    bench "seed163m_tokenizer_$b" 90 --preset seed163m --device cuda --no-generate --train-stages tokenizer \
        --set "train.tokenizer_batch=$b"
done
# 4. small: one dynamics step at 128 windows of 16 frames (what a GPU run of `small` would do per step)
[ "$DEVICE" = cuda ] && bench small_dynamics 90 --preset small --device cuda --no-generate \
    --train-stages dynamics --train-batch 128
tar czf "$OUT/bench.tgz" -C $W logs bench
stamp "done"
