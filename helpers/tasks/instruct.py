"""Instruction tasks of the seven-model study: Orca-Math word problems and BioInstruct.

Each task knows its hub dataset, the project-written offline copy in the same schema
(benchmark_data/data/), how a row becomes a (prompt, answer) pair for the chat template, its
benchmark question set (questions/<task>.yaml) and its automatic score, where one exists.

    >>> pairs = load_pairs(TASKS["math"], source="local", n=100)
    >>> TASKS["math"].score(question, "... so the answer is 12.")
    1.0
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Callable

from helpers.config import REPO_ROOT, ConfigError, InstructConfig
from helpers.data import DATA_DIR as DATA_DIR  # re-exported: tests read the offline files through it
from helpers.data import HubData, load_records
from helpers.metrics import numeric_match


@dataclasses.dataclass(frozen=True)
class InstructTask:
    name: str
    version: str
    hub_id: str
    local_file: str
    columns: tuple
    to_pair: Callable[[dict], tuple[str, str]]
    score: Callable | None  # (Question, generated answer) -> float, or None: humans only
    description: str


def _orca_pair(row: dict) -> tuple[str, str]:
    return row["question"].strip(), row["answer"].strip()


def _bio_pair(row: dict) -> tuple[str, str]:
    prompt = row["instruction"].strip()
    if (row.get("input") or "").strip():
        prompt += "\n\n" + row["input"].strip()
    return prompt, row["output"].strip()


TASKS = {
    "math": InstructTask(
        name="math", version="orca-math-v1", hub_id="microsoft/orca-math-word-problems-200k",
        local_file="orca_math_sample.jsonl", columns=("question", "answer"), to_pair=_orca_pair,
        score=lambda q, answer: numeric_match(answer, q.answer),
        description="grade-school math word problems; automatic score: final-number match",
    ),
    "bio": InstructTask(
        name="bio", version="bioinstruct-v1", hub_id="bio-nlp-umass/bioinstruct",
        local_file="bioinstruct_sample.jsonl", columns=("instruction", "input", "output"), to_pair=_bio_pair,
        score=None, description="biomedical instructions; rated by people only",
    ),
}


def get_task(name: str) -> InstructTask:
    if name not in TASKS:
        raise ConfigError(f"unknown task '{name}'; known: {', '.join(TASKS)}")
    return TASKS[name]


def load_pairs(task: InstructTask, *, source: str, n: int) -> list[tuple[str, str]]:
    """The first `n` rows of the task's data as (prompt, answer) pairs.

    source: "hub" (the study's dataset; needs internet), "local" (the project-written copy in
    benchmark_data/data/), or a path to a .jsonl/.json/.csv/.parquet file with the same columns.
    """
    data = HubData(task.hub_id, task.local_file, task.columns)
    return [task.to_pair(row) for row in load_records(data, source=source, n=n)]


# helpers.sft.STAGE_SCHEDULES (not imported: validating a config must not load torch)
STAGE_SCHEDULES = ("restart", "snapshot")


@dataclasses.dataclass
class TrainConfig(InstructConfig):
    """train_math / train_bio: QLoRA on the first `n_samples` rows, adapters kept after each of
    `stage_epochs`. The study trains 1 epoch, benchmarks, then trains 2 more epochs; `stage_schedule`
    reads that as "restart" (a full schedule to epoch 1, then a new one from its weights to epoch 3)
    or "snapshot" (one schedule to epoch 3, copied out at epoch 1 with its learning rate still high)."""

    # One of the study's seven: Llama 3.1 8B, its best math model (the one published number) and a T4 fit
    # at 2 x 4 examples a step (PERFORMANCE.md); the presets for a CPU name the embedded smollm2-135m.
    model: str = "llama-3.1-8b"
    task: str = "math"
    dataset_source: str = "hub"
    n_samples: int = 10000
    epochs: float = 3.0
    stage_epochs: list = dataclasses.field(default_factory=lambda: [1, 3])
    # "1 epoch, evaluated, then 2 more epochs" (seed settings.epochs): the epoch-1 model was a finished run
    stage_schedule: str = "restart"
    max_seq_length: int = 1024

    def validate(self) -> None:
        super().validate()
        get_task(self.task)
        if not self.dataset_source.strip():
            raise ConfigError("dataset_source is empty: use 'hub', 'local' or a path to a data file")
        if self.n_samples < 1:
            raise ConfigError(f"n_samples must be >= 1, got {self.n_samples}")
        # bool is an int in Python: [true] would pass and fail only after the whole training
        if not self.stage_epochs or any(isinstance(e, bool) or not isinstance(e, int) or not 1 <= e <= self.epochs
                                        for e in self.stage_epochs):
            raise ConfigError(f"stage_epochs {self.stage_epochs} must be whole epochs within 1..epochs={self.epochs:g}")
        if self.stage_schedule not in STAGE_SCHEDULES:
            raise ConfigError(f"stage_schedule must be 'restart' (a new learning-rate schedule after each stage) or "
                              f"'snapshot' (one schedule, copied out at each stage), got {self.stage_schedule!r}")
        if self.max_steps > 0:
            raise ConfigError("max_steps would cut the epochs short and skip the stages: set max_steps = -1 "
                              "and size the run with n_samples and epochs")


@dataclasses.dataclass
class BenchmarkConfig:
    """benchmark: answer the task's question set with each stage of a training run."""

    model: str = "llama-3.1-8b"  # train_math/train_bio default: their runs are found
    task: str = "math"
    train_run: str = ""
    stages: list = dataclasses.field(default_factory=lambda: ["base", "epoch1", "epoch3"])
    question_set: str = ""
    max_questions: int = 0
    eval_batch_size: int = 0  # 0: as many questions at once as GPU memory holds (helpers.generation)
    max_new_tokens: int = 512
    output_root: str = "benchmarks"
    workbook_dir: str = "benchmark_data"
    run_name: str = ""
    resume: bool = True

    def validate(self) -> None:
        get_task(self.task)
        if not self.stages:
            raise ConfigError("stages is empty: e.g. ['base', 'epoch1', 'epoch3']")
        for stage in self.stages:
            if not isinstance(stage, str) or not (stage == "base" or re.fullmatch(r"epoch[0-9]+", stage)):
                raise ConfigError(f"stage {stage!r} is neither 'base' nor 'epoch<N>' (the stages a training run "
                                  "keeps, e.g. stages ['base', 'epoch1', 'epoch3'])")
        if self.eval_batch_size < 0 or self.max_new_tokens < 1 or self.max_questions < 0:
            raise ConfigError("max_new_tokens must be >= 1, eval_batch_size and max_questions >= 0 "
                              "(eval_batch_size 0 = as many as fit, max_questions 0 = all)")


def train_report(metrics: dict) -> str:
    train = metrics["train"]
    lines = [f"{metrics['task']} on {metrics['model']} ({metrics['backend']}): {metrics['n_examples']} examples, "
             f"{train['steps']} steps, loss {train['loss_first']:.3f} -> {train['loss_last']:.3f}"]
    # absent in a run made before stage_schedule existed: one schedule, a snapshot at each stage
    lines[0] += f", stage_schedule {train.get('stage_schedule') or 'snapshot'}"
    lines += [f"  stage {name}: {path}" for name, path in metrics["stages"].items()]
    return "\n".join(lines)


def benchmark_report(metrics: dict) -> str:
    from helpers.stats import with_interval  # numpy: not for the config side of this module

    lines = [f"{metrics['task']} questions answered by {metrics['model']} ({metrics['n_questions']} each):"]
    for stage, s in metrics["stages"].items():
        # a named 95% interval where the run has one (Wilson: stats.score_summary), else the bare score
        auto = (f", automatic score {with_interval(s['auto_score_summary'])}" if s.get("auto_score_summary") else
                f", automatic score {100 * s['auto_score']:.1f}%" if "auto_score" in s else "")
        lines.append(f"  {stage:>8}: {s['empty_answers']} empty, {s['mean_answer_chars']:.0f} chars on average{auto}")
    lines.append(f"workbook: {metrics['files']['workbook']} {metrics['workbook_update']}")
    return "\n".join(lines)


@dataclasses.dataclass
class CompileConfig:
    """compile_ratings: read every rating workbook, write the summary."""

    workbook_dir: str = "benchmark_data"
    output_dir: str = "benchmark_data/summary"

    def validate(self) -> None:
        if not (REPO_ROOT / self.workbook_dir).is_dir() and not Path(self.workbook_dir).is_dir():
            raise ConfigError(f"workbook_dir '{self.workbook_dir}' is not a folder")


def compile_report(metrics: dict) -> str:
    import pandas as pd

    from helpers.ratings import Problem

    summary = pd.DataFrame(metrics["summary"])
    problems = [Problem(**p).line() for p in metrics.get("problems", [])]
    lines = [f"{len(problems)} problem(s), also in the problems sheet of ratings_summary.xlsx:", *problems]
    lines = lines if problems else []
    if summary.empty:
        return "\n".join(["no rating workbooks found", *lines])
    cols = ["model", "task", "stage", "items", "ratings", "missing", "excluded", "mean_rating", "ci95", "auto_score"]
    return "\n".join([summary[[c for c in cols if c in summary]].round(2).to_string(index=False), *lines])
