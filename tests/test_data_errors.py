"""A user's data file with a bad row: one ConfigError line naming the file and the line/row, or the
value converted where that is safe (a number where text is expected)."""

import json

import pytest

from helpers.config import ConfigError
from helpers.data import HubData, load_records
from helpers.tasks import instruct, mmlu

ORCA = HubData(None, "orca_math_sample.jsonl", ("question", "answer"))
BIO = HubData(None, "bioinstruct_sample.jsonl", ("instruction", "input", "output"))


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_truncated_jsonl_line_names_the_file_and_line(tmp_path):
    good = json.dumps({"question": "What is 2+2?", "answer": "4"})
    path = write(tmp_path / "math.jsonl", f"{good}\n{good}\n{good[:25]}\n{good}\n")
    with pytest.raises(ConfigError, match=r"^math.jsonl could not be read as JSONL: line 3: .*truncated") as err:
        load_records(ORCA, source=path, n=0)
    assert "\n" not in str(err.value)


def test_truncated_json_array_names_the_line(tmp_path):
    rows = [{"question": f"q{i}", "answer": str(i)} for i in range(3)]
    text = json.dumps(rows, indent=1)
    with pytest.raises(ConfigError, match=r"^math.json could not be read as JSON: line \d+: "):
        load_records(ORCA, source=write(tmp_path / "math.json", text[:-30]), n=0)


def test_empty_csv_row_names_the_row(tmp_path):
    path = write(tmp_path / "math.csv", "question,answer\nWhat is 2+2?,It is 4.\n,\nWhat is 3+3?,6\n")
    with pytest.raises(ConfigError, match=r"^math.csv row 3 \(the header is row 1\): question is empty$"):
        instruct.load_pairs(instruct.TASKS["math"], source=path, n=10)


def test_numeric_csv_answers_are_read_as_text(tmp_path):
    path = write(tmp_path / "math.csv", "question,answer\nWhat is 2+2?,4\nHalf of 5?,2.5\nAnd 7-7?,\"0\"\n")
    assert instruct.load_pairs(instruct.TASKS["math"], source=path, n=10) == [
        ("What is 2+2?", "4"), ("Half of 5?", "2.5"), ("And 7-7?", "0")]


def test_numeric_jsonl_answers_become_text(tmp_path):
    rows = [{"question": "What is 6*8?", "answer": 48}, {"question": "Half of 5?", "answer": 2.5}]
    path = write(tmp_path / "math.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert load_records(ORCA, source=path, n=0) == [{"question": "What is 6*8?", "answer": "48"},
                                                    {"question": "Half of 5?", "answer": "2.5"}]


def test_empty_optional_csv_cell_is_an_empty_string(tmp_path):
    path = write(tmp_path / "bio.csv", "instruction,input,output\nName a statin.,,Atorvastatin.\n")
    assert load_records(BIO, source=path, n=0) == [
        {"instruction": "Name a statin.", "input": "", "output": "Atorvastatin."}]


def test_null_in_jsonl_names_the_line_of_the_file(tmp_path):
    rows = [{"question": "q1", "answer": "a1"}, {"question": None, "answer": "a2"}]
    path = write(tmp_path / "math.jsonl", json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    with pytest.raises(ConfigError, match=r"^math.jsonl line 3: question is empty$"):
        load_records(ORCA, source=path, n=0)


def test_wrong_type_names_the_line(tmp_path):
    rows = [{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": ["a", "b"]}]
    path = write(tmp_path / "math.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError, match=r"^math.jsonl line 2: answer should be str, got \"\['a', 'b'\]\"$"):
        load_records(ORCA, source=path, n=0)


def test_mmlu_csv_answer_digits_become_numbers_and_a_text_list_is_named(tmp_path):
    header = "question,subject,choices,answer\n"
    good = write(tmp_path / "ok.jsonl", json.dumps({"question": "q", "subject": "machine_learning",
                                                    "choices": ["a", "b", "c", "d"], "answer": 2}) + "\n")
    assert mmlu.load_mmlu(["machine_learning"], source=good)[0].answer == 2
    path = write(tmp_path / "mmlu.csv", header + "Which?,machine_learning,\"['a', 'b', 'c', 'd']\",2\n")
    with pytest.raises(ConfigError, match=r"^mmlu.csv row 2 \(the header is row 1\): choices should be list, got "
                                          r".*a CSV cell cannot hold a list, use .jsonl/.json/.parquet$"):
        mmlu.load_mmlu(["machine_learning"], source=path)
    digits = write(tmp_path / "digits.jsonl", json.dumps({"question": "q", "subject": "machine_learning",
                                                          "choices": ["a", "b", "c", "d"], "answer": "3"}) + "\n")
    assert mmlu.load_mmlu(["machine_learning"], source=digits)[0].answer == 3
