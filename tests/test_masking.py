"""Which tokens carry loss: only the answer and its end-of-turn token, for the embedded model's
plain and chat formats and for every chat-template family in the registry."""

import copy

import pytest
import torch

from helpers.config import ConfigError
from helpers.registry import chat_template, load_registry
from helpers.sft import IGNORE_INDEX, AnswerOnlyCollator, build_sft_dataset, show_loss_tokens, tokenize_example

PROMPT = "What is 12 + 30?"
ANSWER = "It is 42."


def loss_text(tokenizer, example):
    ids = [t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX]
    return tokenizer.decode(ids)


def prompt_text(tokenizer, example):
    ids = [t for t, label in zip(example["input_ids"], example["labels"]) if label == IGNORE_INDEX]
    return tokenizer.decode(ids)


def test_plain_format_masks_the_prompt(embedded_tokenizer):
    tok = embedded_tokenizer
    ex = tokenize_example(tok, "Q: 12+30=? A:", " 42", chat=False, max_length=64)
    assert show_loss_tokens(tok, ex) == "Q: 12+30=? A:[[ 42<|im_end|>]]"
    assert loss_text(tok, ex) == " 42<|im_end|>"
    assert prompt_text(tok, ex) == "Q: 12+30=? A:"
    assert ex["labels"][-1] == tok.convert_tokens_to_ids("<|im_end|>")


def test_embedded_chat_template_masks_all_but_the_answer_turn(embedded_tokenizer):
    tok = embedded_tokenizer
    spec = load_registry()["smollm2-135m"]
    ex = tokenize_example(tok, PROMPT, ANSWER, chat=True, max_length=256)
    assert show_loss_tokens(tok, ex) == (
        f"<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n[[{ANSWER}<|im_end|>\n]]")
    assert loss_text(tok, ex) == ANSWER + "<|im_end|>\n"
    shown = prompt_text(tok, ex)
    assert shown.endswith(spec.response_part) and spec.instruction_part + PROMPT in shown


FAMILIES = sorted({spec.family: spec for spec in load_registry().values()}.items())


@pytest.mark.parametrize("family, spec", FAMILIES, ids=[f for f, _ in FAMILIES])
def test_each_registry_family_masks_all_but_the_answer(embedded_tokenizer, family, spec):
    """The family's template rendered through a real tokenizer: loss falls on the answer and the
    turn's end marker, never on the instruction or the response marker."""
    tok = copy.deepcopy(embedded_tokenizer)  # special tokens get added below
    bos, eos = {"llama-2": ("<s>", "</s>"), "llama-3": ("<|begin_of_text|>", "<|end_of_text|>"),
                "gemma": ("<bos>", "<eos>"), "mistral": ("<s>", "</s>"), "chatml": (None, "<|im_end|>"),
                "zephyr": ("<s>", "</s>")}[family]
    tok.chat_template = chat_template(family)
    tok.add_special_tokens({k: v for k, v in {"bos_token": bos, "eos_token": eos}.items() if v})
    ex = tokenize_example(tok, PROMPT, ANSWER, chat=True, max_length=256)
    learned, shown = loss_text(tok, ex), prompt_text(tok, ex)
    print(f"{family}: {show_loss_tokens(tok, ex)!r}")  # pytest -s shows each family's split
    assert learned.strip().startswith(ANSWER)
    assert any(marker in learned for marker in spec.stop_strings), learned
    assert PROMPT not in learned and spec.response_part.strip() not in learned
    assert shown.rstrip().endswith(spec.response_part.strip())
    assert spec.instruction_part.strip() in shown and PROMPT in shown


def test_answers_cut_off_by_max_length_are_dropped_and_counted(embedded_tokenizer):
    import json

    long_prompt = "word " * 40
    ds = build_sft_dataset(embedded_tokenizer, [("Q: 1+1=? A:", " 2"), (long_prompt, " 2")], chat=False, max_length=20)
    assert len(ds) == 1
    assert json.loads(ds.info.description) == {"examples": 2, "dropped_no_answer_tokens": 1}
    with pytest.raises(ConfigError, match="raise it"):
        build_sft_dataset(embedded_tokenizer, [(long_prompt, " 2")], chat=False, max_length=20)


def test_a_batch_with_every_label_masked_is_an_error():
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    collator = AnswerOnlyCollator(DataCollatorForLanguageModeling(pad_token_id=0))
    ok = collator([{"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, IGNORE_INDEX, 7]}])
    assert ok["labels"].tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 7]]
    with pytest.raises(ValueError, match="every label in this batch is masked"):
        collator([{"input_ids": [5, 6], "labels": [IGNORE_INDEX, IGNORE_INDEX]},
                  {"input_ids": [8], "labels": [IGNORE_INDEX]}])
    assert isinstance(ok["input_ids"], torch.Tensor)
