"""The seven-model study's stages read two ways (stage_schedule "restart" / "snapshot"), the loss curve
of every training run, and the trainer's extra logger (report_to)."""

import dataclasses
import importlib.util
import json
import shutil

import pytest
import torch
from test_training import fresh, lora_b

from helpers.config import ConfigError, build_config, config_hash
from helpers.sft import STAGE_SCHEDULES, stage_dir, stage_schedules, train_sft
from helpers.studies import STUDIES, study_config
from helpers.tasks import addition, instruct

TENSORBOARD = any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX"))


def test_the_default_is_a_new_schedule_after_each_stage():
    """seed_results.json, the seven-model study: "1 epoch, evaluated, then 2 more epochs"."""
    assert instruct.TrainConfig().stage_schedule == "restart"
    assert study_config("train_math", {}).stage_schedule == "restart"
    assert instruct.STAGE_SCHEDULES == STAGE_SCHEDULES  # the config's copy (no torch import) is the trainer's


@pytest.mark.parametrize("value", ["restrat", "", "Snapshot"])
def test_a_bad_stage_schedule_is_one_line(value):
    with pytest.raises(ConfigError, match="stage_schedule must be 'restart'") as err:
        study_config("train_bio", {"stage_schedule": value})
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="stage_schedule must be one of restart, snapshot"):
        stage_schedules([1, 3], 3.0, value)


def test_runs_made_before_the_parameter_keep_their_folders():
    """A run trained before stage_schedule existed was a snapshot run: its hash (its folder) stays."""
    snapshot = study_config("train_math", {"stage_schedule": "snapshot"})
    values = {f.name: getattr(snapshot, f.name) for f in dataclasses.fields(snapshot) if f.name != "stage_schedule"}
    old = dataclasses.make_dataclass("TrainConfig", [(name, object) for name in values])(**values)  # the field-less one
    assert config_hash(snapshot) == config_hash(old)
    assert config_hash(study_config("train_math", {})) != config_hash(old)  # restart computes something else


@pytest.mark.parametrize("stages, epochs, mode, expected", [
    ([1, 3], 3.0, "restart", [(0, 1), (1, 3)]),
    ([3, 1], 3.0, "restart", [(0, 1), (1, 3)]),
    ([1], 3.0, "restart", [(0, 1), (1, 3.0)]),          # past the last stage: one more schedule to the end
    ([1, 2, 3], 3.0, "restart", [(0, 1), (1, 2), (2, 3)]),
    ([1, 3], 3.0, "snapshot", [(0, 3.0)]),
    ([], 2.0, "restart", [(0, 2.0)]),                     # no stages: one schedule (the other studies)
])
def test_schedules_of_a_run(stages, epochs, mode, expected):
    assert stage_schedules(stages, epochs, mode) == expected


def test_restart_needs_whole_epochs():
    cfg = build_config(addition.AdditionConfig, {"max_steps": 4, "epochs": 2.0})
    with pytest.raises(ConfigError, match="set max_steps = -1"):
        train_sft(None, None, None, run_dir="unused", settings=cfg, backend="transformers", stage_epochs=[1],
                  stage_schedule="restart")


def test_loss_curve_png_from_points(tmp_path):
    from helpers.plots import plot_loss_curve

    points = [{"step": s, "loss": 3 - s / 4, "schedule": int(s > 2)} for s in (1, 2, 3, 4)]
    path = plot_loss_curve(points, [{"epoch": 1, "global_step": 2}], tmp_path / "loss_curve.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.mark.skipif(TENSORBOARD, reason="tensorboard is installed: test_report_to_tensorboard_writes_events")
@pytest.mark.parametrize("study", [name for name, s in STUDIES.items() if "report_to" in
                                   {f.name for f in dataclasses.fields(s.config)}])
def test_report_to_a_missing_package_stops_before_training(study, tmp_path):
    """Every training study's config carries report_to to train_sft (settings=cfg); without the package
    it stops with one line before a model or a file is touched."""
    cfg = STUDIES[study].config(report_to="tensorboard")  # as its notebook passes it: train_sft(settings=cfg)
    with pytest.raises(ConfigError, match=r"pip install tensorboard") as err:
        train_sft(None, None, None, run_dir=tmp_path / "run", settings=cfg, backend="transformers")
    assert "\n" not in str(err.value) and not (tmp_path / "run").exists()


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_report_to_wandb_without_wandb_says_what_to_install():
    cfg = build_config(addition.AdditionConfig, {"report_to": "wandb"})
    with pytest.raises(ConfigError, match=r"pip install wandb"):
        train_sft(None, None, None, run_dir="unused", settings=cfg, backend="transformers")


def tiny(**overrides):
    """8 examples, 4 a step: 2 steps an epoch; every step logged and checkpointed (model: the `tiny_model`)."""
    return build_config(addition.AdditionConfig, {
        "model": "smollm2-135m", "train_digits_max": 2, "test_digits_max": 2, "n_train": 32, "n_test_per_k": 4,
        "save_steps": 1, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "learning_rate": 1e-3,
        "lora_targets": ["q_proj", "v_proj"], "gradient_checkpointing": False, "warmup_steps": 1,
        "batch_size": 4, "max_new_tokens": 8, "epochs": 2.0, "max_seq_length": 64, **overrides})


def steps_trained():
    from transformers import TrainerCallback

    class Count(TrainerCallback):
        n = 0

        def on_step_end(self, args, state, control, **kwargs):
            Count.n += 1

    return Count()


@pytest.mark.slow
def test_restart_warms_up_again_and_a_resume_in_the_second_schedule_skips_the_first(tiny_model, tmp_path):
    cfg = tiny(model=tiny_model)
    model, tokenizer, info, dataset = fresh(cfg)
    dataset = dataset.select(range(8))
    result = train_sft(model, tokenizer, dataset, run_dir=tmp_path, settings=cfg, backend=info.backend,
                       stage_epochs=[1, 2], stage_schedule="restart")
    trained = lora_b(model)
    assert result["steps"] == 4 and [p["epochs"] for p in result["schedules"]] == [[0, 1], [1, 2]]
    # the stages look as a snapshot run's do to the benchmark: the adapter and {epoch, global step of the run}
    for epoch, step in ((1, 2), (2, 4)):
        assert json.loads((stage_dir(tmp_path, epoch) / "stage.json").read_text()) == {"epoch": epoch,
                                                                                      "global_step": step}
    from peft import load_peft_weights

    one, two = (load_peft_weights(str(stage_dir(tmp_path, e))) for e in (1, 2))
    final = load_peft_weights(str(tmp_path / "adapter"))
    assert any(not torch.equal(one[k], two[k]) for k in two) and all(torch.equal(two[k], final[k]) for k in final)

    curve = json.loads((tmp_path / "loss_curve.json").read_text())
    points = curve["points"]
    assert [p["step"] for p in points] == [1, 2, 3, 4] and [p["schedule"] for p in points] == [0, 0, 1, 1]
    lr = [p["learning_rate"] for p in points]
    # each schedule warms up from its start: the second schedule's first step is back at the first's warmup value
    # (one schedule over 4 steps would have decayed instead: 0, 1e-3, 6.7e-4, 3.3e-4)
    assert lr[2] == lr[0] and lr[2] < lr[1] and lr[2:] == lr[:2]
    assert curve["stages"] == [{"epoch": 1, "global_step": 2}, {"epoch": 2, "global_step": 4}]
    assert (tmp_path / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"

    # a disconnect after the second schedule's first step: its checkpoint-1 is all there is of it
    stage_one = (stage_dir(tmp_path, 1) / "adapter_model.safetensors").stat().st_mtime_ns
    shutil.rmtree(tmp_path / "adapter")
    shutil.rmtree(stage_dir(tmp_path, 2))
    shutil.rmtree(tmp_path / "checkpoints" / "epochs1-2" / "checkpoint-2")
    model, tokenizer, info, dataset = fresh(cfg)
    counter = steps_trained()
    resumed = train_sft(model, tokenizer, dataset.select(range(8)), run_dir=tmp_path, settings=cfg,
                        backend=info.backend, stage_epochs=[1, 2], stage_schedule="restart", callbacks=[counter])
    assert counter.n == 1 and resumed["steps"] == 4  # one step trained: the first schedule was not redone
    assert resumed["schedules"][0]["reused_stage"] is True
    assert resumed["resumed_from"].endswith("epochs1-2/checkpoint-1")
    assert (stage_dir(tmp_path, 1) / "adapter_model.safetensors").stat().st_mtime_ns == stage_one
    assert json.loads((stage_dir(tmp_path, 2) / "stage.json").read_text()) == {"epoch": 2, "global_step": 4}
    again = lora_b(model)
    for name, value in trained.items():  # the uninterrupted run's weights
        assert torch.allclose(value, again[name], atol=1e-5), name
    # the curve covers the whole run, the first schedule's points kept from before the disconnect
    after = json.loads((tmp_path / "loss_curve.json").read_text())["points"]
    assert [p["step"] for p in after] == [1, 2, 3, 4] and after[:3] == points[:3]
    assert after[3]["loss"] == pytest.approx(points[3]["loss"], rel=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(not TENSORBOARD, reason="tensorboard is not installed: the one-line error is tested instead")
def test_report_to_tensorboard_writes_events(tiny_model, tmp_path):
    cfg = tiny(model=tiny_model, report_to="tensorboard", epochs=1.0, save_steps=2)
    model, tokenizer, info, dataset = fresh(cfg)
    train_sft(model, tokenizer, dataset.select(range(8)), run_dir=tmp_path, settings=cfg, backend=info.backend)
    assert list(tmp_path.rglob("events.out.tfevents.*"))
