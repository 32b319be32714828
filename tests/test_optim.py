"""The `optim` parameter of every fine-tuning study: "auto" trains with what runs trained with before it
existed (adamw_8bit on a GPU, adamw_torch on a CPU; small_vs_large the paged optimizer its study states),
leaves their run folders' hashes alone, and each optimizer named is the one the trainer steps with."""

import dataclasses

import pytest
import torch

from helpers.config import OPTIMIZERS, ConfigError, config_hash
from helpers.sft import resolve_optim
from helpers.studies import STUDIES, study_config

TRAINING = sorted(name for name, study in STUDIES.items()
                  if "optim" in {f.name for f in dataclasses.fields(study.config)})


def test_every_training_study_has_optim():
    assert {"addition", "train_math", "train_bio", "forgetting", "small_vs_large", "mmlu_teacher"} <= set(TRAINING)


@pytest.mark.parametrize("name", TRAINING)
def test_auto_is_adamw_torch_on_a_cpu_and_the_studys_optimizer_on_a_gpu(name):
    cfg = STUDIES[name].config()
    assert cfg.optim == "auto"
    assert resolve_optim(cfg, on_gpu=False) == "adamw_torch"
    assert resolve_optim(cfg, on_gpu=True) == ("paged_adamw_8bit" if name == "small_vs_large" else "adamw_8bit")
    assert resolve_optim(dataclasses.replace(cfg, optim="adamw_torch_fused"), on_gpu=True) == "adamw_torch_fused"


def test_auto_leaves_the_run_folders_hash_as_before_and_another_optimizer_changes_it():
    cfg = STUDIES["forgetting"].config()
    before = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "optim"}
    fields = [f for f in dataclasses.fields(cfg) if f.name != "optim"]
    Before = dataclasses.make_dataclass("Before", [(f.name, f.type, dataclasses.field(default=None)) for f in fields])
    assert config_hash(cfg) == config_hash(Before(**before))  # the hash a run made before `optim` got
    assert config_hash(dataclasses.replace(cfg, optim="adamw_torch_fused")) != config_hash(cfg)


def test_an_unknown_optimizer_is_a_one_line_error_that_names_the_right_one():
    with pytest.raises(ConfigError) as err:
        study_config("forgetting", {"optim": "adamw_fused"})
    message = str(err.value)
    assert "\n" not in message and "did you mean 'adamw_torch_fused'" in message
    assert all(name in message for name in OPTIMIZERS)


def _train(tokenizer, run_dir, optim: str):
    """Six steps of a random 2-layer llama whose LoRA matrices have 4,096 elements (bitsandbytes keeps the
    states of smaller tensors in 32 bits): (micro-batch losses, train_sft's report, LoRA weights after)."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from helpers.sft import train_sft
    from helpers.tasks.instruct import TrainConfig

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0,
                                                                 target_modules=["q_proj", "v_proj"],
                                                                 task_type="CAUSAL_LM"))
    losses = []
    model.register_forward_hook(lambda module, args, out: losses.append(out.loss.detach().clone()))
    texts = [f"Add {i} and {i + 3}. The sum is {2 * i + 3}, since {i} plus three more is {i + 3}." for i in range(12)]
    rows = [{"input_ids": ids, "labels": ids} for ids in (tokenizer(t)["input_ids"] for t in texts)]
    settings = dataclasses.replace(TrainConfig(), batch_size=2, grad_accum=1, max_steps=6, warmup_steps=0,
                                   save_steps=10**6, learning_rate=1e-2, max_seq_length=128, optim=optim)
    report = train_sft(model, tokenizer, Dataset.from_list(rows), run_dir=run_dir, settings=settings,
                       backend="transformers", resume=False)
    return losses, report, {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k}


def test_each_optimizer_named_is_the_one_that_trains(embedded_tokenizer, tmp_path):
    """paged_adamw_8bit trains what adamw_8bit does (on a GPU the paged memory changes where the states live,
    not the arithmetic; on a CPU bitsandbytes says it falls back to unpaged states), adamw_torch_fused what
    adamw_torch does up to float rounding, and the 8-bit states train other weights than the 32-bit ones: the
    setting reaches the trainer."""
    runs = {optim: _train(embedded_tokenizer, tmp_path / optim, optim) for optim in OPTIMIZERS}
    for optim, (_, report, _) in runs.items():
        assert report["effective"]["optim"] == resolve_optim(type("S", (), {"optim": optim}), on_gpu=False)
    assert runs["auto"][1]["effective"]["optim"] == "adamw_torch"  # a CPU
    losses = {optim: torch.stack(run[0]) for optim, run in runs.items()}
    lora = {optim: run[2] for optim, run in runs.items()}
    assert len(losses["auto"]) == 6
    assert torch.equal(losses["paged_adamw_8bit"], losses["adamw_8bit"])
    assert all(torch.equal(lora["paged_adamw_8bit"][k], lora["adamw_8bit"][k]) for k in lora["adamw_8bit"])
    assert torch.equal(losses["auto"], losses["adamw_torch"])
    assert torch.allclose(losses["adamw_torch_fused"], losses["adamw_torch"], rtol=0, atol=1e-5)
    assert all(torch.allclose(lora["adamw_torch_fused"][k], lora["adamw_torch"][k], rtol=0, atol=1e-5)
               for k in lora["adamw_torch"])
    eight_bit = max((lora["adamw_8bit"][k] - lora["adamw_torch"][k]).abs().max().item() for k in lora["adamw_torch"])
    assert eight_bit > 1e-4  # the 8-bit states did train (quantised moments move the weights elsewhere)
