#!/usr/bin/env bash
# Issue 20, second round: micro-batch and gradient checkpointing for the small models, against raw Unsloth
# as its notebooks set it up (2 x 4, 'unsloth' checkpointing). Results: PERFORMANCE.md, "Small models, second round".
# Prepare here: bash scripts/prepare_gpu_carry.sh. On the device machine (carry .whl and .gpu):
#   bash scripts/gpu/small_batching.sh N [N ...]      (1-2: TinyLlama; 3-4: the 135M demo step; 5: Llama 3.2 1B)
PREFIX=b ALL="" TOTAL_DEFAULT=540 CHILD_DEFAULT=240
source scripts/gpu/measure.sh "$@"
measure 1 tinyllama-1.1b --forgetting --paths repo,unsloth --steps 10 --variants 2x4:grouped,8x1:grouped
measure 2 tinyllama-1.1b --forgetting --paths repo --steps 10 --no-gc --variants 8x1:grouped,8x1:padding_free,2x4:grouped
measure 3 smollm2-135m --paths repo,unsloth --batch 8 --seq 64 --steps 30
measure 4 smollm2-135m --paths repo --batch 8 --seq 64 --steps 30 --no-gc
measure 5 llama-3.2-1b --forgetting --paths repo,unsloth --steps 10 --no-gc --variants 8x1:grouped
finish
