#!/usr/bin/env bash
# CPU-trained tokenizer runs resumed one after another on one GPU, for many more steps than a CPU
# gives (≈ 1 minute of data, then ≈ 4 minutes per job on one H100 with the defaults: 2 jobs fit the
# 600-s limit of one device command).
#
# Why resume rather than train afresh: on the CPU the ParticleSystems misses kept falling with steps
# (2,475 → 5,466 steps: 769 → 440 particles off by more than 1 px), and a GPU step at the CPU's batch
# of 32 frames costs milliseconds. A fresh GPU run at 512 frames per step reached only 94% within 1 px
# after 1,132 steps: per step, a bigger batch bought little. The first jobs asked: do 10× the steps
# keep paying (batch 32, as on the CPU), and does a 4× batch pay on top (batch 128); and for
# Platformer, whose misses stayed flat over its last CPU resume, do 10× the steps move them.
#
# Why one after another: three jobs side by side on one H100 (the first version of this recipe) each
# ran 4.3× slower than one alone (ParticleSystems at batch 32: 7.6 steps/s beside two others, 33
# alone): the GPU time-slices between processes, so a job gains nothing from company.
#
# Measured on one H100 (eleventh session; worldmodel/README.md, "Resumed on an H100"): ParticleSystems
# from 5,466 to 17,420 steps (4.5 minutes side by side, then 5 alone): 440 → 131 misses, 99.78% within
# 1 px, held-out mean 40.1 dB. Per step, batch 128 cut the misses 2.6× faster than batch 32 (per frame
# about the same); its solo speed is still to be timed. The default JOBS are the next step for both
# scenes: batch 128 alone, from the runs this session left (local; pass yours).
#
# Each job is one line of JOBS: NAME RUN [KEY=VALUE ...]. RUN (carried to the device) is copied and
# resumed with `--resume --stage tokenizer --minutes MINUTES --steps 100000 --set KEY=VALUE ...`; its
# scene's data is collected here as `data/scenes1k` was (EPISODES random-policy episodes, seed 0).
# Each job is packed into $OUT/NAME.tgz (config, logs and the tokenizer stage with its optimizer
# state, so that a CPU can resume it again); evaluate it where it lands:
#   tar xzf NAME.tgz && python -m evaluate --env WorldGym/S-v0 --predictor tokenizer:NAME ...
#
# Dry run on a CPU:
#   DEVICE=cpu MINUTES=0.3 EPISODES=8 bash worldmodel/recipes/gpu_resume_tokenizers.sh
# On the device: install the wheels the image lacks (gymnasium, pymunk, cffi, pycparser, pygame, isal,
# farama-notifications), carry the runs, then
#   bash worldmodel/recipes/gpu_resume_tokenizers.sh 2>&1 | tee $OUT/session.log
set -u
W=${WORK:-.gpu_resume}
OUT=${OUT:-out/gpu_resume}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-3.5}           # training budget of each job (plus ≈ 25 s to load its data)
EPISODES=${EPISODES:-1000}        # per scene, as data/scenes1k
JOBS=${JOBS:-"ps_b128 runs/gpu_resume/ps_b32_more_cpu train.tokenizer_batch=128
plat_b128 runs/gpu_resume/plat_b32_cpu train.tokenizer_batch=128"}
export PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy PYGAME_HIDE_SUPPORT_PROMPT=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$OUT" $W/logs $W/runs $W/data
stamp() { echo "[$(date +%T)] $*"; }
scene_of() { $PY -c "import json, sys; print(json.load(open(sys.argv[1]))['env_id'])" "$1/config.json"; }
stamp "device: $($PY -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")')"

# ---------------------------------------------------------------- 1. data
collect_data() {
    local env
    for env in $(while read -r _ run _; do scene_of "$run"; done <<< "$JOBS" | sort -u); do
        $PY -m collect --env "$env" --episodes "$EPISODES" --max-steps 200 --workers 5 --seed 0 \
            --out "$W/data/$env" --overwrite --no-progress > "$W/logs/collect_${env//\//_}.log" 2>&1 &
    done
    wait
    tail -q -n 1 $W/logs/collect_*.log
    stamp "collected: $(du -sh $W/data | cut -f1)"
}

collect_data

# ---------------------------------------------------------------- 2. resume each job in turn
pack() {  # name: config, logs and the tokenizer stage (weights, optimizer, state), one file
    mkdir -p "$W/pack/$1"
    cp -r "$W/runs/$1/config.json" "$W/runs/$1/commands.jsonl" "$W/runs/$1/logs" "$W/runs/$1/tokenizer" \
        "$W/pack/$1/"
    tar czf "$OUT/$1.tgz" -C "$W/pack" "$1"
}

resume() {  # name run [KEY=VALUE ...]
    local name=$1 run=$2 env sets=()
    shift 2
    [ $# -gt 0 ] && sets=(--set "$@")
    env=$(scene_of "$run")
    rm -rf "$W/runs/$name" && cp -r "$run" "$W/runs/$name"
    stamp "resume $name from $(tail -n 1 "$run/logs/tokenizer.jsonl" | cut -c 1-60)... ($MINUTES min): $*"
    $PY -m worldmodel.train --data "$W/data/$env" --out "$W/runs/$name" --resume --stage tokenizer \
        --minutes "$MINUTES" --steps 100000 --device "$DEVICE" --no-progress --no-eval "${sets[@]}" \
        < /dev/null > "$W/logs/train_$name.log" 2>&1  # stdin is the job list
    stamp "$name: $(grep -v "^\s*$" "$W/logs/train_$name.log" | tail -n 1)"
    tail -n 1 "$W/runs/$name/logs/tokenizer.jsonl"
    pack "$name"
}

while read -r name run sets; do
    # shellcheck disable=SC2086  # the KEY=VALUE list is split on purpose
    resume "$name" "$run" $sets
done <<< "$JOBS"
tar czf "$OUT/logs.tgz" -C $W logs
ls -la "$OUT"
stamp "done"
