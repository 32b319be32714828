"""Outputs land where they should and stay apart: run folders inside output_root, one workbook per
model (local folders that share a name included), a benchmark only of its own task's questions and
training run, raw answer files that a kill cannot corrupt, and a sweep that plans the folders the
notebooks write."""

import hashlib
import json

import pytest
from conftest import TINY

from helpers import benchmark
from helpers.config import ConfigError
from helpers.questions import Question
from helpers.runs import run_folder
from helpers.studies import study_config
from helpers.tasks.instruct import BenchmarkConfig


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/../../b", "a/b", "a\\b", ".", ".."])
def test_run_name_that_leaves_output_root_is_refused(tmp_path, name):
    # built without validation, so that run_folder itself is what refuses
    cfg = BenchmarkConfig(output_root=str(tmp_path), run_name=name)
    with pytest.raises(ConfigError, match=r"run_name .* must be a single folder name") as err:
        run_folder("benchmark", cfg)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_run_name_is_refused_before_a_kernel_starts(tmp_path):
    from helpers.run_notebook import resolve

    with pytest.raises(ConfigError, match="single folder name"):
        resolve("benchmark", None, {"output_root": str(tmp_path), "run_name": "../elsewhere"})
    named = BenchmarkConfig(output_root=str(tmp_path), run_name="mine..v2")  # dots inside a name are fine
    assert run_folder("benchmark", named) == tmp_path / "benchmark" / "mine..v2"


def test_workbook_slug_keeps_models_apart(tmp_path):
    first, second = tmp_path / "a" / "my--model", tmp_path / "b" / "my--model"
    first.mkdir(parents=True)
    second.mkdir(parents=True)

    def tag(folder):
        return hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]

    assert benchmark.workbook_slug("smollm2-135m") == "smollm2-135m"
    assert benchmark.workbook_slug("Qwen/Qwen2.5-0.5B") == "Qwen__Qwen2.5-0.5B"
    assert benchmark.workbook_slug("org/a--b") == "org__a-b"  # '--' is kept for '<slug>-<task>--<reviewer>'
    assert benchmark.workbook_slug(str(first)) == f"my-model-{tag(first)}"
    assert benchmark.workbook_slug(str(second)) == f"my-model-{tag(second)}"
    assert benchmark.workbook_slug(str(first) + "/") == benchmark.workbook_slug(str(first))

    books = tmp_path / "books"
    one, two = (study_config("benchmark", {"model": str(m), "workbook_dir": str(books)}) for m in (first, second))
    assert benchmark.workbook_path(one) == books / f"my-model-{tag(first)}-math.xlsx"
    assert benchmark.workbook_path(one) != benchmark.workbook_path(two)
    assert benchmark.workbook_meta(one) == {"model": "my--model", "model_id": str(first.resolve()),
                                            "task": "math", "question_set": "math"}
    hub = study_config("benchmark", {"model": "Qwen/Qwen2.5-0.5B", "task": "bio", "question_set": "bio"})
    assert benchmark.workbook_meta(hub) == {"model": "Qwen/Qwen2.5-0.5B", "model_id": "Qwen/Qwen2.5-0.5B",
                                            "task": "bio", "question_set": "bio"}


def test_question_set_of_another_task_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"question set 'math' is a math set .* task is 'bio'"):
        benchmark.load_benchmark_questions(study_config("benchmark", {"task": "bio", "question_set": "math"}))
    path = tmp_path / "mine.yaml"
    path.write_text("task: bio\nversion: 1\nquestions:\n  - id: b1\n    question: Why?\n    answer: Because.\n")
    with pytest.raises(ConfigError, match=r"mine.yaml' is a bio set .* task is 'math'"):
        benchmark.load_benchmark_questions(study_config("benchmark", {"task": "math", "question_set": str(path)}))

    mine = benchmark.load_benchmark_questions(study_config("benchmark", {"task": "bio", "question_set": str(path)}))
    assert [(q.id, q.task) for q in mine] == [("b1", "bio")]
    bio = benchmark.load_benchmark_questions(study_config("benchmark", {"task": "bio", "max_questions": 2}))
    assert [q.task for q in bio] == ["bio", "bio"]


def _train_run(folder, study, model, local_path=None):
    folder.mkdir(parents=True)
    record = {"study": study, "config": {"model": model},
              "model": {"spec": {"name": "x", "local_path": local_path}}}
    (folder / "run.json").write_text(json.dumps(record))
    (folder / "metrics.json").write_text("{}")
    return folder


def test_train_run_of_another_task_or_model_is_refused(tmp_path):
    math_run = _train_run(tmp_path / "train_math" / "r1", "train_math", "smollm2-135m")
    qwen_run = _train_run(tmp_path / "train_bio" / "r2", "train_bio", "qwen-2-7b")
    bio_run = _train_run(tmp_path / "train_bio" / "r3", "train_bio", "smollm2-135m")

    def cfg(**params):
        return study_config("benchmark", {"output_root": str(tmp_path), "model": "smollm2-135m", **params})

    with pytest.raises(ConfigError, match=r"is a train_math run of 'smollm2-135m', but this benchmark is task 'bio'"):
        benchmark.find_train_run(cfg(task="bio", train_run=str(math_run)))
    with pytest.raises(ConfigError, match=r"run of 'qwen-2-7b', but .* on 'smollm2-135m'"):
        benchmark.find_train_run(cfg(task="bio", train_run=str(qwen_run)))
    assert benchmark.find_train_run(cfg(task="bio", train_run=str(bio_run))) == bio_run
    assert benchmark.find_train_run(cfg(task="bio")) == bio_run  # the search never picks the qwen run

    # a local model written differently in the training run (relative, from the notebooks folder)
    local = tmp_path / "models" / "mine"
    local.mkdir(parents=True)
    mine = _train_run(tmp_path / "train_math" / "r4", "train_math", "../models/mine", str(local.resolve()))
    assert benchmark.find_train_run(cfg(model=str(local), train_run=str(mine))) == mine

    (bio_run / "run.json").write_text('{"study": "train_b')
    with pytest.raises(ConfigError, match=r"r3/run.json cannot be read"):
        benchmark.find_train_run(cfg(task="bio", train_run=str(bio_run)))


QUESTIONS = [Question(f"q{i}", f"question {i}", str(i), None, "math") for i in range(3)]


def test_raw_file_is_replaced_whole_or_not_at_all(tmp_path):
    path = tmp_path / "raw" / "base" / "m-math-base.jsonl"
    benchmark.write_raw(path, QUESTIONS, ["a", "b", "c"], [1.0, 0.0, None], {"stage": "base"})
    before = path.read_text()
    assert benchmark.read_raw(path, QUESTIONS) == ["a", "b", "c"]

    with pytest.raises(TypeError):  # the second answer cannot be written: a write that stops half-way
        benchmark.write_raw(path, QUESTIONS, ["x", object(), "z"], [0.0, 0.0, 0.0], {"stage": "base"})
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_cut_short_raw_file_is_moved_aside_and_regenerated(tmp_path, capsys):
    path = tmp_path / "m-math-epoch1.jsonl"
    benchmark.write_raw(path, QUESTIONS, ["a", "b", "c"], [1.0, 0.0, None], {"stage": "epoch1"})
    whole = path.read_text()
    path.write_text(whole[: len(whole) // 2])  # what a kill during the old, direct write left

    assert benchmark.read_raw(path, QUESTIONS) is None
    aside = list(tmp_path.glob("m-math-epoch1.jsonl.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == whole[: len(whole) // 2]
    assert not path.exists()
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and str(path) in printed[0] and aside[0].name in printed[0]

    path.write_text('{"id": "q0"}\n')  # valid JSON, but not an answers row
    assert benchmark.read_raw(path, QUESTIONS) is None
    assert len(list(tmp_path.glob("m-math-epoch1.jsonl.corrupt-*"))) == 2


@pytest.mark.slow
def test_sweep_plans_the_folders_the_notebooks_write_and_skips_them_next_time(smoke_sweep):
    """conftest's serial sweep (a workbook_dir that is not the default): the folders it planned are the ones
    its notebooks wrote, and the plan of the same sweep finds them finished."""
    from helpers.sweep import run_sweep
    from helpers.workbook import read_workbook_meta

    runs_root, books = smoke_sweep["root"], smoke_sweep["books"]
    first = [r for r in smoke_sweep["runs"] if r["model"] == TINY and r["task"] == "math"]
    assert [(r["study"], r["status"]) for r in first] == [("train_math", "done"), ("benchmark", "done")]
    for run in first:
        written = [p.parent for p in (runs_root / run["study"]).glob("*/metrics.json")
                   if json.loads(p.read_text())["task"] == "math"]
        assert written == [run["run_dir"]]
    bench = json.loads((first[1]["run_dir"] / "metrics.json").read_text())
    assert bench["train_run"] == str(first[0]["run_dir"])
    assert bench["files"]["workbook"] == str(books / f"{TINY}-math.xlsx")
    meta = read_workbook_meta(books / f"{TINY}-math.xlsx")
    expected = {"model": TINY, "model_id": TINY, "task": "math", "question_set": "math"}
    assert {key: meta.get(key) for key in expected} == expected
    log = [json.loads(line) for line in (runs_root / "sweep_log.jsonl").read_text().splitlines()]
    assert [e["run_dir"] for e in log if e["model"] == TINY and e["task"] == "math"] == [
        str(r["run_dir"]) for r in first]

    # the plan only (a real re-run would add to the log the other tests read; tests/test_sweep.py re-runs one)
    lines = []
    second = run_sweep([TINY], ["math"], preset="smoke", output_root=str(runs_root),
                       workbook_dir=str(books), dry_run=True, log=lines.append)
    assert [r["run_dir"] for r in second] == [r["run_dir"] for r in first]
    assert all(line.endswith("(finished, skip)") for line in lines) and len(lines) == 2
