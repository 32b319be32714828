"""Log-likelihood of continuations, and multiple-choice scoring by it (HellaSwag, MMLU), the way
lm-evaluation-harness does it for a causal model (lm_eval/api/model.py `_encode_pair`,
lm_eval/api/task.py `process_results` of output_type multiple_choice).

    >>> lls = continuation_logliks(model, tokenizer, [("The sky is", " blue"), ("The sky is", " green")])
    >>> result = score_choices(model, tokenizer, [("Question: 2+2?\\nAnswer:", ["3", "4"], 1)])
    >>> result["acc"], result["acc_norm"]

Prompts are plain text (no chat template), as lm-eval's HF backend sends them by default; the
context's trailing spaces move to the continuation so words tokenize as they would in running text.
Text is encoded as lm-eval encodes it and as generation does (helpers.generation.encode_text): with
the tokenizer's default BOS (Llama, TinyLlama, Gemma, Mistral), never a second one.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from helpers.generation import encode_text, inference_mode, prefix_token_id, right_padded
from helpers.modeling import cover_context


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) as lm-eval 0.4.13 makes them (lm_eval/api/model.py
    `_encode_pair`, causal branch, and `loglikelihood`): the context's trailing spaces move to the
    continuation; the context is encoded alone and the whole text is encoded and cut after as many
    tokens, both with the tokenizer's default BOS (`encode_text`). An empty context is the prefix
    token (BOS, else EOS) alone."""
    if not context:
        cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        prefix = prefix_token_id(tokenizer)
        return ([prefix], cont) if cont[:1] != [prefix] else (cont[:1], cont[1:])
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = encode_text(tokenizer, context + continuation)
    context_ids = encode_text(tokenizer, context)
    return context_ids, whole[len(context_ids):]


def continuation_logliks(model, tokenizer, requests: list[tuple[str, str]], *, batch_size: int = 16,
                         max_length: int = 2048, desc: str = "log-likelihood") -> list[float]:
    """Sum of log p(continuation tokens | context) for each (context, continuation), in order.
    Too-long inputs lose tokens from the left of the context, as in lm-eval. Requests that feed the
    model the same tokens (the one-token letters " A" .. " D" after one context) share a forward
    pass, as lm-eval's one-token caching does, and log-softmax is taken only where a token is scored."""
    encoded = [encode_pair(tokenizer, c, x) for c, x in requests]
    for i, (_, cont) in enumerate(encoded):
        if not cont:
            raise ValueError(f"request {i} has an empty continuation: {requests[i]!r}")
    inputs = []  # (what the model reads, the continuation's tokens)
    for context, cont in encoded:
        whole = (context + cont)[-(max_length + 1):]
        inputs.append((tuple(whole[:-1]), whole[-len(cont):]))
    first = {}  # per distinct input: the first position whose logits score a token (t predicts t + 1)
    for x, cont in inputs:
        first[x] = min(first.get(x, len(x) - len(cont)), len(x) - len(cont))
    distinct = sorted(first, key=len, reverse=True)
    cover_context(model, max(map(len, distinct), default=0))
    tables = {}
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with inference_mode(model), tqdm(total=len(distinct), desc=desc, unit="seq") as bar:
        for start in range(0, len(distinct), batch_size):
            batch = distinct[start:start + batch_size]
            ids, mask = right_padded(batch, pad)  # right padding: positions stay 0..len-1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            for row, x in enumerate(batch):
                tables[x] = torch.log_softmax(logits[row, first[x]:len(x)].float(), dim=-1).cpu()
            bar.update(len(batch))
    out = []
    for x, cont in inputs:
        offset = len(x) - len(cont) - first[x]
        rows = tables[x][offset:offset + len(cont)]
        out.append(float(rows.gather(1, torch.tensor(cont)[:, None]).sum()))
    return out


def score_choices(model, tokenizer, items: list[tuple[str, list[str], int]], *, delimiter: str = " ",
                  batch_size: int = 16) -> dict:
    """Multiple choice by log-likelihood. Each item is (context, choices, gold index); a choice is
    scored as `delimiter + choice` after the context (lm-eval's target_delimiter). acc takes the
    choice of highest log-likelihood, acc_norm the highest log-likelihood per character of the choice
    (lm-eval: `lls / completion_len` with completion_len = len(choice)).

    Returns {"acc", "acc_norm": per-item 0/1 lists, "pred", "pred_norm", "logliks"}.
    """
    requests = [(context, delimiter + choice) for context, choices, _ in items for choice in choices]
    flat = continuation_logliks(model, tokenizer, requests, batch_size=batch_size)
    result = {"acc": [], "acc_norm": [], "pred": [], "pred_norm": [], "logliks": []}
    start = 0
    for _, choices, gold in items:
        lls = flat[start:start + len(choices)]
        start += len(choices)
        pred = max(range(len(choices)), key=lambda j: lls[j])
        pred_norm = max(range(len(choices)), key=lambda j: lls[j] / len(choices[j]))
        result["pred"].append(pred)
        result["pred_norm"].append(pred_norm)
        result["acc"].append(float(pred == gold))
        result["acc_norm"].append(float(pred_norm == gold))
        result["logliks"].append(lls)
    return result
