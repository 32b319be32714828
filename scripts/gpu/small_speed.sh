#!/usr/bin/env bash
# Issue 20's GPU measurement: how fast the small models train, this repository's path against raw
# Unsloth set up as its notebooks do, and where a step's wall time goes (perf_bench --breakdown).
# Random-weight checkpoints at full depth (public config numbers); in this order, as long as the
# time lasts (each measurement gets what is left of TOTAL_S, a later one is skipped and says so):
#   1. tinyllama-1.1b at the forgetting study's defaults on Alpaca-like lengths (perf_bench --forgetting)
#   2. smollm2-135m, the demo's model: the step, batch 8 x 64 tokens, 30 steps
#   3. llama-3.2-1b like 1.
#   4. tinyllama-1.1b, the repository's path in other batchings of the same 8 examples a step
# Writes $OUT/small_<n>.json and .log, then prints one table (perf_bench --summarize). Measurements
# left out for time can run in a second call: name their numbers (e.g. `... scripts/gpu/small_speed.sh 3 4`).
# Prepare here: bash scripts/prepare_gpu_carry.sh. On the device machine (carry .whl and .gpu):
#   bash scripts/gpu/small_speed.sh [N ...]
PREFIX=small ALL="1 2 3 4" TOTAL_DEFAULT=510 CHILD_DEFAULT=240
source scripts/gpu/measure.sh "$@"

measure 1 tinyllama-1.1b --forgetting --paths repo,unsloth --steps 10
measure 2 smollm2-135m --paths repo,unsloth --batch 8 --seq 64 --steps 30
measure 3 llama-3.2-1b --forgetting --paths repo,unsloth --steps 10
measure 4 tinyllama-1.1b --forgetting --paths repo --steps 10 --variants 8x1:grouped,8x1:padding_free,4x2:grouped
finish
