"""Padding-free batches (`padding_free = True`; the default is length-grouped padded batches): the
examples of a batch end to end in one row, position ids restarting at each. The answer-only labels
and the loss must be those of the padded batch, and of each example alone."""

import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM

from helpers.modeling import embedded_checkpoint
from helpers.registry import resolve_model
from helpers.sft import IGNORE_INDEX, answer_only_collator, tokenize_example, train_sft

PAIRS = [("What is 2+2?", "4"), ("Name the colour of the sky on a clear day, please.", "Blue, mostly."),
         ("How many legs does a spider have? Answer in a sentence.", "A spider has eight legs.")]


@pytest.fixture(scope="module")
def rows(embedded_tokenizer):
    return [tokenize_example(embedded_tokenizer, p, a, chat=True, max_length=256) for p, a in PAIRS]


@pytest.fixture(scope="module")
def model():
    path = embedded_checkpoint(resolve_model("smollm2-135m"))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.config.use_cache = False  # as helpers.sft.train_sft sets it while training
    return model.train()


def test_answer_only_labels_survive_padding_free(embedded_tokenizer, rows):
    batch = answer_only_collator(embedded_tokenizer, padding_free=True)(rows)
    assert batch["input_ids"].shape == (1, sum(len(r["input_ids"]) for r in rows))
    assert "attention_mask" not in batch  # a mask would hide the boundaries in position_ids
    expected = []
    for r in rows:
        expected += [IGNORE_INDEX] + r["labels"][1:]
    assert batch["labels"][0].tolist() == expected
    assert batch["position_ids"][0].tolist() == [i for r in rows for i in range(len(r["input_ids"]))]
    # the labels are exactly the answers' tokens (and the end of turn), nothing of any prompt
    answers = [t for r in rows for t, lab in zip(r["input_ids"], r["labels"]) if lab != IGNORE_INDEX]
    assert [t for t in batch["labels"][0].tolist() if t != IGNORE_INDEX] == answers


def test_padding_free_loss_equals_the_padded_loss_and_each_example_alone(embedded_tokenizer, rows, model):
    padded = answer_only_collator(embedded_tokenizer, padding_free=False)(rows)
    free = answer_only_collator(embedded_tokenizer, padding_free=True)(rows)
    assert padded["input_ids"].numel() > free["input_ids"].numel()  # the padding that is saved
    with torch.no_grad():
        loss_padded, loss_free = model(**padded).loss.item(), model(**free).loss.item()
        total = count = 0
        for r in rows:
            n = sum(lab != IGNORE_INDEX for lab in r["labels"][1:])
            out = model(input_ids=torch.tensor([r["input_ids"]]), labels=torch.tensor([r["labels"]]))
            total, count = total + out.loss.item() * n, count + n
    assert loss_free == pytest.approx(loss_padded, abs=1e-4)
    assert loss_free == pytest.approx(total / count, abs=1e-4)


@pytest.mark.slow
def test_training_padding_free_follows_the_padded_run(embedded_tokenizer, tiny_model, tmp_path):
    """Same data, seed and settings: the 4-bit training losses of the two batchings agree."""
    from datasets import Dataset

    from helpers.config import build_config
    from helpers.modeling import add_lora, load_model
    from helpers.tasks.instruct import TrainConfig

    cfg = build_config(TrainConfig, {"model": tiny_model, "dataset_source": "local", "lora_r": 4,
                                     "lora_alpha": 8, "batch_size": 3,
                                     "grad_accum": 1, "epochs": 2.0, "stage_epochs": [2], "save_steps": 2,
                                     "warmup_steps": 0, "gradient_checkpointing": False, "learning_rate": 1e-3})
    data = Dataset.from_list([tokenize_example(embedded_tokenizer, p, a, chat=True, max_length=256)
                              for p, a in PAIRS * 2])
    losses = {}
    for free in (False, True):
        model, tokenizer, info = load_model(cfg.model, max_seq_length=256)
        model = add_lora(model, info, r=4, alpha=8, dropout=0.0, targets=cfg.lora_targets, seed=0,
                         gradient_checkpointing=False)
        result = train_sft(model, tokenizer, data, run_dir=tmp_path / str(free), resume=False,
                           settings=dataclasses.replace(cfg, padding_free=free), backend=info.backend)
        assert result["effective"]["padding_free"] is free
        losses[free] = (result["loss_first"], result["loss_last"])
    assert losses[True][0] == pytest.approx(losses[False][0], abs=1e-3)  # mean of the first two steps
    assert losses[True][1] == pytest.approx(losses[False][1], rel=0.02)  # after 4 updates
