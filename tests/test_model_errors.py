"""A model download that fails says why and what to do, against the local hub (tests/hub_server.py):
gated, unknown id, offline. Registry entries are resolved as in a notebook; nothing is loaded."""

import json

import pytest
from hub_server import folder_repo

from helpers.config import ConfigError
from helpers.modeling import load_model
from helpers.registry import ModelSpec


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
