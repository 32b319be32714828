"""The one place text becomes a safe spreadsheet cell or CSV field (helpers/textsafe.py)."""

import pandas as pd
from openpyxl import Workbook

from helpers.textsafe import csv_field, csv_safe_frame, put_cell


def test_csv_fields_that_a_spreadsheet_would_run_get_an_apostrophe():
    assert [csv_field(v) for v in ["=1+1", "+A1", "-2+3", "@SUM(A1)", "\tx", "plain", 3]] == \
        ["'=1+1", "'+A1", "'-2+3", "'@SUM(A1)", "'\tx", "plain", 3]


def test_frame_text_columns_header_and_index_are_neutralised_numbers_kept():
    frame = pd.DataFrame({"=model": ["=cmd|calc", "ok"], "mean": [1.5, 2.0]}, index=["@idx", "j"])
    out = csv_safe_frame(frame)
    assert list(out.columns) == ["'=model", "mean"]
    assert list(out["'=model"]) == ["'=cmd|calc", "ok"] and list(out.index) == ["'@idx", "j"]
    assert out["mean"].tolist() == [1.5, 2.0]


def test_workbook_cells_stay_text():
    ws = Workbook().active
    put_cell(ws["A1"], "=HYPERLINK(\"http://x\")")
    put_cell(ws["A2"], "bell\x07")
    put_cell(ws["A3"], 4)
    assert ws["A1"].data_type == "s" and ws["A1"].quotePrefix
    assert ws["A2"].value == "bell\ufffd" and ws["A3"].value == 4
