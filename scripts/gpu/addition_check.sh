#!/usr/bin/env bash
# The addition notebook through the Unsloth path on a GPU machine with no internet (device tool):
# installs the carried wheels, builds a random-weight SmolLM2-135M (Llama architecture, public
# config numbers) with the embedded model's tokenizer, runs notebooks/addition.ipynb with the demo
# preset on it, and copies the run's records to $OUT. Carry .whl (bash ../shared/gpu/fetch_wheels.sh
# plus papermill/ipykernel/openpyxl/rapidfuzz wheels) and .gpu/tokenizer.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 scripts/make_random_checkpoint.py smollm2-135m /tmp/ckpt-smollm2 --tokenizer .gpu/tokenizer
start=$(date +%s)
python3 -m helpers.run_notebook addition --preset demo -p model /tmp/ckpt-smollm2 -p output_root /tmp/bm \
  -p gradient_checkpointing true "$@" --quiet
echo "notebook wall time: $(( $(date +%s) - start )) s"
run=$(ls -d /tmp/bm/addition/*/)
ls -la "$run/adapter"
cp "$run/metrics.json" "$run/run.json" "$run/addition.ipynb" "$OUT/"
python3 - "$run" <<'PY'
import json, sys
m = json.load(open(sys.argv[1] + "/metrics.json"))
print("backend:", m["backend"], "| train:", {k: m["train"][k] for k in ("steps", "loss_first", "loss_last", "runtime_s", "effective")})
print("timings_s:", m["timings_s"])
nb = json.load(open(sys.argv[1] + "/addition.ipynb"))
keys = ("Unsloth 2026", "Batch size", "Total batch", "Trainable", "Num examples", "padding", "Padding")
for cell in nb["cells"]:
    for out in cell.get("outputs", []):
        for line in "".join(out.get("text", "")).splitlines():
            if any(k in line for k in keys):
                print("  |", line.strip())
PY
