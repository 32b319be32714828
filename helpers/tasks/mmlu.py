"""MMLU knowledge transfer from a teacher (the "generalist to specialist" study, MMLU part): the
study's configuration, the evaluation of students and teacher, the fine-tunings and the report.

Evaluation: 4-option multiple choice on MMLU subjects (helpers.tasks.mmlu_data: hub `cais/mmlu`, the
project-written fixture, or a file of the same schema). Two scorings: the letter the model generates
for the study's prompt, and the log-likelihood of " A"/" B"/" C"/" D" after lm-evaluation-harness's
MMLU prompt. Each accuracy carries `accuracy_summary` (helpers.stats.score_summary: lm-eval's stderr
and a Wilson 95% interval); each fine-tuned student is compared with the vanilla one on the same
questions (helpers.stats.paired_comparison: paired bootstrap interval, exact McNemar test).

The teacher's data (method 1, generative; method 2, targeted), its requests and the multistage
filter are in helpers.tasks.teacher. A student is fine-tuned on each method's data of all subjects
and, as the study's "ML FT" and "Psychology FT" rows are, on its data of each subject alone
(`finetune_variants`, `row_label`). A "Run all" of the same settings keeps what the first computed: each
method's filtered data (helpers.tasks.teacher.method1_data), the evaluations (eval_*.json) and each student's
(ft/<name>/eval.json, `student_identity`), so it trains and reports on one data set and loads no student twice.

    >>> questions = load_mmlu(["machine_learning"], source="local")
    >>> vanilla = evaluate_student(model, tokenizer, info, questions, cfg, desc="vanilla student")
    >>> accuracy([True, False, False])["accuracy_summary"]["ci_high"]   # Wilson 95%
    >>> paired_vs_vanilla(rows)                                          # FT - vanilla, same questions
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

from helpers.config import ConfigError, StudyConfig, check_secret_env_params, config_hash
from helpers.runs import files_digest, json_digest, kept, kept_result
from helpers.stats import paired_comparison, score_summary
from helpers.tasks import mmlu_data

# Question, load_mmlu and FIXTURE are also read as mmlu.* (scripts/t4_hours.py, tests)
from helpers.tasks.mmlu_data import (  # noqa: F401
    FIXTURE,
    LETTERS,
    Question,
    extract_letter,
    load_mmlu,
    pick_letter,
    study_prompt,
)
from helpers.tasks.teacher import item_text, kept_items

VERSION = "mmlu-teacher-v1"
LEAKAGE_CAVEAT = (
    "Method 2 shows the teacher the evaluation questions (and their answers) to write its new questions, "
    "so the targeted students are trained on knowledge taken from the test set: their accuracy on these subsets "
    "is optimistic and not comparable to the other rows. Near-copies of evaluation questions are dropped by "
    "the duplicate filter, but paraphrases of the same fact are the point of the method and remain."
)


@dataclasses.dataclass
class MmluConfig(StudyConfig):
    """mmlu_teacher: evaluate, generate + filter (method 1), targeted (method 2), fine-tune, compare.
    The LoRA and schedule defaults are the study's Table 1 (seed settings lora_rank, lora_dropout,
    epochs: "more epochs degraded performance"); its alpha is not stated, ours equals the rank."""

    model: str = "llama-2-7b"  # the study's student (LLaMA 2 7B); the CPU presets name the embedded model
    subjects: list = dataclasses.field(default_factory=lambda: ["machine_learning", "professional_psychology"])
    dataset_source: str = "hub"
    split: str = "test"
    max_questions: int = 0
    teacher_backend: str = "openai"
    teacher_model: str = "gpt-4o"
    teacher_base_url: str = "https://api.openai.com/v1"
    teacher_api_key_env: str = "OPENAI_API_KEY"
    teacher_cache_dir: str = ""
    teacher_timeout: float = 120.0
    teacher_max_retries: int = 6
    teacher_concurrency: int = 8
    teacher_max_tokens: int = 400
    generation_temperature: float = 0.7
    n_generate: int = 100
    dedup_text_threshold: float = 90.0
    dedup_embedding_threshold: float = 0.95
    check_relevance: bool = True
    check_consistency: bool = True
    method1: bool = True
    domain_models: bool = True
    method2: bool = True
    targeted_by: str = "generate"
    epochs: float = 1.0
    lora_r: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    batch_size: int = 8
    max_seq_length: int = 512
    eval_batch_size: int = 16
    max_new_tokens: int = 16

    def validate(self) -> None:
        super().validate()
        if not self.subjects or not all(isinstance(s, str) and re.fullmatch(r"[a-z_]+", s) for s in self.subjects):
            raise ConfigError(f"subjects {self.subjects} must be MMLU subject names like 'machine_learning'")
        if len(set(self.subjects)) != len(self.subjects):
            raise ConfigError(f"subjects {self.subjects} lists a subject twice")
        if self.teacher_backend not in ("openai", "local"):
            raise ConfigError(f"teacher_backend '{self.teacher_backend}' must be 'openai' (any OpenAI-compatible "
                              "endpoint) or 'local' (a registry model)")
        if self.max_questions < 0 or self.n_generate < 0:
            raise ConfigError("max_questions and n_generate must be >= 0 (max_questions 0 = all)")
        if not 0 < self.dedup_text_threshold <= 100:
            raise ConfigError(f"dedup_text_threshold is a rapidfuzz ratio in (0, 100], got {self.dedup_text_threshold}")
        if not -1 < self.dedup_embedding_threshold <= 1:
            raise ConfigError(f"dedup_embedding_threshold is a cosine in (-1, 1], got {self.dedup_embedding_threshold}")
        if self.teacher_max_tokens < 1 or self.teacher_timeout <= 0 or self.teacher_max_retries < 0:
            raise ConfigError("teacher_max_tokens >= 1, teacher_timeout > 0 and teacher_max_retries >= 0 please")
        if self.targeted_by not in ("generate", "loglik"):
            raise ConfigError(f"targeted_by '{self.targeted_by}' must be 'generate' or 'loglik' (how the student's "
                              "wrong answers are found)")
        if self.generation_temperature < 0:
            raise ConfigError(f"generation_temperature must be >= 0, got {self.generation_temperature}")
        if isinstance(self.teacher_concurrency, bool) or not isinstance(self.teacher_concurrency, int) \
                or self.teacher_concurrency < 1:
            raise ConfigError(f"teacher_concurrency must be an integer >= 1 (teacher requests at a time; 1: one by "
                              f"one), got {self.teacher_concurrency!r}")
        # last, so a wrong setting elsewhere is reported first; before papermill writes any parameter
        check_secret_env_params(self, in_use={"teacher_api_key_env": self.teacher_backend == "openai"})



def loglik_context(q: Question) -> str:
    """The log-likelihood scoring's context: lm-evaluation-harness's MMLU prompt, the one the forgetting
    study scores too (helpers.tasks.mmlu_data.mmlu_prompt); the continuations are ' A' .. ' D'."""
    return mmlu_data.mmlu_prompt(q)


def accuracy(correct: list[bool]) -> dict:
    """`accuracy` (the fraction right), `n`, and `accuracy_summary` (helpers.stats.score_summary):
    mean, n, lm-eval's `stderr` and a Wilson 95% interval (`ci_low`, `ci_high`), which is never empty
    at 0/n or n/n."""
    summary = score_summary([float(c) for c in correct])
    return {"accuracy": summary["mean"], "n": summary["n"], "accuracy_summary": summary}

def by_subject(questions: list[Question], correct: list[bool], subjects: list[str]) -> dict:
    """{subject: accuracy dict, ..., "all": over every question}."""
    table = {s: accuracy([c for q, c in zip(questions, correct) if q.subject == s]) for s in subjects}
    table["all"] = accuracy(correct)
    return table


def evaluate_student(model, tokenizer, info, questions: list[Question], cfg, *, desc: str) -> dict:
    """Both scorings of a loaded model. Returns {"generate": table, "loglik": table, "items": [...]}."""
    from helpers.generation import generate
    from helpers.loglik import continuation_logliks

    answers = generate(model, tokenizer, [study_prompt(q) for q in questions], chat=True,
                       stop_token_ids=info.stop_token_ids, max_new_tokens=cfg.max_new_tokens,
                       batch_size=cfg.eval_batch_size, desc=f"{desc}: generate")
    letters = [extract_letter(a, q.choices) for a, q in zip(answers, questions)]
    requests = [(loglik_context(q), f" {letter}") for q in questions for letter in LETTERS]
    scores = continuation_logliks(model, tokenizer, requests, batch_size=cfg.eval_batch_size,
                                  desc=f"{desc}: log-likelihood")
    picks = [pick_letter(scores[4 * i:4 * i + 4]) for i in range(len(questions))]
    items = [{"id": q.id, "subject": q.subject, "reference": q.letter, "generated": a, "generated_letter": g,
              "loglik": scores[4 * i:4 * i + 4], "loglik_letter": p}
             for i, (q, a, g, p) in enumerate(zip(questions, answers, letters, picks))]
    return {"generate": by_subject(questions, [g == q.letter for g, q in zip(letters, questions)], cfg.subjects),
            "loglik": by_subject(questions, [p == q.letter for p, q in zip(picks, questions)], cfg.subjects),
            "unparsed": sum(g is None for g in letters), "items": items}


def evaluate_teacher(teacher, questions: list[Question], cfg) -> dict:
    """The teacher answers the study prompt (by generated letter only: chat endpoints give no
    log-likelihoods). A request that fails counts as a wrong answer and is counted; a refused key or
    an endpoint that fails more than half the requests raises BackendError instead (helpers.backends),
    so a dead teacher is never reported as one at 0%."""
    replies = teacher.chat_many([[{"role": "user", "content": study_prompt(q)}] for q in questions],
                                max_tokens=cfg.max_new_tokens, temperature=0.0)
    letters = [extract_letter(r, q.choices) if r is not None else None for r, q in zip(replies, questions)]
    items = [{"id": q.id, "subject": q.subject, "reference": q.letter, "generated": r, "generated_letter": g}
             for q, r, g in zip(questions, replies, letters)]
    return {"generate": by_subject(questions, [g == q.letter for g, q in zip(letters, questions)], cfg.subjects),
            "loglik": None, "unparsed": sum(g is None and r is not None for g, r in zip(letters, replies)),
            "no_reply": sum(r is None for r in replies), "items": items}



def training_pairs(items: list[Question]) -> list[tuple[str, str]]:
    """(prompt, answer) for answer-only SFT: the study prompt, answered by the letter."""
    return [(study_prompt(q), q.letter) for q in items]

# ---------------------------------------------------------------------------------- fine-tuning, rows

def items_digest(items: list[Question]) -> str:
    """16 hex of a sha256 of the (prompt, answer) pairs a student is trained on (training_pairs)."""
    return json_digest(training_pairs(items))


def student_identity(cfg, folder: Path, items: list[Question]) -> dict:
    """What a fine-tuned student's kept evaluation (folder/eval.json) is of: these settings, the adapter's
    files and the items it was trained on (other data: its adapter is trained again, train_sft)."""
    return {"stage": "finetuned", "settings": config_hash(cfg), "adapter": files_digest(Path(folder) / "adapter"),
            "data": items_digest(items)}


def _kept_evaluation(folder: Path, identity: dict) -> dict | None:
    """The evaluation kept in folder/eval.json (helpers.runs.kept_result's file) if it is of `identity`, else
    None. Asked before the student's model loads: kept_result would load it first."""
    path = Path(folder) / "eval.json"
    if identity["adapter"] is None:
        return None
    found = kept(path, identity)
    if found is not None:
        print(f"{path}: kept from an earlier run of this adapter, not loaded or evaluated again (delete it to redo)")
    return found


def fine_tune_and_evaluate(cfg, name: str, items: list[Question], questions: list[Question], run_dir: Path) -> dict:
    """A fresh QLoRA student trained on `items` (answer-only loss on the letter), then evaluated.
    Resumable: a finished variant's adapter is reused (train_sft; one trained on other data is moved aside
    and trained again), and its evaluation is kept in ft/<name>/eval.json (student_identity): with `resume`,
    a "Run all" that finds both loads no model for this student."""
    import gc

    from helpers.modeling import add_lora, load_model
    from helpers.sft import build_sft_dataset, finished_training, train_sft

    if not items:
        return {"name": name, "n_items": 0, "skipped": "no training items survived the filter"}
    folder = Path(run_dir) / "ft" / name
    train = finished_training(folder) if cfg.resume else None
    found = _kept_evaluation(folder, student_identity(cfg, folder, items)) if train is not None else None
    if found is not None:
        return {"name": name, "n_items": len(items), "train": train, **found}
    model, tokenizer, info = load_model(cfg.model, max_seq_length=cfg.max_seq_length, load_in_4bit=cfg.load_in_4bit)
    model = add_lora(model, info, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                     targets=cfg.lora_targets, seed=cfg.seed, gradient_checkpointing=cfg.gradient_checkpointing)
    dataset = build_sft_dataset(tokenizer, training_pairs(items), chat=True, max_length=cfg.max_seq_length)
    train = train_sft(model, tokenizer, dataset, run_dir=folder, settings=cfg, backend=info.backend,
                      resume=cfg.resume)
    result = kept_result(folder / "eval.json", student_identity(cfg, folder, items),
                         lambda: evaluate_student(model, tokenizer, info, questions, cfg, desc=name))
    model = None  # the next student loads its own
    gc.collect()
    return {"name": name, "n_items": len(items), "train": train, **result}


def finetune_variants(records1: list[dict], records2: list[dict], cfg) -> dict[str, list[Question]]:
    """The students to fine-tune, by name: "general" (method 1, every subject), "targeted" (method 2,
    every subject) and, with `domain_models`, one per subject and method: "generated_<subject>" and
    "targeted_<subject>". The study's "ML FT" and "Psychology FT" are targeted students of one subject
    (its Table 2 notes), hence the targeted ones carry those rows (`row_label`)."""
    out = {}
    if cfg.method1:
        out["general"] = kept_items(records1)
        if cfg.domain_models:
            out |= {f"generated_{s}": kept_items(records1, s) for s in cfg.subjects}
    if cfg.method2:
        out["targeted"] = kept_items(records2)
        if cfg.domain_models:
            out |= {f"targeted_{s}": kept_items(records2, s) for s in cfg.subjects}
    return out


def row_label(name: str) -> str:
    """A student's row in the results tables. "<subject> FT" is the study's row of that name ("ML FT",
    "Psychology FT": targeted data of that subject), which helpers/published.py compares with."""
    if name == "general":
        return "General FT"
    if name == "targeted":
        return "Targeted FT (method 2)"
    if name.startswith("targeted_"):
        return f"{name.removeprefix('targeted_')} FT"
    if name.startswith("generated_"):
        return f"{name.removeprefix('generated_')} FT (generated)"
    raise ValueError(f"no row for fine-tuning '{name}': see finetune_variants")


def fine_tune_all(cfg, variants: dict[str, list[Question]], questions: list[Question], run_dir: Path,
                  timer=None) -> dict:
    """fine_tune_and_evaluate for each variant, in order; a variant whose data are those of an earlier one
    (one subject: its students are the combined ones) reuses that student's result, marked `same_data_as`."""
    import contextlib

    finetuned, trained_on = {}, {}
    for name, items in variants.items():
        key = tuple((item_text(q), q.answer) for q in items)
        if items and key in trained_on:
            finetuned[name] = {**finetuned[trained_on[key]], "name": name, "same_data_as": trained_on[key]}
            continue
        with timer(f"finetune_{name}") if timer else contextlib.nullcontext():
            finetuned[name] = fine_tune_and_evaluate(cfg, name, items, questions, run_dir)
        trained_on.setdefault(key, name)
    return finetuned


def result_tables(rows: dict[str, dict]) -> dict:
    """{"generate": {row: {column: accuracy dict}}, "loglik": ...}; every row is in both tables, a
    row without that scoring (the teacher's log-likelihood, a fine-tuning without data) has None cells."""
    columns = next(r["generate"] for r in rows.values() if r.get("generate"))
    return {method: {label: r.get(method) or dict.fromkeys(columns) for label, r in rows.items()}
            for method in ("generate", "loglik")}


def _interval(summary: dict | None) -> str:
    """' [low, high]' in percent, '' when there is none (too few items, or a run from before the summary)."""
    low, high = (summary or {}).get("ci_low"), (summary or {}).get("ci_high")
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    return f" [{100 * low:.1f}, {100 * high:.1f}]"


def table_frame(table: dict):
    """A results table as a DataFrame: rows x subsets, 'accuracy % [Wilson 95% interval]'."""
    import pandas as pd

    def cell(v):
        if not v or v["accuracy"] != v["accuracy"]:
            return "-"
        return f"{100 * v['accuracy']:.1f}{_interval(v.get('accuracy_summary'))}"
    return pd.DataFrame({row: {col: cell(v) for col, v in cols.items()} for row, cols in table.items()}).T


BASELINE = "vanilla student"


def paired_vs_vanilla(rows: dict[str, dict], subjects: list[str], *, seed: int = 0) -> dict:
    """Each fine-tuned student against the vanilla one on the same questions, by both scorings and on
    each subject and "all" (helpers.stats.paired_comparison of per-question right/wrong, fine-tuned
    first): `difference` (a fraction), paired bootstrap 95% interval (`ci_low`, `ci_high`), the exact
    McNemar p (`mcnemar_p`), and how many questions only the fine-tuned (`finetuned_only`) or only the
    vanilla student (`vanilla_only`) got right. {scoring: {row: {subset: comparison}}}; rows without
    per-question answers (a fine-tuning without data) are left out."""
    base = rows[BASELINE]["items"]
    out = {"generate": {}, "loglik": {}}
    for label, row in rows.items():
        if label in (BASELINE, "teacher") or not row.get("items"):
            continue
        if [it["id"] for it in row["items"]] != [it["id"] for it in base]:
            raise ValueError(f"'{label}' answered other questions than the {BASELINE}: no paired comparison")
        for method, key in (("generate", "generated_letter"), ("loglik", "loglik_letter")):
            table = {}
            for subset in [*subjects, "all"]:
                pairs = [(t[key] == t["reference"], b[key] == b["reference"]) for t, b in zip(row["items"], base)
                         if subset == "all" or b["subject"] == subset]
                if not pairs:
                    continue
                cmp = paired_comparison([float(t) for t, _ in pairs], [float(b) for _, b in pairs], seed=seed)
                cmp["finetuned_only"], cmp["vanilla_only"] = cmp.pop("first_only", None), cmp.pop("second_only", None)
                table[subset] = cmp
            out[method][label] = table
    return out


def paired_frame(paired: dict):
    """A paired table as a DataFrame: rows x subsets, 'FT − vanilla in points [95% interval] p=McNemar'."""
    import pandas as pd

    def cell(c):
        p = c.get("mcnemar_p")
        p = "" if p is None or math.isnan(p) else f" p={p:.2g}"
        return f"{100 * c['difference']:+.1f}{_interval(c)}{p}"
    return pd.DataFrame({row: {col: cell(c) for col, c in cols.items()} for row, cols in paired.items()}).T


def report(metrics: dict) -> str:
    lines = [f"MMLU, student {metrics['model']}, teacher {metrics['teacher']['model']} "
             f"({metrics['teacher']['backend']}); {metrics['n_questions']} questions"]
    for method, title in (("generate", "accuracy by generated letter (%, [Wilson 95% interval])"),
                          ("loglik", "accuracy by letter log-likelihood (%, [Wilson 95% interval])")):
        lines += ["", title, table_frame(metrics["tables"][method]).to_string()]
        paired = (metrics.get("paired_vs_vanilla") or {}).get(method)
        if paired:
            lines += [f"fine-tuned − {BASELINE}, same questions (points, [paired bootstrap 95%], McNemar p)",
                      paired_frame(paired).to_string()]
    for name, counts in metrics.get("filter", {}).items():
        lines.append(f"filter {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v or k == "kept"))
    lines.append(f"teacher requests: {metrics['teacher']['counters']}")
    if metrics.get("method2"):
        lines.append("leakage: " + LEAKAGE_CAVEAT)
    return "\n".join(lines)


def split_accuracy(evaluation: dict, ids: set) -> dict:
    """Accuracy (both scorings) on the questions in `ids` and on the others: for method 2, the
    targeted questions are where leakage would show."""
    out = {}
    for part, keep in (("targeted_questions", True), ("other_questions", False)):
        items = [it for it in evaluation["items"] if (it["id"] in ids) == keep]
        out[part] = {m: accuracy([it[f"{m}_letter"] == it["reference"] for it in items])
                     for m in ("generated", "loglik") if all(f"{m}_letter" in it for it in items)}
    return out
