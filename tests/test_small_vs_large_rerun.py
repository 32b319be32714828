"""small_vs_large after a disconnect: "Run all" again reuses every task x configuration's kept answers
(run_dir/responses, helpers.runs.kept_result) instead of generating ~1800 answers again, and reports what the
first run reported; an adapter whose files changed is answered again. On the tiny model (conftest.tiny_model)."""

import dataclasses
import json

import pytest
from conftest import TINY
from test_studies import BagOfWords

from helpers import run_notebook
from helpers.config import load_preset
from helpers.studies import study_config
from helpers.tasks import small_vs_large as svl

slow = pytest.mark.slow


def counting_generate(monkeypatch):
    """helpers.generation.generate, recording the `desc` of each call (run_configurations imports it per call)."""
    import helpers.generation

    calls, real = [], helpers.generation.generate

    def generate(*args, **kwargs):
        calls.append(kwargs["desc"])
        return real(*args, **kwargs)

    monkeypatch.setattr(helpers.generation, "generate", generate)
    return calls


@slow
def test_run_configurations_generates_only_what_is_not_kept(tiny_model, monkeypatch, tmp_path):
    from helpers.modeling import add_lora, load_model

    cfg = study_config("small_vs_large", {**load_preset("small_vs_large", "smoke"), "model": tiny_model,
                                          "large_model": "", "tasks": ["gsm8k"]})
    prepared = {"gsm8k": svl.prepare_task(svl.get_task("gsm8k"), cfg, BagOfWords())}
    llm, tokenizer, info = load_model(cfg.model, max_seq_length=cfg.max_seq_length, load_in_4bit=cfg.load_in_4bit)
    llm = add_lora(llm, info, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout, targets=cfg.lora_targets,
                   seed=cfg.seed, gradient_checkpointing=cfg.gradient_checkpointing)
    calls = counting_generate(monkeypatch)
    run_dir = tmp_path / "run"

    first, trained = svl.run_configurations(llm, tokenizer, info, prepared, cfg, run_dir)
    assert calls == [f"gsm8k {c}" for c in svl.CONFIGURATIONS] and list(first["gsm8k"]) == svl.CONFIGURATIONS
    for config, texts in first["gsm8k"].items():  # kept as generated, under the identity of what produced them
        kept = json.loads(svl.responses_path(run_dir, "gsm8k", config).read_text())
        assert kept["result"] == texts and len(texts) == len(prepared["gsm8k"]["test"])
        identity = kept["identity"]
        assert identity["configuration"] == config and ("adapter" in identity) == (config in svl.ADAPTER)

    calls.clear()  # "Run all" again: nothing generated, the same answers
    again, trained_again = svl.run_configurations(llm, tokenizer, info, prepared, cfg, run_dir)
    assert calls == [] and again == first
    assert {k: {**v, "reused_adapter": True} for k, v in trained.items()} == trained_again
    # what the notebook asks before it loads the model: everything kept, the same as run_configurations returns
    assert svl.kept_configurations(prepared, cfg, run_dir) == (first, trained_again)
    assert svl.kept_configurations(prepared, dataclasses.replace(cfg, resume=False), run_dir) is None
    assert svl.kept_configurations(prepared, dataclasses.replace(cfg, max_new_tokens=9), run_dir) is None  # settings
    # other training pairs (the same adapter files): the adapter is not the one these answers need
    other = {"gsm8k": {**prepared["gsm8k"], "train_pairs": {**prepared["gsm8k"]["train_pairs"],
                                                            "icl": prepared["gsm8k"]["train_pairs"]["icl"][1:]}}}
    assert svl.kept_configurations(other, cfg, run_dir) is None
    base = svl.responses_path(run_dir, "gsm8k", "base")
    kept_base = base.read_bytes()
    base.unlink()  # one answer file missing: the model must load
    assert svl.kept_configurations(prepared, cfg, run_dir) is None
    base.write_bytes(kept_base)

    # the plain adapter's files change (as when it is trained again): only its two configurations answer again
    (run_dir / "adapters" / "gsm8k" / "plain" / "adapter" / "README.md").write_text("trained again\n")
    assert svl.kept_configurations(prepared, cfg, run_dir) is None
    calls.clear()
    third, _ = svl.run_configurations(llm, tokenizer, info, prepared, cfg, run_dir)
    assert calls == ["gsm8k qlora", "gsm8k icl+qlora"] and third == first  # the same adapter weights: same answers


@slow
def test_a_rerun_of_the_notebook_reuses_every_kept_answer_and_reports_the_same(tiny_model, tmp_path):
    params = {"output_root": str(tmp_path / "runs"), "model": tiny_model, "large_model": tiny_model}
    run_dir = run_notebook.execute("small_vs_large", "smoke", params, log_output=False)
    kept = sorted((run_dir / "responses").glob("*.json"))
    assert [p.name for p in kept] == sorted(f"{t}.{c}.json" for t in ("gsm8k", "medqa", "beer")
                                            for c in svl.CONFIGURATIONS)
    stamps = {p.name: p.stat().st_mtime_ns for p in kept}
    first = {name: (run_dir / name).read_bytes() for name in ("metrics.json", "generations.jsonl",
                                                               "small_vs_large_table.csv", "small_vs_large_table.md")}
    first_model = json.loads((run_dir / "run.json").read_text())["model"]

    assert run_notebook.execute("small_vs_large", "smoke", params, log_output=False) == run_dir
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "responses").glob("*.json")} == stamps  # none rewritten
    output = (run_dir / "small_vs_large.ipynb").read_text()
    assert output.count("the small model is not loaded") == 1  # every answer kept: no model loaded
    for name in ("generations.jsonl", "small_vs_large_table.csv", "small_vs_large_table.md"):
        assert (run_dir / name).read_bytes() == first[name], name
    m1, m2 = json.loads(first["metrics.json"]), json.loads((run_dir / "metrics.json").read_text())
    assert m2["large_model"] == f"large ({TINY})"
    # what the run measured is the same; what says how this run went (timings, reused adapters, new workbook rows)
    # is its own
    run_only = {"timings_s", "train", "workbook_update"}
    assert {k: v for k, v in m1.items() if k not in run_only} == {k: v for k, v in m2.items() if k not in run_only}
    assert {k: {**v, "reused_adapter": True} for k, v in m1["train"].items()} == m2["train"]
    assert "load" in m1["timings_s"] and "load" not in m2["timings_s"]
    record = json.loads((run_dir / "run.json").read_text())  # the model as the first run loaded it
    assert record["model"] == first_model and record["model"]["backend"] == m2["backend"] == m1["backend"]
