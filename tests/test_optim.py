"""The `optim` parameter of every fine-tuning study: "auto" trains with what runs trained with before it
existed (adamw_8bit on a GPU, adamw_torch on a CPU; small_vs_large the paged optimizer its study states),
leaves their run folders' hashes alone, and each optimizer named is the one the trainer steps with."""

import dataclasses

import pytest
import torch
from tiny_training import tiny_settings, train_tiny

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


def test_another_optimizer_changes_the_run_folders_hash():
    """`auto` leaves it as it was before `optim` existed (test_length_grouping.py's hash by hand)."""
    cfg = STUDIES["forgetting"].config()
    assert config_hash(dataclasses.replace(cfg, optim="adamw_torch_fused")) != config_hash(cfg)


def test_an_unknown_optimizer_is_a_one_line_error_that_names_the_right_one():
    with pytest.raises(ConfigError) as err:
        study_config("forgetting", {"optim": "adamw_fused"})
    message = str(err.value)
    assert "\n" not in message and "did you mean 'adamw_torch_fused'" in message
    assert all(name in message for name in OPTIMIZERS)


def test_each_optimizer_named_is_the_one_that_trains(embedded_tokenizer, tmp_path):
    """paged_adamw_8bit trains what adamw_8bit does (on a GPU the paged memory changes where the states live,
    not the arithmetic; on a CPU bitsandbytes says it falls back to unpaged states), adamw_torch_fused what
    adamw_torch does up to float rounding, and the 8-bit states train other weights than the 32-bit ones: the
    setting reaches the trainer. Width 256 at r 16: LoRA matrices of 4,096 elements, which bitsandbytes gives
    8-bit states (smaller ones keep 32 bits)."""
    runs = {optim: train_tiny(embedded_tokenizer, tmp_path / optim, tiny_settings(optim=optim), width=256, r=16)
            for optim in OPTIMIZERS}
    for optim, (_, report, _, _) in runs.items():
        assert report["effective"]["optim"] == ("adamw_torch" if optim == "auto" else optim)  # auto on a CPU
    losses = {optim: torch.stack(run[0]) for optim, run in runs.items()}
    lora = {optim: run[3] for optim, run in runs.items()}
    assert len(losses["auto"]) == 8  # 4 steps x 2 micro-batches
    assert torch.equal(losses["paged_adamw_8bit"], losses["adamw_8bit"])
    assert all(torch.equal(lora["paged_adamw_8bit"][k], lora["adamw_8bit"][k]) for k in lora["adamw_8bit"])
    assert torch.equal(losses["auto"], losses["adamw_torch"])
    assert torch.allclose(losses["adamw_torch_fused"], losses["adamw_torch"], rtol=0, atol=1e-5)

    def moved(optim):  # the largest LoRA weight difference from adamw_torch's (weights of about 0.07)
        return max((lora[optim][k] - lora["adamw_torch"][k]).abs().max().item() for k in lora["adamw_torch"])

    # fused: float rounding that Adam's normalisation carries into the weights (2e-5 seen); 8-bit states: 3.5e-3
    assert moved("adamw_torch_fused") < 1e-4 and moved("adamw_8bit") > 1e-3
