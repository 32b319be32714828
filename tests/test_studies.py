"""The forgetting and small_vs_large notebooks end to end on the embedded model and the
project-written data (each notebook runs once per module), then assertions on their metrics.json."""

import json
import math

import pytest

from helpers import run_notebook
from helpers.config import ConfigError
from helpers.data import DATA_DIR
from helpers.metrics import classification_scores, gsm8k_score, mean_ci
from helpers.studies import study_config
from helpers.tasks import forgetting, small_vs_large

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("params, message", [
    ({"k_demos": 8, "n_pool": 8}, "k_demos must be in 0..n_pool-1"),
    ({"k_demos": 0}, "k_demos = 0 leaves the ICL configurations"),
    ({"configurations": ["base", "icl"]}, "pick from base, base\\+icl"),
    ({"tasks": ["gsm8k", "squad"]}, "unknown task 'squad'"),
    ({"f1_average": "micro"}, "f1_average must be 'macro' or 'weighted'"),
])
def test_small_vs_large_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        study_config("small_vs_large", params)


@pytest.mark.parametrize("params, message", [
    ({"n_train": 0}, "n_train must be >= 1"),
    ({"n_gsm8k": -1}, "n_gsm8k must be >= 0"),
    ({"mmlu_subjects": []}, "mmlu_subjects is empty"),
])
def test_forgetting_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        study_config("forgetting", params)


def test_beer_has_no_hub_copy_and_says_what_to_do():
    cfg = study_config("small_vs_large", {"data_source": "hub", "tasks": ["beer"]})
    with pytest.raises(ConfigError, match="set data_source to 'local' or to a folder/file"):
        small_vs_large.load_task_data(small_vs_large.get_task("beer"), cfg)


@pytest.fixture(scope="module")
def svl(tmp_path_factory):
    run_dir = run_notebook.execute("small_vs_large", "smoke", {"output_root": str(tmp_path_factory.mktemp("svl"))},
                                   log_output=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    records = [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines()]
    return run_dir, metrics, records


def test_small_vs_large_table_has_every_configuration_and_the_large_row(svl):
    _, m, records = svl
    rows = [*small_vs_large.CONFIGURATIONS, "large (smollm2-135m)"]
    assert list(m["table"]) == rows and m["large_model"] == "large (smollm2-135m)"
    assert all(len(m["table"][r]) == 9 for r in rows)
    assert m["n_test"] == {"gsm8k": 2, "medqa": 2, "beer": 2}
    assert len(records) == 3 * 2 * len(rows)
    assert set(m["train"]) == {f"{t}/{k}" for t in ("gsm8k", "medqa", "beer") for k in ("plain", "icl")}
    assert all(t["steps"] == 1 and json.loads(t["data"])["examples"] == 6 for t in m["train"].values())


def test_retrieval_never_gives_an_example_itself_and_demos_are_in_the_prompts(svl):
    _, m, records = svl
    pools = {}
    for task in ("gsm8k", "medqa", "beer"):
        r = m["retrieval"][task]
        assert r["self_in_own_demos"] == 0
        assert len(r["train_demos"]) == 6
        assert all(i not in ids and len(ids) == 1 for i, ids in enumerate(r["train_demos"]))
        assert all(len(ids) == 1 and 0 <= ids[0] < 6 for ids in r["test_demos"])
        cfg = study_config("small_vs_large", {"data_source": "local", "n_pool": 6, "n_test": 3})
        pools[task] = small_vs_large.load_task_data(small_vs_large.get_task(task), cfg)[0]
    for rec in records:
        task = small_vs_large.get_task(rec["task"])
        demo = pools[rec["task"]][m["retrieval"][rec["task"]]["test_demos"][rec["item"]][0]]
        blocks = rec["prompt"].count(f"\n{task.answer_label}:")
        if rec["configuration"] in small_vs_large.WITH_DEMOS or rec["configuration"].startswith("large"):
            assert blocks == 2 and task.query(demo) in rec["prompt"] and task.target(demo) in rec["prompt"]
        else:
            assert blocks == 1 and task.query(demo) not in rec["prompt"]


def test_small_vs_large_scores_are_the_scorers_of_the_generations(svl):
    _, m, records = svl
    for config in m["table"]:
        gsm = [r for r in records if r["task"] == "gsm8k" and r["configuration"] == config]
        strict = [gsm8k_score(r["response"], r["reference"], "strict") for r in gsm]
        flexible = [gsm8k_score(r["response"], r["reference"], "flexible") for r in gsm]
        assert strict == [r["strict_match"] for r in gsm]
        assert m["results"]["gsm8k"][config]["strict_match"] == pytest.approx(mean_ci(strict)[0])
        assert m["table"][config]["GSM8K flexible-extract"] == pytest.approx(100 * mean_ci(flexible)[0])
        beer = [r for r in records if r["task"] == "beer" and r["configuration"] == config]
        want = classification_scores([r["reference"] for r in beer], [r["predicted"] for r in beer],
                                     m["labels"]["beer"], average="macro")
        assert m["results"]["beer"][config] == pytest.approx(want)
        med = [r for r in records if r["task"] == "medqa" and r["configuration"] == config]
        f1 = [r["bertscore_f1"] for r in med]
        assert all(0 < x <= 1 for x in f1)
        assert m["table"][config]["MedQA BERTScore F1"] == pytest.approx(100 * sum(f1) / len(f1))
    assert m["labels"]["beer"] == sorted(set(m["labels"]["beer"])) and len(m["labels"]["beer"]) >= 3


def test_open_answer_rating_workbook_has_an_answer_and_rating_column_per_row(svl):
    from openpyxl import load_workbook

    run_dir, m, records = svl
    ws = load_workbook(m["files"]["workbook"])["medqa"]
    header = [c.value for c in ws[1]]
    for config in m["table"]:
        assert f"answer_{config}" in header and f"rating_{config}" in header
    assert ws.max_row == 1 + 2 and m["workbook_update"]["added"] == 2
    first = {h: ws.cell(row=2, column=j + 1).value for j, h in enumerate(header)}
    want = next(r for r in records if r["task"] == "medqa" and r["configuration"] == "qlora" and r["item"] == 0)
    assert first["answer_qlora"] == want["response"] and first["reference"] == want["reference"]
    assert "icl-train+qlora" in (run_dir / "small_vs_large_table.md").read_text()


@pytest.fixture(scope="module")
def forget(tmp_path_factory):
    run_dir = run_notebook.execute("forgetting", "smoke", {"output_root": str(tmp_path_factory.mktemp("fg"))},
                                   log_output=False)
    return run_dir, json.loads((run_dir / "metrics.json").read_text()), json.loads(
        (run_dir / "generations.json").read_text())


def test_forgetting_scores_follow_from_the_items(forget):
    _, m, gen = forget
    assert m["n_train"] == 4 and m["train"]["steps"] == 1
    hs = [forgetting.hellaswag_item(json.loads(line)) for line in
          open(DATA_DIR / "hellaswag_sample.jsonl").read().splitlines()[:4]]
    for stage in ("base", "finetuned"):
        s, items = m[stage], gen[stage]
        assert (s["hellaswag_acc"]["n"], s["gsm8k_strict"]["n"], s["mmlu_acc"]["n"]) == (4, 2, 4)
        for item, (_, endings, gold) in zip(items["hellaswag"], hs):
            lls = item["logliks"]
            assert item["gold"] == gold and item["pred"] == max(range(4), key=lambda j: lls[j])
            assert item["pred_norm"] == max(range(4), key=lambda j: lls[j] / len(endings[j]))
        assert s["hellaswag_acc_norm"]["mean"] == pytest.approx(
            sum(i["pred_norm"] == i["gold"] for i in items["hellaswag"]) / 4)
        assert s["mmlu_acc"]["mean"] == pytest.approx(sum(i["pred"] == i["gold"] for i in items["mmlu"]) / 4)
        assert [i["strict_match"] for i in items["gsm8k"]] == [
            gsm8k_score(i["response"], i["reference"], "strict") for i in items["gsm8k"]]
        assert all("Question:" not in i["response"] for i in items["gsm8k"])  # cut where lm-eval stops
    # training changed the model: the fine-tuned log-likelihoods are not the base ones
    assert gen["base"]["hellaswag"][0]["logliks"] != gen["finetuned"]["hellaswag"][0]["logliks"]


def test_forgetting_measures_are_computed_from_the_accuracies(forget):
    _, m, _ = forget
    b, t, s = m["base"], m["finetuned"], m["summary"]
    da = 100 * (t["hellaswag_acc_norm"]["mean"] - b["hellaswag_acc_norm"]["mean"])
    dk = 100 * (b["mmlu_acc"]["mean"] - t["mmlu_acc"]["mean"])
    assert s["ability_augmentation"]["value"] == pytest.approx(da)
    assert s["knowledge_loss"]["value"] == pytest.approx(dk)
    assert s["knowledge_loss"]["ci95"] == pytest.approx(100 * math.hypot(b["mmlu_acc"]["ci95"], t["mmlu_acc"]["ci95"]))
    base_flex, tuned_flex = b["gsm8k_flexible"]["mean"], t["gsm8k_flexible"]["mean"]
    if base_flex:
        assert s["forgetting_rate"]["value"] == pytest.approx(100 * (1 - tuned_flex / base_flex))
    else:
        assert s["forgetting_rate"]["value"] is None or math.isnan(s["forgetting_rate"]["value"])
    table = open(m["files"]["md"]).read()
    assert "FR (%)" in table and "ΔK (points)" in table and "MMLU CS acc" in table
