# Sourced after scripts/gpu_env.sh by addition_check.sh and demo_graphs.sh:
#   addition_notebook TAG SECONDS [-p NAME VALUE ...]
# runs notebooks/addition.ipynb with the demo preset (and the overrides) on a random-weight SmolLM2-135M (Llama
# architecture, public config numbers, the embedded model's tokenizer; built once in /tmp/ckpt), for at most
# SECONDS; copies the run's metrics.json, loss_curve.json, run.json and executed notebook to $OUT as
# nb_TAG_<name>, and prints the training summary, the timings and Unsloth's banner lines. Returns 1 when the
# run left no folder.
addition_notebook() {
  local tag=$1 limit=$2 log="$OUT/nb_$1.log" ckpt=/tmp/ckpt/smollm2-135m run t0
  shift 2
  [ -d "$ckpt" ] || python3 scripts/make_random_checkpoint.py smollm2-135m "$ckpt" --tokenizer .gpu/tokenizer \
    --full-vocab > "$log" 2>&1
  t0=$(date +%s)
  timeout -k 10 "$limit" python3 -m helpers.run_notebook addition --preset demo -p model "$ckpt" \
    -p output_root "/tmp/bm_$tag" "$@" --quiet >> "$log" 2>&1 || echo "error: notebook ($tag), see $(basename "$log")"
  echo "notebook ($tag) $* wall time: $(( $(date +%s) - t0 )) s"
  run=$(ls -d /tmp/bm_"$tag"/addition/*/ 2>/dev/null | head -n 1)
  [ -n "$run" ] || return 1
  for name in metrics.json loss_curve.json run.json addition.ipynb; do
    cp "$run/$name" "$OUT/nb_${tag}_$name" 2>/dev/null
  done
  python3 - "$run" <<'PY'
import json, os, sys
m = json.load(open(sys.argv[1] + "/metrics.json"))
t = m["train"]
print("  backend:", m["backend"], "| train:", {k: t[k] for k in ("steps", "loss_first", "loss_last", "train_loss",
      "runtime_s")}, "| s/step %.4f" % (t["runtime_s"] / t["steps"]), "| effective:", t["effective"])
print("  timings_s:", m["timings_s"])
notebook = sys.argv[1] + "/addition.ipynb"
keys = ("Unsloth 2026", "Batch size", "Total batch", "Trainable", "Num examples", "padding", "Padding")
for cell in json.load(open(notebook))["cells"] if os.path.exists(notebook) else []:
    for out in cell.get("outputs", []):
        for line in "".join(out.get("text", "")).splitlines():
            if any(k in line for k in keys):
                print("  |", line.strip())
PY
}
