"""Length-grouped batches (the training default): each batch holds examples of similar lengths, so
a padded batch carries little padding. It must only reorder the data: every example once an epoch,
its answer-only labels intact."""

import dataclasses
import random

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM

from helpers.config import RUN_CONTROL_KEYS, build_config, config_hash
from helpers.modeling import embedded_checkpoint
from helpers.registry import resolve_model
from helpers.sft import IGNORE_INDEX, GroupedSampler, sft_trainer, tokenize_example
from helpers.tasks.instruct import TrainConfig


@pytest.fixture(scope="module")
def rows(embedded_tokenizer):
    rng = random.Random(0)
    pairs = [(" ".join(["word"] * rng.randint(1, 150)) + " How many words?", f"{rng.randint(1, 150)} words.")
             for _ in range(96)]
    return [tokenize_example(embedded_tokenizer, p, a, chat=True, max_length=512) for p, a in pairs]


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(embedded_checkpoint(resolve_model("smollm2-135m")), dtype=torch.float32)


def epoch_batches(model, tokenizer, rows, tmp_path, **overrides):
    cfg = build_config(TrainConfig, {"dataset_source": "local", "batch_size": 4, "grad_accum": 2, **overrides})
    trainer = sft_trainer(model, tokenizer, Dataset.from_list(rows), run_dir=tmp_path, settings=cfg,
                          backend="transformers+bitsandbytes")
    return trainer, list(trainer.get_train_dataloader())


def unpadded(batch):
    """(input_ids, labels) of each example of a padded batch, without its padding."""
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert all(batch["attention_mask"][i, :n].all() for i, n in enumerate(lengths))  # right padding
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()  # no loss on padding
    return [(tuple(batch["input_ids"][i, :n].tolist()), tuple(batch["labels"][i, :n].tolist()))
            for i, n in enumerate(lengths)]


def test_grouped_batches_pad_less_and_keep_every_example_and_its_labels(embedded_tokenizer, rows, model, tmp_path):
    pad_share, seen = {}, {}
    for grouped in (False, True):
        trainer, batches = epoch_batches(model, embedded_tokenizer, rows, tmp_path / str(grouped),
                                         group_by_length=grouped)
        assert trainer.args.train_sampling_strategy == ("group_by_length" if grouped else "random")
        masks = [b["attention_mask"] for b in batches]
        pad_share[grouped] = 1 - sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
        seen[grouped] = sorted(ex for b in batches for ex in unpadded(b))
    expected = sorted((tuple(r["input_ids"]), tuple(r["labels"])) for r in rows)
    assert seen[True] == expected and seen[False] == expected  # each example once, answer-only labels as given
    assert pad_share[False] > 0.2  # random order: lengths 1-150 words side by side (0.26)
    assert pad_share[True] < pad_share[False] / 2.5  # (0.07)


def test_grouped_batches_come_in_random_order_not_longest_first(embedded_tokenizer, rows, model, tmp_path):
    """transformers' sampler hands out each mega-batch sorted longest first: training would see
    lengths fall step after step. The steps here keep their grouped members but come shuffled."""
    _, batches = epoch_batches(model, embedded_tokenizer, rows, tmp_path)
    widths = [b["input_ids"].shape[1] for b in batches]
    steps = [max(widths[i:i + 2]) for i in range(0, len(widths), 2)]  # batch 4 x accumulation 2 a step
    rises = sum(later > earlier for earlier, later in zip(steps, steps[1:]))
    assert len(steps) == 12 and rises >= 4  # mega-batches of 3 steps sorted longest first: at most 3 rises


def test_grouped_sampler_order_is_a_function_of_seed_and_epoch_and_the_partial_step_stays_last():
    lengths = [random.Random(1).randint(1, 500) for _ in range(10)] * 5 + [7, 9]  # 52: 6 steps of 8, then 4
    sampler = GroupedSampler(lengths, 8, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(52)) and list(GroupedSampler(lengths, 8, seed=3)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == list(range(52))
    from transformers.trainer_pt_utils import get_length_grouped_indices

    groups = get_length_grouped_indices(lengths, 8, generator=torch.Generator().manual_seed(3))
    steps = [sorted(first[i:i + 8]) for i in range(0, 48, 8)]
    assert sorted(steps) == sorted(sorted(groups[i:i + 8]) for i in range(0, 48, 8))  # the groups, kept whole
    assert steps != [sorted(groups[i:i + 8]) for i in range(0, 48, 8)]  # in another order
    assert first[48:] == groups[48:]  # the partial step last


def test_grouping_is_the_default_and_padding_free_still_takes_precedence(embedded_tokenizer, rows, model, tmp_path):
    assert TrainConfig().group_by_length and not TrainConfig().padding_free
    _, batches = epoch_batches(model, embedded_tokenizer, rows, tmp_path, padding_free=True)
    assert all(b["input_ids"].shape[0] == 1 and "attention_mask" not in b for b in batches)
    assert sum(b["input_ids"].numel() for b in batches) == sum(len(r["input_ids"]) for r in rows)  # no padding


def test_runs_made_before_the_grouping_setting_keep_their_folder():
    """A run folder is named by the config hash; runs from before `group_by_length` existed had
    random order, so a config with it off must hash as those configs did."""
    import hashlib
    import json

    old = dataclasses.replace(TrainConfig(), group_by_length=False)
    later = {"group_by_length", "optim"}  # settings added since (optim: tests/test_optim.py)
    before = {k: v for k, v in dataclasses.asdict(old).items() if k not in RUN_CONTROL_KEYS | later}
    assert config_hash(old) == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:8]
    assert config_hash(dataclasses.replace(old, group_by_length=True)) != config_hash(old)


def test_more_visible_gpus_still_train_the_settings_batch(embedded_tokenizer, rows, model, tmp_path, monkeypatch):
    """Kaggle's "GPU T4 x2": a Trainer not launched distributed counts both GPUs in n_gpu and would feed the one
    model batch_size x 2 rows a micro-batch (and wrap a model that is not 4-bit in DataParallel); a run trains on
    one GPU with the settings' batch (helpers.sft.one_gpu). Two GPUs are simulated: _setup_devices also says 2."""
    from functools import cached_property

    from transformers import TrainingArguments

    setup = TrainingArguments._setup_devices.func

    def two_gpus(self):
        device = setup(self)
        self._n_gpu = 2
        return device

    prop = cached_property(two_gpus)
    prop.__set_name__(TrainingArguments, "_setup_devices")
    monkeypatch.setattr(TrainingArguments, "_setup_devices", prop)
    assert TrainingArguments(output_dir=str(tmp_path / "plain"), use_cpu=True).train_batch_size == 16  # 8 x 2 GPUs
    trainer, batches = epoch_batches(model, embedded_tokenizer, rows, tmp_path / "run", group_by_length=False)
    assert trainer.args.n_gpu == 1 and trainer.args.train_batch_size == 4
    assert {len(b["input_ids"]) for b in batches} == {4}  # 96 rows in batches of batch_size
