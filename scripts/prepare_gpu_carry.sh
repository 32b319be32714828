#!/usr/bin/env bash
# Fills .whl/ and .gpu/ for the device machine (no internet there), as the GPU checks of docs/findings.md used:
#   - ../shared/gpu/fetch_wheels.sh: unsloth, unsloth_zoo, bitsandbytes, trl, datasets, ...
#   - bitsandbytes slimmed to its CUDA 13 and CPU libraries (42 MB -> ~8 MB; the image has CUDA 13)
#   - papermill + ipykernel + openpyxl + rapidfuzz and what they need that the image lacks
#   - .gpu/tokenizer: the embedded model's tokenizer, for random-weight checkpoints
# Both folders must be git-ignored (.git/info/exclude) and passed as carry: [".whl", ".gpu"].
# Run from the repository root after `make install`.
set -euo pipefail
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || printf "/.whl/\n/.gpu/\n" >> .git/info/exclude
bash ../shared/gpu/fetch_wheels.sh .whl
tmp=$(mktemp -d)
python3 -m zipfile -e .whl/bitsandbytes-0.50.2-*.whl "$tmp"
for so in "$tmp"/bitsandbytes/libbitsandbytes_*.so; do
  case "$(basename "$so")" in libbitsandbytes_cpu.so|libbitsandbytes_cuda130.so) ;; *)
    rm "$so"; grep -v "^bitsandbytes/$(basename "$so")," "$tmp"/bitsandbytes-*.dist-info/RECORD > "$tmp/R"
    mv "$tmp/R" "$tmp"/bitsandbytes-*.dist-info/RECORD ;;
  esac
done
wheel=$(ls "$PWD"/.whl/bitsandbytes-0.50.2-*.whl); rm "$wheel"; (cd "$tmp" && python3 -m zipfile -c "$wheel" ./*)
rm -rf "$tmp"
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl papermill==2.7.0 ipykernel openpyxl==3.1.5 rapidfuzz==3.14.6
# already in the device image (KINDS.md), or not needed (debugpy: the kernel runs without it)
for p in attrs certifi charset_normalizer click idna packaging psutil pygments python_dateutil pyyaml PyYAML \
         requests tqdm typing_extensions urllib3 tzdata debugpy; do rm -f .whl/${p}-*.whl; done
mkdir -p .gpu/tokenizer
.venv/bin/python -c "from helpers.modeling import embedded_checkpoint; from helpers.registry import resolve_model; print(embedded_checkpoint(resolve_model('smollm2-135m')))" \
  | xargs -I{} cp {}/tokenizer.json {}/tokenizer_config.json .gpu/tokenizer/
du -sh .whl .gpu
