"""Rating workbooks for human reviewers (openpyxl).

One row per item: the given columns (prompt, reference, answers, automatic scores) and empty
rating columns that accept only whole numbers 1-5. Text that Excel would read as a formula
(starting with =, +, - or @) is stored as text.

    >>> write_rating_workbook("out.xlsx", rows, text_columns=["prompt", "reference", "answer_base"],
    ...                       rating_columns=["rating_base"])
"""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

FORMULA_PREFIXES = ("=", "+", "-", "@")
RUBRIC = [
    ("5", "Correct and complete; nothing to fix."),
    ("4", "Correct, with a minor slip or omission that does not change the answer."),
    ("3", "Partly correct: the right idea with a real error, or an incomplete answer."),
    ("2", "Mostly wrong, but contains something relevant."),
    ("1", "Wrong, irrelevant, empty or unreadable."),
]
_WIDE = 60
_NARROW = 14


def _put(cell, value) -> None:
    cell.value = value
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        cell.data_type = "s"  # a string, not a formula, whatever it looks like
        cell.quotePrefix = True  # and Excel keeps it a string when the cell is edited


def write_rating_workbook(path, rows: list[dict], *, text_columns: list[str], rating_columns: list[str],
                          score_columns: list[str] = (), reviewer_column: str | None = "reviewer",
                          title: str = "ratings", instructions: str = "") -> Path:
    """Write `rows` to `path` (an .xlsx) with validated rating columns and an instructions sheet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["id", *text_columns, *score_columns, *rating_columns] + ([reviewer_column] if reviewer_column else [])
    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    for j, name in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=j, value=name)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
    for i, row in enumerate(rows, start=2):
        for j, name in enumerate(columns, start=1):
            value = i - 1 if name == "id" and "id" not in row else row.get(name)
            cell = ws.cell(row=i, column=j)
            _put(cell, value)
            if name in text_columns:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    last = max(len(rows) + 1, 2)
    for name in rating_columns:
        letter = get_column_letter(columns.index(name) + 1)
        rule = DataValidation(type="whole", operator="between", formula1="1", formula2="5", allow_blank=True,
                              showErrorMessage=True, errorTitle="Rating", error="Enter a whole number from 1 to 5.")
        rule.add(f"{letter}2:{letter}{last}")
        ws.add_data_validation(rule)
    for j, name in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(j)].width = _WIDE if name in text_columns else _NARROW
    ws.freeze_panes = "B2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{last}"

    info = wb.create_sheet("instructions")
    info.column_dimensions["A"].width = 10
    info.column_dimensions["B"].width = 90
    info["A1"] = "How to rate"
    info["A1"].font = Font(bold=True)
    _put(info["B1"], instructions or "Score each answer in its rating column, 1 (worst) to 5 (best). Leave a "
                                     "cell empty if you did not rate it: empty means missing, never zero.")
    info["B1"].alignment = Alignment(wrap_text=True)
    for r, (score, meaning) in enumerate(RUBRIC, start=3):
        info.cell(row=r, column=1, value=score)
        info.cell(row=r, column=2, value=meaning)
    tmp = path.with_name(path.name + ".tmp.xlsx")
    wb.save(tmp)
    tmp.replace(path)  # never a half-written workbook in place of a good one
    return path
