"""scripts/t4_hours.py: the parameter counts behind the FLOPs, the arithmetic by hand, a row for every
study at its config's defaults, the study's own reported time beside its row, the share options."""

import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import t4_hours  # noqa: E402
from perf_bench import T4_FP16_DENSE, memory_floor, orca_lengths, public_config  # noqa: E402

from helpers.config import ConfigError  # noqa: E402
from helpers.studies import STUDIES  # noqa: E402

# Parameter counts as the model pages on the Hugging Face hub give them (safetensors totals)
PUBLIC_PARAMS = {"llama-2-7b": 6.74e9, "llama-3.1-8b": 8.03e9, "mistral-7b-instruct-v3": 7.25e9,
                 "tinyllama-1.1b": 1.10e9, "llama-3.2-1b": 1.24e9}


@pytest.fixture(scope="module")
def rows():
    return {row.study: row for row in t4_hours.estimates()}


def line_of(text: str, study: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {study} |"))


@pytest.mark.parametrize("model", sorted(PUBLIC_PARAMS))
def test_parameter_counts_within_one_percent_of_the_public_ones(model):
    floor = memory_floor(public_config(t4_hours.ARCH_OF.get(model, model)))
    assert floor["params"] == pytest.approx(PUBLIC_PARAMS[model], rel=0.01)
    assert t4_hours.flop_params(model) == floor["flop_params"] <= floor["params"]


def test_flop_params_leave_out_an_untied_input_embedding_only():
    # llama-3.1-8b: 128,256 x 4,096 input rows are a lookup; llama-3.2-1b ties them to the output layer
    untied = memory_floor(public_config("llama-3.1-8b"))["params"] - 128_256 * 4096
    assert t4_hours.flop_params("llama-3.1-8b") == untied
    assert t4_hours.flop_params("llama-3.2-1b") == memory_floor(public_config("llama-3.2-1b"))["params"]


def test_arithmetic_by_hand():
    assert t4_hours.training_flops(10**9, 10**6) == 6e15
    assert t4_hours.t4_hours(65e12 * 0.25 * 3600, 0.25) == pytest.approx(1.0)
    assert T4_FP16_DENSE == 65e12


def test_train_math_row_by_hand(rows):
    row = rows["train_math"]
    assert (row.model, row.rows, row.epochs) == ("llama-3.1-8b", 10_000, 3.0)
    # the Llama 3 template: <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n ... <|eot_id|>
    # <|start_header_id|>assistant<|end_header_id|>\n\n, then <|eot_id|> after the answer: each marker one
    # token as in Llama 3's vocabulary (split, they were 43); "assistant" is two tokens in the embedded one
    assert t4_hours.template_tokens(t4_hours.study_tokenizer("llama-3.1-8b", t4_hours.embedded_tokenizer_dir())) \
        == (11, 1)
    per_row = statistics.mean(p + a for p, a in orca_lengths(10_000, 1024 - 12)) + 12
    assert row.tokens_per_row == pytest.approx(per_row)
    flops = 6 * 7_504_924_672 * 10_000 * per_row * 3
    assert row.flops == pytest.approx(flops)
    hours = flops / (65e12 * 0.25) / 3600
    assert 5 < hours < 10  # about 314 tokens a row: 424 PFLOP
    cells = [c.strip() for c in line_of(t4_hours.table(list(rows.values())), "train_math").split("|")]
    shown = t4_hours.hours_text
    assert cells[7] == shown(hours)
    assert cells[8] == f"{shown(flops / (65e12 * 0.40) / 3600)}-{shown(flops / (65e12 * 0.15) / 3600)}"
    assert cells[9].startswith("training only")


def test_every_study_has_a_row_from_its_defaults(rows):
    assert {name.split(",")[0] for name in rows} == set(STUDIES)
    text = t4_hours.table(list(rows.values()))
    for name in rows:
        line_of(text, name)
    for name in ("benchmark", "compile_ratings"):  # nothing trained
        assert rows[name].model is None and rows[name].flops == 0
    for name, row in rows.items():
        if row.model:
            assert row.tokens_per_row > 10 and row.flops > 0, name
    assert rows["addition"].rows == STUDIES["addition"].config().n_train == 10_000
    assert rows["forgetting"].model == "llama-3.2-1b" and rows["forgetting"].rows == 2000
    # three tasks, plain and demonstration-carrying trainings, 1,000 pool rows each
    assert rows["small_vs_large"].rows == 2 * 2 * 1000
    # at most: 100 teacher items a subject x 2 subjects, once for the combined student and again for the
    # two single-subject ones; the same for one targeted item per test question (112 + 612)
    assert rows["mmlu_teacher"].rows == 2 * 200 + 2 * (112 + 612) and rows["mmlu_teacher"].upper_bound
    assert "≤" in line_of(text, "mmlu_teacher")
    # the demonstrations lengthen the prompts: the mean is above the plain rows' alone
    assert rows["small_vs_large"].tokens_per_row > 100


def test_the_studys_reported_time_is_shown_with_the_share_it_implies(rows):
    row = rows["forgetting, the study's TinyLlama run (not the default)"]
    assert (row.model, row.rows) == ("tinyllama-1.1b", 50_000)
    assert "about 14 hours" in row.reported and "T4" in row.reported
    assert row.flops == pytest.approx(34e15, rel=0.03)  # PERFORMANCE.md's estimate of the same run
    implied = row.flops / (65e12 * 14 * 3600)
    assert f"implies {implied:.1%} of peak" in line_of(t4_hours.table(list(rows.values())), row.study)
    assert rows["train_math"].reported == "not reported"


def test_the_share_options(rows):
    listed = list(rows.values())
    hours = t4_hours.t4_hours(rows["train_bio"].flops, 0.5)
    line = line_of(t4_hours.table(listed, share=0.5, low=0.3, high=0.6), "train_bio")
    assert f"| {t4_hours.hours_text(hours)} |" in line
    assert "T4 h at 50% (ASSUMED)" in t4_hours.table(listed, share=0.5, low=0.3, high=0.6)
    with pytest.raises(ConfigError, match="--share"):
        t4_hours.table(listed, share=0)


def test_bad_shares_stop_before_any_work(monkeypatch):
    monkeypatch.setattr(t4_hours, "estimates", lambda *a: pytest.fail("estimated despite a bad share"))
    with pytest.raises(SystemExit, match=r"--low 0\.3 <= --share 0\.25"):
        t4_hours.main(["--low", "0.3"])
    with pytest.raises(SystemExit, match="--high is a share"):
        t4_hours.main(["--high", "40"])
