#!/usr/bin/env bash
# Issue 20, fourth and fifth rounds: the 135M addition demo with Unsloth's per-layer CUDA graphs (the addition
# notebook's cuda_graphs: batches padded to multiples of 64 tokens, one shape for its rows), then the optimizer,
# bf16 weights and checkpoints kept on the GPU. Results: PERFORMANCE.md, "Small models, fourth round" and "fifth round". Prepare here: bash scripts/prepare_gpu_carry.sh. On the device machine (carry
# .whl and .gpu):
#   bash scripts/gpu/demo_graphs.sh N [N ...]
#   1: perf_bench.py --demo (the demo's real training rows and settings): the repository's path as shipped and
#      with CUDA graphs, raw Unsloth as its notebooks set it up (2 x 4), one process each
#   2-3: notebooks/addition.ipynb with the demo preset on the same random-weight SmolLM2-135M:
#      2 with cuda_graphs true, 3 as shipped; metrics.json and loss_curve.json come back as nb_N_*.json
#   4: TinyLlama at the forgetting study's defaults (8 x 1, gradient checkpointing): as shipped, with cuda_graphs
#      (batches padded to 64-token multiples), raw Unsloth
#   5-6: the optimizer (`optim`): bitsandbytes' 8-bit AdamW (auto) against torch's fused AdamW, with CUDA graphs:
#      5 the demo's rows (as 1), 6 TinyLlama at the forgetting defaults (as 4)
#   7: TinyLlama at the forgetting defaults on bf16 weights (load_in_4bit = False: a 1.1B model fits a T4 without
#      quantization), as shipped and with cuda_graphs
#   8: TinyLlama at the forgetting defaults with the saved layer inputs kept on the GPU (--gc-on-gpu: Unsloth's
#      plain checkpointing instead of its offloading one, which it picks at max_seq_length 1024), as shipped and
#      with cuda_graphs
#   9-10: TinyLlama at 64 rows a step without checkpointing (the third round's largest batch that fits 80 GB),
#      9 on bf16 weights, 10 on 4-bit ones: the share of dense bf16 where the GPU, not the host, sets the pace
#   11-12: TinyLlama at the forgetting defaults without CUDA graphs, one call: 11 as shipped before session 16
#      (8-bit AdamW, checkpoints offloaded), 12 with both of session 16's changes (fused AdamW, checkpoints on
#      the GPU)
#   13: TinyLlama at 64 rows a step without checkpointing (as 10) on --pool 50000 rows: steps of the study's
#      50,000-row run in its grouped order (perf_bench.pool_lengths), not 640 rows grouped among themselves
#   14: TinyLlama at the forgetting defaults on --pool 50000 rows: as shipped, with cuda_graphs, raw Unsloth
#   15: as 13 on bf16 weights (as 9): the "bf16 path"
# They run in the order below (13 and 15 before 11 and 12: what decides the 30% target first), the numbers named
# only choosing which.
PREFIX=d ALL="1 2 3 4 5 6 7 8 9 10 11 12 13 14 15" TOTAL_DEFAULT=560 CHILD_DEFAULT=300  # raw Unsloth took over 150 s on the demo rows
source scripts/gpu/measure.sh "$@"
measure 1 smollm2-135m --demo --paths repo,unsloth --compile unsloth,graphs

source scripts/gpu/addition_notebook.sh
notebook() {  # notebook N OVERRIDES...: the demo notebook in what is left (addition_notebook), records to $OUT
  local n=$1
  shift
  [[ $wanted == *" $n "* ]] || return 0
  if [ "$(left)" -lt 90 ]; then echo "skipped notebook ($n): out of time"; return; fi
  addition_notebook "$n" "$(( $(left) - 5 ))" "$@"
}
notebook 2 -p cuda_graphs true
notebook 3
measure 4 tinyllama-1.1b --forgetting --steps 10 --paths repo,unsloth --compile unsloth,graphs
measure 5 smollm2-135m --demo --paths repo --compile graphs --optim adamw_torch_fused,auto
measure 6 tinyllama-1.1b --forgetting --steps 10 --paths repo --compile graphs --optim adamw_torch_fused,auto
measure 7 tinyllama-1.1b --forgetting --steps 10 --paths repo --compile graphs,unsloth --bf16-weights
measure 8 tinyllama-1.1b --forgetting --steps 10 --paths repo --compile graphs,unsloth --gc-on-gpu
measure 9 tinyllama-1.1b --forgetting --steps 10 --paths repo --no-gc --variants 64x1:grouped --bf16-weights
measure 10 tinyllama-1.1b --forgetting --steps 10 --paths repo --no-gc --variants 64x1:grouped
measure 13 tinyllama-1.1b --forgetting --steps 10 --paths repo --no-gc --variants 64x1:grouped --pool 50000
measure 15 tinyllama-1.1b --forgetting --steps 10 --paths repo --no-gc --variants 64x1:grouped --pool 50000 --bf16-weights
measure 11 tinyllama-1.1b --forgetting --steps 10 --paths repo --optim adamw_8bit
measure 12 tinyllama-1.1b --forgetting --steps 10 --paths repo --optim adamw_torch_fused --gc-on-gpu
measure 14 tinyllama-1.1b --forgetting --steps 10 --paths repo,unsloth --compile unsloth,graphs --pool 50000
finish
