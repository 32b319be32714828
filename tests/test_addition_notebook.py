"""Smoke runs of notebooks/addition.ipynb through papermill with the embedded model (tests preset:
4 training steps), asserting on the run's metrics.json; and the runner's bad-input messages."""

import json

import pytest
from openpyxl import load_workbook

from helpers import run_notebook

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run_dir = run_notebook.execute("addition", "smoke", {"output_root": str(root)}, log_output=False)
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def test_metrics_cover_every_k_for_base_and_finetuned(smoke_run):
    run_dir, m = smoke_run
    assert m["train_digits"] == [1, 3] and m["test_digits"] == [1, 4]
    assert m["n_train"] == 48 and m["n_test"] == 16 and m["train_test_overlap"] == 0
    for stage in ("base", "finetuned"):
        per_k = m[stage]["per_k"]
        assert sorted(per_k, key=int) == ["1", "2", "3", "4"]
        for row in per_k.values():
            assert row["n"] == 4
            assert 0.0 <= row["exact_match"] <= row["digit_accuracy"] <= 1.0 or row["exact_match"] == 1.0
            assert row["edit_distance"] >= 0
        in_range = sum(per_k[k]["exact_match"] for k in ("1", "2", "3")) / 3
        assert m[stage]["in_range_exact_match"] == pytest.approx(in_range)
        assert m[stage]["out_of_range_exact_match"] == per_k["4"]["exact_match"]
    gain = 100 * (m["finetuned"]["in_range_exact_match"] - m["base"]["in_range_exact_match"])
    assert m["in_range_exact_match_gain_points"] == pytest.approx(gain)


def test_training_went_through_qlora_and_saved_an_adapter(smoke_run):
    run_dir, m = smoke_run
    assert m["backend"] == "transformers+bitsandbytes"  # the 4-bit path, not plain LoRA
    assert m["train"]["steps"] == 4 and m["train"]["loss_first"] > 0
    assert (run_dir / "adapter" / "adapter_config.json").exists()
    assert json.loads((run_dir / "adapter" / "adapter_config.json").read_text())["r"] == 8
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert set(m["timings_s"]) == {"load", "evaluate_base", "train", "evaluate_finetuned"}


def test_run_record_and_outputs(smoke_run):
    run_dir, m = smoke_run
    record = json.loads((run_dir / "run.json").read_text())
    assert record["config"]["lora_r"] == 8 and record["config"]["max_steps"] == 4
    assert record["model"]["backend"] == m["backend"] and record["model"]["load_in_4bit"] is True
    assert record["versions"]["trl"] == "1.14.2" and "torch" in record["versions"]
    assert record["config_hash"] in run_dir.name
    items = json.loads((run_dir / "generations.json").read_text())
    asked = [i["prompt"].rsplit("Question: ", 1)[1].split("=")[0] for i in items]  # the last question is the test
    assert len(items) == 16 and all(str(i["reference"]) == str(eval(a)) for i, a in zip(items, asked))
    assert [i["exact_finetuned"] for i in items].count(1.0) / 4 == pytest.approx(
        sum(v["exact_match"] for v in m["finetuned"]["per_k"].values()))
    ws = load_workbook(m["files"]["workbook"])["addition"]
    assert ws.max_row == 17 and ws.cell(row=1, column=2).value == "prompt"
    assert (run_dir / "addition_by_k.png").stat().st_size > 10_000
    assert (run_dir / "addition.ipynb").exists()


def test_rerun_of_finished_run_reuses_its_adapter_and_gives_the_same_answers(smoke_run):
    run_dir, m = smoke_run
    book = load_workbook(m["files"]["workbook"])  # a reviewer rates an answer before the re-run
    ws = book["addition"]
    header = [c.value for c in ws[1]]
    ws.cell(row=2, column=header.index("rating_finetuned") + 1).value = 4
    ws.cell(row=2, column=header.index("comment") + 1).value = "=typed as text"
    ws.cell(row=2, column=header.index("comment") + 1).data_type = "s"
    book.save(m["files"]["workbook"])
    kept = {name: (run_dir / name).stat().st_mtime_ns for name in ("eval_base.json", "eval_finetuned.json")}
    again = run_notebook.execute("addition", "smoke", {"output_root": str(run_dir.parent.parent)},
                                 log_output=False)
    assert again == run_dir
    m2 = json.loads((run_dir / "metrics.json").read_text())
    assert m2["train"]["reused_adapter"] is True
    # both evaluations' answers kept from the first run (not generated, not rewritten), for the same adapter
    assert {name: (run_dir / name).stat().st_mtime_ns for name in kept} == kept
    finetuned = json.loads((run_dir / "eval_finetuned.json").read_text())
    assert finetuned["identity"]["adapter"] and len(finetuned["result"]) == m["n_test"]
    assert m2["finetuned"]["per_k"] == m["finetuned"]["per_k"]
    ws = load_workbook(m["files"]["workbook"])["addition"]  # merged, not rewritten: the rating is still there
    header = [c.value for c in ws[1]]
    assert ws.cell(row=2, column=header.index("rating_finetuned") + 1).value == 4
    assert ws.cell(row=2, column=header.index("comment") + 1).value == "=typed as text" and ws.max_row == 17


@pytest.mark.parametrize("args, message", [
    (["addition", "-p", "model", "llama-9"], "unknown model 'llama-9'"),
    (["addition", "-p", "lora_rank", "8"], "has no parameter 'lora_rank' (did you mean 'lora_r'?)"),
    (["addition", "-p", "train_digits_max", "40"], "1 <= min <= max <= 30"),
    (["addition", "-p", "n_train", "''"], "parameter 'n_train' must be int"),
    (["addition", "--preset", "huge"], "no preset 'huge'"),
    (["subtraction"], "unknown study 'subtraction'"),
])
def test_bad_input_stops_with_one_line(capsys, args, message):
    assert run_notebook.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_plain_papermill_rejects_a_misspelt_parameter(tmp_path):
    """Without the runner (papermill CLI or API), the notebook itself stops on an unknown name."""
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(run_notebook.NOTEBOOKS / "addition.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"lora_rank": 8, "output_root": str(tmp_path)},
                                   kernel_name="python3", progress_bar=False)
    assert err.value.ename == "ConfigError"
    assert "unknown parameter 'lora_rank' (did you mean 'lora_r'?)" in err.value.evalue
    assert not (tmp_path / "addition").exists()  # stopped before anything was written
