"""Result tables as a workbook, markdown and csv side by side.

    >>> files = write_table(df, run_dir / "results")   # results.xlsx, results.md, results.csv
"""

from __future__ import annotations

import math
from pathlib import Path


def _cell(value, digits: int) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(df, digits: int = 3) -> str:
    """A pipe table of `df` (index as the first column), floats rounded to `digits`."""
    header = [df.index.name or "", *map(str, df.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in df.iterrows():
        lines.append("| " + " | ".join([_cell(index, digits), *(_cell(v, digits) for v in row)]) + " |")
    return "\n".join(lines) + "\n"


def write_table(df, stem, *, digits: int = 3, sheet: str = "results") -> dict[str, str]:
    """df -> <stem>.xlsx, <stem>.md and <stem>.csv; returns their paths by kind."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = {kind: stem.with_suffix("." + kind) for kind in ("xlsx", "md", "csv")}
    df.to_excel(paths["xlsx"], sheet_name=sheet[:31])
    paths["md"].write_text(markdown_table(df, digits))
    df.to_csv(paths["csv"])
    return {kind: str(path) for kind, path in paths.items()}
