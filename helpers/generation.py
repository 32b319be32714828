"""Batched greedy generation with left padding, stopping at the model's end-of-turn tokens.

    >>> answers = generate(model, tokenizer, ["Q: 2+3=? A:"], chat=False, stop_token_ids=info.stop_token_ids)
"""

from __future__ import annotations

import contextlib

import torch
from tqdm.auto import tqdm

from helpers.modeling import UNSLOTH
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
             desc: str = "generate") -> list[str]:
    """Answers to `prompts` (texts, or with `chat` also message lists), in order: greedy, or sampled
    at `temperature` > 0. Prompts are sorted by length so that each batch holds similar lengths
    (less padding); the answer excludes the prompt and the stop token."""
    encoded = [encode_prompt(tokenizer, render_prompt(tokenizer, p, chat=chat), chat=chat) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    answers = [""] * len(prompts)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    with inference_mode(model), tqdm(total=len(prompts), desc=desc, unit="q") as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding: every prompt ends where generation starts
                ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
                mask[row, width - len(encoded[i]):] = 1
            out = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                eos_token_id=list(stop_token_ids), pad_token_id=pad_id,
                **({"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0} if temperature > 0
                   else {"do_sample": False}),
            )
            for row, i in enumerate(idx):
                new = out[row, width:].tolist()
                cut = next((j for j, t in enumerate(new) if t in stop_token_ids), len(new))
                answers[i] = tokenizer.decode(new[:cut], skip_special_tokens=True)
            bar.update(len(idx))
    return answers


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


def continuation_logprobs(model, tokenizer, requests: list[tuple[str, str]], *, batch_size: int = 16,
                          desc: str = "log-likelihood") -> list[float]:
    """Summed log-probability of each continuation given its context, as lm-evaluation-harness's
    `loglikelihood` computes it (lm_eval/api/model.py, TemplateLM._encode_pair): trailing spaces of
    the context move to the continuation, the continuation's tokens are those of
    encode(context + continuation) after the first len(encode(context)) tokens, and their
    log-softmax scores are summed. Plain text, the tokenizer's own special tokens.

        >>> continuation_logprobs(model, tok, [("...\\nAnswer:", " A"), ("...\\nAnswer:", " B")])
        [-1.9, -0.4]
    """
    pairs = []
    for context, continuation in requests:
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = tokenizer(context + continuation)["input_ids"]
        n_context = len(tokenizer(context)["input_ids"])
        if n_context >= len(whole) or n_context == 0:
            raise ValueError(f"continuation {continuation!r} adds no token to its context (or the context is empty)")
        pairs.append((whole, n_context))
    # The model reads whole[:-1]. Requests whose inputs are equal (one-token continuations of one
    # context: " A", " B", " C", " D") share a forward pass, as lm-eval's one-token caching does.
    first_needed = {}  # per distinct input: the first position whose prediction is scored
    for whole, n_context in pairs:
        key = tuple(whole[:-1])
        first_needed[key] = min(first_needed.get(key, n_context - 1), n_context - 1)
    inputs = sorted(first_needed, key=len, reverse=True)
    logprobs_of = {}
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with inference_mode(model), tqdm(total=len(inputs), desc=desc, unit="seq") as bar:
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size]
            ids, mask = right_padded(batch, pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            for row, x in enumerate(batch):  # log-softmax only where a continuation token is scored
                start = first_needed[x]
                logprobs_of[x] = (start, torch.log_softmax(logits[row, start:len(x)].float(), dim=-1).cpu())
            bar.update(len(batch))
    scores = []
    for whole, n_context in pairs:
        start, table = logprobs_of[tuple(whole[:-1])]
        targets = torch.tensor(whole[n_context:])
        # the token at position t is predicted by the logits at t - 1
        scores.append(table[n_context - 1 - start:].gather(1, targets[:, None]).sum().item())
    return scores


def mean_embeddings(model, tokenizer, texts: list[str], *, batch_size: int = 16) -> torch.Tensor:
    """One vector per text: the last hidden layer averaged over the text's tokens (no model hub
    needed; the loaded model embeds). Rows are float32 on the CPU."""
    vectors = []
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with inference_mode(model):
        for start in range(0, len(texts), batch_size):
            encoded = [tokenizer(t)["input_ids"] or [pad_id] for t in texts[start:start + batch_size]]
            ids, mask = right_padded(encoded, pad_id)
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
            hidden = out.hidden_states[-1].float().cpu()
            m = mask[:, :, None].float()
            vectors.append((hidden * m).sum(1) / m.sum(1))
    return torch.cat(vectors) if vectors else torch.zeros((0, 0))
