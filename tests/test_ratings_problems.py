"""compile_ratings never changes the numbers in silence: every cell, row or file it cannot count as
it stands is either counted correctly or reported (file, sheet, cell, what, what was done), and the
text it writes out (names taken from file names and headers) is never a live formula (issue 21)."""

import csv
import warnings

import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook

from helpers.ratings import Problem, agreement, read_ratings, summarize, write_summary
from helpers.tasks.instruct import compile_report

HEADER = ["id", "question", "answer_base", "score_base", "rating_base", "reviewer", "comment", "status"]


def book(path, rows, *, sheet="math", header=HEADER, meta=None):
    """A rating workbook laid out as helpers.workbook writes it; rows are dicts by column name."""
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(header)
    for row in rows:
        ws.append([row.get(name, "current" if name == "status" else None) for name in header])
    wb.create_sheet("instructions")["A1"] = "How to rate"
    if meta:  # the hidden "about" sheet of /tmp/meta_api.md, written by hand so these tests need no writer
        about = wb.create_sheet("about")
        about.append(["key", "value"])
        for key, value in meta.items():
            about.append([key, value])
        about.sheet_state = "hidden"
    wb.save(path)
    return path


def items(n, rating=None, answer="a", **extra):
    return [{"id": f"q{i}", "question": f"question {i}", "answer_base": f"{answer}{i}", "score_base": 1.0,
             "rating_base": rating, **extra} for i in range(n)]


def compile_folder(folder):
    problems = []
    ratings = read_ratings(folder, problems)
    return ratings, summarize(ratings).set_index(["model", "task", "stage"]), problems


def cells(problems, kind=None):
    return {(p.file, p.cell) for p in problems if kind in (None, p.kind)}


def test_out_of_range_fractional_boolean_and_text_ratings(tmp_path):
    values = [5, 0, 6, 3.5, True, "4", " 2 ", "x", "7", None, 4.0]
    rows = [{**row, "rating_base": v} for row, v in zip(items(len(values)), values)]
    book(tmp_path / "m-math.xlsx", rows)
    ratings, summary, problems = compile_folder(tmp_path)
    base = summary.loc[("m", "math", "base")]
    # counted: 5, "4", " 2 " and 4.0; not counted: 0, 6, 3.5, TRUE, "x", "7"; missing: the empty cell
    assert (base["ratings"], base["excluded"], base["missing"]) == (4, 6, 1)
    assert base["mean_rating"] == pytest.approx((5 + 4 + 2 + 4) / 4)
    assert cells(problems, "problem") == {("m-math.xlsx", f"E{r}") for r in (3, 4, 5, 6, 9, 10)}
    assert cells(problems, "note") == {("m-math.xlsx", "E7"), ("m-math.xlsx", "E8")}  # "4", " 2 ": counted
    assert all(p.sheet == "math" and p.action for p in problems)
    assert "3.5" in next(p.what for p in problems if p.cell == "E5")


def test_a_renamed_sheet_reports_the_workbook(tmp_path):
    book(tmp_path / "m-math.xlsx", items(2, 4), sheet="Sheet1")
    book(tmp_path / "n-bio.xlsx", items(2, 3), sheet="bio")
    ratings, summary, problems = compile_folder(tmp_path)
    assert set(ratings["file"]) == {"n-bio.xlsx"}
    (problem,) = problems
    assert problem.file == "m-math.xlsx" and "no sheet named math" in problem.what
    assert "Sheet1" in problem.what and "instructions" in problem.what


def test_a_copy_made_before_the_answers_changed_is_not_counted(tmp_path):
    main = items(3, answer="new")
    main[2]["answer_base"] = "a2"  # unchanged since the copy was made
    book(tmp_path / "m-math.xlsx", [{**r, "rating_base": 4, "reviewer": "ana"} for r in main])
    book(tmp_path / "m-math--ben.xlsx", items(3, 2, reviewer="ben"))  # answers a0, a1, a2
    ratings, summary, problems = compile_folder(tmp_path)
    ben = ratings[ratings["reviewer"] == "ben"]
    assert ben["rating"].notna().tolist() == [False, False, True] and ben["excluded"].tolist() == [True, True, False]
    assert summary.loc[("m", "math", "base"), "ratings"] == 4
    assert cells(problems) == {("m-math--ben.xlsx", "E2"), ("m-math--ben.xlsx", "E3")}
    assert all("m-math.xlsx" in p.what and "not counted" in p.action for p in problems)
    assert agreement(ratings)["pairs"].tolist() == [1]  # only the still-current item is compared


def test_copies_named_by_the_operating_system_are_reviewer_copies(tmp_path):
    meta = {"model": "org/m", "model_id": "org/m", "task": "math"}
    book(tmp_path / "org__m-math.xlsx", items(2, 4, reviewer="ana"), meta=meta)
    book(tmp_path / "org__m-math (1).xlsx", items(2, 3), meta=meta)
    book(tmp_path / "org__m-math - Copy.xlsx", items(2, 5, reviewer="ben"))
    book(tmp_path / "Copy of org__m-math.xlsx", items(2, 2), meta={**meta, "model_id": "/elsewhere/m"})
    ratings, summary, problems = compile_folder(tmp_path)
    # one model, not four; the copy whose model_id differs is a model of its own, told apart by its model_id
    assert sorted(set(ratings["model"])) == ["org/m", "org/m (/elsewhere/m)"]
    assert summary.loc[("org/m", "math", "base"), "ratings"] == 6
    assert set(ratings.loc[ratings["model"] == "org/m", "reviewer"]) == {
        "ana", "ben", "unknown (org__m-math (1).xlsx)"}
    notes = {p.file: p for p in problems if "operating system" in p.what}
    assert set(notes) == {"org__m-math (1).xlsx", "org__m-math - Copy.xlsx", "Copy of org__m-math.xlsx"}
    assert "same model_id" in notes["org__m-math (1).xlsx"].what
    assert "org__m-math--<reviewer>.xlsx" in notes["org__m-math - Copy.xlsx"].action
    assert any(p.file == "Copy of org__m-math.xlsx" and "model_id" in p.what and "differs" in p.what
               for p in problems)


def test_upper_case_extension_is_read(tmp_path):
    book(tmp_path / "m-math.XLSX", items(2, 3))
    ratings, summary, problems = compile_folder(tmp_path)
    assert summary.loc[("m", "math", "base"), "ratings"] == 2 and not problems


def test_a_merge_written_beside_its_workbook_is_not_counted_twice(tmp_path):
    book(tmp_path / "m-math.xlsx", items(2, 3))
    book(tmp_path / "m-math.merged-20261201-120000.xlsx", items(2, 3))
    ratings, summary, problems = compile_folder(tmp_path)
    assert summary.loc[("m", "math", "base"), "ratings"] == 2
    assert [p.file for p in problems] == ["m-math.merged-20261201-120000.xlsx"]


def test_double_dash_in_a_model_name(tmp_path):
    book(tmp_path / "my--model-math.xlsx", items(2, 4))
    book(tmp_path / "my--model-math--ana.xlsx", items(2, 2))
    book(tmp_path / "x--y-bio--2.xlsx", items(1, 3), sheet="bio")  # "2" is no reviewer name: ambiguous
    meta = {"model": "org/z--w", "model_id": "org/z--w", "task": "math"}
    book(tmp_path / "z--w-math--ben.xlsx", items(1, 5), meta=meta)
    ratings, summary, problems = compile_folder(tmp_path)
    mine = ratings[ratings["model"] == "my--model"]
    assert sorted(mine["reviewer"]) == ["ana", "ana", "unnamed", "unnamed"]
    assert summary.loc[("my--model", "math", "base"), "ratings"] == 4
    assert summary.loc[("org/z--w", "math", "base"), "ratings"] == 1
    assert set(ratings.loc[ratings["model"] == "org/z--w", "reviewer"]) == {"ben"}
    assert {p.file for p in problems if "'--'" in p.what} == {"my--model-math.xlsx", "my--model-math--ana.xlsx"}
    (odd,) = [p for p in problems if p.file == "x--y-bio--2.xlsx"]  # counted under its whole name, and said so
    assert "file name" in odd.what and "'x--y-bio--2'" in odd.what and odd.kind == "note"
    assert summary.loc[("x--y-bio--2", "bio", "base"), "ratings"] == 1


def test_without_status_a_repeated_id_counts_for_nothing(tmp_path):
    header = [h for h in HEADER if h != "status"]
    rows = items(3, 4)
    rows.append({**rows[0], "answer_base": "newer", "rating_base": 1})
    book(tmp_path / "m-math.xlsx", rows, header=header)
    ratings, summary, problems = compile_folder(tmp_path)
    assert summary.loc[("m", "math", "base"), "ratings"] == 2  # q1, q2; neither rating of q0
    assert summary.loc[("m", "math", "base"), "excluded"] == 2
    (problem,) = problems
    assert problem.cell == "rows 2, 5" and "q0" in problem.what and "status" in problem.what


def test_a_corrupt_copy_is_named_and_skipped(tmp_path):
    book(tmp_path / "m-math.xlsx", items(2, 4))
    (tmp_path / "m-math--ben.xlsx").write_bytes(b"PK\x03\x04 half a sync")
    (tmp_path / "n-math.xlsx").write_text("not a workbook")
    ratings, summary, problems = compile_folder(tmp_path)
    assert summary.loc[("m", "math", "base"), "ratings"] == 2
    assert {p.file for p in problems} == {"m-math--ben.xlsx", "n-math.xlsx"}
    assert all("cannot be read" in p.what and "skipped" in p.action for p in problems)


def test_problems_are_never_silent(tmp_path):
    book(tmp_path / "m-math.xlsx", [{**items(1)[0], "rating_base": 9}])
    with pytest.warns(UserWarning, match=r"m-math.xlsx \[math!E2\]: 9 is out of range"):
        read_ratings(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_ratings(tmp_path, [])  # a caller that takes the list gets no warning on top


def test_summary_files_hold_no_formulas_and_list_the_problems(tmp_path):
    header = [h.replace("_base", "_=1+1") for h in HEADER]
    rows = [{k.replace("_base", "_=1+1"): v for k, v in row.items()} for row in items(2, 4)]
    rows[1]["rating_=1+1"] = 3.5
    book(tmp_path / "=cmd-math.xlsx", rows, header=header)
    problems = []
    ratings = read_ratings(tmp_path, problems)
    files = write_summary(summarize(ratings), agreement(ratings), tmp_path / "out", problems)
    with open(files["csv"], newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["model"] == "'=cmd" and row["stage"] == "'=1+1"
    wb = load_workbook(files["workbook"])
    ws = wb["summary"]
    header_row = [c.value for c in ws[1]]
    for name in ("model", "stage"):
        cell = ws.cell(row=2, column=header_row.index(name) + 1)
        assert cell.data_type == "s" and cell.value.startswith("=")
    sheet = pd.read_excel(files["workbook"], sheet_name="problems")
    assert sheet[["file", "sheet", "cell"]].values.tolist() == [["=cmd-math.xlsx", "math", "E3"]]
    assert wb["problems"]["B2"].data_type == "s"
    with open(files["figure"], "rb") as f:
        assert f.read(4) == b"\x89PNG"


def test_a_dollar_sign_in_a_model_name_does_not_break_the_figure(tmp_path):
    book(tmp_path / "a$\\foo$b-math.xlsx", items(2, 4))
    ratings = read_ratings(tmp_path, [])
    files = write_summary(summarize(ratings), agreement(ratings), tmp_path / "out")
    assert "figure" in files and set(ratings["model"]) == {"a$\\foo$b"}


def test_compile_report_prints_each_problem():
    problem = Problem("m-math.xlsx", "math", "E5", "3.5 is not a whole number 1-5", "not counted")
    report = compile_report({"summary": [], "problems": [problem.__dict__]})
    assert "1 problem" in report and problem.line() in report.splitlines()


# --- a header retyped, a copy's reviewer cells, one reviewer's ratings found twice --------------

@pytest.mark.parametrize("typed", ["Rating_base", "rating base", " RATING-base "])
def test_a_retyped_rating_header_is_read_as_the_workbook_reads_it_with_a_note(tmp_path, typed):
    book(tmp_path / "m-math.xlsx", items(2, rating=None))
    book(tmp_path / "m-math--alice.xlsx", items(2, **{typed: 4}),
         header=[typed if h == "rating_base" else h for h in HEADER])
    ratings, summary, problems = compile_folder(tmp_path)
    alice = ratings[ratings["file"] == "m-math--alice.xlsx"]
    assert alice[["stage", "rating", "cell"]].values.tolist() == [["base", 4.0, "E2"], ["base", 4.0, "E3"]]
    assert summary.loc[("m", "math", "base"), "ratings"] == 2
    (note,) = problems
    assert (note.kind, note.file, note.sheet, note.cell) == ("note", "m-math--alice.xlsx", "math", "E1")
    assert typed.strip() in note.what and "rename the header back to rating_base" in note.action


def test_a_rating_header_the_sheet_cannot_place_is_reported_not_dropped(tmp_path):
    header = [*HEADER, "Rating notes", "Rating base"]  # no answer_notes; a second rating_base column
    rows = [{**row, "Rating notes": "check", "Rating base": 2} for row in items(2, 4)]
    book(tmp_path / "m-math.xlsx", rows, header=header)
    ratings, summary, problems = compile_folder(tmp_path)
    assert ratings["stage"].tolist() == ["base", "base"] and ratings["rating"].tolist() == [4.0, 4.0]
    assert {(p.kind, p.cell) for p in problems} == {("problem", "I1"), ("problem", "J1")}
    second = next(p for p in problems if p.cell == "J1")
    assert "second rating_base column" in second.what and "E1" in second.what and "not read" in second.action


def test_in_a_reviewer_copy_the_file_name_names_the_reviewer(tmp_path):
    # alice copied bob's filled workbook and rated over his ratings; the reviewer cells still say bob
    book(tmp_path / "m-math.xlsx", [{**r, "rating_base": v, "reviewer": "bob"} for r, v in zip(items(3), [5, 4, 3])])
    book(tmp_path / "m-math--alice.xlsx", [{**r, "rating_base": v, "reviewer": w}
                                           for r, v, w in zip(items(3), [4, 4, 2], ["bob", "bob", "Alice"])])
    ratings, summary, problems = compile_folder(tmp_path)
    assert ratings[["file", "reviewer"]].values.tolist() == [["m-math.xlsx", "bob"]] * 3 + [
        ["m-math--alice.xlsx", "alice"]] * 3
    assert summary.loc[("m", "math", "base"), "reviewers"] == 2
    assert agreement(ratings)["pairs"].tolist() == [3]
    (note,) = problems  # F4 says "Alice": the same name
    assert (note.kind, note.file, note.cell) == ("note", "m-math--alice.xlsx", "F2:F3")
    assert "'bob'" in note.what and "'alice'" in note.what and "counted as alice's" in note.action


def test_the_same_workbook_saved_twice_counts_once(tmp_path):
    rated = [{**r, "rating_base": v, "reviewer": "bob"} for r, v in zip(items(4), [5, 4, 3, 4])]
    book(tmp_path / "m-math.xlsx", rated)
    book(tmp_path / "m-math (1).xlsx", rated)
    ratings, summary, problems = compile_folder(tmp_path)
    base = summary.loc[("m", "math", "base")]
    assert (base["ratings"], base["rated_items"], base["excluded"], base["mean_rating"]) == (4, 4, 4, 4.0)
    assert agreement(ratings).empty
    (note,) = [p for p in problems if "same ratings" in p.what]
    assert (note.kind, note.file, note.cell) == ("note", "m-math (1).xlsx", "E2:E5") and "m-math.xlsx" in note.what


def test_one_reviewers_differing_ratings_of_an_item_count_for_nothing(tmp_path):
    rated = [{**r, "rating_base": v, "reviewer": "bob"} for r, v in zip(items(3), [5, 4, 3])]
    book(tmp_path / "m-math.xlsx", rated)
    book(tmp_path / "m-math (1).xlsx", [{**rated[0], "rating_base": 1}, *rated[1:]])
    ratings, summary, problems = compile_folder(tmp_path)
    base = summary.loc[("m", "math", "base")]
    assert (base["ratings"], base["rated_items"], base["mean_rating"]) == (2, 2, 3.5)  # q1, q2; neither rating of q0
    conflicts = {(p.file, p.cell) for p in problems if p.kind == "problem"}
    assert conflicts == {("m-math.xlsx", "E2"), ("m-math (1).xlsx", "E2")}
    assert all("'bob' rated these items differently" in p.what for p in problems if p.kind == "problem")
