# Sourced by small_speed.sh, small_batching.sh, small_compile.sh and demo_graphs.sh, with their arguments:
# numbered perf_bench measurements that share TOTAL_S seconds, wheel installation included (the device allows
# 600 a command). Each gets what is left; a later one is skipped and says so, and can run in a second call
# that names its number.
# Set before sourcing: PREFIX (results: $OUT/<PREFIX>_<N>.json and .log), ALL (the numbers run when none are
# named), TOTAL_DEFAULT and CHILD_DEFAULT (seconds for everything, and per perf_bench child: CHILD_S overrides).
set -uo pipefail
start=$(date +%s)
total=${TOTAL_S:-$TOTAL_DEFAULT}
source scripts/gpu_env.sh || exit 1
export UNSLOTH_COMPILE_LOCATION=/tmp/unsloth_cache  # one cache: later processes reuse the compiled blocks
left() { echo $(( total - ($(date +%s) - start) )); }
wanted=" ${*:-$ALL} "

measure() {  # measure N ARCH PERF_BENCH_ARGS...: build the checkpoint once, then perf_bench in what is left
  local n=$1 arch=$2 ckpt=/tmp/ckpt/$2 log="$OUT/${PREFIX}_$1.log"
  shift 2
  [[ $wanted == *" $n "* ]] || return 0
  if [ "$(left)" -lt 60 ]; then echo "skipped $arch ($n): out of time"; return; fi
  [ -d "$ckpt" ] || python3 scripts/make_random_checkpoint.py "$arch" "$ckpt" --tokenizer .gpu/tokenizer \
    --full-vocab > "$log" 2>&1 || { echo "error: $arch checkpoint, see $(basename "$log")"; return; }
  timeout -k 10 "$(( $(left) + 20 ))" python3 scripts/perf_bench.py --model-dir "$ckpt" --parts train \
    --breakdown --timeout "${CHILD_S:-$CHILD_DEFAULT}" --budget-s "$(left)" --out "$OUT/${PREFIX}_$n.json" "$@" \
    >> "$log" 2>&1 || echo "error: $arch ($n), see $(basename "$log"): $(tail -n 1 "$log")"
  grep -h "block compile failed\|compiling each transformer block" "$log" | sort | uniq -c | head -5
  echo "[$n done at $(( $(date +%s) - start )) s]"
}

finish() {  # the GPU's clocks, one table of every measurement, the time taken
  nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv > "$OUT/gpu.csv" 2>&1
  python3 scripts/perf_bench.py --summarize "$OUT/${PREFIX}"_*.json
  echo "total $(( $(date +%s) - start )) s"
}
