"""Fixed benchmark question sets (questions/<name>.yaml), loaded and checked line by line.

    >>> questions = load_question_set("math")
    >>> questions[0].id, questions[0].task
    ('math-001', 'math')
    >>> load_questions("questions/broken.yaml")
    Traceback (most recent call last):
    QuestionFileError: questions/broken.yaml:14: math-003 has no 'answer'; add 'answer: ...' to the entry

The format is documented in questions/README.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path

import yaml

from helpers.config import REPO_ROOT

QUESTIONS_DIR = REPO_ROOT / "questions"
TASKS = ("math", "bio")
TOP_KEYS = ("task", "version", "questions")
ENTRY_KEYS = ("id", "question", "answer", "solution")
VERSION = "1"
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


@dataclasses.dataclass(frozen=True)
class Question:
    id: str
    question: str
    answer: str
    solution: str | None
    task: str


class QuestionFileError(ValueError):
    """A bad question file. Its message is one line, '<file>:<line>: <what is wrong and how to fix it>'."""


def load_question_set(name: str) -> list[Question]:
    """questions/<name>.yaml of the repository."""
    path = QUESTIONS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in QUESTIONS_DIR.glob("*.yaml"))) or "none"
        raise QuestionFileError(f"{_shown(path)}: no question set '{name}'; known: {known}")
    return load_questions(path)


def load_questions(path) -> list[Question]:
    path = Path(path)
    shown = _shown(path)

    def fail(node_or_line, message):
        line = node_or_line if isinstance(node_or_line, int) else node_or_line.start_mark.line + 1
        raise QuestionFileError(f"{shown}:{line}: {message}")

    if not path.is_file():
        raise QuestionFileError(f"{shown}: no such file; give the path of a question file (.yaml) or the name "
                                "of a set in questions/")
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:
        # a character YAML does not allow (a control character pasted in); its position counts characters
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        fail(line, f"control character U+{exc.character:04X} at column {column} is not allowed in YAML; delete it")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(" ".join(str(part).split()) for part in (exc.context, exc.problem) if part)
        hint = "check the indentation, and quote text with ': ' or ' #'"
        fail(mark.line + 1 if mark else 1, f"not valid YAML ({what}); {hint}")
    except yaml.YAMLError as exc:
        fail(1, f"not valid YAML ({' '.join(str(exc).split())})")
    except UnicodeDecodeError:
        fail(1, "not UTF-8 text; save the file as UTF-8")
    if not isinstance(root, yaml.MappingNode):
        fail(root or 1, "expected a mapping with the keys task, version, questions")
    top = _mapping(root, TOP_KEYS, "the file", fail)
    for key in TOP_KEYS:
        if key not in top:
            fail(root, f"missing top-level key '{key}'; the file needs task, version and questions")
    task = _text(top["task"][1], "task", fail)
    if task not in TASKS:
        fail(top["task"][1], f"unknown task '{task}'; use one of: {', '.join(TASKS)}")
    if _text(top["version"][1], "version", fail) != VERSION:
        fail(top["version"][1], f"unsupported version '{top['version'][1].value}'; use version: {VERSION}")
    entries = top["questions"][1]
    if not isinstance(entries, yaml.SequenceNode) or not entries.value:
        fail(entries, "'questions' must be a non-empty list of entries, each starting with '- id: ...'")

    questions, seen = [], {}
    for number, entry in enumerate(entries.value, start=1):
        if not isinstance(entry, yaml.MappingNode):
            fail(entry, f"question {number} is not a mapping; start each entry with '- id: ...'")
        ids = [v for k, v in entry.value if k.value == "id" and isinstance(v, yaml.ScalarNode) and v.value.strip()]
        name = ids[0].value.strip() if ids else f"question {number}"
        fields = _mapping(entry, ENTRY_KEYS, name, fail)
        required = ("id", "question", "answer", "solution") if task == "math" else ("id", "question", "answer")
        for key in required:
            if key not in fields:
                fail(entry, f"{name} has no '{key}'; add '{key}: ...' to the entry")
        values = {}
        for key, (key_node, value_node) in fields.items():
            values[key] = _text(value_node, f"'{key}' of {name}", fail)
            if not values[key]:
                fail(key_node, f"'{key}' of {name} is empty; fill it in" + ("" if key in required else " or remove it"))
        if values["id"] in seen:
            fail(fields["id"][1], f"duplicate id '{values['id']}' (first on line {seen[values['id']]}); rename one")
        seen[values["id"]] = fields["id"][1].start_mark.line + 1
        if task == "math" and not _NUMBER.fullmatch(values["answer"]):
            fail(fields["answer"][1], f"answer '{values['answer']}' of {name} is not a number; "
                 "write digits with an optional leading '-' and decimal point, no commas or units (e.g. \"12.5\")")
        questions.append(Question(values["id"], values["question"], values["answer"], values.get("solution"), task))
    return questions


def _mapping(node, allowed, where, fail) -> dict:
    """{key: (key node, value node)} of a mapping node; unknown or repeated keys fail at their line."""
    fields = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            fail(key_node, f"unknown key '{key}' in {where}{hint}; allowed: {', '.join(allowed)}")
        if key in fields:
            fail(key_node, f"key '{key}' appears twice in {where}; keep one")
        fields[key] = (key_node, value_node)
    return fields


def _text(node, what, fail) -> str:
    """A scalar's text as written (so '12.50' stays '12.50'), stripped; '' for an empty value or ~/null."""
    if not isinstance(node, yaml.ScalarNode):
        fail(node, f"{what} must be text, not a {'list' if isinstance(node, yaml.SequenceNode) else 'mapping'}")
    return "" if node.tag == "tag:yaml.org,2002:null" else node.value.strip()


def _shown(path: Path) -> str:
    """The path relative to the repository when inside it (questions/math.yaml), else as given."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
