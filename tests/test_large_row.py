"""small_vs_large's large-model row through an OpenAI-compatible endpoint (a real chat-completions
server on 127.0.0.1, tests/chat_server.py): the same prompts go out, failures leave empty answers."""

import pytest
from chat_server import ChatServer

from helpers.config import ConfigError
from helpers.metrics import gsm8k_score
from helpers.studies import study_config
from helpers.tasks import small_vs_large as svl


def test_large_row_sends_the_prompts_and_counts_failures(tmp_path, monkeypatch):
    monkeypatch.setenv("LARGE_KEY_FOR_TESTS", "sk-test-large")
    script = [("reply", "6 * 7 = 42\n#### 42"), ("status", 400), ("reply", "The answer is $1,200.")]
    with ChatServer(script=script) as server:
        cfg = study_config("small_vs_large", {"large_model": "big-model", "large_backend": "openai",
                                              "large_base_url": server.base_url,
                                              "large_api_key_env": "LARGE_KEY_FOR_TESTS"})
        backend = svl.large_backend(cfg, tmp_path / "cache")
        prompts = ["Question: 6 * 7?\nAnswer:", "Question: broken?\nAnswer:", "Question: 1000 + 200?\nAnswer:"]
        replies, failed = svl.answer_all(backend, prompts, max_tokens=32)
        sent = [r["body"] for r in server.requests]
    assert replies == ["6 * 7 = 42\n#### 42", "", "The answer is $1,200."] and failed == 1
    assert [b["messages"] for b in sent] == [[{"role": "user", "content": p}] for p in prompts]
    assert all(b["model"] == "big-model" and b["max_tokens"] == 32 and b["temperature"] == 0.0 for b in sent)
    assert [gsm8k_score(r, ref, "flexible") for r, ref in zip(replies, ["#### 42", "#### 0", "#### 1200"])] == [
        1.0, 0.0, 1.0]


def test_any_object_with_chat_serves_as_the_large_model():
    class Echo:
        def chat(self, messages, max_tokens=256, temperature=0.0):
            return messages[-1]["content"].upper()

    assert svl.answer_all(Echo(), ["a", "b"], max_tokens=4) == (["A", "B"], 0)


def test_openai_large_backend_needs_a_url():
    with pytest.raises(ConfigError, match="needs large_base_url"):
        study_config("small_vs_large", {"large_model": "gpt-x", "large_backend": "openai"})


@pytest.mark.parametrize("params, message", [
    ({"large_backend": "openai", "large_base_url": "http://127.0.0.1:9/v1"}, "large_model is empty"),
    ({"large_base_url": "http://127.0.0.1:9/v1", "large_model": "big-model"}, "large_backend is 'local'"),
])
def test_an_endpoint_given_is_never_silently_left_out(params, message):
    """An endpoint means a large-model row: without a model name (or with the local backend) the row
    would not run and nothing would say so."""
    with pytest.raises(ConfigError, match=message) as err:
        study_config("small_vs_large", params)
    assert "\n" not in str(err.value)


def test_the_large_row_is_zero_shot_by_default_and_comparable_on_that_count():
    """The study asked its large model zero-shot: by default the large row gets the plain prompts, and
    the published comparison finds no prompting difference."""
    import dataclasses

    from helpers.published import compare

    cfg = study_config("small_vs_large", {"large_model": "llama-3.3-70b"})
    assert cfg.large_model_demos is False
    prepared = {"prompts": {"plain": ["Q: 2+2?\nA:"], "demos": ["Q: 1+1?\nA: #### 2\n\nQ: 2+2?\nA:"]},
                "test": [{"question": "2+2?", "answer": "#### 4"}], "labels": []}
    results, records = svl.score_all({"gsm8k": {"large (llama-3.3-70b)": ["#### 4"]}}, {"gsm8k": prepared}, cfg)
    assert records[0]["prompt"] == "Q: 2+2?\nA:" and results["gsm8k"]["large (llama-3.3-70b)"]["strict_match"] == 1
    metrics = {"model": cfg.model, "large_model": "large (llama-3.3-70b)", "n_test": {"gsm8k": 1},
               "results": results}
    table = compare("small_vs_large", metrics, dataclasses.asdict(cfg))
    large = table[table["row"] == "Llama 3.3 70B | Math"].iloc[0]
    assert large["ours"] is not None and "large_model_demos" not in large["reason"]
    with_demos = compare("small_vs_large", metrics, {**dataclasses.asdict(cfg), "large_model_demos": True})
    assert "large_model_demos True" in with_demos[with_demos["row"] == "Llama 3.3 70B | Math"].iloc[0]["reason"]
