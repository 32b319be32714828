import contextlib
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedded_tokenizer():
    """The embedded SmolLM2 tokenizer (converts the GGUF once per machine, ~20 s, then cached)."""
    from transformers import AutoTokenizer

    from helpers.modeling import _fix_special_tokens, embedded_checkpoint
    from helpers.registry import resolve_model

    spec = resolve_model("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(embedded_checkpoint(spec))
    _fix_special_tokens(tokenizer, spec)
    return tokenizer


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    """A local hub (tests/hub_server.py) on 127.0.0.1 holding every dataset the studies load from the
    hub, in the real repositories' layouts, plus a gated and a renamed-columns dataset. Started once,
    stopped at the end of the session; `hub` below points a test at it."""
    from hub_server import HubServer, error_repos, study_dataset_repos

    repos = study_dataset_repos()
    with HubServer([*repos, *error_repos(repos)]) as server:
        server.home = tmp_path_factory.mktemp("hf_home")  # HF caches of every test that uses the server
        yield server


@pytest.fixture
def hub(hub_server, monkeypatch):
    """This test (and the notebook kernels it starts) loads from `hub_server` as if it were
    huggingface.co: HF_ENDPOINT set, HF_HUB_OFFLINE unset, no token, HF caches in a tmp dir; undone
    afterwards, so later tests are offline again."""
    from hub_server import point_at

    point_at(monkeypatch, hub_server.url, hub_server.home)
    return hub_server


@pytest.fixture(scope="session")
def hub_context(hub_server, tmp_path_factory):
    """`hub` for module-scoped fixtures (a notebook run shared by a module's tests), which cannot use a
    per-test fixture: `with hub_context() as server:` points this process and the kernels it starts at
    `hub_server` as `hub` does, with HF caches in a fresh tmp dir (every file the block loads comes from
    the server, whatever ran before), and undoes it when the block ends, so the module's other tests
    stay offline."""
    from hub_server import point_at

    @contextlib.contextmanager
    def pointed():
        with pytest.MonkeyPatch.context() as patch:
            point_at(patch, hub_server.url, tmp_path_factory.mktemp("hf_home"))
            yield hub_server

    return pointed


@pytest.fixture(scope="session")
def hub_model(hub_server, tmp_path_factory):
    """The registry's llama-3.2-1b served from `hub_server` under its hub id: a 2-layer random-weight
    Llama 3.2, 4-bit like the real repository, with the embedded tokenizer. Returns the registry name."""
    from hub_server import tiny_model_repo

    from helpers.modeling import embedded_checkpoint
    from helpers.registry import resolve_model

    name = "llama-3.2-1b"
    tokenizer_dir = embedded_checkpoint(resolve_model("smollm2-135m"))
    hub_server.add(tiny_model_repo(resolve_model(name).hub_id, name, tokenizer_dir, tmp_path_factory.mktemp("model")))
    return name


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory):
    """One serial sweep (smoke preset) of the embedded model over math and bio, beside a model that is not on
    this machine: tests/test_sweep.py checks it, tests/test_sweep_ray.py compares its Ray sweep with it (one
    sweep for both: each costs six notebook runs). Its users only read it."""
    from helpers.sweep import run_sweep

    tmp = tmp_path_factory.mktemp("smoke_sweep")
    lines = []
    runs = run_sweep(["smollm2-135m", "org/not-on-this-machine"], ["math", "bio"], preset="smoke",
                     output_root=str(tmp / "runs"), workbook_dir=str(tmp / "books"), log=lines.append)
    return {"root": tmp / "runs", "books": tmp / "books", "runs": runs, "lines": lines}
