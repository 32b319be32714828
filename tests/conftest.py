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
