"""mmlu_teacher's teacher requests N at a time (helpers.tasks.teacher.PooledChatBackend) against a
real chat-completions server on 127.0.0.1 (tests/chat_server.py) that counts the requests it holds
at once: the pool fills, the replies and the cache are those of one request at a time, a rate limit
slows the whole pool, a refused key stops it."""

import time

import pytest
from chat_server import ChatServer

from helpers.backends import AuthenticationFailed
from helpers.config import ConfigError, config_hash
from helpers.studies import study_config
from helpers.tasks import teacher

KEY_ENV, KEY = "TEACHER_POOL_TEST_KEY", "sk-pool-test-77a1c9"
ASKS = [[{"role": "user", "content": f"question {i}?"}] for i in range(20)]


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def number(request) -> int:
    return int(request["body"]["messages"][-1]["content"].split()[1].rstrip("?"))


def pooled(server, cache_dir, concurrency, **kw):
    kw = {"model": "teacher-x", "api_key_env": KEY_ENV, "timeout": 5.0, "max_retries": 2, "backoff": 0.0,
          "progress": False, **kw}
    return teacher.PooledChatBackend(base_url=server.base_url, cache_dir=cache_dir, concurrency=concurrency, **kw)


def uneven(request) -> float:
    """0.15-0.33 s, different per question: eight at a time finish out of order."""
    return 0.15 + (number(request) * 7 % 10) / 50


def test_eight_requests_fly_at_once_and_the_replies_are_those_of_one_at_a_time(tmp_path):
    asks = ASKS[:12]
    replies = {}
    with ChatServer(latency=uneven) as server:
        for concurrency in (1, 8):
            server.max_in_flight, mark = 0, len(server.requests)
            chat = pooled(server, tmp_path / f"cache{concurrency}", concurrency)
            replies[concurrency] = chat.chat_many(asks)
            mine = server.requests[mark:]
            assert server.max_in_flight == concurrency and len(mine) == 12
            finished = [number(r) for r in sorted(mine, key=lambda r: r["answered"])]
            assert (finished == list(range(12))) == (concurrency == 1)  # eight at a time finish out of order ...
    assert replies[1] == replies[8] == [f"echo: question {i}?" for i in range(12)]  # ... and come back in order
    cached = {c: sorted((str(p.relative_to(tmp_path / f"cache{c}")), p.read_text())
                        for p in (tmp_path / f"cache{c}").rglob("*.json")) for c in (1, 8)}
    assert len(cached[1]) == 12 and cached[1] == cached[8]


def test_a_rerun_from_the_cache_sends_nothing_whatever_the_concurrency(tmp_path):
    with ChatServer() as server:
        first = pooled(server, tmp_path / "cache", 8).chat_many(ASKS)
        assert len(server.requests) == 20
        for concurrency in (8, 1):
            again = pooled(server, tmp_path / "cache", concurrency)
            assert again.chat_many(ASKS) == first and len(server.requests) == 20
            assert again.counters() == {"requests": 20, "cache_hits": 20, "retries": 0, "failures": 0,
                                        "malformed": 0, "rate_limited": 0}


def test_a_429_pauses_the_whole_pool_for_its_retry_after(tmp_path):
    """The one-at-a-time client's other workers would send everything during the wait; the pool sends
    nothing new until Retry-After has passed, then retries the refused request."""
    with ChatServer(script=[("status", 429, {"Retry-After": "1"})]) as server:
        chat = pooled(server, tmp_path / "cache", 2)
        replies = chat.chat_many(ASKS[:8])
    assert replies == [f"echo: question {i}?" for i in range(8)]
    assert chat.rate_limited == 1 and chat.retries == 1 and chat.failures == 0
    refused = server.requests[0]
    later = server.requests[1:]
    assert len(later) == 8  # the 7 others and the retry
    # sent before the pool heard of the 429: at most what the other worker had on the wire
    early = [r for r in later if r["arrived"] < refused["answered"] + 0.9]
    assert len(early) <= 2
    retry = [r for r in later if number(r) == number(refused)]
    assert len(retry) == 1 and retry[0]["arrived"] >= refused["answered"] + 0.95


def test_retry_after_is_capped(tmp_path):
    with ChatServer(script=[("status", 429, {"Retry-After": "3600"})]) as server:
        chat = pooled(server, tmp_path / "cache", 1, max_backoff=0.2)
        start = time.monotonic()
        assert chat.chat_many(ASKS[:1]) == ["echo: question 0?"]
    assert time.monotonic() - start < 5 and chat.rate_limited == 1 and len(server.requests) == 2


def test_a_401_mid_pool_sends_no_further_request(tmp_path):
    def refuse_question_3(request):
        return ("status", 401, {}, f"bad key {KEY}") if number(request) == 3 else f"ok {number(request)}"

    def slow_but_3(request):
        return 0.0 if number(request) == 3 else 0.4

    with ChatServer(default=refuse_question_3, latency=slow_but_3) as server:
        chat = pooled(server, tmp_path / "cache", 8)
        with pytest.raises(AuthenticationFailed) as err:
            chat.chat_many(ASKS)
        sent = sorted(number(r) for r in server.requests)
        time.sleep(0.6)  # the requests on the wire have been answered; nothing else goes out
        assert len(server.requests) == len(sent)
    # only what was on the wire when the 401 came back (the first eight at most), no retry of anything
    assert 3 in sent and set(sent) <= set(range(8)) and chat.retries == 0
    assert KEY not in str(err.value) and str(err.value).startswith(f"HTTP 401 from {server.base_url}")
    # the replies that were paid for are cached although the batch stopped
    cached = len(list((tmp_path / "cache").rglob("*.json")))
    assert cached == len(sent) - 1


def test_teacher_concurrency_is_a_parameter_out_of_the_hash(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    default = study_config("mmlu_teacher", {"output_root": str(tmp_path)})
    one = study_config("mmlu_teacher", {"output_root": str(tmp_path), "teacher_concurrency": 1})
    assert default.teacher_concurrency == 8 and config_hash(one) == config_hash(default)
    chat = teacher.make_teacher(one)
    assert isinstance(chat, teacher.PooledChatBackend) and chat.concurrency == 1
    assert "sk-test" not in repr(chat)
    for bad in (0, -2):
        with pytest.raises(ConfigError, match="teacher_concurrency must be an integer >= 1"):
            study_config("mmlu_teacher", {"teacher_concurrency": bad})
