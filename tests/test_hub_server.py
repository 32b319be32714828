"""The hub path, end to end against a local server that speaks the hub's HTTP API (tests/hub_server.py):
every dataset the studies load from the hub, HellaSwag through its parquet conversion, the errors a
user meets (gated, unknown id, offline, missing column), a study model from the registry, and the
notebooks train_math (on a hub model) and small_vs_large (without beer style) with dataset_source="hub"
(forgetting, train_bio and mmlu_teacher run their smoke runs on this server in their own test files)."""

import json
import math
import types

import pytest
from hub_server import fetched, mmlu_rows, point_at, read_jsonl

from helpers.config import ConfigError
from helpers.data import HubData, load_records
from helpers.studies import study_config
from helpers.tasks import forgetting, instruct, mmlu, small_vs_large

# ------------------------------------------------------------------------------------ datasets

@pytest.mark.parametrize("data, local", [
    (forgetting.ALPACA, "alpaca_sample.jsonl"),
    (forgetting.GSM8K_TRAIN, "gsm8k_train_sample.jsonl"),
    (forgetting.GSM8K_TEST, "gsm8k_test_sample.jsonl"),
    (forgetting.HELLASWAG, "hellaswag_sample.jsonl"),
    (small_vs_large.TASKS["medqa"].pool, "healthcaremagic_sample.jsonl"),
], ids=lambda v: getattr(v, "hub_id", None) or v)
def test_study_dataset_loads_from_the_hub_with_its_rows(hub, data, local):
    rows = load_records(data, source="hub", n=5)
    assert rows == read_jsonl(local)[:5]
    assert all(isinstance(row[c], str) for row in rows for c in data.columns if c != "endings")


def test_hellaswag_comes_from_the_parquet_conversion(hub):
    rows = load_records(forgetting.HELLASWAG, source="hub", n=0)
    assert len(rows) == 24 and rows[0]["endings"][0] == "spreads butter on one slice and adds ham and cheese."
    assert forgetting.hellaswag_item(rows[0])[2] == 0
    assert fetched(hub, "/datasets/Rowan/hellaswag/resolve/") and fetched(hub, "/default/validation/0000.parquet")
    assert not fetched(hub, "hellaswag.py")


def test_hellaswag_script_repository_gives_one_clear_line(hub, monkeypatch, tmp_path):
    point_at(monkeypatch, hub.url, tmp_path)  # a fresh cache: datasets would fall back to a cached conversion
    script_repo = HubData("Rowan/hellaswag", "hellaswag_sample.jsonl", ("ctx",), split="validation")
    with pytest.raises(ConfigError, match=r"Rowan/hellaswag is a loading-script repository \(hellaswag.py\).*"
                                          r"revision='refs/convert/parquet'") as err:
        load_records(script_repo, source="hub", n=2)
    assert "\n" not in str(err.value)


def test_instruct_tasks_load_their_hub_datasets(hub):
    math = instruct.load_pairs(instruct.TASKS["math"], source="hub", n=3)
    bio = instruct.load_pairs(instruct.TASKS["bio"], source="hub", n=3)
    orca, bioinstruct = read_jsonl("orca_math_sample.jsonl"), read_jsonl("bioinstruct_sample.jsonl")
    assert math == [(r["question"], r["answer"]) for r in orca[:3]]
    assert bio[0] == (bioinstruct[0]["instruction"], bioinstruct[0]["output"]) and len(bio) == 3
    assert fetched(hub, "/bio-nlp-umass/bioinstruct/resolve/") and fetched(hub, "biomed_instruct_25k.json")


def test_mmlu_subjects_load_one_config_each(hub):
    questions = mmlu.load_mmlu(["machine_learning", "professional_psychology"], source="hub", max_questions=3)
    expected = [r for s in ("machine_learning", "professional_psychology") for r in
                [r for r in mmlu_rows() if r["subject"] == s][:3]]
    assert [(q.subject, q.question, q.answer) for q in questions] == [
        (r["subject"], r["question"], r["answer"]) for r in expected]
    assert isinstance(questions[0].answer, int)  # cais/mmlu's ClassLabel A-D arrives as 0-3
    assert fetched(hub, "/machine_learning/test-00000-of-00001.parquet")


def test_forgetting_eval_data_from_the_hub_equals_the_local_copy(hub):
    """The forgetting notebook's smoke run loads from the hub (tests/test_studies.py): its local path, Alpaca too."""
    params = {"n_hellaswag": 3, "n_gsm8k": 2, "gsm8k_shots": 1, "n_mmlu": 2, "mmlu_subjects": forgetting.MMLU_CS}
    from_hub = forgetting.load_eval_data(study_config("forgetting", {**params, "data_source": "hub"}))
    local = forgetting.load_eval_data(study_config("forgetting", {**params, "data_source": "local"}))
    assert from_hub == local
    assert len(from_hub["mmlu"]) == 8 and from_hub["mmlu_subject"][:2] == ["college_computer_science"] * 2
    train = {source: [forgetting.alpaca_pair(r) for r in load_records(forgetting.ALPACA, source=source, n=4,
                                                                         param="data_source")]
             for source in ("hub", "local")}
    assert train["hub"] == train["local"] and len(train["local"]) == 4 and all(p and a for p, a in train["local"])


def test_small_vs_large_gsm8k_pool_and_test_from_the_hub(hub):
    cfg = study_config("small_vs_large", {"data_source": "hub", "n_pool": 4, "n_test": 2, "k_demos": 1})
    pool, test = small_vs_large.load_task_data(small_vs_large.get_task("gsm8k"), cfg)
    assert pool == read_jsonl("gsm8k_train_sample.jsonl")[:4] and test == read_jsonl("gsm8k_test_sample.jsonl")[:2]


def test_lm_eval_hellaswag_reads_the_parquet_conversion(hub, monkeypatch, tmp_path):
    import functools

    import lm_eval.tasks

    # indexing lm-eval's built-in tasks takes ~45 s here; the hellaswag override needs none of them
    monkeypatch.setattr(lm_eval.tasks, "TaskManager", functools.partial(lm_eval.tasks.TaskManager,
                                                                        include_defaults=False))
    cfg = study_config("forgetting", {"data_source": "hub", "mmlu_subjects": ["machine_learning"]})
    names, manager = forgetting.lm_eval_tasks(cfg, tmp_path)
    task = manager.load(["hellaswag"])["tasks"]["hellaswag"]
    docs = list(task.validation_docs())
    assert len(docs) == 24 and docs[0]["gold"] == 0 and docs[0]["query"].startswith("Making a sandwich: A man lays")
    assert names[0] == "hellaswag" and fetched(hub, "/default/validation/0000.parquet")


# -------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("token", [None, "hf_not_granted"], ids=["no token (401)", "token without access (403)"])
def test_gated_dataset_says_accept_the_licence(hub, monkeypatch, token):
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    gated = HubData("project-tests/gated-gsm8k", "gsm8k_test_sample.jsonl", ("question", "answer"), config="main",
                    split="test")
    with pytest.raises(ConfigError) as err:
        load_records(gated, source="hub", n=2)
    assert str(err.value).startswith("project-tests/gated-gsm8k is gated: accept the licence at "
                                     "https://huggingface.co/datasets/project-tests/gated-gsm8k and set HF_TOKEN")
    assert "\n" not in str(err.value)
    status = 403 if token else 401
    assert any("/project-tests/gated-gsm8k/resolve/" in p and s == status for _, p, s in hub.requests)


def test_unknown_dataset_says_check_the_spelling(hub):
    with pytest.raises(ConfigError, match=r"^no dataset openai/gsm8kk on the hub: check the spelling"):
        load_records(HubData("openai/gsm8kk", "gsm8k_test_sample.jsonl", ("question",), config="main"),
                     source="hub", n=2)


def test_missing_column_names_it_and_the_existing_ones(hub):
    renamed = HubData("project-tests/renamed-orca", "orca_math_sample.jsonl", ("question", "answer"))
    with pytest.raises(ConfigError, match=r"^project-tests/renamed-orca lacks column\(s\) question, answer; "
                                          r"it has problem, solution$"):
        load_records(renamed, source="hub", n=2)


def test_misspelt_mmlu_subject_lists_the_configs(hub):
    with pytest.raises(ConfigError, match=r"cais/mmlu: BuilderConfig 'machine_learnin' not found.*'machine_learning'"):
        mmlu.load_mmlu(["machine_learnin"], source="hub")


def test_hf_hub_offline_says_cannot_reach_the_hub(hub, monkeypatch, tmp_path):
    import datasets.config
    import huggingface_hub.constants

    point_at(monkeypatch, hub.url, tmp_path)  # a cache without the datasets other tests fetched
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    before = len(hub.requests)
    with pytest.raises(ConfigError, match=r"^cannot reach the hub for openai/gsm8k .*use dataset_source='local'"):
        load_records(forgetting.GSM8K_TEST, source="hub", n=2)
    assert len(hub.requests) == before


def test_connection_refused_says_cannot_reach_the_hub(monkeypatch, tmp_path):
    import socket

    import huggingface_hub.utils._http as http

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    point_at(monkeypatch, url, tmp_path)
    # huggingface_hub retries a refused connection 5 times, 23 s of backoff: keep the retries, skip the waits
    monkeypatch.setattr(http, "time", types.SimpleNamespace(sleep=lambda seconds: None))
    with pytest.raises(ConfigError, match=r"^cannot reach the hub for tatsu-lab/alpaca .*data_source='local'") as err:
        load_records(forgetting.ALPACA, source="hub", n=2, param="data_source")
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------- model and notebook

@pytest.mark.slow
def test_registry_model_loads_from_the_hub_through_the_cpu_fallback(hub, hub_model):
    import torch

    from helpers.modeling import load_model
    from helpers.registry import resolve_model

    model, tokenizer, info = load_model(hub_model, max_seq_length=64, load_in_4bit=True)
    assert info.source == resolve_model(hub_model).hub_id and info.backend == "transformers+bitsandbytes"
    assert model.config.architectures == ["LlamaForCausalLM"] and model.config.num_hidden_layers == 2
    assert model.config.quantization_config.load_in_4bit
    assert tokenizer.eos_token == "<|eot_id|>"
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert "<|start_header_id|>user<|end_header_id|>" in chat
    with torch.no_grad():
        logits = model(**tokenizer(["Hello world"], return_tensors="pt")).logits
    assert logits.shape[-1] == model.config.vocab_size and torch.isfinite(logits).all()
    assert fetched(hub, f"/{info.source}/resolve/main/model.safetensors")


@pytest.mark.slow
def test_train_math_notebook_runs_on_hub_data_and_a_hub_model(hub, hub_model, tmp_path):
    from helpers import run_notebook

    run_dir = run_notebook.execute("train_math", "smoke", {"dataset_source": "hub", "model": hub_model,
                                                           "output_root": str(tmp_path)}, log_output=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["dataset_source"] == "hub" and metrics["model"] == hub_model
    assert metrics["n_examples"] == 8 and metrics["backend"] == "transformers+bitsandbytes"
    assert math.isfinite(metrics["train"]["loss_first"]) and math.isfinite(metrics["train"]["loss_last"])
    assert all((run_dir / "stages" / f"epoch{e}" / "adapter_config.json").exists() for e in (1, 3))
    # the kernel (a separate process) fetched both from the server
    assert fetched(hub, "orca-math-word-problems-200k/resolve/") and fetched(hub, "/model.safetensors")


@pytest.mark.slow
def test_small_vs_large_notebook_runs_on_hub_data(hub, tiny_model, monkeypatch, tmp_path):
    """Its hub-mode run without beer style, which has no hub copy (data_source='hub' with beer stops with one line:
    tests/test_studies.py), so not the smoke run of tests/test_studies.py, which keeps beer on the local copies.
    One configuration (retrieval, demonstrations in training and test prompts, a QLoRA step) keeps it short."""
    from helpers import run_notebook

    point_at(monkeypatch, hub.url, tmp_path / "hf_home")  # a fresh cache: the kernel fetches every file itself
    mark = hub.served
    params = {"data_source": "hub", "tasks": ["gsm8k", "medqa"], "configurations": ["icl-train+qlora"],
              "large_model": "", "output_root": str(tmp_path / "runs"), "model": tiny_model}
    run_dir = run_notebook.execute("small_vs_large", "smoke", params, log_output=False)
    requests = hub.since(mark)
    m = json.loads((run_dir / "metrics.json").read_text())
    records = [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines()]
    assert m["data_source"] == "hub" and list(m["table"]) == ["icl-train+qlora"] and m["large_model"] is None
    assert m["n_test"] == {"gsm8k": 2, "medqa": 2} and len(records) == 4
    assert {k: (t["steps"], json.loads(t["data"])["examples"]) for k, t in m["train"].items()} == {
        "gsm8k/icl": (1, 6), "medqa/icl": (1, 6)}
    # smoke sizes: pool 6, test 2; GSM8K's test split, HealthCareMagic's rows after the pool
    gsm8k, healthcare = read_jsonl("gsm8k_train_sample.jsonl")[:6], read_jsonl("healthcaremagic_sample.jsonl")
    data = {"gsm8k": (gsm8k, read_jsonl("gsm8k_test_sample.jsonl")[:2]), "medqa": (healthcare[:6], healthcare[6:8])}
    for rec in records:
        task, (pool, test) = small_vs_large.get_task(rec["task"]), data[rec["task"]]
        demo = pool[m["retrieval"][rec["task"]]["test_demos"][rec["item"]][0]]
        assert rec["reference"] == task.target(test[rec["item"]])
        assert task.query(demo) in rec["prompt"] and rec["prompt"].endswith(f"{task.query(test[rec['item']])}\n"
                                                                              f"{task.answer_label}:")
    assert all(0 < r["bertscore_f1"] <= 1 for r in records if r["task"] == "medqa")
    assert m["workbook_update"]["added"] == 2
    assert fetched(requests, "/openai/gsm8k/resolve/")
    assert fetched(requests, "/lavita/ChatDoctor-HealthCareMagic-100k/resolve/")
