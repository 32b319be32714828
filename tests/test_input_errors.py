"""Bad input on the command line ends in one line that says what to fix, before a kernel starts;
relative paths mean what they mean in the folder the command was typed in."""

import dataclasses
import json
from pathlib import Path

import pytest

from helpers import run_notebook
from helpers.config import REPO_ROOT, ConfigError, build_config
from helpers.questions import QuestionFileError, load_questions
from helpers.registry import require_model
from helpers.studies import STUDIES, study_config
from helpers.tasks.instruct import TrainConfig


def run_main(argv, capfd) -> tuple[int, str]:
    code = run_notebook.main([*argv, "--quiet"])
    out, err = capfd.readouterr()
    return code, err


def test_a_float_written_as_yaml_reads_it_is_a_float():
    # PyYAML reads 1e-4 as text (YAML 1.1 floats need a dot)
    assert run_notebook._parse_overrides([("learning_rate", "1e-4")]) == {"learning_rate": "1e-4"}
    cfg = build_config(TrainConfig, {"learning_rate": "1e-4", "lora_dropout": "5E-2"})
    assert cfg.learning_rate == 1e-4 and isinstance(cfg.learning_rate, float) and cfg.lora_dropout == 0.05
    _, params, cfg, _ = run_notebook.resolve("train_math", None, {"learning_rate": "1e-4"})
    assert params["learning_rate"] == 1e-4 == cfg.learning_rate  # the notebook gets the number
    # not a finite number; an int field takes no text (YAML reads integers as ints: text was quoted)
    for key, value in [("learning_rate", "nan"), ("learning_rate", "fast"), ("lora_r", "1e3"), ("lora_r", "16")]:
        with pytest.raises(ConfigError, match=f"parameter '{key}' must be"):
            build_config(TrainConfig, {key: value})


def test_stages_that_are_not_stage_names_are_one_line(capfd):
    for stages in ([1], ["base", None], ["epoch"], ["Base"]):
        with pytest.raises(ConfigError, match=r"neither 'base' nor 'epoch<N>'"):
            study_config("benchmark", {"stages": stages})
    code, err = run_main(["benchmark", "-p", "stages", "[1]"], capfd)
    assert code == 2 and err.count("\n") == 1 and "neither 'base' nor 'epoch<N>'" in err
    assert study_config("benchmark", {"stages": ["base", "epoch2"]}).stages == ["base", "epoch2"]


def test_stage_epochs_must_be_numbers_not_booleans():
    for stage_epochs in ([True], [1, True], [False]):
        with pytest.raises(ConfigError, match="stage_epochs .* must be whole epochs"):
            study_config("train_math", {"stage_epochs": stage_epochs})
    assert study_config("train_math", {"stage_epochs": [1, 3]}).stage_epochs == [1, 3]


def test_a_misspelt_parameter_gets_a_did_you_mean(capfd):
    with pytest.raises(ConfigError, match=r"no parameter 'lerning_rate' \(did you mean 'learning_rate'\?\)"):
        run_notebook.resolve("train_math", None, {"lerning_rate": 1e-4})
    code, err = run_main(["addition", "-p", "lora_rank", "8"], capfd)
    assert code == 2 and "'lora_rank' (did you mean 'lora_r'?)" in err


def fake_model(folder: Path, *, weights=True) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    if weights:
        (folder / "model.safetensors").write_bytes(b"")
    return folder


def test_a_folder_that_is_not_a_model_says_so(tmp_path, capfd):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a model")
    with pytest.raises(ConfigError, match=f"^{empty} is not a model folder: it has no config.json"):
        run_notebook.resolve("addition", None, {"model": str(empty)})
    half = fake_model(tmp_path / "half", weights=False)
    with pytest.raises(ConfigError, match=f"^{half} is not a model folder: it has config.json but no weights"):
        require_model(str(half))
    assert require_model(str(fake_model(tmp_path / "whole"))).local_path == str(tmp_path / "whole")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    assert require_model(str(adapter)).local_path == str(adapter)
    # a local teacher is checked too; an API model name is not a folder
    with pytest.raises(ConfigError, match="is not a model folder"):
        run_notebook.resolve("mmlu_teacher", None, {"teacher_backend": "local", "teacher_model": str(empty)})
    code, err = run_main(["addition", "-p", "model", str(empty)], capfd)
    assert code == 2 and err.count("\n") == 1 and "not a model folder" in err


def test_relative_paths_mean_the_folder_the_command_ran_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.jsonl").write_text('{"question": "1+1?", "answer": "2"}\n')
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "mine.yaml").write_text("task: math\n")
    fake_model(tmp_path / "models" / "tiny")
    (tmp_path / "smollm2-135m").mkdir()  # a registry name stays a name
    overrides = {"dataset_source": "data/mine.jsonl", "output_root": "runs", "model": "models/tiny"}
    _, params, cfg, run_dir = run_notebook.resolve("train_math", None, overrides, cwd=Path.cwd())
    assert params == {"dataset_source": str(tmp_path / "data" / "mine.jsonl"), "output_root": str(tmp_path / "runs"),
                      "model": str(tmp_path / "models" / "tiny")}
    assert cfg.dataset_source == params["dataset_source"] and run_dir.parent.parent == tmp_path / "runs"
    bench = {"question_set": "sets/mine.yaml", "workbook_dir": "books", "train_run": "runs/train_math/x",
             "model": "smollm2-135m"}
    _, params, _, _ = run_notebook.resolve("benchmark", None, bench, cwd=tmp_path)
    assert params == {"question_set": str(tmp_path / "sets" / "mine.yaml"), "workbook_dir": str(tmp_path / "books"),
                      "train_run": str(tmp_path / "runs" / "train_math" / "x"), "model": "smollm2-135m"}
    for keyword in ("hub", "local"):  # not paths
        assert run_notebook.resolve("train_math", None, {"dataset_source": keyword}, cwd=tmp_path)[1] == {
            "dataset_source": keyword}
    # an API teacher's model name is never a folder, even if one of that name is here
    (tmp_path / "gpt-4o").mkdir()
    teacher = {"teacher_backend": "local", "teacher_model": "models/tiny", "teacher_cache_dir": "cache"}
    _, params, _, _ = run_notebook.resolve("mmlu_teacher", None, teacher, cwd=tmp_path)
    assert params["teacher_model"] == str(tmp_path / "models" / "tiny")
    assert params["teacher_cache_dir"] == str(tmp_path / "cache")
    assert run_notebook.absolute_paths({"teacher_model": "gpt-4o"}, {"teacher_backend": "openai"}, tmp_path) == {}


def test_the_path_parameters_are_those_of_the_configs():
    listed = (run_notebook.REPO_PATHS | run_notebook.DATA_PATHS | {"question_set"} | set(run_notebook.MODEL_PARAMS)
              | run_notebook.ENCODER_PARAMS)
    fields = {f.name for study in STUDIES.values() for f in dataclasses.fields(study.config)}
    assert listed <= fields
    # a new parameter named like a path must be listed (or this test taught otherwise)
    assert {name for name in fields if name.endswith(("_root", "_dir", "_run", "_source", "_set", "_path", "_file",
                                                      "model"))} <= listed


def test_inside_the_repository_run_folders_do_not_depend_on_where_the_command_ran():
    _, _, _, from_root = run_notebook.resolve("train_math", None, {})
    _, params, _, from_notebooks = run_notebook.resolve("train_math", None, {"output_root": "../benchmarks"},
                                                        cwd=REPO_ROOT / "notebooks")
    assert params["output_root"] == "benchmarks" and from_notebooks == from_root


def test_a_missing_data_file_or_question_file_is_named_before_the_run(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(["train_math", "-p", "dataset_source", "missing.jsonl", "-p", "output_root", "runs"], capfd)
    assert code == 2 and f"(looked for {tmp_path / 'missing.jsonl'})" in err and not (tmp_path / "runs").exists()
    code, err = run_main(["benchmark", "-p", "question_set", "nope.yaml", "-p", "stages", "[base]"], capfd)
    assert code == 2 and f"looked for {tmp_path / 'nope.yaml'}" in err
    with pytest.raises(QuestionFileError, match="nope.yaml: no such file"):
        load_questions(tmp_path / "nope.yaml")


def test_a_control_character_is_reported_at_its_line(tmp_path):
    path = tmp_path / "bell.yaml"
    path.write_text('task: math\nversion: "1"\nquestions:\n  - id: m1\n    question: "What is 2+2?"\n'
                    "    answer: '4'\n    solution: two and two\x07 make four\n", encoding="utf-8")
    with pytest.raises(QuestionFileError) as err:
        load_questions(path)
    assert str(err.value) == (f"{path}:7: control character U+0007 at column 26 is not allowed in YAML; delete it")
