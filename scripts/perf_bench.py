"""Performance of the training and evaluation paths on a GPU (issue 6). Prints one table.

Random-weight checkpoints of real architectures (public config numbers, real vocabulary sizes;
speed and memory do not depend on weight values), each path in a fresh process:

- train/<path>: one QLoRA step (r=16, all seven projections, gradient checkpointing, bf16) on the
  same batch through this repository's path (helpers.modeling + helpers.sft.train_sft), through
  raw Unsloth (FastLanguageModel + TRL SFTTrainer, as Unsloth's notebooks do) and through plain
  transformers + peft + bitsandbytes (same SFTTrainer settings). Tokens/s is the median step after
  two warm-up steps; peak is torch's max allocated memory during training.
- short: the repository's path (one process) on Orca-like lengths, padded, length-grouped and
  padding-free over the same rows (useful tokens/s).
- the floor: what a QLoRA step of the checkpoint holds before any activation (NF4 weights, bf16
  embeddings, fp32 adapters with gradients and 8-bit Adam states), counted from its config;
  `--memory-floor` prints it for the public configs without a GPU.
- generate: the benchmark questions answered one at a time, at the benchmark notebook's default
  batch size and all in one batch through helpers.generation (greedy, exactly --new-tokens tokens);
  `generate_graphs` the same with Unsloth's CUDA-graph decoding step; `--profile` adds where a
  decoding step's time goes (torch.profiler: GPU-busy time against wall time, top kernels).

`--rounds N` measures training N times, each round starting with another path (the first child
after the checkpoint build compiles with cold caches), and reports the median.

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

def step_timer(model=None):
    """Step times (CUDA-synchronised) and, with `model`, the useful (non-padding) tokens of each step:
    the trainer shuffles the rows, so they are counted where the batch meets the model."""
    import torch
    from transformers import TrainerCallback

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.tokens, self.counting, self.computed = [], [], 0, 0
            self.hook = model.register_forward_pre_hook(self.count, with_kwargs=True) if model is not None else None

        def count(self, module, args, kwargs):
            mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids", args[0] if args else None)
            self.counting += int(mask.sum()) if mask is not None else ids.numel()
            self.computed += ids.numel()  # with the padding

        def on_train_begin(self, args, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()

        def on_step_begin(self, args, state, control, **kw):
            sync()
            self.counting, self.start = 0, time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            sync()
            self.times.append(time.perf_counter() - self.start)
            self.tokens.append(self.counting)

        def on_train_end(self, args, state, control, **kw):
            if self.hook is not None:
                self.hook.remove()

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


def orca_lengths(n: int, max_len: int, seed: int = 0) -> list[tuple[int, int]]:
    """(prompt, answer) token counts like Orca-Math's chat-formatted examples (a few hundred tokens,
    long right tail): prompt ~ lognormal(median 90), answer ~ lognormal(median 180), cut at max_len."""
    import random

    rng, out = random.Random(seed), []
    for _ in range(n):
        prompt = min(int(rng.lognormvariate(4.5, 0.4)), max_len // 2)
        out.append((prompt, min(int(rng.lognormvariate(5.2, 0.5)), max_len - prompt)))
    return out


def _orca_like_rows(tokenizer, n: int, max_len: int):
    """Random token ids at orca_lengths, loss on the answer."""
    import random

    rng, rows = random.Random(1), []
    for prompt, answer in orca_lengths(n, max_len):
        ids = [rng.randrange(100, len(tokenizer) - 100) for _ in range(prompt + answer)]
        rows.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return rows


def padding_overhead(lengths: list[int], batch: int, grouped: bool, seed: int = 0) -> float:
    """Tokens a padded pass over `lengths` computes per useful token, in batches of `batch`: in random
    order, or in the training's length-grouped order (`grouped`: helpers.sft.GroupedSampler)."""
    import torch

    from helpers.sft import GroupedSampler

    order = (list(GroupedSampler(lengths, batch, seed)) if grouped
             else torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed)).tolist())
    padded = sum(max(lengths[i] for i in order[k:k + batch]) * len(order[k:k + batch])
                 for k in range(0, len(order), batch))
    return padded / sum(lengths)


def print_padding_table(n: int = 10_000, max_len: int = 1024) -> None:
    """The padding each batching carries on Orca-like lengths: the most that removing it can gain."""
    lengths = [p + a for p, a in orca_lengths(n, max_len)]
    print(f"Padded tokens per useful token, {n} Orca-like lengths (mean {sum(lengths) / n:.0f}, cut at {max_len})")
    print(f"{'batch':>5} {'random order':>13} {'length-grouped':>15} {'ceiling of grouping':>20}")
    for batch in (2, 8, 32):
        rand, grouped = padding_overhead(lengths, batch, False), padding_overhead(lengths, batch, True)
        print(f"{batch:>5} {rand:>13.2f} {grouped:>15.3f} {rand / grouped:>19.2f}x")


# bitsandbytes NF4 with double quantisation (blocksize 64): 4 bits a weight, an 8-bit absmax per 64
# weights, an fp32 scale per 256 absmax values.
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
ADAPTER_BYTES = 4 + 4 + 2  # fp32 adapter weight (helpers.sft.keep_adapters_fp32), fp32 gradient, 8-bit Adam m and v


def memory_floor(config, r: int = 16) -> dict:
    """What a QLoRA step holds before any activation, for a transformers `config`: the weights as
    bitsandbytes stores them (every Linear but lm_head in NF4, the rest bf16) and the r-rank adapters
    on the seven projections with their gradients and optimizer states (counted on a meta-device model).
    Also `flop_params`: the parameters doing matrix work, i.e. without an untied input embedding (a
    lookup; a tied one is still multiplied as the output layer)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    quantized = adapters = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head"):
            quantized += module.weight.numel()
            if name.rsplit(".", 1)[-1] in SEVEN:
                adapters += r * (module.in_features + module.out_features)
    total = sum(p.numel() for p in model.parameters())  # tied embeddings once
    embedding, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    weights = quantized * NF4_BYTES + (total - quantized) * 2
    return {"params": total, "flop_params": total - (0 if embedding is head else embedding.numel()),
            "quantized": quantized, "adapter_params": adapters, "weights_gib": weights / 2**30,
            "adapters_gib": adapters * ADAPTER_BYTES / 2**30,
            "floor_gib": (weights + adapters * ADAPTER_BYTES) / 2**30}


def public_config(arch: str):
    """The architecture's public config numbers with its real vocabulary (scripts/make_random_checkpoint.py)."""
    from make_random_checkpoint import ARCHITECTURES, VOCAB
    from transformers import AutoConfig

    numbers = dict(ARCHITECTURES[arch])
    return AutoConfig.for_model(numbers.pop("model_type"), vocab_size=VOCAB[arch], **numbers)


def print_memory_floor(archs: list[str], tokenizer_dir: str | None = None) -> None:
    """With `tokenizer_dir`, for the random checkpoints as built with it (their embedding rows)."""
    from make_random_checkpoint import arch_tokenizer, full_vocab_size

    print("GiB a QLoRA step holds before activations (r=16, seven projections; NF4 weights, bf16 embeddings, "
          "fp32 adapters + gradients + 8-bit Adam)")
    print(f"{'arch':<14} {'vocab':>7} {'weights':>8} {'adapters':>9} {'floor':>7}")
    for arch in archs:
        config = public_config(arch)
        if tokenizer_dir:
            config.vocab_size = full_vocab_size(arch, arch_tokenizer(arch, tokenizer_dir))
        f = memory_floor(config)
        print(f"{arch:<14} {config.vocab_size:>7} {f['weights_gib']:>8.2f} {f['adapters_gib']:>9.2f} "
              f"{f['floor_gib']:>7.2f}")


def _result(timer, batch: int, seq: int, short: str, load_s: float, backend: str) -> dict:
    import torch

    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None
    if short:  # every step of one pass over the same rows: the batchings see the same examples in all
        return {"backend": backend, "batching": short,
                "useful_tokens_per_s": round(sum(timer.tokens) / sum(timer.times)), "useful_tokens": sum(timer.tokens),
                "computed_per_useful": round(timer.computed / sum(timer.tokens), 3),
                "peak_gib": peak, "steps_timed": len(timer.times), "step_s": [round(t, 3) for t in timer.times]}
    timed = timer.times[2:] or timer.times[-1:]
    step = statistics.median(timed)
    return {"backend": backend, "load_s": round(load_s, 1), "first_step_s": round(timer.times[0], 1),
            "s_per_step": round(step, 3), "tokens_per_s": round(batch * seq / step), "peak_gib": peak,
            "steps_timed": len(timed), "step_s": [round(t, 3) for t in timer.times]}


# Each short batching sets both switches: the training default groups by length.
SHORT = {"padded": {"padding_free": False, "group_by_length": False},
         "grouped": {"padding_free": False, "group_by_length": True},
         "padding_free": {"padding_free": True, "group_by_length": False}}


def child_repo(folder: str, batch: int, seq: int, steps: int, short_batch: int, part: str = "train",
               short_steps: int = 40) -> dict:
    """The repository's path (helpers.modeling + helpers.sft.train_sft, as the notebooks run):
    full-length rows (`part` "train"), or Orca-like lengths ("short") padded in random order, padded
    in length-grouped batches and padding-free (useful tokens/s). Each short batching runs one pass over
    the same `short_batch` x `short_steps` rows twice and times the second: a shorter warm-up left
    compiles for new shapes in the timed pass (H200: a 16 s step in 40), and timing only some steps
    would compare different examples (grouped steps hold similar lengths, some all long). It groups
    within mega-batches of min(short_steps / 4, 50) steps (a long run: 50)."""
    import dataclasses

    from datasets import Dataset

    from helpers.modeling import add_lora, load_model  # noqa: I001  (imports Unsloth before transformers)
    from helpers.sft import train_sft
    from helpers.tasks.instruct import TrainConfig

    start = time.time()
    model, tokenizer, info = load_model(folder, max_seq_length=seq)
    model = add_lora(model, info, r=16, alpha=16, dropout=0.0, targets=SEVEN, seed=0, gradient_checkpointing=True)
    load_s, out = time.time() - start, {}
    runs = [("train", "", batch, steps, {})] if part == "train" else []
    if part == "short":
        for k, v in SHORT.items():  # the warm-up is the same pass: every shape it will time is compiled
            runs += [(f"warmup:{k}", k, short_batch, short_steps, v), (k, k, short_batch, short_steps, v)]
    for name, short, n, n_steps, overrides in runs:
        run_dir = tempfile.mkdtemp()
        cfg = dataclasses.replace(TrainConfig(), batch_size=n, grad_accum=1, max_steps=n_steps, warmup_steps=0,
                                  save_steps=10**6, max_seq_length=seq, lora_targets=SEVEN, **overrides)
        rows = _orca_like_rows(tokenizer, n * n_steps, seq) if short else random_rows(tokenizer, n * n_steps, seq)
        timer = step_timer(model)
        try:
            report = train_sft(model, tokenizer, Dataset.from_list(rows), run_dir=run_dir, settings=cfg,
                               backend=info.backend, resume=False, callbacks=[timer])
            if not name.startswith("warmup:"):
                out[name] = {**_result(timer, n, seq, short, load_s, info.backend),
                             "padding_free_used": report["effective"]["padding_free"],
                             "sampling": report["effective"]["sampling"]}
        except Exception as err:  # one measurement's failure must not hide the others
            out[name] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
        shutil.rmtree(run_dir, ignore_errors=True)
    return out


def child_train(path: str, folder: str, batch: int, seq: int, steps: int) -> dict:
    """One training measurement of raw Unsloth or plain transformers + peft + bitsandbytes."""
    gemma = json.load(open(os.path.join(folder, "config.json")))["model_type"].startswith("gemma")
    out, start = tempfile.mkdtemp(), time.time()
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
    timer = step_timer()
    trainer = SFTTrainer(model=model, args=_sft_args(out, batch, steps, seq, path == "plain"),
                         train_dataset=Dataset.from_list(rows), processing_class=tokenizer, callbacks=[timer])
    trainer.train()
    shutil.rmtree(out, ignore_errors=True)
    return _result(timer, batch, seq, "", load_s, path)


def child_generate(folder: str, n_single: int, new_tokens: int, profile: bool = False) -> dict:
    """Exactly `new_tokens` per answer (min_new_tokens: random weights would stop at random lengths,
    and a batch runs as long as its longest answer), one at a time, at the benchmark notebook's
    default batch size (0: as many as memory holds), and all questions in one batch."""
    from helpers.generation import auto_batch_size, encode_prompts, generate
    from helpers.modeling import load_model
    from helpers.questions import load_question_set
    from helpers.tasks.instruct import BenchmarkConfig

    model, tokenizer, info = load_model(folder, max_seq_length=2048)
    prompts = [q.question for q in load_question_set("math")]
    kw = dict(chat=True, stop_token_ids=info.stop_token_ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    generate(model, tokenizer, prompts[:2], batch_size=2, **kw)  # warm-up (kernels, caches)
    rates, default = {}, BenchmarkConfig().eval_batch_size  # 0: auto, as the notebook runs
    chosen = default or auto_batch_size(model, encode_prompts(tokenizer, prompts, chat=True), new_tokens)
    for name, qs, bs in (("single", prompts[:n_single], 1), ("default_batch", prompts, default),
                         ("one_batch", prompts, len(prompts))):
        start = time.time()
        answers = generate(model, tokenizer, qs, batch_size=bs, **kw)
        seconds = time.time() - start
        tokens = len(answers) * new_tokens
        rates[name] = {"questions": len(qs), "batch_size": bs or chosen, "tokens": tokens, "s": round(seconds, 1),
                       "tokens_per_s": round(tokens / seconds, 1)}
    for name in ("default_batch", "one_batch"):
        rates[name]["speedup"] = round(rates[name]["tokens_per_s"] / rates["single"]["tokens_per_s"], 1)
    if profile:
        rates["profile"] = {str(bs): _profile_decode(model, tokenizer, prompts[:bs], kw) for bs in (1, len(prompts))}
    return rates


def _profile_decode(model, tokenizer, prompts: list[str], kw: dict, steps: int = 16) -> dict:
    """Where a decoding step's time goes at one batch size: wall and GPU milliseconds per new token,
    and the GPU kernels that take most of it (torch.profiler over `steps` new tokens, the prefill
    counted as one of them; the profiler's own cost inflates the wall time, not the GPU time)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from helpers.generation import generate

    kw = {**kw, "max_new_tokens": steps, "min_new_tokens": steps}
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.time()
        generate(model, tokenizer, prompts, batch_size=len(prompts), **kw)
        torch.cuda.synchronize()
        wall = time.time() - start
    events = [e for e in prof.key_averages() if str(e.device_type).endswith("CUDA")]  # kernels, not CPU ops
    gpu_us = sum(e.self_device_time_total for e in events)
    top = sorted(events, key=lambda e: -e.self_device_time_total)[:8]
    return {"batch": len(prompts), "wall_ms_per_token": round(1e3 * wall / steps, 2),
            "gpu_ms_per_token": round(gpu_us / 1e3 / steps, 2),
            "top_kernels": [[e.key[:70], round(e.self_device_time_total / 1e3 / steps, 3), e.count // steps]
                            for e in top]}


# ---------------------------------------------------------------- parent

def run_child(args: list[str], timeout: int, cold: bool = False, env_extra: dict | None = None,
              script: str = __file__) -> dict:
    """One measurement in a fresh process (`script --child ARGS`, which prints its result on a line
    "PERF <json>"); with `cold` it gets empty Inductor and Unsloth compile caches (a first run on a
    new machine) instead of the ones the earlier children filled."""
    cmd, env, fresh = [sys.executable, script, "--child", *args], {**os.environ, **(env_extra or {})}, None
    if cold:
        fresh = tempfile.mkdtemp(prefix="compile-cache-")
        env.update(TORCHINDUCTOR_CACHE_DIR=os.path.join(fresh, "inductor"),
                   UNSLOTH_COMPILE_LOCATION=os.path.join(fresh, "unsloth"))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    finally:
        if fresh:
            shutil.rmtree(fresh, ignore_errors=True)
    for line in proc.stdout.splitlines():
        if line.startswith("PERF "):
            return json.loads(line[5:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": tail[0][:300]}


def _train_rows(folder: str, order: list[str], args, repo_part: str = "train") -> list[dict]:
    """`repo_part` "train": full-length rows through every path in `order`; "short": the repository's
    path alone, the short samples in each batching."""
    rows = []
    for path in order:
        if path == "repo":
            got = run_child(["repo", folder, str(args.batch), str(args.seq), str(args.steps), str(args.short_batch),
                             repo_part, str(args.short_steps)], args.timeout, args.cold)
            if "error" in got:
                got = dict.fromkeys(["train"] if repo_part == "train" else SHORT, got)
            rows += [{"part": "train", "path": "repo", **v} if k == "train" else {"part": "short", "path": k, **v}
                     for k, v in got.items()]
        else:
            rows.append({"part": "train", "path": path, **run_child(
                [f"train:{path}", folder, str(args.batch), str(args.seq), str(args.steps)], args.timeout, args.cold)})
    return rows


def _generate_row(folder: str, part: str, args) -> dict:
    """`generate`, or `generate_graphs`: the same with Unsloth's CUDA-graph decoding step
    (UNSLOTH_DECODE_CUDA_GRAPHS=1; off for plain generate() calls by default)."""
    env = {"UNSLOTH_DECODE_CUDA_GRAPHS": "1"} if part == "generate_graphs" else {}
    return {"part": "generate", "path": "repo", "cuda_graphs": bool(env), **run_child(
        ["generate", folder, str(args.single), str(args.new_tokens), str(int(args.profile))], args.timeout,
        args.cold, env)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["llama-3.1-8b", "mistral-7b-v3", "gemma-2-9b", "qwen-2-7b"])
    parser.add_argument("--tokenizer", help="tokenizer folder of the random checkpoints (required to measure)")
    parser.add_argument("--model-dir", help="measure this checkpoint folder instead of random ones (--archs ignored)")
    parser.add_argument("--padding-table", action="store_true",
                        help="only print the padding each batching carries on Orca-like lengths (no GPU)")
    parser.add_argument("--memory-floor", action="store_true",
                        help="only print what each architecture's QLoRA step holds before activations (no GPU; "
                             "with --tokenizer, for the random checkpoints built with it)")
    parser.add_argument("--layers", type=int, default=None, help="fewer layers than the real model")
    parser.add_argument("--parts", default="train,short,generate",
                        help="comma-separated: train (the three paths), short (short samples), generate, "
                             "generate_graphs (CUDA-graph decoding)")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="training measured this often, in rotated orders")
    parser.add_argument("--short-batch", type=int, default=8, help="batch of the short-sample measurement")
    parser.add_argument("--short-steps", type=int, default=40, help="steps of the short-sample pass (all timed)")
    parser.add_argument("--single", type=int, default=4, help="questions answered one at a time")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--timeout", type=int, default=400, help="seconds per measurement")
    parser.add_argument("--cold", action="store_true", help="every measurement with empty compile caches")
    parser.add_argument("--profile", action="store_true", help="generation: where a decoding step's time goes")
    parser.add_argument("--out", default=None, help="write all results as JSON here")
    args = parser.parse_args()
    if args.padding_table:
        return print_padding_table()
    if args.memory_floor:
        return print_memory_floor(args.archs, args.tokenizer)
    unknown = set(args.parts.split(",")) - {"train", "short", "generate", "generate_graphs"}
    if unknown:
        parser.error(f"unknown --parts {sorted(unknown)}: choose from train, short, generate, generate_graphs")
    if not args.tokenizer and not args.model_dir:
        parser.error("--tokenizer is required (e.g. .gpu/tokenizer, made by scripts/prepare_gpu_carry.sh)")

    from make_random_checkpoint import build
    from transformers import AutoConfig

    results, paths = [], args.paths.split(",")
    for arch in [os.path.basename(args.model_dir.rstrip("/"))] if args.model_dir else args.archs:
        folder = args.model_dir or tempfile.mkdtemp(prefix=f"{arch}-")
        try:
            if not args.model_dir:
                build(arch, folder, args.tokenizer, args.layers, full_vocab=True)
            counts = memory_floor(AutoConfig.from_pretrained(folder))  # one count for built and given checkpoints
            common = {"arch": arch, "params": counts["params"], "flop_params": counts["flop_params"],
                      "floor_gib": round(counts["floor_gib"], 2)}
            for part in args.parts.split(","):
                for round_ in range(args.rounds if part == "train" else 1):
                    # each round starts with another path: the first child after the build pays for it
                    order = paths[round_ % len(paths):] + paths[:round_ % len(paths)]
                    rows = (_train_rows(folder, order, args, "train") if part == "train" else
                            _train_rows(folder, ["repo"], args, "short") if part == "short" else
                            [_generate_row(folder, part, args)])
                    for row in rows:
                        results.append({**common, **row, "round": round_})
                        print("RESULT", json.dumps(results[-1]), flush=True)
        finally:
            if not args.model_dir:
                shutil.rmtree(folder, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"settings": vars(args), "results": results}, f, indent=1)
    print_table(results, args)


def _over_rounds(rows: list[dict], key: str) -> list[dict]:
    """One row per arch and path: the median of `key` over the rounds that did not fail (their values
    in `rounds`) and the largest peak memory; the first error when every round failed."""
    out = {}
    for r in rows:
        out.setdefault((r["arch"], r["path"]), []).append(r)
    merged = []
    for group in out.values():
        ok = [r for r in group if "error" not in r]
        if not ok:
            merged.append({**group[0], "rounds": []})
            continue
        values = [r[key] for r in ok]
        merged.append({**ok[0], key: round(statistics.median(values)), "rounds": values,
                       "peak_gib": max(r["peak_gib"] or 0 for r in ok) or None})
    return merged


def print_table(results: list[dict], args) -> None:
    layers = f"{args.layers} layers" if args.layers else "full depth"
    print(f"\nTraining: batch {args.batch} x {args.seq} tokens, r=16, seven projections, gradient checkpointing, "
          f"bf16, {layers}; FLOPs = 6 x params x tokens (params without the input embedding); "
          f"GPU rate {H100_BF16_DENSE / 1e12:.0f} TFLOP/s dense bf16")
    print(f"{'arch':<14} {'path':<11} {'tokens/s':>9} {'peak GiB':>9} {'floor GiB':>10} {'vs unsloth':>11} "
          f"{'vs plain':>9} {'mem/plain':>10} {'% of peak FLOPs':>16}")
    train = _over_rounds([r for r in results if r["part"] == "train"], "tokens_per_s")
    for r in train:
        if "error" in r:
            print(f"{r['arch']:<14} {r['path']:<11} error: {r['error']}")
            continue
        ref = {x["path"]: x for x in train if x["arch"] == r["arch"] and "error" not in x}
        vs = {k: f"{r['tokens_per_s'] / ref[k]['tokens_per_s']:.2f}x" if k in ref else "-"
              for k in ("unsloth", "plain")}
        mem = f"{r['peak_gib'] / ref['plain']['peak_gib']:.0%}" if "plain" in ref else "-"
        mfu = 6 * r["flop_params"] * r["tokens_per_s"] / H100_BF16_DENSE
        rounds = f"  rounds: {r['rounds']}" if len(r["rounds"]) > 1 else ""
        print(f"{r['arch']:<14} {r['path']:<11} {r['tokens_per_s']:>9} {r['peak_gib'] or '-':>9} "
              f"{r.get('floor_gib', '-'):>10} {vs['unsloth']:>11} {vs['plain']:>9} {mem:>10} {mfu:>16.1%}{rounds}")
    short = _over_rounds([r for r in results if r["part"] == "short"], "useful_tokens_per_s")
    if short:
        print(f"\nShort samples (Orca-like lengths, batch {args.short_batch}, one pass of {args.short_steps} steps "
              "over the same rows, repository path): useful tokens/s, gain over padded batches in random order")
        print(f"{'arch':<14} {'padded':>9} {'grouped':>9} {'gain':>6} {'padding-free':>13} {'gain':>6}")
        for arch in dict.fromkeys(r["arch"] for r in short):
            got = {r["path"]: r.get("useful_tokens_per_s") for r in short if r["arch"] == arch}
            cells = []
            for k in ("grouped", "padding_free"):
                gain = f"{got[k] / got['padded']:.2f}x" if got.get(k) and got.get("padded") else "-"
                cells.append(f"{got.get(k) or 'error':>{13 if k == 'padding_free' else 9}} {gain:>6}")
            print(f"{arch:<14} {got.get('padded') or 'error':>9} {' '.join(cells)}")
            computed = {r["path"]: r.get("computed_per_useful") for r in short if r["arch"] == arch}
            if all(computed.values()):  # what each batching computed per useful token (1.0: no padding)
                print(f"{'':<14} tokens computed per useful token: " +
                      ", ".join(f"{k} {v}" for k, v in computed.items()))
            medians = {r["path"]: statistics.median(r["step_s"]) for r in short
                       if r["arch"] == arch and r.get("step_s")}
            if medians:  # a step that costs the same whatever it holds is host-bound
                print(f"{'':<14} median step s: " + ", ".join(f"{k} {v:.3f}" for k, v in medians.items()))
    gen = [r for r in results if r["part"] == "generate"]
    if gen:
        print(f"\nGeneration: greedy, exactly {args.new_tokens} new tokens per answer, the 40 math questions; "
              "one at a time vs the benchmark notebook's batch size vs all in one batch")
        print(f"{'arch':<21} {'single tok/s':>13} {'default batch':>14} {'tok/s':>7} {'speedup':>8} "
              f"{'one batch tok/s':>16} {'speedup':>8}")
        for r in gen:
            name = r["arch"] + (" graphs" if r.get("cuda_graphs") else "")
            if "error" in r:
                print(f"{name:<21} error: {r['error']}")
                continue
            d, o = r["default_batch"], r["one_batch"]
            print(f"{name:<21} {r['single']['tokens_per_s']:>13} {d['batch_size']:>14} {d['tokens_per_s']:>7} "
                  f"{d['speedup']:>7}x {o['tokens_per_s']:>16} {o['speedup']:>7}x")
        for r in gen:
            name = r["arch"] + (" graphs" if r.get("cuda_graphs") else "")
            for p in r.get("profile", {}).values():
                print(f"{name} batch {p['batch']}: {p['wall_ms_per_token']} ms a step, GPU busy "
                      f"{p['gpu_ms_per_token']} ms; top kernels (ms a step, calls a step):")
                for kernel, ms, calls in p["top_kernels"]:
                    print(f"    {ms:>8} {calls:>5}  {kernel}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "repo":
            row = child_repo(rest[0], int(rest[1]), int(rest[2]), int(rest[3]), int(rest[4]), *rest[5:6],
                             *map(int, rest[6:]))
        elif kind.startswith("train:"):
            row = child_train(kind.split(":")[1], rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
        else:
            row = child_generate(rest[0], int(rest[1]), int(rest[2]), bool(int(rest[3])) if rest[3:] else False)
        print("PERF " + json.dumps(row), flush=True)
    else:
        main()
