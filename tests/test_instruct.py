"""The math/bio instruction tasks: data sources, schema checks, configs; train notebooks end to end."""

import contextlib
import json

import pytest
from hub_server import fetched

from helpers import run_notebook
from helpers.config import ConfigError
from helpers.studies import study_config
from helpers.tasks.instruct import TASKS, load_pairs


def test_local_data_in_the_hub_schemas():
    math = load_pairs(TASKS["math"], source="local", n=5)
    assert len(math) == 5 and all(prompt and answer for prompt, answer in math)
    bio = load_pairs(TASKS["bio"], source="local", n=1000)
    assert len(bio) >= 40
    with_input = [p for p in bio if "\n\n" in p[0]]  # instruction + input, as BioInstruct is used
    assert with_input


def test_a_data_file_path_works_and_bad_sources_say_what_to_do(tmp_path):
    good = tmp_path / "mine.csv"
    good.write_text("question,answer\nWhat is 2+2?,It is 4.\n")
    assert load_pairs(TASKS["math"], source=str(good), n=10) == [("What is 2+2?", "It is 4.")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x", "answer": "y"}) + "\n")
    with pytest.raises(ConfigError, match="lacks column\\(s\\) question; it has prompt, answer"):
        load_pairs(TASKS["math"], source=str(bad), n=10)
    with pytest.raises(ConfigError, match="neither 'hub', 'local' nor an existing file"):
        load_pairs(TASKS["bio"], source="nowhere.jsonl", n=10)


def test_unreachable_hub_points_to_local_data(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="dataset_source='local'") as err:
        load_pairs(TASKS["math"], source="hub", n=10)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("params, message", [
    ({"task": "bio"}, "train_math fixes task"),
    ({"stage_epochs": [1, 4]}, "within 1..epochs=3"),
    ({"stage_epochs": []}, "must be whole epochs"),
    ({"max_steps": 10}, "max_steps would cut the epochs short"),
    ({"dataset_source": " "}, "dataset_source is empty"),
    ({"n_samples": 0}, "n_samples must be >= 1"),
])
def test_train_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        study_config("train_math", params)


def test_benchmark_batch_size_zero_means_auto_and_negative_is_refused():
    assert study_config("benchmark", {}).eval_batch_size == 0
    with pytest.raises(ConfigError, match="eval_batch_size and max_questions >= 0"):
        study_config("benchmark", {"eval_batch_size": -1})


@pytest.fixture(scope="module")
def math_run(tiny_model, tmp_path_factory):
    """train_math (smoke, the local copy) once for the tests below: its own checks, and the benchmark's run."""
    root = tmp_path_factory.mktemp("instruct") / "runs"
    return run_notebook.execute("train_math", "smoke", {"output_root": str(root), "model": tiny_model},
                                log_output=False)


@pytest.mark.slow
@pytest.mark.parametrize("study, source", [("train_math", "local"), ("train_bio", "hub")])
def test_train_notebook_keeps_epoch1_and_epoch3_of_one_run(study, source, tiny_model, tmp_path, request):
    """train_bio reads bio-nlp-umass/bioinstruct from the hub-shaped server (tests/hub_server.py: the rows of
    the local copy), train_math the local copy (its hub run, with a hub model: tests/test_hub_server.py)."""
    # the hub: a fresh HF cache, so the kernel fetches the dataset itself whatever other tests fetched
    with request.getfixturevalue("hub_context")() if source == "hub" else contextlib.nullcontext() as hub:
        mark = hub.served if hub else 0
        run_dir = request.getfixturevalue("math_run") if study == "train_math" else run_notebook.execute(
            study, "smoke", {"output_root": str(tmp_path), "dataset_source": source, "model": tiny_model},
            log_output=False)
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["task"] == study.removeprefix("train_") and m["dataset_source"] == source
    if hub:  # the kernel fetched the dataset's one JSON file
        assert fetched(hub.since(mark), "/bio-nlp-umass/bioinstruct/resolve/")
        assert fetched(hub.since(mark), "/biomed_instruct_25k.json")
    assert m["backend"] == "transformers+bitsandbytes" and m["n_examples"] == 8
    assert json.loads(m["data"]) == {"examples": 8, "dropped_no_answer_tokens": 0}
    assert m["train"]["steps"] == 6 and m["train"]["effective"]["adapter_dtype"] == ["float32"]
    for epoch, step in ((1, 2), (3, 6)):  # 8 examples / batch 4 = 2 steps an epoch
        stage = run_dir / "stages" / f"epoch{epoch}"
        assert m["stages"][f"epoch{epoch}"] == str(stage)
        assert json.loads((stage / "stage.json").read_text()) == {"epoch": epoch, "global_step": step}
    assert run_dir.parent.name == study


@pytest.mark.slow
def test_benchmark_stages_raw_files_workbook_and_ratings_survive_a_rerun(tiny_model, math_run, tmp_path):
    from openpyxl import load_workbook

    train_dir, books = math_run, tmp_path / "books"
    root = train_dir.parent.parent  # <output_root>/train_math/<run>: the benchmark finds it there
    params = {"output_root": str(root), "workbook_dir": str(books), "model": tiny_model}
    run_dir = run_notebook.execute("benchmark", "smoke", params, log_output=False)
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["train_run"] == str(train_dir) and m["n_questions"] == 4
    assert list(m["stages"]) == ["base", "epoch1", "epoch3"]
    for stage, s in m["stages"].items():
        assert s["n"] == 4 and 0.0 <= s["auto_score"] <= 1.0
        raw = [json.loads(line) for line in open(m["raw_files"][stage])]
        assert [r["id"] for r in raw] == ["math-001", "math-002", "math-003", "math-004"]
        assert sum(r["score"] for r in raw) / 4 == pytest.approx(s["auto_score"])
    assert "/raw/base/" in m["raw_files"]["base"] and "/raw/qlora/" in m["raw_files"]["epoch3"]
    book = books / f"{tiny_model}-math.xlsx"
    assert m["files"]["workbook"] == str(book) and m["workbook_update"]["added"] == 4

    # a reviewer rates every answer of every stage
    wb = load_workbook(book)
    ws = wb["math"]
    header = [c.value for c in ws[1]]
    typed = {}
    for r in range(2, 6):
        for j, stage in enumerate(("base", "epoch1", "epoch3")):
            ws.cell(row=r, column=header.index(f"rating_{stage}") + 1, value=1 + (r + j) % 5)
            typed[(r, stage)] = 1 + (r + j) % 5
        ws.cell(row=r, column=header.index("comment") + 1, value=f"seen {r}")
    wb.save(book)

    # benchmark again with other generation settings: answers change, nothing typed is lost
    rerun = run_notebook.execute("benchmark", "smoke", {**params, "max_new_tokens": 12}, log_output=False)
    update = json.loads((rerun / "metrics.json").read_text())["workbook_update"]
    assert update["superseded"] >= 1 and update["superseded"] + update["unchanged"] == 4
    ws = load_workbook(book)["math"]
    for (r, stage), value in typed.items():
        assert ws.cell(row=r, column=header.index(f"rating_{stage}") + 1).value == value
        assert ws.cell(row=r, column=header.index("comment") + 1).value == f"seen {r}"


def test_benchmark_without_a_training_run_says_what_to_do(tmp_path):
    from helpers.benchmark import find_train_run

    cfg = study_config("benchmark", {"output_root": str(tmp_path), "task": "bio"})
    with pytest.raises(ConfigError, match="run notebooks/train_bio.ipynb first, pass train_run, or use"):
        find_train_run(cfg)
    assert find_train_run(study_config("benchmark", {"output_root": str(tmp_path), "stages": ["base"]})) is None
    with pytest.raises(ConfigError, match="stage 'epoch' is neither"):
        study_config("benchmark", {"stages": ["base", "epoch"]})
