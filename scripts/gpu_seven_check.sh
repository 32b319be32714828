#!/usr/bin/env bash
# Issue 3's GPU check: train_math through Unsloth with the notebook's default settings for a
# random-weight, 2-layer checkpoint of each of the seven study architectures (real config numbers,
# the family's chat template on the embedded vocabulary), then benchmark on 8 questions.
# Prepare here: bash scripts/prepare_gpu_carry.sh. Usage on the device machine (carry .whl and .gpu),
# one architecture per call, logs under $OUT: bash scripts/gpu_seven_check.sh ARCH
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD:$PWD/scripts HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
for arch in "$@"; do
  ckpt=/tmp/ckpt/$arch
  python3 scripts/make_random_checkpoint.py "$arch" "$ckpt" --tokenizer .gpu/tokenizer --layers 2 2>&1 | grep -v -i warn | tail -1
  start=$(date +%s)
  python3 -m helpers.run_notebook train_math -p model "$ckpt" -p dataset_source local -p output_root /tmp/bm \
    --quiet 2>&1 | grep -E "^error|stage|steps" | head -4
  python3 -m helpers.run_notebook benchmark -p model "$ckpt" -p output_root /tmp/bm -p workbook_dir /tmp/books \
    -p max_questions 8 -p max_new_tokens 64 --quiet 2>&1 | grep -E "^error|epoch|base|workbook" | head -5
  python3 - "$arch" <<'PY'
import json, sys, glob
arch = sys.argv[1]
nb = json.load(open(glob.glob(f"/tmp/bm/train_math/{arch}-*/train_math.ipynb")[0]))
for cell in nb["cells"]:
    if "show_loss_tokens" in "".join(cell["source"]):
        text = "".join("".join(o.get("text", "")) for o in cell["outputs"])
        mask = text[text.find("[["):][:60].replace("\n", "\\n")
        start = text.rfind("\n", 0, text.find("[[")) 
        print(f"  mask: ...{text[max(0, text.find('[[') - 60):text.find('[[')]!r} {mask!r}")
m = json.load(open(glob.glob(f"/tmp/bm/train_math/{arch}-*/metrics.json")[0]))
print("  train:", m["backend"], m["n_examples"], "examples", m["train"]["steps"], "steps",
      round(m["train"]["loss_first"], 2), "->", round(m["train"]["loss_last"], 2), m["train"]["effective"], m["timings_s"])
PY
  echo "  $arch: $(( $(date +%s) - start )) s"
done
