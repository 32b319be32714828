"""Unsloth keeps the max_seq_length a model was loaded with and cuts longer inputs to it: the addition notebook
(64-token training rows, 112-token evaluation prompts with worked examples) stopped in its first evaluation on a
GPU. generate(), the log-likelihood scorer and mean_embeddings raise the limit before reading
(helpers.modeling.cover_context)."""

import torch
from conftest import TINY

from helpers import modeling


def test_cover_context_raises_unsloths_length_limit_and_never_lowers_it():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.Linear(2, 2)))
    for module in [model, *model.modules()]:
        module.max_seq_length = 64
    model[0].max_seq_length = 4096
    modeling.cover_context(model, 136)
    assert [m.max_seq_length for m in model.modules()] == [136, 4096, 136, 136]
    modeling.cover_context(model, 100)
    assert model.max_seq_length == 136
    plain = torch.nn.Linear(2, 2)  # a transformers model: no limit, nothing set
    modeling.cover_context(plain, 136)
    assert not hasattr(plain, "max_seq_length")


def test_generation_and_scoring_cover_their_longest_input(tiny_model, embedded_tokenizer):
    """On a GPU the addition notebook (trained on 64-token rows) stopped in its first evaluation: Unsloth cut
    the 112-token prompts to the model's max_seq_length and the shapes no longer matched. generate(), the
    log-likelihood scorer and mean_embeddings now raise that limit before reading (here on a CPU model given
    Unsloth's attribute)."""
    from transformers import AutoModelForCausalLM

    from helpers.generation import generate, mean_embeddings
    from helpers.loglik import continuation_logliks
    from helpers.registry import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model(TINY).local_path, dtype=torch.float32)
    for module in [model, *model.modules()]:
        module.max_seq_length = 8
    prompt = "Add the numbers. 1234567 + 7654321 = 8888888. 5 + 6 = 11. 123 + 456 ="
    n_prompt = len(embedded_tokenizer(prompt)["input_ids"])
    generate(model, embedded_tokenizer, [prompt, "1 + 1 ="], chat=False, stop_token_ids=[], max_new_tokens=5)
    assert n_prompt > 8 and all(m.max_seq_length == n_prompt + 5 for m in model.modules())
    continuation_logliks(model, embedded_tokenizer, [(prompt * 3, " 579")])
    assert model.max_seq_length > 3 * n_prompt - 3
    mean_embeddings(model, embedded_tokenizer, ["short", prompt * 5])  # mmlu_teacher's targeted questions
    assert model.max_seq_length == len(embedded_tokenizer(prompt * 5)["input_ids"])
