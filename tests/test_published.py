"""helpers/published.py: the papers' numbers beside handmade runs' metrics (no model is loaded)."""

import json
import math

import pytest

from helpers.config import REPO_ROOT, ConfigError, load_preset
from helpers.published import (
    PUBLISHED_FILE,
    compare,
    improved_up_to,
    near_zero_beyond,
    published_rows,
    sharpest_drop,
    write_comparison,
)
from helpers.stats import proportion_interval

STUDY_IDS = {"000_946d573d9e224735.txt", "001_78860f88f7d455dc.txt", "002_3c84c8b3bdabdc7d.txt",
             "004_335a8a5d71be8d32.txt"}


def row(table, published_row, column, table_name=""):
    """The one comparison row of a published row and column (of the table whose name starts so)."""
    found = table[(table["row"] == published_row) & (table["column"] == column)
                  & table["table"].str.startswith(table_name)]
    assert len(found) == 1, f"{len(found)} rows for {published_row} / {column}"
    return found.iloc[0]


def test_the_published_numbers_are_data_inside_the_repository():
    assert PUBLISHED_FILE.is_relative_to(REPO_ROOT / "data")
    data = json.loads(PUBLISHED_FILE.read_text())
    assert set(data) == STUDY_IDS
    assert all({"study", "tables", "settings", "ambiguous"} <= set(v) for v in data.values())


def test_published_rows_of_each_study():
    forgetting = published_rows("forgetting")
    first = forgetting[0]
    assert (first["row"], first["column"], first["value"], first["pm"]) == (
        "GSM8K | Flexible Accuracy", "Base Llama 3.2 1B", 33.51, 1.3)
    # the paper calls its ± a 95% CI; the seed's check shows one SE: it must not read as a 95% interval
    assert first["pm_meaning"].startswith("1 SE") and first["n"] == 1319
    dk = next(r for r in forgetting if r["row"].startswith("MMLU CS | Knowledge Loss"))
    assert dk["pm"] == 6.93 and "root-sum-square" in dk["pm_meaning"] and dk["unit"] == "points"
    # five accuracies x three columns, FR/dA/dK of the fine-tuned Llama only: null cells are no published numbers
    assert len(forgetting) == 5 * 3 + 3
    assert [r["value"] for r in published_rows("addition")] == [6, 8, 9]
    assert len(published_rows("mmlu_teacher")) == 10
    assert len(published_rows("small_vs_large")) == 6 * 7
    assert [(r["row"], r["value"]) for r in published_rows("compile_ratings")] == [("Llama 3.1 (8B)", 4.97)]
    assert published_rows("train_bio") == []
    with pytest.raises(ConfigError, match="unknown study 'forgeting'"):
        published_rows("forgeting")


def acc(mean, n, ci=0.02):
    return {"mean": mean, "ci95": ci, "n": n}


FORGETTING_METRICS = {
    "study": "forgetting", "model": "llama-3.2-1b",
    "base": {"gsm8k_flexible": acc(0.33, 1319), "gsm8k_strict": acc(0.30, 1319), "hellaswag_acc": acc(0.45, 10042),
             "hellaswag_acc_norm": acc(0.61, 10042), "mmlu_acc": acc(0.40, 412)},
    "finetuned": {"gsm8k_flexible": acc(0.04, 1319), "gsm8k_strict": acc(0.03, 1319),
                  "hellaswag_acc": acc(0.456, 10042), "hellaswag_acc_norm": acc(0.612, 10042),
                  "mmlu_acc": acc(0.34, 412)},
    "summary": {"forgetting_rate": {"value": 88.0, "ci95": 3.0}, "ability_augmentation": {"value": 0.2, "ci95": 1.0},
                "knowledge_loss": {"value": 6.0, "ci95": 6.0}},
}
FORGETTING_CFG = {"model": "llama-3.2-1b", "n_train": 2000, "load_in_4bit": True, "data_source": "hub",
                  "lora_r": 16, "epochs": 1.0, "gsm8k_shots": 5}


def test_forgetting_comparable_rows_inside_and_difference():
    table = compare("forgetting", FORGETTING_METRICS, FORGETTING_CFG)
    assert set(table["column"]) == {"Base Llama 3.2 1B", "Fine-tuned Llama 3.2 1B (2k)"}  # not TinyLlama's
    flex = row(table, "GSM8K | Flexible Accuracy", "Base Llama 3.2 1B")
    assert flex["comparable"] and flex["reason"] == ""
    assert flex["ours"] == pytest.approx(33.0) and (flex["ours_low"], flex["ours_high"]) == pytest.approx((31, 35))
    assert flex["difference"] == pytest.approx(33.0 - 33.51) and flex["inside"]
    strict = row(table, "GSM8K | Strict Accuracy", "Base Llama 3.2 1B")
    assert strict["comparable"] and not strict["inside"]  # 33.51 is outside [28, 32]
    # the paper's "n = 10,000" against the split's 10,042 items is the same n (within 1%)
    assert row(table, "HellaSwag | Accuracy", "Base Llama 3.2 1B")["comparable"]
    fr = row(table, "GSM8K | Forgetting Rate (FR)", "Fine-tuned Llama 3.2 1B (2k)")
    assert fr["ours"] == 88.0 and fr["inside"] and fr["n_ours"] == 1319
    # the paper's MMLU CS is one 100-question subject (its ± gives n); ours pools four subjects
    mmlu = row(table, "MMLU CS | Accuracy", "Fine-tuned Llama 3.2 1B (2k)")
    assert not mmlu["comparable"] and "n=412" in mmlu["reason"] and "the study used 100" in mmlu["reason"]
    assert mmlu["inside"]  # inside is computed whatever the comparability
    dk = row(table, "MMLU CS | Knowledge Loss (dK, percentage points)", "Fine-tuned Llama 3.2 1B (2k)")
    assert not dk["comparable"] and "n=412" in dk["reason"]


def test_forgetting_other_models_and_settings_are_not_comparable():
    instruct = compare("forgetting", FORGETTING_METRICS, {**FORGETTING_CFG, "model": "llama-3.2-1b-instruct"})
    assert not instruct["comparable"].any()
    assert all("model llama-3.2-1b-instruct, the study used Llama 3.2 1B (base)" in r and "33.5%" in r
               for r in instruct["reason"])

    tiny = compare("forgetting", FORGETTING_METRICS, {**FORGETTING_CFG, "model": "tinyllama-1.1b"})
    assert set(tiny["column"]) == {"TinyLlama 1.1B (50k)"}
    assert all("n_train 2000, the study used 50000 Alpaca examples" in r for r in tiny["reason"])
    tiny = compare("forgetting", FORGETTING_METRICS, {**FORGETTING_CFG, "model": "tinyllama-1.1b", "n_train": 50000})
    assert row(tiny, "GSM8K | Flexible Accuracy", "TinyLlama 1.1B (50k)")["comparable"]

    smoke = {**FORGETTING_CFG, **load_preset("forgetting", "smoke")}
    small = {"base": {k: acc(0.5, 2) for k in FORGETTING_METRICS["base"]},
             "finetuned": {k: acc(0.5, 2) for k in FORGETTING_METRICS["base"]},
             "summary": FORGETTING_METRICS["summary"]}
    reasons = compare("forgetting", small, smoke)
    flex = row(reasons, "GSM8K | Flexible Accuracy", "Base Llama 3.2 1B")["reason"]
    for part in ("model smollm2-135m (the embedded model), the study used Llama 3.2 1B (base)",
                 "n=2 GSM8K items, the study used 1319", "data_source local", "preset smoke"):
        assert part in flex


def test_wilson_interval_when_the_run_has_none():
    lo, hi = proportion_interval(10, 20)
    assert (lo, hi) == pytest.approx((0.2993, 0.7007), abs=1e-4)  # Brown, Cai & DasGupta's table
    assert proportion_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and proportion_interval(0, 10)[1] > 0
    metrics = {**FORGETTING_METRICS, "base": {**FORGETTING_METRICS["base"], "gsm8k_flexible": {"mean": 0.5, "n": 20}}}
    flex = row(compare("forgetting", metrics, FORGETTING_CFG), "GSM8K | Flexible Accuracy", "Base Llama 3.2 1B")
    assert flex["interval"] == "Wilson 95% from 10/20"
    assert (flex["ours_low"], flex["ours_high"]) == pytest.approx((29.93, 70.07), abs=0.01)
    assert flex["inside"]


def test_the_runs_own_interval_in_each_layout():
    # helpers.stats' score_summary layout: ci_low / ci_high with its method; FR with ci_low / ci_high too
    base = {**FORGETTING_METRICS["base"],
            "gsm8k_flexible": {"mean": 0.33, "n": 1319, "stderr": 0.013, "ci_low": 0.305, "ci_high": 0.356,
                               "ci_method": "wilson"},
            "gsm8k_strict": {"mean": 0.30, "ci95": [0.2, 0.4], "n": 1319}}
    summary = {**FORGETTING_METRICS["summary"],
               "forgetting_rate": {"value": 88.0, "ci_low": 80.0, "ci_high": 86.0, "unit": "%", "n": 1319}}
    table = compare("forgetting", {**FORGETTING_METRICS, "base": base, "summary": summary}, FORGETTING_CFG)
    flex = row(table, "GSM8K | Flexible Accuracy", "Base Llama 3.2 1B")
    assert (flex["ours_low"], flex["ours_high"]) == pytest.approx((30.5, 35.6)) and flex["inside"]
    assert flex["interval"] == "95% wilson (the run's)"
    strict = row(table, "GSM8K | Strict Accuracy", "Base Llama 3.2 1B")
    assert (strict["ours_low"], strict["ours_high"]) == pytest.approx((20, 40)) and strict["inside"]
    fr = row(table, "GSM8K | Forgetting Rate (FR)", "Fine-tuned Llama 3.2 1B (2k)")
    assert (fr["ours_low"], fr["ours_high"]) == (80.0, 86.0) and not fr["inside"]  # 88.92 is above 86


def mmlu_cell(accuracy, n, ci=0.08):
    return {"accuracy": accuracy, "ci95": ci, "n": n}


def mmlu_metrics(n_ml=112, n_psy=612):
    labels = ["teacher", "vanilla student", "General FT", "machine_learning FT", "professional_psychology FT"]
    values = {"teacher": (0.78, 0.88), "vanilla student": (0.30, 0.20)}
    return {"study": "mmlu_teacher", "model": "llama-2-7b", "teacher": {"model": "gpt-4o"},
            "tables": {"generate": {label: {"machine_learning": mmlu_cell(values.get(label, (0.33, 0.4))[0], n_ml),
                                            "professional_psychology": mmlu_cell(values.get(label, (0.33, 0.4))[1],
                                                                                 n_psy),
                                            "all": mmlu_cell(0.4, n_ml + n_psy)} for label in labels}}}


MMLU_CFG = {"model": "llama-2-7b", "teacher_model": "gpt-4o", "dataset_source": "hub", "lora_r": 32,
            "lora_dropout": 0.1, "epochs": 1.0, "load_in_4bit": True, "max_questions": 0}


def test_mmlu_teacher_rows_and_settings():
    table = compare("mmlu_teacher", mmlu_metrics(), MMLU_CFG)
    assert len(table) == 10 and table["comparable"].all(), table[~table["comparable"]]["reason"].tolist()
    vanilla = row(table, "LLaMA (Vanilla)", "Accuracy", "Table 2")  # machine_learning
    assert vanilla["ours"] == 0.30 and vanilla["inside"]
    assert vanilla["ours_from"] == "tables.generate['vanilla student']['machine_learning'].accuracy"
    psych = row(table, "LLaMA (Vanilla)", "Accuracy", "Table 3")  # professional_psychology
    assert psych["ours"] == 0.20 and not psych["inside"]  # 0.42 is outside 0.20 ± 0.08

    # the notebook's own defaults (r=16, no dropout, 3 epochs) differ from the paper's Table 1
    table = compare("mmlu_teacher", mmlu_metrics(), {**MMLU_CFG, "lora_r": 16, "lora_dropout": 0.0, "epochs": 3.0})
    general = table[table["row"] == "LLaMA (General FT)"]
    assert not general["comparable"].any()
    assert "lora_r 16, the study used r=32" in general.iloc[0]["reason"]
    assert "epochs 3, the study used 1 epoch(s)" in general.iloc[0]["reason"]
    assert table[table["row"] == "LLaMA (Vanilla)"]["comparable"].all()  # no training: settings do not matter

    table = compare("mmlu_teacher", mmlu_metrics(n_ml=20), {**MMLU_CFG, "teacher_model": "gpt-4o-mini"})
    teacher = table[table["row"].str.startswith("GPT-4o")]
    assert "teacher gpt-4o-mini, the study used GPT-4o" in teacher.iloc[0]["reason"]
    assert "n=20 machine_learning questions, the study used 112" in teacher.iloc[0]["reason"]
    assert teacher.iloc[1]["reason"] == "teacher gpt-4o-mini, the study used GPT-4o"  # psychology: n is whole


def per_k(values):
    return {str(k): {"exact_match": v, "n": 20} for k, v in enumerate(values, start=1)}


ADDITION_METRICS = {
    "study": "addition", "model": "llama-2-7b",
    # k = 1..12: the base falls most after k = 6; tuned is > 5 points above it up to 8; above 5% up to 9
    "base": {"per_k": per_k([1, 1, .95, .9, .9, .85, .3, .2, .05, 0, 0, 0])},
    "finetuned": {"per_k": per_k([1, 1, 1, 1, .95, .95, .9, .6, .08, .05, 0, 0])},
}
ADDITION_CFG = {"model": "llama-2-7b", "train_digits_min": 1, "train_digits_max": 7, "test_digits_min": 1,
                "test_digits_max": 12, "lora_r": 32, "lora_dropout": 0.1, "epochs": 1.0, "load_in_4bit": True}


def test_addition_readouts_of_the_per_k_curves():
    base = {int(k): v["exact_match"] for k, v in ADDITION_METRICS["base"]["per_k"].items()}
    tuned = {int(k): v["exact_match"] for k, v in ADDITION_METRICS["finetuned"]["per_k"].items()}
    assert (sharpest_drop(base), improved_up_to(base, tuned), near_zero_beyond(tuned)) == (6, 8, 9)
    assert near_zero_beyond({1: 0.0}) is None and improved_up_to(base, base) is None

    table = compare("addition", ADDITION_METRICS, ADDITION_CFG)
    assert table["comparable"].all() and (table["difference"] == 0).all()
    assert table["inside"].isna().all() and table["interval"].str.startswith("no interval: a digit count").all()

    wider = compare("addition", ADDITION_METRICS, {**ADDITION_CFG, "train_digits_max": 5})
    assert row(wider, "LLaMA 2 7B QLoRA on 1-7 digit addition", "accuracy near 0% beyond k")["reason"] == (
        "train_digits_min/train_digits_max [1, 5], the study used k in 1-7")

    demo = {**ADDITION_CFG, **load_preset("addition", "demo")}
    table = compare("addition", {**ADDITION_METRICS, "model": "smollm2-135m"}, demo)
    assert not table["comparable"].any()
    tuned_row = row(table, "LLaMA 2 7B QLoRA on 1-7 digit addition", "improved accuracy up to k")
    for part in ("model smollm2-135m (the embedded model), the study used LLaMA 2 7B", "lora_r 16, the study used r=32",
                 "preset demo"):
        assert part in tuned_row["reason"]
    base_row = row(table, "LLaMA 2 7B vanilla", "sharp accuracy drop beyond k")
    assert "lora_r" not in base_row["reason"]  # the untuned model's row does not depend on LoRA settings


def svl_scores(flex, ci=0.05):
    return {"strict_match": flex, "strict_match_ci95": ci, "flexible_extract": flex, "flexible_extract_ci95": ci}


SVL_CONFIGS = ["base", "base+icl", "qlora", "icl+qlora", "icl-train+qlora"]
LARGE = "large (meta-llama/Llama-3.3-70B-Instruct)"
SVL_METRICS = {
    "study": "small_vs_large", "model": "mistral-7b-instruct-v3", "large_model": LARGE,
    "n_test": {"gsm8k": 200, "medqa": 200, "beer": 200},
    "results": {
        "gsm8k": {c: svl_scores(0.35) for c in [*SVL_CONFIGS, LARGE]},
        "medqa": {c: {"bertscore_precision": 0.86, "bertscore_recall": 0.86, "bertscore_f1": 0.86}
                  for c in [*SVL_CONFIGS, LARGE]},
        "beer": {c: {"accuracy": 0.7, "precision": 0.7, "recall": 0.7, "f1": 0.7, "average": "macro"}
                 for c in [*SVL_CONFIGS, LARGE]},
    },
}
SVL_CFG = {"model": "mistral-7b-instruct-v3", "large_model": "meta-llama/Llama-3.3-70B-Instruct",
           "large_model_demos": False, "retriever": "sentence-transformers/gtr-t5-base", "data_source": "hub",
           "load_in_4bit": True, "f1_average": "macro"}


def test_small_vs_large_rows_intervals_and_the_large_model():
    table = compare("small_vs_large", SVL_METRICS, SVL_CFG)
    assert len(table) == 42 and table["comparable"].all(), table[~table["comparable"]]["reason"].tolist()
    math_row = row(table, "Base+QLoRA | Math", "Accuracy")
    assert math_row["ours_from"] == "results.gsm8k['qlora'].flexible_extract"
    assert (math_row["ours_low"], math_row["ours_high"]) == pytest.approx((0.30, 0.40)) and math_row["inside"]
    assert not row(table, "Mistral Base | Math", "Accuracy")["inside"]  # 0.11 is outside [0.30, 0.40]
    bert = row(table, "Mistral Base | Healthcare", "F1 Score")
    assert math.isnan(bert["ours_low"]) and bert["inside"] is None
    assert bert["interval"].startswith("no interval: the run has none")
    assert row(table, "Llama 3.3 70B | Beer", "F1 Score")["ours_from"] == f"results.beer['{LARGE}'].f1"

    table = compare("small_vs_large", SVL_METRICS, {**SVL_CFG, "large_model_demos": True,
                                                    "retriever": "all-minilm-l6-v2"})
    large = row(table, "Llama 3.3 70B | Math", "Accuracy")
    assert not large["comparable"] and "large_model_demos True" in large["reason"]
    assert "zero-shot" in large["reason"]
    assert "retriever all-minilm-l6-v2" in row(table, "Base+ICL | Math", "Accuracy")["reason"]
    assert row(table, "Base+QLoRA | Math", "Accuracy")["comparable"]  # no demonstrations: the retriever is unused

    no_large = {**SVL_METRICS, "large_model": None,
                "results": {t: {c: v for c, v in r.items() if c != LARGE} for t, r in SVL_METRICS["results"].items()}}
    table = compare("small_vs_large", no_large, {**SVL_CFG, "large_model": ""})
    large = row(table, "Llama 3.3 70B | Math", "Accuracy")
    assert not large["comparable"] and large["reason"] == "the run has no large model"


def test_seven_model_study_compares_ratings_only():
    summary = {"study": "compile_ratings", "summary": [
        {"model": "llama-3.1-8b", "task": "math", "stage": "epoch3", "mean_rating": 4.5, "ci_low": 4.2,
         "ci_high": 4.8, "ratings": 30},
        {"model": "qwen-2-7b", "task": "math", "stage": "epoch3", "mean_rating": 4.9, "ci_low": 4.7,
         "ci_high": 5.0, "ratings": 30},
        {"model": "llama-3.1-8b", "task": "math", "stage": "epoch1", "mean_rating": 4.0, "ci_low": 3.5,
         "ci_high": 4.5, "ratings": 30}]}
    table = compare("compile_ratings", summary, {"workbook_dir": "benchmark_data"})
    assert len(table) == 2
    llama, qwen = table.iloc[0], table.iloc[1]
    assert llama["comparable"] and llama["ours"] == 4.5 and not llama["inside"] and llama["n_ours"] == 30
    assert not qwen["comparable"] and qwen["reason"] == "model qwen-2-7b, the study used Llama 3.1 8B"
    assert qwen["inside"]

    train = compare("train_math", {"model": "llama-3.1-8b"},
                    {"model": "llama-3.1-8b", "n_samples": 10000, "epochs": 3.0, "stage_epochs": [1, 3],
                     "dataset_source": "hub", "load_in_4bit": True})
    assert train.iloc[0]["reason"] == "a training run holds no ratings: compare compile_ratings' summary"
    short = compare("train_math", {}, {"model": "llama-3.1-8b", "n_samples": 60, "epochs": 3.0,
                                       "stage_epochs": [3], "dataset_source": "local", "load_in_4bit": True})
    for part in ("n_samples 60, the study used Orca-Math-200k, first 10,000 samples", "stage_epochs [3]",
                 "dataset_source local"):
        assert part in short.iloc[0]["reason"]
    assert compare("train_bio", {}, {"model": "llama-3.1-8b"}).empty
    none = compare("compile_ratings", {"summary": summary["summary"][2:]}, {})
    assert none.iloc[0]["reason"] == "no math ratings of epoch 3 in this summary"


def test_write_comparison_writes_the_table_and_the_figure(tmp_path):
    from matplotlib.image import imread

    table = compare("forgetting", FORGETTING_METRICS, FORGETTING_CFG)
    paths = write_comparison(table, tmp_path / "run")
    md = (tmp_path / "run" / "published_vs_ours.md").read_text()
    assert paths == {"published_vs_ours_md": str(tmp_path / "run" / "published_vs_ours.md"),
                     "published_vs_ours_png": str(tmp_path / "run" / "published_vs_ours.png")}
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(table)  # header, rule, one line per row
    assert "| Table 2: GSM8K \\| Flexible Accuracy, Base Llama 3.2 1B (%) | 33.51 |" in md
    assert "33.00 [31.00, 35.00] | -0.51 | yes | yes |" in md
    assert "1 SE: the paper calls it a 95% CI" in md and "n=412 MMLU CS items" in md
    assert "Settings the paper does not state (not checked):" in md and "num_fewshot" in md
    image = imread(paths["published_vs_ours_png"])
    assert image.shape[0] > 200 and image.shape[1] > 200

    empty = write_comparison(compare("train_bio", {}, {}), tmp_path / "bio")
    assert "the paper publishes no number for train_bio" in open(empty["published_vs_ours_md"]).read()
    assert imread(empty["published_vs_ours_png"]).shape[0] > 0


def summary(mean, n, low, high, method="wilson"):
    return {"mean": mean, "n": n, "stderr": 0.03, "ci_low": low, "ci_high": high, "ci_method": method}


def test_the_summary_convention_and_the_old_half_widths_are_both_read():
    """Runs now write `<key>_summary` beside the number (helpers.stats.score_summary); older run folders
    hold `<key>_ci95` half-widths (small_vs_large) or `ci95` (mmlu_teacher cells): both are read."""
    new_gsm = {"strict_match": 0.35, "flexible_extract": 0.35,
               "strict_match_summary": summary(0.35, 200, 0.29, 0.42),
               "flexible_extract_summary": summary(0.35, 200, 0.29, 0.42)}
    bert = {k: 0.86 for k in ("bertscore_precision", "bertscore_recall", "bertscore_f1")}
    bert["bertscore_f1_summary"] = summary(0.86, 200, 0.85, 0.87, "t")
    results = {**SVL_METRICS["results"], "gsm8k": {c: new_gsm for c in SVL_METRICS["results"]["gsm8k"]},
               "medqa": {c: bert for c in SVL_METRICS["results"]["medqa"]}}
    table = compare("small_vs_large", {**SVL_METRICS, "results": results}, SVL_CFG)
    math_row = row(table, "Base+QLoRA | Math", "Accuracy")
    assert (math_row["ours_low"], math_row["ours_high"]) == (0.29, 0.42) and math_row["inside"]
    assert math_row["interval"] == "95% wilson (the run's)" and math_row["n_ours"] == 200
    f1 = row(table, "Mistral Base | Healthcare", "F1 Score")
    assert (f1["ours_low"], f1["ours_high"]) == (0.85, 0.87) and f1["interval"] == "95% t (the run's)"
    assert row(table, "Mistral Base | Healthcare", "Recall")["interval"].startswith("no interval")
    # the old run's half-width: 0.35 ± 0.05
    old = row(compare("small_vs_large", SVL_METRICS, SVL_CFG), "Base+QLoRA | Math", "Accuracy")
    assert (old["ours_low"], old["ours_high"]) == pytest.approx((0.30, 0.40)) and old["interval"] == "95% (the run's)"

    # mmlu_teacher cells: {"accuracy", "accuracy_summary", "n"} now, {"accuracy", "ci95", "n"} before
    metrics = mmlu_metrics()
    cells = metrics["tables"]["generate"]
    cells["vanilla student"]["machine_learning"] = {"accuracy": 0.30, "n": 112,
                                                    "accuracy_summary": summary(0.30, 112, 0.225, 0.389)}
    table = compare("mmlu_teacher", metrics, MMLU_CFG)
    vanilla = row(table, "LLaMA (Vanilla)", "Accuracy", "Table 2")
    assert (vanilla["ours_low"], vanilla["ours_high"]) == (0.225, 0.389) and vanilla["interval"] == (
        "95% wilson (the run's)")
    psych = row(table, "LLaMA (Vanilla)", "Accuracy", "Table 3")  # still the old layout: 0.20 ± 0.08
    assert (psych["ours_low"], psych["ours_high"]) == pytest.approx((0.12, 0.28)) and psych["interval"] == (
        "95% (the run's)")
    # a score missing from a configuration is said to be missing, not undefined
    results = {**SVL_METRICS["results"], "gsm8k": {c: {} for c in SVL_METRICS["results"]["gsm8k"]}}
    gone = row(compare("small_vs_large", {**SVL_METRICS, "results": results}, SVL_CFG), "Base+QLoRA | Math", "Accuracy")
    assert gone["reason"] == "results.gsm8k['qlora'].flexible_extract is not in the run's metrics"
