"""The model registry (configs/models.yaml) and the chat-template families.

    >>> spec = resolve_model("llama-3.1-8b")
    >>> spec.hub_id, spec.family
    ('unsloth/Meta-Llama-3.1-8B-bnb-4bit', 'llama-3')
    >>> resolve_model("Qwen/Qwen2.5-0.5B-Instruct").family   # any hub id works; its own template
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import yaml

from helpers.config import CONFIG_DIR, ConfigError, similar_names


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    hub_id: str | None = None
    local_path: str | None = None
    family: str | None = None
    instruction_part: str | None = None
    response_part: str | None = None
    stop_strings: tuple = ()
    eos_token: str | None = None
    pad_token: str | None = None
    gguf_package: str | None = None
    gguf_file: str | None = None

    @property
    def embedded(self) -> bool:
        return self.gguf_package is not None


# A YAML file of more models in configs/models.yaml's layout (`models:` name -> fields), read after it: your own
# checkpoints by name without editing the repository's file; a name it shares replaces the repository's entry.
# The tests register a tiny random-weight model this way (tests/conftest.py).
EXTRA_MODELS_ENV = "QLORA_MODELS"


def load_registry(path: str | None = None) -> dict[str, ModelSpec]:
    """configs/models.yaml (or `path`), then the file named by $QLORA_MODELS, by name; a key that is no
    ModelSpec field stops with one line."""
    return _registry(str(path or CONFIG_DIR / "models.yaml"), os.environ.get(EXTRA_MODELS_ENV) or None)


@functools.cache
def _registry(path: str, extra: str | None) -> dict[str, ModelSpec]:
    models = _read_models(Path(path))
    if extra:
        if not Path(extra).expanduser().is_file():
            raise ConfigError(f"{EXTRA_MODELS_ENV}={extra} is not a file: point it at a YAML file of models "
                              "in configs/models.yaml's layout, or unset it")
        models.update(_read_models(Path(extra).expanduser()))
    return models


def _read_models(path: Path) -> dict[str, ModelSpec]:
    data = yaml.safe_load(path.read_text())
    raw = data.get("models") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: no `models:` mapping of name -> fields (configs/models.yaml shows the layout)")
    known = [f.name for f in dataclasses.fields(ModelSpec) if f.name != "name"]
    for name, entry in raw.items():
        for key in entry:
            if key not in known:
                raise ConfigError(f"{path}: model '{name}' has an unknown key '{key}'{similar_names(key, known)}; "
                                  f"known: {', '.join(known)}")
    return {
        name: ModelSpec(name=name, **{**entry, "stop_strings": tuple(entry.get("stop_strings", ()))})
        for name, entry in raw.items()
    }


def resolve_model(name: str) -> ModelSpec:
    """A registry name, an existing local folder, or a hub id ('org/name')."""
    registry = load_registry()
    if name in registry:
        return registry[name]
    if Path(name).expanduser().is_dir():
        return ModelSpec(name=Path(name).name, local_path=str(Path(name).expanduser().resolve()))
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return ModelSpec(name=name.replace("/", "--"), hub_id=name)
    raise ConfigError(
        f"unknown model '{name}'; use a hub id (org/name), a local folder, or one of: {', '.join(registry)}"
    )


# What a folder that transformers (or peft, for an adapter) loads holds besides its config file.
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def check_model_folder(spec: ModelSpec) -> ModelSpec:
    """`spec` unchanged, or one line now for a local folder that holds no model (a typo'd run folder,
    a data folder), instead of a tokenizer error from deep inside transformers at load time.

    A model folder is what save_pretrained writes: config.json and the weights; a peft adapter
    folder (adapter_config.json and its weights) loads its base model itself."""
    if spec.local_path is None:
        return spec
    folder = Path(spec.local_path)
    config = next((name for name in ("config.json", "adapter_config.json") if (folder / name).is_file()), None)
    if config is None:
        raise ConfigError(f"{folder} is not a model folder: it has no config.json (save_pretrained writes "
                          "config.json and the weights there); pass a registry name, a hub id or such a folder")
    if not any(next(folder.glob(pattern), None) for pattern in WEIGHT_FILES):
        raise ConfigError(f"{folder} is not a model folder: it has {config} but no weights "
                          f"({', '.join(WEIGHT_FILES[:2])}); copy them in, or pass the model's hub id")
    return spec


def require_model(name: str) -> ModelSpec:
    """`resolve_model`, and a local folder must hold a model: what the runner checks before a kernel starts."""
    return check_model_folder(resolve_model(name))


def chat_template(family: str) -> str:
    path = CONFIG_DIR / "chat_templates" / f"{family}.jinja"
    if not path.exists():
        raise ConfigError(f"no chat template for family '{family}': add {path.relative_to(CONFIG_DIR.parent)}")
    return path.read_text().rstrip("\n")
