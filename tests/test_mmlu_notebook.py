"""notebooks/mmlu_teacher.ipynb end to end (smoke preset), run once per teacher: the tiny random-weight
model (tests/conftest.py) as student and teacher, on cais/mmlu from the hub-shaped server
(tests/hub_server.py, dataset_source="hub"), and a scripted teacher behind a real chat-completions server
on 127.0.0.1 (API key from an environment variable) on the local fixture, whose items survive the filter,
so both fine-tuning methods train.
(A re-run answered from the cache: tests/test_mmlu.py, tests/test_backends.py.)"""

import json
import os
import threading

import pytest
from chat_server import ChatServer
from conftest import TINY
from hub_server import fetched, mmlu_rows

from helpers import run_notebook
from helpers.runs import files_digest
from helpers.tasks import mmlu, mmlu_data

pytestmark = pytest.mark.slow
KEY_ENV, KEY = "MMLU_NOTEBOOK_TEST_KEY", "sk-notebook-test-5f1e"
SUBJECTS = ["machine_learning", "professional_psychology"]

# What the scripted teacher writes, in order, for generation and targeted requests (real, distinct questions).
BANK = [
    ("Which method splits data into k parts and validates on each part in turn?",
     ["Bootstrapping", "k-fold cross-validation", "Bagging", "Boosting"], "B"),
    ("Which family of models learns by stacking layers of weighted sums and nonlinearities?",
     ["Neural networks", "Decision stumps", "k-means", "Apriori"], "A"),
    ("What does a learning-rate schedule change during training?",
     ["The batch size", "The model architecture", "The step size of the optimizer", "The labels"], "C"),
    ("Which defence mechanism attributes one's own unacceptable feelings to others?",
     ["Sublimation", "Denial", "Regression", "Projection"], "D"),
    ("Which interview approach helps a client find reasons to change a habit?",
     ["Motivational interviewing", "Hypnosis", "Free association", "Flooding"], "A"),
    ("What must a psychologist obtain before recording a therapy session?",
     ["A court order", "The client's informed consent", "A colleague's approval", "Nothing"], "B"),
    ("Which unsupervised algorithm assigns points to the nearest of k centroids?",
     ["Linear regression", "Naive Bayes", "k-means clustering", "Logistic regression"], "C"),
    ("Which reinforcement schedule produces behaviour most resistant to extinction?",
     ["Continuous", "Fixed ratio", "Fixed interval", "Variable ratio"], "D"),
    ("Which quantity does gradient descent move against to lower the loss?",
     ["The gradient", "The bias", "The dataset", "The epoch count"], "A"),
    ("Which personality test uses ambiguous inkblots?",
     ["MMPI", "Rorschach", "WAIS", "Stanford-Binet"], "B"),
    ("Which technique prevents a decision tree from growing too deep?",
     ["Dropout", "Word embedding", "Pruning", "Max pooling"], "C"),
    ("Which bias makes people seek information that confirms their beliefs?",
     ["Anchoring", "Hindsight bias", "Halo effect", "Confirmation bias"], "D"),
]


class ScriptedTeacher:
    """Answers evaluation and bank questions correctly, writes bank questions, says yes to relevance."""

    def __init__(self):
        self.lock = threading.Lock()
        self.next = 0
        fixture = mmlu_data.load_mmlu(SUBJECTS, source="local")
        self.answers = {q.question: q.letter for q in fixture} | {q: letter for q, _, letter in BANK}

    def __call__(self, request):
        messages = request["body"]["messages"]
        text = messages[-1]["content"]
        if "Reply with yes or no only" in text:
            return "yes"
        if "Do not output any explanation" in text:
            return next((letter for q, letter in self.answers.items() if q in text), "A")
        with self.lock:  # a generation or a targeted request: the next question of the bank
            question, choices, letter = BANK[self.next % len(BANK)]
            self.next += 1
        return f"Sure, here it is.\nQuestion: {question}\n{mmlu_data.format_options(choices)}\nAnswer: {letter}"


@pytest.fixture(scope="module")
def local_run(tiny_model, tmp_path_factory, hub_context):
    """The local teacher's run, its questions from the hub (cais/mmlu's per-subject configs); the tiny model
    as student and teacher (what it writes parses rarely: the filter and skips are what is tested here)."""
    root = tmp_path_factory.mktemp("mmlu_local")
    with hub_context() as hub:
        mark = hub.served
        params = {"output_root": str(root), "dataset_source": "hub", "model": tiny_model, "teacher_model": tiny_model}
        run_dir = run_notebook.execute("mmlu_teacher", "smoke", params, log_output=False)
        requests = hub.since(mark)
    return run_dir, json.loads((run_dir / "metrics.json").read_text()), requests


@pytest.fixture(scope="module")
def http_run(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("mmlu_http")
    os.environ[KEY_ENV] = KEY
    try:
        with ChatServer(default=ScriptedTeacher()) as server:
            params = {"output_root": str(root), "model": tiny_model, "teacher_backend": "openai",
                      "teacher_model": "scripted-teacher", "teacher_base_url": server.base_url,
                      "teacher_api_key_env": KEY_ENV, "check_relevance": True,
                      "targeted_by": "generate", "domain_models": False}
            run_dir = run_notebook.execute("mmlu_teacher", "smoke", params, log_output=False)
            requests = list(server.requests)
    finally:
        del os.environ[KEY_ENV]
    return {"run_dir": run_dir, "m": json.loads((run_dir / "metrics.json").read_text()), "requests": requests}


def predictions(run_dir):
    return json.loads((run_dir / "predictions.json").read_text())


def recomputed(items, key):
    out = {}
    for subject in SUBJECTS:
        mine = [it for it in items if it["subject"] == subject]
        out[subject] = sum(it[key] == it["reference"] for it in mine) / len(mine)
    return out


def test_local_teacher_run_asks_the_hub_questions(local_run):
    run_dir, m, requests = local_run
    assert m["dataset_source"] == "hub" and m["n_questions"] == 12
    # the first 6 rows of each subject's config on the server; the local fixture's differ (other ids, and
    # the server's machine_learning starts with the forgetting study's two rows)
    rows = [r for s in SUBJECTS for r in [r for r in mmlu_rows() if r["subject"] == s][:6]]
    items = predictions(run_dir)["vanilla student"]
    assert [(it["id"], it["subject"], it["reference"]) for it in items] == [
        (f"{r['subject']}-{i % 6:04d}", r["subject"], "ABCD"[r["answer"]]) for i, r in enumerate(rows)]
    assert fetched(requests, "/cais/mmlu/resolve/")
    assert all(fetched(requests, f"/{s}/test-00000-of-00001.parquet") for s in SUBJECTS)


def test_local_teacher_tables_match_the_predictions(local_run):
    run_dir, m, _ = local_run
    assert m["teacher"] == {"backend": "local", "model": TINY, "counters": m["teacher"]["counters"]}
    assert m["n_questions"] == 12 and m["backend"] == "transformers+bitsandbytes"
    rows = ["teacher", "vanilla student", "General FT", "machine_learning FT (generated)",
            "professional_psychology FT (generated)", "Targeted FT (method 2)", "machine_learning FT",
            "professional_psychology FT"]
    assert list(m["tables"]["generate"]) == rows and list(m["tables"]["loglik"]) == rows
    preds = predictions(run_dir)
    for label in ("teacher", "vanilla student"):
        table = m["tables"]["generate"][label]
        assert list(table) == SUBJECTS + ["all"] and all(table[s]["n"] == 6 for s in SUBJECTS)
        got = {s: table[s]["accuracy"] for s in SUBJECTS}
        assert got == pytest.approx(recomputed(preds[label], "generated_letter"))
    vanilla = m["tables"]["loglik"]["vanilla student"]
    assert {s: vanilla[s]["accuracy"] for s in SUBJECTS} == pytest.approx(recomputed(preds["vanilla student"],
                                                                                      "loglik_letter"))
    for it in preds["vanilla student"]:  # the pick is the argmax of the four letters' log-likelihoods
        assert it["loglik_letter"] == "ABCD"[it["loglik"].index(max(it["loglik"]))]
    assert all(v is None for v in m["tables"]["loglik"]["teacher"].values())  # a chat teacher has no log-likelihoods
    # teacher = student, greedy: the same letters
    letters = {label: [it["generated_letter"] for it in preds[label]] for label in ("teacher", "vanilla student")}
    assert letters["teacher"] == letters["vanilla student"]


def test_local_teacher_filter_counts_and_fine_tunings(local_run):
    run_dir, m, _ = local_run
    counts = m["filter"]["method1"]
    assert counts["generated"] == 3 * len(SUBJECTS)
    assert sum(v for k, v in counts.items() if k != "generated") == counts["generated"]
    assert counts["off_domain"] == 0  # the smoke preset switches the relevance judge off for the 135M teacher
    by_subject = m["filter_by_subject"]["method1"]
    assert sum(c["kept"] for c in by_subject.values()) == counts["kept"]
    records = [json.loads(line) for line in (run_dir / "data" / "method1.jsonl").read_text().splitlines()]
    assert len(records) == counts["generated"] and sum(r["stage"] == "kept" for r in records) == counts["kept"]
    assert m["finetune"]["general"]["n_items"] == counts["kept"]
    # kept for a re-run of these settings (tests/test_mmlu_rerun.py): the data, and every evaluation
    settings = json.loads((run_dir / "run.json").read_text())["config_hash"]
    kept = json.loads((run_dir / "data" / "method1.json").read_text())
    assert kept["identity"] == {"data": "method1", "settings": settings} and kept["result"]["counts"] == counts
    for name in ("eval_vanilla.json", "eval_teacher.json"):
        assert json.loads((run_dir / name).read_text())["identity"]["settings"] == settings
    for name in (name for name, ft in m["finetune"].items() if ft["n_items"] and not ft["same_data_as"]):
        identity = json.loads((run_dir / "ft" / name / "eval.json").read_text())["identity"]
        assert identity["adapter"] == files_digest(run_dir / "ft" / name / "adapter")
    for name, ft in m["finetune"].items():
        if ft["n_items"]:
            assert ft["train"]["steps"] == 2 and ft["skipped"] is None
        else:
            assert ft["skipped"] and all(v is None for v in m["tables"]["generate"][mmlu.row_label(name)].values())
    # method 2: targets are the questions the teacher got right and the student (by log-likelihood) wrong
    preds = predictions(run_dir)
    expected = [t["id"] for t, s in zip(preds["teacher"], preds["vanilla student"])
                if t["generated_letter"] == t["reference"] and s["loglik_letter"] != s["reference"]]
    assert m["method2"]["target_ids"] == expected and m["filter"]["method2"]["generated"] == len(expected)
    assert "optimistic" in m["method2"]["leakage_caveat"]
    teacher = m["teacher"]["counters"]
    assert teacher["requests"] >= 12 + counts["generated"] and teacher["failures"] == 0


def test_http_teacher_over_a_real_server_both_methods_fine_tune(http_run):
    m, run_dir = http_run["m"], http_run["run_dir"]
    assert m["teacher"] == {"backend": "openai", "model": "scripted-teacher", "base_url": m["teacher"]["base_url"],
                            "api_key_env": KEY_ENV, "counters": m["teacher"]["counters"]}
    assert list(m["finetune"]) == ["general", "targeted"]  # domain_models off
    assert m["tables"]["generate"]["teacher"]["all"]["accuracy"] == 1.0  # the scripted teacher knows the fixture
    counts = m["filter"]["method1"]
    assert counts["generated"] == 6 and counts["unparsed"] == counts["duplicate_text"] == counts["off_domain"] == 0
    assert counts["inconsistent"] == 0 and counts["kept"] == 6 - counts["duplicate_embedding"] >= 4
    preds = predictions(run_dir)
    wrong = [s["id"] for s in preds["vanilla student"] if s["generated_letter"] != s["reference"]]
    assert m["method2"]["target_ids"] == wrong and m["filter"]["method2"]["generated"] == len(wrong)
    assert m["finetune"]["general"]["n_items"] == counts["kept"] and m["finetune"]["general"]["train"]["steps"] == 2
    targeted = m["finetune"]["targeted"]
    assert targeted["n_items"] == m["filter"]["method2"]["kept"] > 0 and targeted["train"]["steps"] == 2
    split = m["method2"]["targeted_ft_split"]
    assert split["targeted_questions"]["generated"]["n"] == len(wrong)
    assert split["other_questions"]["generated"]["n"] == 12 - len(wrong)
    ft = predictions(run_dir)["Targeted FT (method 2)"]
    assert m["tables"]["generate"]["Targeted FT (method 2)"]["all"]["accuracy"] == pytest.approx(
        sum(it["generated_letter"] == it["reference"] for it in ft) / 12)
    summary = m["tables"]["generate"]["Targeted FT (method 2)"]["all"]["accuracy_summary"]
    assert summary["ci_method"] == "wilson" and summary["n"] == 12 and summary["ci_high"] > 0
    # fine-tuned vs vanilla on the same questions
    paired = m["paired_vs_vanilla"]["generate"]["Targeted FT (method 2)"]["all"]
    vanilla = preds["vanilla student"]
    assert paired["difference"] == pytest.approx(
        sum((t["generated_letter"] == t["reference"]) - (v["generated_letter"] == v["reference"])
            for t, v in zip(ft, vanilla)) / 12)
    assert 0 <= paired["mcnemar_p"] <= 1


def test_the_key_is_never_saved_and_every_request_is_cached(http_run):
    run_dir, m = http_run["run_dir"], http_run["m"]
    assert {r["headers"].get("Authorization") for r in http_run["requests"]} == {f"Bearer {KEY}"}
    for path in [p for p in run_dir.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".ipynb")]:
        assert KEY not in path.read_text(errors="replace"), path
    cache = list((run_dir.parent / "teacher_cache").rglob("*.json"))
    assert not any(KEY in p.read_text() for p in cache)
    counters = m["teacher"]["counters"]
    # one request to the server per distinct question asked, each one cached for a re-run
    assert len(http_run["requests"]) == len(cache) == counters["requests"] - counters["cache_hits"]
    assert counters["failures"] == counters["retries"] == 0
