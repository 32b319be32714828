"""The `optim` parameter of every fine-tuning study: "auto" is adamw_torch on a CPU; on a GPU the paged optimizer
small_vs_large's study states, torch's fused AdamW for a model under 3B parameters (PERFORMANCE.md, sixth round),
else adamw_8bit (what runs trained with before `optim` existed). It leaves run folders' hashes alone, a resumed
checkpoint keeps the optimizer that wrote it, and each optimizer named is the one the trainer steps with."""

import dataclasses

import pytest
import torch
from tiny_training import tiny_settings, train_tiny

from helpers.config import OPTIMIZERS, ConfigError, config_hash
from helpers.sft import SMALL_MODEL_PARAMS, model_parameters, resolve_optim
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
    assert resolve_optim(cfg, on_gpu=False, parameters=135_000_000) == "adamw_torch"
    stated = "paged_adamw_8bit" if name == "small_vs_large" else None
    assert resolve_optim(cfg, on_gpu=True) == (stated or "adamw_8bit")
    assert resolve_optim(cfg, on_gpu=True, parameters=7_000_000_000) == (stated or "adamw_8bit")
    for small in (135_000_000, 1_100_000_000, SMALL_MODEL_PARAMS - 1):  # the demo, TinyLlama
        assert resolve_optim(cfg, on_gpu=True, parameters=small) == (stated or "adamw_torch_fused")
    assert resolve_optim(cfg, on_gpu=True, parameters=SMALL_MODEL_PARAMS) == (stated or "adamw_8bit")
    assert resolve_optim(dataclasses.replace(cfg, optim="adamw_torch_fused"), on_gpu=True) == "adamw_torch_fused"
    assert resolve_optim(dataclasses.replace(cfg, optim="adamw_8bit"), True, 135_000_000) == "adamw_8bit"


def test_model_parameters_counts_4bit_weights_at_their_shape():
    """bitsandbytes packs two 4-bit weights in a byte: numel() would put a 7B model at 3.5B, under the line."""
    from types import SimpleNamespace

    model = torch.nn.Linear(64, 32)  # 2,048 + 32
    assert model_parameters(model) == 2080
    packed = torch.nn.Parameter(torch.zeros(1024, 1, dtype=torch.uint8), requires_grad=False)  # 2,048 nibbles
    packed.quant_state = SimpleNamespace(shape=torch.Size([32, 64]))
    model.weight = packed
    assert model_parameters(model) == 2080


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


@pytest.mark.slow
def test_a_resumed_checkpoint_keeps_the_optimizer_that_wrote_it(embedded_tokenizer, tmp_path):
    """A run started before "auto" changed (8-bit AdamW then, fused AdamW now for a small model) resumes with the
    optimizer its checkpoint's state belongs to: 8-bit states do not load into torch's AdamW. Shown on the CPU
    with two optimizers whose states differ in kind there too: a checkpoint of adamw_8bit, resumed under "auto"
    (adamw_torch on a CPU), goes on with adamw_8bit; a named optimizer is always the one used."""
    import shutil

    settings = dataclasses.replace(tiny_settings(optim="adamw_8bit"), max_steps=6)
    _, first, _, _ = train_tiny(embedded_tokenizer, tmp_path, settings, width=256, r=16)
    assert first["effective"]["optim"] == "adamw_8bit"
    shutil.rmtree(tmp_path / "adapter")  # a disconnect after checkpoint-4: its later state is gone
    (tmp_path / "train_result.json").unlink()
    shutil.rmtree(tmp_path / "checkpoints" / "checkpoint-6")
    _, resumed, _, _ = train_tiny(embedded_tokenizer, tmp_path, dataclasses.replace(settings, optim="auto"),
                                  width=256, r=16, resume=True)
    assert resumed["resumed_from"].endswith("checkpoint-4") and resumed["steps"] == 6
    assert resumed["effective"]["optim"] == "adamw_8bit"


def test_checkpoint_optim_reads_the_states_kind_and_never_a_pickle(tmp_path):
    """bitsandbytes' 8-bit states in optimizer.pt (its 0.50 layout and the flat one) say adamw_8bit; torch
    AdamW's (exp_avg) and a missing or cut file leave it to "auto". training_args.bin, a pickle that could run
    code from a shared run folder, is not read."""
    from helpers.sft import checkpoint_optim

    folder = tmp_path / "checkpoint-4"
    folder.mkdir()
    assert checkpoint_optim(folder) is None  # nothing to go by
    from types import SimpleNamespace

    # a pickle that would name another optimizer if it were read (the trainer's training_args.bin)
    torch.save(SimpleNamespace(optim="paged_adamw_8bit"), folder / "training_args.bin")
    torch.save({"state": {0: {"step": 3, "__bnb_optimizer_quant_state__": {"state1": torch.zeros(4)}}},
                "param_groups": []}, folder / "optimizer.pt")
    assert checkpoint_optim(folder) == "adamw_8bit"
    torch.save({"state": {0: {"state1": torch.zeros(4, dtype=torch.uint8), "step": 3}}, "param_groups": []},
               folder / "optimizer.pt")
    assert checkpoint_optim(folder) == "adamw_8bit"
    torch.save({"state": {0: {"exp_avg": torch.zeros(4), "step": torch.tensor(3.0)}}, "param_groups": []},
               folder / "optimizer.pt")
    assert checkpoint_optim(folder) is None  # not the pickle's paged_adamw_8bit
    (folder / "optimizer.pt").write_bytes(b"PK cut off")
    assert checkpoint_optim(folder) is None


@pytest.mark.slow
def test_a_restart_schedule_after_a_stage_takes_the_optimizer_the_run_began_with(embedded_tokenizer, tmp_path):
    """stage_schedule "restart": a disconnect after epoch 1's stage, then "Run all" under "auto" (which now picks
    another optimizer for a small model on a GPU): epoch 2's schedule starts a new optimizer of the kind the run
    began with, not another. On the CPU: a run begun with adamw_8bit goes on with it under "auto"."""
    import shutil

    from datasets import Dataset
    from tiny_training import perf_bench, tiny_lora_model

    from helpers.sft import train_sft

    rows = Dataset.from_list(perf_bench.length_rows(embedded_tokenizer, 16, 128, "alpaca"))
    settings = dataclasses.replace(tiny_settings(optim="adamw_8bit"), max_steps=-1, epochs=2)

    def train(settings):
        return train_sft(tiny_lora_model(embedded_tokenizer, 256, 16), embedded_tokenizer, rows, run_dir=tmp_path,
                         settings=settings, backend="transformers", stage_epochs=(1, 2), stage_schedule="restart")

    first = train(settings)
    assert [p["epochs"] for p in first["schedules"]] == [[0, 1], [1, 2]]
    for name in ("adapter", "checkpoints/epochs1-2", "stages/epoch2"):  # the disconnect: no more of epoch 2
        shutil.rmtree(tmp_path / name)
    (tmp_path / "train_result.json").unlink()
    resumed = train(dataclasses.replace(settings, optim="auto"))
    assert resumed["schedules"][0].get("reused_stage") is True and resumed["schedules"][1]["steps"] > 0
    assert resumed["effective"]["optim"] == "adamw_8bit"
