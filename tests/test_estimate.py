"""The wall-time estimate printed before a training run: arithmetic and when it speaks."""

import json
from types import SimpleNamespace

from helpers.estimate import WallTimeEstimate, estimate_line, format_duration


def _run(callback, step_times, max_steps, first_step=0):
    clock = iter([t for i, s in enumerate(step_times) for t in (10.0 * i, 10.0 * i + s)])
    callback.clock = lambda: next(clock)
    state = SimpleNamespace(max_steps=max_steps, global_step=first_step)
    for _ in step_times:
        callback.on_step_begin(None, state, None)
        state.global_step += 1
        callback.on_step_end(None, state, None)


def test_estimate_skips_warm_up_and_uses_the_median(tmp_path):
    lines = []
    cb = WallTimeEstimate(tmp_path, skip=2, measure=3, memory=lambda: None, echo=lines.append)
    _run(cb, [30.0, 5.0, 1.0, 3.0, 2.0, 9.0], max_steps=100)  # warm-ups 30 s and 5 s are left out
    assert len(lines) == 1  # once, after the 5th step; the 6th changes nothing
    assert cb.result["step_s"] == 2.0 and cb.result["measured_steps"] == 3
    assert cb.result["expected_s"] == 200.0
    assert "100 steps x 2.00 s/step = 3.3 min" in lines[0]
    assert json.loads((tmp_path / "estimate.json").read_text())["step_s"] == 2.0


def test_estimate_of_a_resumed_run_counts_the_steps_left():
    lines = []
    cb = WallTimeEstimate(None, skip=1, measure=2, memory=lambda: None, echo=lines.append)
    _run(cb, [8.0, 4.0, 4.0], max_steps=50, first_step=40)
    assert cb.result["steps_this_run"] == 10 and cb.result["expected_s"] == 40.0
    assert "10 steps (of 50; resumed)" in lines[0]


def test_short_run_still_gets_an_estimate():
    lines = []
    cb = WallTimeEstimate(None, skip=2, measure=5, memory=lambda: None, echo=lines.append)
    _run(cb, [3.0, 1.0], max_steps=2)
    assert cb.result["step_s"] == 2.0 and len(lines) == 1


def test_memory_against_the_card_and_warning():
    mem = {"device": "Tesla T4", "peak_gib": 14.0, "total_gib": 14.7}
    line = estimate_line(1000, 0.5, mem)
    assert "on Tesla T4; peak 14.0 of 14.7 GiB (95%)" in line and "lower batch_size" in line
    assert "lower batch_size" not in estimate_line(1000, 0.5, mem | {"peak_gib": 6.0})
    assert [format_duration(s) for s in (30, 600, 7200)] == ["30 s", "10.0 min", "2.0 h"]


def test_checkpoints_on_drive_say_what_their_trash_will_take(embedded_tokenizer, tmp_path, monkeypatch, capsys):
    """Colab: run folders live on the mounted Drive, where every checkpoint the trainer replaces (save_total_limit
    2) goes to Drive's trash and counts against the account's storage. After the first save the run says how much,
    from the checkpoint's real size; off Drive it only records it (estimate.json, beside the wall-time estimate)."""
    import dataclasses

    from datasets import Dataset
    from tiny_training import perf_bench, tiny_lora_model, tiny_settings  # tiny_training puts scripts/ on the path

    from helpers import estimate
    from helpers.sft import train_sft

    settings = dataclasses.replace(tiny_settings(), max_steps=7, save_steps=2)  # saves at 2, 4, 6 and 7
    rows = Dataset.from_list(perf_bench.length_rows(embedded_tokenizer, 16, 128, "alpaca"))
    monkeypatch.setattr(estimate, "DRIVE_MOUNT", tmp_path / "drive")
    for where, on_drive in (("drive", True), ("local", False)):
        run_dir = tmp_path / where / "MyDrive" / "run"
        capsys.readouterr()
        train_sft(tiny_lora_model(embedded_tokenizer), embedded_tokenizer, rows, run_dir=run_dir, settings=settings,
                  backend="transformers", resume=False)
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("checkpoints:")]
        recorded = json.loads((run_dir / "estimate.json").read_text())
        space = recorded["checkpoints"]
        kept = run_dir / "checkpoints" / "checkpoint-6"  # kept with checkpoint-7; 2 and 4 were replaced
        size = sum(f.stat().st_size for f in kept.rglob("*") if f.is_file()) / 2**20
        assert sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")) == ["checkpoint-6",
                                                                                          "checkpoint-7"]
        assert recorded["steps"] == 7  # the wall-time estimate is kept beside it
        assert space["saves"] == 4 and space["kept"] == 2 and space["on_drive"] is on_drive
        assert abs(space["checkpoint_mb"] - size) < 0.05 + 0.01 * size
        assert space["trash_mb"] == (round(space["checkpoint_mb"] * 2, 1) if on_drive else 0.0)
        assert len(lines) == int(on_drive)
        if on_drive:
            assert "4 to write, 2 kept" in lines[0] and "drive.google.com/drive/trash" in lines[0]


def test_each_schedule_says_its_checkpoints_once(tmp_path, monkeypatch):
    """stage_schedule "restart" trains one schedule after another, each checkpointing into its own folder: one line
    per schedule, at its first save."""
    from helpers import estimate

    monkeypatch.setattr(estimate, "DRIVE_MOUNT", tmp_path)
    lines = []
    cb = estimate.CheckpointSpace(tmp_path, echo=lines.append)
    for folder, max_steps in (("epochs0-1", 10), ("epochs1-3", 20)):
        args = SimpleNamespace(output_dir=str(tmp_path / folder), save_steps=3, save_total_limit=2)
        for step in (3, 6):
            (tmp_path / folder / f"checkpoint-{step}").mkdir(parents=True)
            (tmp_path / folder / f"checkpoint-{step}" / "optimizer.pt").write_bytes(b"0" * 2**20)
            cb.on_save(args, SimpleNamespace(global_step=step, max_steps=max_steps), None)
    assert [line.split(";")[0] for line in lines] == ["checkpoints: 1 MB each, 4 to write, 2 kept",
                                                      "checkpoints: 1 MB each, 7 to write, 2 kept"]
    assert json.loads((tmp_path / "estimate.json").read_text())["checkpoints"] == {
        "checkpoint_mb": 1.0, "saves": 7, "kept": 2, "on_drive": True, "trash_mb": 5.0}
