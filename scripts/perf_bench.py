"""Performance of the training and evaluation paths on a GPU (issue 6). Prints one table.

Random-weight checkpoints of real architectures (public config numbers, real vocabulary sizes;
speed and memory do not depend on weight values), each measurement in a fresh process:

- train/<path>: one QLoRA step (r=16, all seven projections, gradient checkpointing, bf16) on the
  same batch through this repository's path (helpers.modeling + helpers.sft.train_sft), through
  raw Unsloth (FastLanguageModel + TRL SFTTrainer, as Unsloth's notebooks do) and through plain
  transformers + peft + bitsandbytes (same SFTTrainer settings). Tokens/s is the median step after
  two warm-up steps; peak is torch's max allocated memory during training.
- generate: the benchmark questions answered one at a time vs batched through helpers.generation
  (greedy, --new-tokens new tokens).

    python scripts/perf_bench.py --archs llama-3.1-8b mistral-7b-v3 gemma-2-9b qwen-2-7b \\
        --tokenizer .gpu/tokenizer --layers 8 --out perf.json

On the device machine: source scripts/gpu_env.sh first (carry .whl and .gpu).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PATHS = ("repo", "unsloth", "plain")
H100_BF16_DENSE = 989e12  # FLOP/s, H100 SXM dense bf16 (NVIDIA datasheet; 1979e12 is with sparsity)


# ---------------------------------------------------------------- child processes (one measurement each)

def _timer():
    import torch
    from transformers import TrainerCallback

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_train_begin(self, args, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()

        def on_step_begin(self, args, state, control, **kw):
            sync()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            sync()
            self.times.append(time.perf_counter() - self.start)

    return StepTimer()


def random_rows(tokenizer, n: int, seq: int) -> list[dict]:
    """`n` rows of `seq` random token ids, loss on the second half (an answer after a prompt)."""
    import torch

    torch.manual_seed(0)
    ids = torch.randint(100, len(tokenizer) - 100, (n, seq)).tolist()
    return [{"input_ids": x, "labels": [-100] * (seq // 2) + x[seq // 2:]} for x in ids]


def _sft_args(out: str, batch: int, steps: int, seq: int, gradient_checkpointing: bool):
    from trl import SFTConfig

    return SFTConfig(output_dir=out, per_device_train_batch_size=batch, gradient_accumulation_steps=1,
                     max_steps=steps, learning_rate=2e-4, warmup_steps=0, bf16=True, optim="adamw_8bit",
                     logging_steps=1, save_strategy="no", report_to="none", max_length=seq, packing=False,
                     loss_type="nll", gradient_checkpointing=gradient_checkpointing, dataloader_num_workers=0,
                     disable_tqdm=True)


def _orca_like_rows(tokenizer, n: int, max_len: int):
    """Lengths like Orca-Math's chat-formatted examples (a few hundred tokens, long right tail):
    prompt ~ lognormal(median 90), answer ~ lognormal(median 180), cut at max_len."""
    import random

    rng, rows = random.Random(0), []
    for _ in range(n):
        prompt = min(int(rng.lognormvariate(4.5, 0.4)), max_len // 2)
        answer = min(int(rng.lognormvariate(5.2, 0.5)), max_len - prompt)
        ids = [rng.randrange(100, len(tokenizer) - 100) for _ in range(prompt + answer)]
        rows.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return rows


def child_train(path: str, folder: str, batch: int, seq: int, steps: int, short: str = "") -> dict:
    """One training measurement; with `short` ("padded" | "padding_free") the repository's path on
    Orca-like lengths instead of full-length rows, counting useful (non-padding) tokens."""
    gemma = json.load(open(os.path.join(folder, "config.json")))["model_type"].startswith("gemma")
    out, start = tempfile.mkdtemp(), time.time()
    if path == "repo":  # helpers.modeling imports Unsloth before transformers
        import dataclasses

        from datasets import Dataset

        from helpers.modeling import add_lora, load_model  # noqa: I001
        from helpers.sft import train_sft
        from helpers.tasks.instruct import TrainConfig

        model, tokenizer, info = load_model(folder, max_seq_length=seq)
        model = add_lora(model, info, r=16, alpha=16, dropout=0.0, targets=SEVEN, seed=0, gradient_checkpointing=True)
        load_s = time.time() - start
        cfg = dataclasses.replace(TrainConfig(), batch_size=batch, grad_accum=1, max_steps=steps, warmup_steps=0,
                                  save_steps=10**6, max_seq_length=seq, lora_targets=SEVEN,
                                  padding_free=short == "padding_free")
        rows = _orca_like_rows(tokenizer, batch * steps, seq) if short else random_rows(tokenizer, batch * steps, seq)
        data = Dataset.from_list(rows)
        timer = _timer()
        train_sft(model, tokenizer, data, run_dir=out, settings=cfg, backend=info.backend, resume=False,
                  callbacks=[timer])
        backend = info.backend
    else:
        if path == "unsloth":
            if gemma:  # the setting the repository's path uses (helpers.modeling.add_lora)
                os.environ["UNSLOTH_BLOCK_COMPILE"] = "0"
            import unsloth  # noqa: F401
            from unsloth import FastLanguageModel

            model, tokenizer = FastLanguageModel.from_pretrained(folder, max_seq_length=seq, dtype=None,
                                                                 load_in_4bit=True)
            model = FastLanguageModel.get_peft_model(model, r=16, lora_alpha=16, lora_dropout=0.0,
                                                     target_modules=SEVEN, bias="none", random_state=0,
                                                     use_gradient_checkpointing="unsloth", max_seq_length=seq)
        else:
            import torch
            from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
            from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

            tokenizer = AutoTokenizer.from_pretrained(folder)
            quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                       bnb_4bit_compute_dtype=torch.bfloat16)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16, quantization_config=quant,
                                                         device_map={"": 0})
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
            model = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, target_modules=SEVEN,
                                                     bias="none", task_type="CAUSAL_LM"))
        from datasets import Dataset
        from trl import SFTTrainer

        load_s = time.time() - start
        rows = random_rows(tokenizer, batch * steps, seq)  # TRL uses a `labels` column as is: answer-only loss
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        timer = _timer()
        trainer = SFTTrainer(model=model, args=_sft_args(out, batch, steps, seq, path == "plain"),
                             train_dataset=Dataset.from_list(rows), processing_class=tokenizer, callbacks=[timer])
        trainer.train()
        backend = path
    import torch

    shutil.rmtree(out, ignore_errors=True)
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None
    step = statistics.median(timer.times[2:]) if len(timer.times) > 2 else timer.times[-1]
    if short:  # useful tokens per step: the batches are all different, so total tokens over total time
        timed = timer.times[2:]
        useful = sum(len(r["input_ids"]) for r in rows[2 * batch:2 * batch + len(timed) * batch])
        return {"backend": backend, "batching": short, "useful_tokens_per_s": round(useful / sum(timed)),
                "peak_gib": peak, "steps_timed": len(timed)}
    return {"backend": backend, "load_s": round(load_s, 1), "s_per_step": round(step, 3),
            "tokens_per_s": round(batch * seq / step), "peak_gib": peak,
            "steps_timed": len(timer.times[2:])}


def child_generate(folder: str, n_single: int, new_tokens: int) -> dict:
    from helpers.generation import generate
    from helpers.modeling import load_model
    from helpers.questions import load_question_set

    model, tokenizer, info = load_model(folder, max_seq_length=2048)
    prompts = [q.question for q in load_question_set("math")]
    kw = dict(chat=True, stop_token_ids=info.stop_token_ids, max_new_tokens=new_tokens)
    generate(model, tokenizer, prompts[:2], batch_size=2, **kw)  # warm-up (kernels, caches)
    rates = {}
    for name, qs, bs in (("single", prompts[:n_single], 1), ("batched", prompts, len(prompts))):
        start = time.time()
        answers = generate(model, tokenizer, qs, batch_size=bs, **kw)
        seconds = time.time() - start
        tokens = sum(len(tokenizer.encode(a, add_special_tokens=False)) + 1 for a in answers)
        rates[name] = {"questions": len(qs), "tokens": tokens, "s": round(seconds, 1),
                       "tokens_per_s": round(tokens / seconds, 1)}
    rates["speedup"] = round(rates["batched"]["tokens_per_s"] / rates["single"]["tokens_per_s"], 1)
    return rates


# ---------------------------------------------------------------- parent

def _input_embedding_params(folder: str) -> int:
    """Parameters of the input embedding when it is not tied to the output layer (a lookup costs
    no FLOPs); 0 when tied (the matrix is still multiplied as the output layer)."""
    config = json.load(open(os.path.join(folder, "config.json")))
    text = config.get("text_config", config)
    return 0 if text.get("tie_word_embeddings", config.get("tie_word_embeddings")) else (
        text["vocab_size"] * text["hidden_size"])


def run_child(args: list[str], timeout: int) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("PERF "):
            return json.loads(line[5:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": tail[0][:300]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["llama-3.1-8b", "mistral-7b-v3", "gemma-2-9b", "qwen-2-7b"])
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--layers", type=int, default=None, help="fewer layers than the real model")
    parser.add_argument("--parts", default="train,short,generate")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--short-batch", type=int, default=8, help="batch of the short-sample measurement")
    parser.add_argument("--single", type=int, default=4, help="questions answered one at a time")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--timeout", type=int, default=400, help="seconds per measurement")
    parser.add_argument("--out", default=None, help="write all results as JSON here")
    args = parser.parse_args()

    from make_random_checkpoint import build

    results = []
    for arch in args.archs:
        folder = tempfile.mkdtemp(prefix=f"{arch}-")
        try:
            n_params = build(arch, folder, args.tokenizer, args.layers, full_vocab=True)
            flop_params = n_params - _input_embedding_params(folder)
            for part in args.parts.split(","):
                variants = {"train": args.paths.split(","), "short": ["padded", "padding_free"]}.get(part, ["repo"])
                for path in variants:
                    if part == "train":
                        child = [f"train:{path}", folder, str(args.batch), str(args.seq), str(args.steps)]
                    elif part == "short":
                        child = ["train:repo", folder, str(args.short_batch), str(args.seq), str(args.steps), path]
                    else:
                        child = ["generate", folder, str(args.single), str(args.new_tokens)]
                    row = {"arch": arch, "part": part, "path": path, "params": n_params, "flop_params": flop_params,
                           **run_child(child, args.timeout)}
                    results.append(row)
                    print("RESULT", json.dumps(row), flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"settings": vars(args), "results": results}, f, indent=1)
    print_table(results, args)


def print_table(results: list[dict], args) -> None:
    layers = f"{args.layers} layers" if args.layers else "full depth"
    print(f"\nTraining: batch {args.batch} x {args.seq} tokens, r=16, seven projections, gradient checkpointing, "
          f"bf16, {layers}; FLOPs = 6 x params x tokens (params without the input embedding); "
          f"GPU rate {H100_BF16_DENSE / 1e12:.0f} TFLOP/s dense bf16")
    print(f"{'arch':<14} {'path':<8} {'tokens/s':>9} {'peak GiB':>9} {'vs unsloth':>11} {'vs plain':>9} "
          f"{'mem/plain':>10} {'% of peak FLOPs':>16}")
    train = [r for r in results if r["part"] == "train"]
    for r in train:
        if "error" in r:
            print(f"{r['arch']:<14} {r['path']:<8} error: {r['error']}")
            continue
        ref = {x["path"]: x for x in train if x["arch"] == r["arch"] and "error" not in x}
        vs = {k: f"{r['tokens_per_s'] / ref[k]['tokens_per_s']:.2f}x" if k in ref else "-"
              for k in ("unsloth", "plain")}
        mem = f"{r['peak_gib'] / ref['plain']['peak_gib']:.0%}" if "plain" in ref else "-"
        mfu = 6 * r["flop_params"] * r["tokens_per_s"] / H100_BF16_DENSE
        print(f"{r['arch']:<14} {r['path']:<8} {r['tokens_per_s']:>9} {r['peak_gib']:>9} {vs['unsloth']:>11} "
              f"{vs['plain']:>9} {mem:>10} {mfu:>16.1%}")
    short = [r for r in results if r["part"] == "short"]
    if short:
        print(f"\nShort samples (Orca-like lengths, batch {args.short_batch}, repository path): useful tokens/s")
        print(f"{'arch':<14} {'padded':>9} {'padding-free':>13} {'gain':>6}")
        for arch in dict.fromkeys(r["arch"] for r in short):
            got = {r["path"]: r.get("useful_tokens_per_s") for r in short if r["arch"] == arch}
            gain = f"{got['padding_free'] / got['padded']:.2f}x" if all(got.values()) else "-"
            print(f"{arch:<14} {got.get('padded') or 'error':>9} {got.get('padding_free') or 'error':>13} {gain:>6}")
    gen = [r for r in results if r["part"] == "generate"]
    if gen:
        print(f"\nGeneration: greedy, {args.new_tokens} new tokens, math questions; one at a time vs all in one batch")
        print(f"{'arch':<14} {'single tok/s':>13} {'batched tok/s':>14} {'speedup':>8}")
        for r in gen:
            if "error" in r:
                print(f"{r['arch']:<14} error: {r['error']}")
            else:
                print(f"{r['arch']:<14} {r['single']['tokens_per_s']:>13} {r['batched']['tokens_per_s']:>14} "
                      f"{r['speedup']:>7}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind.startswith("train:"):
            row = child_train(kind.split(":")[1], rest[0], int(rest[1]), int(rest[2]), int(rest[3]), *rest[4:])
        else:
            row = child_generate(rest[0], int(rest[1]), int(rest[2]))
        print("PERF " + json.dumps(row), flush=True)
    else:
        main()
