#!/usr/bin/env bash
# Issue 20, third round: torch.compile and CUDA graphs on the repository's training path (perf_bench --compile,
# --pad-multiple), and the batch it takes to reach 30% of the GPU's dense bf16 rate. Results: PERFORMANCE.md,
# "Small models, third round". Prepare here: bash scripts/prepare_gpu_carry.sh. On the device machine (carry
# .whl and .gpu):   bash scripts/gpu/small_compile.sh N [N ...]
#   1-4: TinyLlama at the forgetting study's settings (1: 8/32/64 rows with and without CUDA graphs;
#        2: as shipped, no buckets, and raw Unsloth; 3: with gradient checkpointing; 4: the whole model compiled)
#   5-6: the 135M demo step (5: as shipped, CUDA graphs, raw Unsloth; 6: with gradient checkpointing)
#   7-8: TinyLlama again (7: CUDA graphs over 256-token buckets after two warm passes; 8: 64 and 128 rows, no buckets)
set -uo pipefail
start=$(date +%s); total=${TOTAL_S:-540}
source scripts/gpu_env.sh || exit 1
export UNSLOTH_COMPILE_LOCATION=/tmp/unsloth_cache
left() { echo $(( total - ($(date +%s) - start) )); }
wanted=" $* "
measure() {  # measure N ARCH ARGS...
  local n=$1 arch=$2 ckpt=/tmp/ckpt/$2; shift 2
  [[ $wanted == *" $n "* ]] || return 0
  if [ "$(left)" -lt 60 ]; then echo "skipped $arch ($n): out of time"; return; fi
  [ -d "$ckpt" ] || python3 scripts/make_random_checkpoint.py "$arch" "$ckpt" --tokenizer .gpu/tokenizer \
    --full-vocab > "$OUT/c_$n.log" 2>&1 || { echo "error: $arch checkpoint, see c_$n.log"; return; }
  timeout -k 10 "$(( $(left) + 20 ))" python3 scripts/perf_bench.py --model-dir "$ckpt" --parts train \
    --breakdown --timeout "${CHILD_S:-200}" --budget-s "$(left)" --out "$OUT/c_$n.json" "$@" >> "$OUT/c_$n.log" 2>&1 \
    || echo "error: $arch ($n), see c_$n.log: $(tail -n 1 "$OUT/c_$n.log")"
  grep -h "block compile failed\|compiling each transformer block" "$OUT/c_$n.log" | sort | uniq -c | head -5
  echo "[$n done at $(( $(date +%s) - start )) s]"
}
tl=(tinyllama-1.1b --forgetting --steps 10)
measure 1 "${tl[@]}" --paths repo --no-gc --pad-multiple 64 --compile unsloth,graphs \
  --variants 8x1:grouped,32x1:grouped,64x1:grouped
measure 2 "${tl[@]}" --paths repo,unsloth --no-gc --variants 8x1:grouped
measure 3 "${tl[@]}" --paths repo --pad-multiple 64 --compile unsloth,graphs --variants 8x1:grouped
measure 4 "${tl[@]}" --paths repo --no-gc --compile model --variants 8x1:grouped
sm=(smollm2-135m --batch 8 --seq 64 --steps 30)
measure 5 "${sm[@]}" --paths repo,unsloth --no-gc --compile unsloth,graphs
measure 6 "${sm[@]}" --paths repo --compile graphs
measure 7 "${tl[@]}" --paths repo --no-gc --pad-multiple 256 --warm-passes 2 --compile unsloth,graphs \
  --variants 8x1:grouped
measure 8 "${tl[@]}" --paths repo --no-gc --variants 64x1:grouped,128x1:grouped
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv > "$OUT/gpu.csv" 2>&1
python3 scripts/perf_bench.py --summarize "$OUT"/c_*.json
echo "total $(( $(date +%s) - start )) s"
