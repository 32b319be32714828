from openpyxl import load_workbook

from helpers.workbook import write_rating_workbook

ROWS = [
    {"prompt": "=1+1", "reference": "+44 20", "answer": "-5 is the answer", "score": 0.0},
    {"prompt": "@SUM(A1:A2)", "reference": "2", "answer": "plain text", "score": 1.0},
    {"prompt": "What is 2+2?", "reference": "4", "answer": "=HYPERLINK(\"http://x\")", "score": 0.5},
]


def write(tmp_path):
    return write_rating_workbook(tmp_path / "r.xlsx", ROWS, text_columns=["prompt", "reference", "answer"],
                                 score_columns=["score"], rating_columns=["rating_a", "rating_b"], title="math")


def test_formula_like_text_is_stored_as_text(tmp_path):
    ws = load_workbook(write(tmp_path))["math"]
    header = [c.value for c in ws[1]]
    assert header == ["id", "prompt", "reference", "answer", "score", "rating_a", "rating_b", "reviewer"]
    cells = {(r, c): ws.cell(row=r, column=c) for r in range(2, 5) for c in range(2, 5)}
    for (r, c), cell in cells.items():
        expected = ROWS[r - 2][header[c - 1]]
        assert cell.value == expected
        assert cell.data_type == "s", f"{expected!r} was stored as {cell.data_type}"
    assert ws.cell(row=2, column=2).quotePrefix
    assert [ws.cell(row=r, column=1).value for r in range(2, 5)] == [1, 2, 3]
    assert ws.cell(row=3, column=5).value == 1.0


def test_rating_columns_accept_whole_numbers_1_to_5_only(tmp_path):
    ws = load_workbook(write(tmp_path))["math"]
    rules = ws.data_validations.dataValidation
    covered = {str(r.sqref): r for r in rules}
    assert set(covered) == {"F2:F4", "G2:G4"}
    for rule in rules:
        assert (rule.type, rule.operator, rule.formula1, rule.formula2) == ("whole", "between", "1", "5")
        assert rule.allow_blank and rule.showErrorMessage
    assert all(ws.cell(row=r, column=6).value is None for r in range(2, 5))  # left for reviewers


def test_layout_frozen_header_wrapped_text_widths_and_rubric(tmp_path):
    wb = load_workbook(write(tmp_path))
    ws = wb["math"]
    assert ws.freeze_panes == "B2"
    assert ws.cell(row=2, column=2).alignment.wrap_text
    assert ws.column_dimensions["B"].width > ws.column_dimensions["E"].width
    assert ws.cell(row=1, column=1).font.bold
    rubric = wb["instructions"]
    assert [rubric.cell(row=r, column=1).value for r in range(3, 8)] == ["5", "4", "3", "2", "1"]


def test_a_save_that_fails_midway_leaves_the_old_workbook(tmp_path, monkeypatch):
    from openpyxl import Workbook

    path = write(tmp_path)
    before = path.read_bytes()

    def broken_save(self, filename):  # a crash after part of the file was written
        with open(filename, "wb") as f:
            f.write(b"PK half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(Workbook, "save", broken_save)
    try:
        write(tmp_path)
    except OSError:
        pass
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp.xlsx"))
