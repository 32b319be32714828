"""Compiling rated workbooks: means with intervals, missing is not zero, superseded rows left out,
agreement between two reviewers' copies."""

import math
import shutil
import statistics

import pandas as pd
import pytest
from openpyxl import load_workbook

from helpers.ratings import agreement, read_ratings, summarize, write_summary
from helpers.workbook import update_rating_workbook

ANSWERS = {"answer_base": "rating_base", "answer_epoch1": "rating_epoch1"}


def make_book(path, n, scores=None):
    rows = [{"id": f"m-{i}", "question": f"q{i}", "reference": "1", "answer_base": f"b{i}", "answer_epoch1": f"e{i}",
             **({"score_base": scores[i], "score_epoch1": 1.0} if scores else {})} for i in range(n)]
    update_rating_workbook(path, rows, answers=ANSWERS, text_columns=["question", "reference"],
                           score_columns=["score_base", "score_epoch1"] if scores else [],
                           title="math" if scores else "bio")


def rate(path, sheet, values, reviewer):
    wb = load_workbook(path)
    ws = wb[sheet]
    header = [c.value for c in ws[1]]
    for (i, stage), value in values.items():
        ws.cell(row=i + 2, column=header.index(f"rating_{stage}") + 1, value=value)
        ws.cell(row=i + 2, column=header.index("reviewer") + 1, value=reviewer)
    wb.save(path)


@pytest.fixture
def books(tmp_path):
    make_book(tmp_path / "llama-3.1-8b-math.xlsx", 4, scores=[1.0, 0.0, 1.0, 1.0])
    rate(tmp_path / "llama-3.1-8b-math.xlsx", "math",
         {(0, "base"): 2, (1, "base"): 3, (2, "base"): 4, (0, "epoch1"): 5, (1, "epoch1"): 4}, "ana")
    # a second reviewer's copy, rating base items 0 and 1 again
    shutil.copy(tmp_path / "llama-3.1-8b-math.xlsx", tmp_path / "llama-3.1-8b-math--ben.xlsx")
    wb = load_workbook(tmp_path / "llama-3.1-8b-math--ben.xlsx")
    ws = wb["math"]
    header = [c.value for c in ws[1]]
    for r in range(2, 6):
        for name in ("rating_base", "rating_epoch1", "reviewer"):
            ws.cell(row=r, column=header.index(name) + 1).value = None
    wb.save(tmp_path / "llama-3.1-8b-math--ben.xlsx")
    rate(tmp_path / "llama-3.1-8b-math--ben.xlsx", "math", {(0, "base"): 2, (1, "base"): 5}, "ben")
    make_book(tmp_path / "qwen-2-7b-bio.xlsx", 3)
    rate(tmp_path / "qwen-2-7b-bio.xlsx", "bio", {(0, "base"): 1, (1, "base"): 2}, "ana")
    return tmp_path


def test_summary_means_counts_and_missing(books):
    ratings = read_ratings(books)
    summary = summarize(ratings).set_index(["model", "task", "stage"])
    base = summary.loc[("llama-3.1-8b", "math", "base")]
    assert (base["items"], base["ratings"], base["missing"], base["reviewers"]) == (4, 5, 3, 2)
    # over the 3 rated items' means (m-0: 2 and 2, m-1: 3 and 5, m-2: 4), not the 5 ratings as if independent;
    # a t-interval (2 degrees of freedom, t = 4.302653), not 1.96 standard errors
    assert base["rated_items"] == 3
    half = 4.302653 * statistics.stdev([2, 4, 4]) / math.sqrt(3)
    assert base["mean_rating"] == pytest.approx(10 / 3) and base["ci95"] == pytest.approx(half, rel=1e-5)
    assert (base["ci_low"], base["ci_high"]) == pytest.approx((10 / 3 - half, 10 / 3 + half), rel=1e-5)
    assert base["auto_score"] == pytest.approx(0.75)        # over items, not over ratings
    epoch1 = summary.loc[("llama-3.1-8b", "math", "epoch1")]
    assert (epoch1["ratings"], epoch1["mean_rating"]) == (2, 4.5)  # unrated cells are missing, not 0
    bio = summary.loc[("qwen-2-7b", "bio", "epoch1")]
    assert bio["ratings"] == 0 and math.isnan(bio["mean_rating"]) and math.isnan(bio["auto_score"])


def test_agreement_between_reviewers(books):
    agree = agreement(read_ratings(books))
    assert len(agree) == 1
    row = agree.iloc[0]
    assert (row["stage"], row["pairs"], row["exact"]) == ("base", 2, 0.5)
    assert (row["within_1"], row["mean_abs_diff"]) == (0.5, 1.0)
    ratings = read_ratings(books).query("model == 'llama-3.1-8b' and stage == 'base'").dropna(subset=["rating"])
    wide = ratings.pivot(index="item", columns="reviewer", values="rating").dropna()
    from sklearn.metrics import cohen_kappa_score
    expected = cohen_kappa_score(wide.iloc[:, 0], wide.iloc[:, 1], labels=[1, 2, 3, 4, 5], weights="quadratic")
    assert row["kappa_quadratic"] == pytest.approx(expected)


def test_superseded_rows_are_left_out(books):
    path = books / "qwen-2-7b-bio.xlsx"
    rows = [{"id": "m-0", "question": "q0", "reference": "1", "answer_base": "changed", "answer_epoch1": "e0"}]
    assert update_rating_workbook(path, rows, answers=ANSWERS, text_columns=["question", "reference"],
                                  title="bio")["superseded"] == 1
    bio = read_ratings(books).query("model == 'qwen-2-7b' and stage == 'base'")
    assert bio["item"].tolist() == ["m-1", "m-2", "m-0"] and bio["rating"].tolist()[:1] == [2.0]
    assert math.isnan(bio["rating"].tolist()[2])  # the new answer is not rated yet; the old 1 is kept, not counted


def test_written_outputs(books, tmp_path):
    ratings = read_ratings(books)
    files = write_summary(summarize(ratings), agreement(ratings), tmp_path / "summary")
    csv = pd.read_csv(files["csv"])
    assert len(csv) == 4 and set(csv["stage"]) == {"base", "epoch1"}
    assert pd.read_excel(files["workbook"], sheet_name="agreement")["pairs"].tolist() == [2]
    with open(files["figure"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_interval_is_over_items_and_a_second_reviewer_does_not_double_n(tmp_path):
    # the audit's case: bob in the main workbook, alice in her copy, four items; 8 ratings, 4 items
    from helpers.stats import t_interval

    make_book(tmp_path / "m-math.xlsx", 4, scores=[1.0] * 4)
    rate(tmp_path / "m-math.xlsx", "math", {(i, "base"): v for i, v in enumerate([5, 4, 3, 4])}, "bob")
    shutil.copy(tmp_path / "m-math.xlsx", tmp_path / "m-math--alice.xlsx")
    rate(tmp_path / "m-math--alice.xlsx", "math", {(i, "base"): v for i, v in enumerate([4, 4, 2, 5])}, "alice")
    base = summarize(read_ratings(tmp_path, [])).set_index("stage").loc["base"]
    assert (base["items"], base["ratings"], base["rated_items"], base["reviewers"]) == (4, 8, 4, 2)
    mean, low, high = t_interval([4.5, 4.0, 2.5, 4.5])  # 3 degrees of freedom, not 7
    assert (base["mean_rating"], base["ci_low"], base["ci_high"]) == pytest.approx((mean, low, high))
    assert base["ci95"] == pytest.approx(3.182446 * statistics.stdev([4.5, 4, 2.5, 4.5]) / math.sqrt(4), rel=1e-5)


def test_summarize_counts_a_repeated_rating_once_and_says_so(books):
    ratings = read_ratings(books, [])
    once = summarize(ratings)
    with pytest.warns(UserWarning) as said:
        twice = summarize(pd.concat([ratings, ratings], ignore_index=True))
    assert sorted(str(w.message).split("'")[1] for w in said) == ["ana", "ana", "ben"]  # a note per file and reviewer
    assert all("counted once" in str(w.message) for w in said)
    pd.testing.assert_frame_equal(once.drop(columns=["excluded", "missing"]),
                                  twice.drop(columns=["excluded", "missing"]))
