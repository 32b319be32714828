"""A two-layer random llama with LoRA on the embedded vocabulary, and train_sft on it over Alpaca-like rows
(scripts/perf_bench.py's length_rows): a CPU trains it in a second. Used by test_perf_bench (the lean trainer
against TRL's), test_answer_logits and test_optim."""

import dataclasses
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import perf_bench  # noqa: E402


def tiny_lora_model(tokenizer, width: int = 16, r: int = 4):
    """`width` the hidden size (bitsandbytes keeps the states of tensors under 4,096 elements in 32 bits: an
    r x width LoRA matrix needs width 256 at r 16 for 8-bit states)."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=256, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id)
    return get_peft_model(LlamaForCausalLM(config), LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0,
                                                               target_modules=["q_proj", "v_proj"],
                                                               task_type="CAUSAL_LM"))


def tiny_settings(**kw):
    from helpers.tasks.instruct import TrainConfig

    return dataclasses.replace(TrainConfig(), batch_size=2, grad_accum=2, max_steps=4, warmup_steps=0, save_steps=2,
                               learning_rate=1e-2, max_seq_length=128, **kw)


def train_tiny(tokenizer, run_dir, settings=None, width: int = 16, r: int = 4, **kw):
    """(micro-batch losses, train_sft's report, the trainer's log history, LoRA weights after); `kw` go to
    train_sft, `settings` default to tiny_settings()."""
    from datasets import Dataset

    from helpers.sft import train_sft

    model, losses = tiny_lora_model(tokenizer, width, r), []
    hook = model.register_forward_hook(lambda module, args, out: losses.append(out.loss.detach().clone()))
    rows = perf_bench.length_rows(tokenizer, 16, 128, "alpaca")
    report = train_sft(model, tokenizer, Dataset.from_list(rows), run_dir=run_dir, settings=settings or tiny_settings(),
                       backend="transformers", **{"resume": False, **kw})
    hook.remove()
    state = json.loads((Path(run_dir) / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    lora = {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k}
    return losses, report, state, lora
