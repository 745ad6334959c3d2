#!/usr/bin/env bash
# Tokenizers for the scenes a CPU leaves under 32 dB, trained one after another on one GPU (≈ 9
# minutes on one H100 with the defaults), each evaluated on held-out seeds by the project's evaluator
# while the next one trains; optionally, first, the dream vector env timed with and without its CUDA
# graph (python -m worldmodel.soak) while the data is collected.
#
# Measured on one H100 (2026-11-27, these defaults; the figures are in worldmodel/README.md):
#   - a tokenizer step of 512 frames took ≈ 180 ms (5.6 steps/s, ≈ 2,900 frames/s, about 65× one
#     CPU thread of this project's 2-core VM): the convolutions are compute-bound, not launch-bound;
#   - 1.25 minutes (≈ 400 steps) of the wide 4×4-token configs are not enough: FallingLeaves,
#     SpinningObjects and MorphingShapes stayed under their longer CPU runs;
#   - ParticleSystems with 2×2-pixel tokens, 348 steps, then resumed to 1,132 steps (2.6 more
#     minutes; resuming is now gpu_resume_tokenizers.sh's job): held-out mean 34.9 dB (29.6 after
#     348 steps; 24.2 for the 4×4 grid after 56 CPU-minutes), 94% of particles within 1 px (61%).
# Since then the same 2×2 grid brought FallingLeaves, SpinningObjects and MorphingShapes over 32 dB on
# the CPU in 33-101 minutes (worldmodel/README.md). For those scenes on a GPU next time: fewer scenes,
# more minutes each, SET_<scene>="tokenizer.codebook_size=1024 tokenizer.channels=[32,64]".
#
# Per-scene settings (SET_<scene>, space-separated KEY=VALUE overrides for --set):
#   FallingLeaves, SpinningObjects, MorphingShapes: more codes and a wider decoder (on the CPU,
#     2,048 codes lifted SpinningObjects by 1.6 dB of training PSNR at equal steps);
#   ParticleSystems: a finer grid, 2×2-pixel tokens (32×32 codes) instead of 4×4: its particles of
#     1-2 px are smaller than a 4×4 token (61% within 1 px after 56 CPU-minutes); and 4,096 codes: it
#     draws ~10k distinct 2×2 patches, of which the 1,024 most common cover only 95.9% (patch_census.py),
#     and at equal CPU time 4,096 codes halved the objects missed (98.4% within 1 px against 97.0%).
# Each scene's run is packed into $OUT as soon as it is trained, so a time limit loses only the rest.
#
# Dry run on a CPU: DEVICE=cpu MINUTES=0.1 EPISODES=4 EVAL_EPISODES=1 SOAK="" \
#     bash worldmodel/recipes/gpu_tokenizers.sh
# On the device: install the wheels the image lacks (gymnasium, pymunk, cffi, pycparser, pygame, isal),
#   bash worldmodel/recipes/gpu_tokenizers.sh 2>&1 | tee $OUT/session.log
# To resume a run for longer, use gpu_resume_tokenizers.sh.
set -u
W=${WORK:-.gpu_tokenizers}
OUT=${OUT:-out/gpu_tokenizers}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
SCENES=${SCENES:-"FallingLeaves SpinningObjects MorphingShapes ParticleSystems"}
EPISODES=${EPISODES:-1500}        # random-policy episodes per scene (≤ 200 steps each)
MINUTES=${MINUTES:-1.25}           # training budget per scene
BATCH=${BATCH:-512}               # frames per tokenizer step
EVAL_EPISODES=${EVAL_EPISODES:-32}
SOAK=${SOAK-checkpoints/bouncing_balls}   # a dream checkpoint to time, or "" for none
SET_FallingLeaves=${SET_FallingLeaves:-"tokenizer.codebook_size=1024 tokenizer.channels=[24,48,64]"}
SET_SpinningObjects=${SET_SpinningObjects:-"tokenizer.codebook_size=2048 tokenizer.channels=[24,48,64]"}
SET_MorphingShapes=${SET_MorphingShapes:-"tokenizer.codebook_size=2048 tokenizer.channels=[24,48,64]"}
SET_ParticleSystems=${SET_ParticleSystems:-"tokenizer.codebook_size=4096 tokenizer.channels=[32,64]"}
export PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy PYGAME_HIDE_SUPPORT_PROMPT=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$OUT" $W/logs $W/runs $W/reports
stamp() { echo "[$(date +%T)] $*"; }
stamp "device: $($PY -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")')"

collect_data() {
    for s in $SCENES; do
        $PY -m collect --env "WorldGym/$s-v0" --episodes "$EPISODES" --max-steps 200 --workers 3 --seed 0 \
            --out "$W/data/$s" --overwrite --no-progress > "$W/logs/collect_$s.log" 2>&1 &
    done
    wait
    tail -n 1 $W/logs/collect_*.log
    stamp "collected: $(du -sh $W/data | cut -f1)"
}

soak() {  # frames/s of a 64-env dream vector env: eager, one CUDA graph per step, the graph compiled
    [ -n "$SOAK" ] && [ "$DEVICE" = cuda ] || return 0
    local name args
    for name in eager graph compiled; do
        case $name in eager) args=(--steps 200) ;; graph) args=(--steps 600 --cuda-graph) ;;
            compiled) args=(--steps 600 --cuda-graph --compile) ;; esac
        timeout 150 $PY -m worldmodel.soak --checkpoint "$SOAK" --num-envs 64 --device cuda "${args[@]}" \
            --json "$W/logs/soak_$name.json" > "$W/logs/soak_$name.log" 2>&1
        stamp "soak $name: $(grep -h '"frames_per_s' "$W/logs/soak_$name.log" | tr -d ' \n')"
    done
}

evaluate() {  # scene run: the real future through the tokenizer, on held-out seeds (CPU, background)
    $PY -m evaluate --env "WorldGym/$1-v0" --predictor "tokenizer:$2" --episodes "$EVAL_EPISODES" --samples 1 \
        --seed 100000 --no-diversity --no-controllability --no-videos --out "$W/reports/$1" \
        > "$W/logs/eval_$1.log" 2>&1
    grep -E "^\| (tokenizer|copy-last)" "$W/logs/eval_$1.log" | sed "s/^/$1 /"
}

train_scenes() {
    local s var extra
    for s in $SCENES; do
        var="SET_$s"
        read -r -a extra <<< "${!var:-}"
        stamp "tokenizer $s ($MINUTES min, batch $BATCH): ${extra[*]}"
        extra=(--set "train.tokenizer_batch=$BATCH" train.tokenizer_steps=100000 train.eval_every=100000
               train.checkpoint_every=1000 "${extra[@]}")
        $PY -m worldmodel.train --data "$W/data/$s" --out "$W/runs/$s" --stage tokenizer --minutes "$MINUTES" \
            --device "$DEVICE" --no-progress --no-eval "${extra[@]}" > "$W/logs/train_$s.log" 2>&1
        grep -v "^\s*$" "$W/logs/train_$s.log" | tail -n 1
        tail -n 1 "$W/runs/$s/logs/tokenizer.jsonl"
        pack "$s"
        evaluate "$s" "$W/runs/$s" &
    done
    wait
}

pack() {  # scene: its tokenizer stage (config + weights + state) and logs, one file, as soon as it is trained
    mkdir -p "$W/pack/$1/tokenizer"
    cp "$W/runs/$1/tokenizer/"{config.json,model.safetensors,train_state.json} "$W/pack/$1/tokenizer/"
    cp -r "$W/runs/$1/config.json" "$W/runs/$1/logs" "$W/pack/$1/"
    tar czf "$OUT/tokenizer_$1.tgz" -C "$W/pack" "$1"
}

collect_data & soak
wait
train_scenes
tar czf "$OUT/logs.tgz" -C $W logs reports
ls -la "$OUT"
stamp "done"
