import contextlib
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test`: one worker a core, so one thread a worker and its kernels
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # (two torch processes of two threads on two cores: ~10x slower)

# `make test` runs on two workers with --dist loadfile: a file's tests run on one worker, so a module-scoped fixture
# (a notebook run that several tests read) is computed once. These files share a session fixture (smoke_sweep,
# six notebook runs): one worker takes all three.
SHARED_FILES = {"tests/test_outputs.py", "tests/test_sweep.py", "tests/test_sweep_ray.py"}


@pytest.hookimpl(optionalhook=True)  # without pytest-xdist (pytest -p no:xdist, or not installed) it is not called
def pytest_xdist_make_scheduler(config, log):
    """xdist's loadfile scheduling with SHARED_FILES as one file. (Its xdist_group marks are not used: with
    pytest 9 and xdist 3.8 they do not keep a group on one worker.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFiles(LoadFileScheduling):
        def _split_scope(self, nodeid):
            scope = super()._split_scope(nodeid)
            return "smoke_sweep" if scope in SHARED_FILES else scope

    return SharedFiles(config, log)


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


TINY = "smollm2-tiny"  # the `tiny_model` fixture's registry name


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Registers `smollm2-tiny` for this session and every kernel it starts (QLORA_MODELS): the embedded
    model's tokenizer, chat template and registry fields, with 2 layers of width 64 and random weights (6M
    parameters, most of them the embedding and output layer). The notebook smoke runs that test what a run
    writes, not what a model answers, use it: a step costs milliseconds instead of seconds on a CPU. Returns
    the name."""
    import dataclasses

    import torch
    import yaml
    from hub_server import SHRINK  # the hub model's tiny dimensions
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from helpers.modeling import embedded_checkpoint
    from helpers.registry import EXTRA_MODELS_ENV, resolve_model

    spec = resolve_model("smollm2-135m")
    source, folder = embedded_checkpoint(spec), tmp_path_factory.mktemp("models") / TINY
    config = AutoConfig.from_pretrained(source)
    # untied: with the output layer = the embedding, greedy decoding repeats the prompt's last token ("\n"), and
    # every answer is empty; untied, an answer is max_new_tokens of words that depend on the question
    config.update({**SHRINK, "tie_word_embeddings": False})
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)  # the cached copy's: special tokens fixed
    fields = {k: v for k, v in dataclasses.asdict(spec).items() if v and k not in ("name", "gguf_package", "gguf_file")}
    entry = {**fields, "stop_strings": list(spec.stop_strings), "local_path": str(folder)}
    registry = folder.parent / "models.yaml"
    registry.write_text(yaml.safe_dump({"models": {TINY: entry}}))
    os.environ[EXTRA_MODELS_ENV] = str(registry)  # for the whole session: kernels inherit it
    return TINY


@pytest.fixture(scope="session")
def smoke_sweep(tiny_model, tmp_path_factory):
    """One serial sweep (smoke preset) of the tiny model over math and bio, beside a model that is not on
    this machine: tests/test_sweep.py checks it, tests/test_sweep_ray.py compares its Ray sweep with it (one
    sweep for both: each costs six notebook runs). Its users only read it."""
    from helpers.sweep import run_sweep

    tmp = tmp_path_factory.mktemp("smoke_sweep")
    lines = []
    runs = run_sweep([tiny_model, "org/not-on-this-machine"], ["math", "bio"], preset="smoke",
                     output_root=str(tmp / "runs"), workbook_dir=str(tmp / "books"), log=lines.append)
    return {"root": tmp / "runs", "books": tmp / "books", "runs": runs, "lines": lines}
