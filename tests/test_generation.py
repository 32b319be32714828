"""helpers.generation.generate: batches answer like one prompt at a time, an out-of-memory batch is
split and retried, and the automatic batch size follows the key/value cache's memory."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from helpers.generation import auto_batch_size, generate, kv_bytes_per_token

PROMPTS = ["What is 2 + 2?", "Name a colour.", "Write one word.", "Count to three, please, slowly.",
           "Hi", "What is the capital of France? Answer in one sentence.", "Say yes."]


@pytest.fixture(scope="module")
def tiny(embedded_tokenizer):
    """A random 2-layer Llama on the embedded vocabulary (fp32, CPU): fast, and its greedy answers
    are long and varied, so any mix-up between the rows of a batch shows."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(embedded_tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         pad_token_id=embedded_tokenizer.pad_token_id)
    return LlamaForCausalLM(config).eval()


def answers(model, tokenizer, batch_size, prompts=PROMPTS):
    return generate(model, tokenizer, prompts, chat=True, stop_token_ids=[tokenizer.eos_token_id],
                    max_new_tokens=12, batch_size=batch_size)


def test_batched_answers_equal_one_at_a_time(tiny, embedded_tokenizer):
    single = answers(tiny, embedded_tokenizer, 1)
    assert len(set(single)) == len(PROMPTS)  # distinct answers: a swapped row would be noticed
    assert answers(tiny, embedded_tokenizer, 3) == single
    assert answers(tiny, embedded_tokenizer, 0) == single  # auto: all 7 at once on the CPU


def test_out_of_memory_batch_is_halved_and_retried(tiny, embedded_tokenizer, monkeypatch):
    single = answers(tiny, embedded_tokenizer, 1)
    real, sizes = tiny.generate, []

    def small_memory(*args, **kwargs):
        sizes.append(kwargs["input_ids"].shape[0])
        if sizes[-1] > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(tiny, "generate", small_memory)
    assert answers(tiny, embedded_tokenizer, 8) == single
    assert sizes == [7, 3, 3, 1]  # all 7 fail; then 3 at a time (half of 7) to the end


def test_out_of_memory_with_one_prompt_is_raised(tiny, embedded_tokenizer, monkeypatch):
    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(tiny, "generate", no_memory)
    with pytest.raises(torch.OutOfMemoryError):
        answers(tiny, embedded_tokenizer, 4)


def test_auto_batch_size_from_the_key_value_cache():
    llama3 = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                         vocab_size=128256)
    gemma = LlamaConfig(hidden_size=3072, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=16,
                        head_dim=256, vocab_size=256000)
    assert kv_bytes_per_token(llama3) == 2 * 32 * 8 * 128 * 2 == 131072
    assert kv_bytes_per_token(gemma) == 2 * 28 * 16 * 256 * 2 == 458752

    class Model:
        def __init__(self, config):
            self.config = config

    def prompts(n, longest=188):  # 188 prompt + 512 new = 700 tokens a row
        return [[1] * 20] * (n - 1) + [[1] * longest]

    gib = 2**30
    # 8 GiB free, 700 tokens a row: llama 3 holds 55 rows (all 40 questions); gemma 7b 17 rows
    assert auto_batch_size(Model(llama3), prompts(40), 512, free_bytes=8 * gib) == 40
    assert auto_batch_size(Model(llama3), prompts(100), 512, free_bytes=8 * gib) == 55
    assert auto_batch_size(Model(gemma), prompts(40), 512, free_bytes=9 * gib) == 17
    assert auto_batch_size(Model(gemma), prompts(40), 512, free_bytes=10**6) == 1  # never 0
    assert auto_batch_size(Model(llama3), prompts(500, 20), 80, free_bytes=80 * gib) == 64  # the cap


def test_min_new_tokens_holds_the_stop_tokens_back(tiny, embedded_tokenizer):
    """Every token but three is a stop token: greedy answers end at once, unless min_new_tokens
    holds the stops back, and then they are made of the three allowed tokens only."""
    allowed = embedded_tokenizer.convert_tokens_to_ids(["a", "b", "c"])
    stops = [t for t in range(len(embedded_tokenizer)) if t not in allowed]
    kw = dict(chat=True, stop_token_ids=stops, max_new_tokens=8, batch_size=4)
    assert generate(tiny, embedded_tokenizer, PROMPTS[:4], **kw) == [""] * 4
    held = generate(tiny, embedded_tokenizer, PROMPTS[:4], min_new_tokens=5, **kw)
    assert all(len(a) == 5 and set(a) <= {"a", "b", "c"} for a in held), held
