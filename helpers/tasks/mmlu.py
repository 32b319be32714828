"""MMLU knowledge transfer from a teacher (the "generalist to specialist" study, MMLU part).

Evaluation: 4-option multiple choice on MMLU subjects (hub `cais/mmlu`, the project-written
fixture `benchmark_data/data/mmlu_fixture.jsonl`, or a file of the same schema: question, subject,
choices[4], answer 0-3). Two scorings: the letter the model generates for the study's prompt, and
the log-likelihood of " A"/" B"/" C"/" D" after lm-evaluation-harness's MMLU prompt.

Method 1 (generative): the teacher writes questions per subject, each a bit harder than the last
and different from the earlier ones; a multistage filter keeps well-formed, new, on-topic items the
teacher solves again with the same answer. Method 2 (targeted): for each evaluation question the
teacher gets right and the student wrong, the teacher writes a new question on the same knowledge.
A student is fine-tuned on each method's data of all subjects and, as the study's "ML FT" and
"Psychology FT" rows are, on its data of each subject alone (`finetune_variants`, `row_label`).

    >>> questions = load_mmlu(["machine_learning"], source="local")
    >>> study_prompt(questions[0])                 # what the student and the teacher answer
    >>> extract_letter("(B) because ...")
    'B'
    >>> items, counts = filter_items(candidates, teacher=teacher, embed=embed, references=questions, cfg=cfg)
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from helpers.config import ConfigError, StudyConfig, check_secret_env_params, output_path
from helpers.data import DATA_DIR, HubData, load_records
from helpers.metrics import mean_ci

VERSION = "mmlu-teacher-v1"
LETTERS = "ABCD"
HUB_ID = "cais/mmlu"
FIXTURE = DATA_DIR / "mmlu_fixture.jsonl"
LEAKAGE_CAVEAT = (
    "Method 2 shows the teacher the evaluation questions (and their answers) to write its new questions, "
    "so the targeted students are trained on knowledge taken from the test set: their accuracy on these subsets "
    "is optimistic and not comparable to the other rows. Near-copies of evaluation questions are dropped by "
    "the duplicate filter, but paraphrases of the same fact are the point of the method and remain."
)


@dataclasses.dataclass
class MmluConfig(StudyConfig):
    """mmlu_teacher: evaluate, generate + filter (method 1), targeted (method 2), fine-tune, compare.
    The LoRA and schedule defaults are the study's Table 1 (seed settings lora_rank, lora_dropout,
    epochs: "more epochs degraded performance"); its alpha is not stated, ours equals the rank."""

    model: str = "llama-2-7b"  # the study's student (LLaMA 2 7B); the CPU presets name the embedded model
    subjects: list = dataclasses.field(default_factory=lambda: ["machine_learning", "professional_psychology"])
    dataset_source: str = "hub"
    split: str = "test"
    max_questions: int = 0
    teacher_backend: str = "openai"
    teacher_model: str = "gpt-4o"
    teacher_base_url: str = "https://api.openai.com/v1"
    teacher_api_key_env: str = "OPENAI_API_KEY"
    teacher_cache_dir: str = ""
    teacher_timeout: float = 120.0
    teacher_max_retries: int = 6
    teacher_max_tokens: int = 400
    generation_temperature: float = 0.7
    n_generate: int = 100
    dedup_text_threshold: float = 90.0
    dedup_embedding_threshold: float = 0.95
    check_relevance: bool = True
    check_consistency: bool = True
    method1: bool = True
    domain_models: bool = True
    method2: bool = True
    targeted_by: str = "generate"
    epochs: float = 1.0
    lora_r: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    batch_size: int = 8
    max_seq_length: int = 512
    eval_batch_size: int = 16
    max_new_tokens: int = 16

    def validate(self) -> None:
        super().validate()
        if not self.subjects or not all(isinstance(s, str) and re.fullmatch(r"[a-z_]+", s) for s in self.subjects):
            raise ConfigError(f"subjects {self.subjects} must be MMLU subject names like 'machine_learning'")
        if len(set(self.subjects)) != len(self.subjects):
            raise ConfigError(f"subjects {self.subjects} lists a subject twice")
        if self.teacher_backend not in ("openai", "local"):
            raise ConfigError(f"teacher_backend '{self.teacher_backend}' must be 'openai' (any OpenAI-compatible "
                              "endpoint) or 'local' (a registry model)")
        if self.max_questions < 0 or self.n_generate < 0:
            raise ConfigError("max_questions and n_generate must be >= 0 (max_questions 0 = all)")
        if not 0 < self.dedup_text_threshold <= 100:
            raise ConfigError(f"dedup_text_threshold is a rapidfuzz ratio in (0, 100], got {self.dedup_text_threshold}")
        if not -1 < self.dedup_embedding_threshold <= 1:
            raise ConfigError(f"dedup_embedding_threshold is a cosine in (-1, 1], got {self.dedup_embedding_threshold}")
        if self.teacher_max_tokens < 1 or self.teacher_timeout <= 0 or self.teacher_max_retries < 0:
            raise ConfigError("teacher_max_tokens >= 1, teacher_timeout > 0 and teacher_max_retries >= 0 please")
        if self.targeted_by not in ("generate", "loglik"):
            raise ConfigError(f"targeted_by '{self.targeted_by}' must be 'generate' or 'loglik' (how the student's "
                              "wrong answers are found)")
        if self.generation_temperature < 0:
            raise ConfigError(f"generation_temperature must be >= 0, got {self.generation_temperature}")
        # last, so a wrong setting elsewhere is reported first; before papermill writes any parameter
        check_secret_env_params(self, in_use={"teacher_api_key_env": self.teacher_backend == "openai"})


@dataclasses.dataclass
class Question:
    subject: str
    question: str
    choices: list
    answer: int  # 0-3, as in cais/mmlu
    id: str = ""

    @property
    def letter(self) -> str:
        return LETTERS[self.answer]


def subject_name(subject: str) -> str:
    return subject.replace("_", " ")


# ---------------------------------------------------------------------------------------------- data

def _rows_to_questions(rows, subject_default: str, prefix: str) -> list[Question]:
    out = []
    for i, row in enumerate(rows):
        missing = [k for k in ("question", "choices", "answer") if k not in row]
        if missing:
            raise ConfigError(f"MMLU data lacks {', '.join(missing)} (row {i + 1}); the schema of cais/mmlu is "
                              "question, subject, choices (4 texts), answer (0-3)")
        if len(row["choices"]) != 4 or not isinstance(row["answer"], int) or not 0 <= row["answer"] <= 3:
            raise ConfigError(f"MMLU row {i + 1} ({prefix}) needs 4 choices and an answer 0-3, got "
                              f"{len(row['choices'])} choices and answer {row['answer']!r}")
        out.append(Question(row.get("subject") or subject_default, row["question"].strip(),
                            [str(c).strip() for c in row["choices"]], row["answer"], f"{prefix}-{i:04d}"))
    return out


def load_mmlu(subjects: list[str], *, source: str = "hub", split: str = "test",
              max_questions: int = 0) -> list[Question]:
    """The evaluation questions of `subjects`, the first `max_questions` of each (0: all).

    source: "hub" (cais/mmlu, one config per subject; needs internet), "local" (the project-written
    fixture) or a path to a .jsonl/.json/.csv/.parquet file with the cais/mmlu columns
    (helpers.data.load_records reads all three)."""
    columns = ("question", "choices", "answer")
    if source == "hub":
        questions = []
        for subject in subjects:
            rows = load_records(HubData(HUB_ID, FIXTURE.name, columns, config=subject, split=split),
                                source="hub", n=max_questions)
            questions += _rows_to_questions(rows, subject, subject)
        return questions
    rows = load_records(HubData(HUB_ID, FIXTURE.name, columns), source=source, n=0)
    name = FIXTURE.name if source == "local" else Path(source).name
    everything = _rows_to_questions(rows, "", Path(name).stem)
    found = sorted({q.subject for q in everything})
    questions = []
    for subject in subjects:
        mine = [q for q in everything if q.subject == subject]
        if not mine:
            raise ConfigError(f"{name} has no questions of subject '{subject}'; it has: {', '.join(found)}")
        questions += mine[: max_questions or None]
    return questions


# ------------------------------------------------------------------------------------ prompts, scores

def format_options(choices) -> str:
    return "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices))


def study_prompt(q: Question) -> str:
    """The study's zero-shot prompt (a user turn): the model should answer with a letter."""
    return (f"You are an expert in {subject_name(q.subject)}. Answer the following multiple choice question.\n\n"
            f"{q.question}\n{format_options(q.choices)}\n\n"
            "Do not output any explanation, only choose the correct option.")


def loglik_context(q: Question) -> str:
    """lm-evaluation-harness's MMLU prompt (tasks/mmlu/default: description + doc_to_text, zero-shot);
    the continuations are ' A', ' B', ' C', ' D' (target_delimiter ' ')."""
    return (f"The following are multiple choice questions (with answers) about {subject_name(q.subject)}.\n\n"
            f"{q.question.strip()}\n{format_options(q.choices)}\nAnswer:")


# A letter on its own: "B", "(B)", "B.", "**B**", "B) text"; not the article in "A decision tree ...".
_LEADING_LETTER = re.compile(r"^[\s*(\[]*([ABCD])(?:$|[).:,\]*]|\s*\n)")
_CUED_LETTER = re.compile(r"(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*\(?([ABCD])\b", re.IGNORECASE)


def extract_letter(text: str, choices=None) -> str | None:
    """The option letter a generated answer chooses, or None: a letter standing alone at the start,
    else the letter after "answer is" / "option" / "Answer:", else the option whose text the answer
    starts with."""
    text = (text or "").strip()
    match = _LEADING_LETTER.match(text) or _CUED_LETTER.search(text)
    if match:
        return match.group(1).upper()
    if choices:
        low = normalise(text)
        for letter, choice in zip(LETTERS, choices):
            if normalise(choice) and low.startswith(normalise(choice)):
                return letter
    return None


def pick_letter(letter_logprobs: list[float]) -> str:
    """lm-eval's multiple-choice rule: the choice with the largest summed log-probability (acc)."""
    return LETTERS[max(range(len(letter_logprobs)), key=lambda j: letter_logprobs[j])]


def accuracy(correct: list[bool]) -> dict:
    acc, ci = mean_ci([float(c) for c in correct])
    return {"accuracy": acc, "ci95": ci, "n": len(correct)}


def by_subject(questions: list[Question], correct: list[bool], subjects: list[str]) -> dict:
    """{subject: accuracy dict, ..., "all": over every question}."""
    table = {s: accuracy([c for q, c in zip(questions, correct) if q.subject == s]) for s in subjects}
    table["all"] = accuracy(correct)
    return table


def evaluate_student(model, tokenizer, info, questions: list[Question], cfg, *, desc: str) -> dict:
    """Both scorings of a loaded model. Returns {"generate": table, "loglik": table, "items": [...]}."""
    from helpers.generation import generate
    from helpers.loglik import continuation_logliks

    answers = generate(model, tokenizer, [study_prompt(q) for q in questions], chat=True,
                       stop_token_ids=info.stop_token_ids, max_new_tokens=cfg.max_new_tokens,
                       batch_size=cfg.eval_batch_size, desc=f"{desc}: generate")
    letters = [extract_letter(a, q.choices) for a, q in zip(answers, questions)]
    requests = [(loglik_context(q), f" {letter}") for q in questions for letter in LETTERS]
    scores = continuation_logliks(model, tokenizer, requests, batch_size=cfg.eval_batch_size,
                                  desc=f"{desc}: log-likelihood")
    picks = [pick_letter(scores[4 * i:4 * i + 4]) for i in range(len(questions))]
    items = [{"id": q.id, "subject": q.subject, "reference": q.letter, "generated": a, "generated_letter": g,
              "loglik": scores[4 * i:4 * i + 4], "loglik_letter": p}
             for i, (q, a, g, p) in enumerate(zip(questions, answers, letters, picks))]
    return {"generate": by_subject(questions, [g == q.letter for g, q in zip(letters, questions)], cfg.subjects),
            "loglik": by_subject(questions, [p == q.letter for p, q in zip(picks, questions)], cfg.subjects),
            "unparsed": sum(g is None for g in letters), "items": items}


def evaluate_teacher(teacher, questions: list[Question], cfg) -> dict:
    """The teacher answers the study prompt (by generated letter only: chat endpoints give no
    log-likelihoods). A request that fails counts as a wrong answer and is counted; a refused key or
    an endpoint that fails more than half the requests raises BackendError instead (helpers.backends),
    so a dead teacher is never reported as one at 0%."""
    replies = teacher.chat_many([[{"role": "user", "content": study_prompt(q)}] for q in questions],
                                max_tokens=cfg.max_new_tokens, temperature=0.0)
    letters = [extract_letter(r, q.choices) if r is not None else None for r, q in zip(replies, questions)]
    items = [{"id": q.id, "subject": q.subject, "reference": q.letter, "generated": r, "generated_letter": g}
             for q, r, g in zip(questions, replies, letters)]
    return {"generate": by_subject(questions, [g == q.letter for g, q in zip(letters, questions)], cfg.subjects),
            "loglik": None, "unparsed": sum(g is None and r is not None for g, r in zip(letters, replies)),
            "no_reply": sum(r is None for r in replies), "items": items}


# ------------------------------------------------------------------------ teacher-written questions

# Worked examples of the reply format, shown to the teacher as earlier turns (few-shot). They are of
# other subjects than any default, and the duplicate filter treats them as seen: copies are dropped.
FORMAT_EXAMPLES = [
    ("high school biology", "an introductory", Question(
        "high_school_biology", "Which gas do plants take in from the air for photosynthesis?",
        ["Oxygen", "Carbon dioxide", "Nitrogen", "Helium"], 1, "example-1")),
    ("world history", "an introductory", Question(
        "world_history", "Which ancient civilization built the pyramids of Giza?",
        ["The Romans", "The Vikings", "The Aztecs", "The Egyptians"], 3, "example-2")),
]
TARGETED_EXAMPLE = Question(
    "high_school_biology", "What do plants absorb from the air to make sugar by photosynthesis?",
    ["Carbon dioxide", "Argon", "Hydrogen", "Ozone"], 0, "example-3")
LEVELS = ["an introductory", "an intermediate", "a harder", "an advanced", "an expert-level"]


def format_item(q: Question) -> str:
    """The reply format the teacher is asked for (and the parser reads)."""
    return f"Question: {q.question}\n{format_options(q.choices)}\nAnswer: {q.letter}"


def _ask_for_question(subject: str, level: str, avoid=(), number: str = "") -> str:
    text = (f"Write {level} multiple choice question about {subject}{number}, with four options A-D, exactly one of "
            "them correct, and the correct letter.")
    if avoid:
        text += " Ask about something else than these earlier questions:\n" + "\n".join(f"- {a}" for a in avoid)
    return text


def generation_messages(subject: str, index: int, n: int, earlier: list[str], *, avoid_last: int = 5) -> list:
    """The request for question `index` of `n` about `subject`: the complexity level rises with the
    index, the latest earlier questions are named so the next one is about something else."""
    level = LEVELS[min(len(LEVELS) - 1, index * len(LEVELS) // max(1, n))]
    messages = [{"role": "system", "content": f"You are an expert in {subject_name(subject)} who writes exam "
                 "questions. Reply with the question in the format of your earlier replies and nothing else."}]
    for example_subject, example_level, example in FORMAT_EXAMPLES:
        messages += [{"role": "user", "content": _ask_for_question(example_subject, example_level)},
                     {"role": "assistant", "content": format_item(example)}]
    # "(question i of n)" makes every request distinct: otherwise a round whose earlier replies did
    # not parse would repeat the previous request, and the cache would repeat its reply
    messages.append({"role": "user", "content": _ask_for_question(subject_name(subject), level,
                                                                   earlier[-avoid_last:] if avoid_last else (),
                                                                   f" (question {index + 1} of {n})")})
    return messages


def targeted_messages(q: Question) -> list:
    """Method 2: the teacher sees an evaluation question with its answer and writes a new one."""
    def ask(source: Question) -> str:
        return (f"Here is a multiple choice question about {subject_name(source.subject)} with its correct answer:"
                f"\n\n{format_item(source)}\n\nWrite ONE new multiple choice question that tests the same knowledge "
                "in different words, with new options A-D, exactly one correct, in the same format.")
    return [{"role": "system", "content": f"You are an expert in {subject_name(q.subject)} who writes exam questions."},
            {"role": "user", "content": ask(FORMAT_EXAMPLES[0][2])},
            {"role": "assistant", "content": format_item(TARGETED_EXAMPLE)},
            {"role": "user", "content": ask(q)}]


_QUESTION = re.compile(r"(?:^|[\s*])Question(?:\*\*)?\s*:\s*(.+)$", re.IGNORECASE)  # may follow "Sure! "
_OPTION = re.compile(r"^\s*\(?([A-Z])\s*[).:]\s*(.*)$")
_ANSWER = re.compile(r"^\s*(?:\*\*)?(?:Correct\s+)?Answer(?:\*\*)?\s*[:.]\s*(.*)$", re.IGNORECASE)


def parse_item(reply: str, subject: str) -> tuple[str, Question | None]:
    """(stage, item): "ok" and the item, or the first format check it fails:
    "unparsed" (no question, options and answer line), "not_four_options" (other than exactly A-D,
    or an empty or repeated option), "bad_answer_letter" (not one of A-D)."""
    question, options, answer = None, [], None
    for line in (reply or "").splitlines():
        if answer is not None:
            break
        if question is None:
            match = _QUESTION.search(line)
            if match:
                question = match.group(1).strip()
            continue
        option, cue = _OPTION.match(line), _ANSWER.match(line)
        if cue:
            answer = cue.group(1).strip()
        elif option:
            options.append((option.group(1), option.group(2).strip()))
        elif line.strip() and not options:
            question += " " + line.strip()  # a question over several lines
    if not question or len(options) < 2 or answer is None:
        return "unparsed", None
    texts = [normalise(text) for _, text in options]
    if [letter for letter, _ in options] != list(LETTERS) or not all(texts) or len(set(texts)) != 4:
        return "not_four_options", None
    # "C", "(C)", "C. <the text of option C>"; not "E", "C or D", "1"
    match = re.fullmatch(r"\(?([A-Z])\)?(?:[.):]?\s*(.*))?", answer.strip().rstrip("."))
    if not match or match.group(1) not in LETTERS:
        return "bad_answer_letter", None
    rest = normalise(match.group(2) or "")
    if rest and rest != texts[LETTERS.index(match.group(1))]:
        return "bad_answer_letter", None
    return "ok", Question(subject, question, [text for _, text in options], LETTERS.index(match.group(1)))


def normalise(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: the text compared for duplicates."""
    return " ".join(re.sub(r"[^\w\s]", " ", (text or "").lower()).split())


def item_text(q: Question) -> str:
    return normalise(q.question + " " + " ".join(q.choices))


STAGES = ["no_reply", "unparsed", "not_four_options", "bad_answer_letter", "duplicate_text",
          "duplicate_embedding", "off_domain", "inconsistent"]


def relevance_messages(q: Question) -> list:
    """The teacher judges whether an item is about its subject; two worked turns show the reply format."""
    def ask(item: Question, subject: str) -> dict:
        return {"role": "user", "content": f"Is the following multiple choice question about {subject}? "
                f"Reply with yes or no only.\n\n{format_item(item)}"}
    biology, history = FORMAT_EXAMPLES[0][2], FORMAT_EXAMPLES[1][2]
    return [ask(biology, "high school biology"), {"role": "assistant", "content": "yes"},
            ask(history, "high school biology"), {"role": "assistant", "content": "no"},
            ask(q, subject_name(q.subject))]


def filter_items(candidates: list[dict], *, teacher, embed, references: list[Question], cfg) -> tuple[list, dict]:
    """The multistage quality filter. `candidates`: {"subject", "reply", ...} as the teacher wrote them
    (reply None: the request failed). Stages in order, each counted: format (parse, exactly four
    options, one valid letter), near-duplicates by normalised text (rapidfuzz ratio) and by embedding
    cosine against everything kept so far, the format examples and the evaluation questions
    (`references`), domain relevance (the teacher judges), consistency (the teacher answers the
    item again and must pick its stated letter). Returns (records, counts): every candidate with
    the stage that removed it, or "kept" and its item."""
    import torch
    from rapidfuzz import fuzz, process

    records = []
    for c in candidates:
        stage, item = ("no_reply", None) if c["reply"] is None else parse_item(c["reply"], c["subject"])
        records.append({**c, "stage": stage, "item": item})

    seen_texts = [item_text(q) for q in references] + [item_text(e) for _, _, e in FORMAT_EXAMPLES]
    for r in records:
        if r["stage"] != "ok":
            continue
        text = item_text(r["item"])
        if process.extractOne(text, seen_texts, scorer=fuzz.ratio, score_cutoff=cfg.dedup_text_threshold):
            r["stage"] = "duplicate_text"
        else:
            seen_texts.append(text)

    alive = [r for r in records if r["stage"] == "ok"]
    if alive:
        ref_vectors = embed([item_text(q) for q in references] + [item_text(e) for _, _, e in FORMAT_EXAMPLES])
        vectors = embed([item_text(r["item"]) for r in alive])
        # Centre on the references' mean: a causal LM's mean-pooled states all point one way (anisotropy).
        centre = ref_vectors.mean(0, keepdim=True)
        ref_vectors = torch.nn.functional.normalize(ref_vectors - centre, dim=1)
        vectors = torch.nn.functional.normalize(vectors - centre, dim=1)
        kept_vectors = ref_vectors
        for r, v in zip(alive, vectors):
            similarity = float((kept_vectors @ v).max()) if len(kept_vectors) else -1.0
            r["max_cosine"] = round(similarity, 4)
            if similarity >= cfg.dedup_embedding_threshold:
                r["stage"] = "duplicate_embedding"
            else:
                kept_vectors = torch.cat([kept_vectors, v[None]])

    alive = [r for r in records if r["stage"] == "ok"]
    if cfg.check_relevance and alive:
        replies = teacher.chat_many([relevance_messages(r["item"]) for r in alive], max_tokens=4, temperature=0.0)
        for r, reply in zip(alive, replies):
            r["relevance_reply"] = reply
            if not normalise(reply or "").startswith("yes"):  # "no", unreadable or no reply: not confirmed
                r["stage"] = "off_domain"

    alive = [r for r in records if r["stage"] == "ok"]
    if cfg.check_consistency and alive:
        replies = teacher.chat_many([[{"role": "user", "content": study_prompt(r["item"])}] for r in alive],
                                    max_tokens=cfg.max_new_tokens, temperature=0.0)
        for r, reply in zip(alive, replies):
            r["resolve_reply"] = reply
            if extract_letter(reply or "", r["item"].choices) != r["item"].letter:
                r["stage"] = "inconsistent"

    for r in records:
        if r["stage"] == "ok":
            r["stage"] = "kept"
    counts = {"generated": len(records), **{s: sum(r["stage"] == s for r in records) for s in STAGES},
              "kept": sum(r["stage"] == "kept" for r in records)}
    return records, counts


def generate_candidates(teacher, cfg) -> list[dict]:
    """Method 1: `n_generate` teacher replies per subject, in rounds (one request per subject and
    round, so a local teacher answers a batch); each request names the latest earlier questions."""
    earlier = {s: [] for s in cfg.subjects}
    candidates = []
    for index in range(cfg.n_generate):
        requests = [generation_messages(s, index, cfg.n_generate, earlier[s]) for s in cfg.subjects]
        replies = teacher.chat_many(requests, max_tokens=cfg.teacher_max_tokens,
                                    temperature=cfg.generation_temperature)
        for subject, reply in zip(cfg.subjects, replies):
            stage, item = parse_item(reply, subject) if reply is not None else ("no_reply", None)
            if item is not None:
                earlier[subject].append(item.question[:150])
            candidates.append({"method": "generative", "subject": subject, "index": index, "reply": reply})
    return candidates


def targeted_candidates(teacher, questions: list[Question], teacher_eval: dict, student_eval: dict,
                        cfg) -> tuple[list[dict], list[str]]:
    """Method 2: one new question for each evaluation question the teacher answered right and the
    student wrong (by the student's scoring `cfg.targeted_by`: its generated letter, or the letter
    log-likelihood). Returns (candidates, ids of the source questions)."""
    key = "generated_letter" if cfg.targeted_by == "generate" else "loglik_letter"
    targets = [q for q, t, s in zip(questions, teacher_eval["items"], student_eval["items"])
               if t["generated_letter"] == q.letter and s[key] != q.letter]
    replies = teacher.chat_many([targeted_messages(q) for q in targets], max_tokens=cfg.teacher_max_tokens,
                                temperature=cfg.generation_temperature)
    candidates = [{"method": "targeted", "subject": q.subject, "source_id": q.id, "reply": r}
                  for q, r in zip(targets, replies)]
    return candidates, [q.id for q in targets]


def kept_items(records: list[dict], subject: str | None = None) -> list[Question]:
    return [r["item"] for r in records if r["stage"] == "kept" and (subject is None or r["subject"] == subject)]


def training_pairs(items: list[Question]) -> list[tuple[str, str]]:
    """(prompt, answer) for answer-only SFT: the study prompt, answered by the letter."""
    return [(study_prompt(q), q.letter) for q in items]


def stage_counts_by_subject(records: list[dict], subjects: list[str]) -> dict:
    out = {}
    for subject in subjects:
        mine = [r for r in records if r["subject"] == subject]
        out[subject] = {"generated": len(mine), **{s: sum(r["stage"] == s for r in mine) for s in STAGES},
                        "kept": sum(r["stage"] == "kept" for r in mine)}
    return out


def write_records(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in records:
            row = {k: v for k, v in r.items() if k != "item"}
            if r.get("item") is not None:
                row["item"] = dataclasses.asdict(r["item"])
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


# ---------------------------------------------------------------------------------- fine-tuning, rows

def fine_tune_and_evaluate(cfg, name: str, items: list[Question], questions: list[Question], run_dir: Path) -> dict:
    """A fresh QLoRA student trained on `items` (answer-only loss on the letter), then evaluated.
    Resumable: a finished variant's adapter is reused (train_sft)."""
    import gc

    from helpers.modeling import add_lora, load_model
    from helpers.sft import build_sft_dataset, train_sft

    if not items:
        return {"name": name, "n_items": 0, "skipped": "no training items survived the filter"}
    model, tokenizer, info = load_model(cfg.model, max_seq_length=cfg.max_seq_length, load_in_4bit=cfg.load_in_4bit)
    model = add_lora(model, info, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                     targets=cfg.lora_targets, seed=cfg.seed, gradient_checkpointing=cfg.gradient_checkpointing)
    dataset = build_sft_dataset(tokenizer, training_pairs(items), chat=True, max_length=cfg.max_seq_length)
    train = train_sft(model, tokenizer, dataset, run_dir=Path(run_dir) / "ft" / name, settings=cfg,
                      backend=info.backend, resume=cfg.resume)
    result = evaluate_student(model, tokenizer, info, questions, cfg, desc=name)
    del model
    gc.collect()
    return {"name": name, "n_items": len(items), "train": train, **result}


def finetune_variants(records1: list[dict], records2: list[dict], cfg) -> dict[str, list[Question]]:
    """The students to fine-tune, by name: "general" (method 1, every subject), "targeted" (method 2,
    every subject) and, with `domain_models`, one per subject and method: "generated_<subject>" and
    "targeted_<subject>". The study's "ML FT" and "Psychology FT" are targeted students of one subject
    (its Table 2 notes), hence the targeted ones carry those rows (`row_label`)."""
    out = {}
    if cfg.method1:
        out["general"] = kept_items(records1)
        if cfg.domain_models:
            out |= {f"generated_{s}": kept_items(records1, s) for s in cfg.subjects}
    if cfg.method2:
        out["targeted"] = kept_items(records2)
        if cfg.domain_models:
            out |= {f"targeted_{s}": kept_items(records2, s) for s in cfg.subjects}
    return out


def row_label(name: str) -> str:
    """A student's row in the results tables. "<subject> FT" is the study's row of that name ("ML FT",
    "Psychology FT": targeted data of that subject), which helpers/published.py compares with."""
    if name == "general":
        return "General FT"
    if name == "targeted":
        return "Targeted FT (method 2)"
    if name.startswith("targeted_"):
        return f"{name.removeprefix('targeted_')} FT"
    if name.startswith("generated_"):
        return f"{name.removeprefix('generated_')} FT (generated)"
    raise ValueError(f"no row for fine-tuning '{name}': see finetune_variants")


def fine_tune_all(cfg, variants: dict[str, list[Question]], questions: list[Question], run_dir: Path,
                  timer=None) -> dict:
    """fine_tune_and_evaluate for each variant, in order; a variant whose data are those of an earlier one
    (one subject: its students are the combined ones) reuses that student's result, marked `same_data_as`."""
    import contextlib

    finetuned, trained_on = {}, {}
    for name, items in variants.items():
        key = tuple((item_text(q), q.answer) for q in items)
        if items and key in trained_on:
            finetuned[name] = {**finetuned[trained_on[key]], "name": name, "same_data_as": trained_on[key]}
            continue
        with timer(f"finetune_{name}") if timer else contextlib.nullcontext():
            finetuned[name] = fine_tune_and_evaluate(cfg, name, items, questions, run_dir)
        trained_on.setdefault(key, name)
    return finetuned


def result_tables(rows: dict[str, dict]) -> dict:
    """{"generate": {row: {column: accuracy dict}}, "loglik": ...}; every row is in both tables, a
    row without that scoring (the teacher's log-likelihood, a fine-tuning without data) has None cells."""
    columns = next(r["generate"] for r in rows.values() if r.get("generate"))
    return {method: {label: r.get(method) or dict.fromkeys(columns) for label, r in rows.items()}
            for method in ("generate", "loglik")}


def table_frame(table: dict):
    """A results table as a DataFrame: rows x subsets, 'accuracy % ± 95% CI'."""
    import pandas as pd

    def cell(v):
        if not v or v["accuracy"] != v["accuracy"]:
            return "-"
        ci = v["ci95"]
        return f"{100 * v['accuracy']:.1f} ± {100 * ci:.1f}" if ci == ci else f"{100 * v['accuracy']:.1f}"
    return pd.DataFrame({row: {col: cell(v) for col, v in cols.items()} for row, cols in table.items()}).T


def report(metrics: dict) -> str:
    lines = [f"MMLU, student {metrics['model']}, teacher {metrics['teacher']['model']} "
             f"({metrics['teacher']['backend']}); {metrics['n_questions']} questions"]
    for method, title in (("generate", "accuracy by generated letter (%, ± 95% CI)"),
                          ("loglik", "accuracy by letter log-likelihood (%, ± 95% CI)")):
        lines += ["", title, table_frame(metrics["tables"][method]).to_string()]
    for name, counts in metrics.get("filter", {}).items():
        lines.append(f"filter {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v or k == "kept"))
    lines.append(f"teacher requests: {metrics['teacher']['counters']}")
    if metrics.get("method2"):
        lines.append("leakage: " + LEAKAGE_CAVEAT)
    return "\n".join(lines)


def make_teacher(cfg, *, loaded=None):
    """The teacher backend of `cfg`; its replies are cached under teacher_cache_dir (default:
    <output_root>/mmlu_teacher/teacher_cache, shared by every run, so no request is paid twice).
    A local teacher that is the student model reuses `loaded` (the vanilla student in memory)."""
    from helpers.backends import make_backend

    cache = Path(cfg.teacher_cache_dir or Path(cfg.output_root) / "mmlu_teacher" / "teacher_cache").expanduser()
    cache = output_path(cache)
    if cfg.teacher_backend == "openai":
        return make_backend("openai", base_url=cfg.teacher_base_url, model=cfg.teacher_model,
                            api_key_env=cfg.teacher_api_key_env, cache_dir=cache, timeout=cfg.teacher_timeout,
                            max_retries=cfg.teacher_max_retries)
    same = loaded if cfg.teacher_model == cfg.model else None
    return make_backend("local", model=cfg.teacher_model, cache_dir=cache, load_in_4bit=cfg.load_in_4bit,
                        batch_size=cfg.eval_batch_size, seed=cfg.seed, loaded=same)


def teacher_record(cfg, teacher) -> dict:
    """What the run records about the teacher: never the key, only the variable's name."""
    record = {"backend": cfg.teacher_backend, "model": cfg.teacher_model, "counters": teacher.counters()}
    if cfg.teacher_backend == "openai":
        record |= {"base_url": cfg.teacher_base_url, "api_key_env": cfg.teacher_api_key_env}
    return record


def split_accuracy(evaluation: dict, ids: set) -> dict:
    """Accuracy (both scorings) on the questions in `ids` and on the others: for method 2, the
    targeted questions are where leakage would show."""
    out = {}
    for part, keep in (("targeted_questions", True), ("other_questions", False)):
        items = [it for it in evaluation["items"] if (it["id"] in ids) == keep]
        out[part] = {m: accuracy([it[f"{m}_letter"] == it["reference"] for it in items])
                     for m in ("generated", "loglik") if all(f"{m}_letter" in it for it in items)}
    return out
