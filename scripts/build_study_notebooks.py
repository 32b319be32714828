"""Write notebooks/forgetting.ipynb and notebooks/small_vs_large.ipynb (no outputs).

    python scripts/build_study_notebooks.py

The parameters cell is generated from the study's config defaults (so the two always agree, which
tests/test_notebooks.py checks), with a short comment per parameter; the badges under the title and the
setup cell come from scripts/sync_notebooks.py (the same in every notebook); the rest is the cells below.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sync_notebooks import setup_cell, with_badges  # noqa: E402  (badges and setup cell: one source)

from helpers.studies import STUDIES  # noqa: E402

SHARED_COMMENTS = {
    "model": "registry name (configs/models.yaml), hub id, or local folder",
    "seed": "",
    "load_in_4bit": "QLoRA (NF4, double quant). False: plain LoRA",
    "lora_targets": "",
    "epochs": "",
    "max_steps": "-1: train whole epochs; > 0 caps the steps (demo, tests)",
    "batch_size": "",
    "grad_accum": "",
    "warmup_steps": "",
    "max_seq_length": "longer examples are cut, answer-less ones dropped (counted)",
    "gradient_checkpointing": "",
    "save_steps": "checkpoint interval: how much a disconnect can cost",
    "optim": "auto: GPU adamw_torch_fused under 3B params, else adamw_8bit; CPU adamw_torch",
    "output_root": "run folder: <output_root>/<study>/<model>-<config hash>",
    "run_name": "",
    "resume": "continue an interrupted run of the same settings",
    "report_to": "also log to: \"tensorboard\" or \"wandb\" (installed); \"none\": loss curve PNG only",
}

COMMENTS = {
    "forgetting": {
        **SHARED_COMMENTS,
        "model": "the study: llama-3.2-1b (2k examples) and tinyllama-1.1b (50k)",
        "data_source": "hub, local (benchmark_data/data/, offline) or a folder with files named like those",
        "n_train": "Alpaca examples for SFT (the study: 2000 for Llama 3.2 1B, 50000 for TinyLlama)",
        "n_hellaswag": "HellaSwag validation items (0: all)",
        "n_gsm8k": "GSM8K test items (0: all)",
        "gsm8k_shots": "lm-eval's gsm8k default is 5-shot; shots are the first train rows",
        "mmlu_subjects": "one 100-question subject, as the study's ± imply; forgetting.MMLU_CS: the four pooled",
        "n_mmlu": "items per MMLU subject (0: all)",
        "eval_batch_size": "prompts per forward pass when scoring and generating",
        "max_new_tokens": "GSM8K answer length (cut at the next 'Question:' as lm-eval does)",
        "lm_eval": "also run lm-evaluation-harness on the same items, its numbers beside ours",
        "lm_eval_limit": "items per lm-eval task (0: all)",
        "cuda_graphs": "GPU: Unsloth's per-layer CUDA graphs, batches padded to 64-token multiples",
    },
    "small_vs_large": {
        **SHARED_COMMENTS,
        "model": "the study: Mistral 7B Instruct (v0.3 here). smollm2-135m (embedded) runs on a CPU",
        "tasks": "gsm8k (strict/flexible), medqa (BERTScore), beer (style classification)",
        "configurations": "which of the five rows to run (all five: the study)",
        "data_source": "hub, local (benchmark_data/data/, offline) or a folder with files named like those",
        "n_pool": "training pool per task: QLoRA data and the source of demonstrations",
        "n_test": "test items per task (the same for every configuration)",
        "k_demos": "retrieved demonstrations per prompt (Dr.ICL)",
        "retriever": "sentence-transformers encoder; offline: all-minilm-l6-v2 (PyPI package)",
        "bertscore_model": "BERTScore encoder; the English default of bert-score is roberta-large",
        "bertscore_layers": "which layer of the encoder BERTScore uses (roberta-large: 17)",
        "f1_average": "beer P/R/F1 in the table. macro: every style present weighs the same; weighted: by support",
        "large_model": "the comparison row: registry name, hub id or API model name (empty: no row)",
        "large_backend": "local (helpers.generation) or openai (any OpenAI-compatible endpoint)",
        "large_base_url": "openai backend: e.g. https://api.openai.com/v1",
        "large_api_key_env": "openai backend: the environment variable that holds the key",
        "large_model_demos": "False: zero-shot, as the study asked its large model. True: the demonstration prompts",
        "optim": "auto: the study's paged optimizer on a GPU (paged_adamw_8bit), adamw_torch on a CPU",
        "eval_batch_size": "prompts per generation batch",
        "max_new_tokens": "answer length",
    },
}


def start_cell(study: str) -> str:
    """The cell after the parameters: typed config, run folder, timer."""
    return (f'cfg = study_config("{study}", collect_params(globals(), _names_before_parameters))\n'
            f'run_dir = run_folder("{study}", cfg)\n'
            'run_dir.mkdir(parents=True, exist_ok=True)\ntimer = Timer()\nprint("run folder:", run_dir)')


def parameters_cell(study: str) -> str:
    cfg = STUDIES[study].config()
    comments = COMMENTS[study]
    lines = []
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        text = f"{field.name} = {value!r}"
        note = comments.get(field.name, "")
        assert "=" not in note, f"papermill misreads '=' in a parameters comment ({field.name})"
        line = f"{text:<30}# {note}" if len(text) < 30 else f"{text}  # {note}"  # a long value: two spaces
        if note and len(line) > 120:
            lines += [f"# {note}", text]  # a long value: its comment goes above it
        else:
            lines.append(line if note else text)
    return "\n".join(lines)


def notebook(study: str, title: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    nb.cells.append(nbformat.v4.new_markdown_cell(with_badges(title, study)))
    nb.cells.append(nbformat.v4.new_code_cell(setup_cell()))
    for kind, source in cells:
        if kind == "parameters":
            cell = nbformat.v4.new_code_cell(parameters_cell(study))
            cell.metadata["tags"] = ["parameters"]
        elif kind == "md":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_code_cell(source)
        nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):
        cell.id = f"{study}-{i}"  # stable ids: a rebuild changes only what changed
    return nb


FORGETTING_TITLE = """# Forgetting after instruction tuning: Alpaca SFT, then HellaSwag, GSM8K and MMLU

A small model is fine-tuned with QLoRA on `n_train` Alpaca instructions (`tatsu-lab/alpaca`; the study
used Llama 3.2 1B with 2k and TinyLlama 1.1B with 50k). Base and fine-tuned are evaluated the way
lm-evaluation-harness does it: HellaSwag acc and acc_norm by the log-likelihood of the four endings,
GSM8K strict-match and flexible-extract (and the study's numeric match within 0.01), MMLU computer-science
accuracy. From these: Forgetting Rate FR = (1 − A_flex^FT / A_flex^base)·100%, Ability Augmentation
ΔA = A_norm^FT − A_norm^base and Knowledge Loss ΔK = A^base − A^FT ± √(SE_base² + SE_FT²).
Without internet, `data_source = "local"` uses project-written data in the same schemas."""

FORGETTING_MODEL_NOTE = """**Which Llama 3.2 1B.** The study names the pre-trained base model
(meta-llama/Llama-3.2-1B), and `llama-3.2-1b`, the base, is the default here. Its base GSM8K of 33.5%,
though, is nearer what the instruct model scores than what the base does; `model = "llama-3.2-1b-instruct"`
runs the instruct model, and the published-vs-ours table marks that run not comparable and says why."""

FORGETTING_PM_NOTE = """## Forgetting, ability, knowledge
**The ± here.** The study calls its ± 95% intervals, but each equals one standard error, lm-eval's
`stderr` (MMLU CS 47.00 ± 5.02 is √(0.47·0.53/99), n = 100). So each accuracy is shown with both, named:
`± stderr` (the study's convention) and a Wilson 95% interval. Base and fine-tuned answer the same items,
so their difference gets a paired bootstrap 95% interval and the exact McNemar test (the study states a
paired t-test); ΔA and ΔK show the study's ± √(SE_base² + SE_FT²) beside their paired 95% interval."""

FORGETTING = [
    ("code", '''import helpers  # noqa: F401  (before transformers, so Unsloth can patch it on a GPU)
from helpers.config import collect_params, config_hash
from helpers.data import load_records
from helpers.modeling import add_lora, load_model
from helpers.runs import Timer, files_digest, kept_result, run_folder, write_json, write_metrics, write_run_record
from helpers.sft import build_sft_dataset, train_sft
from helpers.studies import study_config
from helpers.tables import write_table
from helpers.tasks import forgetting

_names_before_parameters = set(dir())'''),
    ("md", FORGETTING_MODEL_NOTE),
    ("parameters", ""),
    ("code", start_cell("forgetting")),
    ("md", "## Data\nAlpaca for training; HellaSwag validation, GSM8K test (shots from train) and MMLU CS test "
           "for evaluation."),
    ("code", '''with timer("data"):
    pairs = [forgetting.alpaca_pair(r) for r in load_records(forgetting.ALPACA, source=cfg.data_source, n=cfg.n_train,
                                                             param="data_source")]
    data = forgetting.load_eval_data(cfg)
print(f"{len(pairs)} training examples; HellaSwag {len(data['hellaswag'])}, GSM8K {len(data['gsm8k'])}, "
      f"MMLU {len(data['mmlu'])} items")
print(data["hellaswag"][0])'''),
    ("md", "## The base model"),
    ("code", '''with timer("load"):
    llm, tokenizer, info = load_model(cfg.model, max_seq_length=cfg.max_seq_length, load_in_4bit=cfg.load_in_4bit)
    llm = add_lora(llm, info, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout, targets=cfg.lora_targets,
                   seed=cfg.seed, gradient_checkpointing=cfg.gradient_checkpointing, cuda_graphs=cfg.cuda_graphs)
write_run_record(run_dir, cfg, study="forgetting", model_info=info)
# each evaluation is kept in the run folder (eval_*.json): a "Run all" after a disconnect does not pay for it again
with timer("eval_base"), llm.disable_adapter():  # adapters off: the base model
    base, base_items = kept_result(run_dir / "eval_base.json", {"stage": "base", "settings": config_hash(cfg)},
                                   lambda: forgetting.evaluate(llm, tokenizer, info, data, cfg, desc="base"))
forgetting.scores_table(base).round(1)'''),
    ("md", "## Alpaca SFT (answer-only loss through the chat template)"),
    ("code", '''dataset = build_sft_dataset(tokenizer, pairs, chat=True, max_length=cfg.max_seq_length)
with timer("train"):
    train_result = train_sft(llm, tokenizer, dataset, run_dir=run_dir, settings=cfg, backend=info.backend,
                             resume=cfg.resume)
with timer("eval_finetuned"):  # kept for this adapter (its files' digest): one trained again is evaluated again
    tuned, tuned_items = kept_result(
        run_dir / "eval_finetuned.json",
        {"stage": "finetuned", "settings": config_hash(cfg), "adapter": files_digest(run_dir / "adapter")},
        lambda: forgetting.evaluate(llm, tokenizer, info, data, cfg, desc="fine-tuned"))
forgetting.scores_table(tuned).round(1)'''),
    ("md", FORGETTING_PM_NOTE),
    ("code", '''summary = forgetting.forgetting_summary(base, tuned, seed=cfg.seed)
paired = forgetting.paired_differences(base, tuned, seed=cfg.seed)  # fine-tuned - base on the same items
table = forgetting.results_table(base, tuned, summary, paired)
files = write_table(table, run_dir / "forgetting_table", digits=1)
files["figure"] = str(forgetting.plot_forgetting(base, tuned, run_dir / "forgetting.png"))
write_json(run_dir / "generations.json", {"base": base_items, "finetuned": tuned_items})
files["generations"] = str(run_dir / "generations.json")
print(open(files["md"]).read())'''),
    ("md", "## Optional: the same benchmarks through lm-evaluation-harness\n`lm_eval = True` runs lm-eval's own "
           "`hellaswag`, `gsm8k` and `mmlu_<subject>` tasks (HF backend; the fine-tuned one with the peft adapter) "
           "so its numbers stand beside ours; with `data_source` local it runs the same task files on the local data."),
    ("code", '''lm_eval_results = None
if cfg.lm_eval:
    with timer("lm_eval"):
        lm_eval_results = {"base": forgetting.run_lm_eval(info.source, None, cfg, run_dir / "lm_eval_tasks"),
                           "finetuned": forgetting.run_lm_eval(info.source, str(run_dir / "adapter"), cfg,
                                                               run_dir / "lm_eval_tasks")}
    print(forgetting.lm_eval_table(base, tuned, lm_eval_results).round(1).to_string())'''),
    ("code", '''from IPython.display import Markdown, display

from helpers.published import add_comparison

metrics = {
    "study": "forgetting", "model": cfg.model, "backend": info.backend, "run_dir": str(run_dir),
    "data_source": cfg.data_source, "n_train": len(dataset), "data": dataset.info.description, "train": train_result,
    "base": base, "finetuned": tuned, "summary": summary, "paired": paired, "lm_eval": lm_eval_results,
    "files": files, "timings_s": timer.seconds,
}
comparison = add_comparison(metrics["study"], metrics, cfg, run_dir)
write_metrics(run_dir, metrics)
print("metrics:", run_dir / "metrics.json")
display(Markdown(comparison))  # published vs this run (md + png in the run folder)'''),
]


SMALL_VS_LARGE_TITLE = """# Small vs large with demonstration retrieval (Dr.ICL): five configurations and a large model

One small model on three tasks: GSM8K (lm-evaluation-harness's strict-match and flexible-extract), open-answer
medical QA in the HealthCareMagic style (BERTScore precision/recall/F1) and beer style from review text
(precision/recall/F1, macro by default). Dr.ICL embeds the training pool with a sentence encoder and prepends each
question's `k_demos` most similar pool examples (cosine) as demonstrations. Five configurations on the same test set:
base; base + ICL; base + QLoRA; base + ICL + QLoRA (demonstrations at test time only); ICL-in-training + QLoRA
(training prompts carry retrieved demonstrations too, never the example itself nor a copy of it; test questions
that are also pool questions are dropped, and both are counted). A large model answers the same test questions
zero-shot, as in the study, for the comparison row. Beer P/R/F1 are over the styles present in the test labels and
predictions, macro and weighted, with F1 also as the harmonic mean of P and R (the study does not say which F1 it
prints). Without internet, `data_source = "local"` and the packaged encoder `all-minilm-l6-v2` run everything
offline."""

SMALL_VS_LARGE = [
    ("code", """import json

import helpers  # noqa: F401  (before transformers, so Unsloth can patch it on a GPU)
from helpers.config import collect_params
from helpers.encoders import load_encoder
from helpers.modeling import add_lora, load_model
from helpers.runs import Timer, recorded_model, run_folder, write_metrics, write_run_record
from helpers.studies import study_config
from helpers.tables import write_table
from helpers.tasks import small_vs_large as svl
from helpers.workbook import update_rating_workbook

_names_before_parameters = set(dir())"""),
    ("parameters", ""),
    ("code", start_cell("small_vs_large")),
    ("md", "## Data and demonstration retrieval\nOne encoder embeds each task's pool; test questions and training "
           "examples get their `k_demos` nearest pool examples."),
    ("code", """with timer("retrieval"):
    encoder = load_encoder(cfg.retriever)
    prepared = {name: svl.prepare_task(svl.get_task(name), cfg, encoder) for name in cfg.tasks}
for name, p in prepared.items():
    print(f"{name}: pool {len(p['pool'])}, test {len(p['test'])}; first test prompt with demonstrations:")
    print(p["prompts"]["demos"][0][:1200], "\\n")"""),
    ("md", "## The small model in five configurations"),
    ("code", """# each task x configuration's answers are kept in run_dir/responses as soon as they are generated:
# a "Run all" after a disconnect answers only what is missing (an adapter trained again is answered again;
# delete a file to redo it), and one that finds every answer kept loads no model
kept_all = svl.kept_configurations(prepared, cfg, run_dir)
if kept_all is None:
    with timer("load"):
        llm, tokenizer, info = load_model(cfg.model, max_seq_length=cfg.max_seq_length, load_in_4bit=cfg.load_in_4bit)
        llm = add_lora(llm, info, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                       targets=cfg.lora_targets, seed=cfg.seed, gradient_checkpointing=cfg.gradient_checkpointing)
    model_info, backend = info, info.backend
else:  # the model as the run that answered recorded it
    model_info = recorded_model(run_dir)
    backend = (model_info or {}).get("backend")
write_run_record(run_dir, cfg, study="small_vs_large", model_info=model_info,
                 extra={"task_versions": {n: svl.get_task(n).version for n in cfg.tasks}})
with timer("small_model"):
    responses, trained = kept_all or svl.run_configurations(llm, tokenizer, info, prepared, cfg, run_dir)
trained"""),
    ("md", "## The large model's row\nThe same test questions, zero-shot as in the study (`large_model_demos = True` "
           "sends the demonstration prompts instead), through a chat backend (`helpers/backends.py`): a registry "
           "model through `helpers.generation` (`large_backend = \"local\"`) or an OpenAI-compatible endpoint "
           "(`\"openai\"`, the key read from the environment variable `large_api_key_env`). Replies are cached in "
           "the run folder."),
    ("code", """large_row, large_failures = None, 0
if cfg.large_model:
    large_row = f"large ({cfg.large_model})"
    large = svl.large_backend(cfg, run_dir / "large_cache")
    kind = svl.prompt_kind("large", cfg.large_model_demos)
    with timer("large_model"):  # one batched request list for all tasks
        prompts = [x for p in prepared.values() for x in p["prompts"][kind]]
        replies, large_failures = svl.answer_all(large, prompts, cfg.max_new_tokens)
    start = 0
    for name, p in prepared.items():
        responses[name][large_row] = replies[start:start + len(p["test"])]
        start += len(p["test"])
    print(large, large.counters(), "failed requests:", large_failures)"""),
    ("md", "## Scores: one table, a figure, every generation"),
    ("code", """with timer("score"):
    results, records = svl.score_all(responses, prepared, cfg)
table = svl.results_table(results, cfg.f1_average)
files = write_table(table, run_dir / "small_vs_large_table", digits=1)
files["figure"] = str(svl.plot_results(table, run_dir / "small_vs_large.png"))
with open(run_dir / "generations.jsonl", "w") as f:
    f.writelines(json.dumps(r, ensure_ascii=False) + "\\n" for r in records)
files["generations"] = str(run_dir / "generations.jsonl")
files["responses"] = str(run_dir / "responses")  # the small model's answers, one file per task x configuration
print(svl.interval_table(results, cfg.f1_average).to_string())  # each score with its named 95% interval
print(svl.paired_table(results).to_string(index=False))  # the same test items, two configurations"""),
    ("md", "## Rating workbook for the open-answer task\nOne row per question, one answer and one 1-5 rating column "
           "per configuration; re-runs keep every rating (helpers/workbook.py)."),
    ("code", """workbook_update = None
if "medqa" in prepared:
    rows, answers = svl.rating_rows(prepared["medqa"], svl.get_task("medqa"), responses["medqa"])
    files["workbook"] = str(run_dir / "ratings_medqa.xlsx")
    workbook_update = update_rating_workbook(
        files["workbook"], rows, answers=answers, text_columns=["question", "reference"], title="medqa",
        instructions="Rate each doctor's answer 1-5 for medical correctness and helpfulness against the reference. "
                     "Leave a cell empty if you did not rate it. Put your name in 'reviewer'.")
workbook_update"""),
    ("code", """from IPython.display import Markdown, display

from helpers.published import add_comparison

metrics = {
    "study": "small_vs_large", "model": cfg.model, "backend": backend, "run_dir": str(run_dir),
    "data_source": cfg.data_source, "n_pool": cfg.n_pool, "k_demos": cfg.k_demos, "retriever": cfg.retriever,
    "bertscore_model": cfg.bertscore_model, "f1_average": cfg.f1_average, "large_model": large_row,
    "large_failures": large_failures,
    "n_test": {n: len(p["test"]) for n, p in prepared.items()},
    "labels": {n: p["labels"] for n, p in prepared.items() if p["labels"]},
    "retrieval": {n: {"test_demos": p["test_demos"], "train_demos": p["train_demos"], **p["retrieval"]}
                  for n, p in prepared.items()},
    "results": results, "table": json.loads(table.to_json(orient="index")), "train": trained,
    "workbook_update": workbook_update, "files": files, "timings_s": timer.seconds,
}
comparison = add_comparison(metrics["study"], metrics, cfg, run_dir)
write_metrics(run_dir, metrics)
print("metrics:", run_dir / "metrics.json")
display(Markdown(comparison))  # published vs this run (md + png in the run folder)"""),
]


def main() -> None:
    for study, (title, cells) in {"forgetting": (FORGETTING_TITLE, FORGETTING),
                                  "small_vs_large": (SMALL_VS_LARGE_TITLE, SMALL_VS_LARGE)}.items():
        path = ROOT / "notebooks" / f"{study}.ipynb"
        nbformat.write(notebook(study, title, cells), path)
        print("wrote", path.relative_to(ROOT))


if __name__ == "__main__":
    main()
