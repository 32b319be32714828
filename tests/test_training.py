"""Training through the 4-bit path with the tiny random-weight model (tests/conftest.py; the embedded model's
tokenizer and registry fields): resume after an interruption, and adapters that really change the model."""

import json
import shutil

import pytest
import torch

from helpers.config import build_config
from helpers.modeling import add_lora, load_model
from helpers.sft import build_sft_dataset, last_checkpoint, train_sft
from helpers.tasks import addition

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cfg(tiny_model):
    return build_config(addition.AdditionConfig, {
        "model": tiny_model, "train_digits_max": 2, "test_digits_max": 2, "n_train": 32, "n_test_per_k": 4,
        "max_steps": 4,
        "save_steps": 2, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "learning_rate": 1e-3,
        "lora_targets": ["q_proj", "v_proj"], "gradient_checkpointing": False, "warmup_steps": 0,
        "batch_size": 4, "max_new_tokens": 8})


def fresh(cfg):
    """Model with new adapters, tokenizer, info and the training set: what a restarted notebook has."""
    model, tokenizer, info = load_model(cfg.model, max_seq_length=cfg.max_seq_length)
    model = add_lora(model, info, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                     targets=cfg.lora_targets, seed=cfg.seed, gradient_checkpointing=False)
    train, _ = addition.make_problems(cfg)
    dataset = build_sft_dataset(tokenizer, [(addition.prompt(p), addition.target(p)) for p in train],
                                chat=False, max_length=cfg.max_seq_length)
    return model, tokenizer, info, dataset


def lora_b(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_B" in k}


def test_4bit_path_is_nf4_with_double_quant(cfg):
    model, tokenizer, info, _ = fresh(cfg)
    assert info.backend == "transformers+bitsandbytes" and info.dtype == "float32"
    quant = model.config.quantization_config
    assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4" and quant.bnb_4bit_use_double_quant
    assert info.stop_token_ids == [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    assert all(v.abs().sum() == 0 for v in lora_b(model).values())  # fresh LoRA = the base model


def test_interrupted_training_resumes_from_its_last_checkpoint(cfg, tmp_path):
    model, tokenizer, info, dataset = fresh(cfg)
    first = train_sft(model, tokenizer, dataset, run_dir=tmp_path, settings=cfg, backend=info.backend)
    assert first["steps"] == 4 and first["resumed_from"] is None
    trained = lora_b(model)
    assert all(v.abs().sum() > 0 for v in trained.values())
    # trl casts a quantized model's adapters to bf16; helpers.sft keeps them fp32 (CPU speed, T4 fp16 AMP)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)

    # a disconnect after checkpoint-2: the later checkpoint and the adapter were never written
    shutil.rmtree(tmp_path / "adapter")
    shutil.rmtree(tmp_path / "checkpoints" / "checkpoint-4")
    assert last_checkpoint(tmp_path).endswith("checkpoint-2")
    model, tokenizer, info, dataset = fresh(cfg)
    resumed = train_sft(model, tokenizer, dataset, run_dir=tmp_path, settings=cfg, backend=info.backend)
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["steps"] == 4
    # the loss curve covers the whole run: the steps before the disconnect come from checkpoint-2's state
    assert [p["step"] for p in json.loads((tmp_path / "loss_curve.json").read_text())["points"]] == [2, 4]
    assert json.loads((tmp_path / "train_result.json").read_text())["resumed_from"].endswith("checkpoint-2")
    again = lora_b(model)
    for name, value in trained.items():  # same data order and optimizer state: the uninterrupted result
        assert torch.allclose(value, again[name], atol=1e-5), name

    # finished: a restarted notebook loads the adapter instead of training
    model, tokenizer, info, dataset = fresh(cfg)
    reused = train_sft(model, tokenizer, dataset, run_dir=tmp_path, settings=cfg, backend=info.backend)
    assert reused["reused_adapter"] is True
    for name, value in trained.items():
        assert torch.allclose(value, lora_b(model)[name], atol=1e-5), name


def test_resume_false_trains_from_scratch(cfg, tmp_path):
    model, tokenizer, info, dataset = fresh(cfg)
    train_sft(model, tokenizer, dataset, run_dir=tmp_path, settings=cfg, backend=info.backend)
    model, tokenizer, info, dataset = fresh(cfg)
    again = train_sft(model, tokenizer, dataset, run_dir=tmp_path, settings=cfg, backend=info.backend, resume=False)
    assert again["resumed_from"] is None and "reused_adapter" not in again and again["steps"] == 4
    estimate = json.loads((tmp_path / "estimate.json").read_text())  # said before the wait, kept in the run
    assert estimate["steps"] == 4 and estimate["measured_steps"] >= 1 and estimate["expected_s"] > 0


def test_snapshot_stages_save_the_adapter_after_each_requested_epoch_of_one_schedule(cfg, tmp_path):
    """stage_schedule "snapshot": benchmark after epoch 1 of one 3-epoch schedule, continue it to epoch 3
    (the only reading before stage_schedule existed; tests/test_stage_schedule.py has "restart")."""
    import dataclasses

    from peft import load_peft_weights

    from helpers.sft import stage_dir

    three = dataclasses.replace(cfg, epochs=3.0, max_steps=-1, n_train=8, batch_size=4, save_steps=2)
    model, tokenizer, info, dataset = fresh(three)
    dataset = dataset.select(range(8))  # 2 steps per epoch
    result = train_sft(model, tokenizer, dataset, run_dir=tmp_path, settings=three, backend=info.backend,
                       stage_epochs=[1, 3], stage_schedule="snapshot")
    assert result["steps"] == 6 and "schedules" not in result
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    assert json.loads((stage_dir(tmp_path, 1) / "stage.json").read_text()) == {"epoch": 1, "global_step": 2}
    assert json.loads((stage_dir(tmp_path, 3) / "stage.json").read_text()) == {"epoch": 3, "global_step": 6}
    assert not stage_dir(tmp_path, 2).exists()
    one, final = load_peft_weights(str(stage_dir(tmp_path, 1))), load_peft_weights(str(tmp_path / "adapter"))
    three_ = load_peft_weights(str(stage_dir(tmp_path, 3)))
    assert all(torch.equal(three_[k], final[k]) for k in final)          # epoch 3 = the end of the run
    assert any(not torch.equal(one[k], final[k]) for k in final)         # epoch 1 is an earlier state
    curve = json.loads((tmp_path / "loss_curve.json").read_text())  # logged every 2 steps, one schedule
    assert [p["step"] for p in curve["points"]] == [2, 4, 6] and {p["schedule"] for p in curve["points"]} == {0}
    lr = [p["learning_rate"] for p in curve["points"]]
    assert lr == sorted(lr, reverse=True) and lr[0] > lr[-1]  # no warmup again: one decay over the 3 epochs
    assert curve["stages"] == [{"epoch": 1, "global_step": 2}, {"epoch": 3, "global_step": 6}]
    assert (tmp_path / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_in_a_later_epoch_sees_the_grouped_order_of_the_uninterrupted_run(cfg, tmp_path):
    """Length-grouped batches (the default) shuffle by (seed, epoch), not by the global random state:
    a run resumed in its second epoch must train on the batches the uninterrupted run had."""
    import dataclasses

    two = dataclasses.replace(cfg, max_steps=12, group_by_length=True)  # 8 steps an epoch
    model, tokenizer, info, dataset = fresh(two)
    train_sft(model, tokenizer, dataset, run_dir=tmp_path, settings=two, backend=info.backend)
    trained = lora_b(model)
    shutil.rmtree(tmp_path / "adapter")
    shutil.rmtree(tmp_path / "checkpoints" / "checkpoint-12")  # a disconnect after step 10 (epoch 2)
    model, tokenizer, info, dataset = fresh(two)
    resumed = train_sft(model, tokenizer, dataset, run_dir=tmp_path, settings=two, backend=info.backend)
    assert resumed["resumed_from"].endswith("checkpoint-10") and resumed["effective"]["sampling"] == "group_by_length"
    again = lora_b(model)
    for name, value in trained.items():
        assert torch.allclose(value, again[name], atol=1e-5), name
