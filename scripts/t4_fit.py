"""Peak GPU memory of the train notebooks' default settings on the T4 path (fp16, 4-bit), for
full-size random-weight checkpoints of the study architectures. Prints one table.

    QLORA_DTYPE=float16 python scripts/t4_fit.py llama-3.1-8b gemma-2-9b --tokenizer .gpu/tokenizer

Every training sequence is max_seq_length tokens long (the worst case), half prompt, half answer.
A T4 has 15 GiB; the target is 14.5 GiB peak reserved memory. Each architecture runs in a fresh
process (one that ran another first can start with memory it still holds). The first training step
compiles; s/step is the median of the others.
"""

# ruff: noqa: I001  (helpers before make_random_checkpoint: Unsloth must patch transformers first)
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time

from helpers.modeling import add_lora, load_model
from helpers.sft import train_sft
from helpers.tasks.instruct import TrainConfig

import torch
from make_random_checkpoint import build
from perf_bench import random_rows, run_child, step_timer


def measure(arch: str, tokenizer_dir: str, steps: int) -> dict:
    folder = tempfile.mkdtemp(prefix=f"{arch}-")
    try:
        return _measure(arch, folder, tokenizer_dir, steps)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # 16-18 GB each


def _measure(arch: str, folder: str, tokenizer_dir: str, steps: int) -> dict:
    build(arch, folder, tokenizer_dir, full_vocab=True)
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    cfg = dataclasses.replace(TrainConfig(), max_steps=steps, save_steps=10_000)
    start = time.time()
    model, tokenizer, info = load_model(folder, max_seq_length=cfg.max_seq_length)
    model = add_lora(model, info, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                     targets=cfg.lora_targets, seed=0, gradient_checkpointing=cfg.gradient_checkpointing)
    load_s, load_peak = time.time() - start, torch.cuda.max_memory_reserved() / 2**30
    from datasets import Dataset

    data = Dataset.from_list(random_rows(tokenizer, 32, cfg.max_seq_length))
    torch.cuda.reset_peak_memory_stats()
    timer = step_timer()  # step times: the first one compiles, the rest are the steady rate
    result = train_sft(model, tokenizer, data, run_dir=folder, settings=cfg, backend=info.backend, resume=False,
                       callbacks=[timer])
    row = {"arch": arch, "backend": info.backend, "dtype": info.dtype, "load_s": round(load_s, 1),
           "load_peak_gib": round(load_peak, 2),
           "train_peak_alloc_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
           "train_peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
           "first_step_s": round(timer.times[0], 1),
           "s_per_step": round(statistics.median(timer.times[1:] or timer.times), 2), "loss_last": result["loss_last"],
           "effective": result["effective"]}
    return row


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:  # one architecture in this process: arch, tokenizer, steps
        print("PERF " + json.dumps(measure(sys.argv[2], sys.argv[3], int(sys.argv[4]))), flush=True)
        raise SystemExit
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archs", nargs="+")
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per architecture")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("no CUDA GPU here: t4_fit.py measures GPU memory (run it on the GPU machine, PERFORMANCE.md)")
    rows = []
    for arch in args.archs:  # each in a fresh process: one run's cached memory must not count in the next
        got = run_child([arch, args.tokenizer, str(args.steps)], args.timeout, script=__file__)
        if "error" in got:  # one architecture's failure must not hide the others' numbers
            print(f"{arch}: FAILED {got['error']}", flush=True)
            continue
        rows.append(got)
        print(rows[-1], flush=True)
    cfg = TrainConfig()
    print(f"\nbatch {cfg.batch_size} x accum {cfg.grad_accum}, {cfg.max_seq_length} tokens, r={cfg.lora_r}, "
          f"gradient checkpointing {cfg.gradient_checkpointing}")
    print(f"{'arch':<14} {'dtype':<8} {'load s':>7} {'load GiB':>9} {'train alloc GiB':>16} {'train reserved GiB':>19} "
          f"{'first s':>8} {'s/step':>7} {'< 14.5':>7}")
    for r in rows:
        ok = "yes" if max(r["train_peak_reserved_gib"], r["load_peak_gib"]) < 14.5 else "NO"
        print(f"{r['arch']:<14} {r['dtype']:<8} {r['load_s']:>7} {r['load_peak_gib']:>9} "
              f"{r['train_peak_alloc_gib']:>16} {r['train_peak_reserved_gib']:>19} {r['first_step_s']:>8} "
              f"{r['s_per_step']:>7} {ok:>7}")
