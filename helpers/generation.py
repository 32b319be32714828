"""Batched greedy generation with left padding, stopping at the model's end-of-turn tokens.

    >>> answers = generate(model, tokenizer, ["Q: 2+3=? A:"], chat=False, stop_token_ids=info.stop_token_ids)
"""

from __future__ import annotations

import contextlib

import torch
from tqdm.auto import tqdm

from helpers.modeling import UNSLOTH, cover_context
from helpers.sft import encode_prompt, render_prompt


@contextlib.contextmanager
def inference_mode(model):
    """Eval mode (and Unsloth's fast inference kernels) for the block, training mode after."""
    was_training = model.training
    if UNSLOTH:
        from unsloth import FastLanguageModel

        FastLanguageModel.for_inference(model)
    model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        if was_training:
            if UNSLOTH:
                FastLanguageModel.for_training(model)
            model.train()


def generate(model, tokenizer, prompts: list, *, chat: bool, stop_token_ids: list[int],
             max_new_tokens: int = 64, batch_size: int = 32, temperature: float = 0.0,
             min_new_tokens: int = 0, desc: str = "generate") -> list[str]:
    """Answers to `prompts` (texts, or with `chat` also message lists), in order: greedy, or sampled
    at `temperature` > 0. Prompts are sorted by length so that each batch holds similar lengths
    (less padding); the answer excludes the prompt and the stop token. `batch_size` 0 picks as many
    prompts as the free GPU memory holds (`auto_batch_size`); a batch that runs out of GPU memory is
    split in half and retried. `min_new_tokens` holds the stop tokens back that long (benchmarks of
    speed on random weights)."""
    encoded = encode_prompts(tokenizer, prompts, chat=chat)
    cover_context(model, max((len(x) for x in encoded), default=0) + max_new_tokens)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    batch_size = batch_size if batch_size >= 1 else auto_batch_size(model, encoded, max_new_tokens)
    answers = [""] * len(prompts)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    sampling = ({"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0} if temperature > 0
                else {"do_sample": False})
    start = 0
    with inference_mode(model), tqdm(total=len(prompts), desc=desc, unit="q") as bar:
        while start < len(order):
            idx = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding: every prompt ends where generation starts
                ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
                mask[row, width - len(encoded[i]):] = 1
            try:
                out = model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                    **({"min_new_tokens": min_new_tokens} if min_new_tokens else {}),
                    eos_token_id=list(stop_token_ids), pad_token_id=pad_id, **sampling)
            except torch.OutOfMemoryError:
                if len(idx) == 1:
                    raise
                batch_size = len(idx) // 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                bar.write(f"{desc}: out of GPU memory with {len(idx)} prompts at once; going on with {batch_size}")
                continue
            for row, i in enumerate(idx):
                new = out[row, width:].tolist()
                cut = next((j for j, t in enumerate(new) if t in stop_token_ids), len(new))
                answers[i] = tokenizer.decode(new[:cut], skip_special_tokens=True)
            bar.update(len(idx))
            start += len(idx)
    return answers


def prefix_token_id(tokenizer) -> int:
    """The token lm-eval puts before an empty context: BOS, or EOS where there is no BOS
    (lm_eval/models/huggingface.py `prefix_token_id`)."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of plain text as lm-eval 0.4.13 encodes it (HFLM.tok_encode): with the tokenizer's
    default special tokens (a BOS for the Llama, TinyLlama, Gemma and Mistral tokenizers, nothing for
    SmolLM2 or Qwen), except when the text already starts with that token's text, which would
    otherwise be doubled. Generation and log-likelihood scoring both encode plain text here, so a
    model is scored on the same tokens it is prompted with."""
    prefix = prefix_token_id(tokenizer)
    prefix_text = tokenizer.decode([prefix]) if prefix is not None else ""
    starts_with_bos = bool(prefix_text) and text.startswith(prefix_text)
    return tokenizer(text, add_special_tokens=not starts_with_bos)["input_ids"]


def encode_prompts(tokenizer, prompts: list, *, chat: bool) -> list[list[int]]:
    """The token ids generation starts from (chat template with the assistant's turn opened). Plain
    text: `encode_text`. Chat: no special tokens added, as training encodes it (helpers/sft.py
    `encode_prompt`): a template that wants a BOS writes it into the text."""
    if not chat:
        return [encode_text(tokenizer, p) for p in prompts]
    return [encode_prompt(tokenizer, render_prompt(tokenizer, p, chat=True), chat=True) for p in prompts]


def _text_config(config):
    """The language model's part of a config (multimodal configs nest it as `text_config`)."""
    return getattr(config, "text_config", None) or config


def kv_bytes_per_token(config, dtype_bytes: int = 2) -> int:
    """Bytes of key/value cache one token takes in every layer (an upper bound for sliding-window
    layers, which keep fewer)."""
    text = _text_config(config)
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    return 2 * text.num_hidden_layers * kv_heads * head_dim * dtype_bytes


def auto_batch_size(model, encoded: list[list[int]], max_new_tokens: int, *, cap: int = 64, cpu: int = 16,
                    free_bytes: int | None = None) -> int:
    """How many of the `encoded` prompts to generate at once: on a GPU as many as the key/value
    cache of the longest prompt plus `max_new_tokens` fits into 60% of the free memory, beside one
    row of float32 logits each, at most `cap`; `cpu` on a CPU. Never more than the prompts."""
    if free_bytes is None:
        if not torch.cuda.is_available():
            return max(1, min(len(encoded), cpu))
        free_bytes, _ = torch.cuda.mem_get_info()
    tokens = max((len(x) for x in encoded), default=0) + max_new_tokens
    per_row = kv_bytes_per_token(model.config) * tokens + 8 * _text_config(model.config).vocab_size
    return max(1, min(len(encoded), cap, int(0.6 * free_bytes // per_row)))


def right_padded(sequences, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of token lists padded on the right: every position is the one an
    unpadded run would have (no position ids to fix), which suits scoring, not generation."""
    width = max(len(x) for x in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, x in enumerate(sequences):
        ids[row, :len(x)] = torch.tensor(list(x))
        mask[row, :len(x)] = 1
    return ids, mask


def mean_embeddings(model, tokenizer, texts: list[str], *, batch_size: int = 16) -> torch.Tensor:
    """One vector per text: the last hidden layer averaged over the text's tokens (no model hub
    needed; the loaded model embeds). Rows are float32 on the CPU."""
    vectors = []
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with inference_mode(model):
        for start in range(0, len(texts), batch_size):
            encoded = [tokenizer(t)["input_ids"] or [pad_id] for t in texts[start:start + batch_size]]
            cover_context(model, max(map(len, encoded)))  # Unsloth would cut a longer text (and its mask not)
            ids, mask = right_padded(encoded, pad_id)
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
            hidden = out.hidden_states[-1].float().cpu()
            m = mask[:, :, None].float()
            vectors.append((hidden * m).sum(1) / m.sum(1))
    return torch.cat(vectors) if vectors else torch.zeros((0, 0))
