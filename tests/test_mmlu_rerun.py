""""Run all" of mmlu_teacher again (after a disconnect) trains and reports one run on one data set, and pays for
nothing twice: each method's filtered data are kept (data/method<n>.json), so a teacher request that failed the
first time is not asked again; a finished adapter trained on other rows is moved aside and trained again
(helpers.sft.train_sft); the vanilla, teacher and fine-tuned evaluations are kept (eval_*.json, ft/<name>/eval.json),
and a fine-tuned student whose evaluation is kept loads no model."""

import dataclasses
import hashlib
import json
import os

import pytest
import torch
from chat_server import ChatServer
from test_mmlu_notebook import KEY, KEY_ENV, SUBJECTS, ScriptedTeacher

from helpers import run_notebook
from helpers.config import config_hash
from helpers.studies import study_config
from helpers.tasks import mmlu, mmlu_data, teacher

FAILING = "machine learning (question 2 of 3)"  # the one generation request the flaky teacher fails, once


class FlakyOnce(ScriptedTeacher):
    """The notebook test's scripted teacher, except that the first request for FAILING gets HTTP 400 (not retried,
    not cached): asked again, it is answered, with the next question of the bank."""

    def __init__(self):
        super().__init__()
        self.failed = False

    def __call__(self, request):
        if not self.failed and FAILING in request["body"]["messages"][-1]["content"]:
            self.failed = True
            return ("status", 400)
        return super().__call__(request)


def fake_embed(texts):
    """A random vector per text (no two items are near-duplicates by embedding)."""
    def vector(text):
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
        return torch.randn(64, generator=torch.Generator().manual_seed(seed))
    return torch.stack([vector(t) for t in texts])


@pytest.fixture
def endpoint(tmp_path, monkeypatch):
    """(server, cfg): the flaky teacher behind a real server, and settings that ask it with one try a request."""
    monkeypatch.setenv(KEY_ENV, KEY)
    with ChatServer(default=FlakyOnce()) as server:
        cfg = study_config("mmlu_teacher", {
            "output_root": str(tmp_path), "teacher_model": "scripted-teacher", "teacher_base_url": server.base_url,
            "teacher_api_key_env": KEY_ENV, "teacher_max_retries": 0, "n_generate": 3, "subjects": SUBJECTS})
        yield server, cfg


def questions_of(records):
    return [(r["subject"], r["stage"], r["item"] and r["item"].question) for r in records]


def test_method1_data_are_kept_and_a_rerun_asks_the_teacher_nothing(endpoint, tmp_path):
    server, cfg = endpoint
    questions = mmlu_data.load_mmlu(SUBJECTS, source="local")
    first = teacher.method1_data(teacher.make_teacher(cfg), fake_embed, questions, cfg, tmp_path)
    assert first["counts"]["generated"] == 6 and first["counts"]["no_reply"] == 1 and first["counts"]["kept"] == 5
    asked = len(server.requests)

    again = teacher.method1_data(teacher.make_teacher(cfg), fake_embed, questions, cfg, tmp_path)
    assert len(server.requests) == asked  # the failed request is not asked again: the same data
    assert again == first and questions_of(again["records"]) == questions_of(first["records"])
    assert isinstance(again["records"][0]["item"], mmlu_data.Question)
    kept = json.loads((tmp_path / "data" / "method1.json").read_text())
    assert kept["identity"] == {"data": "method1", "settings": config_hash(cfg)}
    listed = [json.loads(line) for line in (tmp_path / "data" / "method1.jsonl").read_text().splitlines()]
    assert [(r["subject"], r["stage"]) for r in listed] == [(s, st) for s, st, _ in questions_of(first["records"])]

    # to ask again (the notebook says so): delete the kept data. The failed request goes to the server, and the
    # next one of its subject, which names the questions before it; the others are answered from the cache
    (tmp_path / "data" / "method1.json").unlink()
    redone = teacher.method1_data(teacher.make_teacher(cfg), fake_embed, questions, cfg, tmp_path)
    assert redone["counts"]["no_reply"] == 0 and redone["counts"]["kept"] == 6
    generation = [r["body"]["messages"][-1]["content"] for r in server.requests[asked:]]
    generation = [text for text in generation if "of 3)" in text]
    assert len(generation) == 2 and FAILING in generation[0] and "machine learning (question 3 of 3)" in generation[1]


def test_method2_data_are_kept_for_their_targets(endpoint, tmp_path):
    server, cfg = endpoint
    questions = mmlu_data.load_mmlu(SUBJECTS, source="local")
    teacher_eval = {"items": [{"generated_letter": q.letter} for q in questions]}

    def student(wrong):  # the student answers the first `wrong` questions wrongly
        return {"items": [{"generated_letter": "ABCD"[(q.answer + (i < wrong)) % 4]} for i, q in enumerate(questions)]}

    first = teacher.method2_data(teacher.make_teacher(cfg), fake_embed, questions, teacher_eval, student(2), cfg,
                                 tmp_path)
    assert first["target_ids"] == [q.id for q in questions[:2]] and first["counts"]["generated"] == 2
    asked = len(server.requests)
    again = teacher.method2_data(teacher.make_teacher(cfg), fake_embed, questions, teacher_eval, student(2), cfg,
                                 tmp_path)
    assert len(server.requests) == asked and again == first
    # other targets (an evaluation computed again): other data, asked for
    other = teacher.method2_data(teacher.make_teacher(cfg), fake_embed, questions, teacher_eval, student(3), cfg,
                                 tmp_path)
    assert other["target_ids"] == [q.id for q in questions[:3]] and len(server.requests) > asked
    assert json.loads((tmp_path / "data" / "method2.json").read_text())["identity"]["targets"] == other["target_ids"]


# ------------------------------------------------------------------ a fine-tuned student's kept evaluation


def test_a_student_whose_evaluation_is_kept_loads_no_model(tmp_path, monkeypatch):
    """load_model, train_sft and the evaluation are fakes that count their calls; the adapter is two files."""
    import helpers.modeling
    import helpers.sft

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    cfg = study_config("mmlu_teacher", {"output_root": str(tmp_path)})
    calls = {"load": 0, "train": 0, "evaluate": 0}

    def load_model(*args, **kw):
        calls["load"] += 1
        return object(), object(), type("Info", (), {"backend": "transformers"})()

    def train_sft(model, tokenizer, dataset, *, run_dir, settings, backend, resume):
        calls["train"] += 1
        (run_dir / "adapter").mkdir(parents=True, exist_ok=True)
        (run_dir / "adapter" / "adapter_config.json").write_text("{}")
        (run_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"weights of %d rows" % len(dataset))
        (run_dir / "train_result.json").write_text(json.dumps({"steps": 2, "examples": len(dataset)}))
        return {"steps": 2, "examples": len(dataset)}

    def evaluate_student(model, tokenizer, info, questions, cfg, *, desc):
        calls["evaluate"] += 1
        return {"generate": {"all": {"accuracy": 0.25 * calls["evaluate"]}}, "loglik": None, "items": []}

    monkeypatch.setattr(helpers.modeling, "load_model", load_model)
    monkeypatch.setattr(helpers.modeling, "add_lora", lambda model, *args, **kw: model)
    monkeypatch.setattr(helpers.sft, "build_sft_dataset", lambda tokenizer, pairs, **kw: list(pairs))
    monkeypatch.setattr(helpers.sft, "train_sft", train_sft)
    monkeypatch.setattr(mmlu, "evaluate_student", evaluate_student)
    items = [mmlu_data.Question("machine_learning", f"Question {i}?", ["w", "x", "y", "z"], 1) for i in range(3)]

    first = mmlu.fine_tune_and_evaluate(cfg, "general", items, [], tmp_path)
    assert calls == {"load": 1, "train": 1, "evaluate": 1} and first["generate"]["all"]["accuracy"] == 0.25
    again = mmlu.fine_tune_and_evaluate(cfg, "general", items, [], tmp_path)
    assert calls == {"load": 1, "train": 1, "evaluate": 1}  # kept: no model loaded, nothing trained or evaluated
    assert again["generate"] == first["generate"] and again["train"] == {**first["train"], "reused_adapter": True}
    identity = json.loads((tmp_path / "ft" / "general" / "eval.json").read_text())["identity"]
    assert identity["settings"] == config_hash(cfg) and identity["adapter"] and identity["data"]

    # other items: the model loads (train_sft trains again or not: its business), the evaluation is redone
    mmlu.fine_tune_and_evaluate(cfg, "general", items[:2], [], tmp_path)
    assert calls == {"load": 2, "train": 2, "evaluate": 2}
    # resume = False trains again; the same adapter files keep their evaluation
    mmlu.fine_tune_and_evaluate(dataclasses.replace(cfg, resume=False), "general", items[:2], [], tmp_path)
    assert calls == {"load": 3, "train": 3, "evaluate": 2}


# ------------------------------------------------------------------ train_sft: a finished adapter of other data


@pytest.mark.slow
def test_a_finished_adapter_trained_on_other_rows_is_moved_aside_and_trained_again(embedded_tokenizer, tmp_path,
                                                                                    capsys):
    from datasets import Dataset
    from tiny_training import perf_bench, tiny_lora_model, tiny_settings

    from helpers.sft import dataset_digest, train_sft

    rows = perf_bench.length_rows(embedded_tokenizer, 16, 128, "alpaca")
    old, new = Dataset.from_list(rows), Dataset.from_list(rows[:12] + rows[:4])
    assert dataset_digest(old) != dataset_digest(new) and dataset_digest(old) == dataset_digest(Dataset.from_list(rows))
    assert dataset_digest(old.select(range(4))) == dataset_digest(Dataset.from_list(rows[:4]))

    def train(dataset):
        return train_sft(tiny_lora_model(embedded_tokenizer), embedded_tokenizer, dataset, run_dir=tmp_path,
                         settings=tiny_settings(), backend="transformers")

    first = train(old)
    assert first["data_digest"] == dataset_digest(old) and first["steps"] == 4
    assert train(old)["reused_adapter"] is True  # the same rows: reused, as always
    capsys.readouterr()

    second = train(new)  # other rows (a re-run whose data changed): not reused
    assert "reused_adapter" not in second and second["steps"] == 4 and second["resumed_from"] is None
    assert second["data_digest"] == dataset_digest(new)
    out = capsys.readouterr().out
    assert out.count("holds a training on other data") == 1 and "not deleted" in out
    aside = sorted(p.name for p in tmp_path.iterdir() if ".other-data-" in p.name)
    assert [name.split(".other-data-")[0] for name in aside] == ["adapter", "checkpoints", "train_result"]
    assert len({name.split(".other-data-")[1].removesuffix(".json") for name in aside}) == 1  # one time stamp
    kept = next(p for p in tmp_path.iterdir() if p.name.startswith("train_result.other-data-"))
    assert json.loads(kept.read_text())["data_digest"] == dataset_digest(old)  # moved, not deleted
    assert (tmp_path / next(n for n in aside if n.startswith("adapter.")) / "adapter_config.json").exists()
    assert json.loads((tmp_path / "train_result.json").read_text())["data_digest"] == dataset_digest(new)
    assert train(new)["reused_adapter"] is True

    # a run from before the digest (no data_digest, no training_data.json): reused as before, whatever the rows
    record = json.loads((tmp_path / "train_result.json").read_text())
    del record["data_digest"]
    (tmp_path / "train_result.json").write_text(json.dumps(record))
    (tmp_path / "training_data.json").unlink()
    assert train(old)["reused_adapter"] is True


@pytest.mark.slow
def test_a_checkpoint_of_other_rows_is_moved_aside_not_resumed(embedded_tokenizer, tmp_path, capsys):
    """A disconnect mid-training, then "Run all" on rows that changed meanwhile (a teacher asked again, a hub
    data set updated): the checkpoints are moved aside and the training starts over on the new rows, instead of
    going on from a checkpoint of the old ones (one adapter trained on two data sets). The same rows resume."""
    import shutil

    from datasets import Dataset
    from tiny_training import perf_bench, tiny_lora_model, tiny_settings

    from helpers.sft import DATA_MARK, dataset_digest, train_sft

    rows = perf_bench.length_rows(embedded_tokenizer, 16, 128, "alpaca")
    old, new = Dataset.from_list(rows), Dataset.from_list(rows[:12] + rows[:4])
    settings = dataclasses.replace(tiny_settings(), max_steps=6)

    def disconnected(dataset):  # trained to the end, then as if cut off after checkpoint-4
        train_sft(tiny_lora_model(embedded_tokenizer), embedded_tokenizer, dataset, run_dir=tmp_path,
                  settings=settings, backend="transformers")
        shutil.rmtree(tmp_path / "adapter")
        (tmp_path / "train_result.json").unlink()
        shutil.rmtree(tmp_path / "checkpoints" / "checkpoint-6")

    def train(dataset):
        return train_sft(tiny_lora_model(embedded_tokenizer), embedded_tokenizer, dataset, run_dir=tmp_path,
                         settings=settings, backend="transformers")

    disconnected(old)
    assert json.loads((tmp_path / DATA_MARK).read_text()) == {"data_digest": dataset_digest(old)}
    assert train(old)["resumed_from"].endswith("checkpoint-4")  # the same rows: resumed
    disconnected(old)
    capsys.readouterr()
    second = train(new)
    assert second["resumed_from"] is None and second["steps"] == 6 and second["data_digest"] == dataset_digest(new)
    out = capsys.readouterr().out
    assert out.count("holds a training on other data") == 1 and dataset_digest(old) in out
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("checkpoints.other-data-")]
    assert len(aside) == 1 and (aside[0] / "checkpoint-4" / "optimizer.pt").exists()  # moved, not deleted
    assert json.loads((tmp_path / DATA_MARK).read_text()) == {"data_digest": dataset_digest(new)}



# ------------------------------------------------------------------ the notebook, "Run all" twice


@pytest.mark.slow
def test_run_all_again_after_a_failed_teacher_request_trains_and_reports_one_data_set(tiny_model, tmp_path):
    """The audit's case: session 1's teacher fails one generation request (HTTP 400, not retried, not cached);
    session 2 is a "Run all" of the same settings. Before: session 2 asked the request again, kept another item
    set, reused the adapters trained on the first and reported the new counts, and evaluated everything again."""
    os.environ[KEY_ENV] = KEY
    params = {"output_root": str(tmp_path), "model": tiny_model, "teacher_model": "scripted-teacher",
              "teacher_backend": "openai", "teacher_api_key_env": KEY_ENV, "teacher_max_retries": 0,
              "check_relevance": True, "targeted_by": "generate", "domain_models": False}
    try:
        with ChatServer(default=FlakyOnce()) as server:
            params["teacher_base_url"] = server.base_url
            run_dir = run_notebook.execute("mmlu_teacher", "smoke", params, log_output=False)
            first = json.loads((run_dir / "metrics.json").read_text())
            kept = ["eval_vanilla.json", "eval_teacher.json", "data/method1.json", "data/method2.json"]
            files = sorted([*(run_dir / name for name in kept), *run_dir.glob("ft/*/eval.json")])
            stamps = {p: p.stat().st_mtime_ns for p in files if p.exists()}
            listing = (run_dir / "data" / "method1.jsonl").read_text()
            asked = len(server.requests)
            assert run_notebook.execute("mmlu_teacher", "smoke", params, log_output=False) == run_dir
            again = len(server.requests) - asked
    finally:
        del os.environ[KEY_ENV]
    second = json.loads((run_dir / "metrics.json").read_text())
    # one data set: each student reports the items its adapter was trained on, the first run's
    for name, ft in second["finetune"].items():
        trained = json.loads((run_dir / "ft" / name / "train_result.json").read_text())
        assert ft["train"]["reused_adapter"] is True
        assert ft["n_items"] == trained["examples"] == first["finetune"][name]["n_items"], name
    assert first["filter"]["method1"]["no_reply"] == 1 and second["filter"] == first["filter"]
    assert second["finetune"]["general"]["n_items"] == first["filter"]["method1"]["kept"]
    assert (run_dir / "data" / "method1.jsonl").read_text() == listing
    assert again == 0  # nothing asked of the teacher: its evaluation and both methods' data kept
    # nothing evaluated again: the kept files are the first run's, not rewritten
    assert len(files) == 6 and {p: p.stat().st_mtime_ns for p in files if p.exists()} == stamps
    assert second["tables"] == first["tables"] and second["method2"] == first["method2"]
    assert not list(run_dir.glob("ft/*/*.other-data-*"))  # no student had to be trained again
