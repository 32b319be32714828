"""Performance of the training and evaluation paths on a GPU (issues 6 and 20). Prints one table.

Random-weight checkpoints of real architectures (public config numbers, real vocabulary sizes;
speed and memory do not depend on weight values), each path in a fresh process:

- train/<path>: one QLoRA step (r=16, all seven projections, gradient checkpointing, bf16) on the
  same batch through this repository's path (helpers.modeling + helpers.sft.train_sft), through
  raw Unsloth (FastLanguageModel + TRL SFTTrainer, as Unsloth's notebooks do) and through plain
  transformers + peft + bitsandbytes (same SFTTrainer settings). Tokens/s is the median step after
  two warm-up steps; peak is torch's max allocated memory during training.
- `--forgetting`: the train part at the forgetting study's defaults (helpers.tasks.forgetting: batch,
  accumulation, max_seq_length, LoRA) on Alpaca-like lengths (`alpaca_lengths`): the repository's path
  in each `--variants` batching, raw Unsloth as its notebooks set it up (logging every step, rows in
  random order, Unsloth's own padding choice), over the same rows; each runs its pass twice and the
  second is timed (useful tokens/s).
- `--demo`: the same at the addition notebook's `make demo` settings (configs/presets/demo/addition.yaml: batch,
  accumulation, max_seq_length, LoRA, no gradient checkpointing) on the demo's own training rows (`addition_rows`).
- short: the repository's path (one process) on Orca-like or Alpaca-like lengths (`--lengths`),
  padded, length-grouped and padding-free over the same rows (useful tokens/s).
- `--breakdown`: where each step's wall time goes (`StepBreakdown`): host time per phase (data, forward,
  backward, clipping, optimizer, callbacks, logging, waiting for the GPU), the GPU's busy time
  (torch.profiler, kernels), the kernels themselves (how many a step, their mean length, the time of each
  kind: matmul, 4-bit dequantize, compiled, optimizer, ...; the longest) and the host's synchronisations
  per step; on a CPU the host phases alone.
- the floor: what a QLoRA step of the checkpoint holds before any activation (NF4 weights, bf16
  embeddings, fp32 adapters with gradients and 8-bit Adam states), counted from its config;
  `--memory-floor` prints it for the public configs without a GPU.
- generate: the benchmark questions answered one at a time, at the benchmark notebook's default
  batch size and all in one batch through helpers.generation (greedy, exactly --new-tokens tokens);
  `generate_graphs` the same with Unsloth's CUDA-graph decoding step; `--profile` adds where a
  decoding step's time goes (torch.profiler: GPU-busy time against wall time, top kernels).

- `--compile MODES`: the repository path's training once per mode, each in its own process (`COMPILE_MODES`:
  Unsloth's per-block compile as shipped, without it, with CUDA graphs in those blocks, or the whole model
  through TrainingArguments(torch_compile=True)); `--pad-multiple N` pads each batch to a multiple of N
  tokens (few shapes for CUDA graphs); each step's loss is recorded, so the compared runs show their losses.

`--rounds N` measures training N times, each round starting with another path (the first child
after the checkpoint build compiles with cold caches), and reports the median.

    python scripts/perf_bench.py --archs llama-3.1-8b mistral-7b-v3 gemma-2-9b qwen-2-7b \\
        --tokenizer .gpu/tokenizer --layers 8 --out perf.json
    python scripts/perf_bench.py --archs tinyllama-1.1b --tokenizer .gpu/tokenizer --forgetting --breakdown \\
        --parts train --paths repo,unsloth --variants 2x4:grouped,8x1:grouped --out forgetting.json
    python scripts/perf_bench.py --model-dir CKPT --demo --breakdown --parts train --paths repo,unsloth \\
        --compile unsloth,graphs --out demo.json
    python scripts/perf_bench.py --length-table alpaca        # no GPU: the lengths and their padding
    python scripts/perf_bench.py --summarize a.json b.json    # one table of earlier --out files

On the device machine: source scripts/gpu_env.sh first (carry .whl and .gpu); scripts/gpu/small_speed.sh
runs the small-model measurement of issue 20.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PATHS = ("repo", "unsloth", "plain")
BF16_DENSE = 989e12  # FLOP/s, H100 and H200 SXM dense bf16 (NVIDIA datasheets; 1979e12 is with sparsity)
T4_FP16_DENSE = 65e12  # FLOP/s, T4 fp16 with fp32 accumulation (NVIDIA T4 datasheet)


# ---------------------------------------------------------------- child processes (one measurement each)

def step_timer(model=None):
    """Step times (CUDA-synchronised) and, with `model`, the useful (non-padding) tokens of each step:
    the trainer shuffles the rows, so they are counted where the batch meets the model (summed on the
    device and read after the step's synchronisation: reading them at each forward made the host wait
    for the GPU there, a synchronisation the measured training does not have)."""
    import torch
    from transformers import TrainerCallback

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.tokens, self.counting, self.computed = [], [], 0, 0
            self.hook = model.register_forward_pre_hook(self.count, with_kwargs=True) if model is not None else None

        def count(self, module, args, kwargs):
            mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids", args[0] if args else None)
            self.counting = self.counting + (mask.sum() if mask is not None else ids.numel())
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
            self.tokens.append(int(self.counting))

        def on_train_end(self, args, state, control, **kw):
            if self.hook is not None:
                self.hook.remove()

    return StepTimer()


# The host-side phases of a training step, in the order the trainer runs them: `data` fetches, collates and
# moves the micro-batches (Trainer.get_batch_samples), `loss` is the trainer's compute_loss around the model's
# forward (TRL's per-step metrics), `other` the trainer's own code between the phases, `gpu_wait` the host
# waiting for the GPU's queue to empty at the end of the step.
PHASES = ("data", "forward", "loss", "backward", "clip", "optimizer", "callbacks", "log_save", "other", "gpu_wait")
# What the host runs after a callback event, where that is not what it ran before it.
AFTER_EVENT = {"on_pre_optimizer_step": "optimizer", "on_optimizer_step": "other"}
SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


def kernel_busy_us(intervals) -> float:
    """Microseconds during which at least one of the (start, end) intervals runs: kernels of several
    streams overlap, and the GPU is busy once for them."""
    busy, end = 0.0, -math.inf
    for start, stop in sorted(intervals):
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return busy


# What a CUDA kernel does, from its name (first match wins): where a small model's GPU time goes
KERNEL_KINDS = (("optimizer", ("optimizer", "multi_tensor_apply")),  # bitsandbytes' 8-bit Adam; torch's foreach
                ("4-bit dequantize", ("dequantize", "kgemm_4bit")),
                ("attention", ("flash", "fmha", "attention", "attn")),
                ("matmul", ("gemm", "nvjet", "cutlass", "gemv", "xmma", "matmul")),
                ("compiled (Inductor)", ("triton_",)),
                ("elementwise", ("elementwise",)),
                ("reduction", ("reduce",)),
                ("copy", ("memcpy", "memset", "copy", "cat")))


def kernel_kind(name: str) -> str:
    """KERNEL_KINDS' kind of a kernel name, or "other" (Unsloth's own Triton kernels, norms, embeddings...)."""
    low = name.lower()
    return next((kind for kind, marks in KERNEL_KINDS if any(m in low for m in marks)), "other")


def kernel_table(kernels, n_steps: int, top: int = 12) -> dict:
    """Per step, from (name, microseconds) of every kernel the profiler saw over `n_steps` steps: how many
    kernels and their mean length (a step of many short kernels is bound by launching them), the time of
    each kind (KERNEL_KINDS) and the `top` kernels by time, as [name, ms, calls]."""
    kinds, names = collections.Counter(), {}
    for name, us in kernels:
        kinds[kernel_kind(name)] += us
        total, calls = names.get(name, (0.0, 0))
        names[name] = (total + us, calls + 1)
    total_us = sum(kinds.values())
    return {"kernels_per_step": round(len(kernels) / n_steps, 1),
            "mean_kernel_us": round(total_us / len(kernels), 2) if kernels else None,
            "kind_ms_per_step": {k: round(v / 1e3 / n_steps, 2) for k, v in kinds.most_common()},
            "top_kernels": [[name[:70], round(us / 1e3 / n_steps, 3), round(calls / n_steps, 1)]
                            for name, (us, calls) in sorted(names.items(), key=lambda x: -x[1][0])[:top]]}


class StepBreakdown:
    """Where each optimizer step's wall time goes on the host: one clock switched between PHASES by
    hooks on the model's forward, wrappers around the trainer's data loading, backward, clipping,
    callback events and logging (installed by `instrument()` for one training), and a CUDA
    synchronisation at the end of each step (its wait is `gpu_wait`). The phases of a step add up
    to its wall time. Steps `profile` = (first, stop) also run under torch.profiler (GPU only): the
    GPU's kernel-busy time and the host's synchronising CUDA calls of those steps (their host times
    are inflated by the profiler and left out of the host phases).

        >>> breakdown = StepBreakdown(profile=(8, 12))
        >>> with breakdown.instrument():
        ...     train_sft(..., callbacks=[breakdown.callback()])
        >>> breakdown.summary(skip=2)
    """

    def __init__(self, profile: tuple[int, int] | None = None):
        import torch

        self.cuda = torch.cuda.is_available()
        self.profile = profile if self.cuda else None
        self.steps, self.gpu, self._prof, self._hooks, self._before_forward = [], None, None, [], "other"
        self._new_step()

    def _new_step(self) -> None:
        self.acc = dict.fromkeys(PHASES, 0.0)
        self.phase, self.t = "other", time.perf_counter()
        self.useful, self.computed, self.loss = 0, 0, None

    def switch(self, phase: str) -> str:
        """Charge the time since the last switch to the current phase; returns the phase left."""
        now, left = time.perf_counter(), self.phase
        self.acc[left] += now - self.t
        self.phase, self.t = phase, now
        return left

    def _count(self, module, args, kwargs) -> None:
        self._before_forward = self.switch("forward")
        mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:  # summed on the device: read after the step's synchronisation
            self.useful = self.useful + (mask.sum() if mask is not None else ids.numel())
            self.computed += ids.numel()

    def _forward_done(self, module, args, kwargs, output) -> None:
        self.switch(self._before_forward)
        loss = getattr(output, "loss", None)
        if loss is not None:  # summed on the device like the tokens: a compiled run must train the same losses
            self.loss = loss.detach().float() if self.loss is None else self.loss + loss.detach().float()

    def _close_step(self, state) -> None:
        """End of an optimizer step (after its logging and saving): wait for the GPU, record the step."""
        import torch

        if self.cuda:
            self.switch("gpu_wait")
            torch.cuda.synchronize()
        self.switch("other")
        index = len(self.steps)
        step = {"step": state.global_step, **self.acc, "wall": sum(self.acc.values()),
                "useful_tokens": int(self.useful), "computed_tokens": self.computed,
                # the step's micro-batch losses summed, as the model returned them
                "step_loss": round(float(self.loss), 6) if self.loss is not None else None,
                "profiled": bool(self.profile and self.profile[0] <= index < self.profile[1]),
                # what a drift could grow with (read outside the step's clock): memory the device holds, and
                # blocks the Python interpreter holds
                "cuda_mib": round(torch.cuda.memory_allocated() / 2**20, 1) if self.cuda else None,
                "py_blocks": sys.getallocatedblocks()}
        self.steps.append(step)
        # for the parent, should this child run out of time: what its steps took so far (`partial_steps`)
        line = {"index": index, "wall": round(step["wall"], 4), "useful": step["useful_tokens"]}
        print("PERF-STEP " + json.dumps(line), file=sys.stderr, flush=True)
        if self.profile and index + 1 == self.profile[0]:
            from torch.profiler import ProfilerActivity, profile

            self._prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
            self._prof.start()
        elif self._prof is not None and index + 1 == self.profile[1]:
            self._stop_profile(self.profile[1] - self.profile[0])
        self._new_step()

    def _stop_profile(self, n_steps: int) -> None:
        from torch.autograd import DeviceType

        self._prof.stop()
        events = self._prof.events()
        cuda = [e for e in events if e.device_type == DeviceType.CUDA]
        kernels = [(e.time_range.start, e.time_range.end) for e in cuda]
        syncs = [e for e in events if e.device_type == DeviceType.CPU and e.name in SYNC_CALLS]
        self.gpu = {"steps": list(range(*self.profile)), "busy_s": kernel_busy_us(kernels) / 1e6,
                    # with the one at the end of each step that this measurement adds; None: the profiler
                    # recorded no CUDA runtime call at all
                    "syncs_per_step": round(len(syncs) / n_steps, 2) if syncs else None,
                    "sync_ms_per_step": round(sum(e.time_range.elapsed_us() for e in syncs) / 1e3 / n_steps, 2),
                    **kernel_table([(e.name, e.time_range.elapsed_us()) for e in cuda], n_steps)}
        self._prof = None

    def callback(self):
        """The TrainerCallback that starts the clock and hooks the model (pass it to the trainer)."""
        from transformers import TrainerCallback

        breakdown = self

        class Breakdown(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kw):
                breakdown._hooks = [model.register_forward_pre_hook(breakdown._count, with_kwargs=True),
                                    model.register_forward_hook(breakdown._forward_done, with_kwargs=True)]
                breakdown._new_step()

            def on_train_end(self, args, state, control, **kw):
                for hook in breakdown._hooks:
                    hook.remove()
                if breakdown._prof is not None:  # training ended inside the profiled steps
                    breakdown._stop_profile(max(1, len(breakdown.steps) - breakdown.profile[0]))

        return Breakdown()

    @contextlib.contextmanager
    def instrument(self):
        """Time the trainer's phases while training inside this block (class attributes, restored after)."""
        from accelerate import Accelerator
        from transformers import Trainer
        from transformers.trainer_callback import CallbackHandler
        from trl import SFTTrainer  # Unsloth's, where Unsloth was imported first

        breakdown = self

        def timed(phase, fn, after=None):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                left = breakdown.switch(phase)
                try:
                    return fn(*args, **kwargs)
                finally:
                    breakdown.switch(after(args, left) if after else left)
            return wrapper

        def after_log(args, left):
            trainer = args[0]
            if trainer.state.global_step > (breakdown.steps[-1]["step"] if breakdown.steps else 0):
                breakdown._close_step(trainer.state)
                return breakdown.phase
            return left  # the call after the last epoch: no step ended

        patches = [(CallbackHandler, "call_event", "callbacks", lambda args, left: AFTER_EVENT.get(args[1], left)),
                   (Trainer, "get_batch_samples", "data", None), (Trainer, "_maybe_log_save_evaluate", "log_save",
                                                                   after_log),
                   (Accelerator, "backward", "backward", None), (Accelerator, "clip_grad_norm_", "clip", None),
                   (Trainer, "compute_loss", "loss", None), (SFTTrainer, "compute_loss", "loss", None)]
        saved = [(cls, name, cls.__dict__.get(name)) for cls, name, _, _ in patches]  # None: inherited
        try:
            for cls, name, phase, after in patches:
                setattr(cls, name, timed(phase, getattr(cls, name), after))
            yield self
        finally:
            for cls, name, original in saved:
                if original is None:
                    if name in cls.__dict__:
                        delattr(cls, name)
                else:
                    setattr(cls, name, original)

    def summary(self, skip: int = 0, walls: list[float] | None = None) -> dict:
        """Mean milliseconds a step in each phase (they add up to `wall`) over the steps after `skip`
        that were not profiled, but the last (it saves the final checkpoint); useful tokens/s over them;
        every step's loss (`losses`, the micro-batches' summed);
        the drift of the step time (the last five steps' median over the median of the five after
        `skip`) and, where profiled, the GPU's busy share of the wall time of the same steps (`walls`:
        those steps' times in another pass over the same rows, when the profile ran in a warm-up pass)."""
        timed = [s for s in self.steps[skip:-1] if not s["profiled"]]
        if not timed:
            return {"error": f"no timed step: {len(self.steps)} steps, {skip} skipped"}
        walls_ = [s["wall"] for s in timed]
        out = {"steps": len(timed), "ms": {k: round(1e3 * statistics.mean(s[k] for s in timed), 2)
                                           for k in (*PHASES, "wall")},
               "useful_tokens_per_s": round(sum(s["useful_tokens"] for s in timed) / sum(walls_)),
               "computed_per_useful": round(sum(s["computed_tokens"] for s in timed)
                                            / max(1, sum(s["useful_tokens"] for s in timed)), 3),
               "drift": round(statistics.median(walls_[-5:]) / statistics.median(walls_[:5]), 2),
               # which phase the drift is in: its mean ms a step over the last five minus over the first five
               "drift_ms": {k: round(1e3 * (statistics.mean(s[k] for s in timed[-5:])
                                            - statistics.mean(s[k] for s in timed[:5])), 2) for k in PHASES},
               "wall_s": [round(s["wall"], 4) for s in self.steps],
               "losses": [s["step_loss"] for s in self.steps],
               "growth": {k: timed[-1][k] - timed[0][k] for k in ("cuda_mib", "py_blocks") if timed[0][k] is not None}}
        if self.gpu:
            idx = self.gpu["steps"]
            wall = sum(walls[i] for i in idx) if walls else sum(self.steps[i]["wall"] for i in idx)
            out["gpu"] = {**{k: v for k, v in self.gpu.items() if k != "steps"},
                          "busy_ms_per_step": round(1e3 * self.gpu["busy_s"] / len(idx), 2),
                          "busy_share": round(self.gpu["busy_s"] / wall, 4)}
        return out


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


# Stanford Alpaca (52,002 rows): a prompt (instruction + input) averages 27.8 and an answer 64.6 LLaMA tokens
# (Wang et al. 2023, "How Far Can Camels Go?", Table 1); about 40% of the rows have an input (its dataset card).
ALPACA_PROMPT_MEAN, ALPACA_ANSWER_MEAN, ALPACA_INPUT_SHARE = 27.8, 64.6, 0.4
ALPACA_INSTRUCTION_MEAN = 15.2  # the input's mean then follows: (27.8 - 15.2) / 0.4 = 31.5 when present


def _lognormal(rng, mean: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(mean) - sigma**2 / 2, sigma)  # a lognormal's mean is exp(mu + sigma^2 / 2)


def alpaca_lengths(n: int, max_len: int, seed: int = 0) -> list[tuple[int, int]]:
    """(prompt, answer) content token counts like Stanford Alpaca's (tatsu-lab/alpaca, what the forgetting
    study trains on), before a chat template: an instruction ~ lognormal(mean 15.2, sigma 0.4) plus, in 40%
    of the rows, an input ~ lognormal(mean 31.5, sigma 0.8), so prompts average the published 27.8 tokens;
    an answer ~ lognormal(mean 64.6, sigma 0.9), the published mean. The means and the input share are
    published (ALPACA_*); the spreads are this project's choice (no quantiles are published): sigma 0.9
    puts about 5% of the answers under 10 tokens and 1% over 400. Cut like orca_lengths (a prompt at most
    max_len / 2, the pair at most max_len). Not fitted to benchmark_data/data/alpaca_sample.jsonl: its 40
    project-written rows (not Alpaca's) average 13 prompt and 13 answer tokens (embedded tokenizer)."""
    import random

    rng, out = random.Random(seed), []
    input_mean = (ALPACA_PROMPT_MEAN - ALPACA_INSTRUCTION_MEAN) / ALPACA_INPUT_SHARE
    for _ in range(n):
        prompt = _lognormal(rng, ALPACA_INSTRUCTION_MEAN, 0.4)
        if rng.random() < ALPACA_INPUT_SHARE:
            prompt += _lognormal(rng, input_mean, 0.8)
        prompt = min(max(1, round(prompt)), max_len // 2)
        out.append((prompt, min(max(1, round(_lognormal(rng, ALPACA_ANSWER_MEAN, 0.9))), max_len - prompt)))
    return out


LENGTHS = {"orca": orca_lengths, "alpaca": alpaca_lengths}
# what length_rows makes: random ids at LENGTHS' lengths, or "addition", the addition demo's real rows (they need a
# tokenizer, so they are not in LENGTHS, whose lengths --length-table counts without one)
ROW_KINDS = (*LENGTHS, "addition")
DEMO_PRESET = ("addition", "demo")  # `make demo`: configs/presets/demo/addition.yaml


@contextlib.contextmanager
def _light_helpers():
    """Imports of helpers inside this block leave out Unsloth: `import helpers` imports helpers.modeling (and
    Unsloth, which patches transformers) on a GPU machine, which the parent process (it only builds
    checkpoints and starts the measurements) and the plain-transformers child must not; the others keep it."""
    backend = os.environ.get("QLORA_BACKEND")
    os.environ["QLORA_BACKEND"] = "transformers"
    try:
        yield
    finally:
        if backend is None:
            del os.environ["QLORA_BACKEND"]
        else:
            os.environ["QLORA_BACKEND"] = backend


def demo_config(**overrides):
    """The addition notebook's config in `make demo`: helpers.tasks.addition.AdditionConfig built from
    configs/presets/demo/addition.yaml as helpers.run_notebook does, with `overrides` on top."""
    with _light_helpers():
        from helpers.config import build_config, load_preset
        from helpers.tasks.addition import AdditionConfig
    return build_config(AdditionConfig, {**load_preset(*DEMO_PRESET), **overrides})


def addition_rows(tokenizer, n: int, max_len: int) -> list[dict]:
    """The addition demo's first `n` training rows, as its notebook builds them (make_problems on the demo's
    config with n_train = n and its seed, training_pairs, then build_sft_dataset's rows: plain text, cut at
    `max_len`, the rows with no answer token left dropped): real prompts and sums, loss on the answer."""
    with _light_helpers():
        from helpers.sft import IGNORE_INDEX, tokenize_example
        from helpers.tasks.addition import make_problems, training_pairs
    cfg = demo_config()
    # validate() wants one problem a training digit count at least; make_problems spreads n_train over them
    cfg = dataclasses.replace(cfg, n_train=max(n, cfg.train_digits_max - cfg.train_digits_min + 1))
    train, _ = make_problems(cfg)
    rows = [tokenize_example(tokenizer, p, a, chat=False, max_length=max_len) for p, a in training_pairs(train, cfg)]
    rows = [r for r in rows if any(x != IGNORE_INDEX for x in r["labels"])]
    if len(rows) < n:
        raise ValueError(f"the addition demo gives {len(rows)} training rows with an answer token within {max_len} "
                         f"tokens, fewer than the {n} asked: raise --seq")
    return rows[:n]


def template_tokens(tokenizer) -> tuple[int, int]:
    """Tokens the chat template adds to a prompt and to an answer (an empty exchange tokenized as
    helpers.sft does it): Alpaca's published lengths count the text alone."""
    from helpers.sft import IGNORE_INDEX, tokenize_example

    row = tokenize_example(tokenizer, "", "", chat=tokenizer.chat_template is not None, max_length=10**6)
    answer = sum(x != IGNORE_INDEX for x in row["labels"])
    return len(row["input_ids"]) - answer, answer


def length_rows(tokenizer, n: int, max_len: int, lengths: str = "orca", pool: int | None = None,
                step_size: int = 1) -> list[dict]:
    """Random token ids at `lengths` ("orca", or "alpaca" plus the tokenizer's chat-template tokens),
    loss on the answer; "addition": the addition demo's real rows (`addition_rows`). `pool`: n / `step_size`
    steps of a run over `pool` rows in the training's grouped order (pool_lengths): n rows grouped among
    themselves pad more than a run over a data set's thousands."""
    import random

    if lengths == "addition":
        return addition_rows(tokenizer, n, max_len)
    extra = template_tokens(tokenizer) if lengths == "alpaca" else (0, 0)
    rng, rows = random.Random(1), []
    for prompt, answer in pool_lengths(lengths, n, max_len - sum(extra), pool, step_size, sum(extra)):
        prompt, answer = prompt + extra[0], answer + extra[1]
        ids = [rng.randrange(100, len(tokenizer) - 100) for _ in range(prompt + answer)]
        rows.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return rows


def pool_lengths(lengths: str, n: int, max_len: int, pool: int | None = None, step_size: int = 1,
                 extra: int = 0) -> list[tuple[int, int]]:
    """n (prompt, answer) pairs of LENGTHS[lengths]: the first n, or with `pool` > n the rows of n / step_size
    steps of a run over `pool` of them in the training's grouped order (GroupedSampler over the rows' lengths
    plus `extra` template tokens, steps of `step_size`): the steps a study's run trains on, with its padding.
    They are the midpoints of n / step_size equal parts of the run's steps ranked by their longest row, then
    shuffled: a run's padding sits in a few steps with a long row, and the first few steps would over- or
    under-state it widely (`--length-table alpaca` prints the run's, its median step's, its first ten steps' and
    these ten steps' padding)."""
    import random

    if not pool or pool <= n:
        return LENGTHS[lengths](n, max_len)
    from helpers.sft import grouped_order  # not GroupedSampler: keep_row_order may have replaced its iteration

    pairs = LENGTHS[lengths](pool, max_len)
    total = [p + a + extra for p, a in pairs]
    order = grouped_order(total, step_size, 0)
    steps = sorted((order[k:k + step_size] for k in range(0, len(order) - step_size + 1, step_size)),
                   key=lambda step: max(total[i] for i in step))
    wanted = -(-n // step_size)
    picked = [steps[int((k + 0.5) * len(steps) / wanted)] for k in range(wanted)]  # the midpoints of n equal parts
    random.Random(0).shuffle(picked)
    return [pairs[i] for step in picked for i in step][:n]


def keep_row_order() -> None:
    """The training's grouped sampler hands out the rows in the order given (this process only): --pool's rows
    are already a run's first steps in its grouped order, and grouping them again among themselves would put
    back the padding that drawing them from the pool took out."""
    from helpers.sft import GroupedSampler

    GroupedSampler.__iter__ = lambda self: iter(range(len(self.lengths)))


def padding_overhead(lengths: list[int], batch: int, grouped: bool, seed: int = 0) -> float:
    """Tokens a padded pass over `lengths` computes per useful token, in batches of `batch`: in random
    order, or in the training's length-grouped order (`grouped`: helpers.sft.GroupedSampler)."""
    import torch

    from helpers.sft import grouped_order  # not GroupedSampler: keep_row_order may have replaced its iteration

    order = (grouped_order(lengths, batch, seed) if grouped
             else torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed)).tolist())
    padded = sum(max(lengths[i] for i in order[k:k + batch]) * len(order[k:k + batch])
                 for k in range(0, len(order), batch))
    return padded / sum(lengths)


POOL_STEPS = 10  # the timed steps of a forgetting measurement (demo_graphs.sh: --steps 10)


def print_length_table(kind: str = "orca", n: int = 52_002, max_len: int = 1024) -> None:
    """Quantiles of `kind`'s token counts (before any chat template) and the padding each batching
    carries on them: the most that removing it can gain."""
    from helpers.sft import grouped_order

    pairs = LENGTHS[kind](n, max_len)
    columns = {"prompt": [p for p, _ in pairs], "answer": [a for _, a in pairs], "total": [p + a for p, a in pairs]}
    marks = (5, 25, 50, 75, 95, 99)
    print(f"{kind}-like token counts, {n} rows, cut at {max_len}" + (", before the chat template" if kind == "alpaca"
                                                                      else ""))
    print(f"{'':<7} {'mean':>6} " + " ".join(f"{'p' + str(q):>5}" for q in marks) + f" {'max':>5}")
    for name, values in columns.items():
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        print(f"{name:<7} {statistics.mean(values):>6.1f} " + " ".join(f"{cuts[q - 1]:>5.0f}" for q in marks)
              + f" {max(values):>5}")
    lengths = columns["total"][:10_000]
    print(f"\nPadded tokens per useful token, the first {len(lengths)} of them")
    print(f"{'batch':>5} {'random order':>13} {'length-grouped':>15} {'ceiling of grouping':>20}")
    for batch in (2, 8, 32):
        rand, grouped = padding_overhead(lengths, batch, False), padding_overhead(lengths, batch, True)
        print(f"{batch:>5} {rand:>13.2f} {grouped:>15.3f} {rand / grouped:>19.2f}x")
    print(f"\nA run over all {n} rows in the training's grouped order, tokens computed per useful one: the whole run,"
          f" its median step, its first {POOL_STEPS} steps, the {POOL_STEPS} steps --pool {n} trains on (pool_lengths),"
          f" and {POOL_STEPS} steps' rows grouped among themselves (the benchmark without --pool)")
    print(f"{'batch':>5} {'run':>6} {'median':>7} {'first':>6} {'--pool':>7} {'alone':>6}")
    totals = columns["total"]
    for batch in (8, 64):
        order = grouped_order(totals, batch, 0)
        steps = [[totals[i] for i in order[k:k + batch]] for k in range(0, len(order) - batch + 1, batch)]
        pooled = [p + a for p, a in pool_lengths(kind, POOL_STEPS * batch, max_len, n, batch)]
        alone = [p + a for p, a in pairs[:POOL_STEPS * batch]]
        print(f"{batch:>5} {padding_in_order([x for st in steps for x in st], batch):>6.3f} "
              f"{statistics.median(max(st) * batch / sum(st) for st in steps):>7.3f} "
              f"{padding_in_order([x for st in steps[:POOL_STEPS] for x in st], batch):>6.3f} "
              f"{padding_in_order(pooled, batch):>7.3f} {padding_overhead(alone, batch, True):>6.3f}")


def padding_in_order(lengths: list[int], batch: int) -> float:
    """Tokens computed per useful one when each run of `batch` rows, in the order given, is padded to its longest."""
    chunks = [lengths[k:k + batch] for k in range(0, len(lengths), batch)]
    return sum(max(c) * len(c) for c in chunks) / sum(lengths)


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


def _result(timer, batch: int, seq: int, short: str, load_s: float, backend: str, last: int | None = None) -> dict:
    import torch

    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None
    if short:  # every step of one pass over the same rows: the batchings see the same examples in all
        return {"backend": backend, "batching": short,
                "useful_tokens_per_s": round(sum(timer.tokens) / sum(timer.times)), "useful_tokens": sum(timer.tokens),
                "computed_per_useful": round(timer.computed / sum(timer.tokens), 3),
                "peak_gib": peak, "steps_timed": len(timer.times), "step_s": [round(t, 3) for t in timer.times]}
    timed = timer.times[2:last] or timer.times[-1:]  # `last`: the first profiled step (those after are left out)
    step = statistics.median(timed)
    return {"backend": backend, "load_s": round(load_s, 1), "first_step_s": round(timer.times[0], 1),
            "s_per_step": round(step, 3), "tokens_per_s": round(batch * seq / step), "peak_gib": peak,
            "steps_timed": len(timed), "step_s": [round(t, 3) for t in timer.times]}


# Each short batching sets both switches: the training default groups by length.
SHORT = {"padded": {"padding_free": False, "group_by_length": False},
         "grouped": {"padding_free": False, "group_by_length": True},
         "padding_free": {"padding_free": True, "group_by_length": False}}
# `--compile`: what the repository path's training children switch, through the environment Unsloth and
# accelerate read when they are imported (each mode its own process). Unsloth 2026.10.9 on torch >= 2.7
# compiles each decoder layer as one torch.compile region (unsloth/models/_block_compile.py); "graphs" adds
# Inductor's CUDA graphs to those regions (one recording per input shape, at most
# UNSLOTH_BLOCK_CUDAGRAPHS_MAX_SHAPES, past which the layer kind runs without them: variable lengths need
# --pad-multiple); "model" is TrainingArguments(torch_compile=True), accelerate compiling the whole model
# (Unsloth replaces accelerate's compile arguments: dynamic shapes, its Inductor options, no mode).
COMPILE_MODES = {"unsloth": {}, "eager": {"UNSLOTH_BLOCK_COMPILE": "0"},
                 "graphs": {"UNSLOTH_BLOCK_CUDAGRAPHS": "1", "UNSLOTH_BLOCK_CUDAGRAPHS_MAX_SHAPES": "16"},
                 "model": {"ACCELERATE_DYNAMO_BACKEND": "INDUCTOR"}}
BLOCK_MODES = {0: "eager", 1: "compiled", 2: "compiled, flex outside"}  # _block_compile's _OFF, _FULL, _SPLIT
PROFILED_STEPS = 2  # steps under torch.profiler for --breakdown: reading a 1B model's events takes seconds a step


def _profiled(n_steps: int) -> tuple[int, int]:
    """The steps --breakdown profiles: PROFILED_STEPS before the last (which saves the final checkpoint)."""
    return max(0, n_steps - 1 - PROFILED_STEPS), n_steps - 1


def parse_variants(text: str) -> list[dict]:
    """"2x4:grouped,8x1:padding_free" -> micro-batch x accumulation steps and a SHORT batching each."""
    out = []
    for item in filter(None, text.split(",")):
        shape, _, batching = item.partition(":")
        micro, _, accum = shape.partition("x")
        if not (micro.isdigit() and accum.isdigit() and int(micro) > 0 and int(accum) > 0) or batching not in SHORT:
            raise ValueError(f"--variants item '{item}' is not BATCHxACCUM:BATCHING with a batching from "
                             f"{', '.join(SHORT)} (e.g. 2x4:grouped)")
        out.append({"batch": int(micro), "accum": int(accum), "batching": batching})
    if not out:
        raise ValueError("--variants is empty: e.g. 2x4:grouped,8x1:grouped")
    return out


def parse_choices(flag: str, text: str, known, example: str) -> list[str]:
    """"a,b" -> the choices of `flag`, in order, each once; ValueError names the known ones."""
    chosen = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not chosen or any(m not in known for m in chosen):
        raise ValueError(f"{flag} {text!r}: choose comma-separated values from {', '.join(known)} (e.g. {example})")
    return chosen


def parse_compile(text: str) -> list[str]:
    """"unsloth,graphs" -> the --compile modes, in order, each once."""
    return parse_choices("--compile", text, COMPILE_MODES, "unsloth,graphs")


def parse_optim(text: str) -> list[str]:
    """"auto,adamw_torch_fused" -> the --optim optimizers (helpers.config.OPTIMIZERS), in order, each once."""
    with _light_helpers():
        from helpers.config import OPTIMIZERS
    return parse_choices("--optim", text, OPTIMIZERS, "auto,adamw_torch_fused")


def block_modes(model) -> dict:
    """How many decoder layers ran compiled or eager: Unsloth's per-block compile stamps each layer it
    tried (a layer whose compile failed falls back to its stock forward and says so once, in the log)."""
    modes = (module.__dict__.get("_unsloth_block_mode") for module in model.modules())
    return dict(collections.Counter(BLOCK_MODES.get(mode, str(mode)) for mode in modes if mode is not None))


@contextlib.contextmanager
def padded_to_multiple(multiple: int | None):
    """helpers.sft's collators pad each batch to a multiple of `multiple` tokens inside this block: a
    few static shapes (buckets) that CUDA graphs can replay, instead of one shape per batch length.
    The padding carries no label and no attention, so the loss is that of the unbucketed batch."""
    import helpers.sft

    original = helpers.sft.answer_only_collator
    if multiple:
        def bucketed(tokenizer, *, padding_free, pad_to_multiple_of=None):  # replaces cuda_graphs' GRAPH_BUCKET
            return original(tokenizer, padding_free=padding_free, pad_to_multiple_of=multiple)

        helpers.sft.answer_only_collator = bucketed
    try:
        yield
    finally:
        helpers.sft.answer_only_collator = original


def _two_passes(train_once, n_steps: int, profile: bool, warm: int = 1) -> tuple[dict, float]:
    """Train a pass, then the same pass again (same rows, same order), each with a StepBreakdown: the
    first compiles every shape the second meets and runs PROFILED_STEPS steps before its last under the
    profiler (with `profile`); the second is timed. Returns the second's summary with the first's GPU
    busy time against the second's wall time of the same steps, and the first pass's seconds. `warm` > 1
    passes before the timed one: CUDA graph trees run a new shape once eagerly and record it at its second
    call, so a shape met once in the first pass is recorded in the second."""
    first = StepBreakdown(profile=_profiled(n_steps) if profile else None)
    start = time.perf_counter()
    with first.instrument():
        train_once(first.callback())
    for _ in range(warm - 1):
        extra = StepBreakdown()
        with extra.instrument():
            train_once(extra.callback())
    first_s = time.perf_counter() - start
    second = StepBreakdown()
    with second.instrument():
        train_once(second.callback())
    second.gpu = first.gpu
    return second.summary(walls=[s["wall"] for s in second.steps]), first_s


def _run_result(summary: dict, first_s: float, rows: list[dict], **extra) -> dict:
    import torch

    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None
    if "error" in summary:
        return {"error": summary["error"]}
    return {**extra, "useful_tokens_per_s": summary["useful_tokens_per_s"],
            "computed_per_useful": summary["computed_per_useful"], "first_pass_s": round(first_s, 1),
            "tokens_per_row": round(sum(len(r["input_ids"]) for r in rows) / len(rows), 1), "peak_gib": peak,
            "breakdown": summary}


def child_repo(folder: str, spec: dict) -> dict:
    """The repository's path (helpers.modeling + helpers.sft.train_sft, as the notebooks run), one
    process, the model loaded once. spec["part"] "train" with spec["lengths"] "full": full-length rows
    (median step after two warm-up steps); "train" with "orca"/"alpaca"/"addition" lengths: each spec["variants"]
    batching over the same rows (`_two_passes`); "short": those lengths padded in random order, padded in
    length-grouped batches and padding-free (useful tokens/s). Each short batching runs one pass over the
    same `short_batch` x `short_steps` rows twice and times the second: a shorter warm-up left compiles
    for new shapes in the timed pass (H200: a 16 s step in 40), and timing only some steps would compare
    different examples (grouped steps hold similar lengths, some all long). It groups within
    mega-batches of min(short_steps / 4, 50) steps (a long run: 50)."""
    import torch
    from datasets import Dataset

    from helpers.modeling import add_lora, load_model, reset_lora  # noqa: I001  (imports Unsloth before transformers)
    from helpers.sft import train_sft
    from helpers.tasks.forgetting import ForgettingConfig
    from helpers.tasks.instruct import TrainConfig

    part, seq, lora, steps = spec["part"], spec["seq"], spec["lora"], spec["steps"]
    start = time.time()
    model, tokenizer, info = load_model(folder, max_seq_length=seq, load_in_4bit=spec.get("load_in_4bit", True))
    model = add_lora(model, info, r=lora["r"], alpha=lora["alpha"], dropout=lora["dropout"], targets=lora["targets"],
                     seed=0, gradient_checkpointing=spec.get("gc", True),
                     checkpoint_offload=spec.get("gc_offload"))
    load_s, out = time.time() - start, {}

    def train(rows, cfg, callbacks):
        run_dir = tempfile.mkdtemp()
        try:
            with padded_to_multiple(spec.get("pad_multiple")):
                return train_sft(model, tokenizer, Dataset.from_list(rows), run_dir=run_dir, settings=cfg,
                                 backend=info.backend, resume=False, callbacks=callbacks)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def fresh_train(rows, cfg, callbacks):
        # every pass from the same fresh adapters: the timed pass, and each variant and --compile mode
        # (another process), trains the same losses as the others over the same batches
        reset_lora(model, seed=0)
        return train(rows, cfg, callbacks)

    if part == "train" and spec["lengths"] != "full":  # a study's settings on short rows
        if spec.get("pool"):  # the rows come in the run's grouped order (pool_lengths): taken so, not grouped again
            keep_row_order()
        base = (ForgettingConfig() if spec["lengths"] == "alpaca" else demo_config() if spec["lengths"] == "addition"
                else TrainConfig())
        for v in spec["variants"]:
            name = f"{v['batch']}x{v['accum']} {v['batching']}"
            cfg = dataclasses.replace(base, batch_size=v["batch"], grad_accum=v["accum"], max_steps=steps,
                                      save_steps=10**6, max_seq_length=seq, gradient_checkpointing=spec.get("gc", True),
                                      optim=spec.get("optim", "auto"), **SHORT[v["batching"]])
            rows = length_rows(tokenizer, v["batch"] * v["accum"] * steps, seq, spec["lengths"], spec.get("pool"),
                               v["batch"] * v["accum"])
            report = {}
            try:
                if torch.cuda.is_available():
                    torch.cuda.reset_peak_memory_stats()
                summary, first_s = _two_passes(lambda cb, rows=rows, cfg=cfg, report=report:
                                               report.update(fresh_train(rows, cfg, [cb])),
                                               steps, spec["breakdown"], spec.get("warm_passes", 1))
                out[name] = _run_result(summary, first_s, rows, backend=info.backend, batch=v["batch"],
                                        accum=v["accum"], batching=v["batching"], load_s=round(load_s, 1),
                                        padding_free_used=report["effective"]["padding_free"],
                                        sampling=report["effective"]["sampling"], optim=report["effective"]["optim"],
                                        block_compile=block_modes(model))
            except Exception as err:  # one measurement's failure must not hide the others
                out[name] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
        return out
    runs = []
    if part == "train":
        runs = [("train", "", spec["batch"], steps, {})]
    elif part == "short":
        for k, v in SHORT.items():  # the warm-up is the same pass: every shape it will time is compiled
            runs += [(f"warmup:{k}", k, spec["short_batch"], spec["short_steps"], v),
                     (k, k, spec["short_batch"], spec["short_steps"], v)]
    profile = spec["breakdown"] and torch.cuda.is_available() and steps > 3 + PROFILED_STEPS
    for name, short, n, n_steps, overrides in runs:
        cfg = dataclasses.replace(TrainConfig(), batch_size=n, grad_accum=1, max_steps=n_steps, warmup_steps=0,
                                  save_steps=10**6, max_seq_length=seq, lora_targets=lora["targets"],
                                  gradient_checkpointing=spec.get("gc", True), optim=spec.get("optim", "auto"),
                                  **overrides)
        rows = length_rows(tokenizer, n * n_steps, seq, spec["lengths"]) if short else random_rows(tokenizer,
                                                                                                   n * n_steps, seq)
        timer, timed_phases = step_timer(model), spec["breakdown"] and not short
        breakdown = StepBreakdown(profile=_profiled(n_steps) if profile else None)
        try:
            with breakdown.instrument() if timed_phases else contextlib.nullcontext():
                report = train(rows, cfg, [timer, *([breakdown.callback()] if timed_phases else [])])
            if not name.startswith("warmup:"):
                out[name] = {**_result(timer, n, seq, short, load_s, info.backend,
                                       _profiled(n_steps)[0] if profile else None),
                             "padding_free_used": report["effective"]["padding_free"],
                             "sampling": report["effective"]["sampling"], "optim": report["effective"]["optim"],
                             "block_compile": block_modes(model), "checkpoint_offload": info.checkpoint_offload}
                if timed_phases:
                    out[name]["breakdown"] = breakdown.summary(skip=2)
        except Exception as err:  # one measurement's failure must not hide the others
            out[name] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
    return out


# Unsloth's Alpaca notebook: per_device_train_batch_size=2, gradient_accumulation_steps=4 (the baseline of issue 20)
UNSLOTH_NOTEBOOK_BATCH = (2, 4)


def child_train(path: str, folder: str, spec: dict) -> dict:
    """One training measurement of raw Unsloth or plain transformers + peft + bitsandbytes. Full-length
    rows (spec["lengths"] "full"): the median step after two warm-up steps. Short rows ("orca"/"alpaca"/"addition"):
    set up as Unsloth's notebooks do it (SFTConfig of their Alpaca notebook: logging every step, weight
    decay, seed 3407; rows in random order; no collator given, so Unsloth picks padded or padding-free
    batches itself), over the same rows as the repository's path, two passes (`_two_passes`)."""
    gemma = json.load(open(os.path.join(folder, "config.json")))["model_type"].startswith("gemma")
    seq, lora, steps = spec["seq"], spec["lora"], spec["steps"]
    out, start = tempfile.mkdtemp(), time.time()
    if path == "unsloth":
        if gemma:  # the setting the repository's path uses (helpers.modeling.add_lora)
            os.environ["UNSLOTH_BLOCK_COMPILE"] = "0"
        import unsloth  # noqa: F401
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(folder, max_seq_length=seq, dtype=None,
                                                             load_in_4bit=spec.get("load_in_4bit", True))
        model = FastLanguageModel.get_peft_model(model, r=lora["r"], lora_alpha=lora["alpha"],
                                                 lora_dropout=lora["dropout"], target_modules=lora["targets"],
                                                 bias="none", random_state=0, use_gradient_checkpointing="unsloth",
                                                 max_seq_length=seq)
    else:
        import torch
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

        tokenizer = AutoTokenizer.from_pretrained(folder)
        four_bit = spec.get("load_in_4bit", True)
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16) if four_bit else None
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16, quantization_config=quant,
                                                     device_map={"": 0})
        if four_bit:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                                 target_modules=lora["targets"], bias="none", task_type="CAUSAL_LM"))
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    load_s = time.time() - start
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if spec["lengths"] == "full":
        batch = spec["batch"]
        rows = random_rows(tokenizer, batch * steps, seq)  # TRL uses a `labels` column as is: answer-only loss
        profile = spec["breakdown"] and torch.cuda.is_available() and steps > 3 + PROFILED_STEPS
        timer = step_timer()
        breakdown = StepBreakdown(profile=_profiled(steps) if profile else None)
        with breakdown.instrument() if spec["breakdown"] else contextlib.nullcontext():
            trainer = SFTTrainer(model=model, args=_sft_args(out, batch, steps, seq, path == "plain"),
                                 train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                                 callbacks=[timer, *([breakdown.callback()] if spec["breakdown"] else [])])
            trainer.train()
        shutil.rmtree(out, ignore_errors=True)
        result = _result(timer, batch, seq, "", load_s, path, _profiled(steps)[0] if profile else None)
        return {**result, "breakdown": breakdown.summary(skip=2)} if spec["breakdown"] else result
    # the repository's rows (its batch x accumulation a step), through Unsloth's notebook batching: 2 x 4
    rows = length_rows(tokenizer, spec["batch"] * spec["accum"] * steps, seq, spec["lengths"], spec.get("pool"),
                       spec["batch"] * spec["accum"])
    batch, accum = UNSLOTH_NOTEBOOK_BATCH
    if batch * accum != spec["batch"] * spec["accum"]:
        raise ValueError(f"raw Unsloth takes {batch} x {accum} examples a step as its notebooks do; the repository's "
                         f"{spec['batch']} x {spec['accum']} is another number of examples an update: not comparable")
    chosen = {}

    def train_once(callback):
        # Unsloth's Alpaca notebook: SFTConfig(per_device_train_batch_size=2, gradient_accumulation_steps=4,
        # warmup_steps=5, learning_rate=2e-4, logging_steps=1, optim="adamw_8bit", weight_decay=0.001,
        # lr_scheduler_type="linear", seed=3407, report_to="none"); bf16 on a GPU that has it
        args = SFTConfig(output_dir=out, per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
                         warmup_steps=5, max_steps=steps, learning_rate=2e-4, logging_steps=1, optim="adamw_8bit",
                         weight_decay=0.001, lr_scheduler_type="linear", seed=3407, report_to="none",
                         max_length=seq, packing=False, bf16=True, save_strategy="no")
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                             callbacks=[callback])
        chosen.update(padding_free=bool(getattr(trainer.args, "padding_free", False)
                                        or getattr(trainer.data_collator, "padding_free", False)))
        trainer.train()

    torch.cuda.reset_peak_memory_stats()
    summary, first_s = _two_passes(train_once, steps, spec["breakdown"])
    shutil.rmtree(out, ignore_errors=True)
    return _run_result(summary, first_s, rows, backend=path, batch=batch, accum=accum, load_s=round(load_s, 1),
                       batching="notebook" + (" padding-free" if chosen.get("padding_free") else " padded"),
                       padding_free_used=chosen.get("padding_free"), sampling="random")


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
    except subprocess.TimeoutExpired as err:
        partial = partial_steps(err.stderr)
        return {"error": f"timed out after {timeout} s", **({"partial": partial} if partial else {})}
    finally:
        if fresh:
            shutil.rmtree(fresh, ignore_errors=True)
    for line in proc.stdout.splitlines():
        if line.startswith("PERF "):
            return json.loads(line[5:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": tail[0][:300]}


def partial_steps(stderr) -> dict | None:
    """What a timed-out child's StepBreakdown steps took (its "PERF-STEP" lines; a pass starts again at index
    0): the passes begun, and the last pass's steps, their median wall seconds and useful tokens/s, the first two
    left out where there are more (compiling). None if no step finished."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    passes: list[list[dict]] = []
    for line in (stderr or "").splitlines():
        if line.startswith("PERF-STEP "):
            step = json.loads(line[10:])
            if step["index"] == 0 or not passes:
                passes.append([])
            passes[-1].append(step)
    if not passes:
        return None
    last = passes[-1]
    timed = last[2:] if len(last) > 2 else last
    wall = sum(s["wall"] for s in timed)
    return {"passes_begun": len(passes), "last_pass_steps": len(last),
            "median_step_s": round(statistics.median(s["wall"] for s in timed), 4),
            "useful_tokens_per_s": round(sum(s["useful"] for s in timed) / wall, 1) if wall else None}


def _timeout(args) -> int:
    """Seconds the next measurement may take: --timeout, or what is left of --budget-s if less (0: none)."""
    if getattr(args, "deadline", None) is None:
        return args.timeout
    left = int(args.deadline - time.time())
    return min(args.timeout, left) if left > 20 else 0


def run_spec(args, part: str) -> dict:
    """What a training child measures (its JSON argument)."""
    return {"part": part, "batch": args.batch, "accum": args.accum, "seq": args.seq, "steps": args.steps,
            "lengths": args.lengths if part == "short" else ("alpaca" if args.forgetting else
                                                              "addition" if getattr(args, "demo", False) else "full"),
            "lora": args.lora, "variants": args.variants, "breakdown": args.breakdown,
            "short_batch": args.short_batch, "short_steps": args.short_steps, "gc": not getattr(args, "no_gc", False),
            "pad_multiple": getattr(args, "pad_multiple", None), "warm_passes": getattr(args, "warm_passes", 1),
            "load_in_4bit": not getattr(args, "bf16_weights", False),
            "gc_offload": False if getattr(args, "gc_on_gpu", False) else None,  # None: add_lora's rule
            "pool": getattr(args, "pool", None)}


def _child(args, child_args: list[str], env_extra: dict | None = None) -> dict:
    timeout = _timeout(args)
    if not timeout:
        return {"error": "skipped: --budget-s spent"}
    return run_child(child_args, timeout, args.cold, env_extra)


def _train_rows(folder: str, order: list[str], args, repo_part: str = "train") -> list[dict]:
    """`repo_part` "train": the train part through every path in `order` (full-length rows, or with
    --forgetting Alpaca-like rows or --demo's addition rows, the repository's path in each --variants batching);
    "short": the repository's path alone, the short samples in each batching."""
    spec, rows = run_spec(args, repo_part), []
    # a row with a `run` goes to the speed table (print_speed_table); the lengths and sequence say which rows
    # saw the same data
    named = repo_part == "train" and (spec["lengths"] != "full" or spec["breakdown"])
    full_name = f"{spec['batch']}x{spec['accum']} full {spec['seq']}"
    data = {"lengths": spec["lengths"], "seq": spec["seq"], **({} if spec["load_in_4bit"] else {"load_in_4bit": False})}
    modes = getattr(args, "compile", None) or ["unsloth"]
    weights = "" if spec["load_in_4bit"] else "bf16"  # what the run name adds with --bf16-weights
    optims = getattr(args, "optim", None) or ["auto"]
    for path in order:
        if path == "repo":
            # each its own process: Unsloth reads the switches when it is imported
            for mode, optim in itertools.product(modes, optims):
                got = _child(args, ["repo", folder, json.dumps({**spec, "optim": optim})], COMPILE_MODES[mode])
                if "error" in got:
                    names = (["train"] if spec["lengths"] == "full" else
                             [f"{v['batch']}x{v['accum']} {v['batching']}" for v in spec["variants"]])
                    got = dict.fromkeys(names if repo_part == "train" else SHORT, got)
                # what the run name adds to the batching: the buckets, bf16 weights, checkpoints on the GPU, a
                # --compile mode other than Unsloth's own, an optimizer other than the study's
                tail = "".join(f" {part}" for part in (
                    f"pad{spec['pad_multiple']}" if spec.get("pad_multiple") else "",
                    f"pool{spec['pool']}" if spec.get("pool") else "", weights,
                    "gc-gpu" if spec["gc_offload"] is False else "", "" if mode == "unsloth" else mode,
                    "" if optim == "auto" else optim) if part)
                extra = {"compile": mode, **({"pad_multiple": spec["pad_multiple"]} if spec.get("pad_multiple")
                                             else {})}
                for k, v in got.items():
                    if repo_part == "short":
                        rows.append({"part": "short", "path": k, **data, **v})
                    else:
                        run = (full_name if k == "train" else k) + tail if named else None
                        rows.append({"part": "train", "path": "repo", **({"run": run} if run else {}), **data,
                                     **extra, **v})
        else:
            got = _child(args, [f"train:{path}", folder, json.dumps(spec)])
            run = " ".join(filter(None, [full_name if spec["lengths"] == "full" else got.get("batching") or "notebook",
                                         weights])) if named else None
            rows.append({"part": "train", "path": path, **({"run": run} if run else {}), **data, **got})
    return rows


def _generate_row(folder: str, part: str, args) -> dict:
    """`generate`, or `generate_graphs`: the same with Unsloth's CUDA-graph decoding step
    (UNSLOTH_DECODE_CUDA_GRAPHS=1; off for plain generate() calls by default)."""
    env = {"UNSLOTH_DECODE_CUDA_GRAPHS": "1"} if part == "generate_graphs" else {}
    return {"part": "generate", "path": "repo", "cuda_graphs": bool(env), **_child(
        args, ["generate", folder, str(args.single), str(args.new_tokens), str(int(args.profile))], env)}


def _study_preset(cfg, lengths: str, steps: int) -> dict:
    """A study config's training settings as perf_bench's: batch, accumulation, max_seq_length, its batching, LoRA."""
    batching = "padding_free" if cfg.padding_free else "grouped" if cfg.group_by_length else "padded"
    return {"batch": cfg.batch_size, "accum": cfg.grad_accum, "seq": cfg.max_seq_length, "steps": steps,
            "lengths": lengths, "variants": f"{cfg.batch_size}x{cfg.grad_accum}:{batching}",
            "lora": {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout,
                     "targets": list(cfg.lora_targets)}}


def _resolve_preset(args, parser) -> None:
    """Fill the settings left unset: the forgetting study's (--forgetting), the addition demo's (--demo) or the
    train part's defaults."""
    demo = getattr(args, "demo", False)
    if demo and args.forgetting:
        parser.error("--demo and --forgetting are two presets: give one of them")
    if args.forgetting:
        with _light_helpers():  # this process only builds checkpoints and starts the measurements
            from helpers.tasks.forgetting import ForgettingConfig
        preset = _study_preset(ForgettingConfig(), "alpaca", 12)
    elif demo:
        cfg = demo_config()
        preset = _study_preset(cfg, "addition", 30)
        # the demo trains without gradient checkpointing (on a CPU it only costs time): so does the repository's path
        args.no_gc = getattr(args, "no_gc", False) or not cfg.gradient_checkpointing
    else:
        preset = {"batch": 4, "accum": 1, "seq": 1024, "steps": 8, "lengths": "orca", "variants": "8x1:grouped",
                  "lora": {"r": 16, "alpha": 16, "dropout": 0.0, "targets": SEVEN}}
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    try:
        args.variants = parse_variants(args.variants) if isinstance(args.variants, str) else args.variants
        if isinstance(getattr(args, "compile", None), str):
            args.compile = parse_compile(args.compile)
        if isinstance(getattr(args, "optim", None), str):
            args.optim = parse_optim(args.optim)
    except ValueError as err:
        parser.error(str(err))
    if getattr(args, "pad_multiple", None) is not None and args.pad_multiple < 1:
        parser.error(f"--pad-multiple {args.pad_multiple}: give a positive number of tokens (e.g. 64)")
    if getattr(args, "warm_passes", 1) < 1:
        parser.error(f"--warm-passes {args.warm_passes}: give 1 or more passes before the timed one")
    args.deadline = time.time() + args.budget_s if args.budget_s is not None else None


def build_parser() -> argparse.ArgumentParser:
    """The command line (main's; tests/test_perf_bench.py parses the scripts/gpu/ measurements with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["llama-3.1-8b", "mistral-7b-v3", "gemma-2-9b", "qwen-2-7b"])
    parser.add_argument("--tokenizer", help="tokenizer folder of the random checkpoints (required to measure)")
    parser.add_argument("--model-dir", help="measure this checkpoint folder instead of random ones (--archs ignored)")
    parser.add_argument("--padding-table", action="store_true",
                        help="only print the padding each batching carries on Orca-like lengths (no GPU)")
    parser.add_argument("--length-table", choices=sorted(LENGTHS),
                        help="only print these lengths' quantiles and the padding each batching carries (no GPU)")
    parser.add_argument("--memory-floor", action="store_true",
                        help="only print what each architecture's QLoRA step holds before activations (no GPU; "
                             "with --tokenizer, for the random checkpoints built with it)")
    parser.add_argument("--summarize", nargs="+", metavar="JSON",
                        help="only print the speed table of earlier --out files")
    parser.add_argument("--layers", type=int, default=None, help="fewer layers than the real model")
    parser.add_argument("--parts", default="train,short,generate",
                        help="comma-separated: train (the three paths), short (short samples), generate, "
                             "generate_graphs (CUDA-graph decoding)")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--forgetting", action="store_true",
                        help="the forgetting study's defaults (batch, accumulation, max_seq_length, LoRA) on "
                             "Alpaca-like lengths for the train part")
    parser.add_argument("--pool", type=int, default=None,
                        help="the train part's rows: steps of a run over this many rows in the training's "
                             "length-grouped order (the forgetting study's TinyLlama run: 50000), not steps x batch "
                             "rows grouped among themselves (more padding than a real run's); --length-table shows it")
    parser.add_argument("--demo", action="store_true",
                        help="the addition demo's settings (make demo: batch, accumulation, max_seq_length, LoRA, no "
                             "gradient checkpointing) on its real training rows for the train part")
    parser.add_argument("--batch", type=int, default=None, help="micro-batch of the train part (default 4)")
    parser.add_argument("--accum", type=int, default=None, help="gradient accumulation of the train part's short "
                        "rows (--forgetting, --demo; full-length rows: 1)")
    parser.add_argument("--seq", type=int, default=None, help="tokens a row (full-length rows) or the cut (1024)")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps a measurement (8; --forgetting 12; --demo 30)")
    parser.add_argument("--variants", default=None,
                        help="--forgetting, --demo: the repository path's batchings, BATCHxACCUM:BATCHING "
                             "comma-separated (padded, grouped, padding_free; default the study's, e.g. 8x1:grouped)")
    parser.add_argument("--lengths", choices=sorted(ROW_KINDS), default=None,
                        help="lengths of the short part (orca; --forgetting: alpaca; --demo: addition, its real rows)")
    parser.add_argument("--breakdown", action="store_true",
                        help="train part: where each step's time goes (host phases, GPU busy, synchronisations)")
    parser.add_argument("--no-gc", action="store_true",
                        help="the repository's path without gradient checkpointing (raw Unsloth keeps its notebooks' "
                             "'unsloth' checkpointing): a small model's "
                             "short rows fit without it, and recomputing the forward pass costs launches")
    parser.add_argument("--compile", default="unsloth",
                        help="the repository path's training, once per mode, comma-separated: unsloth (as shipped: "
                             "each decoder layer one torch.compile region), eager (no block compile), graphs (those "
                             "regions with CUDA graphs), model (TrainingArguments(torch_compile=True))")
    parser.add_argument("--optim", default="auto",
                        help="the repository path's training, once per optimizer, comma-separated (helpers.config."
                             "OPTIMIZERS): auto (GPU: fused under 3B params, else 8-bit), adamw_8bit, adamw_torch")
    parser.add_argument("--bf16-weights", action="store_true",
                        help="LoRA on bf16 weights instead of 4-bit ones (the studies' load_in_4bit = False), on "
                             "every path: the 16-bit path of a small model that fits without quantization")
    parser.add_argument("--gc-on-gpu", action="store_true",
                        help="the repository's path with Unsloth's plain gradient checkpointing: saved layer inputs "
                             "stay on the GPU (as shipped, Unsloth moves them to host memory from max_seq_length "
                             "512 up); raw Unsloth keeps its notebooks' setting")
    parser.add_argument("--pad-multiple", type=int, default=None,
                        help="the repository path pads each batch to a multiple of this many tokens (a few static "
                             "shapes for CUDA graphs; the padding gets no loss)")
    parser.add_argument("--warm-passes", type=int, default=1,
                        help="--forgetting, --demo: passes over the same rows before the timed one (CUDA graphs "
                             "record a shape at its second call)")
    parser.add_argument("--rounds", type=int, default=1, help="training measured this often, in rotated orders")
    parser.add_argument("--short-batch", type=int, default=8, help="batch of the short-sample measurement")
    parser.add_argument("--short-steps", type=int, default=40, help="steps of the short-sample pass (all timed)")
    parser.add_argument("--single", type=int, default=4, help="questions answered one at a time")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--timeout", type=int, default=400, help="seconds per measurement")
    parser.add_argument("--budget-s", type=int, default=None,
                        help="seconds for everything: later measurements get what is left, or are skipped")
    parser.add_argument("--cold", action="store_true", help="every measurement with empty compile caches")
    parser.add_argument("--profile", action="store_true", help="generation: where a decoding step's time goes")
    parser.add_argument("--out", default=None, help="write all results as JSON here")
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.padding_table:
        return print_length_table("orca", n=10_000)
    if args.length_table:
        return print_length_table(args.length_table)
    if args.memory_floor:
        return print_memory_floor(args.archs, args.tokenizer)
    if args.summarize:
        results = []
        for name in args.summarize:
            try:
                got = json.load(open(name))
                # a perf_bench --out file, or a dated record under benchmarks/perf/ that keeps several in "runs"
                results += [r for run in got["runs"].values() for r in run.get("results", [])] if "runs" in got \
                    else got["results"]
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
                parser.error(f"--summarize {name}: not a perf_bench --out file ({type(err).__name__}: {err})")
        return print_speed_table(results)
    unknown = set(args.parts.split(",")) - {"train", "short", "generate", "generate_graphs"}
    if unknown:
        parser.error(f"unknown --parts {sorted(unknown)}: choose from train, short, generate, generate_graphs")
    if not args.tokenizer and not args.model_dir:
        parser.error("--tokenizer is required (e.g. .gpu/tokenizer, made by scripts/prepare_gpu_carry.sh)")
    _resolve_preset(args, parser)

    from make_random_checkpoint import build
    from transformers import AutoConfig

    results, paths = [], args.paths.split(",")
    for arch in [os.path.basename(args.model_dir.rstrip("/"))] if args.model_dir else args.archs:
        folder = args.model_dir or tempfile.mkdtemp(prefix=f"{arch}-")
        try:
            if not _timeout(args):
                results.append({"arch": arch, "part": "train", "path": "repo", "error": "skipped: --budget-s spent"})
                continue
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
            json.dump({"settings": {k: v for k, v in vars(args).items() if k != "deadline"}, "results": results},
                      f, indent=1)
    print_table([r for r in results if not r.get("run")], args)
    print_speed_table(results)


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
    train = _over_rounds([r for r in results if r["part"] == "train"], "tokens_per_s")
    if train:
        print(f"\nTraining: batch {args.batch} x {args.seq} tokens, r=16, seven projections, gradient checkpointing, "
              f"bf16, {layers}; FLOPs = 6 x params x tokens (params without the input embedding); "
              f"GPU rate {BF16_DENSE / 1e12:.0f} TFLOP/s dense bf16")
        print(f"{'arch':<14} {'path':<11} {'tokens/s':>9} {'peak GiB':>9} {'floor GiB':>10} {'vs unsloth':>11} "
              f"{'vs plain':>9} {'mem/plain':>10} {'% of peak FLOPs':>16}")
    for r in train:
        if "error" in r:
            print(f"{r['arch']:<14} {r['path']:<11} error: {r['error']}")
            continue
        ref = {x["path"]: x for x in train if x["arch"] == r["arch"] and "error" not in x}
        vs = {k: f"{r['tokens_per_s'] / ref[k]['tokens_per_s']:.2f}x" if k in ref else "-"
              for k in ("unsloth", "plain")}
        mem = f"{r['peak_gib'] / ref['plain']['peak_gib']:.0%}" if "plain" in ref else "-"
        mfu = 6 * r["flop_params"] * r["tokens_per_s"] / BF16_DENSE
        rounds = f"  rounds: {r['rounds']}" if len(r["rounds"]) > 1 else ""
        print(f"{r['arch']:<14} {r['path']:<11} {r['tokens_per_s']:>9} {r['peak_gib'] or '-':>9} "
              f"{r.get('floor_gib', '-'):>10} {vs['unsloth']:>11} {vs['plain']:>9} {mem:>10} {mfu:>16.1%}{rounds}")
    short = _over_rounds([r for r in results if r["part"] == "short"], "useful_tokens_per_s")
    if short:
        print(f"\nShort samples ({(getattr(args, 'lengths', None) or 'orca').capitalize()}-like lengths, "
              f"batch {args.short_batch}, one pass of {args.short_steps} steps "
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


SPEED_PHASES = {"data": ("data",), "fwd": ("forward",), "loss": ("loss",), "bwd": ("backward",),
                "opt": ("clip", "optimizer"), "cb+log": ("callbacks", "log_save"), "other": ("other",),
                "wait": ("gpu_wait",)}
STUDY_ROWS = 50_000  # the forgetting study's TinyLlama run: 50,000 Alpaca rows, one epoch


def _tokens_per_s(row: dict) -> float | None:
    return (row.get("breakdown") or {}).get("useful_tokens_per_s") or row.get("useful_tokens_per_s") or row.get(
        "tokens_per_s")


def print_speed_table(results: list[dict]) -> None:
    """One line per measured run (rows with a `run`): useful tokens/s, the share of the GPU's dense bf16
    rate, the ratio to raw Unsloth on the same rows, and where a step's wall time goes. Then the T4
    estimate of the forgetting study's TinyLlama run at each measured share of peak."""
    rows = [r for r in results if r.get("part") == "train" and r.get("run")]
    if not rows:
        return
    print(f"\nTraining speed: useful (non-padding) tokens/s of the timed steps; % peak = 6 x params without the input "
          f"embedding x useful tokens/s over {BF16_DENSE / 1e12:.0f} TFLOP/s dense bf16; vs raw = over raw Unsloth on "
          "the same rows. Mean ms a step: the host's phases add up to 'step' (data: fetch, collate, copy; loss: "
          "compute_loss around the forward; opt: clipping and optimizer; cb+log: callbacks, logging, saving; wait: "
          "for the GPU at the step's end); GPU: kernel-busy ms of the same steps (torch.profiler); syncs: "
          "synchronising CUDA calls a step (one is the measurement's own); drift: median step time of the last "
          "five steps over the first five's; loss: the timed pass's mean step loss (runs over the same batches "
          "from the same adapters must agree)")
    print(f"{'arch':<15} {'path':<8} {'run':<28} {'tok/s':>7} {'% peak':>7} {'vs raw':>7} {'step':>7} {'GPU':>6} "
          + " ".join(f"{k:>6}" for k in SPEED_PHASES) + f" {'syncs':>6} {'drift':>6} {'loss':>8}")
    for r in rows:
        head = f"{r.get('arch', '-'):<15} {r['path']:<8} {r['run'][:28]:<28}"
        if "error" in r:
            part = r.get("partial")
            print(f"{head} error: {r['error']}" + (
                f" ({part['last_pass_steps']} steps of pass {part['passes_begun']} done: median"
                f" {part['median_step_s']} s, {part['useful_tokens_per_s']} useful tokens/s)" if part else ""))
            continue
        tok, b = _tokens_per_s(r), r.get("breakdown") or {}
        ref = next((x for x in rows if x.get("arch") == r.get("arch") and x["path"] == "unsloth" and "error" not in x
                    and x.get("lengths") == r.get("lengths") and x.get("seq") == r.get("seq")), None)
        vs = f"{tok / _tokens_per_s(ref):.2f}x" if ref else "-"
        ms, gpu = b.get("ms", {}), b.get("gpu", {})
        phases = " ".join(f"{sum(ms.get(p, 0) for p in parts):>6.1f}" if ms else f"{'-':>6}"
                          for parts in SPEED_PHASES.values())
        step = f"{ms['wall']:.1f}" if ms else "-"
        losses = [x for x in b.get("losses") or [] if x is not None]
        loss = f"{statistics.mean(losses):.4f}" if losses else "-"
        print(f"{head} {tok:>7} {6 * r['flop_params'] * tok / BF16_DENSE:>7.2%} {vs:>7} {step:>7} "
              f"{gpu.get('busy_ms_per_step', '-'):>6} {phases} {gpu.get('syncs_per_step', '-'):>6} "
              f"{b.get('drift', '-'):>6} {loss:>8}")
    print_kernel_tables(rows)
    study = [r for r in rows if r.get("arch") == "tinyllama-1.1b" and r.get("lengths") == "alpaca" and "error" not in r]
    if study:
        n = memory_floor(public_config("tinyllama-1.1b"))["flop_params"]  # the real 32,000-row vocabulary
        flops = 6 * n * STUDY_ROWS * study[0]["tokens_per_row"]
        share = {id(r): 6 * r["flop_params"] * _tokens_per_s(r) / BF16_DENSE for r in study}
        cells = [f"{r['path']} {r['run']} {flops / (T4_FP16_DENSE * share[id(r)]) / 3600:.1f} h" for r in study]
        print(f"\nT4 estimate of the forgetting study's TinyLlama run ({STUDY_ROWS:,} Alpaca-like rows of "
              f"{study[0]['tokens_per_row']} tokens, one epoch: {flops / 1e15:,.0f} PFLOP) at "
              f"{T4_FP16_DENSE / 1e12:.0f} TFLOP/s fp16 x each run's measured share of peak: {'; '.join(cells)} "
              "(the study reports about 14 h)")


def print_kernel_tables(rows: list[dict]) -> None:
    """For each run profiled with --breakdown: its kernels a step, their mean length, the GPU time of each kind
    (KERNEL_KINDS) and the longest kernels."""
    profiled = [r for r in rows if ((r.get("breakdown") or {}).get("gpu") or {}).get("kind_ms_per_step")]
    if profiled:
        print("\nGPU kernels of the profiled steps, a step: how many, their mean length, ms by kind, the longest")
    for r in profiled:
        gpu = r["breakdown"]["gpu"]
        kinds = ", ".join(f"{kind} {ms}" for kind, ms in gpu["kind_ms_per_step"].items())
        print(f"{r.get('arch', '-')} {r['path']} {r['run']}: {gpu['kernels_per_step']} kernels of "
              f"{gpu['mean_kernel_us']} us on average; ms: {kinds}")
        for name, ms, calls in gpu["top_kernels"][:5]:
            print(f"    {ms:>8} {calls:>7}  {name}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]  # training children: FOLDER SPEC (run_spec's JSON)
        if kind == "repo":
            row = child_repo(rest[0], json.loads(rest[1]))
        elif kind.startswith("train:"):
            row = child_train(kind.split(":")[1], rest[0], json.loads(rest[1]))
        else:
            row = child_generate(rest[0], int(rest[1]), int(rest[2]), bool(int(rest[3])) if rest[3:] else False)
        print("PERF " + json.dumps(row), flush=True)
    else:
        main()
