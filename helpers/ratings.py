"""Compile the rating workbooks of benchmark_data/ into one summary.

A workbook is <model>-<task>.xlsx (sheet = task) as benchmark.ipynb writes it; a second reviewer
works on a copy named <model>-<task>--<reviewer>.xlsx. Only current rows count (superseded rows
keep their ratings in the file but rated an answer that has since changed). An empty rating cell
is missing, never zero.

    >>> ratings = read_ratings("benchmark_data")      # one row per rating given
    >>> summary = summarize(ratings)                  # model x task x stage: n, mean, 95% CI, auto score
    >>> agree = agreement(ratings)                    # items rated by two or more reviewers
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
from openpyxl import load_workbook

from helpers.metrics import mean_ci
from helpers.plots import plot_rating_bars

TASK_SHEETS = ("math", "bio")


def _is_current(status) -> bool:
    return status is None or str(status).startswith(("current", "updated"))


def read_ratings(folder) -> pd.DataFrame:
    """Long table: model, task, stage, item, reviewer, rating (NaN if unrated), auto_score, file."""
    records = []
    for path in sorted(Path(folder).glob("*.xlsx")):
        if path.name.startswith(("~$", ".")) or ".tmp." in path.name:
            continue
        wb = load_workbook(path, read_only=True, data_only=True)
        for task in [s for s in wb.sheetnames if s in TASK_SHEETS]:
            stem, _, copy_of = path.stem.partition("--")
            model = stem.removesuffix(f"-{task}")
            rows = wb[task].iter_rows(values_only=True)
            header = list(next(rows))
            stages = [h.removeprefix("rating_") for h in header if isinstance(h, str) and h.startswith("rating_")]
            for values in rows:
                row = dict(zip(header, values))
                if row.get("id") is None or not _is_current(row.get("status")):
                    continue
                for stage in stages:
                    rating = row.get(f"rating_{stage}")
                    records.append({
                        "model": model, "task": task, "stage": stage, "item": str(row["id"]),
                        "reviewer": row.get("reviewer") or copy_of or "unnamed",
                        "rating": float(rating) if isinstance(rating, (int, float)) else float("nan"),
                        "auto_score": row.get(f"score_{stage}"), "file": path.name,
                    })
        wb.close()
    columns = ["model", "task", "stage", "item", "reviewer", "rating", "auto_score", "file"]
    return pd.DataFrame.from_records(records, columns=columns)


def summarize(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per model x task x stage: items, ratings given, missing, mean rating ± 95% CI, reviewers,
    mean automatic score (over items, not ratings)."""
    rows = []
    for (model, task, stage), group in ratings.groupby(["model", "task", "stage"], sort=True):
        given = group["rating"].dropna()
        mean, half = mean_ci(given.tolist())
        auto = group.drop_duplicates("item")["auto_score"].dropna()
        rows.append({"model": model, "task": task, "stage": stage, "items": group["item"].nunique(),
                     "ratings": len(given), "missing": int(group["rating"].isna().sum()),
                     "mean_rating": mean, "ci95": half, "ci_low": mean - half, "ci_high": mean + half,
                     "reviewers": group.loc[group["rating"].notna(), "reviewer"].nunique(),
                     "auto_score": auto.mean() if len(auto) else float("nan")})
    return pd.DataFrame(rows)


def agreement(ratings: pd.DataFrame) -> pd.DataFrame:
    """Between reviewers, per model x task x stage, over items with two or more ratings: pairs
    compared, exact agreement, agreement within one point, mean absolute difference."""
    rows = []
    given = ratings.dropna(subset=["rating"])
    for key, group in given.groupby(["model", "task", "stage"], sort=True):
        diffs = []
        for _, item in group.groupby("item"):
            scores = item.drop_duplicates("reviewer")["rating"].tolist()
            diffs += [abs(a - b) for a, b in itertools.combinations(scores, 2)]
        if diffs:
            rows.append({**dict(zip(["model", "task", "stage"], key)), "pairs": len(diffs),
                         "exact": sum(d == 0 for d in diffs) / len(diffs),
                         "within_1": sum(d <= 1 for d in diffs) / len(diffs),
                         "mean_abs_diff": sum(diffs) / len(diffs)})
    return pd.DataFrame(rows, columns=["model", "task", "stage", "pairs", "exact", "within_1", "mean_abs_diff"])


def write_summary(summary: pd.DataFrame, agree: pd.DataFrame, out_dir) -> dict:
    """ratings_summary.xlsx (sheets summary, agreement), ratings_summary.csv, ratings_summary.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"workbook": out / "ratings_summary.xlsx", "csv": out / "ratings_summary.csv",
             "figure": out / "ratings_summary.png"}
    with pd.ExcelWriter(files["workbook"]) as writer:
        summary.to_excel(writer, sheet_name="summary", index=False)
        agree.to_excel(writer, sheet_name="agreement", index=False)
    summary.to_csv(files["csv"], index=False)
    if len(summary) and summary["ratings"].sum():
        plot_rating_bars(summary, files["figure"])
    else:
        files.pop("figure")
    return {k: str(v) for k, v in files.items()}
