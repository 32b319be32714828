"""Forgetting after instruction SFT: a small model is fine-tuned on Alpaca-format instructions and
base and fine-tuned are evaluated on HellaSwag, GSM8K and the MMLU computer-science subjects.

    >>> data = load_eval_data(cfg)
    >>> scores = evaluate(llm, tokenizer, info, data, cfg, desc="base")
    >>> summary = forgetting_summary(base_scores, tuned_scores, seed=0)  # FR, ΔA, ΔK with intervals
    >>> paired = paired_differences(base_scores, tuned_scores, seed=0)  # FT - base per metric, McNemar

Each accuracy carries two uncertainties under their own names (helpers.stats): `stderr`, lm-eval's
standard error, which is what the study prints as its ± (it calls it a 95% interval), and
`ci_low`/`ci_high`, a Wilson 95% interval. Base and fine-tuned answer the same items, so their
difference gets a paired bootstrap interval and the exact McNemar test.

Prompts and scoring follow lm-evaluation-harness (0.4.13): HellaSwag's preprocessing and acc/acc_norm
(lm_eval/tasks/hellaswag/{hellaswag.yaml,utils.py}), GSM8K's "Question: ..\\nAnswer:" n-shot format and
strict/flexible filters (lm_eval/tasks/gsm8k/gsm8k.yaml), MMLU's zero-shot template
(lm_eval/tasks/mmlu/default/_default_template_yaml).
"""

from __future__ import annotations

import dataclasses
import math
import re

from helpers.config import ConfigError, InstructConfig
from helpers.data import HubData, load_records
from helpers.metrics import gsm8k_extract, gsm8k_score
from helpers.stats import forgetting_measures, paired_comparison, score_summary
from helpers.tasks import mmlu_data

ALPACA = HubData("tatsu-lab/alpaca", "alpaca_sample.jsonl", ("instruction", "input", "output"))
# Rowan/hellaswag on the hub is a loading script (hellaswag.py), which datasets 4 refuses to run; the
# hub's own parquet conversion of it (branch refs/convert/parquet, default/<split>/0000.parquet) has the
# same rows and columns. lm-eval 0.4.13's hellaswag.yaml names only dataset_path: Rowan/hellaswag and
# passes dataset_kwargs on to load_dataset, so `revision` is what both our loader and lm-eval accept.
HELLASWAG_REVISION = "refs/convert/parquet"
HELLASWAG = HubData("Rowan/hellaswag", "hellaswag_sample.jsonl",
                    ("activity_label", "ctx_a", "ctx_b", "endings", "label"), split="validation",
                    revision=HELLASWAG_REVISION)
GSM8K_TEST = HubData("openai/gsm8k", "gsm8k_test_sample.jsonl", ("question", "answer"), config="main", split="test")
GSM8K_TRAIN = HubData("openai/gsm8k", "gsm8k_train_sample.jsonl", ("question", "answer"), config="main")
MMLU_LOCAL = "mmlu_cs_sample.jsonl"
# The MMLU computer-science subjects (cais/mmlu test questions: 100, 100, 100, 112), pooled as an option.
MMLU_CS = ["college_computer_science", "high_school_computer_science", "computer_security", "machine_learning"]
# The default: one 100-question subject. The study's MMLU CS ± (47.00 ± 5.02, one lm-eval stderr) gives
# n = 100, so one subject; it does not say which. Of the two subjects named computer science, models
# usually score higher on the high-school one, the likelier of the two for a 1B model's 47%;
# computer_security is not computer science by name, and machine_learning has 112 questions.
MMLU_SUBJECTS = ["high_school_computer_science"]


def alpaca_pair(row: dict) -> tuple[str, str]:
    """Instruction (and input, when there is one) as the user turn, output as the answer."""
    prompt = row["instruction"].strip()
    if (row.get("input") or "").strip():
        prompt += "\n\n" + row["input"].strip()
    return prompt, row["output"].strip()


def hellaswag_preprocess(text: str) -> str:
    """lm_eval/tasks/hellaswag/utils.py `preprocess`."""
    text = text.strip()
    # NOTE: Brackets are artifacts of the WikiHow dataset portion of HellaSwag.
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def hellaswag_item(doc: dict) -> tuple[str, list[str], int]:
    """(context, endings, gold) as lm_eval/tasks/hellaswag/utils.py `process_docs` builds them."""
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return (hellaswag_preprocess(doc["activity_label"] + ": " + ctx),
            [hellaswag_preprocess(e) for e in doc["endings"]], int(doc["label"]))


def mmlu_item(doc) -> tuple[str, list[str], int]:
    """(lm-eval's MMLU prompt, the letters as continuations, gold) of a cais/mmlu row or a Question:
    the prompt is helpers.tasks.mmlu_data.mmlu_prompt, the one mmlu_teacher scores with too."""
    q = doc if isinstance(doc, mmlu_data.Question) else mmlu_data.question_from_row(doc)
    return mmlu_data.mmlu_prompt(q), list(mmlu_data.LETTERS), q.answer


def gsm8k_prompt(question: str, shots: list[dict]) -> str:
    """lm-eval's gsm8k: 'Question: {q}\\nAnswer: {a}' examples separated by a blank line."""
    parts = [f"Question: {s['question']}\nAnswer: {s['answer']}" for s in shots]
    return "\n\n".join([*parts, f"Question: {question}\nAnswer:"])


def cut_at(text: str, stops=("Question:",)) -> str:
    """The response up to the first stop string (lm-eval's `until`)."""
    for stop in stops:
        text = text.split(stop)[0]
    return text


@dataclasses.dataclass
class ForgettingConfig(InstructConfig):
    """forgetting: Alpaca SFT, then base vs fine-tuned on HellaSwag, GSM8K and MMLU CS."""

    model: str = "llama-3.2-1b"
    data_source: str = "hub"
    n_train: int = 2000
    # The study states no batch size. 8 examples a step as one micro-batch of 8, not Unsloth's 2 x 4: the same
    # examples and loss an update, and on an H200 5.4x raw Unsloth's tokens/s for TinyLlama (a 1B step is bound
    # by kernel launches, not arithmetic; PERFORMANCE.md "Small models", benchmarks/perf/2026-12-02-*.json).
    batch_size: int = 8
    grad_accum: int = 1
    n_hellaswag: int = 0
    n_gsm8k: int = 0
    gsm8k_shots: int = 5
    mmlu_subjects: list = dataclasses.field(default_factory=lambda: list(MMLU_SUBJECTS))
    n_mmlu: int = 0
    max_seq_length: int = 1024
    eval_batch_size: int = 16
    max_new_tokens: int = 256
    lm_eval: bool = False
    lm_eval_limit: int = 0
    # Unsloth's per-layer CUDA graphs (GPU only; batches padded to multiples of 64 tokens): TinyLlama 1.85x with
    # gradient checkpointing on an H200, the same losses (PERFORMANCE.md); off by default: not measured on a T4
    cuda_graphs: bool = False

    def validate(self) -> None:
        super().validate()
        if not self.data_source.strip():
            raise ConfigError("data_source is empty: use 'hub', 'local' or a folder with the data files")
        if self.n_train < 1:
            raise ConfigError(f"n_train must be >= 1, got {self.n_train}")
        for key in ("n_hellaswag", "n_gsm8k", "n_mmlu", "gsm8k_shots", "lm_eval_limit"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0 (0 = all, or no shots), got {getattr(self, key)}")
        if not self.mmlu_subjects:
            raise ConfigError("mmlu_subjects is empty: e.g. ['college_computer_science']")


def load_eval_data(cfg) -> dict:
    """HellaSwag, GSM8K (test + the train rows used as shots) and MMLU items for cfg.data_source (MMLU by
    helpers.tasks.mmlu_data.load_mmlu, the loader mmlu_teacher uses)."""
    src = dict(source=cfg.data_source, param="data_source")
    data = {
        "hellaswag": [hellaswag_item(d) for d in load_records(HELLASWAG, n=cfg.n_hellaswag, **src)],
        "gsm8k": load_records(GSM8K_TEST, n=cfg.n_gsm8k, **src),
        "gsm8k_shots": load_records(GSM8K_TRAIN, n=cfg.gsm8k_shots, **src) if cfg.gsm8k_shots else [],
    }
    mmlu = mmlu_data.load_mmlu(cfg.mmlu_subjects, source=cfg.data_source, max_questions=cfg.n_mmlu,
                               local_file=MMLU_LOCAL, param="data_source")
    data["mmlu"] = [mmlu_item(q) for q in mmlu]
    data["mmlu_subject"] = [q.subject for q in mmlu]
    return data


def item_scores(values) -> dict:
    """Mean, n, lm-eval's `stderr` and a Wilson 95% interval (`ci_low`, `ci_high`) of per-item 0/1
    scores, with the scores themselves (`items`): the paired comparisons need them item by item."""
    return score_summary(values) | {"items": [float(v) for v in values]}


def evaluate(llm, tokenizer, info, data: dict, cfg, desc: str) -> tuple[dict, dict]:
    """(scores, per-item records) of one model state: HellaSwag acc/acc_norm, GSM8K strict/flexible and
    numeric (the study's match within 0.01), MMLU acc, each as `item_scores`."""
    from helpers.generation import generate  # the model stack, only once a model is scored
    from helpers.loglik import score_choices

    hs = score_choices(llm, tokenizer, data["hellaswag"], batch_size=cfg.eval_batch_size)
    mmlu = score_choices(llm, tokenizer, data["mmlu"], batch_size=cfg.eval_batch_size)
    prompts = [gsm8k_prompt(d["question"], data["gsm8k_shots"]) for d in data["gsm8k"]]
    responses = [cut_at(r) for r in generate(llm, tokenizer, prompts, chat=False, stop_token_ids=info.stop_token_ids,
                                             max_new_tokens=cfg.max_new_tokens, batch_size=cfg.eval_batch_size,
                                             desc=f"gsm8k {desc}")]
    strict = [gsm8k_score(r, d["answer"], "strict") for r, d in zip(responses, data["gsm8k"])]
    flexible = [gsm8k_score(r, d["answer"], "flexible") for r, d in zip(responses, data["gsm8k"])]
    numeric = [gsm8k_score(r, d["answer"], "numeric") for r, d in zip(responses, data["gsm8k"])]
    scores = {"hellaswag_acc": item_scores(hs["acc"]), "hellaswag_acc_norm": item_scores(hs["acc_norm"]),
              "gsm8k_strict": item_scores(strict), "gsm8k_flexible": item_scores(flexible),
              "gsm8k_numeric": item_scores(numeric), "mmlu_acc": item_scores(mmlu["acc"])}
    items = {
        "hellaswag": [{"pred": p, "pred_norm": q, "gold": g, "logliks": ll} for p, q, (_, _, g), ll in
                      zip(hs["pred"], hs["pred_norm"], data["hellaswag"], hs["logliks"])],
        "gsm8k": [{"question": d["question"], "reference": d["answer"], "response": r,
                   "strict": gsm8k_extract(r, "strict"), "flexible": gsm8k_extract(r, "flexible"),
                   "strict_match": s, "flexible_match": f, "numeric_match": x}
                  for d, r, s, f, x in zip(data["gsm8k"], responses, strict, flexible, numeric)],
        "mmlu": [{"subject": s, "pred": "ABCD"[p], "gold": "ABCD"[g], "logliks": ll} for s, p, (_, _, g), ll in
                 zip(data["mmlu_subject"], mmlu["pred"], data["mmlu"], mmlu["logliks"])],
    }
    return scores, items


# FR, ΔA and ΔK are computed from these accuracies (the study's Table 2 notes)
MEASURE_FROM = {"forgetting_rate": "gsm8k_flexible", "ability_augmentation": "hellaswag_acc_norm",
                "knowledge_loss": "mmlu_acc"}


def forgetting_summary(base: dict, tuned: dict, seed: int = 0) -> dict:
    """FR from GSM8K flexible accuracy, ΔA from HellaSwag acc_norm, ΔK from MMLU accuracy, over the
    items both models answered (helpers.stats.forgetting_measures): each a `value` with a paired
    bootstrap 95% interval (`ci_low`, `ci_high`) and the McNemar p-value; ΔA and ΔK also with
    `pm_study`, the study's ± (√(SE_base² + SE_FT²) of the two lm-eval stderrs). FR in percent,
    ΔA and ΔK in percentage points."""
    return forgetting_measures({k: base[k]["items"] for k in MEASURE_FROM.values()},
                               {k: tuned[k]["items"] for k in MEASURE_FROM.values()}, seed=seed)


METRIC_NAMES = {"hellaswag_acc": "HellaSwag acc", "hellaswag_acc_norm": "HellaSwag acc_norm",
                "gsm8k_strict": "GSM8K strict-match", "gsm8k_flexible": "GSM8K flexible-extract",
                "gsm8k_numeric": "GSM8K numeric (±0.01)", "mmlu_acc": "MMLU CS acc"}
MEASURE_NAMES = {"forgetting_rate": "FR (%)", "ability_augmentation": "ΔA (points)", "knowledge_loss": "ΔK (points)"}


def paired_differences(base: dict, tuned: dict, seed: int = 0) -> dict:
    """Fine-tuned minus base on the same items, per metric (helpers.stats.paired_comparison):
    `difference`, a paired bootstrap 95% interval (`ci_low`, `ci_high`), the exact McNemar p-value
    (`mcnemar_p`) and how many items only the fine-tuned (`finetuned_only`) or only the base model
    (`base_only`) got right. Fractions, like the accuracies."""
    out = {}
    for key in METRIC_NAMES:
        cmp = paired_comparison(tuned[key]["items"], base[key]["items"], seed=seed)
        cmp["finetuned_only"], cmp["base_only"] = cmp.pop("first_only", None), cmp.pop("second_only", None)
        out[key] = cmp
    return out


def _interval(low, high, scale: float = 100.0) -> str:
    """'[low, high]' in points, '' when the interval is undefined (too few items)."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    return f"[{scale * low:.1f}, {scale * high:.1f}]"


def _p(value) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.3g}"


def scores_table(scores: dict):
    """One model state's accuracies in percent: mean, lm-eval's ± stderr, the Wilson 95% interval, n."""
    import pandas as pd

    rows = [{"metric": name, "accuracy": 100 * scores[k]["mean"], "± stderr": 100 * scores[k]["stderr"],
             "95% CI": _interval(scores[k]["ci_low"], scores[k]["ci_high"]), "n": scores[k]["n"]}
            for k, name in METRIC_NAMES.items()]
    return pd.DataFrame(rows).set_index("metric")


def results_table(base: dict, tuned: dict, summary: dict, paired: dict):
    """The study's table, in percent: each metric base and fine-tuned with lm-eval's ± stderr (what the
    study prints) and the Wilson 95% interval, then fine-tuned − base on the same items with its paired
    bootstrap 95% interval and McNemar p; then FR, ΔA, ΔK in the fine-tuned column, ΔA and ΔK with the
    study's ± (√(SE_base² + SE_FT²)) beside their paired bootstrap 95% interval."""
    import pandas as pd

    rows = []
    for key, name in METRIC_NAMES.items():
        b, t, d = base[key], tuned[key], paired[key]
        rows.append({"metric": name, "base": 100 * b["mean"], "base ± stderr": 100 * b["stderr"],
                     "base 95% CI": _interval(b["ci_low"], b["ci_high"]), "fine-tuned": 100 * t["mean"],
                     "fine-tuned ± stderr": 100 * t["stderr"],
                     "fine-tuned 95% CI": _interval(t["ci_low"], t["ci_high"]),
                     "n": b["n"], "FT − base": 100 * d["difference"],
                     "FT − base 95% CI (paired)": _interval(d["ci_low"], d["ci_high"]),
                     "McNemar p": _p(d.get("mcnemar_p"))})
    for key, name in MEASURE_NAMES.items():
        m = summary[key]
        rows.append({"metric": name, "fine-tuned": m["value"], "fine-tuned ± stderr": m.get("pm_study", math.nan),
                     "fine-tuned 95% CI": _interval(m["ci_low"], m["ci_high"], scale=1.0), "n": m["n"],
                     "McNemar p": _p(m.get("mcnemar_p"))})
    return pd.DataFrame(rows).set_index("metric")


def error_bars(scores: dict, keys) -> list[list[float]]:
    """[below, above] the mean, in points, of each metric's 95% interval: matplotlib's asymmetric
    `yerr` (a Wilson interval is not symmetric about the mean); 0 where it is undefined."""
    below = [100 * (scores[k]["mean"] - scores[k]["ci_low"]) for k in keys]
    above = [100 * (scores[k]["ci_high"] - scores[k]["mean"]) for k in keys]
    return [[0.0 if math.isnan(v) else v for v in side] for side in (below, above)]


def plot_forgetting(base: dict, tuned: dict, path):
    """Base vs fine-tuned accuracy per metric with their 95% intervals (Wilson)."""
    import numpy as np

    from helpers.plots import save_figure, subplots

    keys = list(METRIC_NAMES)
    x = np.arange(len(keys))
    fig, ax = subplots(figsize=(8, 3.8))
    for offset, (label, scores) in zip((-0.2, 0.2), (("base", base), ("fine-tuned", tuned))):
        ax.bar(x + offset, [100 * scores[k]["mean"] for k in keys], 0.4, label=label,
               yerr=error_bars(scores, keys), capsize=3)
    ax.set_xticks(x, [METRIC_NAMES[k] for k in keys], rotation=20)
    ax.set_ylabel("accuracy (%), 95% interval")
    ax.legend()
    return save_figure(fig, path)


def lm_eval_tasks(cfg, folder) -> tuple[list[str], object]:
    """lm-eval task names and a TaskManager for cfg.data_source. On the hub: lm-eval's own `hellaswag`
    (read from the parquet conversion), `gsm8k`, `mmlu_<subject>`. Otherwise the same task files
    (`include:`) pointed at the local data (one file per MMLU subject is written to `folder`), named
    `<task>_local`."""
    import json
    from pathlib import Path

    import lm_eval
    from lm_eval.tasks import TaskManager

    subjects = [f"mmlu_{s}" for s in cfg.mmlu_subjects]
    tasks_dir = Path(lm_eval.__file__).parent / "tasks"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if cfg.data_source == "hub":  # lm-eval's hellaswag on the parquet conversion (see HELLASWAG); same name,
        # a task in include_path overrides the built-in one (lm_eval/tasks/manager.py)
        (folder / "hellaswag.yaml").write_text(f"include: {tasks_dir / 'hellaswag' / 'hellaswag.yaml'}\n"
                                               f"task: hellaswag\ndataset_kwargs:\n  revision: {HELLASWAG_REVISION}\n")
        return ["hellaswag", "gsm8k", *subjects], TaskManager(include_path=str(folder))

    from helpers.data import _local_path

    src = cfg.data_source
    files = {"hellaswag": {"validation": _local_path(HELLASWAG, src)},
             "gsm8k": {"train": _local_path(GSM8K_TRAIN, src), "test": _local_path(GSM8K_TEST, src)}}
    rows = load_records(HubData("cais/mmlu", MMLU_LOCAL, ("subject",)), source=src, n=0, param="data_source")
    for subject in cfg.mmlu_subjects:
        path = folder / f"mmlu_{subject}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["subject"] == subject))
        files[f"mmlu_{subject}"] = {"test": path, "dev": path}
    names = []
    for task, data_files in files.items():
        source = tasks_dir / ("mmlu/default" if task.startswith("mmlu") else task) / f"{task}.yaml"
        extra = "training_split: null\n" if task == "hellaswag" else ""
        (folder / f"{task}_local.yaml").write_text(
            f"include: {source}\ntask: {task}_local\ntag: []\ndataset_path: json\ndataset_name: null\n{extra}"
            "dataset_kwargs:\n  data_files:\n" + "".join(f"    {k}: {v}\n" for k, v in data_files.items()))
        names.append(f"{task}_local")
    return names, TaskManager(include_path=str(folder))


def run_lm_eval(source: str, adapter: str | None, cfg, folder) -> dict:
    """The same benchmarks through lm-evaluation-harness (HF backend on the dense weights, the peft
    adapter for the fine-tuned model), `n_*` items each like ours, so its numbers stand beside ours.
    Its GSM8K shots are drawn at random from train (lm-eval's sampler), ours are the first rows."""
    try:
        import lm_eval
    except ImportError:
        raise ConfigError("lm_eval=True needs lm-evaluation-harness: pip install lm-eval==0.4.13") from None
    tasks, manager = lm_eval_tasks(cfg, folder)
    limits = {"hellaswag": cfg.n_hellaswag, "gsm8k": cfg.n_gsm8k}
    results = {}
    for task in tasks:
        limit = cfg.lm_eval_limit or limits.get(task.removesuffix("_local"), cfg.n_mmlu) or None
        args = {"pretrained": source, "device": "cuda" if torch_cuda() else "cpu",
                **({"peft": adapter} if adapter else {})}
        out = lm_eval.simple_evaluate(model="hf", model_args=args, tasks=[task], task_manager=manager, limit=limit,
                                      batch_size=cfg.eval_batch_size, log_samples=True,
                                      gen_kwargs={"max_gen_toks": cfg.max_new_tokens},
                                      num_fewshot=cfg.gsm8k_shots if task.startswith("gsm8k") else None)
        res = {k: v for k, v in out["results"][task].items() if isinstance(v, (int, float))}
        if not task.startswith("gsm8k"):
            res["logliks"] = [[r[0] for r in s["filtered_resps"]] for s in out["samples"][task]]
        results[task.removesuffix("_local")] = res
    return results


def lm_eval_table(base: dict, tuned: dict, lm: dict):
    """Ours beside lm-eval's, in percent (MMLU: lm-eval's subjects pooled by their item counts; GSM8K
    numeric: NaN, lm-eval has no such metric)."""
    import pandas as pd

    def theirs(res, key):
        if key == "gsm8k_numeric":
            return math.nan
        if key == "mmlu_acc":
            parts = [(v["acc,none"], v.get("sample_len", 1)) for k, v in res.items() if k.startswith("mmlu_")]
            return 100 * sum(a * n for a, n in parts) / sum(n for _, n in parts)
        task, metric = {"hellaswag_acc": ("hellaswag", "acc,none"),
                        "hellaswag_acc_norm": ("hellaswag", "acc_norm,none"),
                        "gsm8k_strict": ("gsm8k", "exact_match,strict-match"),
                        "gsm8k_flexible": ("gsm8k", "exact_match,flexible-extract")}[key]
        return 100 * res[task][metric]

    rows = [{"metric": name, "ours base": 100 * base[k]["mean"], "lm-eval base": theirs(lm["base"], k),
             "ours fine-tuned": 100 * tuned[k]["mean"], "lm-eval fine-tuned": theirs(lm["finetuned"], k)}
            for k, name in METRIC_NAMES.items()]
    return pd.DataFrame(rows).set_index("metric")


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _accuracy(s: dict) -> str:
    return f"{100 * s['mean']:5.1f} ± {100 * s['stderr']:4.1f} {_interval(s['ci_low'], s['ci_high'])}"


def report(metrics: dict) -> str:
    """The run in a few lines: each accuracy as mean ± lm-eval's stderr [Wilson 95% interval], the
    paired fine-tuned − base difference, then FR, ΔA, ΔK (ΔA, ΔK with the study's ±)."""
    lines = [f"forgetting on {metrics['model']}: {metrics['n_train']} Alpaca examples, "
             f"{metrics['train']['steps']} steps (± lm-eval stderr, [95% interval])"]
    paired = metrics.get("paired") or {}
    for key, name in METRIC_NAMES.items():
        b, t = metrics["base"].get(key), metrics["finetuned"].get(key)
        if b is None or t is None:
            continue
        line = f"  {name:<24} base {_accuracy(b)}   fine-tuned {_accuracy(t)}   (n={b['n']})"
        if key in paired:
            d = paired[key]
            line += (f"   FT − base {100 * d['difference']:+.1f} {_interval(d['ci_low'], d['ci_high'])}"
                     f", McNemar p {_p(d.get('mcnemar_p')) or '-'}")
        lines.append(line)
    for key, name in MEASURE_NAMES.items():
        m = metrics["summary"][key]
        pm = f" ± {m['pm_study']:.1f} (the study's ±)" if "pm_study" in m else ""
        lines.append(f"  {name:<24} {m['value']:+.1f}{pm} {_interval(m['ci_low'], m['ci_high'], scale=1.0)} "
                     f"{m['unit']}, McNemar p {_p(m.get('mcnemar_p')) or '-'}")
    return "\n".join(lines)
