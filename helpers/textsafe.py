"""The one place where text the project writes into a spreadsheet cell or a CSV field is made inert.

Spreadsheet programs run a cell that starts with =, +, -, @ (and, when opened from CSV, also with a
tab or carriage return) as a formula (OWASP, "CSV Injection"). Model answers, model and stage names
taken from file names, and reviewer cells carried over from an edited workbook can all start so.

    >>> csv_field("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> csv_field(3.5)
    3.5
    >>> put_cell(ws["A1"], "=1+1")   # stored as the text "=1+1", never as a formula

In a workbook the text is kept as it is (a string cell with Excel's quote prefix), so a reviewer sees
exactly what the model wrote; in a CSV, which has no cell types, a leading apostrophe is added.
Control characters a worksheet cannot hold become U+FFFD.
"""

from __future__ import annotations

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(value) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES)


def sheet_text(value):
    """`value` with the control characters a worksheet cannot hold replaced by U+FFFD."""
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value) if isinstance(value, str) else value


def put_cell(cell, value) -> None:
    """Write `value` into an openpyxl cell; text is always text, never a formula."""
    value = sheet_text(value)
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"  # a string, not a formula, whatever it looks like
        if looks_like_formula(value):
            cell.quotePrefix = True  # and Excel keeps it a string when the cell is edited


def csv_field(value):
    """A CSV field that no spreadsheet program will run as a formula."""
    if looks_like_formula(value):
        return "'" + value
    return value


def csv_safe_frame(frame):
    """A copy of a pandas DataFrame (index and column names included) with every text field neutralised."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    def text(values) -> bool:  # pandas 3 keeps text as `str`, older pandas as `object`
        return not (is_numeric_dtype(values.dtype) or is_bool_dtype(values.dtype))

    out = frame.copy()
    for column in out.columns:
        if text(out[column]):
            out[column] = out[column].astype(object).map(csv_field)
    out.columns = [csv_field(c) for c in out.columns]
    if text(out.index):
        out.index = out.index.astype(object).map(csv_field)
    return out
