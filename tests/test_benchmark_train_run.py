"""The benchmark reuses a stage's answers only where the same adapter wrote them: with train_run "" (the
newest finished run), training again and benchmarking again answers with the new adapter, keeps the base
answers, and keeps the old adapter's answers aside. Runs notebooks/benchmark.ipynb's answer loop itself,
with generation replaced by a fake that counts its calls (no model, no torch)."""

import json
import os
from pathlib import Path

import nbformat
import pytest

from helpers import benchmark
from helpers.questions import Question
from helpers.runs import Timer, run_folder
from helpers.studies import study_config

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "benchmark.ipynb"
QUESTIONS = [Question(f"q{i}", f"question {i}", str(i), None, "math") for i in range(3)]


def _answer_loop() -> str:
    """The notebook's cell that answers each stage (read_raw, else answer_stage, then write_raw)."""
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
    (cell,) = [c for c in cells if "benchmark.answer_stage(" in c]
    return cell


def _train_run(root, name, adapter: bytes, mtime: float, epochs=(1,)):
    """A finished train_math run of smollm2-135m whose stages hold `adapter` as their weights; `mtime` orders
    the runs (find_train_run picks the newest metrics.json)."""
    run = root / "train_math" / name
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.json").write_text(json.dumps({"study": "train_math", "config": {"model": "smollm2-135m"}}))
    for epoch in epochs:
        stage = run / "stages" / f"epoch{epoch}"
        stage.mkdir(parents=True, exist_ok=True)
        (stage / "adapter_config.json").write_text('{"r": 8}')
        (stage / "adapter_model.safetensors").write_bytes(adapter)
    (run / "metrics.json").write_text("{}")
    os.utime(run / "metrics.json", (mtime, mtime))
    return run


@pytest.fixture
def bench(tmp_path, monkeypatch):
    """run(): the notebook's answer loop on this config, as after its config cell; returns (answers by stage,
    the stages generated, each with the training run it was generated from)."""
    cfg = study_config("benchmark", {"model": "smollm2-135m", "output_root": str(tmp_path / "runs"),
                                     "stages": ["base", "epoch1"]})
    generated = []

    def answer_stage(llm, tokenizer, info, questions, stage, train_run, cfg):
        generated.append((stage, train_run.name if stage != "base" else None))
        source = "base" if stage == "base" else f"{stage} of {train_run.name}"
        return [f"{source}: {q.id}" for q in questions]

    monkeypatch.setattr(benchmark, "load_for_stages", lambda cfg, train_run: (object(), object(), object()))
    monkeypatch.setattr(benchmark, "answer_stage", answer_stage)

    def run():
        generated.clear()
        namespace = {"benchmark": benchmark, "cfg": cfg, "run_dir": run_folder("benchmark", cfg),
                     "train_dir": benchmark.find_train_run(cfg), "questions": QUESTIONS, "timer": Timer(),
                     "write_run_record": lambda *args, **kwargs: None}
        exec(_answer_loop(), namespace)
        return {stage: texts for stage, (texts, _) in namespace["answers"].items()}, list(generated)

    run.cfg, run.root = cfg, tmp_path / "runs"
    return run


def _raw(cfg, stage):
    return benchmark.raw_path(run_folder("benchmark", cfg), cfg.model, cfg.task, stage)


def test_a_newer_training_run_is_answered_again_and_base_answers_are_reused(bench, capsys):
    _train_run(bench.root, "smollm2-135m-aaaa1111", b"old adapter", mtime=1_000_000)
    answers, generated = bench()
    assert generated == [("base", None), ("epoch1", "smollm2-135m-aaaa1111")]
    assert bench() == (answers, [])  # the same training run: everything reused
    old_file = _raw(bench.cfg, "epoch1").read_text()

    _train_run(bench.root, "smollm2-135m-bbbb2222", b"new adapter", mtime=2_000_000)  # trained again
    again, generated = bench()
    assert generated == [("epoch1", "smollm2-135m-bbbb2222")]
    assert again["base"] == answers["base"]
    assert again["epoch1"] == [f"epoch1 of smollm2-135m-bbbb2222: q{i}" for i in range(3)]
    rows = [json.loads(line) for line in _raw(bench.cfg, "epoch1").read_text().splitlines()]
    assert {r["train_run"] for r in rows} == {"smollm2-135m-bbbb2222"}
    # the old adapter's answers are kept aside, not deleted
    (aside,) = _raw(bench.cfg, "epoch1").parent.glob("*.jsonl.other-train-run-*")
    assert aside.read_text() == old_file
    assert "smollm2-135m-aaaa1111" in capsys.readouterr().out
    assert bench() == (again, [])


def test_an_adapter_trained_again_in_the_same_folder_is_answered_again(bench):
    _train_run(bench.root, "smollm2-135m-aaaa1111", b"first training", mtime=1_000_000)
    bench()
    _train_run(bench.root, "smollm2-135m-aaaa1111", b"second training", mtime=2_000_000)  # same settings
    assert bench()[1] == [("epoch1", "smollm2-135m-aaaa1111")]


def test_raw_files_without_a_training_run_keep_base_and_answer_epochs_again(bench, capsys):
    """Files the notebook wrote before raw rows recorded their training run: which adapter answered an epoch
    stage cannot be told, so it is answered again (the file moved aside); base answers are reused."""
    _train_run(bench.root, "smollm2-135m-aaaa1111", b"adapter", mtime=1_000_000)
    for stage in ("base", "epoch1"):
        benchmark.write_raw(_raw(bench.cfg, stage), QUESTIONS, [f"old {stage}"] * 3, [0.0] * 3,
                            {"model": "smollm2-135m", "task": "math", "stage": stage})
    answers, generated = bench()
    assert generated == [("epoch1", "smollm2-135m-aaaa1111")]
    assert answers["base"] == ["old base"] * 3
    assert answers["epoch1"] == [f"epoch1 of smollm2-135m-aaaa1111: q{i}" for i in range(3)]
    assert len(list(_raw(bench.cfg, "epoch1").parent.glob("*.other-train-run-*"))) == 1
    assert "written before" in capsys.readouterr().out


def test_stage_source_names_the_training_run_and_its_adapter(tmp_path):
    run = _train_run(tmp_path, "r1", b"weights", mtime=1_000_000, epochs=(1, 3))
    assert benchmark.stage_source(run, "base") == benchmark.stage_source(None, "base") == {}
    one = benchmark.stage_source(run, "epoch1")
    assert one["train_run"] == "r1" and len(one["adapter_sha256"]) == 16
    assert benchmark.stage_source(run, "epoch01") == one  # the adapter answer_stage loads for it
    assert benchmark.stage_source(run, "epoch3") == one  # same bytes, same adapter
    assert benchmark.stage_source(run, "epoch2") == {"train_run": "r1", "adapter_sha256": None}


def test_read_raw_checks_the_source_only_when_given(tmp_path):
    path = tmp_path / "m-math-epoch1.jsonl"
    benchmark.write_raw(path, QUESTIONS, ["a", "b", "c"], [0.0] * 3,
                        {"stage": "epoch1", "train_run": "r1", "adapter_sha256": "0" * 16})
    assert benchmark.read_raw(path, QUESTIONS) == ["a", "b", "c"]  # callers that predate it
    assert benchmark.read_raw(path, QUESTIONS, {"train_run": "r1", "adapter_sha256": "0" * 16}) == ["a", "b", "c"]
    assert benchmark.read_raw(path, QUESTIONS, {"train_run": "r2", "adapter_sha256": "0" * 16}) is None
    assert not path.exists() and len(list(tmp_path.glob("*.other-train-run-*"))) == 1
