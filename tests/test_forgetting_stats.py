"""The forgetting study's statistics, its MMLU subject and its notebook text, on handmade per-item
scores (no model is loaded): lm-eval's stderr beside a Wilson 95% interval, FR/ΔA/ΔK with the study's ±
and a paired interval, base vs fine-tuned by McNemar, the GSM8K numeric score."""

import json
import math
import sys
import types

import pytest
from scipy.stats import binomtest

from helpers.config import REPO_ROOT
from helpers.published import compare
from helpers.studies import study_config
from helpers.tasks import forgetting


def paired(both: int, first_only: int, second_only: int, neither: int) -> tuple[list[int], list[int]]:
    """Two 0/1 score lists over the same items with the given agreement counts."""
    first = [1] * both + [1] * first_only + [0] * second_only + [0] * neither
    second = [1] * both + [0] * first_only + [1] * second_only + [0] * neither
    return first, second


# The study's Table 2 counts: MMLU CS 47/100 base vs 34/100 fine-tuned, GSM8K flexible 442/1319 vs
# 49/1319 (how they pair up is ours: the paper gives no per-item results)
PAIRS = {"mmlu_acc": paired(30, 17, 4, 49), "gsm8k_flexible": paired(40, 402, 9, 868),
         "gsm8k_strict": paired(35, 400, 6, 878), "gsm8k_numeric": paired(41, 402, 9, 867),
         "hellaswag_acc": paired(8, 2, 3, 7), "hellaswag_acc_norm": paired(10, 2, 3, 5)}


@pytest.fixture(scope="module")
def stages():
    base = {k: forgetting.item_scores(b) for k, (b, _) in PAIRS.items()}
    tuned = {k: forgetting.item_scores(t) for k, (_, t) in PAIRS.items()}
    summary = forgetting.forgetting_summary(base, tuned, seed=0)
    diffs = forgetting.paired_differences(base, tuned, seed=0)
    return base, tuned, summary, diffs


def wilson_interval(count, n, z=1.959963984540054):
    """Wilson's score interval written out (Brown, Cai & DasGupta 2001, eq. 4): the oracle for statsmodels'."""
    p = count / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_item_scores_name_lm_evals_stderr_and_a_wilson_interval_apart():
    s = forgetting.item_scores([1] * 47 + [0] * 53)
    # the study's printed ± for 47%: one stderr with n - 1, not a 95% interval
    assert 100 * s["stderr"] == pytest.approx(5.02, abs=0.005)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx(wilson_interval(47, 100)) and s["ci_method"] == "wilson"
    assert s["items"] == [1.0] * 47 + [0.0] * 53 and s["n"] == 100 and s["mean"] == 0.47
    zero = forgetting.item_scores([0] * 10)  # no "0 ± 0": Wilson's upper bound is above 0
    assert zero["ci_low"] == pytest.approx(0.0, abs=1e-12) and zero["ci_high"] > 0.2


def test_summary_is_paired_over_the_items_with_the_studys_pm(stages):
    base, tuned, summary, _ = stages
    dk = summary["knowledge_loss"]
    assert dk["value"] == pytest.approx(13.0) and dk["n"] == 100 and dk["from"] == "mmlu_acc"
    assert dk["pm_study"] == pytest.approx(6.92, abs=0.005)  # the paper printed 6.93 from rounded SEs
    assert 100 * math.hypot(base["mmlu_acc"]["stderr"], tuned["mmlu_acc"]["stderr"]) == pytest.approx(dk["pm_study"])
    assert dk["ci_low"] < 13.0 < dk["ci_high"] and dk["ci_high"] - dk["ci_low"] > 2 * dk["pm_study"]
    assert dk["mcnemar_p"] == pytest.approx(binomtest(4, 21, 0.5).pvalue)  # 17 base-only vs 4 fine-tuned-only
    fr = summary["forgetting_rate"]
    assert fr["value"] == pytest.approx(100 * (1 - 49 / 442)) and fr["ci_low"] < fr["value"] < fr["ci_high"]
    da = summary["ability_augmentation"]
    assert da["value"] == pytest.approx(100 * (13 / 20 - 12 / 20)) and da["from"] == "hellaswag_acc_norm"


def test_paired_differences_per_metric_are_fine_tuned_minus_base(stages):
    _, _, _, diffs = stages
    assert list(diffs) == list(forgetting.METRIC_NAMES)
    mmlu = diffs["mmlu_acc"]
    assert mmlu["difference"] == pytest.approx(-0.13) and (mmlu["finetuned_only"], mmlu["base_only"]) == (4, 17)
    assert mmlu["ci_low"] < -0.13 < mmlu["ci_high"] and mmlu["ci_high"] < 0
    assert mmlu["mcnemar_p"] == pytest.approx(binomtest(4, 21, 0.5).pvalue)
    flex = diffs["gsm8k_flexible"]
    assert flex["mcnemar_p"] == pytest.approx(binomtest(9, 411, 0.5).pvalue) and flex["n"] == 1319


def test_results_table_and_report_show_stderr_and_interval_named(stages):
    base, tuned, summary, diffs = stages
    table = forgetting.results_table(base, tuned, summary, diffs)
    lo, hi = wilson_interval(47, 100)
    mmlu = table.loc["MMLU CS acc"]
    assert mmlu["base"] == pytest.approx(47.0) and mmlu["base ± stderr"] == pytest.approx(5.02, abs=0.005)
    assert mmlu["base 95% CI"] == f"[{100 * lo:.1f}, {100 * hi:.1f}]"
    assert mmlu["FT − base"] == pytest.approx(-13.0)
    assert mmlu["FT − base 95% CI (paired)"] == forgetting._interval(diffs["mmlu_acc"]["ci_low"],
                                                                      diffs["mmlu_acc"]["ci_high"])
    assert mmlu["McNemar p"] == f"{binomtest(4, 21, 0.5).pvalue:.3g}"
    assert table.loc["GSM8K numeric (±0.01)", "fine-tuned"] == pytest.approx(100 * 50 / 1319)
    dk = table.loc["ΔK (points)"]
    assert dk["fine-tuned"] == pytest.approx(13.0) and dk["fine-tuned ± stderr"] == pytest.approx(6.92, abs=0.005)
    assert dk["fine-tuned 95% CI"] == f"[{summary['knowledge_loss']['ci_low']:.1f}, " \
                                      f"{summary['knowledge_loss']['ci_high']:.1f}]"

    metrics = {"model": "m", "n_train": 2, "train": {"steps": 1}, "base": base, "finetuned": tuned,
               "summary": summary, "paired": diffs}
    text = forgetting.report(metrics)
    assert f" 47.0 ±  5.0 [{100 * lo:.1f}, {100 * hi:.1f}]" in text
    assert "+13.0 ± 6.9 (the study's ±) [" in text and "McNemar p" in text


def test_error_bars_are_the_asymmetric_wilson_interval(stages):
    base = stages[0]
    lo, hi = wilson_interval(47, 100)
    below, above = forgetting.error_bars(base, ["mmlu_acc"])
    assert (below[0], above[0]) == pytest.approx((100 * (0.47 - lo), 100 * (hi - 0.47)))
    assert below[0] != pytest.approx(above[0])
    zero = {"x": forgetting.item_scores([0] * 10)}
    assert forgetting.error_bars(zero, ["x"])[0][0] == pytest.approx(0, abs=1e-9)
    assert forgetting.error_bars(zero, ["x"])[1][0] > 20


def test_evaluate_scores_gsm8k_numeric_within_001(monkeypatch):
    """evaluate with the model stack replaced by fakes: GSM8K's third score is the numeric match."""
    def score_choices(llm, tokenizer, items, batch_size):
        n = len(items)
        return {"acc": [1.0] * n, "acc_norm": [0.0] * n, "pred": [0] * n, "pred_norm": [1] * n,
                "logliks": [[0.0] * len(choices) for _, choices, _ in items]}

    responses = ["so the total is 2.50", "It costs 7.\nQuestion: next", "no number"]
    monkeypatch.setitem(sys.modules, "helpers.loglik", types.SimpleNamespace(score_choices=score_choices))
    monkeypatch.setitem(sys.modules, "helpers.generation",
                        types.SimpleNamespace(generate=lambda llm, tok, prompts, **kw: responses[:len(prompts)]))
    data = {"hellaswag": [("ctx", ["a", "b"], 0)], "mmlu": [("q", ["A", "B", "C", "D"], 0)],
            "mmlu_subject": ["high_school_computer_science"], "gsm8k_shots": [],
            "gsm8k": [{"question": "q1", "answer": "x #### 2.5"}, {"question": "q2", "answer": "x #### 7"},
                      {"question": "q3", "answer": "x #### 1"}]}
    cfg = study_config("forgetting", {})
    scores, items = forgetting.evaluate(None, None, types.SimpleNamespace(stop_token_ids=[]), data, cfg, desc="t")
    assert [i["numeric_match"] for i in items["gsm8k"]] == [1.0, 1.0, 0.0]
    assert [i["flexible_match"] for i in items["gsm8k"]] == [0.0, 1.0, 0.0]  # "2.50" is not the string "2.5"
    numeric = scores["gsm8k_numeric"]
    assert numeric["items"] == [1.0, 1.0, 0.0] and numeric["mean"] == pytest.approx(2 / 3)
    assert forgetting.METRIC_NAMES["gsm8k_numeric"] == "GSM8K numeric (±0.01)"
    assert set(scores) == set(forgetting.METRIC_NAMES)

    lm = {"hellaswag": {"acc,none": 0.5, "acc_norm,none": 0.5},
          "gsm8k": {"exact_match,strict-match": 0.1, "exact_match,flexible-extract": 0.2},
          "mmlu_high_school_computer_science": {"acc,none": 0.3, "sample_len": 100}}
    table = forgetting.lm_eval_table(scores, scores, {"base": lm, "finetuned": lm})
    assert math.isnan(table.loc["GSM8K numeric (±0.01)", "lm-eval base"])  # lm-eval has no such metric
    assert table.loc["GSM8K numeric (±0.01)", "ours base"] == pytest.approx(200 / 3)


def test_mmlu_defaults_to_one_100_question_cs_subject_and_pools_four_as_an_option():
    cfg = study_config("forgetting", {"data_source": "local"})
    assert cfg.mmlu_subjects == ["high_school_computer_science"]
    local = [json.loads(line) for line in (REPO_ROOT / "benchmark_data/data/mmlu_cs_sample.jsonl").open()]
    data = forgetting.load_eval_data(cfg)
    assert set(data["mmlu_subject"]) == {"high_school_computer_science"}
    assert len(data["mmlu"]) == sum(r["subject"] == "high_school_computer_science" for r in local) > 0
    pooled = forgetting.load_eval_data(study_config("forgetting", {"data_source": "local",
                                                                   "mmlu_subjects": forgetting.MMLU_CS}))
    assert set(pooled["mmlu_subject"]) == set(forgetting.MMLU_CS) and len(pooled["mmlu"]) == len(local)


def test_a_default_run_of_100_mmlu_items_is_comparable_with_the_study(stages):
    base, tuned, summary, _ = stages
    metrics = {"study": "forgetting", "model": "llama-3.2-1b", "base": base, "finetuned": tuned, "summary": summary}
    cfg = {**vars(study_config("forgetting", {})), "n_train": 2000}
    table = compare("forgetting", metrics, cfg)
    mmlu = table[(table["row"] == "MMLU CS | Accuracy") & (table["column"] == "Base Llama 3.2 1B")].iloc[0]
    assert mmlu["comparable"], mmlu["reason"]
    assert mmlu["interval"] == "95% wilson (the run's)" and mmlu["inside"]  # 47 inside Wilson [37.5, 56.7]
    dk = table[table["row"].str.startswith("MMLU CS | Knowledge Loss")].iloc[0]
    assert dk["comparable"], dk["reason"]
    dk_ours = summary["knowledge_loss"]
    assert (dk["ours_low"], dk["ours_high"]) == (dk_ours["ci_low"], dk_ours["ci_high"])


def test_notebook_states_the_llama_base_vs_instruct_discrepancy_and_keeps_the_paired_results():
    nb = json.loads((REPO_ROOT / "notebooks" / "forgetting.ipynb").read_text())
    markdown = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    note = [m for m in markdown if "33.5%" in m]
    assert len(note) == 1 and "llama-3.2-1b-instruct" in note[0] and "meta-llama/Llama-3.2-1B" in note[0]
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "mmlu_subjects = ['high_school_computer_science']" in code
    assert "forgetting.paired_differences(base, tuned" in code and '"paired": paired' in code
