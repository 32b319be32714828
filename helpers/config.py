"""Typed study configs built from a notebook's flat `parameters` cell.

Layers, last wins: the dataclass defaults of a study (= the paper's settings, mirrored in the
notebook's parameters cell) -> a preset file under configs/presets/ -> run overrides (papermill -p).
The model registry entry adds what is specific to a model (chat template, stop tokens).

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
import math
import os
import re
import typing
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
# Set by the notebooks' setup cell on Colab/Kaggle: where run folders survive a runtime reset (Drive,
# /kaggle/working). Relative output paths (output_root, workbook_dir, ...) are then taken from its folder.
OUTPUT_ROOT_ENV = "QLORA_OUTPUT_ROOT"


def repo_path(path) -> Path:
    """An input path as the user means it: absolute (~ expanded), or under the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def output_path(path) -> Path:
    """Where an output path (run folders, workbooks, caches) goes: absolute, or under the folder that
    holds $QLORA_OUTPUT_ROOT when the setup cell set it (so "benchmarks" is that variable's value and
    "benchmark_data" its sibling), else under the repository root."""
    import os

    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    keep = os.environ.get(OUTPUT_ROOT_ENV)
    return (Path(keep).expanduser().parent if keep else REPO_ROOT) / path

# Keys that steer where/how a run is kept or how fast it goes, not what it computes: left out of the run's hash
# (cuda_graphs: the same losses, tests/test_cuda_graphs.py and PERFORMANCE.md; a run resumes with it on or off).
RUN_CONTROL_KEYS = {"output_root", "run_name", "resume", "report_to", "teacher_concurrency", "cuda_graphs"}
# Settings added after runs were made: left out of the hash at these values, so those runs keep their folders.
HASH_NEUTRAL = {"group_by_length": False, "stage_schedule": "snapshot", "optim": "auto"}
# the trainer's optimizer (transformers' `optim` names). "auto": the study's stated optimizer where it states one
# (STATED_OPTIM on its config), else on a GPU torch's fused AdamW for a model under 3B parameters (its step is bound
# by the host: helpers.sft.SMALL_MODEL_PARAMS) and adamw_8bit from there (Unsloth's notebooks); adamw_torch on a CPU.
# A resumed checkpoint keeps the optimizer that wrote it (helpers.sft.checkpoint_optim).
# The 8-bit ones are bitsandbytes' (also on a CPU); "paged_" keeps the same arithmetic, its states in paged memory.
OPTIMIZERS = ("auto", "adamw_8bit", "paged_adamw_8bit", "adamw_torch", "adamw_torch_fused")
# trainer loggers a run may add (each needs its package installed: tensorboard, wandb)
REPORT_TO = ("none", "tensorboard", "wandb")


class ConfigError(ValueError):
    """A bad parameter. Its message is one line that says what to change."""


# A parameter whose name ends so holds the NAME of an environment variable with a secret (an API key,
# a token), never the secret: it is checked before anything is written, and its value is never shown.
SECRET_ENV_SUFFIXES = ("_api_key_env", "_key_env", "_token_env")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# POSIX.1-2017 8.1: the utilities' environment variables are named in capitals, digits and '_'. A key
# that has no dash still has lower case letters (sk..., hf_...), so mixed case counts as a name only
# when a variable of that name is set.
_CONVENTIONAL_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


def is_secret_env_param(name: str) -> bool:
    return name.endswith(SECRET_ENV_SUFFIXES)


def is_env_var_name(value) -> bool:
    """Whether `value` reads as the name of an environment variable rather than a key."""
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        return False
    return bool(_CONVENTIONAL_ENV_NAME.fullmatch(value)) or value in os.environ


def hosted_runtime() -> str:
    """'colab', 'kaggle' or '' (the setup cell tells them apart by the same variables)."""
    if os.environ.get("COLAB_RELEASE_TAG"):
        return "colab"
    return "kaggle" if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") else ""


# Where a hosted notebook keeps a key, and what to do when it is not there (the key's name is shown, never a value)
SECRETS_HOWTO = {
    "colab": "add it in Colab's Secrets (the key icon in the left bar) under the name {name} and switch on this "
             "notebook's access",
    "kaggle": "add it in Kaggle's Add-ons > Secrets under the name {name} and tick it for this notebook",
    "": "export it before starting Jupyter (export {name}=...)",
}


def load_secret_env(name: str) -> bool:
    """Whether the environment variable `name` is set, taking it from the notebook's Secrets on Colab
    (google.colab.userdata) or Kaggle (kaggle_secrets) when it is not: a key saved there never has to be
    typed into a cell, where the notebook would keep it. The value goes into os.environ only (where the
    backends read it at request time) and is never returned or shown."""
    if os.environ.get(name):
        return True
    value = None
    try:
        if hosted_runtime() == "colab":
            from google.colab import userdata

            value = userdata.get(name)
        elif hosted_runtime() == "kaggle":
            from kaggle_secrets import UserSecretsClient

            value = UserSecretsClient().get_secret(name)
    except Exception:  # no such secret, access not granted, or no Secrets API: the caller says what to do
        value = None
    if isinstance(value, str) and value:
        os.environ[name] = value
        return True
    return False


def check_secret_env_params(cfg, in_use: dict | None = None) -> None:
    """Check every field named `*_api_key_env`, `*_key_env` or `*_token_env` of the dataclass `cfg`:
    its value is '' (a server without keys) or the name of an environment variable, and one whose
    endpoint is in use (`in_use[field]`, True when not given) names a variable that is set, or a secret of
    that name on Colab or Kaggle (`load_secret_env`). The messages never show the value: a key typed in
    the wrong place must not reach a log.

        >>> check_secret_env_params(cfg, in_use={"teacher_api_key_env": cfg.teacher_backend == "openai"})
    """
    for field in dataclasses.fields(cfg):
        if not is_secret_env_param(field.name):
            continue
        value = getattr(cfg, field.name)
        if value == "":
            continue
        if not is_env_var_name(value):
            raise ConfigError(f"{field.name} must be the NAME of the environment variable that holds the key "
                              "(capitals, digits and _, e.g. OPENAI_API_KEY), never the key itself; "
                              "the value given is not shown")
        if (in_use or {}).get(field.name, True) and not load_secret_env(value):
            howto = SECRETS_HOWTO[hosted_runtime()].format(name="that name")  # an upper-case key reads as a name
            raise ConfigError(f"{field.name} must name an environment variable that is set, e.g. OPENAI_API_KEY: "
                              f"{howto}; or set {field.name} to '' for a server without keys; the value given is "
                              "not shown")


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
    optim: str = "auto"  # OPTIMIZERS
    save_steps: int = 50
    eval_batch_size: int = 32
    max_new_tokens: int = 32
    output_root: str = "benchmarks"
    run_name: str = ""
    resume: bool = True
    # where the trainer also logs (transformers' `report_to`); the loss curve PNG and metrics.json are written anyway
    report_to: str = "none"

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
        if self.optim not in OPTIMIZERS:
            raise ConfigError(f"optim must be one of {', '.join(OPTIMIZERS)}, got {self.optim!r}"
                              f"{similar_names(str(self.optim), OPTIMIZERS)}")
        if self.report_to not in REPORT_TO:
            raise ConfigError(f"report_to must be one of {', '.join(REPORT_TO)}, got {self.report_to!r}")
        if getattr(self, "cuda_graphs", False) and self.padding_free:  # the studies that have it (addition, forgetting)
            raise ConfigError("cuda_graphs needs padded batches of few shapes: set padding_free = False")


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


def _from_text(value, annotation):
    """A float written as text, for a float field: PyYAML (YAML 1.1) reads `1e-4` as a string (its
    floats need a dot, 1.0e-4), and `-p learning_rate 1e-4` arrives so. An int field gets no such
    help: YAML reads every integer as one, so text there ('16') was quoted on purpose."""
    if annotation is not float or not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def similar_names(name: str, known) -> str:
    """' (did you mean 'x'?)' for a misspelt name, else ''."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_parameter(name: str, fields) -> ConfigError:
    return ConfigError(f"unknown parameter '{name}'{similar_names(name, fields)}; known: {', '.join(sorted(fields))}")


def build_config(cls: type, params: dict):
    """Turn flat parameters into `cls`, rejecting unknown keys and wrong types, then validate.
    `params` from `collect_params` (a notebook's globals) gives only the names that are fields of `cls`."""
    if isinstance(params, NotebookParams):
        params = params.fields_of(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    params = dict(params)
    for key, value in params.items():
        if key not in fields:
            raise unknown_parameter(key, fields)
        params[key] = value = _from_text(value, hints[key])
        if not _type_ok(value, hints[key]):
            # the value of a secret's parameter may be the secret itself: name its type only
            shown = f"a {type(value).__name__} (the value is not shown)" if is_secret_env_param(key) else repr(value)
            raise ConfigError(f"parameter '{key}' must be {getattr(hints[key], '__name__', hints[key])}, got {shown}")
    cfg = cls(**{k: (float(v) if hints[k] is float else v) for k, v in params.items()})
    cfg.validate()
    return cfg


class NotebookParams(dict):
    """A notebook's globals that may hold parameters (no modules, functions or `_names`), and `new_names`:
    those defined after the imports cell, as they were when the config was first built from them."""

    def __init__(self, values: dict, new_names):
        super().__init__(values)
        self.new_names = frozenset(new_names)

    def fields_of(self, cls: type, fixed=()) -> dict:
        """The values of `cls`'s fields; other globals (cfg, run_dir, a loaded model) are ignored. A new
        name close to a field is a misspelt `-p` or parameter line: one line with a did-you-mean. A field
        in `fixed` (set by the study, not the notebook) counts only as a new name: a later cell may hold
        an object of that name (train_math's `task`), a papermill `-p task` must still be refused."""
        fields = [f.name for f in dataclasses.fields(cls)]
        for name in sorted(self.new_names - set(fields)):
            if similar_names(name, fields):
                raise unknown_parameter(name, fields)
        return {k: self[k] for k in fields if k in self and (k not in fixed or k in self.new_names)}


# id(names_before) -> (names_before, the new names when the config was first built from it): see collect_params
_FIRST_BUILD: dict[int, tuple[set, frozenset]] = {}


def collect_params(namespace: dict, names_before: set) -> NotebookParams:
    """The parameters of a notebook (its `parameters` cell and papermill's injected cell), for
    `build_config`/`study_config`, which read the config's field names from it and nothing else.

    The notebook records `set(dir())` just before its parameters cell. A name new since then and close
    to a field is a misspelt `-p` (did-you-mean), but only among the names there were when the config
    cell first ran with that record: later cells define names such as `train_dir` (close to `train_run`),
    and the config cell must run again without tripping on them. Re-running the imports cell makes a
    new record that holds the parameters too; their values are still read, as fields are read by name.
    """
    values = {k: v for k, v in namespace.items()
              if not k.startswith("_") and not callable(v) and not isinstance(v, type(typing))}
    seen = _FIRST_BUILD.get(id(names_before))
    if seen is None or seen[0] is not names_before:
        seen = _FIRST_BUILD[id(names_before)] = (names_before, frozenset(values.keys() - names_before))
    return NotebookParams(values, seen[1])


def load_preset(study: str, preset: str) -> dict:
    """Overrides from configs/presets/<preset>/<study>.yaml (e.g. the demo-sized run)."""
    path = CONFIG_DIR / "presets" / preset / f"{study}.yaml"
    if not path.exists():
        known = sorted(p.name for p in (CONFIG_DIR / "presets").iterdir() if (p / f"{study}.yaml").exists())
        raise ConfigError(f"no preset '{preset}' for study '{study}'; known: {', '.join(known) or 'none'}")
    return yaml.safe_load(path.read_text()) or {}


def hashed_settings(config: dict) -> dict:
    """The settings of a config (as a dict) that change what a run computes: run-control keys and
    HASH_NEUTRAL keys at their neutral value left out."""
    return {k: v for k, v in config.items()
            if k not in RUN_CONTROL_KEYS and not (k in HASH_NEUTRAL and v == HASH_NEUTRAL[k])}


def config_hash(cfg) -> str:
    """Short stable hash of what a run computes (hashed_settings)."""
    data = hashed_settings(dataclasses.asdict(cfg))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
