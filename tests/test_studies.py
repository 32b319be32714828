"""The forgetting and small_vs_large notebooks end to end on the embedded model and the
project-written data (each notebook runs once per module, the tests marked slow), then assertions on
their metrics.json: forgetting with data_source="hub" from the hub-shaped server (tests/hub_server.py),
small_vs_large from the local copies (beer style has no hub copy; its hub run without beer is in
tests/test_hub_server.py); and small_vs_large's parts that need no model (config errors, Dr.ICL
retrieval on a stand-in encoder, the beer-style matcher and scores)."""

import json
import math

import pytest
from conftest import TINY

from helpers import run_notebook
from helpers.config import ConfigError
from helpers.data import DATA_DIR
from helpers.metrics import classification_scores, gsm8k_score
from helpers.studies import study_config
from helpers.tasks import forgetting, small_vs_large

slow = pytest.mark.slow


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
    with pytest.raises(ConfigError, match="beer have no hub copy: drop them from tasks or set data_source"):
        study_config("small_vs_large", {"data_source": "hub", "tasks": ["beer"]})  # before anything loads
    cfg = study_config("small_vs_large", {"data_source": "hub"})  # the loader says it too, if reached
    with pytest.raises(ConfigError, match="set data_source to 'local' or to a folder/file"):
        small_vs_large.load_task_data(small_vs_large.get_task("beer"), cfg)


# --- Dr.ICL retrieval without a model: a bag-of-words stand-in for the sentence encoder ----------------

class BagOfWords:
    """Encodes like a sentence-transformers model (the calls helpers.encoders.Retriever makes): hashed
    word counts, L2-normalised. Identical texts get identical vectors, so a copy ranks first."""

    def encode(self, texts, batch_size=64, normalize_embeddings=True, convert_to_tensor=True,
               show_progress_bar=False):
        import torch

        out = torch.zeros(len(texts), 512)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, sum(map(ord, word)) * 2654435761 % 512] += 1
        return torch.nn.functional.normalize(out, dim=1)


def gsm8k_prepared(**params):
    cfg = study_config("small_vs_large", {"data_source": "local", "n_pool": 48, "n_test": 24, **params})
    return small_vs_large.prepare_task(small_vs_large.get_task("gsm8k"), cfg, BagOfWords())


def test_no_example_sees_itself_or_a_copy_of_itself_and_test_copies_of_pool_questions_go():
    """The project's GSM8K pool has two verbatim duplicate pairs (rows 7 and 47, 8 and 42) and test
    row 5 is pool row 22: by row index alone, 7 would get 47, its copy, as first demonstration."""
    p = gsm8k_prepared(k_demos=3)
    task, pool = small_vs_large.get_task("gsm8k"), p["pool"]
    key = [small_vs_large.same_text_key(task.query(r)) for r in pool]
    assert key[7] == key[47] and key[8] == key[42] and len(set(key)) == 46  # the fixture has the copies
    assert p["retrieval"] == {"test_in_pool_removed": 1, "self_copies_excluded": 4, "self_in_own_demos": 0}
    for i, ids in enumerate(p["train_demos"]):
        assert len(ids) == 3 and all(key[j] != key[i] for j in ids), (i, ids)
    assert len(p["test"]) == 23 and not {small_vs_large.same_text_key(task.query(r)) for r in p["test"]} & set(key)
    assert len(p["prompts"]["demos"]) == len(p["prompts"]["plain"]) == 23
    for (prompt, _), ids, row in zip(p["train_pairs"]["icl"], p["train_demos"], pool):
        assert prompt.count("\nAnswer:") == 4  # three demonstrations and the question itself
        assert task.query(pool[ids[0]]) in prompt and prompt.endswith(f"{task.query(row)}\nAnswer:")


def test_retrieve_demos_skips_banned_pool_rows_and_keeps_the_order():
    class Ranked:
        def top_k(self, queries, k):
            return [[4, 2, 0, 1, 3][:k] for _ in queries]

    got = small_vs_large.retrieve_demos(Ranked(), ["a", "b"], 2, banned=[{4, 2}, set()])
    assert got == [[0, 1], [4, 2]]
    assert small_vs_large.retrieve_demos(Ranked(), ["a"], 0) == [[]]


def test_same_text_key_ignores_case_and_spacing_only():
    key = small_vs_large.same_text_key
    assert key("  How many\n apples?") == key("how MANY apples?") != key("How many apples")


# --- beer style: the matcher and the scores -----------------------------------------------------------

STYLES = ["American IPA", "IPA", "Russian Imperial Stout", "Stout", "Hefeweizen", "Porter"]


@pytest.mark.parametrize("response, style", [
    ("Not a stout, it is an IPA.", "IPA"),
    ("It's an IPA, not a Stout.", "IPA"),
    ("This is an American IPA rather than a Stout", "American IPA"),
    ("It isn't a Stout. Answer: Porter", "Porter"),
    ("No, it is not an IPA; it is a Stout.", "Stout"),
    ("The style is hefeweizen, unlike a Porter", "Hefeweizen"),
    ("I think this is an american ipa.", "American IPA"),
    ("**Russian Imperial Stout**", "Russian Imperial Stout"),
    ("Stout", "Stout"),
    ("Porter or Stout? I'd say Stout", "Stout"),
    ("No doubt, a Porter.", "Porter"),  # a negation in another clause does not count
    ("Definitely not an IPA.", "[invalid]"),
    ("a dark lager", "[invalid]"),
    ("Ipanema pale", "[invalid]"),  # whole words only
])
def test_the_style_named_is_the_one_not_negated(response, style):
    from helpers.metrics import match_label

    assert match_label(response, STYLES) == style


def beer_scores(references, responses, labels, average="macro"):
    cfg = study_config("small_vs_large", {"f1_average": average})
    task = small_vs_large.get_task("beer")
    rows = [{"review/text": "a review", "beer/style": r} for r in references]
    return small_vs_large.score_task(task, responses, rows, cfg, labels)


def test_styles_absent_from_the_test_set_do_not_pull_the_scores_down():
    labels = ["American IPA", "Belgian Tripel", "German Pilsener", "Hefeweizen", "Russian Imperial Stout"]
    refs = ["American IPA", "Hefeweizen", "German Pilsener"] * 2
    scores, items = beer_scores(refs, [f"It is a {r}." for r in refs], labels)
    # pool and test have five styles, the test three: all right is all 1 (the old label set gave 0.6)
    assert (scores["precision"], scores["recall"], scores["f1"], scores["accuracy"]) == (1.0, 1.0, 1.0, 1.0)
    assert scores["classes"] == ["American IPA", "German Pilsener", "Hefeweizen"]
    assert [it["predicted"] for it in items] == refs


def test_beer_macro_weighted_and_the_f1_of_p_and_r_by_hand():
    labels = ["A", "B", "C", "D"]
    refs = ["A", "A", "A", "B", "C"]
    responses = ["A", "A", "B", "B", "no idea"]  # C is missed (invalid), D is absent from both
    macro, _ = beer_scores(refs, responses, labels)
    # per class (A, B, C): precision 1, 1/2, 0; recall 2/3, 1, 0; F1 4/5, 2/3, 0; supports 3, 1, 1
    p, r, f1 = (1 + 0.5) / 3, (2 / 3 + 1) / 3, (0.8 + 2 / 3) / 3
    assert (macro["precision"], macro["recall"], macro["f1"]) == pytest.approx((p, r, f1))
    assert macro["f1_from_pr"] == pytest.approx(2 * p * r / (p + r)) != pytest.approx(f1)
    assert macro["weighted"]["precision"] == pytest.approx((3 * 1 + 0.5) / 5)
    assert macro["weighted"]["recall"] == pytest.approx((3 * 2 / 3 + 1) / 5)
    assert macro["weighted"]["f1"] == pytest.approx((3 * 0.8 + 2 / 3) / 5)
    assert macro["classes"] == ["A", "B", "C"] and macro["invalid"] == 1 and macro["accuracy"] == 0.6
    weighted, _ = beer_scores(refs, responses, labels, average="weighted")
    assert weighted["f1"] == pytest.approx(macro["weighted"]["f1"]) and weighted["macro"] == macro["macro"]
    table = small_vs_large.results_table({"beer": {"base": macro}}, "macro")
    assert list(table.columns) == ["Beer P (macro)", "Beer R (macro)", "Beer F1 (macro)", "Beer F1 from P, R (macro)",
                                   "Beer F1 (weighted)", "Beer accuracy"]
    assert table.loc["base", "Beer F1 from P, R (macro)"] == pytest.approx(100 * 2 * p * r / (p + r))


@pytest.fixture(scope="module")
def svl(tiny_model, tmp_path_factory):
    run_dir = run_notebook.execute("small_vs_large", "smoke", {"output_root": str(tmp_path_factory.mktemp("svl")),
                                                               "model": tiny_model, "large_model": tiny_model},
                                   log_output=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    records = [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines()]
    return run_dir, metrics, records


@slow
def test_small_vs_large_table_has_every_configuration_and_the_large_row(svl):
    _, m, records = svl
    rows = [*small_vs_large.CONFIGURATIONS, f"large ({TINY})"]
    assert list(m["table"]) == rows and m["large_model"] == f"large ({TINY})"
    assert all(len(m["table"][r]) == 11 for r in rows)  # beer: P, R, F1, F1 from P and R, the other F1, acc
    assert m["n_test"] == {"gsm8k": 2, "medqa": 2, "beer": 2}
    assert len(records) == 3 * 2 * len(rows)
    assert set(m["train"]) == {f"{t}/{k}" for t in ("gsm8k", "medqa", "beer") for k in ("plain", "icl")}
    assert all(t["steps"] == 1 and json.loads(t["data"])["examples"] == 6 for t in m["train"].values())


@slow
def test_retrieval_never_gives_an_example_itself_and_demos_are_in_the_prompts(svl):
    _, m, records = svl
    pools = {}
    for task in ("gsm8k", "medqa", "beer"):
        r = m["retrieval"][task]
        assert r["self_in_own_demos"] == 0 and r["test_in_pool_removed"] == 0  # no copies in the first 6+2
        assert len(r["train_demos"]) == 6
        assert all(i not in ids and len(ids) == 1 for i, ids in enumerate(r["train_demos"]))
        assert all(len(ids) == 1 and 0 <= ids[0] < 6 for ids in r["test_demos"])
        cfg = study_config("small_vs_large", {"data_source": "local", "n_pool": 6, "n_test": 3})
        pools[task] = small_vs_large.load_task_data(small_vs_large.get_task(task), cfg)[0]
    for rec in records:
        task = small_vs_large.get_task(rec["task"])
        demo = pools[rec["task"]][m["retrieval"][rec["task"]]["test_demos"][rec["item"]][0]]
        blocks = rec["prompt"].count(f"\n{task.answer_label}:")
        if rec["configuration"] in small_vs_large.WITH_DEMOS:  # the large model: zero-shot, as in the study
            assert blocks == 2 and task.query(demo) in rec["prompt"] and task.target(demo) in rec["prompt"]
        else:
            assert blocks == 1 and task.query(demo) not in rec["prompt"]


@slow
def test_small_vs_large_scores_are_the_scorers_of_the_generations(svl):
    _, m, records = svl
    for config in m["table"]:
        gsm = [r for r in records if r["task"] == "gsm8k" and r["configuration"] == config]
        strict = [gsm8k_score(r["response"], r["reference"], "strict") for r in gsm]
        flexible = [gsm8k_score(r["response"], r["reference"], "flexible") for r in gsm]
        assert strict == [r["strict_match"] for r in gsm]
        assert m["results"]["gsm8k"][config]["strict_match"] == pytest.approx(sum(strict) / len(strict))
        assert m["table"][config]["GSM8K flexible-extract"] == pytest.approx(100 * sum(flexible) / len(flexible))
        beer = [r for r in records if r["task"] == "beer" and r["configuration"] == config]
        want = classification_scores([r["reference"] for r in beer], [r["predicted"] for r in beer],
                                     m["labels"]["beer"], average="macro")
        got = m["results"]["beer"][config]
        assert {k: got[k] for k in ("accuracy", "precision", "recall", "f1", "f1_from_pr")} == pytest.approx(
            {k: want[k] for k in ("accuracy", "precision", "recall", "f1", "f1_from_pr")})
        assert got["weighted"] == pytest.approx(want["weighted"]) and got["classes"] == want["classes"]
        med = [r for r in records if r["task"] == "medqa" and r["configuration"] == config]
        f1 = [r["bertscore_f1"] for r in med]
        assert all(0 < x <= 1 for x in f1)
        assert m["table"][config]["MedQA BERTScore F1"] == pytest.approx(100 * sum(f1) / len(f1))
    assert m["labels"]["beer"] == sorted(set(m["labels"]["beer"])) and len(m["labels"]["beer"]) >= 3


@slow
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
def forget(tiny_model, tmp_path_factory, hub_context):
    """The smoke run with data_source="hub": every dataset from the hub-shaped server (tests/hub_server.py),
    which serves the rows of the local copies, so the assertions below hold for both sources."""
    with hub_context() as hub:
        mark = hub.served
        run_dir = run_notebook.execute("forgetting", "smoke", {"output_root": str(tmp_path_factory.mktemp("fg")),
                                                               "data_source": "hub", "model": tiny_model},
                                       log_output=False)
        requests = hub.since(mark)
    return run_dir, json.loads((run_dir / "metrics.json").read_text()), json.loads(
        (run_dir / "generations.json").read_text()), requests


@slow
def test_forgetting_loads_every_dataset_from_the_hub(forget):
    from hub_server import fetched

    _, m, _, requests = forget
    assert m["data_source"] == "hub" and m["n_train"] == 4
    # the kernel fetched each one (into a fresh cache): Alpaca, GSM8K, the MMLU subject, HellaSwag's parquet conversion
    for path in ("/tatsu-lab/alpaca/resolve/", "/openai/gsm8k/resolve/", "/cais/mmlu/resolve/",
                 "/high_school_computer_science/test-00000-of-00001.parquet", "/Rowan/hellaswag/resolve/",
                 "/default/validation/0000.parquet"):
        assert fetched(requests, path), path
    assert not fetched(requests, "hellaswag.py")


@slow
def test_forgetting_scores_follow_from_the_items(forget):
    _, m, gen, _ = forget
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


@slow
def test_forgetting_evaluations_are_kept_for_a_rerun(forget):
    """A "Run all" after a disconnect reuses both evaluations (helpers.runs.kept_result; the reuse itself is
    tested end to end in tests/test_addition_notebook.py): what is kept is what the run reported."""
    from helpers.runs import files_digest

    run_dir, m, gen, _ = forget
    for stage, name in (("base", "eval_base.json"), ("finetuned", "eval_finetuned.json")):
        kept = json.loads((run_dir / name).read_text())
        scores, items = kept["result"]
        assert scores == m[stage] and items == gen[stage]
        assert kept["identity"]["stage"] == stage and kept["identity"]["settings"] == run_dir.name.rsplit("-", 1)[1]
    assert kept["identity"]["adapter"] == files_digest(run_dir / "adapter") is not None


@slow
def test_forgetting_measures_are_computed_from_the_accuracies(forget):
    _, m, gen, _ = forget
    b, t, s = m["base"], m["finetuned"], m["summary"]
    da = 100 * (t["hellaswag_acc_norm"]["mean"] - b["hellaswag_acc_norm"]["mean"])
    dk = 100 * (b["mmlu_acc"]["mean"] - t["mmlu_acc"]["mean"])
    assert s["ability_augmentation"]["value"] == pytest.approx(da)
    assert s["knowledge_loss"]["value"] == pytest.approx(dk)
    # the study's ± on ΔK: the two lm-eval stderrs combined; beside it a paired 95% interval
    assert s["knowledge_loss"]["pm_study"] == pytest.approx(
        100 * math.hypot(b["mmlu_acc"]["stderr"], t["mmlu_acc"]["stderr"]))
    assert s["knowledge_loss"]["ci_low"] <= dk <= s["knowledge_loss"]["ci_high"]
    for stage in ("base", "finetuned"):  # every accuracy: its items, lm-eval's stderr and a Wilson interval
        for key in forgetting.METRIC_NAMES:
            acc = m[stage][key]
            assert acc["mean"] == pytest.approx(sum(acc["items"]) / len(acc["items"])) and acc["ci_method"] == "wilson"
            assert acc["ci_low"] <= acc["mean"] <= acc["ci_high"] and acc["ci_high"] > 0 and "stderr" in acc
        assert m[stage]["gsm8k_numeric"]["items"] == [i["numeric_match"] for i in gen[stage]["gsm8k"]]
    assert m["finetuned"]["mmlu_acc"]["n"] == 4 and set(m["paired"]) == set(forgetting.METRIC_NAMES)
    for key, d in m["paired"].items():
        assert d["difference"] == pytest.approx(t[key]["mean"] - b[key]["mean"]) and 0 <= d["mcnemar_p"] <= 1
    base_flex, tuned_flex = b["gsm8k_flexible"]["mean"], t["gsm8k_flexible"]["mean"]
    if base_flex:
        assert s["forgetting_rate"]["value"] == pytest.approx(100 * (1 - tuned_flex / base_flex))
    else:
        assert s["forgetting_rate"]["value"] is None or math.isnan(s["forgetting_rate"]["value"])
    table = open(m["files"]["md"]).read()
    assert "FR (%)" in table and "ΔK (points)" in table and "MMLU CS acc" in table
    assert "base ± stderr" in table and "base 95% CI" in table and "McNemar p" in table
