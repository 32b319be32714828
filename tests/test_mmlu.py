"""MMLU teacher study: data, prompts, letter parsing, the log-likelihood scorer on a hand case, the
multistage filter with a scripted teacher over HTTP (exact counts per stage), config errors."""

import dataclasses
import hashlib
import json
import re

import pytest
import torch
from chat_server import ChatServer

from helpers.config import ConfigError
from helpers.loglik import continuation_logliks
from helpers.studies import study_config
from helpers.tasks import mmlu, mmlu_data, teacher


def test_the_fixture_has_the_cais_mmlu_schema_and_the_default_subjects():
    rows = [json.loads(line) for line in mmlu_data.FIXTURE.read_text().splitlines()]
    assert len(rows) >= 30 and all(list(r) == ["question", "subject", "choices", "answer"] for r in rows)
    assert all(len(r["choices"]) == 4 and r["answer"] in (0, 1, 2, 3) for r in rows)
    subjects = {r["subject"] for r in rows}
    assert {"machine_learning", "professional_psychology"} < subjects and len(subjects) >= 3
    assert len({r["answer"] for r in rows}) == 4  # the right letter is not always the same
    questions = mmlu_data.load_mmlu(["professional_psychology", "machine_learning"], source="local", max_questions=3)
    assert [q.subject for q in questions] == ["professional_psychology"] * 3 + ["machine_learning"] * 3
    assert questions[0].letter == "ABCD"[rows[[r["subject"] for r in rows].index("professional_psychology")]["answer"]]


def test_data_errors_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="no questions of subject 'anatomy'; it has: high_school_biology"):
        mmlu_data.load_mmlu(["anatomy"], source="local")
    bad = tmp_path / "three.jsonl"
    bad.write_text(json.dumps({"question": "q", "subject": "x", "choices": ["a", "b", "c"], "answer": 0}) + "\n")
    with pytest.raises(ConfigError, match="needs 4 choices and an answer 0-3, got 3 choices"):
        mmlu_data.load_mmlu(["x"], source=str(bad))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="dataset_source='local'") as err:
        mmlu_data.load_mmlu(["machine_learning"], source="hub")
    assert "\n" not in str(err.value)


def test_prompts_are_the_studys_and_lm_evals():
    q = mmlu_data.Question("machine_learning", "What is 1+1?", ["1", "2", "3", "4"], 1)
    assert mmlu_data.study_prompt(q) == ("You are an expert in machine learning. Answer the following multiple choice "
                                    "question.\n\nWhat is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\n\nDo not output any "
                                    "explanation, only choose the correct option.")
    assert mmlu.loglik_context(q) == ("The following are multiple choice questions (with answers) about machine "
                                      "learning.\n\nWhat is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:")


@pytest.mark.parametrize("text, letter", [
    ("B", "B"), (" (C) because", "C"), ("**D**", "D"), ("A. Oxygen\nB. Nitrogen", "A"), ("B)", "B"),
    ("The answer is C.", "C"), ("Answer: D", "D"), ("I choose option b", "B"),
    ("A decision tree grows", None), ("", None), ("Dropout", "B"), ("Nothing here", None),
])
def test_extract_letter(text, letter):
    assert mmlu_data.extract_letter(text, ["Batch norm", "Dropout", "Clipping", "Stopping"]) == letter


GOOD = "Question: Which optimizer adapts per-parameter learning rates?\nA. SGD\nB. Adam\nC. Newton\nD. None\nAnswer: B"


@pytest.mark.parametrize("reply, stage", [
    (GOOD, "ok"),
    ("Sure! " + GOOD + "\nHope this helps", "ok"),
    (GOOD.replace("Answer: B", "Answer: B. Adam"), "ok"),
    (GOOD.replace("Answer: B", "Answer: B. SGD"), "bad_answer_letter"),
    (GOOD.replace("Answer: B", "Answer: E"), "bad_answer_letter"),
    (GOOD.replace("Answer: B", "Answer: 2"), "bad_answer_letter"),
    (GOOD.replace("D. None\n", "D. None\nE. All\n"), "not_four_options"),
    (GOOD.replace("C. Newton", "C. Adam"), "not_four_options"),
    (GOOD.replace("D. None\n", ""), "not_four_options"),
    (GOOD.replace("Answer: B", ""), "unparsed"),
    ("I cannot write questions.", "unparsed"),
])
def test_parse_item_stages(reply, stage):
    got, item = teacher.parse_item(reply, "machine_learning")
    assert got == stage
    if stage == "ok":
        assert item.question == "Which optimizer adapts per-parameter learning rates?" and item.letter == "B"
        assert item.choices == ["SGD", "Adam", "Newton", "None"]


class BigramModel(torch.nn.Module):
    """logits at a position depend only on the token there: logits(t) = emb[t] @ proj."""

    def __init__(self, vocab):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Parameter(torch.randn(vocab, 8, generator=g))
        self.proj = torch.nn.Parameter(2 * torch.randn(8, vocab, generator=g))

    def logits(self, ids):
        return self.emb[ids] @ self.proj

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": self.logits(input_ids)})()


def test_continuation_logliks_on_a_hand_case(embedded_tokenizer):
    tok = embedded_tokenizer
    model = BigramModel(len(tok))
    context = "The following are questions.\n\nWhat is 1+1?\nA. 1\nB. 2\nAnswer:"
    ids = tok(context)["input_ids"]
    letters = [tok(context + f" {x}")["input_ids"][len(ids):] for x in "AB"]
    assert all(len(t) == 1 for t in letters)  # " A" is one token after "Answer:"
    by_hand = [torch.log_softmax(model.logits(torch.tensor(ids[-1])), -1)[t[0]].item() for t in letters]
    got = continuation_logliks(model, tok, [(context, " A"), (context, " B")])
    assert got == pytest.approx(by_hand, abs=1e-5)
    # lm-eval moves the context's trailing space into the continuation
    assert continuation_logliks(model, tok, [(context + " ", "A")]) == pytest.approx(by_hand[:1], abs=1e-5)
    # a multi-token continuation sums its tokens; padding in a batch changes nothing
    long = " Two, because one plus one is two."
    whole = tok(context + long)["input_ids"]
    table = torch.log_softmax(model.logits(torch.tensor(whole)), -1)
    expected = sum(table[t - 1, whole[t]].item() for t in range(len(ids), len(whole)))
    batched = continuation_logliks(model, tok, [("Short?", " Yes"), (context, long), (context, " A")], batch_size=3)
    assert batched[1] == pytest.approx(expected, abs=1e-4) and batched[2] == pytest.approx(by_hand[0], abs=1e-5)
    assert continuation_logliks(model, tok, [("Short?", " Yes")], batch_size=1) == pytest.approx(batched[:1], abs=1e-5)
    # the MMLU pick is the letter of the largest summed log-probability
    assert mmlu_data.pick_letter([-3.0, -1.5, -2.0, -9.0]) == "B" and mmlu_data.pick_letter(by_hand + [-1e9, -1e9]) == (
        "A" if by_hand[0] >= by_hand[1] else "B")


# --- the multistage filter with a scripted teacher behind a real HTTP server -------------------------

def item(question, choices, letter):
    return f"Question: {question}\n" + mmlu_data.format_options(choices) + f"\nAnswer: {letter}"


KEEP_1 = item("Which regularizer randomly zeroes activations during training?",
              ["L1", "Dropout", "Pruning", "Adam"], "B")
KEEP_2 = item("What does a confusion matrix tabulate?",
              ["Gradients", "Predictions vs labels", "Weights", "Losses"], "B")
PARAPHRASE = item("During training, which regularizer drops random units to fight overfitting?",
                  ["Momentum", "Batch size", "Dropout", "Softmax"], "C")  # same topic word: same embedding
OFF_TOPIC = item("Who won the football world cup in 2014?", ["Germany", "Brazil", "Spain", "Italy"], "A")
WRONG_KEY = item("Which loss suits binary classification?", ["Cross-entropy", "L1 pixel loss", "Hinge^2", "None"], "D")


def scripted_teacher(request):
    """Relevance: 'no' for football. Re-solving: the stated answer, except for WRONG_KEY (the key is wrong)."""
    text = request["body"]["messages"][-1]["content"]
    if "Reply with yes or no only" in text:
        return "No." if "football" in text else "Yes"
    if "binary classification" in text:
        return "A"
    for reply in (KEEP_1, KEEP_2, PARAPHRASE, OFF_TOPIC):
        _, q = teacher.parse_item(reply, "machine_learning")
        if q.question in text:
            return q.letter
    return "?"


def fake_embed(texts):
    """Deterministic vectors: texts about a regularizer share one, every other text gets its own."""
    def vector(text):
        key = "regularizer" if "regularizer" in text else text
        seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
        return torch.randn(64, generator=torch.Generator().manual_seed(seed))
    return torch.stack([vector(t) for t in texts])


def test_filter_counts_every_stage_and_a_rerun_asks_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MMLU_TEST_KEY", "sk-secret")
    references = mmlu_data.load_mmlu(["machine_learning"], source="local")
    eval_copy = item(references[0].question, references[0].choices, references[0].letter)
    replies = [None, "I am not able to.", KEEP_1.replace("D. Adam", "D. Adam\nE. Lasso"),
               KEEP_1.replace("Answer: B", "Answer: F"), KEEP_1, KEEP_1.replace("?", " ?!"), eval_copy,
               PARAPHRASE, OFF_TOPIC, WRONG_KEY, KEEP_2]
    candidates = [{"subject": "machine_learning", "reply": r} for r in replies]
    cfg = study_config("mmlu_teacher", {"teacher_api_key_env": "MMLU_TEST_KEY"})
    with ChatServer(default=scripted_teacher) as server:
        def new_teacher():  # four requests at a time: the same counts, requests and cache as one by one
            return teacher.PooledChatBackend(base_url=server.base_url, model="t", api_key_env="MMLU_TEST_KEY",
                                             cache_dir=tmp_path / "cache", backoff=0.01, concurrency=4)
        first = new_teacher()
        records, counts = teacher.filter_items(candidates, teacher=first, embed=fake_embed, references=references,
                                               cfg=cfg)
        assert counts == {"generated": 11, "no_reply": 1, "unparsed": 1, "not_four_options": 1, "bad_answer_letter": 1,
                          "duplicate_text": 2, "duplicate_embedding": 1, "off_domain": 1, "inconsistent": 1, "kept": 2}
        assert [r["stage"] for r in records][4:] == ["kept", "duplicate_text", "duplicate_text", "duplicate_embedding",
                                                     "off_domain", "inconsistent", "kept"]
        assert [q.question for q in teacher.kept_items(records)] == [
            "Which regularizer randomly zeroes activations during training?", "What does a confusion matrix tabulate?"]
        # relevance for the 4 items left after the duplicate stages, re-solving for the 3 on topic
        assert len(server.requests) == 7 and first.counters()["requests"] == 7
        again = new_teacher()
        records2, counts2 = teacher.filter_items(candidates, teacher=again, embed=fake_embed, references=references,
                                              cfg=cfg)
        assert counts2 == counts and len(server.requests) == 7 and again.cache_hits == 7
    off = dataclasses.replace(cfg, check_relevance=False, check_consistency=False)
    _, counts3 = teacher.filter_items(candidates, teacher=None, embed=fake_embed, references=references, cfg=off)
    assert counts3["kept"] == 4 and counts3["off_domain"] == counts3["inconsistent"] == 0


def test_generation_requests_rise_in_level_and_avoid_earlier_questions():
    first = teacher.generation_messages("machine_learning", 0, 10, [])
    last = teacher.generation_messages("machine_learning", 9, 10, ["What is a kernel?", "What is PCA?"])
    assert "an introductory multiple choice question about machine learning (question 1 of 10)" in first[-1]["content"]
    requests = [json.dumps(teacher.generation_messages("machine_learning", i, 10, [])) for i in range(10)]
    assert len(set(requests)) == 10  # distinct requests even when no earlier reply parsed: no cached repeats
    assert "an expert-level" in last[-1]["content"] and "- What is PCA?" in last[-1]["content"]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user", "assistant", "user"]
    q = mmlu_data.load_mmlu(["machine_learning"], source="local")[0]
    targeted = teacher.targeted_messages(q)[-1]["content"]
    assert q.question in targeted and f"Answer: {q.letter}" in targeted


@pytest.mark.parametrize("params, message", [
    ({"teacher_api_key_env": "sk-live-123"}, "NAME of the environment variable"),
    ({"teacher_backend": "anthropic"}, "must be 'openai'"),
    ({"subjects": []}, "must be MMLU subject names"),
    ({"subjects": ["machine_learning", "machine_learning"]}, "lists a subject twice"),
    ({"targeted_by": "vote"}, "targeted_by 'vote'"),
    ({"dedup_embedding_threshold": 2.0}, "cosine in"),
    ({"n_generate": -1}, "n_generate must be >= 0"),
])
def test_config_errors(params, message):
    with pytest.raises(ConfigError, match=re.escape(message) if "(" in message else message):
        study_config("mmlu_teacher", params)


# --- the students: one per method, and one per subject and method ------------------------------------

def kept(subject, text, method):
    return {"subject": subject, "stage": "kept", "method": method,
            "item": mmlu_data.Question(subject, f"{method}: {text}?", ["w", "x", "y", "z"], 1)}


def two_methods(subjects):
    records1 = [kept(s, f"general {s} {i}", "generative") for s in subjects for i in range(2)]
    records2 = [kept(s, f"targeted {s}", "targeted") for s in subjects]
    records2.append({**kept(subjects[0], "dropped", "targeted"), "stage": "duplicate_text"})
    return records1, records2


def test_targeted_students_per_subject_carry_the_studys_domain_rows(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    cfg = study_config("mmlu_teacher", {})
    records1, records2 = two_methods(cfg.subjects)
    variants = mmlu.finetune_variants(records1, records2, cfg)
    assert list(variants) == ["general", "generated_machine_learning", "generated_professional_psychology",
                              "targeted", "targeted_machine_learning", "targeted_professional_psychology"]
    assert [q.question for q in variants["targeted_machine_learning"]] == ["targeted: targeted machine_learning?"]
    assert len(variants["general"]) == 4 and len(variants["generated_professional_psychology"]) == 2
    assert len(variants["targeted"]) == 2  # the filtered-out item is nobody's
    labels = {name: mmlu.row_label(name) for name in variants}
    assert labels == {"general": "General FT", "generated_machine_learning": "machine_learning FT (generated)",
                      "generated_professional_psychology": "professional_psychology FT (generated)",
                      "targeted": "Targeted FT (method 2)", "targeted_machine_learning": "machine_learning FT",
                      "targeted_professional_psychology": "professional_psychology FT"}
    off = dataclasses.replace(cfg, domain_models=False)
    assert list(mmlu.finetune_variants(records1, records2, off)) == ["general", "targeted"]
    assert list(mmlu.finetune_variants(records1, records2, dataclasses.replace(cfg, method1=False))) == [
        "targeted", "targeted_machine_learning", "targeted_professional_psychology"]
    with pytest.raises(ValueError, match="no row for fine-tuning 'machine_learning'"):
        mmlu.row_label("machine_learning")


def test_the_published_ml_and_psychology_ft_rows_read_the_targeted_students(monkeypatch):
    from helpers.published import compare

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    cfg = study_config("mmlu_teacher", {})
    accuracy = {"teacher": 0.78, "vanilla student": 0.30, "General FT": 0.31, "machine_learning FT (generated)": 0.20,
                "professional_psychology FT (generated)": 0.21, "Targeted FT (method 2)": 0.50,
                "machine_learning FT": 0.36, "professional_psychology FT": 0.29}
    rows = {label: {"generate": {s: {"accuracy": a, "ci95": 0.05, "n": n}
                                 for s, n in (("machine_learning", 112), ("professional_psychology", 612))}}
            for label, a in accuracy.items()}
    records1, records2 = two_methods(cfg.subjects)
    assert {mmlu.row_label(n) for n in mmlu.finetune_variants(records1, records2, cfg)} <= set(accuracy)
    metrics = {"model": cfg.model, "teacher": {"model": cfg.teacher_model}, "tables": mmlu.result_tables(rows)}
    table = compare("mmlu_teacher", metrics, dataclasses.asdict(cfg))
    ml = table[(table["row"] == "LLaMA (ML FT)") & (table["table"].str.startswith("Table 2"))].iloc[0]
    assert ml["ours"] == 0.36
    assert ml["ours_from"] == "tables.generate['machine_learning FT']['machine_learning'].accuracy"
    psych = table[(table["row"] == "LLaMA (Psychology FT)") & (table["table"].str.startswith("Table 3"))].iloc[0]
    assert psych["ours"] == 0.29 and psych["comparable"]


def test_a_student_whose_data_an_earlier_one_had_is_not_trained_twice(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    cfg = study_config("mmlu_teacher", {"subjects": ["machine_learning"]})
    records1, records2 = two_methods(cfg.subjects)
    trained = []

    def fake_fine_tune(cfg, name, items, questions, run_dir):
        trained.append(name)
        return {"name": name, "n_items": len(items), "generate": {"all": {"accuracy": len(trained) / 10}}}

    monkeypatch.setattr(mmlu, "fine_tune_and_evaluate", fake_fine_tune)
    variants = mmlu.finetune_variants(records1, records2, cfg)
    finetuned = mmlu.fine_tune_all(cfg, variants, [], tmp_path)
    # one subject: its students have the data of the combined ones
    assert trained == ["general", "targeted"] and list(finetuned) == list(variants)
    assert finetuned["generated_machine_learning"]["same_data_as"] == "general"
    assert finetuned["targeted_machine_learning"]["generate"] == finetuned["targeted"]["generate"]
    assert finetuned["targeted_machine_learning"]["name"] == "targeted_machine_learning"
    assert "same_data_as" not in finetuned["targeted"]


# --- one MMLU loader and prompt for mmlu_teacher and forgetting; accuracies with Wilson intervals ----

def test_forgetting_and_mmlu_teacher_build_the_same_prompt_by_the_one_function(monkeypatch):
    from helpers.tasks import forgetting

    row = {"question": "  Which sort is stable?\n", "subject": "college_computer_science",
           "choices": ["Quicksort", " Merge sort", "Heapsort ", "Shell sort"], "answer": 1}
    q = mmlu_data.question_from_row(row)
    text, letters, gold = forgetting.mmlu_item(row)
    # lm-eval's template: the question stripped, the choices as the data has them
    assert text == mmlu.loglik_context(q) == (
        "The following are multiple choice questions (with answers) about college computer science.\n\n"
        "Which sort is stable?\nA. Quicksort\nB.  Merge sort\nC. Heapsort \nD. Shell sort\nAnswer:")
    assert letters == ["A", "B", "C", "D"] and gold == 1
    monkeypatch.setattr(mmlu_data, "mmlu_prompt", lambda q: f"ONE PROMPT: {q.question}")
    assert forgetting.mmlu_item(row)[0] == mmlu.loglik_context(q) == "ONE PROMPT: Which sort is stable?"


def test_forgetting_loads_its_mmlu_items_with_the_shared_loader(monkeypatch):
    from helpers.tasks import forgetting

    calls = []
    real = mmlu_data.load_mmlu
    monkeypatch.setattr(mmlu_data, "load_mmlu", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    data = forgetting.load_eval_data(study_config("forgetting", {"data_source": "local", "n_mmlu": 2,
                                                                 "n_hellaswag": 1, "n_gsm8k": 1, "gsm8k_shots": 0}))
    assert calls and calls[0]["local_file"] == forgetting.MMLU_LOCAL and calls[0]["param"] == "data_source"
    rows = [json.loads(line) for line in (mmlu_data.DATA_DIR / forgetting.MMLU_LOCAL).read_text().splitlines()]
    rows = [r for r in rows if r["subject"] == "high_school_computer_science"][:2]
    assert data["mmlu"] == [forgetting.mmlu_item(r) for r in rows] and len(data["mmlu"]) == 2


def test_accuracy_has_a_wilson_summary_that_is_never_zero_width():
    wrong = mmlu.accuracy([False] * 12)
    summary = wrong["accuracy_summary"]
    assert wrong["accuracy"] == 0.0 and wrong["n"] == 12 and "ci95" not in wrong
    assert summary["ci_method"] == "wilson" and summary["ci_low"] == pytest.approx(0.0, abs=1e-12)
    assert summary["ci_high"] > 0.2  # Wilson at 0/12: z² / (n + z²), not the 0 ± 0 of a normal interval
    assert set(summary) == {"mean", "n", "stderr", "ci_low", "ci_high", "ci_method"}
    from helpers.stats import proportion_interval

    half = mmlu.accuracy([True, False] * 5)["accuracy_summary"]
    assert (half["ci_low"], half["ci_high"]) == pytest.approx(proportion_interval(5, 10))
    frame = mmlu.table_frame({"vanilla student": {"all": wrong}})
    assert frame.loc["vanilla student", "all"] == f"0.0 [0.0, {100 * summary['ci_high']:.1f}]"


def test_fine_tuned_students_are_compared_with_the_vanilla_one_question_by_question():
    def answers(letters, references="BBBBAA", subjects=("machine_learning",) * 4 + ("virology",) * 2):
        return {"items": [{"id": f"q{i}", "subject": s, "reference": r, "generated_letter": g, "loglik_letter": g}
                          for i, (g, r, s) in enumerate(zip(letters, references, subjects))]}

    rows = {"teacher": answers("BBBBAA"), "vanilla student": answers("BCCCAC"),
            "General FT": answers("BBBCAC"), "machine_learning FT": {"n_items": 0, "skipped": "no data"}}
    paired = mmlu.paired_vs_vanilla(rows, ["machine_learning", "virology"], seed=0)
    assert list(paired["generate"]) == ["General FT"]  # not the teacher, not a student without answers
    ml = paired["generate"]["General FT"]["machine_learning"]
    # vanilla right on q0, General FT on q0-q2: +2 of 4, both discordant pairs the fine-tuned one's
    assert ml["difference"] == pytest.approx(0.5) and ml["finetuned_only"] == 2 and ml["vanilla_only"] == 0
    assert ml["mcnemar_p"] == pytest.approx(0.5)  # exact binomial: 2 of 2 discordant, two-sided
    assert ml["n"] == 4 and ml["ci_low"] <= 0.5 <= ml["ci_high"]
    assert paired["generate"]["General FT"]["virology"]["difference"] == 0.0
    assert paired["generate"]["General FT"]["all"]["n"] == 6
    rows["General FT"] = answers("BBBCA")  # other questions: no comparison
    with pytest.raises(ValueError, match="answered other questions"):
        mmlu.paired_vs_vanilla(rows, ["machine_learning"])
