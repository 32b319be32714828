"""Re-running benchmarking onto a workbook that reviewers have filled never loses a rating."""

from openpyxl import load_workbook

from helpers.workbook import update_rating_workbook

ANSWERS = {"answer_base": "rating_base", "answer_epoch1": "rating_epoch1", "answer_epoch3": "rating_epoch3"}


def items(n, **answers):
    return [{"id": f"q-{i:03d}", "question": f"question {i}", "reference": f"ref {i}",
             **{k: (v(i) if callable(v) else v) for k, v in answers.items()}} for i in range(n)]


def update(path, rows):
    return update_rating_workbook(path, rows, answers=ANSWERS, text_columns=["question", "reference"],
                                  score_columns=["score_base"], title="math")


def table(path):
    ws = load_workbook(path)["math"]
    header = [c.value for c in ws[1]]
    return header, [dict(zip(header, (c.value for c in row))) for row in ws.iter_rows(min_row=2)]


def rate(path, scores):
    """A reviewer types scores: {(row_index, rating column): value}, plus name and comment."""
    wb = load_workbook(path)
    ws = wb["math"]
    header = [c.value for c in ws[1]]
    for (i, name), value in scores.items():
        ws.cell(row=i + 2, column=header.index(name) + 1, value=value)
        ws.cell(row=i + 2, column=header.index("reviewer") + 1, value="ana")
        ws.cell(row=i + 2, column=header.index("comment") + 1, value=f"note {i}")
    wb.create_sheet("my notes")["A1"] = "kept?"
    wb.save(path)


def test_200_ratings_survive_a_rerun_with_new_and_changed_answers(tmp_path):
    path = tmp_path / "m-math.xlsx"
    assert update(path, items(100, answer_base=lambda i: f"base {i}", score_base=0.0))["added"] == 100
    # the epoch-1 stage arrives: filled into the same rows
    assert update(path, items(100, answer_epoch1=lambda i: f"e1 {i}"))["filled"] == 100
    scores = {(i, "rating_base"): 1 + i % 5 for i in range(100)}
    scores |= {(i, "rating_epoch1"): 1 + (i * 3) % 5 for i in range(100)}
    rate(path, scores)

    # re-run: epoch-1 answers of items 0-9 changed (rated), epoch 3 is new, 5 new items
    rerun = items(105, answer_base=lambda i: f"base {i}", answer_epoch1=lambda i: f"e1 {i}" + ("!" if i < 10 else ""),
                  answer_epoch3=lambda i: f"e3 {i}", score_base=0.0)
    counts = update(path, rerun)
    assert counts == {"added": 5, "filled": 90, "updated": 0, "superseded": 10, "unchanged": 0}

    header, rows = table(path)
    assert len(rows) == 100 + 10 + 5
    for (i, name), value in scores.items():  # every typed score is still where it was typed
        assert rows[i][name] == value, (i, name)
        assert rows[i]["reviewer"] == "ana" and rows[i]["comment"] == f"note {i}"
    for i in range(10):  # rated answer changed: old row kept and flagged, new row carries unchanged ratings
        assert rows[i]["answer_epoch1"] == f"e1 {i}" and rows[i]["status"].startswith("superseded")
        new = rows[100 + i]
        assert new["id"] == f"q-{i:03d}" and new["answer_epoch1"] == f"e1 {i}!" and new["rating_epoch1"] is None
        assert new["rating_base"] == scores[(i, "rating_base")] and new["answer_epoch3"] == f"e3 {i}"
        assert new["status"] == f"current (replaces row {i + 2})" and new["comment"] is None
    assert [r["id"] for r in rows[110:]] == [f"q-{i:03d}" for i in range(100, 105)]
    assert load_workbook(path)["my notes"]["A1"].value == "kept?"

    # and a third run with identical answers changes nothing
    assert update(path, rerun)["unchanged"] == 105
    assert table(path)[1] == rows


def test_unrated_changed_answer_is_replaced_in_place_and_flagged(tmp_path):
    path = tmp_path / "w.xlsx"
    update(path, items(3, answer_base="old"))
    counts = update(path, items(3, answer_base="new"))
    assert counts["updated"] == 3
    _, rows = table(path)
    assert len(rows) == 3 and all(r["answer_base"] == "new" and r["status"].startswith("updated") for r in rows)


def test_validation_covers_appended_rows_and_new_rating_columns(tmp_path):
    path = tmp_path / "w.xlsx"
    update(path, items(2, answer_base="a"))
    update(path, items(6, answer_base="a", answer_epoch1="b"))
    ws = load_workbook(path)["math"]
    header = [c.value for c in ws[1]]
    ranges = sorted(str(r.sqref) for r in ws.data_validations.dataValidation)
    from openpyxl.utils import get_column_letter
    expected = sorted(f"{get_column_letter(header.index(n) + 1)}2:{get_column_letter(header.index(n) + 1)}7"
                      for n in ANSWERS.values())
    assert ranges == expected


def test_formula_like_answers_stay_text_on_update(tmp_path):
    path = tmp_path / "w.xlsx"
    update(path, items(1, answer_base="a"))
    update(path, items(2, answer_base="=2+2"))
    ws = load_workbook(path)["math"]
    header = [c.value for c in ws[1]]
    cells = [ws.cell(row=r, column=header.index("answer_base") + 1) for r in (2, 3)]
    assert [c.value for c in cells] == ["=2+2", "=2+2"] and all(c.data_type == "s" for c in cells)


def test_renamed_sheet_is_an_error_and_the_file_is_untouched(tmp_path):
    import pytest

    path = tmp_path / "w.xlsx"
    update(path, items(1, answer_base="a"))
    wb = load_workbook(path)
    wb["math"].title = "renamed"
    wb.save(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="has no sheet 'math'"):
        update(path, items(1, answer_base="b"))
    assert path.read_bytes() == before


def test_control_characters_from_a_model_are_written_and_a_rerun_sees_no_change(tmp_path):
    # seen on the GPU: a random-weight model generated "\x02", which openpyxl refuses to store
    path = tmp_path / "m-math.xlsx"
    rows = items(3, answer_base=lambda i: f"answer\x02 {i}\x1b")
    assert update(path, rows)["added"] == 3
    _, stored = table(path)
    assert [r["answer_base"] for r in stored] == [f"answer\ufffd {i}\ufffd" for i in range(3)]
    rate(path, {(0, "rating_base"): 4})
    assert update(path, rows) == {"added": 0, "filled": 0, "updated": 0, "superseded": 0, "unchanged": 3}
    assert table(path)[1][0]["rating_base"] == 4


def test_a_rated_empty_answer_is_superseded_not_filled_under_its_rating(tmp_path):
    # the reviewer rated an empty answer 1 ("empty"); a re-run produces a real answer
    path = tmp_path / "m-math.xlsx"
    update(path, items(2, answer_base=lambda i: "   " if i == 0 else "", answer_epoch1="e1"))
    rate(path, {(0, "rating_base"): 1, (0, "rating_epoch1"): 4})
    counts = update(path, items(2, answer_base="The answer is 1.", answer_epoch1="e1"))
    assert counts == {"added": 0, "filled": 1, "updated": 0, "superseded": 1, "unchanged": 0}  # item 1: unrated
    _, rows = table(path)
    old, unrated, new = rows
    assert (old["answer_base"], old["rating_base"]) == ("   ", 1)  # the 1 stays with the empty answer it rated
    assert old["status"].startswith("superseded") and "answer_base changed" in old["status"]
    assert (new["id"], new["answer_base"], new["rating_base"], new["status"]) == (
        "q-000", "The answer is 1.", None, "current (replaces row 2)")
    assert (new["answer_epoch1"], new["rating_epoch1"], new["reviewer"]) == ("e1", 4, "ana")  # carried, unchanged
    assert (unrated["answer_base"], unrated["status"]) == ("The answer is 1.", "current")  # filled in place

    from helpers.ratings import read_ratings
    counted = read_ratings(tmp_path, []).set_index(["item", "stage"])["rating"]
    assert counted[("q-000", "epoch1")] == 4 and counted.isna()[("q-000", "base")]
