"""Each study notebook's defaults are its paper's: the model the study used (registry entry), the
LoRA/schedule it states; the CPU presets (demo, smoke) keep the embedded model. Unit level: configs,
presets and the published-vs-ours matcher only, no model is loaded."""

import dataclasses

import pytest

from helpers.config import load_preset
from helpers.published import LLAMA2_7B, LLAMA32_1B, MISTRAL_7B_INSTRUCT, compare
from helpers.registry import load_registry
from helpers.studies import STUDIES, study_config
from helpers.sweep import STUDY_MODELS

EMBEDDED = "smollm2-135m"


@pytest.fixture(autouse=True)
def openai_key(monkeypatch):
    """mmlu_teacher's default teacher is an OpenAI endpoint: its key variable must be set to validate."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-defaults")
# the study each notebook re-runs -> who its paper's model is
PAPER_MODEL = {"addition": LLAMA2_7B, "mmlu_teacher": LLAMA2_7B, "forgetting": LLAMA32_1B,
               "small_vs_large": MISTRAL_7B_INSTRUCT}


@pytest.mark.parametrize("study", sorted(PAPER_MODEL))
def test_the_default_model_is_the_one_the_study_used(study):
    model = STUDIES[study].config().model
    assert PAPER_MODEL[study].matches(model), f"{study}: {model} is not {PAPER_MODEL[study].label}"
    assert model in load_registry()  # a registry name: a Unsloth 4-bit checkpoint on a GPU


@pytest.mark.parametrize("study", ["addition", "mmlu_teacher"])
def test_llama2_studies_default_to_the_registry_llama_2_7b(study):
    assert study_config(study, {}).model == "llama-2-7b"


@pytest.mark.parametrize("study", ["train_math", "train_bio"])
def test_seven_model_notebooks_default_to_one_of_the_seven(study):
    model = study_config(study, {}).model
    assert model in STUDY_MODELS and model == "llama-3.1-8b"  # the study's best math model (seed: 4.97)


def test_small_vs_large_defaults_to_mistral_7b_instruct_v03():
    assert study_config("small_vs_large", {}).model == "mistral-7b-instruct-v3"
    assert load_registry()["mistral-7b-instruct-v3"].hub_id.startswith("unsloth/mistral-7b-instruct-v0.3")


WITH_A_MODEL = sorted(name for name, study in STUDIES.items()
                      if "model" in {f.name for f in dataclasses.fields(study.config)})


@pytest.mark.parametrize("preset", ["demo", "smoke"])
@pytest.mark.parametrize("study", WITH_A_MODEL)
def test_cpu_presets_keep_the_embedded_model(study, preset):
    values = load_preset(study, preset)
    assert values.get("model") == EMBEDDED
    assert study_config(study, values).model == EMBEDDED  # the preset wins over the new default
    if study == "mmlu_teacher":  # the 135M student is its own teacher on a CPU
        assert values["teacher_model"] == EMBEDDED and values["teacher_backend"] == "local"
    if study == "small_vs_large":
        assert values["large_model"] == EMBEDDED


def test_the_embedded_model_can_still_be_chosen():
    for study in ("addition", "mmlu_teacher", "train_math", "small_vs_large", "forgetting"):
        assert study_config(study, {"model": EMBEDDED}).model == EMBEDDED
    assert load_registry()[EMBEDDED].embedded


def test_mmlu_teacher_defaults_are_the_studys_table_1():
    cfg = study_config("mmlu_teacher", {})
    assert (cfg.lora_r, cfg.lora_dropout, cfg.epochs, cfg.load_in_4bit) == (32, 0.1, 1.0, True)
    assert cfg.lora_alpha == cfg.lora_r  # not stated by the study: alpha = r, as in addition


def mmlu_metrics(labels):
    cell = {"accuracy": 0.33, "ci95": 0.08, "n": 112}
    psych = {"accuracy": 0.4, "ci95": 0.04, "n": 612}
    return {"study": "mmlu_teacher", "model": "llama-2-7b", "teacher": {"model": "gpt-4o"},
            "tables": {"generate": {label: {"machine_learning": cell, "professional_psychology": psych}
                                    for label in labels}}}


def test_mmlu_teacher_defaults_make_every_published_row_comparable():
    """With the notebook's defaults (the study's model, settings, subjects, full test split), every
    published row is comparable; the rows of the per-subject students come from the run's table."""
    from helpers.tasks import mmlu

    cfg = dataclasses.asdict(study_config("mmlu_teacher", {}))
    records = [{"subject": s, "stage": "kept", "item": mmlu.Question(s, f"q {s}", list("abcd"), 0)}
               for s in cfg["subjects"]]
    names = mmlu.finetune_variants(records, records, study_config("mmlu_teacher", {}))
    labels = ["teacher", "vanilla student", *(mmlu.row_label(name) for name in names)]
    table = compare("mmlu_teacher", mmlu_metrics(labels), cfg)
    assert len(table) == 10
    assert table["comparable"].all(), table[~table["comparable"]][["row", "reason"]].to_string()


def test_large_model_is_asked_zero_shot_by_default_as_in_the_study():
    from helpers.tasks import small_vs_large as svl

    cfg = study_config("small_vs_large", {})
    assert cfg.large_model_demos is False
    assert svl.prompt_kind("large", cfg.large_model_demos) == "plain"
    assert svl.prompt_kind("large") == "plain"  # the function's own default too
    assert svl.prompt_kind("large", True) == "demos" and svl.prompt_kind("base+icl") == "demos"


def test_small_vs_large_defaults_run_from_the_hub_and_beer_without_a_copy_stops_at_once():
    """Beer style has no hub copy: the default tasks are the two the hub has, and asking for beer with
    data_source 'hub' is one line before anything loads (it used to fail at the data cell)."""
    from helpers.config import ConfigError
    from helpers.studies import study_config

    cfg = study_config("small_vs_large", {})
    assert cfg.data_source == "hub" and cfg.tasks == ["gsm8k", "medqa"]
    with pytest.raises(ConfigError, match="beer have no hub copy"):
        study_config("small_vs_large", {"tasks": ["gsm8k", "beer"]})
    assert study_config("small_vs_large", {"tasks": ["beer"], "data_source": "local"}).tasks == ["beer"]


def test_forgetting_trains_8_examples_a_step_as_one_micro_batch():
    """The study states no batch size. 8 examples an update as in Unsloth's 2 x 4, but as one micro-batch:
    the same examples and loss an update, and 5.4x the tokens/s for TinyLlama on an H200 (a 1B step costs
    about as much for 2 rows as for 8; PERFORMANCE.md, "Small models, second round")."""
    from helpers.tasks.forgetting import ForgettingConfig

    cfg = ForgettingConfig()
    assert (cfg.batch_size, cfg.grad_accum) == (8, 1)
    assert cfg.gradient_checkpointing  # off would be 1.5x faster again, but the longest batches were not measured
