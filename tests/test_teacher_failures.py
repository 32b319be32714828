"""A teacher endpoint that refuses the key, or mostly fails, stops the run with one line instead of
being scored as a teacher that answers wrong (a real server on 127.0.0.1, tests/chat_server.py)."""

import pytest
from chat_server import ChatServer

from helpers.backends import AuthenticationFailed, BackendError, make_backend
from helpers.studies import study_config
from helpers.tasks import mmlu
from helpers.tasks import small_vs_large as svl

KEY_ENV, KEY = "TEACHER_FAILURE_TEST_KEY", "sk-failure-test-8c2d41"
ASKS = [[{"role": "user", "content": f"question {i}?"}] for i in range(6)]


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def backend(server, tmp_path, **kw):
    kw = {"model": "teacher-x", "api_key_env": KEY_ENV, "cache_dir": tmp_path / "cache", "timeout": 5.0,
          "max_retries": 2, "backoff": 0.0, **kw}
    return make_backend("openai", base_url=server.base_url, **kw)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_at_the_first_request(tmp_path, status):
    message = f"Incorrect API key provided: {KEY}"  # servers quote (part of) the key they refused
    with ChatServer(default=lambda request: ("status", status, {}, message)) as server:
        teacher = backend(server, tmp_path)
        with pytest.raises(AuthenticationFailed) as err:
            teacher.chat_many(ASKS)  # errors="none": other failures would give None
        assert len(server.requests) == 1 and teacher.retries == 0  # no retry, no second request
    text = str(err.value)
    assert "\n" not in text and KEY not in text
    assert text.startswith(f"HTTP {status} from {server.base_url}") and f"environment variable {KEY_ENV}" in text
    assert ("model teacher-x" in text) == (status == 403)
    assert teacher.counters()["failures"] == 1


def test_a_keyless_server_that_wants_a_key_says_none_was_sent(tmp_path):
    with ChatServer(default=lambda request: ("status", 401)) as server:
        with pytest.raises(AuthenticationFailed, match=r"no key \(api_key_env is empty\)"):
            backend(server, tmp_path, api_key_env="").chat_many(ASKS[:2])


def test_more_than_half_of_a_batch_failing_stops_it(tmp_path):
    with ChatServer(default=lambda request: ("status", 500)) as server:
        teacher = backend(server, tmp_path, max_retries=1)
        with pytest.raises(BackendError) as err:
            teacher.chat_many(ASKS)
        # 4 of 6 failed is more than half whatever the last two do: stopped there, each tried twice
        assert len(server.requests) == 4 * 2
    text = str(err.value)
    assert text.startswith(f"4 of 6 requests to {server.base_url} failed after retries (first: HTTP 500 ")
    assert "scripted 500" in text and "\n" not in text


def test_half_failing_goes_on_and_counts(tmp_path):
    script = [("reply", "a"), ("status", 400), ("reply", "c"), ("status", 400)]
    with ChatServer(script=script) as server:
        teacher = backend(server, tmp_path)
        assert teacher.chat_many(ASKS[:4]) == ["a", None, "c", None]
        assert len(server.requests) == 4 and teacher.failures == 2


def test_failing_one_request_at_a_time_stops_too(tmp_path):
    """One request per call (one subject per round): a dead endpoint is judged over the calls."""
    with ChatServer(default=lambda request: ("status", 503)) as server:
        teacher = backend(server, tmp_path, max_retries=0)
        assert teacher.chat_many(ASKS[:1]) == [None]  # one failure may be bad luck
        with pytest.raises(BackendError, match=r"^2 of 2 requests so far to .* failed after retries"):
            teacher.chat_many(ASKS[1:2])
        assert len(server.requests) == 2


def test_mmlu_teacher_evaluation_stops_instead_of_scoring_zero(tmp_path):
    cfg = study_config("mmlu_teacher", {"teacher_api_key_env": KEY_ENV, "teacher_max_retries": 0,
                                        "output_root": str(tmp_path)})
    questions = [mmlu.Question("machine_learning", f"Question {i}?", ["w", "x", "y", "z"], i % 4, f"q{i}")
                 for i in range(5)]
    with ChatServer(default=lambda request: ("status", 401)) as server:
        cfg.teacher_base_url = server.base_url
        teacher = mmlu.make_teacher(cfg)
        with pytest.raises(AuthenticationFailed, match=KEY_ENV):
            mmlu.evaluate_teacher(teacher, questions, cfg)
        assert len(server.requests) == 1


def test_the_large_row_stops_when_the_endpoint_is_down(tmp_path):
    with ChatServer(default=lambda request: ("status", 502)) as server:
        cfg = study_config("small_vs_large", {"large_model": "big-model", "large_backend": "openai",
                                              "large_base_url": server.base_url, "large_api_key_env": KEY_ENV})
        large = svl.large_backend(cfg, tmp_path / "cache")
        large.max_retries, large.backoff = 0, 0.0
        with pytest.raises(BackendError, match="^3 of 4 requests"):
            svl.answer_all(large, ["a", "b", "c", "d"], max_tokens=8)


def test_a_redirect_is_refused_and_the_key_goes_nowhere_else(tmp_path):
    """urllib would follow a redirect with the Authorization header to any host."""
    import http.server
    import threading

    seen = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.headers.get("Authorization"))
            self.send_response(500)
            self.end_headers()

        do_GET = do_POST  # urllib turns a POST redirected by 302 into a GET, Authorization kept

        def log_message(self, *args):
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Elsewhere)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{other.server_port}/v1/chat/completions"
    try:
        with ChatServer(default=lambda request: ("status", 302, {"Location": target}, "moved")) as server:
            replies = backend(server, tmp_path, max_retries=0).chat_many(ASKS[:1])
            assert replies == [None] and len(server.requests) == 1
    finally:
        other.shutdown()
    assert seen == []  # never followed: the key stayed with base_url
