#!/usr/bin/env bash
# The addition notebook through the Unsloth path on a GPU machine with no internet (device tool): the demo
# preset with gradient checkpointing on a random-weight SmolLM2-135M (scripts/gpu/addition_notebook.sh); its
# records come back in $OUT as nb_check_*. Prepare here: bash scripts/prepare_gpu_carry.sh; carry .whl and .gpu.
#   bash scripts/gpu/addition_check.sh [-p NAME VALUE ...]
set -uo pipefail
source scripts/gpu_env.sh || exit 1
source scripts/gpu/addition_notebook.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
addition_notebook check "${LIMIT_S:-540}" -p gradient_checkpointing true "$@"
