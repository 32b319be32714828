import dataclasses

import pytest

from helpers.config import ConfigError, StudyConfig, build_config, collect_params, config_hash, load_preset
from helpers.registry import chat_template, load_registry, resolve_model
from helpers.runs import run_folder
from helpers.tasks.addition import AdditionConfig

STUDY_MODELS = ["llama-2-7b", "llama-3-8b", "llama-3.1-8b", "gemma-7b", "gemma-2-9b", "mistral-7b-v3", "qwen-2-7b"]


def test_unknown_parameter_is_rejected_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown parameter 'lora_rank' \(did you mean 'lora_r'\?\)"):
        build_config(AdditionConfig, {"lora_rank": 16})


@pytest.mark.parametrize("key, value", [("lora_r", "16"), ("lora_r", 1.5), ("load_in_4bit", "yes"),
                                        ("lora_targets", "q_proj"), ("n_train", True)])
def test_wrong_type_is_rejected(key, value):
    with pytest.raises(ConfigError, match=f"parameter '{key}' must be"):
        build_config(AdditionConfig, {key: value})


def test_ints_are_accepted_for_floats():
    cfg = build_config(AdditionConfig, {"learning_rate": 1, "epochs": 2})
    assert cfg.learning_rate == 1.0 and isinstance(cfg.epochs, float)


def test_collect_params_sees_injected_and_misspelt_names():
    before = {"helpers", "os"}
    namespace = {"helpers": object(), "os": dataclasses, "model": "x", "lora_rank": 4, "_private": 1}
    assert collect_params(namespace, before) == {"model": "x", "lora_rank": 4}


def test_presets_load_and_unknown_preset_lists_known():
    assert load_preset("addition", "demo")["model"] == "smollm2-135m"
    with pytest.raises(ConfigError, match="known: demo"):
        load_preset("addition", "nope")


def test_registry_has_the_seven_study_models_and_the_embedded_one():
    registry = load_registry()
    assert set(STUDY_MODELS) | {"smollm2-135m"} <= set(registry)
    for name in STUDY_MODELS:
        spec = registry[name]
        assert spec.hub_id.startswith("unsloth/") and "bnb-4bit" in spec.hub_id
        assert spec.instruction_part and spec.response_part and spec.stop_strings
        assert chat_template(spec.family)
    assert registry["smollm2-135m"].embedded


def test_resolve_model_accepts_names_hub_ids_and_folders(tmp_path):
    assert resolve_model("qwen-2-7b").hub_id == "unsloth/Qwen2-7B-bnb-4bit"
    hub = resolve_model("Qwen/Qwen2.5-0.5B-Instruct")
    assert hub.hub_id == "Qwen/Qwen2.5-0.5B-Instruct" and hub.family is None
    local = resolve_model(str(tmp_path))
    assert local.local_path == str(tmp_path.resolve())


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown model 'llama-9'.*llama-3.1-8b.*smollm2-135m") as err:
        resolve_model("llama-9")
    assert "\n" not in str(err.value)


def test_run_folder_naming_rule(tmp_path):
    cfg = build_config(AdditionConfig, {"output_root": str(tmp_path)})
    assert run_folder("addition", cfg) == tmp_path / "addition" / f"llama-2-7b-{config_hash(cfg)}"
    # run-control keys do not change the hash; settings do
    same = build_config(AdditionConfig, {"output_root": "elsewhere", "resume": False})
    assert config_hash(same) == config_hash(cfg)
    assert config_hash(build_config(AdditionConfig, {"lora_r": 8})) != config_hash(cfg)
    named = build_config(AdditionConfig, {"output_root": str(tmp_path), "run_name": "mine"})
    assert run_folder("addition", named) == tmp_path / "addition" / "mine"
    hub = build_config(AdditionConfig, {"output_root": str(tmp_path), "model": "Qwen/Qwen2.5-0.5B"})
    assert run_folder("addition", hub).name.startswith("Qwen--Qwen2.5-0.5B-")


def test_study_config_defaults_follow_the_addition_paper():
    cfg = StudyConfig()
    assert (cfg.lora_r, cfg.lora_dropout, cfg.load_in_4bit, cfg.epochs) == (32, 0.1, True, 1.0)
    assert cfg.lora_targets == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
