"""The study notebooks by name: their config class, the values a notebook fixes (not parameters),
the report the runner prints. Notebooks call `study_config(name, params)` right after their
parameters cell; the runner and the tests use the same entries.

    >>> cfg = study_config("train_bio", {"model": "qwen-2-7b"})
    >>> cfg.task
    'bio'
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from helpers.config import ConfigError, NotebookParams, build_config
from helpers.tasks import addition, forgetting, instruct, mmlu, small_vs_large


@dataclasses.dataclass(frozen=True)
class Study:
    config: type
    fixed: dict = dataclasses.field(default_factory=dict)
    report: Callable | None = None


STUDIES = {
    "addition": Study(addition.AdditionConfig, report=addition.report),
    "train_math": Study(instruct.TrainConfig, {"task": "math"}, report=instruct.train_report),
    "train_bio": Study(instruct.TrainConfig, {"task": "bio"}, report=instruct.train_report),
    "benchmark": Study(instruct.BenchmarkConfig, report=instruct.benchmark_report),
    "compile_ratings": Study(instruct.CompileConfig, report=instruct.compile_report),
    "mmlu_teacher": Study(mmlu.MmluConfig, report=mmlu.report),
    "forgetting": Study(forgetting.ForgettingConfig, report=forgetting.report),
    "small_vs_large": Study(small_vs_large.SmallVsLargeConfig, report=small_vs_large.report),
}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise ConfigError(f"unknown study '{name}'; known: {', '.join(STUDIES)}")
    return STUDIES[name]


def study_config(name: str, params: dict):
    """`params`: flat values, or a notebook's `collect_params(globals(), ...)` (only the config's fields are read)."""
    study = get_study(name)
    if isinstance(params, NotebookParams):
        params = params.fields_of(study.config, fixed=study.fixed)
    clash = sorted(set(params) & set(study.fixed))
    if clash:
        raise ConfigError(f"{name} fixes {', '.join(clash)}; use the notebook of the other task instead")
    return build_config(study.config, {**params, **study.fixed})
