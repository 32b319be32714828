"""The scorers of the forgetting and small_vs_large studies, pinned on hand-written cases."""

import math

import pytest

from helpers.metrics import (
    INVALID,
    classification_scores,
    gsm8k_extract,
    gsm8k_normalize,
    gsm8k_score,
    match_label,
)
from helpers.tasks.forgetting import cut_at, gsm8k_prompt, hellaswag_item, hellaswag_preprocess, mmlu_item

REF = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether she sold 48+24 = <<48+24=72>>72 clips.\n#### 72"


@pytest.mark.parametrize("response, strict, flexible", [
    ("She sold 48 + 24 = 72 clips.\n#### 72", "72", "72"),
    ("#### 1,234", "1,234", "1,234"),                     # commas are kept by the filter, dropped by the metric
    ("It costs $1,234.", INVALID, "$1,234."),             # no '####': strict has nothing
    ("#### $5", INVALID, "$5"),                           # strict's pattern has no '$'
    ("The balance is -27 dollars.\n#### -27", "-27", "-27"),
    ("The answer is 42.", INVALID, "42."),                # trailing period kept by the filter
    ("first 3 then 5, so 8", INVALID, "8"),               # flexible takes the last number; one digit via group 2
    ("#### 5 and later #### 6", "5", "6"),                # strict takes the first match
    ("I don't know.", INVALID, INVALID),                  # no number at all
    ("", INVALID, INVALID),
])
def test_gsm8k_filters_as_lm_eval(response, strict, flexible):
    assert gsm8k_extract(response, "strict") == strict
    assert gsm8k_extract(response, "flexible") == flexible


@pytest.mark.parametrize("response, ref, strict, flexible", [
    ("so 72 clips.\n#### 72", REF, 1.0, 1.0),
    ("Altogether 72 clips.", REF, 0.0, 1.0),
    ("#### 1,234", "... #### 1234", 1.0, 1.0),            # ',' ignored on both sides
    ("You pay $1,234.", "... #### 1234", 0.0, 1.0),       # '$', ',' and the final '.' ignored
    ("#### -27", "... #### -27", 1.0, 1.0),               # negative numbers keep their sign
    ("#### 27", "... #### -27", 0.0, 0.0),
    ("The total is 2.50", "... #### 2.5", 0.0, 0.0),      # string match: 2.50 is not 2.5 (as in lm-eval)
    ("no idea", "... #### 0", 0.0, 0.0),                  # '[invalid]' never matches
    ("It is 72 clips, not 24.", REF, 0.0, 0.0),           # flexible reads the last number
])
def test_gsm8k_exact_match_after_lm_eval_normalisation(response, ref, strict, flexible):
    assert gsm8k_score(response, ref, "strict") == strict
    assert gsm8k_score(response, ref, "flexible") == flexible


@pytest.mark.parametrize("response, ref, numeric", [
    ("The total is 2.50", "... #### 2.5", 1.0),            # the string matches both fail on this one
    ("so 72 clips.\n#### 72.00", REF, 1.0),
    ("You pay $1,234.00.", "... #### 1234", 1.0),
    ("It is 18.01 now.", "... #### 18", 1.0),              # within the study's tolerance of 0.01
    ("It is 18.02 now.", "... #### 18", 0.0),
    ("#### -27.0", "... #### -27", 1.0),
    ("It is 72 clips, not 24.", REF, 0.0),                 # the flexible extraction: the last number
    ("no idea", "... #### 0", 0.0),
])
def test_gsm8k_numeric_match_with_the_studys_tolerance(response, ref, numeric):
    assert gsm8k_score(response, ref, "numeric") == numeric
    assert gsm8k_score("The total is 2.50", "... #### 2.5", "flexible") == 0.0
    assert gsm8k_score("It is 18.02 now.", "... #### 18", "numeric", tolerance=0.05) == 1.0


def test_gsm8k_score_refuses_an_unknown_mode_and_a_reference_without_a_number():
    with pytest.raises(ValueError, match="use one of strict, flexible, numeric"):
        gsm8k_score("7", "#### 7", "lenient")
    with pytest.raises(ValueError, match="does not end in"):
        gsm8k_score("7", "seven", "numeric")


def test_gsm8k_normalisation_drops_the_worked_solution_of_the_reference():
    assert gsm8k_normalize(REF) == "72"
    assert gsm8k_normalize("$1,000.") == "1000"
    assert gsm8k_normalize("[invalid]") == "[invalid]"


def test_labels_are_matched_longest_first_and_misses_are_invalid():
    labels = ["IPA", "American IPA", "Hefeweizen"]
    assert match_label("I think this is an american ipa.", labels) == "American IPA"
    assert match_label("Hefeweizen", labels) == "Hefeweizen"
    assert match_label("a dark lager", labels) == INVALID


def test_classification_scores_macro_and_weighted():
    y_true, y_pred = ["A", "A", "B", "C"], ["A", "B", "B", INVALID]
    macro = classification_scores(y_true, y_pred, ["A", "B", "C"], average="macro")
    # per class: precision 1, 1/2, 0 (no prediction); recall 1/2, 1, 0; F1 2/3, 2/3, 0
    assert macro["precision"] == pytest.approx(0.5) and macro["recall"] == pytest.approx(0.5)
    assert macro["f1"] == pytest.approx(4 / 9) and macro["accuracy"] == 0.5 and macro["invalid"] == 1
    weighted = classification_scores(y_true, y_pred, ["A", "B", "C"], average="weighted")  # supports 2, 1, 1
    assert weighted["precision"] == pytest.approx((2 * 1 + 0.5 + 0) / 4)
    assert weighted["recall"] == pytest.approx((2 * 0.5 + 1 + 0) / 4)


def test_hellaswag_preprocessing_is_lm_evals():
    # one pass of '  ' -> ' ' after removing '[step]' leaves two of the three spaces, exactly as lm-eval does
    text = " Making a cake [title] Mix the flour.  [step] Stir "
    assert hellaswag_preprocess(text) == "Making a cake. Mix the flour.  Stir"
    doc = {"activity_label": "Baking", "ctx_a": "A man mixes dough.", "ctx_b": "he",
           "endings": ["bakes it [header] well.", "eats it."], "label": "1"}
    assert hellaswag_item(doc) == ("Baking: A man mixes dough. He", ["bakes it well.", "eats it."], 1)


def test_mmlu_and_gsm8k_prompts_follow_lm_eval_templates():
    text, choices, gold = mmlu_item({"question": " What is 2+2? ", "subject": "college_computer_science",
                                     "choices": ["1", "2", "3", "4"], "answer": 3})
    assert text == ("The following are multiple choice questions (with answers) about college computer science.\n\n"
                    "What is 2+2?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:")
    assert choices == ["A", "B", "C", "D"] and gold == 3
    shots = [{"question": "1+1?", "answer": "1+1=2\n#### 2"}]
    assert gsm8k_prompt("2+2?", shots) == "Question: 1+1?\nAnswer: 1+1=2\n#### 2\n\nQuestion: 2+2?\nAnswer:"
    assert cut_at(" 4\n#### 4\n\nQuestion: 3+3?\nAnswer: 6") == " 4\n#### 4\n\n"


def test_lm_eval_numbers_sit_beside_ours_with_mmlu_pooled_by_item_count():
    from helpers.tasks.forgetting import lm_eval_table

    ours = {k: {"mean": 0.5, "ci95": 0.1, "n": 4} for k in
            ("hellaswag_acc", "hellaswag_acc_norm", "gsm8k_strict", "gsm8k_flexible", "gsm8k_numeric", "mmlu_acc")}
    theirs = {"hellaswag": {"acc,none": 0.25, "acc_norm,none": 0.75},
              "gsm8k": {"exact_match,strict-match": 0.0, "exact_match,flexible-extract": 0.5},
              "mmlu_a": {"acc,none": 1.0, "sample_len": 3}, "mmlu_b": {"acc,none": 0.0, "sample_len": 1}}
    table = lm_eval_table(ours, ours, {"base": theirs, "finetuned": theirs})
    assert table.loc["HellaSwag acc_norm", "lm-eval base"] == 75.0
    assert table.loc["MMLU CS acc", "lm-eval fine-tuned"] == 75.0  # (3 * 1.0 + 1 * 0.0) / 4
    assert table.loc["GSM8K flexible-extract", "ours base"] == 50.0
    assert math.isnan(table.loc["GSM8K numeric (±0.01)", "lm-eval base"])  # lm-eval has no such metric
