#!/usr/bin/env bash
# Issue 20's GPU measurement: how fast the small models train, this repository's path against raw
# Unsloth set up as its notebooks do, and where a step's wall time goes (perf_bench --breakdown).
# Random-weight checkpoints at full depth (public config numbers); in this order, as long as the
# time lasts (each measurement gets what is left of TOTAL_S, a later one is skipped and says so):
#   1. tinyllama-1.1b at the forgetting study's defaults on Alpaca-like lengths (perf_bench --forgetting)
#   2. smollm2-135m, the demo's model: the issue's step, batch 8 x 64 tokens, 30 steps
#   3. llama-3.2-1b like 1.
#   4. tinyllama-1.1b, the repository's path in other batchings of the same 8 examples a step
# Writes $OUT/small_<n>.json and .log, then prints one table (perf_bench --summarize). Measurements
# left out for time can run in a second call: name their numbers (e.g. `... scripts/gpu/small_speed.sh 3 4`).
# Prepare here: bash scripts/prepare_gpu_carry.sh. On the device machine (carry .whl and .gpu):
#   bash scripts/gpu/small_speed.sh [N ...]
set -uo pipefail
start=$(date +%s)
total=${TOTAL_S:-510}  # seconds for everything, wheel installation included (the device allows 600 a command)
source scripts/gpu_env.sh || exit 1
export UNSLOTH_COMPILE_LOCATION=/tmp/unsloth_cache  # one cache: later processes reuse the compiled blocks
left() { echo $(( total - ($(date +%s) - start) )); }

wanted=" ${*:-1 2 3 4} "
measure() {  # measure N ARCH PERF_BENCH_ARGS...: build the checkpoint once, then perf_bench in what is left
  local n=$1 arch=$2 ckpt=/tmp/ckpt/$2
  shift 2
  [[ $wanted == *" $n "* ]] || return 0
  if [ "$(left)" -lt 60 ]; then echo "skipped $arch ($n): out of time"; return; fi
  [ -d "$ckpt" ] || python3 scripts/make_random_checkpoint.py "$arch" "$ckpt" --tokenizer .gpu/tokenizer \
    --full-vocab > "$OUT/small_$n.log" 2>&1 || { echo "error: $arch checkpoint, see small_$n.log"; return; }
  timeout -k 10 "$(( $(left) + 20 ))" python3 scripts/perf_bench.py --model-dir "$ckpt" --parts train \
    --breakdown --timeout 240 --budget-s "$(left)" --out "$OUT/small_$n.json" "$@" >> "$OUT/small_$n.log" 2>&1 \
    || echo "error: $arch ($n), see small_$n.log: $(tail -n 1 "$OUT/small_$n.log")"
}

measure 1 tinyllama-1.1b --forgetting --paths repo,unsloth --steps 10
measure 2 smollm2-135m --paths repo,unsloth --batch 8 --seq 64 --steps 30
measure 3 llama-3.2-1b --forgetting --paths repo,unsloth --steps 10
measure 4 tinyllama-1.1b --forgetting --paths repo --steps 10 --variants 8x1:grouped,8x1:padding_free,4x2:grouped
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv > "$OUT/gpu.csv" 2>&1
python3 scripts/perf_bench.py --summarize "$OUT"/small_*.json
echo "total $(( $(date +%s) - start )) s"
