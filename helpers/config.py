"""Typed study configs built from a notebook's flat `parameters` cell.

Layers, last wins: the dataclass defaults of a study (= the paper's settings, mirrored in the
notebook's parameters cell) -> a preset file under configs/presets/ -> run overrides (papermill -p).
The model registry entry adds what is specific to a model (chat template, stop tokens, overrides).

    >>> cfg = build_config(AdditionConfig, {"model": "smollm2-135m", "lora_r": 16})
    >>> build_config(AdditionConfig, {"lora_rank": 16})
    Traceback (most recent call last):
    ConfigError: unknown parameter 'lora_rank' (did you mean 'lora_r'?); known: ...
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import typing
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"

# Keys that steer where/how a run is kept, not what it computes: left out of the run's hash.
RUN_CONTROL_KEYS = {"output_root", "run_name", "resume"}
# Settings added after runs were made: left out of the hash at these values, so those runs keep their folders.
HASH_NEUTRAL = {"group_by_length": False}


class ConfigError(ValueError):
    """A bad parameter. Its message is one line that says what to change."""


@dataclasses.dataclass
class StudyConfig:
    """Settings every fine-tuning study shares. Defaults follow the addition study's paper."""

    model: str = "smollm2-135m"
    seed: int = 42
    load_in_4bit: bool = True
    lora_r: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: list = dataclasses.field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    warmup_steps: int = 5
    max_seq_length: int = 512
    gradient_checkpointing: bool = True
    # Batches of similar lengths, padded: little padding, compiled kernels (PERFORMANCE.md, short samples).
    group_by_length: bool = True
    padding_free: bool = False  # a batch's examples end to end instead (same loss; slower where measured)
    save_steps: int = 50
    eval_batch_size: int = 32
    max_new_tokens: int = 32
    output_root: str = "benchmarks"
    run_name: str = ""
    resume: bool = True

    def validate(self) -> None:
        positive = ["lora_r", "lora_alpha", "batch_size", "grad_accum", "max_seq_length", "save_steps",
                    "eval_batch_size", "max_new_tokens"]
        for key in positive:
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError("set epochs > 0 or max_steps > 0: with both off there is nothing to train")
        if not self.lora_targets:
            raise ConfigError("lora_targets is empty: name the projections to adapt, e.g. ['q_proj', 'v_proj']")
        if not str(self.model).strip():
            raise ConfigError("model is empty: give a registry name (configs/models.yaml), a hub id or a path")


@dataclasses.dataclass
class InstructConfig(StudyConfig):
    """Defaults of the instruction-tuning studies (Unsloth's QLoRA recipe the seven-model study used):
    r = alpha = 16, no dropout, 8 examples a step as 2 x 4 (fits a T4 at 8B)."""

    lora_r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    learning_rate: float = 2e-4
    batch_size: int = 2
    grad_accum: int = 4
    save_steps: int = 100


def _type_ok(value, annotation) -> bool:
    hint = {"int": int, "float": (int, float), "bool": bool, "str": str, "list": (list, tuple)}.get(
        annotation if isinstance(annotation, str) else getattr(annotation, "__name__", ""), object
    )
    if hint is int and isinstance(value, bool):
        return False
    if hint == (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, hint)


def build_config(cls: type, params: dict):
    """Turn flat parameters into `cls`, rejecting unknown keys and wrong types, then validate."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in params.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown parameter '{key}'{hint}; known: {', '.join(sorted(fields))}")
        if not _type_ok(value, hints[key]):
            raise ConfigError(
                f"parameter '{key}' must be {getattr(hints[key], '__name__', hints[key])}, got {value!r}"
            )
    cfg = cls(**{k: (float(v) if hints[k] is float else v) for k, v in params.items()})
    cfg.validate()
    return cfg


def collect_params(namespace: dict, names_before: set) -> dict:
    """The parameters a notebook defined (its `parameters` cell and papermill's injected cell).

    The notebook records `set(dir())` just before its parameters cell; everything new after the
    injected cell is a parameter, so a misspelt `-p` shows up here and `build_config` rejects it.
    """
    return {
        k: v for k, v in namespace.items()
        if k not in names_before and not k.startswith("_") and not callable(v) and not isinstance(v, type(typing))
    }


def load_preset(study: str, preset: str) -> dict:
    """Overrides from configs/presets/<preset>/<study>.yaml (e.g. the demo-sized run)."""
    path = CONFIG_DIR / "presets" / preset / f"{study}.yaml"
    if not path.exists():
        known = sorted(p.name for p in (CONFIG_DIR / "presets").iterdir() if (p / f"{study}.yaml").exists())
        raise ConfigError(f"no preset '{preset}' for study '{study}'; known: {', '.join(known) or 'none'}")
    return yaml.safe_load(path.read_text()) or {}


def config_hash(cfg) -> str:
    """Short stable hash of what a run computes (run-control keys left out)."""
    data = {k: v for k, v in dataclasses.asdict(cfg).items()
            if k not in RUN_CONTROL_KEYS and not (k in HASH_NEUTRAL and v == HASH_NEUTRAL[k])}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
