"""A key typed where the NAME of its environment variable belongs never reaches a file or a message:
every parameter named *_api_key_env / *_key_env / *_token_env of every study is checked by
helpers.config.check_secret_env_params before the run folder and papermill exist."""

import dataclasses

import pytest
from chat_server import ChatServer

from helpers import run_notebook
from helpers.backends import make_backend
from helpers.config import ConfigError, build_config, check_secret_env_params, is_secret_env_param
from helpers.studies import STUDIES, study_config

# The parameters that turn on the endpoint each secret is for. A new secret parameter fails
# test_every_secret_parameter_is_covered until it has an entry here (and so runs the tests below).
ENDPOINT_ON = {
    ("mmlu_teacher", "teacher_api_key_env"): {"teacher_backend": "openai"},
    ("small_vs_large", "large_api_key_env"): {"large_backend": "openai", "large_model": "big-model",
                                              "large_base_url": "http://127.0.0.1:9/v1"},
}
KEY_WITH_DASH = "sk-0123456789abcdefABCDEF"
KEY_WITHOUT_DASH = "sk0123456789abcdefABCDEF"  # passed the old check (no dash, so "a variable name")
UNSET_NAME = "QLORA_TEST_NEVER_SET_7F3A"  # a valid name, but no such variable: maybe an upper-case key
SECRETS = sorted(ENDPOINT_ON)


def secret_parameters() -> set:
    return {(name, f.name) for name, study in STUDIES.items() for f in dataclasses.fields(study.config)
            if is_secret_env_param(f.name)}


def test_every_secret_parameter_is_covered():
    assert secret_parameters() == set(ENDPOINT_ON)


@pytest.mark.parametrize("value", [KEY_WITH_DASH, KEY_WITHOUT_DASH, UNSET_NAME])
@pytest.mark.parametrize("study, name", SECRETS)
def test_a_key_stops_the_command_before_anything_is_written(study, name, value, tmp_path, capfd, monkeypatch):
    monkeypatch.delenv(UNSET_NAME, raising=False)
    root = tmp_path / "runs"
    root.mkdir()
    argv = [study, "--quiet", "-p", name, value, "-p", "output_root", str(root)]
    for key, on in ENDPOINT_ON[study, name].items():
        argv += ["-p", key, on]
    assert run_notebook.main(argv) == 2
    out, err = capfd.readouterr()
    assert err.startswith(f"error: {name} must") and err.count("\n") == 1
    assert value not in out + err and "not shown" in err
    assert list(root.rglob("*")) == []


@pytest.mark.parametrize("study, name", SECRETS)
def test_the_notebook_checks_the_same_before_its_run_record(study, name, monkeypatch):
    """The notebooks build their config with study_config right after the parameters cell."""
    monkeypatch.delenv(UNSET_NAME, raising=False)
    for value in (KEY_WITH_DASH, KEY_WITHOUT_DASH, UNSET_NAME):
        with pytest.raises(ConfigError) as err:
            study_config(study, {**ENDPOINT_ON[study, name], name: value})
        assert value not in str(err.value)
    monkeypatch.setenv(UNSET_NAME, "sk-the-real-key")
    assert getattr(study_config(study, {**ENDPOINT_ON[study, name], name: UNSET_NAME}), name) == UNSET_NAME
    # no key at all: a server that needs none
    assert getattr(study_config(study, {**ENDPOINT_ON[study, name], name: ""}), name) == ""


def test_an_unset_name_is_fine_while_its_endpoint_is_off_but_a_key_is_not(monkeypatch):
    monkeypatch.delenv(UNSET_NAME, raising=False)
    local = {"teacher_backend": "local", "teacher_model": "smollm2-135m"}
    assert study_config("mmlu_teacher", {**local, "teacher_api_key_env": UNSET_NAME}).teacher_backend == "local"
    with pytest.raises(ConfigError, match="NAME of the environment variable"):
        study_config("mmlu_teacher", {**local, "teacher_api_key_env": KEY_WITHOUT_DASH})
    # small_vs_large without a large model, or with a local one: the variable is not read
    assert study_config("small_vs_large", {"large_api_key_env": UNSET_NAME}).large_model == ""


@pytest.mark.parametrize("value", ["123456789012345678901234", "[sk-abc, def]", "'sk-unclosed"])
def test_a_wrong_type_or_bad_yaml_does_not_show_the_value(value, tmp_path, capfd):
    assert run_notebook.main(["mmlu_teacher", "-p", "teacher_api_key_env", value,
                              "-p", "output_root", str(tmp_path)]) == 2
    out, err = capfd.readouterr()
    assert "teacher_api_key_env" in err and value.strip("'[]") not in out + err
    assert list(tmp_path.rglob("*")) == []
    with pytest.raises(ConfigError, match="must be str, got a int") as raised:
        study_config("mmlu_teacher", {"teacher_api_key_env": 123456789012345678901234})
    assert "123456789012345678901234" not in str(raised.value)


def test_the_naming_convention_drives_the_check(monkeypatch):
    @dataclasses.dataclass
    class HubConfig:
        hub_token_env: str = "HF_TOKEN"
        cache_key_env: str = ""
        note: str = "sk-not-a-secret-field"

        def validate(self):
            check_secret_env_params(self, in_use={"hub_token_env": True})

    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.delenv("QLORA_CACHE_KEY", raising=False)
    assert build_config(HubConfig, {}).note == "sk-not-a-secret-field"  # other fields are not checked
    for params in ({"hub_token_env": "hf_AbCdEf0123456789"}, {"cache_key_env": "QLORA_CACHE_KEY"}):
        with pytest.raises(ConfigError, match=f"{next(iter(params))} must") as err:
            build_config(HubConfig, params)  # cache_key_env: not in in_use, so counted as in use
        assert next(iter(params.values())) not in str(err.value)
    # a name of another spelling is a name when such a variable is set
    monkeypatch.setenv("my_token", "x")
    assert build_config(HubConfig, {"hub_token_env": "my_token"}).hub_token_env == "my_token"


def test_the_backend_refuses_a_key_as_variable_name():
    with ChatServer() as server:
        with pytest.raises(ConfigError, match="NAME of an environment variable") as err:
            make_backend("openai", base_url=server.base_url, model="m", api_key_env=KEY_WITHOUT_DASH)
        assert KEY_WITHOUT_DASH not in str(err.value) and server.requests == []


def fake_secrets(monkeypatch, runtime: str, stored: dict, *, granted: bool = True):
    """Colab's google.colab.userdata or Kaggle's kaggle_secrets as the notebook sees them, holding `stored`."""
    import sys
    import types

    for name in ("COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)

    def get(name):
        if not granted:
            raise PermissionError("the notebook has no access to this secret")  # Colab's NotebookAccessError
        if name not in stored:
            raise KeyError(name)  # Colab's SecretNotFoundError, Kaggle's BackendError
        return stored[name]

    if runtime == "colab":
        monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")
        colab = types.ModuleType("google.colab")
        colab.userdata = types.SimpleNamespace(get=get)
        if "google" not in sys.modules:
            try:
                import google  # noqa: F401  (a namespace package of protobuf and others, when installed)
            except ImportError:
                monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", colab)
    else:
        monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
        kaggle = types.ModuleType("kaggle_secrets")
        kaggle.UserSecretsClient = lambda: types.SimpleNamespace(get_secret=get)
        monkeypatch.setitem(sys.modules, "kaggle_secrets", kaggle)


@pytest.mark.parametrize("runtime, where", [("colab", "Colab's Secrets"), ("kaggle", "Add-ons > Secrets")])
def test_a_key_in_the_hosted_notebooks_secrets_is_used_and_never_shown(runtime, where, monkeypatch):
    """On Colab or Kaggle the key comes from the notebook's Secrets, so it is never typed into a cell."""
    monkeypatch.delenv(UNSET_NAME, raising=False)
    fake_secrets(monkeypatch, runtime, {UNSET_NAME: "sk-from-the-secrets"})
    params = {**ENDPOINT_ON["mmlu_teacher", "teacher_api_key_env"], "teacher_api_key_env": UNSET_NAME}
    assert study_config("mmlu_teacher", params).teacher_api_key_env == UNSET_NAME
    import os

    assert os.environ[UNSET_NAME] == "sk-from-the-secrets"  # where the backend reads it at request time
    # not stored, or stored without access for this notebook: one line saying where to put it
    for stored, granted in (({}, True), ({UNSET_NAME: "sk-from-the-secrets"}, False)):
        monkeypatch.delenv(UNSET_NAME, raising=False)
        fake_secrets(monkeypatch, runtime, stored, granted=granted)
        with pytest.raises(ConfigError) as err:
            study_config("mmlu_teacher", params)
        message = str(err.value)
        assert where in message and "\n" not in message and "export" not in message
        assert UNSET_NAME not in message and "sk-from-the-secrets" not in message


def test_the_backend_reads_the_hosted_secret_at_request_time(monkeypatch):
    monkeypatch.delenv(UNSET_NAME, raising=False)
    fake_secrets(monkeypatch, "colab", {UNSET_NAME: "sk-from-the-secrets"})
    with ChatServer() as server:
        backend = make_backend("openai", base_url=server.base_url, model="m", api_key_env=UNSET_NAME)
        assert backend._headers()["Authorization"] == "Bearer sk-from-the-secrets"
        monkeypatch.delenv(UNSET_NAME)
        fake_secrets(monkeypatch, "colab", {})
        with pytest.raises(ConfigError, match=f"{UNSET_NAME} is not set: add it in Colab's Secrets") as err:
            backend._headers()
        assert "sk-from" not in str(err.value) and server.requests == []
