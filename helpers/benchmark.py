"""Automated benchmarking: every stage of a training run answers a fixed question set.

    >>> train_run = find_train_run(cfg)                     # or cfg.train_run, checked
    >>> questions = load_benchmark_questions(cfg)           # a set of cfg.task, checked
    >>> llm, tokenizer, info = load_for_stages(cfg, train_run)
    >>> source = stage_source(train_run, "epoch1")           # which adapter: kept in, and checked on, raw files
    >>> kept = read_raw(path, questions, source)             # None: generate (answer_stage), then write_raw
    >>> rows = answer_stage(llm, tokenizer, info, questions, "epoch1", train_run, cfg)
    >>> workbook_path(cfg), workbook_meta(cfg)               # <workbook_dir>/<slug>-<task>.xlsx

Stages: "base" (adapters off) and "epoch<N>" (the adapter train_sft saved after epoch N).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from pathlib import Path

from helpers.config import ConfigError, output_path, repo_path
from helpers.questions import load_question_set, load_questions
from helpers.registry import load_registry, resolve_model
from helpers.runs import files_digest
from helpers.stats import score_summary
from helpers.tasks.instruct import get_task


def _identity(model: str) -> tuple[str, str]:
    """(kind, id): ("registry", name), ("hub", org/name) or ("local", resolved absolute path); the order
    is that of helpers.registry.resolve_model, which raises for anything else."""
    spec = resolve_model(model)
    if model in load_registry():
        return "registry", model
    if spec.local_path:
        return "local", spec.local_path
    return "hub", model


def model_id(model: str) -> str:
    """What tells one model from another: the registry name, the hub id, or the resolved absolute
    path of a local folder (two local folders may share a last name)."""
    return _identity(model)[1]


def model_display_name(model: str) -> str:
    """The registry name, the hub id, or a local folder's name."""
    kind, identity = _identity(model)
    return Path(identity).name if kind == "local" else identity


def workbook_slug(model: str) -> str:
    """The model part of a workbook's file name: a registry name as is, a hub id 'org/name' as
    'org__name', a local folder as '<folder name>-<8 hex of sha256 of its absolute path>'. Runs of
    dashes become one, so '--' in a file name only ever separates the reviewer ('<slug>-<task>--<name>')."""
    kind, identity = _identity(model)
    if kind == "local":
        slug = f"{Path(identity).name}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"
    else:
        slug = identity.replace("/", "__")
    return re.sub(r"-{2,}", "-", slug)


def workbook_path(cfg) -> Path:
    """<workbook_dir>/<slug>-<task>.xlsx, one per model x task; workbook_dir relative to the repository."""
    return output_path(cfg.workbook_dir) / f"{workbook_slug(cfg.model)}-{cfg.task}.xlsx"


def workbook_meta(cfg) -> dict:
    """What the workbook is about, kept in it so that a workbook is never merged with another model's
    or task's answers (helpers.workbook refuses) and compile_ratings need not parse file names."""
    return {"model": model_display_name(cfg.model), "model_id": model_id(cfg.model), "task": cfg.task,
            "question_set": cfg.question_set or cfg.task}


def _read_record(run: Path) -> dict:
    try:
        return json.loads((run / "run.json").read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{run / 'run.json'} cannot be read ({type(err).__name__}): "
                          "pass another train_run or remove that folder") from None


def _trained_on(record: dict, model: str) -> bool:
    """Whether a train run's run.json is of `model` (the same name, or the same local folder however
    it was written)."""
    trained = (record.get("config") or {}).get("model")
    recorded = ((record.get("model") or {}).get("spec") or {}).get("local_path")
    return trained == model or model_id(model) in (trained, recorded)


def find_train_run(cfg) -> Path | None:
    """cfg.train_run (checked: a finished train_<task> run of cfg.model), or the newest finished
    train_<task> run of cfg.model under output_root."""
    if cfg.train_run:
        run = output_path(cfg.train_run)
        if not (run / "metrics.json").exists():
            raise ConfigError(f"train_run {run} has no metrics.json: it is not a finished train_{cfg.task} run")
        record = _read_record(run)
        # adapters of the other task, or of another model (wrong shapes, or silently another model), make
        # a benchmark that looks right and is not
        if record.get("study") != f"train_{cfg.task}" or not _trained_on(record, cfg.model):
            raise ConfigError(f"train_run {run} is a {record.get('study')} run of "
                              f"'{(record.get('config') or {}).get('model')}', but this benchmark is task "
                              f"'{cfg.task}' on '{cfg.model}': pass a train_{cfg.task} run of '{cfg.model}'")
        return run
    runs = [record.parent for record in (output_path(cfg.output_root) / f"train_{cfg.task}").glob("*/run.json")
            if (record.parent / "metrics.json").exists() and _trained_on(_read_record(record.parent), cfg.model)]
    if not runs:
        if any(stage != "base" for stage in cfg.stages):
            raise ConfigError(f"no finished train_{cfg.task} run of '{cfg.model}' under {cfg.output_root}: run "
                              f"notebooks/train_{cfg.task}.ipynb first, pass train_run, or use stages=['base']")
        return None
    return max(runs, key=lambda p: (p / "metrics.json").stat().st_mtime)


def load_benchmark_questions(cfg) -> list:
    """The question set (questions/<task>.yaml, another set's name, or a .yaml path), first
    max_questions of it. Its file's `task:` must be cfg.task: math questions have no place in a bio
    workbook, and a bio set would get no automatic score."""
    name = cfg.question_set or cfg.task
    questions = load_questions(repo_path(name)) if name.endswith(".yaml") else load_question_set(name)
    found = questions[0].task  # one per file: the loader reads the file's top-level `task:`
    if found != cfg.task:
        raise ConfigError(f"question set '{name}' is a {found} set (task: {found}), but this benchmark's task is "
                          f"'{cfg.task}': use a {cfg.task} question set or task='{found}'")
    return questions[: cfg.max_questions or None]


def load_for_stages(cfg, train_run: Path | None):
    """The model loaded as the training run loaded it, with adapter slots of the same shape."""
    # the model stack is imported only once a model is loaded: scoring and the file helpers need no torch
    from helpers.modeling import add_lora, load_model

    if train_run is None:
        return load_model(cfg.model, max_seq_length=2048)
    train = json.loads((train_run / "run.json").read_text())["config"]
    llm, tokenizer, info = load_model(cfg.model, max_seq_length=train["max_seq_length"],
                                      load_in_4bit=train["load_in_4bit"])
    llm = add_lora(llm, info, r=train["lora_r"], alpha=train["lora_alpha"], dropout=0.0,
                   targets=train["lora_targets"], seed=train["seed"], gradient_checkpointing=False)
    return llm, tokenizer, info


def answer_stage(llm, tokenizer, info, questions, stage: str, train_run: Path | None, cfg) -> list[str]:
    from helpers.generation import generate
    from helpers.sft import load_adapter, stage_dir

    prompts = [q.question for q in questions]
    kwargs = dict(chat=True, stop_token_ids=info.stop_token_ids, max_new_tokens=cfg.max_new_tokens,
                  batch_size=cfg.eval_batch_size, desc=stage)
    if stage == "base":
        if hasattr(llm, "disable_adapter"):
            with llm.disable_adapter():
                return generate(llm, tokenizer, prompts, **kwargs)
        return generate(llm, tokenizer, prompts, **kwargs)
    adapter = stage_dir(train_run, int(stage.removeprefix("epoch")))
    if not (adapter / "adapter_config.json").exists():
        raise ConfigError(f"{train_run.name} has no stage {stage} ({adapter}): pick stages it saved")
    load_adapter(llm, adapter)
    return generate(llm, tokenizer, prompts, **kwargs)


def stage_source(train_run: Path | None, stage: str) -> dict:
    """What a stage's answers depend on beyond the benchmark's own settings: {} for "base" (the model
    alone), else {"train_run": the training run's folder name, "adapter_sha256": 16 hex of a sha256 of
    the stage's adapter files, None where it has none}. write_raw keeps it in each row (pass it in its
    meta) and read_raw reuses a file only where it matches.

    Why here and not in the benchmark folder's name: with train_run "" (the default) the folder's hash
    cannot tell which training run the newest was, and making it so would move every benchmark folder
    written so far (and the ones helpers.sweep plans) while still missing an adapter retrained in place
    under the same folder name. Checked per file, base answers stay reused, earlier folders stay where
    they are, and answers of another adapter are moved aside, not deleted. The adapter's bytes, not
    only the folder name: one trained again with the same settings lands in the same folder."""
    if stage == "base":
        return {}
    if train_run is None:
        return {"train_run": None, "adapter_sha256": None}
    # helpers.sft.stage_dir (not imported: it imports torch); int() as answer_stage reads "epoch01"
    adapter = Path(train_run) / "stages" / f"epoch{int(stage.removeprefix('epoch'))}"
    # adapter_config.json, adapter_model.*
    return {"train_run": Path(train_run).name, "adapter_sha256": files_digest(adapter, "adapter_*")}


def raw_path(run_dir: Path, model: str, task: str, stage: str) -> Path:
    """One file per model x task x stage; base and QLoRA stages in separate folders."""
    kind = "base" if stage == "base" else "qlora"
    return run_dir / "raw" / kind / f"{Path(model).name}-{task}-{stage}.jsonl"


def write_raw(path: Path, questions, answers, scores, meta: dict) -> None:
    """Written to a temporary file next to it, then renamed: a kill mid-write leaves the old file or
    none, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")  # same folder, so the rename is atomic
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for q, a, s in zip(questions, answers, scores):
                f.write(json.dumps({"id": q.id, "question": q.question, "reference": q.answer, "answer": a,
                                    "score": s, **meta}) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _move_aside(path: Path, why: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    aside = path.with_name(f"{path.name}.{why}-{stamp}")
    path.replace(aside)
    return aside


def read_raw(path: Path, questions, source: dict | None = None) -> list[str] | None:
    """Answers kept from an earlier run of the same settings (same question ids) and, where `source`
    (stage_source) is given, of the same adapter, else None. A file that does not parse (cut short by a
    kill before writes were atomic, edited by hand) is moved aside to <name>.corrupt-<time>, one of
    another training run or adapter to <name>.other-train-run-<time>; that stage is then generated
    again. A file written before rows recorded their source has none: a base stage's is reused (base
    answers do not depend on the training run), an epoch stage's is moved aside, since which adapter
    wrote it cannot be told. source None: not checked (callers that predate it)."""
    if not path.exists():
        return None
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        ids, texts, kept = ([r["id"] for r in rows], [r["question"] for r in rows],
                            [r["answer"] for r in rows])
        if not all(isinstance(a, str) for a in kept):
            raise TypeError("an answer is not text")
    except (ValueError, KeyError, TypeError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        aside = _move_aside(path, "corrupt")
        print(f"{path} is unreadable ({type(err).__name__}): moved to {aside.name}; generating that stage again")
        return None
    # checked before the questions: answers of another adapter are kept aside, whatever else changed
    found = next((row for row in rows if any(row.get(k) != v for k, v in (source or {}).items())), None)
    if found is not None:
        aside = _move_aside(path, "other-train-run")
        was = (", ".join(f"{k} {found.get(k)}" for k in source) if any(k in found for k in source)
               else "an unrecorded training run (a file written before rows recorded it)")
        now = ", ".join(f"{k} {v}" for k, v in source.items())
        print(f"{path} holds answers of {was}, not {now}: moved to {aside.name}; generating that stage again")
        return None
    if ids != [q.id for q in questions] or texts != [q.question for q in questions]:
        return None
    return kept


def stage_summary(task_name: str, questions, answers) -> tuple[list, dict]:
    """(each answer's automatic score, or None for a task rated by people only; the stage's summary:
    n, empty answers, mean answer length and, where the task has an automatic score, `auto_score`
    with `auto_score_summary`: helpers.stats.score_summary, a Wilson 95% interval for 0/1 scores
    such as math's final-number match, else a t interval)."""
    task = get_task(task_name)
    scores = [task.score(q, a) for q, a in zip(questions, answers)] if task.score else [None] * len(answers)
    summary = {"n": len(answers), "empty_answers": sum(not a.strip() for a in answers),
               "mean_answer_chars": sum(len(a) for a in answers) / max(1, len(answers))}
    if task.score:
        auto = score_summary(scores)
        summary |= {"auto_score": auto["mean"], "auto_score_summary": auto}
    return scores, summary
