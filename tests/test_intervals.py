"""Named uncertainty in the addition, small_vs_large and benchmark studies (issue 17 item 2): every
score that is a mean over items gets `<key>_summary` (helpers.stats.score_summary: Wilson 95% for
0/1 scores, Student's t otherwise) in metrics.json, and systems answering the same items get a paired
comparison (exact McNemar, paired bootstrap). Scored on made-up answers; no model is loaded."""

import json
import math

import pytest
from scipy.stats import t as student_t
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from helpers.runs import write_metrics
from helpers.studies import study_config
from helpers.tasks import addition
from helpers.tasks import small_vs_large as svl
from helpers.tasks.addition import Problem


def wilson(count, n):
    return proportion_confint(count, n, alpha=0.05, method="wilson")


def exact_mcnemar_p(first, second):
    """statsmodels' exact McNemar on the 2x2 table of (first right?, second right?)."""
    table = [[sum(a and b for a, b in zip(first, second)), sum(a and not b for a, b in zip(first, second))],
             [sum(b and not a for a, b in zip(first, second)), sum(not a and not b for a, b in zip(first, second))]]
    return mcnemar(table, exact=True).pvalue


def written(tmp_path, metrics):
    """metrics as metrics.json holds them (keys become text, as the notebooks write them)."""
    return json.loads(write_metrics(tmp_path, metrics).read_text())


# ------------------------------------------------------------------------------------ addition

def addition_run(base_right, tuned_right, ks=(1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)):
    """Scores of made-up answers: each item's answer right (True), or wrong in the units (even items)
    or in the units and tens (odd items)."""
    problems = [Problem(10 ** (k - 1) + i, 10 ** (k - 1), k) for i, k in enumerate(ks)]

    def scores(right):
        return [addition.score(p, " " + (p.answer if ok else str(int(p.answer) + (11 if i % 2 else 1))))
                for i, (p, ok) in enumerate(zip(problems, right))]

    return problems, scores(base_right), scores(tuned_right)


def test_an_all_wrong_k_gets_a_wilson_interval_not_zero_plus_minus_zero():
    problems, base, _ = addition_run([False] * 12, [True] * 12)
    table = addition.per_k(problems, base)
    s = table[1]["exact_match_summary"]
    assert table[1]["exact_match"] == 0.0 and s["mean"] == 0.0 and s["n"] == 4
    assert s["ci_method"] == "wilson" and s["ci_high"] > 0  # the old 1.96 x stderr gave 0 ± 0
    assert (s["ci_low"], s["ci_high"]) == pytest.approx(wilson(0, 4))
    # a digit accuracy between 0 and 1 is a mean, not a proportion: Student's t
    digits = table[2]["digit_accuracy_summary"]
    values = table[2]["items"]["digit_accuracy"]
    mean, sd = sum(values) / 4, math.sqrt(sum((v - sum(values) / 4) ** 2 for v in values) / 3)
    assert digits["ci_method"] == "t"
    assert (digits["ci_low"], digits["ci_high"]) == pytest.approx(student_t.interval(0.95, 3, mean, sd / 2))


def test_addition_metrics_json_holds_summaries_and_the_paired_comparison(tmp_path):
    base_right = [True, True, False, False, True, False, False, False, False, False, False, True]
    tuned_right = [True, True, True, True, True, True, True, False, True, False, False, False]
    problems, base, tuned = addition_run(base_right, tuned_right)
    cfg = addition.AdditionConfig(model="smollm2-135m", train_digits_max=2, test_digits_max=3, n_train=10,
                                  n_test_per_k=4, max_new_tokens=8)
    metrics = {"train_digits": [1, 2], "test_digits": [1, 3],
               "base": addition.summarize(addition.per_k(problems, base), cfg),
               "finetuned": addition.summarize(addition.per_k(problems, tuned), cfg)}
    metrics["paired"] = addition.paired(metrics)
    metrics["in_range_exact_match_gain_points"] = 100 * (metrics["finetuned"]["in_range_exact_match"]
                                                         - metrics["base"]["in_range_exact_match"])
    m = written(tmp_path, metrics)

    in_range = m["base"]["in_range_exact_match_summary"]  # k = 1, 2: 8 items, 3 right
    assert m["base"]["in_range_exact_match"] == pytest.approx(3 / 8) and in_range["n"] == 8
    assert (in_range["ci_low"], in_range["ci_high"]) == pytest.approx(wilson(3, 8))
    assert m["finetuned"]["out_of_range_exact_match_summary"]["n"] == 4
    assert "exact_match_ci95" not in json.dumps(m) and "_ci95" not in json.dumps(m)
    for k in ("1", "2", "3"):
        assert set(m["base"]["per_k"][k]["exact_match_summary"]) == {"mean", "n", "stderr", "ci_low", "ci_high",
                                                                     "ci_method"}

    # fine-tuned − base on the same items, McNemar as statsmodels computes it on the same table
    cmp = m["paired"]["in_range"]["exact_match"]
    assert cmp["difference"] == pytest.approx(7 / 8 - 3 / 8) and cmp["n"] == 8
    assert cmp["mcnemar_p"] == pytest.approx(exact_mcnemar_p(tuned_right[:8], base_right[:8]))
    assert (cmp["first_only"], cmp["second_only"]) == (4, 0)  # items only fine-tuned / only base got right
    per_k3 = m["paired"]["per_k"]["3"]["exact_match"]
    assert per_k3["mcnemar_p"] == pytest.approx(exact_mcnemar_p(tuned_right[8:], base_right[8:]))
    assert per_k3["ci_low"] <= per_k3["difference"] <= per_k3["ci_high"]
    assert "mcnemar_p" not in m["paired"]["per_k"]["1"]["digit_accuracy"] or all(  # digit accuracy: not 0/1
        v in (0, 1) for v in m["base"]["per_k"]["1"]["items"]["digit_accuracy"])

    # the printed table and report: value, its interval, and the method, read back from metrics.json
    table = addition.comparison_table(m)
    low, high = wilson(1, 4)
    assert table.loc[3, "tuned exact %"] == f"25.0 [{100 * low:.1f}, {100 * high:.1f}] Wilson 95%"
    assert table.loc[3, "base exact %"] == table.loc[3, "tuned exact %"]
    assert "McNemar p=" in table.loc[1, "tuned − base exact (points)"]
    text = addition.report(m)
    low, high = wilson(3, 8)
    assert f"37.5 [{100 * low:.1f}, {100 * high:.1f}] Wilson 95% in range" in text
    assert "in-range exact-match gain (points): +50.0 [" in text and "paired bootstrap 95%" in text


# ------------------------------------------------------------------------------------ small_vs_large

def svl_cfg(**overrides):
    return study_config("small_vs_large", {"model": "smollm2-135m", "tasks": ["gsm8k", "beer"], "data_source": "local",
                                           **overrides})


GSM_TEST = [{"question": f"q{i}", "answer": f"... #### {i}"} for i in range(6)]


def gsm_responses(right):
    return [f"so\n#### {i}" if ok else "no idea" for i, ok in enumerate(right)]


def test_gsm8k_all_wrong_gets_a_wilson_interval_and_its_summary():
    scores, _ = svl.score_task(svl.get_task("gsm8k"), gsm_responses([False] * 6), GSM_TEST, svl_cfg(), [])
    for key in ("strict_match", "flexible_extract"):
        s = scores[f"{key}_summary"]
        assert scores[key] == 0.0 and s["ci_method"] == "wilson" and s["n"] == 6 and s["ci_high"] > 0
        assert (s["ci_low"], s["ci_high"]) == pytest.approx(wilson(0, 6))
        assert f"{key}_ci95" not in scores


def test_bertscore_means_get_a_t_interval(monkeypatch):
    f1 = [0.81, 0.86, 0.9, 0.84]
    monkeypatch.setattr(svl, "bertscore", lambda responses, refs, **kw: {"precision": f1, "recall": f1, "f1": f1})
    test = [{"instruction": "", "input": f"q{i}", "output": "a"} for i in range(4)]
    scores, _ = svl.score_task(svl.get_task("medqa"), ["x"] * 4, test, svl_cfg(), [])
    s = scores["bertscore_f1_summary"]
    mean = sum(f1) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in f1) / 3)
    assert s["ci_method"] == "t" and scores["bertscore_f1"] == pytest.approx(mean)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx(student_t.interval(0.95, 3, mean, sd / 2))


def test_small_vs_large_metrics_json_has_summaries_and_paired_configurations(tmp_path):
    right = {"base": [False, False, True, False, False, False], "base+icl": [True, True, True, True, False, True],
             "qlora": [True, False, True, False, True, False], "large (big)": [True] * 6}
    styles = ["IPA", "Stout", "IPA", "Porter"]
    beer_test = [{"review/text": f"review {i}", "beer/style": s} for i, s in enumerate(styles)]
    beer = {"base": ["IPA", "IPA", "IPA", "IPA"], "base+icl": ["IPA", "Stout", "IPA", "Porter"],
            "qlora": ["Stout", "Stout", "IPA", "Porter"], "large (big)": ["IPA", "Stout", "Stout", "Porter"]}
    labels = ["IPA", "Porter", "Stout"]
    prepared = {"gsm8k": {"test": GSM_TEST, "labels": [], "prompts": {"plain": ["p"] * 6, "demos": ["d"] * 6}},
                "beer": {"test": beer_test, "labels": labels, "prompts": {"plain": ["p"] * 4, "demos": ["d"] * 4}}}
    responses = {"gsm8k": {c: gsm_responses(r) for c, r in right.items()}, "beer": beer}
    results, records = svl.score_all(responses, prepared, svl_cfg())
    m = written(tmp_path, {"results": results, "model": "smollm2-135m", "n_pool": 6, "k_demos": 1,
                           "retriever": "all-minilm-l6-v2", "f1_average": "macro"})

    gsm = m["results"]["gsm8k"]
    assert gsm["base"]["flexible_extract"] == pytest.approx(1 / 6)
    assert (gsm["base"]["flexible_extract_summary"]["ci_low"],
            gsm["base"]["flexible_extract_summary"]["ci_high"]) == pytest.approx(wilson(1, 6))
    assert m["results"]["beer"]["qlora"]["accuracy_summary"]["mean"] == pytest.approx(0.75)
    # each configuration against the zero-shot base; the large model against each small configuration
    assert set(gsm["base+icl"]["paired"]) == {"base"} and set(gsm["large (big)"]["paired"]) == {
        "base", "base+icl", "qlora"}
    assert "paired" not in gsm["base"]
    cmp = gsm["base+icl"]["paired"]["base"]["flexible_extract"]
    assert cmp["difference"] == pytest.approx(5 / 6 - 1 / 6)
    assert cmp["mcnemar_p"] == pytest.approx(exact_mcnemar_p(right["base+icl"], right["base"]))
    big = gsm["large (big)"]["paired"]["qlora"]["strict_match"]
    assert big["mcnemar_p"] == pytest.approx(exact_mcnemar_p(right["large (big)"], right["qlora"]))
    acc = m["results"]["beer"]["large (big)"]["paired"]["base"]["accuracy"]
    correct = {c: [p == r["beer/style"] for p, r in zip(beer[c], beer_test)] for c in beer}
    assert acc["mcnemar_p"] == pytest.approx(exact_mcnemar_p(correct["large (big)"], correct["base"]))

    # the numeric table stays as it was (plots, xlsx); the printed one names every interval
    assert svl.results_table(m["results"], "macro").loc["base", "GSM8K flexible-extract"] == pytest.approx(100 / 6)
    text = svl.interval_table(m["results"], "macro")
    low, high = wilson(1, 6)
    assert text.loc["base", "GSM8K flexible-extract"] == f"16.7 [{100 * low:.1f}, {100 * high:.1f}] Wilson 95%"
    assert text.loc["base", "Beer F1 (macro)"].replace(".", "").isdigit()  # P/R/F1: no mean over items
    report = svl.report(m)
    assert "Wilson 95%" in report and "base+icl − base" in report and "McNemar p" in report


# ------------------------------------------------------------------------------------ benchmark

def test_benchmark_auto_score_gets_a_wilson_summary():
    from helpers.benchmark import stage_summary
    from helpers.questions import load_question_set

    questions = load_question_set("math")[:5]
    scores, summary = stage_summary("math", questions, ["I do not know."] * 5)
    s = summary["auto_score_summary"]
    assert scores == [0.0] * 5 and summary["auto_score"] == 0.0 and "auto_score_ci95" not in summary
    assert s["ci_method"] == "wilson" and s["ci_high"] > 0
    assert (s["ci_low"], s["ci_high"]) == pytest.approx(wilson(0, 5))
    right = [f"The answer is {q.answer}." for q in questions[:3]] + ["no"] * 2
    _, summary = stage_summary("math", questions, right)
    assert summary["auto_score"] == pytest.approx(0.6)
    assert (summary["auto_score_summary"]["ci_low"], summary["auto_score_summary"]["ci_high"]) == pytest.approx(
        wilson(3, 5))
    _, bio = stage_summary("bio", load_question_set("bio")[:2], ["a", "b"])
    assert "auto_score" not in bio and "auto_score_summary" not in bio  # rated by people only


def test_mmlu_bars_show_the_wilson_interval_not_zero():
    """An all-wrong cell used to get a 0 ± 0 bar; now its upper error is the Wilson bound, and an old
    run's half-width still draws a symmetric bar."""
    from statsmodels.stats.proportion import proportion_confint

    from helpers.plots import _error_bar
    from helpers.stats import score_summary

    below, above = _error_bar({"accuracy": 0.0, "accuracy_summary": score_summary([0.0] * 10)})
    assert below == 0.0 and above == pytest.approx(proportion_confint(0, 10, method="wilson")[1])
    assert _error_bar({"accuracy": 0.5, "ci95": 0.1}) == (0.1, 0.1)
    assert _error_bar(None) == (0.0, 0.0)


def test_benchmark_report_names_the_interval():
    from helpers.stats import score_summary
    from helpers.tasks.instruct import benchmark_report

    stage = {"empty_answers": 0, "mean_answer_chars": 10.0, "auto_score": 0.0,
             "auto_score_summary": score_summary([0.0, 0.0, 0.0])}
    text = benchmark_report({"task": "math", "model": "m", "n_questions": 3, "stages": {"base": stage},
                             "files": {"workbook": "w.xlsx"}, "workbook_update": ""})
    assert "automatic score 0.0 [0.0, 56.1] Wilson 95%" in text
