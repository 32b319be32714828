#!/usr/bin/env bash
# Issue 20, second round: micro-batch and gradient checkpointing for the small models, against raw Unsloth
# as its notebooks set it up (2 x 4, 'unsloth' checkpointing). Results: PERFORMANCE.md, "Small models, second round".
# Prepare here: bash scripts/prepare_gpu_carry.sh. On the device machine (carry .whl and .gpu):
#   bash scripts/gpu/small_batching.sh N [N ...]      (1-2: TinyLlama; 3-4: the 135M demo step; 5: Llama 3.2 1B)
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
    --full-vocab > "$OUT/b_$n.log" 2>&1 || { echo "error: $arch checkpoint, see b_$n.log"; return; }
  timeout -k 10 "$(( $(left) + 20 ))" python3 scripts/perf_bench.py --model-dir "$ckpt" --parts train \
    --breakdown --timeout 240 --budget-s "$(left)" --out "$OUT/b_$n.json" "$@" >> "$OUT/b_$n.log" 2>&1 \
    || echo "error: $arch ($n), see b_$n.log: $(tail -n 1 "$OUT/b_$n.log")"
  echo "[$n done at $(( $(date +%s) - start )) s]"
}
measure 1 tinyllama-1.1b --forgetting --paths repo,unsloth --steps 10 --variants 2x4:grouped,8x1:grouped
measure 2 tinyllama-1.1b --forgetting --paths repo --steps 10 --no-gc --variants 8x1:grouped,8x1:padding_free,2x4:grouped
measure 3 smollm2-135m --paths repo,unsloth --batch 8 --seq 64 --steps 30
measure 4 smollm2-135m --paths repo --batch 8 --seq 64 --steps 30 --no-gc
measure 5 llama-3.2-1b --forgetting --paths repo,unsloth --steps 10 --no-gc --variants 8x1:grouped
python3 scripts/perf_bench.py --summarize "$OUT"/b_*.json
echo "total $(( $(date +%s) - start )) s"
