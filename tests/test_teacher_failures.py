"""A teacher endpoint that refuses the key, or mostly fails, stops the run with one line instead of
being scored as a teacher that answers wrong (a real server on 127.0.0.1, tests/chat_server.py). Each
guarantee is checked for the one-at-a-time client (helpers.backends) and for mmlu_teacher's pooled one
(helpers.tasks.teacher.PooledChatBackend) at one request at a time, where the counts are exact, and
at eight where they do not depend on what is in flight (tests/test_teacher_concurrency.py: the rest)."""

import pytest
from chat_server import ChatServer

from helpers.backends import AuthenticationFailed, BackendError, make_backend
from helpers.studies import study_config
from helpers.tasks import mmlu, mmlu_data, teacher
from helpers.tasks import small_vs_large as svl

KEY_ENV, KEY = "TEACHER_FAILURE_TEST_KEY", "sk-failure-test-8c2d41"
ASKS = [[{"role": "user", "content": f"question {i}?"}] for i in range(6)]


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


ONE_AT_A_TIME = ["sequential", "pooled-1"]
EVERY_KIND = ["sequential", "pooled-1", "pooled-8"]


def backend(server, tmp_path, kind="sequential", **kw):
    kw = {"model": "teacher-x", "api_key_env": KEY_ENV, "cache_dir": tmp_path / "cache", "timeout": 5.0,
          "max_retries": 2, "backoff": 0.0, **kw}
    if kind == "sequential":
        return make_backend("openai", base_url=server.base_url, **kw)
    return teacher.PooledChatBackend(base_url=server.base_url, concurrency=int(kind.split("-")[1]), **kw)


@pytest.mark.parametrize("kind", ONE_AT_A_TIME)
@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_at_the_first_request(tmp_path, status, kind):
    message = f"Incorrect API key provided: {KEY}"  # servers quote (part of) the key they refused
    with ChatServer(default=lambda request: ("status", status, {}, message)) as server:
        chat = backend(server, tmp_path, kind)
        with pytest.raises(AuthenticationFailed) as err:
            chat.chat_many(ASKS)  # errors="none": other failures would give None
        assert len(server.requests) == 1 and chat.retries == 0  # no retry, no second request
    text = str(err.value)
    assert "\n" not in text and KEY not in text
    assert text.startswith(f"HTTP {status} from {server.base_url}") and f"environment variable {KEY_ENV}" in text
    assert ("model teacher-x" in text) == (status == 403)
    assert chat.counters()["failures"] == 1
    assert KEY not in repr(chat)


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_a_keyless_server_that_wants_a_key_says_none_was_sent(tmp_path, kind):
    with ChatServer(default=lambda request: ("status", 401)) as server:
        with pytest.raises(AuthenticationFailed, match=r"no key \(api_key_env is empty\)"):
            backend(server, tmp_path, kind, api_key_env="").chat_many(ASKS[:2])


@pytest.mark.parametrize("kind", ONE_AT_A_TIME)
def test_more_than_half_of_a_batch_failing_stops_it(tmp_path, kind):
    with ChatServer(default=lambda request: ("status", 500)) as server:
        chat = backend(server, tmp_path, kind, max_retries=1)
        with pytest.raises(BackendError) as err:
            chat.chat_many(ASKS)
        # 4 of 6 failed is more than half whatever the last two do: stopped there, each tried twice
        assert len(server.requests) == 4 * 2
    text = str(err.value)
    assert text.startswith(f"4 of 6 requests to {server.base_url} failed after retries (first: HTTP 500 ")
    assert "scripted 500" in text and "\n" not in text


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_half_failing_goes_on_and_counts(tmp_path, kind):
    def answer(request):  # by question, not by arrival: eight at a time arrive in any order
        number = int(request["body"]["messages"][-1]["content"].split()[1].rstrip("?"))
        return ("status", 400) if number % 2 else f"reply {number}"

    with ChatServer(default=answer) as server:
        chat = backend(server, tmp_path, kind)
        assert chat.chat_many(ASKS[:4]) == ["reply 0", None, "reply 2", None]
        assert len(server.requests) == 4 and chat.failures == 2


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_failing_one_request_at_a_time_stops_too(tmp_path, kind):
    """One request per call (one subject per round): a dead endpoint is judged over the calls."""
    with ChatServer(default=lambda request: ("status", 503)) as server:
        chat = backend(server, tmp_path, kind, max_retries=0)
        assert chat.chat_many(ASKS[:1]) == [None]  # one failure may be bad luck
        with pytest.raises(BackendError, match=r"^2 of 2 requests so far to .* failed after retries"):
            chat.chat_many(ASKS[1:2])
        assert len(server.requests) == 2


def test_mmlu_teacher_evaluation_stops_instead_of_scoring_zero(tmp_path):
    cfg = study_config("mmlu_teacher", {"teacher_api_key_env": KEY_ENV, "teacher_max_retries": 0,
                                        "teacher_concurrency": 1, "output_root": str(tmp_path)})
    questions = [mmlu_data.Question("machine_learning", f"Question {i}?", ["w", "x", "y", "z"], i % 4, f"q{i}")
                 for i in range(5)]
    with ChatServer(default=lambda request: ("status", 401)) as server:
        cfg.teacher_base_url = server.base_url
        chat = teacher.make_teacher(cfg)
        assert isinstance(chat, teacher.PooledChatBackend) and chat.concurrency == 1
        with pytest.raises(AuthenticationFailed, match=KEY_ENV):
            mmlu.evaluate_teacher(chat, questions, cfg)
        assert len(server.requests) == 1


def test_the_large_row_stops_when_the_endpoint_is_down(tmp_path):
    with ChatServer(default=lambda request: ("status", 502)) as server:
        cfg = study_config("small_vs_large", {"large_model": "big-model", "large_backend": "openai",
                                              "large_base_url": server.base_url, "large_api_key_env": KEY_ENV})
        large = svl.large_backend(cfg, tmp_path / "cache")
        large.max_retries, large.backoff = 0, 0.0
        with pytest.raises(BackendError, match="^3 of 4 requests"):
            svl.answer_all(large, ["a", "b", "c", "d"], max_tokens=8)


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_a_redirect_is_refused_and_the_key_goes_nowhere_else(tmp_path, kind):
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
            replies = backend(server, tmp_path, kind, max_retries=0).chat_many(ASKS[:1])
            assert replies == [None] and len(server.requests) == 1
    finally:
        other.shutdown()
    assert seen == []  # never followed: the key stayed with base_url
