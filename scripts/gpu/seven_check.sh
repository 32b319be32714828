#!/usr/bin/env bash
# Issue 3's GPU check: train_math through Unsloth with the notebook's default settings for a
# random-weight, 2-layer checkpoint of each study architecture (real config numbers, the family's
# chat template on the embedded vocabulary), then benchmark on 8 questions. The architectures run
# side by side (one process each, own Unsloth compile folder); each writes $OUT/<arch>.log.
# Prepare here: bash scripts/prepare_gpu_carry.sh. On the device machine (carry .whl and .gpu):
#   bash scripts/gpu/seven_check.sh llama-2-7b llama-3-8b ...
set -uo pipefail
source scripts/gpu_env.sh || exit 1

check() {
  local arch=$1 ckpt=/tmp/ckpt/$1 start
  export UNSLOTH_COMPILE_LOCATION=/tmp/unsloth_cache/$arch
  start=$(date +%s)
  python3 scripts/make_random_checkpoint.py "$arch" "$ckpt" --tokenizer .gpu/tokenizer --layers 2 || return 1
  python3 -m helpers.run_notebook train_math -p model "$ckpt" -p dataset_source local -p output_root /tmp/bm --quiet || return 1
  python3 -m helpers.run_notebook benchmark -p model "$ckpt" -p output_root /tmp/bm -p workbook_dir /tmp/books \
    -p max_questions 8 -p max_new_tokens 64 --quiet || return 1
  python3 - "$arch" <<'PY'
import glob, json, sys
arch = sys.argv[1]
nb = json.load(open(glob.glob(f"/tmp/bm/train_math/{arch}-*/train_math.ipynb")[0]))
for cell in nb["cells"]:
    if "show_loss_tokens" in "".join(cell["source"]):
        text = "".join("".join(o.get("text", "")) for o in cell["outputs"])
        at = text.find("[[")
        print(f"RESULT {arch} mask: {text[max(0, at - 60):at + 60]!r}")
m = json.load(open(glob.glob(f"/tmp/bm/train_math/{arch}-*/metrics.json")[0]))
print(f"RESULT {arch} train:", m["backend"], m["n_examples"], "examples", m["train"]["steps"], "steps, loss",
      round(m["train"]["loss_first"], 2), "->", round(m["train"]["loss_last"], 2), m["train"]["effective"],
      m["timings_s"])
b = json.load(open(glob.glob(f"/tmp/bm/benchmark/{arch}-*/metrics.json")[0]))
print(f"RESULT {arch} benchmark:", json.dumps(b)[:400])
print(f"RESULT {arch} files:", sorted(p.split("/tmp/")[1] for p in glob.glob("/tmp/b*/**/*.*", recursive=True)
                                      if arch in p and p.endswith((".xlsx", ".jsonl", ".safetensors")))[:12])
PY
  echo "RESULT $arch: $(( $(date +%s) - start )) s"
}

for arch in "$@"; do
  check "$arch" > "$OUT/$arch.log" 2>&1 &
done
wait
grep -h "^RESULT\|^error" "$OUT"/*.log
