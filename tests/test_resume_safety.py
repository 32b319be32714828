""""Run all" again after a disconnect resumes safely: a checkpoint cut off mid-save is skipped and moved aside
(never deleted), a run_name folder trained with other settings is refused before run.json is rewritten, and a
"snapshot" stage is saved before the checkpoint that passes it. The training ones use tests/tiny_training.py's
two-layer model (a CPU trains a step in well under a second)."""

import dataclasses
import json
import shutil

import pytest
from tiny_training import perf_bench, tiny_lora_model, tiny_settings

from helpers import sft
from helpers.config import ConfigError
from helpers.runs import run_folder, write_run_record
from helpers.sft import last_checkpoint, stage_dir, train_sft


def rows(tokenizer):
    from datasets import Dataset

    return Dataset.from_list(perf_bench.length_rows(tokenizer, 16, 128, "alpaca"))  # 4 steps an epoch (2 x 2)


def fake_checkpoint(folder, step, *, missing=(), state="{}"):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    for name in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        if name not in missing:
            (path / name).write_bytes(b"x")
    if "trainer_state.json" not in missing:
        (path / "trainer_state.json").write_text(state)
    return path


def dirs(folder):
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


# ------------------------------------------------------------------ 1. a checkpoint cut off mid-save

def test_last_checkpoint_skips_and_moves_aside_the_ones_cut_off_mid_save(tmp_path, capsys):
    folder = tmp_path / "checkpoints"
    fake_checkpoint(folder, 2)
    fake_checkpoint(folder, 4, missing=("optimizer.pt", "scheduler.pt", "trainer_state.json"))
    fake_checkpoint(folder, 10, state='{"log_history": [')  # trainer_state.json itself cut off
    (folder / "incomplete-checkpoint-10").mkdir()  # moved aside by an earlier disconnect at the same step
    assert last_checkpoint(tmp_path).endswith("checkpoint-2")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "checkpoint-10 (no trainer_state.json" in lines[0]
    assert "checkpoint-4 (no optimizer.pt, scheduler.pt, trainer_state.json" in lines[1]
    assert "incomplete-checkpoint-4" in lines[1] and "not deleted" in lines[1]
    assert dirs(folder) == ["checkpoint-2", "incomplete-checkpoint-10", "incomplete-checkpoint-10-2",
                            "incomplete-checkpoint-4"]
    assert (folder / "incomplete-checkpoint-4" / "adapter_model.safetensors").exists()  # kept, not deleted
    # nothing complete left: a fresh start, the cut-off one kept
    shutil.rmtree(folder / "checkpoint-2")
    fake_checkpoint(folder, 6, missing=("trainer_state.json",))
    assert last_checkpoint(tmp_path) is None and (folder / "incomplete-checkpoint-6").is_dir()


@pytest.mark.slow
def test_a_run_whose_last_checkpoint_was_cut_off_resumes_from_the_one_before(embedded_tokenizer, tmp_path, capsys):
    settings = dataclasses.replace(tiny_settings(), max_steps=6)
    first = train_sft(tiny_lora_model(embedded_tokenizer), embedded_tokenizer, rows(embedded_tokenizer),
                      run_dir=tmp_path, settings=settings, backend="transformers")
    assert first["steps"] == 6 and dirs(tmp_path / "checkpoints") == ["checkpoint-4", "checkpoint-6"]
    # a disconnect while checkpoint-6 was written: its weights are there, the optimizer and trainer state not yet
    shutil.rmtree(tmp_path / "adapter")
    (tmp_path / "train_result.json").unlink()
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"):
        (tmp_path / "checkpoints" / "checkpoint-6" / name).unlink()
    capsys.readouterr()
    resumed = train_sft(tiny_lora_model(embedded_tokenizer), embedded_tokenizer, rows(embedded_tokenizer),
                        run_dir=tmp_path, settings=settings, backend="transformers")
    assert resumed["resumed_from"].endswith("checkpoint-4") and resumed["steps"] == 6
    assert "moved aside to incomplete-checkpoint-6" in capsys.readouterr().out
    # the trainer's rotation does not see (or delete) the moved one; checkpoint-6 is written again, whole
    assert dirs(tmp_path / "checkpoints") == ["checkpoint-4", "checkpoint-6", "incomplete-checkpoint-6"]
    assert sft.checkpoint_missing(tmp_path / "checkpoints" / "checkpoint-6") == []
    assert [p["step"] for p in json.loads((tmp_path / "loss_curve.json").read_text())["points"]] == [2, 4, 6]
    assert (tmp_path / "adapter" / "adapter_config.json").exists()


# ------------------------------------------------------------------ 2. a run_name folder and changed settings

def named(tmp_path, **kw):
    return dataclasses.replace(tiny_settings(run_name="my-run", output_root=str(tmp_path)), **kw)


def test_a_run_name_folder_trained_with_other_settings_is_refused_before_run_json_is_rewritten(tmp_path):
    a = named(tmp_path)
    run_dir = run_folder("train_math", a)
    write_run_record(run_dir, a, study="train_math")
    fake_checkpoint(run_dir / "checkpoints", 2)
    record = (run_dir / "run.json").read_bytes()
    b = dataclasses.replace(a, learning_rate=1e-5, seed=7)
    for call in (lambda: run_folder("train_math", b), lambda: write_run_record(run_dir, b, study="train_math")):
        with pytest.raises(ConfigError) as error:
            call()
        message = str(error.value)
        assert "\n" not in message and str(run_dir) in message
        assert "learning_rate 0.01 -> 1e-05, seed 42 -> 7)" in message
        assert "set resume = False to start over in this folder, or choose another run_name" in message
    assert (run_dir / "run.json").read_bytes() == record  # nothing overwritten
    # run-control keys do not count; resume = False starts over
    write_run_record(run_dir, dataclasses.replace(a, report_to="tensorboard"), study="train_math")
    write_run_record(run_dir, dataclasses.replace(b, resume=False), study="train_math")
    assert json.loads((run_dir / "run.json").read_text())["config"]["learning_rate"] == 1e-5


def test_settings_that_do_not_change_training_and_folders_without_training_pass(tmp_path):
    a = named(tmp_path)
    run_dir = run_folder("train_math", a)
    write_run_record(run_dir, a, study="train_math")
    # a folder with a run.json and no training yet (stopped while the model loaded): the new settings go in
    b = dataclasses.replace(a, lora_r=8)
    write_run_record(run_dir, b, study="train_math")
    # a run made before `optim` existed: its run.json lacks it, and "auto" (HASH_NEUTRAL) changes nothing
    (run_dir / "adapter").mkdir()
    record = json.loads((run_dir / "run.json").read_text())
    del record["config"]["optim"]
    record["config_hash"] = "00000000"
    (run_dir / "run.json").write_text(json.dumps(record))
    write_run_record(run_dir, b, study="train_math")
    # ... another optim does
    with pytest.raises(ConfigError, match=r"\(optim \(unset\) -> \"adamw_torch\"\)"):
        write_run_record(run_dir, dataclasses.replace(b, optim="adamw_torch"), study="train_math")


def test_training_in_a_subfolder_counts(tmp_path):
    """small_vs_large trains in adapters/<task>/<kind>/, mmlu_teacher in ft/<name>/: one run.json above them."""
    a = named(tmp_path)
    run_dir = run_folder("train_math", a)
    write_run_record(run_dir, a, study="train_math")
    fake_checkpoint(run_dir / "adapters" / "math" / "plain" / "checkpoints", 2)
    with pytest.raises(ConfigError, match="lora_alpha 16 -> 8"):
        write_run_record(run_dir, dataclasses.replace(a, lora_alpha=8), study="train_math")


@pytest.mark.slow
def test_a_finished_run_name_run_with_another_lora_r_is_one_line_not_a_size_mismatch(embedded_tokenizer, tmp_path):
    a = named(tmp_path, max_steps=2)
    run_dir = run_folder("train_math", a)
    write_run_record(run_dir, a, study="train_math")
    train_sft(tiny_lora_model(embedded_tokenizer), embedded_tokenizer, rows(embedded_tokenizer), run_dir=run_dir,
              settings=a, backend="transformers")
    c = dataclasses.replace(a, lora_r=8)  # train_sft refuses it too, where no write_run_record came first
    with pytest.raises(ConfigError, match=r"my-run holds a training of other settings \(lora_r 16 -> 8\): "):
        train_sft(tiny_lora_model(embedded_tokenizer, r=8), embedded_tokenizer, rows(embedded_tokenizer),
                  run_dir=run_dir, settings=c, backend="transformers")


# ------------------------------------------------------------------ 3. "snapshot" stages and the checkpoints

@pytest.mark.slow
def test_a_snapshot_stage_is_saved_before_the_checkpoint_that_passes_it(embedded_tokenizer, tmp_path, monkeypatch):
    settings = dataclasses.replace(tiny_settings(), max_steps=-1, epochs=2.0, save_steps=2)
    real = sft.save_stage

    def disconnected(model, run_dir, epoch, step):
        if epoch == 1:
            raise KeyboardInterrupt("runtime disconnected while saving stages/epoch1")
        real(model, run_dir, epoch, step)

    def train():
        return train_sft(tiny_lora_model(embedded_tokenizer), embedded_tokenizer, rows(embedded_tokenizer),
                         run_dir=tmp_path, settings=settings, backend="transformers", stage_epochs=[1, 2],
                         stage_schedule="snapshot")

    monkeypatch.setattr(sft, "save_stage", disconnected)
    with pytest.raises(KeyboardInterrupt):
        train()
    # epoch 1 ends at step 4: its checkpoint was not written before the stage was saved
    assert dirs(tmp_path / "checkpoints") == ["checkpoint-2"]
    monkeypatch.setattr(sft, "save_stage", real)
    resumed = train()
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["steps"] == 8
    for epoch, step in ((1, 4), (2, 8)):
        assert json.loads((stage_dir(tmp_path, epoch) / "stage.json").read_text()) == {"epoch": epoch,
                                                                                      "global_step": step}

    # a run folder left by the code before this fix: a checkpoint past epoch 1 and no stage for it
    shutil.rmtree(stage_dir(tmp_path, 1))
    shutil.rmtree(tmp_path / "adapter")
    shutil.rmtree(tmp_path / "checkpoints" / "checkpoint-8")
    (tmp_path / "train_result.json").unlink()
    with pytest.raises(ConfigError) as error:
        train()
    message = str(error.value)
    assert "\n" not in message and "stages/epoch1 was never saved whole" in message and "checkpoint-6" in message
    assert "set resume = False" in message
    assert dirs(tmp_path / "checkpoints") == ["checkpoint-6"]  # nothing trained or written


def test_run_json_keeps_each_earlier_sessions_versions_and_git_state(tmp_path, monkeypatch):
    """A "Run all" after a disconnect (or after the packages changed) rewrites run.json; the adapter's first
    steps came from the earlier session, so its start, package versions, git state and device stay under
    "earlier", oldest first. An unreadable run.json is not carried over and stops nothing."""
    from helpers import runs

    cfg = named(tmp_path)
    run_dir = run_folder("train_math", cfg)
    for n, version in enumerate(["2026.10.9", "2026.11.1", "2026.11.1"]):
        monkeypatch.setattr(runs, "package_versions", lambda version=version: {"unsloth": version})
        monkeypatch.setattr(runs, "git_state", lambda n=n: {"commit": f"c{n}"})
        write_run_record(run_dir, cfg, study="train_math")
    record = json.loads((run_dir / "run.json").read_text())
    assert record["versions"] == {"unsloth": "2026.11.1"} and record["git"] == {"commit": "c2"}
    assert [(e["versions"]["unsloth"], e["git"]["commit"]) for e in record["earlier"]] == [
        ("2026.10.9", "c0"), ("2026.11.1", "c1")]
    assert all(set(e) == set(runs.SESSION_KEYS) and e["started"] for e in record["earlier"])
    assert "earlier" not in record["earlier"][-1]  # flat: no record inside a record
    (run_dir / "run.json").write_text('{"study": "train_m')  # cut off by hand
    write_run_record(run_dir, cfg, study="train_math")
    assert "earlier" not in json.loads((run_dir / "run.json").read_text())
