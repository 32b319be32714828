#!/usr/bin/env bash
# Issue 20, fourth round: the 135M addition demo with Unsloth's per-layer CUDA graphs (the addition notebook's
# cuda_graphs: batches padded to multiples of 64 tokens, one shape for its rows). Results: PERFORMANCE.md,
# "Small models, fourth round". Prepare here: bash scripts/prepare_gpu_carry.sh. On the device machine (carry
# .whl and .gpu):
#   bash scripts/gpu/demo_graphs.sh N [N ...]
#   1: perf_bench.py --demo (the demo's real training rows and settings): the repository's path as shipped and
#      with CUDA graphs, raw Unsloth as its notebooks set it up (2 x 4), one process each
#   2-3: notebooks/addition.ipynb with the demo preset on the same random-weight SmolLM2-135M:
#      2 with cuda_graphs true, 3 as shipped; metrics.json and loss_curve.json come back as nb_N_*.json
#   4: TinyLlama at the forgetting study's defaults (8 x 1, gradient checkpointing): as shipped, with cuda_graphs
#      (batches padded to 64-token multiples), raw Unsloth
PREFIX=d ALL="1 2 3 4" TOTAL_DEFAULT=560 CHILD_DEFAULT=300  # raw Unsloth took over 150 s on the demo rows
source scripts/gpu/measure.sh "$@"
ckpt=/tmp/ckpt/smollm2-135m
measure 1 smollm2-135m --demo --paths repo,unsloth --compile unsloth,graphs

notebook() {  # notebook N OVERRIDES...: the demo through helpers.run_notebook, its records to $OUT
  local n=$1 log="$OUT/nb_$1.log"
  shift
  [[ $wanted == *" $n "* ]] || return 0
  if [ "$(left)" -lt 90 ]; then echo "skipped notebook ($n): out of time"; return; fi
  [ -d "$ckpt" ] || python3 scripts/make_random_checkpoint.py smollm2-135m "$ckpt" --tokenizer .gpu/tokenizer \
    --full-vocab > "$log" 2>&1
  local t0=$(date +%s)
  timeout -k 10 "$(( $(left) - 5 ))" python3 -m helpers.run_notebook addition --preset demo -p model "$ckpt" \
    -p output_root "/tmp/bm$n" "$@" --quiet >> "$log" 2>&1 || echo "error: notebook ($n), see $(basename "$log")"
  echo "notebook ($n) $* wall time: $(( $(date +%s) - t0 )) s"
  local run
  run=$(ls -d /tmp/bm"$n"/addition/*/ 2>/dev/null | head -n 1)
  [ -n "$run" ] || return
  cp "$run/metrics.json" "$OUT/nb_${n}_metrics.json" 2>/dev/null
  cp "$run/loss_curve.json" "$OUT/nb_${n}_loss_curve.json" 2>/dev/null
  cp "$run/run.json" "$OUT/nb_${n}_run.json" 2>/dev/null
  python3 - "$run" <<'PY'
import json, sys
m = json.load(open(sys.argv[1] + "/metrics.json"))
t = m["train"]
print("  train:", {k: t[k] for k in ("steps", "loss_first", "loss_last", "train_loss", "runtime_s")},
      "| s/step %.4f" % (t["runtime_s"] / t["steps"]), "| effective:", t["effective"])
print("  timings_s:", m["timings_s"])
PY
}
notebook 2 -p cuda_graphs true
notebook 3
measure 4 tinyllama-1.1b --forgetting --steps 10 --paths repo,unsloth --compile unsloth,graphs
finish
