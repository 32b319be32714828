"""The model registry (configs/models.yaml) and the chat-template families.

    >>> spec = resolve_model("llama-3.1-8b")
    >>> spec.hub_id, spec.family
    ('unsloth/Meta-Llama-3.1-8B-bnb-4bit', 'llama-3')
    >>> resolve_model("Qwen/Qwen2.5-0.5B-Instruct").family   # any hub id works; its own template
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import yaml

from helpers.config import CONFIG_DIR, ConfigError

DEFAULT_MODEL = "smollm2-135m"


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
    overrides: dict = dataclasses.field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.gguf_package is not None


@functools.cache
def load_registry(path: str | None = None) -> dict[str, ModelSpec]:
    raw = yaml.safe_load(Path(path or CONFIG_DIR / "models.yaml").read_text())["models"]
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


def chat_template(family: str) -> str:
    path = CONFIG_DIR / "chat_templates" / f"{family}.jinja"
    if not path.exists():
        raise ConfigError(f"no chat template for family '{family}': add {path.relative_to(CONFIG_DIR.parent)}")
    return path.read_text().rstrip("\n")
