#!/usr/bin/env bash
# Issue 20, third round: torch.compile and CUDA graphs on the repository's training path (perf_bench --compile,
# --pad-multiple), and the batch it takes to reach 30% of the GPU's dense bf16 rate. Results: PERFORMANCE.md,
# "Small models, third round". Prepare here: bash scripts/prepare_gpu_carry.sh. On the device machine (carry
# .whl and .gpu):   bash scripts/gpu/small_compile.sh N [N ...]
#   1-4: TinyLlama at the forgetting study's settings (1: 8/32/64 rows with and without CUDA graphs;
#        2: as shipped, no buckets, and raw Unsloth; 3: with gradient checkpointing; 4: the whole model compiled)
#   5-6: the 135M demo step (5: as shipped, CUDA graphs, raw Unsloth; 6: with gradient checkpointing)
#   7-8: TinyLlama again (7: CUDA graphs over 256-token buckets after two warm passes; 8: 64 and 128 rows, no buckets)
PREFIX=c ALL="" TOTAL_DEFAULT=540 CHILD_DEFAULT=200
source scripts/gpu/measure.sh "$@"
tl=(tinyllama-1.1b --forgetting --steps 10)
measure 1 "${tl[@]}" --paths repo --no-gc --pad-multiple 64 --compile unsloth,graphs \
  --variants 8x1:grouped,32x1:grouped,64x1:grouped
measure 2 "${tl[@]}" --paths repo,unsloth --no-gc --variants 8x1:grouped
measure 3 "${tl[@]}" --paths repo --pad-multiple 64 --compile unsloth,graphs --variants 8x1:grouped
measure 4 "${tl[@]}" --paths repo --no-gc --compile model --variants 8x1:grouped
sm=(smollm2-135m --batch 8 --seq 64 --steps 30)
measure 5 "${sm[@]}" --paths repo,unsloth --no-gc --compile unsloth,graphs
measure 6 "${sm[@]}" --paths repo --compile graphs
measure 7 "${tl[@]}" --paths repo --no-gc --pad-multiple 256 --warm-passes 2 --compile unsloth,graphs \
  --variants 8x1:grouped
measure 8 "${tl[@]}" --paths repo --no-gc --variants 64x1:grouped,128x1:grouped
finish
