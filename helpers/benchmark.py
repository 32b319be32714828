"""Automated benchmarking: every stage of a training run answers a fixed question set.

    >>> train_run = find_train_run(cfg)                     # or cfg.train_run
    >>> llm, tokenizer, info = load_for_stages(cfg, train_run)
    >>> rows = answer_stage(llm, tokenizer, info, questions, "epoch1", train_run, cfg)

Stages: "base" (adapters off) and "epoch<N>" (the adapter train_sft saved after epoch N).
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers.config import REPO_ROOT, ConfigError
from helpers.generation import generate
from helpers.metrics import mean_ci
from helpers.modeling import add_lora, load_model
from helpers.sft import load_adapter, stage_dir
from helpers.tasks.instruct import get_task


def _root(path: str) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def find_train_run(cfg) -> Path | None:
    """cfg.train_run, or the newest finished train_<task> run of cfg.model under output_root."""
    if cfg.train_run:
        run = _root(cfg.train_run)
        if not (run / "metrics.json").exists():
            raise ConfigError(f"train_run {run} has no metrics.json: it is not a finished train_{cfg.task} run")
        return run
    runs = []
    for record in (_root(cfg.output_root) / f"train_{cfg.task}").glob("*/run.json"):
        if json.loads(record.read_text())["config"]["model"] == cfg.model and (record.parent / "metrics.json").exists():
            runs.append(record.parent)
    if not runs:
        if any(stage != "base" for stage in cfg.stages):
            raise ConfigError(f"no finished train_{cfg.task} run of '{cfg.model}' under {cfg.output_root}: run "
                              f"notebooks/train_{cfg.task}.ipynb first, pass train_run, or use stages=['base']")
        return None
    return max(runs, key=lambda p: (p / "metrics.json").stat().st_mtime)


def load_for_stages(cfg, train_run: Path | None):
    """The model loaded as the training run loaded it, with adapter slots of the same shape."""
    if train_run is None:
        return load_model(cfg.model, max_seq_length=2048)
    train = json.loads((train_run / "run.json").read_text())["config"]
    llm, tokenizer, info = load_model(cfg.model, max_seq_length=train["max_seq_length"],
                                      load_in_4bit=train["load_in_4bit"])
    llm = add_lora(llm, info, r=train["lora_r"], alpha=train["lora_alpha"], dropout=0.0,
                   targets=train["lora_targets"], seed=train["seed"], gradient_checkpointing=False)
    return llm, tokenizer, info


def answer_stage(llm, tokenizer, info, questions, stage: str, train_run: Path | None, cfg) -> list[str]:
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


def raw_path(run_dir: Path, model: str, task: str, stage: str) -> Path:
    """One file per model x task x stage; base and QLoRA stages in separate folders."""
    kind = "base" if stage == "base" else "qlora"
    return run_dir / "raw" / kind / f"{Path(model).name}-{task}-{stage}.jsonl"


def write_raw(path: Path, questions, answers, scores, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for q, a, s in zip(questions, answers, scores):
            f.write(json.dumps({"id": q.id, "question": q.question, "reference": q.answer, "answer": a,
                                "score": s, **meta}) + "\n")


def read_raw(path: Path, questions) -> list[str] | None:
    """Answers kept from an earlier run of the same settings (same question ids), else None."""
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    if [r["id"] for r in rows] != [q.id for q in questions] or any(
            r["question"] != q.question for r, q in zip(rows, questions)):
        return None
    return [r["answer"] for r in rows]


def stage_summary(task_name: str, questions, answers) -> tuple[list, dict]:
    task = get_task(task_name)
    scores = [task.score(q, a) for q, a in zip(questions, answers)] if task.score else [None] * len(answers)
    summary = {"n": len(answers), "empty_answers": sum(not a.strip() for a in answers),
               "mean_answer_chars": sum(len(a) for a in answers) / max(1, len(answers))}
    if task.score:
        summary["auto_score"], summary["auto_score_ci95"] = mean_ci(scores)
    return scores, summary
