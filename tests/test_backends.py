"""Teacher backends: the HTTP backend against a real chat-completions server on 127.0.0.1 (errors,
retries, timeouts, malformed bodies, the cache, the API key), and the local backend with the
embedded model."""

import json
import socket

import pytest
from chat_server import ChatServer

from helpers.backends import BackendError, make_backend
from helpers.config import ConfigError

KEY = "sk-test-0123456789abcdef"
ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]


def backend(server, tmp_path, **kw):
    kw = {"model": "teacher-x", "api_key_env": "TEACHER_KEY_FOR_TESTS", "cache_dir": tmp_path / "cache",
          "timeout": 5.0, "max_retries": 3, "backoff": 0.01, **kw}
    return make_backend("openai", base_url=server.base_url, **kw)


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("TEACHER_KEY_FOR_TESTS", KEY)


def test_reply_request_format_and_the_cache_never_pays_twice(tmp_path):
    with ChatServer(script=[("reply", "Paris")]) as server:
        teacher = backend(server, tmp_path)
        assert teacher.chat(ASK, max_tokens=7, temperature=0.0) == "Paris"
        request = server.requests[0]
        assert request["path"] == "/v1/chat/completions"
        assert request["headers"]["Authorization"] == f"Bearer {KEY}"
        assert request["body"] == {"model": "teacher-x", "messages": ASK, "max_tokens": 7, "temperature": 0.0}
        # the same request again, also from a new backend object (a re-run): answered from disk
        assert teacher.chat(ASK, max_tokens=7) == "Paris"
        rerun = backend(server, tmp_path)
        assert rerun.chat(ASK, max_tokens=7) == "Paris"
        assert len(server.requests) == 1
        # another max_tokens is another request
        assert teacher.chat(ASK, max_tokens=8) == "echo: Capital of France?"
        assert len(server.requests) == 2
    assert teacher.counters() == {"requests": 3, "cache_hits": 1, "retries": 0, "failures": 0, "malformed": 0}
    assert rerun.counters()["cache_hits"] == 1
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 2
    for path in files:  # the key is never written, the request is
        assert KEY not in path.read_text()
        assert json.loads(path.read_text())["request"]["model"] == "teacher-x"
    assert KEY not in repr(teacher) and "TEACHER_KEY_FOR_TESTS" in repr(teacher)


def test_transient_errors_are_retried_with_backoff(tmp_path):
    script = [("status", 503), ("status", 429, {"Retry-After": "0"}), ("status", 502), ("reply", "B")]
    with ChatServer(script=script) as server:
        teacher = backend(server, tmp_path)
        assert teacher.chat(ASK) == "B"
        assert len(server.requests) == 4
    assert teacher.retries == 3 and teacher.failures == 0


def test_retries_give_up_and_failures_are_counted_not_cached(tmp_path):
    with ChatServer(script=[("status", 500)] * 3) as server:
        teacher = backend(server, tmp_path, max_retries=2)
        assert teacher.chat_many([ASK]) == [None]
        assert len(server.requests) == 3 and teacher.retries == 2 and teacher.failures == 1
        # not cached: the next call asks the (now healthy) server again
        assert teacher.chat(ASK) == "echo: Capital of France?"
        assert len(server.requests) == 4


def test_client_errors_fail_at_once_with_the_servers_message(tmp_path):
    with ChatServer(script=[("status", 401)]) as server:
        teacher = backend(server, tmp_path)
        with pytest.raises(BackendError, match="HTTP 401 .*scripted 401"):
            teacher.chat(ASK)
        assert len(server.requests) == 1 and teacher.retries == 0 and teacher.failures == 1


@pytest.mark.parametrize("body", [b"<html>gateway</html>", b'{"choices": []}', b'{"error": "x"}',
                                  b'{"choices": [{"message": {"content": null}}]}', b'{"choices": [{"mess'])
def test_malformed_bodies_are_rejected_and_counted(tmp_path, body):
    with ChatServer(script=[("body", body)]) as server:
        teacher = backend(server, tmp_path)
        replies = teacher.chat_many([ASK, [{"role": "user", "content": "next"}]])
        assert replies == [None, "echo: next"]  # one bad reply does not stop the rest
    assert teacher.counters() == {"requests": 2, "cache_hits": 0, "retries": 0, "failures": 1, "malformed": 1}
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 1


def test_timeouts_and_dropped_connections_are_retried(tmp_path):
    with ChatServer(script=[("sleep", 1.5), ("drop",), ("reply", "C")]) as server:
        teacher = backend(server, tmp_path, timeout=0.3)
        assert teacher.chat(ASK) == "C"
        assert len(server.requests) == 3 and teacher.retries == 2


def test_a_server_that_is_not_there(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    teacher = make_backend("openai", base_url=f"http://127.0.0.1:{port}/v1", model="m", api_key_env="",
                           cache_dir=None, max_retries=1, backoff=0.01, timeout=2)
    with pytest.raises(BackendError, match="after 2 attempts"):
        teacher.chat(ASK)
    assert teacher.retries == 1 and teacher.failures == 1


def test_bad_settings_say_what_to_change(tmp_path, monkeypatch):
    monkeypatch.delenv("TEACHER_KEY_FOR_TESTS")
    with ChatServer() as server:
        teacher = backend(server, tmp_path)
        with pytest.raises(ConfigError, match="environment variable TEACHER_KEY_FOR_TESTS is not set"):
            teacher.chat(ASK)
        assert server.requests == []
        # a server without keys: api_key_env='' sends no Authorization header
        keyless = backend(server, tmp_path, api_key_env="")
        assert keyless.chat(ASK) == "echo: Capital of France?"
        assert "Authorization" not in server.requests[0]["headers"]
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        make_backend("openai", base_url="http://127.0.0.1:1/v1", model="m", api_key_env=KEY + "-x/y")
    with pytest.raises(ConfigError, match="must start with http"):
        make_backend("openai", base_url="api.openai.com", model="m")
    with pytest.raises(ConfigError, match="unknown teacher backend 'anthropic'"):
        make_backend("anthropic", model="m")
    with pytest.raises(ConfigError, match="unexpected keyword argument 'url'"):
        make_backend("openai", url="http://x", model="m")
    with pytest.raises(ConfigError, match="messages must be"):
        make_backend("openai", base_url="http://127.0.0.1:1/v1", model="m").chat([{"role": "user"}])


@pytest.mark.slow
def test_local_backend_with_the_embedded_model(tmp_path):
    teacher = make_backend("local", model="smollm2-135m", cache_dir=tmp_path / "cache", batch_size=2)
    asks = [ASK, [{"role": "user", "content": "What is 2 + 2? Answer with a number."}]]
    first = teacher.chat_many(asks, max_tokens=12)
    assert "Paris" in first[0] and "4" in first[1]
    assert teacher.chat(ASK, max_tokens=12) == first[0]  # from the cache
    assert teacher.counters() == {"requests": 3, "cache_hits": 1, "retries": 0, "failures": 0, "malformed": 0}
    again = make_backend("local", model="smollm2-135m", cache_dir=tmp_path / "cache")
    assert again.chat_many(asks, max_tokens=12) == first and again._loaded is None  # never loaded
    sampled = teacher.chat(asks[1], max_tokens=12, temperature=1.0)
    assert isinstance(sampled, str) and teacher.cache_hits == 1
