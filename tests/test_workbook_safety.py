"""A merge never loses what a reviewer typed: not to a concurrent save, an open or broken file, a
re-run of some of the stages, nor an edit it cannot interpret (those stop it, naming the cell)."""

from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from helpers.config import ConfigError
from helpers.workbook import update_rating_workbook, write_rating_workbook

ANSWERS = {"answer_base": "rating_base", "answer_epoch1": "rating_epoch1"}


def items(n, **answers):
    return [{"id": f"q-{i:03d}", "question": f"question {i}", "reference": f"ref {i}",
             **{k: (v(i) if callable(v) else v) for k, v in answers.items()}} for i in range(n)]


def update(path, rows, answers=ANSWERS, **kwargs):
    scores = [f"score_{a.removeprefix('answer_')}" for a in answers]
    return update_rating_workbook(path, rows, answers=answers, text_columns=["question", "reference"],
                                  score_columns=scores, title="math", **kwargs)


def table(path):
    ws = load_workbook(path)["math"]
    header = [c.value for c in ws[1]]
    return header, [dict(zip(header, (c.value for c in row))) for row in ws.iter_rows(min_row=2)]


def edit(path, change):
    """A reviewer's program opens the workbook, changes it, saves it."""
    wb = load_workbook(path)
    ws = wb["math"]
    header = [c.value for c in ws[1]]
    change(ws, lambda name: header.index(name) + 1)
    wb.save(path)


def rated_workbook(tmp_path) -> Path:
    """3 items, base and epoch-1 answers; item 0 rated on both stages, item 1 on base."""
    path = tmp_path / "m-math.xlsx"
    update(path, items(3, answer_base=lambda i: f"base {i}", answer_epoch1=lambda i: f"e1 {i}",
                       score_base=0.5, score_epoch1=1.0))

    def scores(ws, col):
        for r, name, value in [(2, "rating_base", 4), (2, "rating_epoch1", 3), (3, "rating_base", 2)]:
            ws.cell(row=r, column=col(name), value=value)
            ws.cell(row=r, column=col("reviewer"), value="ana")

    edit(path, scores)
    return path


def current(rows, item):
    """The rows that compile_ratings counts for `item` (status current… or updated…)."""
    return [r for r in rows if r["id"] == item and str(r["status"] or "current").startswith(("current", "updated"))]


# --- a workbook the merge must not write into ---------------------------------------------------

@pytest.mark.parametrize("lock", ["~$m-math.xlsx", ".~lock.m-math.xlsx#"])  # Excel, LibreOffice
def test_a_workbook_open_in_a_spreadsheet_program_is_refused(tmp_path, lock):
    path = rated_workbook(tmp_path)
    before = path.read_bytes()
    (tmp_path / lock).write_text("ana")
    with pytest.raises(ConfigError, match=r"close m-math\.xlsx in your spreadsheet program, then re-run") as err:
        update(path, items(4, answer_base=lambda i: f"base {i}"))
    assert "\n" not in str(err.value) and lock in str(err.value)
    assert path.read_bytes() == before


def test_a_read_only_workbook_is_refused(tmp_path):
    path = rated_workbook(tmp_path)
    before = path.read_bytes()
    path.chmod(0o444)
    try:
        with pytest.raises(ConfigError, match="is read-only"):
            update(path, items(4, answer_base=lambda i: f"base {i}"))
    finally:
        path.chmod(0o644)
    assert path.read_bytes() == before


@pytest.mark.parametrize("damage", ["not a zip", "cut in half"])
def test_an_unreadable_workbook_is_one_line_and_left_as_it_is(tmp_path, damage):
    path = rated_workbook(tmp_path)
    data = path.read_bytes()
    path.write_bytes(b"PK\x03\x04 half a zip" if damage == "not a zip" else data[: len(data) // 2])
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"m-math\.xlsx cannot be read as an \.xlsx workbook") as err:
        update(path, items(4, answer_base=lambda i: f"base {i}"))
    assert "\n" not in str(err.value)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m-math.xlsx"]


# --- a reviewer saves while the merge runs ---------------------------------------------------------

def reviewer_saves_during_merge(monkeypatch, path, times):
    """Each time the merge has saved its temporary file, the reviewer's program saves `path` (a new
    rating on the next unrated epoch-1 cell), up to `times` times: the race, made deterministic."""
    real_save = Workbook.save
    saves = []

    def save(self, filename):
        real_save(self, filename)
        if Path(filename) != path and len(saves) < times:
            wb = load_workbook(path)
            ws = wb["math"]
            column = [c.value for c in ws[1]].index("rating_epoch1") + 1
            row = next(r for r in range(2, ws.max_row + 1) if ws.cell(row=r, column=column).value is None)
            ws.cell(row=row, column=column, value=5)
            real_save(wb, path)
            saves.append(row)

    monkeypatch.setattr(Workbook, "save", save)
    return saves


def test_a_reviewer_save_during_the_merge_is_kept_and_merged_again(tmp_path, monkeypatch):
    path = rated_workbook(tmp_path)
    saves = reviewer_saves_during_merge(monkeypatch, path, times=1)
    counts = update(path, items(4, answer_base=lambda i: f"base {i}", answer_epoch1=lambda i: f"e1 {i}"))
    assert saves == [3]
    assert counts == {"added": 1, "filled": 0, "updated": 0, "superseded": 0, "unchanged": 3}
    _, rows = table(path)
    assert [r["rating_epoch1"] for r in rows] == [3, 5, None, None]  # the rating saved mid-merge is there
    assert [r["id"] for r in rows] == ["q-000", "q-001", "q-002", "q-003"]  # and so is the merge
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-math.xlsx"]


def test_a_workbook_saved_again_and_again_gets_the_merge_beside_it(tmp_path, monkeypatch):
    path = rated_workbook(tmp_path)
    saves = reviewer_saves_during_merge(monkeypatch, path, times=2)
    with pytest.warns(UserWarning, match=r"saved by someone else during the merge.*m-math\.merged-"):
        counts = update(path, items(4, answer_base=lambda i: f"base {i}", answer_epoch1=lambda i: f"e1 {i}"))
    assert saves == [3, 4]
    copy = Path(counts.pop("merged_copy"))
    assert copy.parent == tmp_path and copy.name.startswith("m-math.merged-") and copy.suffix == ".xlsx"
    assert counts["added"] == 1
    _, rows = table(path)  # the reviewer's file is exactly as they saved it
    assert [r["rating_epoch1"] for r in rows] == [3, 5, 5] and len(rows) == 3
    _, merged = table(copy)  # the merge of their first save, with the new item
    assert [r["rating_epoch1"] for r in merged] == [3, 5, None, None] and merged[3]["id"] == "q-003"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m-math.xlsx", copy.name])


# --- re-running some of the stages ------------------------------------------------------------------

def test_rerun_of_one_stage_keeps_the_other_stages_answers_and_ratings_current(tmp_path):
    path = rated_workbook(tmp_path)
    # only epoch 1 is benchmarked again, and item 0's (rated) epoch-1 answer changed
    counts = update(path, items(3, answer_epoch1=lambda i: f"e1 {i}" + ("!" if i == 0 else ""), score_epoch1=0.0),
                    answers={"answer_epoch1": "rating_epoch1"})
    assert counts == {"added": 0, "filled": 0, "updated": 0, "superseded": 1, "unchanged": 2}
    _, rows = table(path)
    [now] = current(rows, "q-000")
    assert now["answer_epoch1"] == "e1 0!" and now["rating_epoch1"] is None and now["score_epoch1"] == 0.0
    assert now["answer_base"] == "base 0" and now["rating_base"] == 4 and now["score_base"] == 0.5
    assert now["reviewer"] == "ana"
    assert rows[0]["status"].startswith("superseded") and rows[0]["rating_epoch1"] == 3  # kept where it was typed
    assert [current(rows, "q-001")[0]["rating_base"], current(rows, "q-002")[0]["rating_base"]] == [2, None]


def test_line_ends_a_spreadsheet_program_rewrote_are_not_a_changed_answer(tmp_path):
    path = tmp_path / "m-math.xlsx"
    rows = items(2, answer_base=lambda i: f"base {i}\nstep 2")
    update(path, rows)

    def excel_on_windows(ws, col):  # rates item 0 and saves the line ends as \r\n
        ws.cell(row=2, column=col("rating_base"), value=4)
        for r in (2, 3):
            ws.cell(row=r, column=col("answer_base"), value=f"base {r - 2}\r\nstep 2")

    edit(path, excel_on_windows)
    counts = update(path, rows)  # the same answers: the rated row stays current, its rating counted
    assert counts == {"added": 0, "filled": 0, "updated": 0, "superseded": 0, "unchanged": 2}
    assert [current(table(path)[1], f"q-00{i}")[0]["rating_base"] for i in range(2)] == [4, None]


def test_formula_like_reviewer_and_comment_text_stays_text_after_a_rerun(tmp_path):
    path = rated_workbook(tmp_path)

    def typed_as_text(ws, col):  # what a spreadsheet program stores when "=..." is typed as text
        for name, value in [("reviewer", "=ana"), ("comment", "=1+1")]:
            cell = ws.cell(row=2, column=col(name), value=value)
            cell.data_type = "s"
            cell.quotePrefix = True

    edit(path, typed_as_text)
    update(path, items(3, answer_base=lambda i: f"base {i}", answer_epoch1=lambda i: f"e1 {i}" + "!" * (i == 0)))
    ws = load_workbook(path)["math"]
    header = [c.value for c in ws[1]]
    carried = ws.cell(row=5, column=header.index("reviewer") + 1)  # the new current row of item 0
    kept = ws.cell(row=2, column=header.index("comment") + 1)
    assert ws.cell(row=5, column=1).value == "q-000"
    assert ws.cell(row=5, column=header.index("rating_base") + 1).value == 4
    assert (carried.value, carried.data_type) == ("=ana", "s")
    assert (kept.value, kept.data_type) == ("=1+1", "s")


# --- edits the merge cannot interpret ------------------------------------------------------------

def rename(name, to):
    def change(ws, col):
        cell = ws.cell(row=1, column=col(name))
        cell.value = to  # (ws.cell(..., value=None) would leave the cell as it is)
        return cell.coordinate
    return change


def cell_of(name, row, value):
    def change(ws, col):
        cell = ws.cell(row=row, column=col(name))
        cell.value = value
        return cell.coordinate
    return change


def delete_column(name):
    def change(ws, col):
        ws.delete_cols(col(name))
        return f"no column '{name}'"
    return change


EDITS = {
    "header renamed": (rename("rating_base", "rating base"), "header 'rating base' is not one this workbook"),
    "header renamed freely": (rename("rating_base", "Base score"), "no column 'rating_base'"),
    "header cleared": (rename("rating_epoch1", None), "header is empty"),
    "header duplicated": (rename("comment", "rating_base"), "header 'rating_base' is also in"),
    "column deleted": (delete_column("comment"), "restore it"),
    "rating typed as a formula": (cell_of("rating_base", 3, "=2+2"), "holds the formula =2+2"),
    "id made a duplicate": (cell_of("id", 3, "q-000"), "id 'q-000' is current in rows 2 and 3"),
    "id cleared on a rated row": (cell_of("id", 2, None), "no id on a row rated"),
    "status typed over": (cell_of("status", 2, "check later"), "status 'check later' is not one the merge writes"),
}


# a workbook from before the about sheet (no record of its columns) too, but for a deleted column
# other than a rating: only the record knows that it was there
CASES = [(what, old) for what in EDITS for old in (False, True) if not (old and what == "column deleted")]


@pytest.mark.parametrize("what, old_workbook", CASES, ids=[f"{w}{' (old workbook)' * o}" for w, o in CASES])
def test_an_edit_the_merge_cannot_interpret_stops_it_naming_the_cell(tmp_path, what, old_workbook):
    change, message = EDITS[what]
    path = rated_workbook(tmp_path)
    where = []
    edit(path, lambda ws, col: where.append(change(ws, col)))
    if old_workbook:  # as written before the about sheet existed
        wb = load_workbook(path)
        if "about" in wb.sheetnames:
            del wb["about"]
        wb.save(path)
    before = path.read_bytes()
    with pytest.raises(ConfigError) as err:  # a changed rated answer: the merge would touch the rows
        update(path, items(3, answer_base=lambda i: f"base {i}!", answer_epoch1=lambda i: f"e1 {i}"))
    text = str(err.value)
    assert "\n" not in text and str(path) in text and message in text, text
    if "no column" not in where[0]:
        assert f"math!{where[0]}" in text, text
    assert path.read_bytes() == before


# --- what the workbook rates (the about sheet) ------------------------------------------------------

META = {"model": "SmolLM2", "model_id": "/models/SmolLM2", "task": "math", "question_set": "=math.yaml"}


def test_meta_round_trips_in_a_hidden_sheet(tmp_path):
    from helpers.workbook import META_SHEET, read_workbook_meta

    written = write_rating_workbook(tmp_path / "w.xlsx", [{"prompt": "p"}], text_columns=["prompt"],
                                    rating_columns=["rating"], meta=META)
    assert read_workbook_meta(written) == META
    wb = load_workbook(written)
    about = wb[META_SHEET]
    assert about.sheet_state == "hidden" and wb.active.title == "ratings"
    assert [about["A1"].value, about["B1"].value] == ["key", "value"]
    assert about["B5"].value == "=math.yaml" and about["B5"].data_type == "s"  # text, never a formula

    path = tmp_path / "m-math.xlsx"
    update(path, items(2, answer_base="a"), meta=META)
    update(path, items(2, answer_base="a"), meta={**META, "question_set": "other.yaml"})
    assert read_workbook_meta(load_workbook(path)) == {**META, "question_set": "other.yaml"}
    assert read_workbook_meta(tmp_path / "m-math.xlsx") == {**META, "question_set": "other.yaml"}


@pytest.mark.parametrize("key", ["model_id", "task"])
def test_a_workbook_of_another_model_or_task_is_refused(tmp_path, key):
    path = tmp_path / "m-math.xlsx"
    update(path, items(2, answer_base="a"), meta=META)
    before = path.read_bytes()
    other = {**META, key: "other"}
    with pytest.raises(ConfigError) as err:
        update(path, items(2, answer_base="b"), meta=other)
    text = str(err.value)
    assert str(path) in text and f"'{META[key]}'" in text and "'other'" in text and "\n" not in text
    assert path.read_bytes() == before


def test_an_old_workbook_without_the_about_sheet_still_merges_and_gains_it(tmp_path):
    from helpers.workbook import META_SHEET, read_workbook_meta

    path = rated_workbook(tmp_path)
    wb = load_workbook(path)
    del wb[META_SHEET]
    wb.save(path)
    assert read_workbook_meta(path) == {}
    counts = update(path, items(4, answer_base=lambda i: f"base {i}", answer_epoch1=lambda i: f"e1 {i}"), meta=META)
    assert counts == {"added": 1, "filled": 0, "updated": 0, "superseded": 0, "unchanged": 3}
    assert read_workbook_meta(path) == META
    assert [r["rating_base"] for r in table(path)[1]] == [4, 2, None, None]


# --- merged cells ---------------------------------------------------------------------------------

def merge_cells(*names):
    """Merges rows 2-3 of the named columns (one range over them all)."""
    def change(ws, col):
        from openpyxl.utils import get_column_letter
        cols = sorted(col(n) for n in names)
        rng = f"{get_column_letter(cols[0])}2:{get_column_letter(cols[-1])}3"
        ws.merge_cells(rng)
        return rng
    return change


@pytest.mark.parametrize("names", [("status",), ("rating_base",), ("answer_epoch1",), ("reviewer", "comment")])
def test_merged_cells_in_a_column_the_merge_writes_or_reads_stop_it(tmp_path, names):
    path = rated_workbook(tmp_path)
    where = []
    edit(path, lambda ws, col: where.append(merge_cells(*names)(ws, col)))
    before = path.read_bytes()
    with pytest.raises(ConfigError) as err:  # item 1's rated base answer changed: its status would be written
        update(path, items(3, answer_base=lambda i: f"base {i}" + "!" * (i == 1), answer_epoch1=lambda i: f"e1 {i}"))
    text = str(err.value)
    assert "\n" not in text and f"{path}: math!{where[0]}" in text and "unmerge" in text, text
    assert f"'{names[0]}'" in text
    assert path.read_bytes() == before


def test_merged_comment_cells_do_not_stop_a_merge(tmp_path):
    path = rated_workbook(tmp_path)
    edit(path, lambda ws, col: merge_cells("comment")(ws, col))
    counts = update(path, items(3, answer_base=lambda i: f"base {i}" + "!" * (i == 1),
                                answer_epoch1=lambda i: f"e1 {i}"))
    assert counts == {"added": 0, "filled": 0, "updated": 0, "superseded": 1, "unchanged": 2}
    _, rows = table(path)
    assert rows[1]["status"].startswith("superseded") and current(rows, "q-001")[0]["answer_base"] == "base 1!"
