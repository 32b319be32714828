"""Supervised fine-tuning with loss on the answer tokens only (TRL SFTTrainer/SFTConfig).

Each example is a (prompt, answer) pair. It is rendered either through the model's chat template
(`chat=True`: user turn = prompt, assistant turn = answer) or as plain text (`chat=False`:
prompt, then answer + eos). The prompt and the answer are tokenized separately and concatenated,
so the prompt's tokens are exactly what generation later feeds the model; labels are -100 on the
prompt and on padding, so only the answer (and its end-of-turn token) carries loss.

    >>> ds = build_sft_dataset(tokenizer, [("Q: 2+3=? A:", " 5")], chat=False, max_length=64)
    >>> result = train_sft(model, tokenizer, ds, run_dir=run_dir, settings=cfg, backend=info.backend)
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from helpers.config import ConfigError

IGNORE_INDEX = -100


def render_prompt(tokenizer, prompt: str | list[dict], *, chat: bool) -> str:
    """The text the model is given before its answer. With `chat`, `prompt` is the user turn, or a
    whole conversation as a list of {"role", "content"} messages (a system turn, say)."""
    if not chat:
        return prompt
    if tokenizer.chat_template is None:
        raise ConfigError("this tokenizer has no chat template: give the model a `family` in configs/models.yaml")
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def render_example(tokenizer, prompt: str, answer: str, *, chat: bool) -> tuple[str, str]:
    """(prompt_text, answer_text) as the model sees them; prompt_text + answer_text is the example."""
    prompt_text = render_prompt(tokenizer, prompt, chat=chat)
    if not chat:
        return prompt_text, answer + tokenizer.eos_token
    user = [{"role": "user", "content": prompt}]
    full = tokenizer.apply_chat_template(
        user + [{"role": "assistant", "content": answer}], tokenize=False, add_generation_prompt=False
    )
    if not full.startswith(prompt_text):
        raise ConfigError("the chat template renders the prompt differently inside a full conversation; "
                          "answer-only masking needs a template whose generation prompt is a prefix")
    return prompt_text, full[len(prompt_text):]


def encode_prompt(tokenizer, prompt_text: str, *, chat: bool) -> list[int]:
    # Chat templates write their own BOS into the text; plain prompts get the tokenizer's.
    return tokenizer(prompt_text, add_special_tokens=not chat)["input_ids"]


def tokenize_example(tokenizer, prompt: str, answer: str, *, chat: bool, max_length: int) -> dict:
    prompt_text, answer_text = render_example(tokenizer, prompt, answer, chat=chat)
    prompt_ids = encode_prompt(tokenizer, prompt_text, chat=chat)
    answer_ids = tokenizer(answer_text, add_special_tokens=False)["input_ids"]
    input_ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[:max_length]
    return {"input_ids": input_ids, "labels": labels}


def show_loss_tokens(tokenizer, example: dict) -> str:
    """The example's text with the loss-carrying tokens in [[...]] — for eyeballing a template.

        >>> show_loss_tokens(tok, tokenize_example(tok, "Q: 12+30=? A:", " 42", chat=False, max_length=64))
        'Q: 12+30=? A:[[ 42<|im_end|>]]'
    """
    out, span, learning = [], [], False
    for token, label in zip(example["input_ids"], example["labels"]):
        if (label != IGNORE_INDEX) != learning:
            out.append(tokenizer.decode(span) if not learning else f"[[{tokenizer.decode(span)}]]")
            span, learning = [], not learning
        span.append(token)
    out.append(tokenizer.decode(span) if not learning else f"[[{tokenizer.decode(span)}]]")
    return "".join(out)


def build_sft_dataset(tokenizer, pairs, *, chat: bool, max_length: int):
    """A `datasets.Dataset` of input_ids/labels. Examples whose answer is cut off entirely by
    `max_length` are dropped (and counted in `.info.description`); if none is left, that's an error."""
    from datasets import Dataset

    rows = [tokenize_example(tokenizer, p, a, chat=chat, max_length=max_length) for p, a in pairs]
    kept = [r for r in rows if any(x != IGNORE_INDEX for x in r["labels"])]
    if not kept:
        raise ConfigError(f"no training example has an answer token within max_seq_length={max_length}: raise it")
    dataset = Dataset.from_list(kept)
    dataset.info.description = json.dumps({"examples": len(rows), "dropped_no_answer_tokens": len(rows) - len(kept)})
    return dataset


class AnswerOnlyCollator:
    """TRL's collator, plus a check: a batch in which every label is masked has no loss to learn
    from (mean over zero tokens is NaN), so it stops training with an error instead."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, examples):
        batch = self.inner(examples)
        if not (batch["labels"] != IGNORE_INDEX).any():
            raise ValueError("every label in this batch is masked (no answer tokens): check the prompt/answer "
                             "split or raise max_seq_length")
        return batch


def answer_only_collator(tokenizer, *, padding_free: bool, pad_to_multiple_of: int | None = None) -> AnswerOnlyCollator:
    """TRL's collator on pre-tokenized rows (labels kept as given: -100 on the prompt). With
    `padding_free` the batch is one row of the examples end to end, with position ids restarting
    at 0 for each: no pad tokens; the first token of each example gets no label (nothing precedes
    it), so the loss is that of the padded batch (tests/test_padding_free.py). `pad_to_multiple_of`
    rounds a padded batch's length up (pad tokens get no label and no attention: the same loss)."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return AnswerOnlyCollator(DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id,
                                                              padding_free=padding_free,
                                                              pad_to_multiple_of=pad_to_multiple_of))


# Below this many parameters "auto" trains with torch's fused AdamW on a GPU: a step of a 1B model is bound by the
# host, and bitsandbytes' 8-bit AdamW launches a kernel per adapter matrix (360 a step for the 135M demo); fused AdamW
# 1.10x the demo's step and 1.19x TinyLlama's at the forgetting defaults on an H100, the same losses (PERFORMANCE.md,
# sixth round). From 7B on the step is bound by the GPU and "auto" keeps Unsloth's notebooks' 8-bit states.
SMALL_MODEL_PARAMS = 3_000_000_000


def model_parameters(model) -> int:
    """The parameters of `model`, its 4-bit weights counted at their unquantised shape (bitsandbytes packs two
    in a byte: numel() would halve them)."""
    total = 0
    for p in model.parameters():
        shape = getattr(getattr(p, "quant_state", None), "shape", None)
        total += math.prod(shape) if shape is not None else p.numel()
    return total


def resolve_optim(settings, on_gpu: bool, parameters: int | None = None) -> str:
    """The transformers `optim` a run trains with: settings.optim, or for "auto" (helpers.config.OPTIMIZERS)
    adamw_torch on a CPU; on a GPU the study's stated optimizer (its config's STATED_OPTIM), else
    adamw_torch_fused for a model of fewer than SMALL_MODEL_PARAMS `parameters`, else adamw_8bit."""
    optim = getattr(settings, "optim", "auto")
    if optim != "auto":
        return optim
    if not on_gpu:
        return "adamw_torch"
    stated = getattr(settings, "STATED_OPTIM", None)
    if stated:
        return stated
    return "adamw_torch_fused" if parameters is not None and parameters < SMALL_MODEL_PARAMS else "adamw_8bit"


def checkpoint_optim(checkpoint) -> str | None:
    """"adamw_8bit" where a checkpoint's optimizer.pt holds bitsandbytes' 8-bit AdamW states, else None (torch
    AdamW's, which fused AdamW loads too; none at all). A resumed run keeps them under "auto": they only load
    into the optimizer that wrote them (8-bit states are not torch AdamW's: KeyError 'exp_avg' at the first
    step), whatever "auto" picks today. Read as tensors only (weights_only), never the trainer's pickles: a
    run folder may come from someone else's Drive; memory-mapped (mmap), so only the keys are read here and the
    trainer reads the states once, when it resumes."""
    try:
        state = torch.load(Path(checkpoint) / "optimizer.pt", weights_only=True, map_location="cpu",
                           mmap=True).get("state", {})
    except Exception:  # noqa: BLE001 - missing or cut off: decide as for a fresh run
        return None
    bnb = ("state1", "__bnb_optimizer_quant_state__")  # bitsandbytes 0.50 nests its states under the second
    return "adamw_8bit" if any(isinstance(v, dict) and any(k in v for k in bnb) for v in state.values()) else None


def graph_pad_multiple(settings, backend: str) -> int | None:
    """Tokens a padded batch's length is rounded up to when training replays Unsloth's per-layer CUDA graphs
    (add_lora's cuda_graphs): GRAPH_BUCKET, or max_seq_length when shorter; else None (each batch padded to
    its longest row). A new batch shape is recorded again, so the graphs pay only over few shapes
    (PERFORMANCE.md, third and fourth rounds)."""
    if backend != "unsloth":
        return None
    from helpers.modeling import GRAPH_BUCKET, block_cuda_graphs_on

    return min(GRAPH_BUCKET, settings.max_seq_length) if block_cuda_graphs_on() else None


def length_buckets(lengths, multiple: int) -> int:
    """How many batch lengths rows of `lengths` tokens can give when padded to a multiple of `multiple`."""
    return len({-(-n // multiple) for n in lengths})


def padding_free_ok(model, backend: str) -> bool:
    """False for the architectures Unsloth keeps padded (unsloth.trainer.PADDING_FREE_BLOCKLIST:
    Gemma 2's soft-capped attention, gpt-oss); transformers' own attention separates the sequences
    of a padding-free row by their position ids for every architecture."""
    if backend != "unsloth":
        return True
    from unsloth.trainer import PADDING_FREE_BLOCKLIST

    return getattr(model.config, "model_type", "") not in PADDING_FREE_BLOCKLIST


# What resuming reads from a checkpoint (transformers 5.x Trainer): the weights (_load_from_checkpoint: an adapter's
# or a model's), optimizer.pt and scheduler.pt (_load_optimizer_and_scheduler skips them silently when absent: the
# run would go on with a fresh optimizer and its schedule from step 0) and trainer_state.json, which _save_checkpoint
# writes last; rng_state.pth and scaler.pt are optional there.
CHECKPOINT_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "pytorch_model.bin",
                      "model.safetensors.index.json", "pytorch_model.bin.index.json")
CHECKPOINT_OPTIMIZER = ("optimizer.pt", "optimizer.bin")
# prefix of a checkpoint moved aside: not "checkpoint-*", which the trainer's rotation globs (and deletes)
INCOMPLETE_PREFIX = "incomplete-"


def checkpoint_missing(checkpoint) -> list[str]:
    """What `checkpoint` lacks for a resume ([] when it is complete); a cut-off trainer_state.json counts."""
    checkpoint = Path(checkpoint)
    missing = []
    if not any((checkpoint / name).is_file() for name in CHECKPOINT_WEIGHTS):
        missing.append("adapter_model.safetensors")
    if not any((checkpoint / name).is_file() for name in CHECKPOINT_OPTIMIZER):
        missing.append("optimizer.pt")
    if not (checkpoint / "scheduler.pt").is_file():
        missing.append("scheduler.pt")
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        missing.append("trainer_state.json")
    return missing


def last_checkpoint(run_dir: Path, folder=None) -> str | None:
    """The newest complete checkpoint-<step> in `folder` (run_dir/checkpoints). A newer one that a disconnect cut
    off mid-save is moved aside to incomplete-checkpoint-<step> (never deleted), with one line saying so: the
    trainer's own lookup and rotation then no longer see it, and its next save of that step starts afresh."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    folder = Path(folder or Path(run_dir) / "checkpoints")
    if not folder.is_dir():
        return None
    pattern = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
    steps = sorted(((int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := pattern.match(p.name))),
                   reverse=True)
    for _, checkpoint in steps:
        missing = checkpoint_missing(checkpoint)
        if not missing:
            return str(checkpoint)
        aside = folder / f"{INCOMPLETE_PREFIX}{checkpoint.name}"
        n = 1
        while aside.exists():
            n += 1
            aside = folder / f"{INCOMPLETE_PREFIX}{checkpoint.name}-{n}"
        checkpoint.rename(aside)
        print(f"skipped {checkpoint} (no {', '.join(missing)}: cut off mid-save): moved aside to {aside.name}, "
              "not deleted; the run resumes from an earlier checkpoint, if any")
    return None


def stage_dir(run_dir, epoch: int) -> Path:
    return Path(run_dir) / "stages" / f"epoch{epoch}"


# How a run with stages is scheduled (TrainConfig.stage_schedule; instruct.STAGE_SCHEDULES repeats these):
# "snapshot": one learning-rate schedule over all epochs, the adapter copied out at each stage;
# "restart": a full schedule (warmup, decay to 0) up to each stage, the next one from the stage's weights.
STAGE_SCHEDULES = ("restart", "snapshot")
# where report_to's loggers come from: transformers needs the package (integration_utils.is_*_available)
REPORT_TO_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}


def check_report_to(report_to: str) -> None:
    """Stop before any training when the logger `report_to` names is not installed: transformers would
    fail only once the trainer is built, or (wandb) ask for a login in the middle of a run."""
    import importlib.util

    if report_to in (None, "", "none"):
        return
    if report_to not in REPORT_TO_PACKAGES:
        raise ConfigError(f"report_to must be one of none, {', '.join(REPORT_TO_PACKAGES)}, got {report_to!r}")
    if not any(importlib.util.find_spec(name) for name in REPORT_TO_PACKAGES[report_to]):
        raise ConfigError(f"report_to={report_to!r} needs the {report_to} package: pip install {report_to}, "
                          "or set report_to = 'none' (loss_curve.png is written either way)")


def stage_schedules(stage_epochs, epochs: float, stage_schedule: str) -> list[tuple[float, float]]:
    """(first epoch, last epoch) of each learning-rate schedule of a run.

        >>> stage_schedules([1, 3], 3.0, "restart"), stage_schedules([1, 3], 3.0, "snapshot")
        ([(0, 1), (1, 3)], [(0, 3.0)])
    """
    if stage_schedule not in STAGE_SCHEDULES:
        raise ConfigError(f"stage_schedule must be one of {', '.join(STAGE_SCHEDULES)}, got {stage_schedule!r}")
    if stage_schedule == "snapshot" or not stage_epochs:
        return [(0, epochs)]
    ends = sorted(set(stage_epochs))
    ends += [epochs] if epochs > ends[-1] else []  # epochs past the last stage: one more schedule to the end
    return list(zip([0, *ends[:-1]], ends))


def save_stage(model, run_dir, epoch: int, global_step: int) -> None:
    """The adapter as it is now, as stage `epoch`; stage.json last, so its presence marks a whole stage."""
    model.save_pretrained(stage_dir(run_dir, epoch))
    (stage_dir(run_dir, epoch) / "stage.json").write_text(json.dumps({"epoch": epoch, "global_step": global_step}))


def _check_stages_before(run_dir, checkpoint, stage_epochs) -> None:
    """Stop a "snapshot" resume from `checkpoint` when a stage of an epoch it is already past was never saved
    whole (a disconnect during the stage's save in a run made before stages were saved ahead of the checkpoint):
    the resumed run would never pass that epoch's end again, and the notebook would find the stage missing only
    after the whole training."""
    epoch = json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get("epoch") or 0
    lost = [e for e in sorted(set(stage_epochs)) if e <= epoch + 1e-6
            and not (stage_dir(run_dir, e) / "stage.json").exists()]
    if lost:
        raise ConfigError(f"{stage_dir(run_dir, lost[0])} was never saved whole, and {checkpoint} is past epoch "
                          f"{lost[0]}: set resume = False to train this run again from the start (or choose "
                          "another run_name), so that the stage is saved")


def _stage_callback(run_dir, epochs):
    from transformers import TrainerCallback

    class SaveStages(TrainerCallback):
        """Saves the adapter as it is at the end of each epoch in `epochs` (stage_schedule "snapshot":
        the benchmark's epoch 1 is a point within the one schedule to the last epoch). At the epoch's last
        step, in on_step_end: the trainer runs it before _maybe_log_save_evaluate writes that step's
        checkpoint, so no checkpoint is ever past a stage that was not saved whole (on_epoch_end comes after
        that checkpoint: a disconnect while the stage was saved resumed past it, the stage lost for good)."""

        def on_step_end(self, args, state, control, model=None, **kwargs):
            epoch = round(state.epoch)
            if epoch in epochs and abs(state.epoch - epoch) < 1e-6:
                save_stage(model, run_dir, epoch, state.global_step)

    return SaveStages()


class GroupedSampler(torch.utils.data.Sampler):
    """Steps of examples of similar lengths, in random order. transformers' LengthGroupedSampler
    forms the groups (`get_length_grouped_indices`: mega-batches of 50 steps sorted by length), but
    - it draws them with the global random state, so a run resumed in a later epoch drew other
      batches than the interrupted one (tests/test_training.py); here they come from (seed, epoch),
      as the random sampler's order does;
    - it hands out each mega-batch longest first, so training saw lengths fall 50 steps at a time
      (on addition, few digits last: the demo reached 15% exact match, 60% with this shuffle); here
      the full steps are shuffled, the last, partial one stays last."""

    def __init__(self, lengths: list[int], step_size: int, seed: int):
        self.lengths, self.step_size, self.seed, self.epoch = lengths, step_size, seed, 0

    def set_epoch(self, epoch: int) -> None:  # called by accelerate's dataloader at each epoch
        self.epoch = epoch

    def __len__(self):
        return len(self.lengths)

    def __iter__(self):
        return iter(grouped_order(self.lengths, self.step_size, self.seed + self.epoch))


def grouped_order(lengths: list[int], step_size: int, seed: int) -> list[int]:
    """GroupedSampler's order of the rows of `lengths` for one epoch's `seed`."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    generator = torch.Generator().manual_seed(seed)
    indices = get_length_grouped_indices(lengths, step_size, generator=generator)
    steps = [indices[i:i + step_size] for i in range(0, len(indices), step_size)]
    full = len(indices) // step_size
    order = [*torch.randperm(full, generator=generator).tolist(), *range(full, len(steps))]
    return [i for k in order for i in steps[k]]


def answer_logits_ok(model) -> bool:
    """Whether `model` (a PEFT wrapper or not) computes logits for chosen positions only (`logits_to_keep`
    as positions) and its loss from `shift_labels`: transformers' causal LMs with the stock ForCausalLMLoss."""
    import inspect

    from transformers.loss.loss_utils import ForCausalLMLoss

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return ("logits_to_keep" in inspect.signature(base.forward).parameters
            and getattr(base, "loss_function", None) is ForCausalLMLoss)


def answer_positions(labels: torch.Tensor) -> dict:
    """The model inputs that compute the output layer and the loss only where some row of the batch has a
    label next: `logits_to_keep` (those positions) and `shift_labels` (the next token there, or IGNORE_INDEX).
    The loss is the full batch's (the same tokens, the same mean; tests/test_answer_logits.py). {} when no
    row has a label."""
    shift = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]
    keep = (shift != IGNORE_INDEX).any(0).nonzero().squeeze(1)
    return {"logits_to_keep": keep, "shift_labels": shift[:, keep]} if len(keep) else {}


def _project_trainer(trainer_cls, lean: bool):
    """`trainer_cls` with the seeded length grouping (GroupedSampler) and, with `lean`, without host
    work the trainer does at every micro-batch for metrics alone (the same adapters, bit for bit, and the same
    losses up to the order of float32 sums: tests/test_perf_bench.py). TRL's compute_loss takes the entropy
    and the token accuracy over the whole vocabulary and counts the tokens, reading three numbers back from
    the device (on a GPU, three waits for it; on a CPU, the embedded model at 8 x 64 tokens: 0.44 s of an 8.4 s step);
    Unsloth's SFTTrainer already leaves them out. Trainer counts 6 x tokens x num_parameters() for
    `total_flos`, walking every parameter each time (9-13 ms for a LoRA-wrapped 135M or 1.1B model
    on a CPU core; Unsloth counts once too): counted once here. And the output layer runs only where a label
    follows (answer_positions): answers are a few tokens of each row, the output layer is the widest matrix of
    a small model (`perf_bench.py --demo` on a 2-core CPU: 4.23 -> 4.05 s a step, the same losses; the logits
    of only those positions also take less memory on the plain-transformers GPU path)."""
    from transformers import Trainer

    class ProjectTrainer(trainer_cls):
        def _get_train_sampler(self, train_dataset=None):
            from transformers.trainer_pt_utils import LengthGroupedSampler

            sampler = super()._get_train_sampler(train_dataset)
            if isinstance(sampler, LengthGroupedSampler):  # keep its lengths and step size
                seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
                return GroupedSampler(sampler.lengths, sampler.batch_size, seed)
            return sampler

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not lean or getattr(self, "aux_loss_enabled", False) or self.args.use_liger_kernel:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            inputs["use_cache"] = False  # as TRL's: no key/value cache while training
            if getattr(self, "_answer_logits", None) is None:
                self._answer_logits = answer_logits_ok(self.accelerator.unwrap_model(model))
            if self._answer_logits and not return_outputs and "labels" in inputs:
                inputs = {**inputs, **answer_positions(inputs["labels"])}
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

        def floating_point_ops(self, inputs):
            if not lean:
                return super().floating_point_ops(inputs)
            if getattr(self, "_flop_params", None) is None:
                self._flop_params = self.model.num_parameters(exclude_embeddings=True)
            return 6 * inputs[self.model.main_input_name].numel() * self._flop_params

    return ProjectTrainer


def sft_trainer(model, tokenizer, dataset, *, run_dir, settings, backend: str, stage_epochs=(), callbacks=(),
                trl_step_metrics: bool = False, checkpoint_dir=None, epochs: float | None = None,
                data_seed: int | None = None, optim: str | None = None):
    """TRL's SFTTrainer as train_sft runs it: answer-only labels, length-grouped or padding-free
    batches as `settings` say, checkpoints to `checkpoint_dir` (run_dir/checkpoints), `epochs`
    (settings.epochs) epochs, logging to `settings.report_to` too. `trl_step_metrics`: TRL's
    per-step metrics and its NaN filter of the logged loss, as this function trained before (the
    reference tests compare the default with). `optim`: the optimizer to step with instead of
    resolve_optim's (a resumed checkpoint's)."""
    from trl import SFTConfig, SFTTrainer

    from helpers.modeling import compute_dtype

    run_dir = Path(run_dir)
    report_to = getattr(settings, "report_to", "none")
    check_report_to(report_to)
    dtype = compute_dtype()  # what the loader computed in; frozen norms are fp32 after kbit preparation
    on_gpu = torch.cuda.is_available()
    args = SFTConfig(
        output_dir=str(checkpoint_dir or run_dir / "checkpoints"),
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        num_train_epochs=settings.epochs if epochs is None else epochs,
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_steps,
        lr_scheduler_type="linear",
        logging_steps=max(1, min(10, settings.save_steps)),
        save_steps=settings.save_steps,
        save_total_limit=2,
        seed=settings.seed,
        data_seed=settings.seed if data_seed is None else data_seed,
        bf16=on_gpu and dtype == torch.bfloat16,
        fp16=on_gpu and dtype == torch.float16,
        use_cpu=not on_gpu,
        optim=optim or resolve_optim(settings, on_gpu, model_parameters(model) if on_gpu and model is not None
                                     else None),
        gradient_checkpointing=settings.gradient_checkpointing and backend != "unsloth",
        max_length=settings.max_seq_length,
        packing=False,
        # similar lengths in a batch: LengthGroupedSampler over batch_size x grad_accum examples
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        loss_type="nll",
        # tensorboard writes under <checkpoints>/runs/ (transformers' default logging dir)
        report_to=report_to,
        dataloader_num_workers=0,
        disable_tqdm=False,
        # transformers replaces a NaN or inf loss in the logged loss by the running mean (`logging_nan_inf_filter`,
        # on by default): train_sft's check of the logged losses then never saw a NaN, and on a GPU the filter
        # waits for the GPU at every micro-batch. Unsloth's SFTConfig already turns it off.
        logging_nan_inf_filter=trl_step_metrics,
    )
    one_gpu(args)
    multiple = graph_pad_multiple(settings, backend)
    if multiple and settings.padding_free:
        raise ConfigError("cuda_graphs needs padded batches of few shapes: set padding_free = False")
    buckets = length_buckets(map(len, dataset["input_ids"]), multiple) if multiple else 0
    if buckets > 1 and not settings.gradient_checkpointing:
        # without checkpointing the graphs follow a whole step's sequence of shapes: each new one is recorded again
        print(f"warning: cuda_graphs without gradient_checkpointing pays only when every row pads to one length "
              f"(here {buckets} multiples of {multiple} tokens; measured 5.6x slower on an H200): set "
              "gradient_checkpointing = True or cuda_graphs = False")
    collator = answer_only_collator(tokenizer, padding_free=settings.padding_free and padding_free_ok(model, backend),
                                    pad_to_multiple_of=multiple)
    trainer = _project_trainer(SFTTrainer, lean=not trl_step_metrics and backend != "unsloth")(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, data_collator=collator,
        callbacks=[*([_stage_callback(run_dir, set(stage_epochs))] if stage_epochs else []), *callbacks] or None)
    if backend != "unsloth":
        keep_adapters_fp32(model)
    return trainer


def one_gpu(args) -> None:
    """A run trains on one GPU (cuda:0), also where more are visible (Kaggle's "GPU T4 x2"; helpers.sweep_ray runs one
    notebook per GPU instead). A Trainer that is not launched distributed counts every visible GPU in `n_gpu`: it
    wraps a model that is not quantized in DataParallel and, quantized or not, takes `batch_size` x the GPUs' rows a
    micro-batch into the one model, another batch than the settings'. Unsloth's trainers do the same for theirs."""
    from transformers.training_args import ParallelMode

    if args.parallel_mode == ParallelMode.NOT_DISTRIBUTED and args.n_gpu > 1:
        args._n_gpu = 1


def dataset_digest(dataset) -> str | None:
    """16 hex of a sha256 over the input_ids and labels of every row of `dataset`, in its order (a select or
    shuffle honoured), None if it has neither column. train_result.json records it: a finished adapter is
    reused only for the rows it was trained on. Read through Arrow: a tenth of a second for 4M tokens."""
    import hashlib

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = [c for c in ("input_ids", "labels") if c in dataset.column_names]
    if not columns:
        return None
    table = dataset.with_format("arrow")[:]
    digest = hashlib.sha256()
    for name in columns:
        column = table.column(name).combine_chunks()
        digest.update(name.encode() + b"\0")
        digest.update(np.asarray(pc.list_value_length(column).cast(pa.int64())).tobytes())
        digest.update(np.asarray(pc.list_flatten(column).cast(pa.int64())).tobytes())
    return digest.hexdigest()[:16]


OTHER_DATA = "other-data"  # suffix of what train_sft moves aside: not a name TRAINING_STATE or the trainer globs


# in run_dir, the digest of the rows its training started on (written before the first step): a checkpoint is
# resumed only on those rows
DATA_MARK = "training_data.json"


def _started_on(run_dir: Path) -> str | None:
    """The digest of the rows run_dir's training started on: DATA_MARK's, else train_result.json's data_digest (a
    run finished before DATA_MARK existed); None where neither says (a run from before the digest: kept as is)."""
    for name in (DATA_MARK, "train_result.json"):
        try:
            found = json.loads((run_dir / name).read_text()).get("data_digest")
        except (OSError, ValueError, AttributeError):
            continue
        if found:
            return found
    return None


def finished_training(run_dir) -> dict | None:
    """What train_sft returns when it reuses run_dir's finished adapter (train_result.json, "reused_adapter"), found
    without a model; None while there is none to reuse. A caller that skips loading the model when every result
    of it is kept asks this (helpers.tasks.mmlu, small_vs_large)."""
    run_dir = Path(run_dir)
    if not (run_dir / "adapter" / "adapter_config.json").exists():
        return None
    try:
        return json.loads((run_dir / "train_result.json").read_text()) | {"reused_adapter": True}
    except (OSError, ValueError):
        return None


def move_aside_other_data(run_dir, digest: str) -> list[Path]:
    """A training of other rows than this call's (a re-run whose data changed), finished or stopped at a
    checkpoint: its adapter, train_result.json, checkpoints and stages are moved aside to
    <name>.other-data-<time>, never deleted, with one line; the call then trains afresh. Reusing or resuming it
    would report one run trained on two data sets."""
    import time

    run_dir = Path(run_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = []
    for name in ("adapter", "checkpoints", "stages", "train_result.json"):
        path = run_dir / name
        if path.exists():
            stem, dot, suffix = name.partition(".")
            aside = run_dir / f"{stem}.{OTHER_DATA}-{stamp}{dot}{suffix}"
            path.rename(aside)
            moved.append(aside)
    print(f"{run_dir} holds a training on other data (digest {digest}): moved aside to "
          f"{', '.join(p.name for p in moved)}, not deleted; training again on this data")
    return moved


def schedule_checkpoints(run_dir: Path, start: float, end: float) -> Path:
    """Where stage_schedule "restart" checkpoints its schedule of epochs start..end."""
    return Path(run_dir) / "checkpoints" / f"epochs{start:g}-{end:g}"


def train_sft(model, tokenizer, dataset, *, run_dir, settings, backend: str, resume: bool = True,
              stage_epochs=(), stage_schedule: str = "snapshot", callbacks=(),
              trl_step_metrics: bool = False) -> dict:
    """Train the LoRA adapters of `model` on `dataset`; checkpoints go to run_dir/checkpoints,
    the adapter to run_dir/adapter, and with `stage_epochs` the adapter at the end of those epochs
    to run_dir/stages/epoch<N>; `callbacks` are extra TrainerCallbacks. `stage_schedule` (see
    STAGE_SCHEDULES): "snapshot" trains one schedule over settings.epochs; "restart" trains one
    schedule (warmup, decay, a new optimizer) up to each stage, then the next from that stage's
    weights, with checkpoints in run_dir/checkpoints/epochs<a>-<b>. With `resume`, an interrupted
    run continues from its last checkpoint (a finished stage of "restart" is not trained again),
    and a finished one loads its adapter instead of training again (one trained on other rows than
    `dataset`'s, by train_result.json's data_digest, is moved aside and trained again:
    move_aside_other_data). After its first timed steps the run prints its expected wall time and
    peak memory against the card (run_dir/estimate.json; helpers/estimate.py). The training loss of
    every logged step goes to run_dir/loss_curve.png and loss_curve.json (after each schedule, so an
    interrupted run keeps those of its finished ones)."""
    check_report_to(getattr(settings, "report_to", "none"))  # before anything is loaded or written
    schedules = stage_schedules(stage_epochs, settings.epochs, stage_schedule)
    restart = len(schedules) > 1
    if restart and settings.max_steps > 0:
        raise ConfigError("stage_schedule 'restart' trains whole epochs to each stage: set max_steps = -1")
    from helpers.estimate import CheckpointSpace, WallTimeEstimate

    run_dir = Path(run_dir)
    if resume:  # a run_name folder that other settings trained: refused before the adapter or a checkpoint loads
        from helpers.runs import check_resumable

        check_resumable(run_dir, settings)
    adapter_dir, digest = run_dir / "adapter", dataset_digest(dataset)
    if resume:  # a training in run_dir is reused or resumed only on the rows it started on
        from helpers.runs import TRAINING_STATE

        started_on = _started_on(run_dir)
        if started_on not in (None, digest) and any((run_dir / name).exists() for name in TRAINING_STATE):
            move_aside_other_data(run_dir, started_on)
        reused = finished_training(run_dir)
        if reused is not None:
            load_adapter(model, adapter_dir)
            return reused
    if digest:
        from helpers.runs import write_json

        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / DATA_MARK, {"data_digest": digest})
    known = _read_loss_curve(run_dir) if resume else {}
    estimate, space = WallTimeEstimate(run_dir), CheckpointSpace(run_dir)
    points, parts, offset, weights, trainer = [], [], 0, None, None
    use_cache, model.config.use_cache = model.config.use_cache, False
    try:
        for index, (start, end) in enumerate(schedules):
            folder = schedule_checkpoints(run_dir, start, end) if restart else run_dir / "checkpoints"
            stage_json = stage_dir(run_dir, end) / "stage.json" if restart and end in stage_epochs else None
            if resume and stage_json is not None and stage_json.exists():
                # a stage finished by an earlier call: its weights start the next schedule, its steps are done
                steps = json.loads(stage_json.read_text())["global_step"] - offset
                part = next((p for p in known.get("schedules", []) if p["epochs"] == [start, end]), {})
                points += [p for p in known.get("points", []) if p["schedule"] == index]
                parts.append({"epochs": [start, end], "steps": steps, "train_loss": part.get("train_loss"),
                              "reused_stage": True})
                offset, weights = offset + steps, stage_dir(run_dir, end)
                continue
            checkpoint = last_checkpoint(run_dir, folder) if resume else None
            kept_optim = None  # "auto" resumes with the optimizer whose state the checkpoint holds; a schedule
            if getattr(settings, "optim", "auto") == "auto":  # after a stage (restart), the kind the run began with
                if checkpoint is None and index:
                    checkpoint_before = last_checkpoint(run_dir, schedule_checkpoints(run_dir, *schedules[index - 1]))
                    kept_optim = checkpoint_optim(checkpoint_before) if checkpoint_before else None
                elif checkpoint is not None:
                    kept_optim = checkpoint_optim(checkpoint)
            if checkpoint is not None and stage_epochs and not restart:
                _check_stages_before(run_dir, checkpoint, stage_epochs)
            if checkpoint is None and weights is not None:
                load_adapter(model, weights)  # a notebook restarted after the stage: the stage's weights
            trainer = sft_trainer(
                model, tokenizer, dataset, run_dir=run_dir, settings=settings, backend=backend,
                stage_epochs=() if restart else stage_epochs, callbacks=[estimate, space, *callbacks],
                trl_step_metrics=trl_step_metrics, checkpoint_dir=folder, epochs=end - start,
                # the grouped and accelerate's random sampler draw epoch e's order from data_seed + e: each
                # epoch gets the order it has in one schedule, not the first epoch's again
                data_seed=settings.seed + int(start), optim=kept_optim)
            output = trainer.train(resume_from_checkpoint=checkpoint)
            history = trainer.state.log_history
            points += [{"step": offset + h["step"], "epoch": start + h["epoch"], "loss": h["loss"],
                        "learning_rate": h.get("learning_rate"), "schedule": index}
                       for h in history if "loss" in h]
            parts.append({"epochs": [start, end], "steps": trainer.state.global_step,
                          "train_loss": output.training_loss, "runtime_s": output.metrics.get("train_runtime"),
                          "resumed_from": checkpoint})
            offset += trainer.state.global_step
            if stage_json is not None:
                save_stage(model, run_dir, end, offset)
            write_loss_curve(run_dir, points, parts, stage_epochs, stage_schedule)
        if trainer is None:  # every stage was saved by an earlier call, which stopped before the adapter
            load_adapter(model, weights)
            trainer = sft_trainer(model, tokenizer, dataset, run_dir=run_dir, settings=settings, backend=backend,
                                  checkpoint_dir=folder, epochs=end - start)
            write_loss_curve(run_dir, points, parts, stage_epochs, stage_schedule)
    finally:
        model.config.use_cache = use_cache
    losses = [p["loss"] for p in points]
    if losses and not all(math.isfinite(x) for x in losses):
        raise FloatingPointError(f"training loss became {losses[-1]}: lower learning_rate")
    weighted = [(p["train_loss"], p["steps"]) for p in parts if p["train_loss"] is not None]
    collator = trainer.data_collator
    result = {
        "steps": offset,
        # one schedule: the trainer's mean loss; restart: the schedules' means weighted by their steps
        "train_loss": sum(x * n for x, n in weighted) / max(1, sum(n for _, n in weighted)) if weighted else None,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "runtime_s": sum(p.get("runtime_s") or 0 for p in parts),  # of this call's training
        "examples": len(dataset),
        "data_digest": digest,  # a re-run reuses the adapter only for these same rows
        "resumed_from": next((p["resumed_from"] for p in parts if p.get("resumed_from")), None),
        "stage_schedule": stage_schedule if stage_epochs else None,
        "effective": {  # what the trainer really used (Unsloth may change some of it)
            "batch_size": trainer.args.per_device_train_batch_size,
            "grad_accum": trainer.args.gradient_accumulation_steps,
            "padding_free": collator.inner.padding_free,  # TRL's own flag refuses a custom collator
            "pad_to_multiple_of": collator.inner.pad_to_multiple_of,  # GRAPH_BUCKET with cuda_graphs
            "sampling": trainer.args.train_sampling_strategy,
            "optim": str(getattr(trainer.args.optim, "value", trainer.args.optim)),
            "adapter_dtype": sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()
                                     if p.requires_grad}),
        },
    }
    if restart:
        result["schedules"] = parts
    (run_dir / "train_result.json").write_text(json.dumps(result, indent=2))
    model.save_pretrained(adapter_dir)  # last: its presence marks the training as finished
    return result


def _read_loss_curve(run_dir) -> dict:
    path = Path(run_dir) / "loss_curve.json"
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:  # cut off mid-write: the finished schedules' points are then lost, not the run
        return {}


def write_loss_curve(run_dir, points: list[dict], schedules: list[dict], stage_epochs, stage_schedule: str) -> Path:
    """run_dir/loss_curve.json (every logged step: step, epoch, loss, learning_rate, schedule) and
    loss_curve.png, the stages marked at the step their stage.json names."""
    from helpers.plots import plot_loss_curve

    run_dir = Path(run_dir)
    stages = []
    for epoch in sorted(set(stage_epochs)):
        marker = stage_dir(run_dir, epoch) / "stage.json"
        if marker.exists():
            stages.append(json.loads(marker.read_text()))
    data = {"stage_schedule": stage_schedule if stage_epochs else None, "points": points, "stages": stages,
            "schedules": [{k: v for k, v in p.items() if k not in ("resumed_from", "reused_stage", "runtime_s")}
                          for p in schedules]}
    (run_dir / "loss_curve.json").write_text(json.dumps(data, indent=1))
    title = f"stage_schedule {stage_schedule}" if stage_epochs else ""
    return plot_loss_curve(points, stages, run_dir / "loss_curve.png", title=title)


def keep_adapters_fp32(model) -> None:
    """Undo TRL's cast of a quantized model's trainable parameters to bf16 (trl 1.14.2,
    SFTTrainer.__init__, following the QLoRA paper). bf16 adapters lose small updates to rounding, a
    CPU computes bf16 slowly, and fp16 mixed precision (T4) needs fp32 master weights."""
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def load_adapter(model, adapter_dir) -> None:
    from peft import load_peft_weights, set_peft_model_state_dict

    set_peft_model_state_dict(model, load_peft_weights(str(adapter_dir)))
