import re
import textwrap

import pytest

from helpers.questions import Question, QuestionFileError, load_question_set, load_questions

GOOD_MATH = """\
task: math
version: 1
questions:
  - id: m-1
    question: What is 2 + 2?
    answer: "4"
    solution: 2 + 2 = 4.
  - id: m-2
    question: |
      Half of 25?
    answer: "-12.50"
    solution: |
      25 / 2 = 12.5, with a minus for the test.
"""


def write(tmp_path, text, name="set.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path) -> str:
    with pytest.raises(QuestionFileError) as info:
        load_questions(path)
    return str(info.value)


def assert_points_at(message, path, line):
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message


@pytest.mark.parametrize("name", ["math", "bio"])
def test_shipped_sets_load(name):
    questions = load_question_set(name)
    assert len(questions) >= 30
    assert len({q.id for q in questions}) == len(questions)
    assert all(q.task == name and q.id.startswith(f"{name}-") for q in questions)
    assert all(q.question and q.answer and q.question == q.question.strip() for q in questions)


def test_shipped_math_answers_are_numbers_with_solutions():
    for q in load_question_set("math"):
        assert re.fullmatch(r"-?\d+(\.\d+)?", q.answer), q.id
        float(q.answer)
        assert q.solution, q.id


def test_good_file_parses(tmp_path):
    questions = load_questions(write(tmp_path, GOOD_MATH))
    assert questions[0] == Question("m-1", "What is 2 + 2?", "4", "2 + 2 = 4.", "math")
    assert questions[1].question == "Half of 25?"
    assert questions[1].answer == "-12.50"     # as written, not re-formatted by YAML


def test_bio_solution_is_optional(tmp_path):
    path = write(tmp_path, """\
        task: bio
        version: 1
        questions:
          - id: b-1
            question: What does the SA node do?
            answer: >
              It is the heart's pacemaker;
              it starts each beat.
        """)
    [question] = load_questions(path)
    assert question.solution is None
    assert question.answer == "It is the heart's pacemaker; it starts each beat."


@pytest.mark.parametrize("text, line, words", [
    pytest.param("""\
        task: math
        version: 1
        questions:
          - id: m-1
            question: Is this: valid?
            answer: "1"
            solution: no
        """, 5, "not valid YAML", id="bad-yaml-syntax"),
    pytest.param("""\
        task: math
        version: 1
        questions:
          - id: m-1
            question: "unclosed
            answer: "1"
        """, 6, "not valid YAML", id="bad-yaml-unclosed-quote"),
    pytest.param("""\
        task: bio
        version: 1
        questions:
          - id: b-1
            question: A?
            answer: B.
          - id: b-2
            question: C?
        """, 7, "b-2 has no 'answer'", id="missing-answer"),
    pytest.param("""\
        task: bio
        version: 1
        questions:
          - id: b-1
            question: A?
            answer: B.
          - id: b-2
            question: ""
            answer: D.
        """, 8, "'question' of b-2 is empty", id="empty-question"),
    pytest.param("""\
        task: bio
        version: 1
        questions:
          - id: b-1
            question:
            answer: B.
        """, 5, "'question' of b-1 is empty", id="null-question"),
    pytest.param("""\
        task: bio
        version: 1
        questions:
          - id: b-1
            question: A?
            anwser: B.
        """, 6, "unknown key 'anwser' in b-1 (did you mean 'answer'?)", id="unknown-key"),
    pytest.param("""\
        task: bio
        version: 1
        author: me
        questions: []
        """, 3, "unknown key 'author' in the file", id="unknown-top-level-key"),
    pytest.param("""\
        task: bio
        version: 1
        questions:
          - id: b-1
            question: A?
            answer: B.
          - id: b-2
            question: C?
            answer: D.
          - id: b-1
            question: E?
            answer: F.
        """, 10, "duplicate id 'b-1' (first on line 4)", id="duplicate-id"),
    pytest.param("""\
        task: math
        version: 1
        questions:
          - id: m-1
            question: How much?
            answer: "1,200 dollars"
            solution: Lots.
        """, 6, "answer '1,200 dollars' of m-1 is not a number", id="non-numeric-math-answer"),
    pytest.param("""\
        task: math
        version: 1
        questions:
          - id: m-1
            question: How much?
            answer: "3"
            solution: 1 + 2.
          - id: m-2
            question: How many?
            answer: "4"
        """, 8, "m-2 has no 'solution'", id="math-without-solution"),
    pytest.param("""\
        # a comment first
        task: chemistry
        version: 1
        questions: []
        """, 2, "unknown task 'chemistry'; use one of: math, bio", id="wrong-task"),
    pytest.param("""\
        task: math
        version: 2
        questions: []
        """, 2, "unsupported version '2'", id="wrong-version"),
    pytest.param("""\
        task: math
        version: 1
        """, 1, "missing top-level key 'questions'", id="missing-questions"),
    pytest.param("""\
        task: math
        version: 1
        questions: []
        """, 3, "'questions' must be a non-empty list", id="no-questions"),
    pytest.param("""\
        task: bio
        version: 1
        questions:
          - just a string
        """, 4, "question 1 is not a mapping", id="entry-not-mapping"),
    pytest.param("""\
        task: bio
        version: 1
        questions:
          - id: b-1
            question: A?
            answer: B.
            answer: C.
        """, 7, "key 'answer' appears twice in b-1", id="repeated-key"),
    pytest.param("""\
        task: bio
        version: 1
        questions:
          - id: b-1
            question: [A, B]
            answer: C.
        """, 5, "'question' of b-1 must be text, not a list", id="question-is-list"),
    pytest.param("", 1, "expected a mapping", id="empty-file"),
])
def test_malformed_file_names_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, text, name="broken.yaml")
    message = error_of(path)
    assert_points_at(message, path, line)
    assert words in message


def test_error_is_a_value_error(tmp_path):
    with pytest.raises(ValueError):
        load_questions(write(tmp_path, "task: bio\n"))


def test_unknown_set_lists_the_known_ones():
    with pytest.raises(QuestionFileError) as info:
        load_question_set("chemistry")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("questions/chemistry.yaml: no question set 'chemistry'")
    assert {"bio", "math"} <= set(message.split("known: ")[1].split(", "))


def test_offline_training_data_does_not_contain_the_benchmark_questions():
    """A model trained on benchmark_data/data must not have seen the questions it is rated on."""
    import json

    from rapidfuzz import fuzz

    from helpers.tasks.instruct import DATA_DIR, TASKS

    for name, task in TASKS.items():
        questions = load_question_set(name)
        rows = [json.loads(line) for line in (DATA_DIR / task.local_file).read_text().splitlines()]
        assert len(rows) >= 40
        for row in rows:
            prompt = task.to_pair(row)[0]
            worst = max(questions, key=lambda q: fuzz.token_set_ratio(q.question, prompt))
            assert fuzz.token_set_ratio(worst.question, prompt) < 75, (worst.id, prompt[:80])
