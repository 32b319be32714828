"""MMLU questions for every study that asks them (mmlu_teacher, forgetting): one loader, one
lm-evaluation-harness prompt, the generalist study's chat prompt and its letter parser.

Data: hub `cais/mmlu` (one config per subject), a project-written fixture in benchmark_data/data/, or
a file of the same schema: question, subject, choices[4], answer 0-3.

    >>> questions = load_mmlu(["machine_learning"], source="local")
    >>> mmlu_prompt(questions[0])       # lm-eval's zero-shot MMLU prompt; continuations " A" .. " D"
    >>> study_prompt(questions[0])      # the generalist study's prompt, answered by a letter
    >>> extract_letter("(B) because ...")
    'B'
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from helpers.config import ConfigError
from helpers.data import DATA_DIR, HubData, load_records

LETTERS = "ABCD"
HUB_ID = "cais/mmlu"
FIXTURE = DATA_DIR / "mmlu_fixture.jsonl"
COLUMNS = ("question", "choices", "answer")  # `subject` too where the file pools several


@dataclasses.dataclass
class Question:
    subject: str
    question: str
    choices: list  # as the data has them: lm-eval's template prints them unstripped
    answer: int  # 0-3, as in cais/mmlu
    id: str = ""

    @property
    def letter(self) -> str:
        return LETTERS[self.answer]


def subject_name(subject: str) -> str:
    return subject.replace("_", " ")


def question_from_row(row: dict, *, subject: str = "", id: str = "", where: str = "") -> Question:
    """A cais/mmlu row as a Question; ConfigError (one line, `where` says which row) if it is not one."""
    missing = [k for k in COLUMNS if k not in row]
    if missing:
        raise ConfigError(f"MMLU data lacks {', '.join(missing)} ({where or 'a row'}); the schema of cais/mmlu is "
                          "question, subject, choices (4 texts), answer (0-3)")
    answer = row["answer"]
    if len(row["choices"]) != 4 or isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer <= 3:
        raise ConfigError(f"MMLU {where or 'row'} needs 4 choices and an answer 0-3, got "
                          f"{len(row['choices'])} choices and answer {answer!r}")
    return Question(row.get("subject") or subject, row["question"].strip(), [str(c) for c in row["choices"]],
                    answer, id)


def _questions(rows, subject_default: str, prefix: str) -> list[Question]:
    return [question_from_row(row, subject=subject_default, id=f"{prefix}-{i:04d}", where=f"row {i + 1} ({prefix})")
            for i, row in enumerate(rows)]


def load_mmlu(subjects: list[str], *, source: str = "hub", split: str = "test", max_questions: int = 0,
              local_file: str = FIXTURE.name, param: str = "dataset_source") -> list[Question]:
    """The questions of `subjects`, the first `max_questions` of each (0: all), subject by subject.

    source: "hub" (cais/mmlu, one config per subject; needs internet), "local" (the project-written
    `local_file` in benchmark_data/data/), a folder holding `local_file`, or a path to a
    .jsonl/.json/.csv/.parquet file with the cais/mmlu columns (helpers.data.load_records reads them).
    `param` names the caller's parameter in error messages."""
    if source == "hub":
        questions = []
        for subject in subjects:
            rows = load_records(HubData(HUB_ID, local_file, COLUMNS, config=subject, split=split),
                                source="hub", n=max_questions, param=param)
            questions += _questions(rows, subject, subject)
        return questions
    rows = load_records(HubData(HUB_ID, local_file, COLUMNS), source=source, n=0, param=param)
    path = DATA_DIR / local_file if source == "local" else Path(source).expanduser()
    name = (path / local_file).name if path.is_dir() else path.name
    everything = _questions(rows, "", Path(name).stem)
    found = sorted({q.subject for q in everything})
    questions = []
    for subject in subjects:
        mine = [q for q in everything if q.subject == subject]
        if not mine:
            raise ConfigError(f"{name} has no questions of subject '{subject}'; it has: {', '.join(found)}")
        questions += mine[: max_questions or None]
    return questions


# ------------------------------------------------------------------------------------------ prompts

def format_options(choices) -> str:
    return "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices))


def mmlu_prompt(q: Question) -> str:
    """lm-evaluation-harness's MMLU prompt (0.4.13, lm_eval/tasks/mmlu/default/_default_template_yaml:
    description + doc_to_text, zero-shot): the question stripped, the choices as they are, then
    "Answer:"; the continuations are ' A', ' B', ' C', ' D' (target_delimiter ' ')."""
    return (f"The following are multiple choice questions (with answers) about {subject_name(q.subject)}.\n\n"
            f"{q.question.strip()}\n{format_options(q.choices)}\nAnswer:")


def study_prompt(q: Question) -> str:
    """The generalist study's zero-shot prompt (a user turn): the model should answer with a letter."""
    return (f"You are an expert in {subject_name(q.subject)}. Answer the following multiple choice question.\n\n"
            f"{q.question}\n{format_options(q.choices)}\n\n"
            "Do not output any explanation, only choose the correct option.")


# ------------------------------------------------------------------------------------------- letters

def normalise(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: the text compared for duplicates."""
    return " ".join(re.sub(r"[^\w\s]", " ", (text or "").lower()).split())


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
