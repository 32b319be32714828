"""Rating workbooks for human reviewers (openpyxl).

One row per item: the given columns (prompt, reference, answers, automatic scores) and empty
rating columns that accept only whole numbers 1-5. Text that Excel would read as a formula
(starting with =, +, - or @) is stored as text; control characters that a worksheet cannot hold
(a model can generate them) become U+FFFD, so one odd answer never stops a workbook from being written.

    >>> write_rating_workbook("out.xlsx", rows, text_columns=["prompt", "reference", "answer_base"],
    ...                       rating_columns=["rating_base"])

`update_rating_workbook` re-runs onto a workbook that reviewers have already filled: it never
changes or removes a rating, reviewer or comment cell (see its docstring for the rules).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
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


def excel_safe(row: dict) -> dict:
    """`row` with the control characters a worksheet cannot hold replaced by U+FFFD."""
    return {k: ILLEGAL_CHARACTERS_RE.sub("\ufffd", v) if isinstance(v, str) else v for k, v in row.items()}


def _put(cell, value) -> None:
    cell.value = value
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        cell.data_type = "s"  # a string, not a formula, whatever it looks like
        cell.quotePrefix = True  # and Excel keeps it a string when the cell is edited


def _save_atomically(wb, path: Path) -> None:
    """Save next to `path`, then rename: a crash mid-save never leaves a half-written workbook in
    place of a good one (a reviewer's scores live in it)."""
    tmp = path.with_name(path.name + ".tmp.xlsx")
    try:
        wb.save(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _rating_rule(cells: str) -> DataValidation:
    rule = DataValidation(type="whole", operator="between", formula1="1", formula2="5", allow_blank=True,
                          showErrorMessage=True, errorTitle="Rating", error="Enter a whole number from 1 to 5.")
    rule.add(cells)
    return rule


def write_rating_workbook(path, rows: list[dict], *, text_columns: list[str], rating_columns: list[str],
                          score_columns: list[str] = (), reviewer_column: str | None = "reviewer",
                          extra_columns: list[str] = (), title: str = "ratings", instructions: str = "") -> Path:
    """Write `rows` to `path` (an .xlsx) with validated rating columns and an instructions sheet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [excel_safe(row) for row in rows]
    columns = ["id", *text_columns, *score_columns, *rating_columns] + ([reviewer_column] if reviewer_column else [])
    columns += list(extra_columns)
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
        ws.add_data_validation(_rating_rule(f"{letter}2:{letter}{last}"))
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
    _save_atomically(wb, path)
    return path


STATUS = "status"
CURRENT = "current"


def update_rating_workbook(path, rows: list[dict], *, answers: dict[str, str], text_columns: list[str],
                           score_columns: list[str] = (), title: str = "ratings", instructions: str = "") -> dict:
    """Merge `rows` (each with an "id") into the workbook at `path`, keeping every human entry.

    `answers` maps each answer column to its rating column ({"answer_epoch1": "rating_epoch1", ...}).
    Each item is matched by id with its current row (status "current…" or "updated…"):
      - new id: a new row;
      - an answer cell that was empty (a stage benchmarked for the first time): filled in place;
      - an answer that changed while its rating is empty: replaced in place, flagged in `status`;
      - an answer that changed while its rating is filled: that row stays as it was, marked
        superseded; a new current row gets the new answers, and the ratings of the answers that did
        not change are carried over (with the reviewer's name).
    Rating, reviewer and comment cells are never changed or removed. The file is edited in place
    (other sheets, formatting, added columns survive) and replaced atomically.
    Returns counts: {"added", "filled", "updated", "superseded", "unchanged"}.
    """
    path = Path(path)
    rows = [excel_safe(row) for row in rows]  # before comparing with what the workbook holds
    counts = dict.fromkeys(("added", "filled", "updated", "superseded", "unchanged"), 0)
    if not path.exists():
        write_rating_workbook(path, [{**row, STATUS: CURRENT} for row in rows],
                              text_columns=[*text_columns, *answers], score_columns=[*score_columns],
                              rating_columns=list(answers.values()), extra_columns=["comment", STATUS],
                              title=title, instructions=instructions)
        counts["added"] = len(rows)
        return counts

    wb = load_workbook(path)
    if title not in wb.sheetnames:
        raise ValueError(f"{path} has no sheet '{title}' (it has {', '.join(wb.sheetnames)}): "
                         "rename the sheet back, or move the file away to start a new workbook")
    ws = wb[title]
    col = {c.value: c.column for c in ws[1] if c.value}
    for name in ["id", *text_columns, *answers, *score_columns, *answers.values(), "reviewer", "comment", STATUS]:
        if name not in col:  # e.g. a stage benchmarked for the first time
            col[name] = ws.max_column + 1
            ws.cell(row=1, column=col[name], value=name).font = Font(bold=True)
            ws.column_dimensions[get_column_letter(col[name])].width = _WIDE if name in answers else _NARROW

    def get(r, name):
        return ws.cell(row=r, column=col[name]).value

    def blank(v):
        return v is None or (isinstance(v, str) and not v.strip())

    def put_row(r, row, status):
        for name in ["id", *text_columns, *score_columns, *answers]:
            if name in row:
                cell = ws.cell(row=r, column=col[name])
                _put(cell, row[name])
                if name != "id" and name not in score_columns:
                    cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.cell(row=r, column=col[STATUS], value=status)

    current = {str(get(r, "id")): r for r in range(2, ws.max_row + 1)
               if get(r, "id") is not None and str(get(r, STATUS) or CURRENT).startswith((CURRENT, "updated"))}
    stamp = datetime.date.today().isoformat()
    for row in rows:
        r = current.get(str(row["id"]))
        if r is None:
            put_row(ws.max_row + 1, row, CURRENT)
            counts["added"] += 1
            continue
        changed = [a for a in answers if a in row and not blank(get(r, a)) and get(r, a) != row[a]]
        filled = [a for a in answers if a in row and blank(get(r, a)) and not blank(row[a])]
        rated = [a for a in changed if not blank(get(r, answers[a]))]
        if rated:
            new = ws.max_row + 1
            put_row(new, {**{a: get(r, a) for a in answers}, **row}, f"{CURRENT} (replaces row {r})")
            kept = [a for a in answers if a not in changed and not blank(get(r, answers[a]))]
            for a in kept:
                ws.cell(row=new, column=col[answers[a]], value=get(r, answers[a]))
            if kept:
                ws.cell(row=new, column=col["reviewer"], value=get(r, "reviewer"))
            ws.cell(row=r, column=col[STATUS], value=f"superseded {stamp} by row {new}: {', '.join(rated)} changed")
            current[str(row["id"])] = new
            counts["superseded"] += 1
        elif changed or filled:
            put_row(r, row, f"updated {stamp}: {', '.join(changed)} changed" if changed else get(r, STATUS) or CURRENT)
            counts["updated" if changed else "filled"] += 1
        else:
            counts["unchanged"] += 1

    last = ws.max_row
    rating_letters = {get_column_letter(col[name]) for name in answers.values()}
    for rule in list(ws.data_validations.dataValidation):  # stretch the 1-5 rules over all rows
        letters = {str(rng).split(":")[0].rstrip("0123456789") for rng in rule.sqref.ranges}
        if letters <= rating_letters:
            ws.data_validations.dataValidation.remove(rule)
    for letter in sorted(rating_letters):
        ws.add_data_validation(_rating_rule(f"{letter}2:{letter}{last}"))
    ws.auto_filter.ref = f"A1:{get_column_letter(ws.max_column)}{last}"
    _save_atomically(wb, path)
    return counts
