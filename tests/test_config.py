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


def notebook_namespace(**params):
    """A notebook's globals after its imports cell (what `set(dir())` records) and its parameters cell."""
    before = {"helpers", "os", "In", "Out"}
    return {"helpers": dataclasses, "os": dataclasses, "In": [""], "Out": {}, "_private": 1, **params}, set(before)


def test_collect_params_reads_the_config_fields_and_sees_misspelt_names():
    namespace, before = notebook_namespace(model="x", lora_r=4, lora_rank=4)
    with pytest.raises(ConfigError, match=r"unknown parameter 'lora_rank' \(did you mean 'lora_r'\?\)"):
        build_config(AdditionConfig, collect_params(namespace, before))
    namespace, before = notebook_namespace(model="x", lora_r=4, something_else=1)  # not close to a field: not one
    assert build_config(AdditionConfig, collect_params(namespace, before)) == build_config(
        AdditionConfig, {"model": "x", "lora_r": 4})


def test_the_config_cell_runs_again_after_later_cells():
    """Later cells define cfg, run_dir, names close to a field (n_test ~ n_test_per_k): none is a parameter."""
    namespace, before = notebook_namespace(model="x", lora_r=4)
    first = build_config(AdditionConfig, collect_params(namespace, before))
    namespace |= {"cfg": first, "run_dir": "benchmarks/addition/x", "n_test": 3, "model_obj": object()}
    assert build_config(AdditionConfig, collect_params(namespace, before)) == first
    namespace["lora_r"] = 8  # an edited parameters cell, run again
    assert build_config(AdditionConfig, collect_params(namespace, before)).lora_r == 8


def test_an_edited_parameter_survives_rerunning_the_imports_cell():
    namespace, before = notebook_namespace(model="x", lora_r=4, cfg=None)
    collect_params(namespace, before)
    namespace["lora_r"] = 8
    again = set(namespace)  # the imports cell run again: its record now holds every parameter
    cfg = build_config(AdditionConfig, collect_params(namespace, again))
    assert (cfg.model, cfg.lora_r) == ("x", 8)


def test_a_field_the_study_fixes_is_refused_as_a_parameter_but_not_as_a_later_global():
    from helpers.studies import study_config

    namespace, before = notebook_namespace(model="x", task="bio")  # papermill -p task bio on train_math
    with pytest.raises(ConfigError, match="train_math fixes task"):
        study_config("train_math", collect_params(namespace, before))
    namespace, before = notebook_namespace(model="x")
    first = study_config("train_math", collect_params(namespace, before))
    namespace["task"] = object()  # train_math's config cell: task = instruct.get_task(cfg.task)
    assert study_config("train_math", collect_params(namespace, before)) == first and first.task == "math"


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


def test_registry_refuses_a_key_it_would_not_read(tmp_path):
    """`overrides` was documented and never read: a registry key that no code reads stops the load."""
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  m:\n    hub_id: org/m\n    overrides: {lora_r: 8}\n")
    with pytest.raises(ConfigError, match=r"model 'm' has an unknown key 'overrides'; known: hub_id"):
        load_registry(str(path))
    path.write_text("models:\n  m:\n    hub_id: org/m\n    stop_string: ['</s>']\n")
    with pytest.raises(ConfigError, match=r"unknown key 'stop_string' \(did you mean 'stop_strings'\?\)"):
        load_registry(str(path))


def test_qlora_models_adds_and_replaces_registry_entries(tmp_path, monkeypatch):
    """$QLORA_MODELS names a file of more models in models.yaml's layout: a new name is added, a shared name
    replaces the repository's entry, and the kernels of a run see it (an environment variable)."""
    own = tmp_path / "mine.yaml"
    own.write_text("models:\n  my-model:\n    hub_id: me/my-model\n    family: chatml\n"
                   "  qwen-2-7b:\n    hub_id: me/qwen-fork\n")
    monkeypatch.setenv("QLORA_MODELS", str(own))
    assert resolve_model("my-model").hub_id == "me/my-model" and resolve_model("my-model").family == "chatml"
    assert resolve_model("qwen-2-7b").hub_id == "me/qwen-fork" and "llama-3.1-8b" in load_registry()
    monkeypatch.setenv("QLORA_MODELS", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"QLORA_MODELS=.*missing.yaml is not a file: point it at a YAML file"):
        load_registry()
    flat = tmp_path / "flat.yaml"
    flat.write_text("my-model:\n  hub_id: me/my-model\n")  # no `models:` above the entries
    monkeypatch.setenv("QLORA_MODELS", str(flat))
    with pytest.raises(ConfigError, match=r"flat.yaml: no `models:` mapping of name -> fields"):
        load_registry()
    listed = tmp_path / "listed.yaml"
    listed.write_text("- my-model\n")  # a list, not a mapping
    monkeypatch.setenv("QLORA_MODELS", str(listed))
    with pytest.raises(ConfigError, match=r"listed.yaml: no `models:` mapping"):
        load_registry()
    monkeypatch.delenv("QLORA_MODELS")
    assert resolve_model("qwen-2-7b").hub_id == "unsloth/Qwen2-7B-bnb-4bit"
    with pytest.raises(ConfigError, match="unknown model 'my-model'"):
        resolve_model("my-model")


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
