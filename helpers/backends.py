"""Chat backends for a teacher model: any OpenAI-compatible chat-completions endpoint, or a local
registry model, behind one interface.

    >>> teacher = make_backend("openai", base_url="https://api.openai.com/v1", model="gpt-4o",
    ...                        api_key_env="OPENAI_API_KEY", cache_dir="benchmarks/teacher_cache")
    >>> teacher = make_backend("local", model="smollm2-135m", cache_dir="benchmarks/teacher_cache")
    >>> teacher.chat([{"role": "user", "content": "2+2?"}], max_tokens=8)
    '4'
    >>> teacher.chat_many([messages_1, messages_2])          # a failed request gives None, counted
    >>> teacher.counters()
    {'requests': 3, 'cache_hits': 0, 'retries': 0, 'failures': 0, 'malformed': 0}

Every reply is cached on disk under `cache_dir`, keyed by a hash of the request (backend, base URL,
model, messages, max_tokens, temperature), so a re-run or a resumed run never pays twice; failures
are never cached. The HTTP backend uses only the standard library (urllib). It reads the API key
from the environment variable named by `api_key_env` at request time: the key is never an argument,
never printed, never written anywhere. Transient errors (HTTP 429 and 5xx, timeouts, refused or
dropped connections) are retried with exponential backoff (a `Retry-After` header wins when the
server sends one); other HTTP errors and malformed bodies fail at once with `BackendError`.

A failed request gives None, but a teacher that mostly fails must not be scored as a teacher that
is wrong: HTTP 401/403 raises `AuthenticationFailed` at once (one line: the endpoint and the name of
the key's variable), and `chat_many` raises `BackendError` as soon as more than `failure_limit` (a
half) of its requests, or of all requests sent so far, have failed (at least `min_failures`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from helpers.config import SECRETS_HOWTO, ConfigError, hosted_runtime, is_env_var_name, load_secret_env

TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
AUTH_STATUS = {401, 403}
CACHE_VERSION = 1


class BackendError(RuntimeError):
    """A request that failed for good (after retries, or at once for a non-transient error)."""


class MalformedReply(BackendError):
    """The server answered, but not with a chat completion we can read."""


class AuthenticationFailed(BackendError):
    """The endpoint refused the key (HTTP 401/403): every other request would be refused too."""


class ChatBackend:
    """Shared part: the disk cache and the counters. Subclasses implement `_complete_many`."""

    kind = "base"

    def __init__(self, *, cache_dir: str | Path | None = None, failure_limit: float = 0.5, min_failures: int = 2):
        if not 0 <= failure_limit < 1 or min_failures < 1:
            raise ConfigError("failure_limit must be in [0, 1) and min_failures >= 1")
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.failure_limit = failure_limit
        self.min_failures = min_failures
        self.requests = 0  # chat requests asked of this backend, cache hits included
        self.cache_hits = 0
        self.retries = 0  # extra attempts after a transient error
        self.failures = 0  # requests that gave no reply (error or malformed body)
        self.malformed = 0  # of those: bodies that were not a readable chat completion
        self._sent = 0  # requests that were not cache hits
        self._first_error: BackendError | None = None

    def endpoint(self) -> str:
        """Where the requests go, for messages."""
        return self.kind

    def identity(self) -> dict:
        """What, besides the request, decides the reply (goes into the cache key)."""
        raise NotImplementedError

    def counters(self) -> dict:
        return {"requests": self.requests, "cache_hits": self.cache_hits, "retries": self.retries,
                "failures": self.failures, "malformed": self.malformed}

    def cache_key(self, messages: list[dict], max_tokens: int, temperature: float) -> str:
        request = {"v": CACHE_VERSION, **self.identity(), "messages": messages, "max_tokens": int(max_tokens),
                   "temperature": float(temperature)}
        return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _cache_path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.json" if self.cache_dir else None

    def _cache_get(self, key: str) -> str | None:
        path = self._cache_path(key)
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text())["reply"]
        except (ValueError, KeyError):  # a damaged entry is asked again
            return None

    def _cache_put(self, key: str, messages, max_tokens, temperature, reply: str) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        record = {"request": {**self.identity(), "messages": messages, "max_tokens": max_tokens,
                              "temperature": temperature}, "reply": reply}
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1))
        tmp.replace(path)  # atomic: a killed run never leaves half an entry

    def chat(self, messages: list[dict], max_tokens: int = 256, temperature: float = 0.0) -> str:
        """The reply to one conversation. Raises BackendError if there is none."""
        reply = self.chat_many([messages], max_tokens=max_tokens, temperature=temperature, errors="raise")[0]
        return reply

    def chat_many(self, conversations: list[list[dict]], max_tokens: int = 256, temperature: float = 0.0,
                  errors: str = "none") -> list[str | None]:
        """Replies in order; cached ones are not asked again. A failed request gives None (and is
        counted) with errors="none", or raises BackendError with errors="raise"."""
        _check_messages(conversations)
        replies: list[str | None] = [None] * len(conversations)
        todo = []
        for i, messages in enumerate(conversations):
            self.requests += 1
            key = self.cache_key(messages, max_tokens, temperature)
            cached = self._cache_get(key)
            if cached is not None:
                self.cache_hits += 1
                replies[i] = cached
            else:
                todo.append((i, key))
        if not todo:
            return replies
        # results arrive one by one and each is cached at once: a run killed half-way keeps what it paid for
        results = self._complete_many([conversations[i] for i, _ in todo], max_tokens, temperature)
        failed, first = 0, None
        for (i, key), result in zip(todo, results):
            self._sent += 1
            if isinstance(result, BackendError):
                self.failures += 1
                self.malformed += isinstance(result, MalformedReply)
                self._first_error = self._first_error or result
                if errors == "raise" or isinstance(result, AuthenticationFailed):
                    raise result
                failed, first = failed + 1, first or result
                # stop once more than the limit of this batch has failed, whatever the rest will do
                if failed >= self.min_failures and failed > self.failure_limit * len(todo):
                    raise self._too_many_failures(failed, len(todo), first, "")
                continue
            replies[i] = result
            self._cache_put(key, conversations[i], max_tokens, temperature, result)
        # many small batches (one request per round) that fail one by one
        if self.failures >= self.min_failures and self.failures > self.failure_limit * self._sent:
            raise self._too_many_failures(self.failures, self._sent, self._first_error, " so far")
        return replies

    def _too_many_failures(self, failed: int, sent: int, first: BackendError, when: str) -> BackendError:
        return BackendError(f"{failed} of {sent} requests{when} to {self.endpoint()} failed after retries "
                            f"(first: {first}); stopped rather than count the missing replies as wrong answers")

    def _complete_many(self, conversations, max_tokens, temperature):
        """Yield, in order, the reply text or a BackendError for each conversation."""
        raise NotImplementedError


def _check_messages(conversations) -> None:
    for messages in conversations:
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise ConfigError("messages must be a non-empty list of {'role': str, 'content': str} dicts")


class OpenAIChatBackend(ChatBackend):
    """POST {base_url}/chat/completions, the OpenAI protocol that most servers speak (OpenAI,
    vLLM, llama.cpp server, Ollama's /v1, LM Studio, Together, OpenRouter, ...)."""

    kind = "openai"

    def __init__(self, *, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 cache_dir: str | Path | None = None, timeout: float = 60.0, max_retries: int = 5,
                 backoff: float = 1.0, max_backoff: float = 60.0, failure_limit: float = 0.5, min_failures: int = 2):
        super().__init__(cache_dir=cache_dir, failure_limit=failure_limit, min_failures=min_failures)
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"teacher base_url {base_url!r} must start with http:// or https://, "
                              "e.g. https://api.openai.com/v1")
        if not model.strip():
            raise ConfigError("teacher model is empty: name the model the endpoint serves, e.g. gpt-4o")
        if api_key_env and not is_env_var_name(api_key_env):
            raise ConfigError("api_key_env must be the NAME of an environment variable (capitals, digits and _, "
                              "e.g. OPENAI_API_KEY), not a key; the value given is not shown")
        if timeout <= 0 or max_retries < 0 or backoff < 0:
            raise ConfigError("timeout must be > 0, max_retries and backoff >= 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff

    def __repr__(self) -> str:  # no key in here, ever
        return f"OpenAIChatBackend(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def identity(self) -> dict:
        return {"backend": self.kind, "base_url": self.base_url, "model": self.model}

    def endpoint(self) -> str:
        return self.base_url

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "") if load_secret_env(self.api_key_env) else ""
            if not key:
                howto = SECRETS_HOWTO[hosted_runtime()].format(name=self.api_key_env)
                raise ConfigError(f"the environment variable {self.api_key_env} is not set: {howto}; or set "
                                  "api_key_env to '' for a server that needs no key")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _complete_many(self, conversations, max_tokens, temperature):
        self._headers()  # a missing key stops the run before anything is sent
        for messages in conversations:
            yield self._complete(messages, max_tokens, temperature)

    def _complete(self, messages, max_tokens, temperature) -> str | BackendError:
        body = self._body(messages, max_tokens, temperature)
        for attempt in range(self.max_retries + 1):
            done, last, wait, _ = self._send(body, attempt)
            if done is not None:
                return done
            if attempt < self.max_retries:
                self.retries += 1
                delay = wait if wait is not None else self.backoff * 2 ** attempt
                time.sleep(min(delay, self.max_backoff))
        return last

    def _body(self, messages, max_tokens, temperature) -> bytes:
        return json.dumps({"model": self.model, "messages": messages, "max_tokens": int(max_tokens),
                           "temperature": float(temperature)}).encode()

    def _send(self, body: bytes, attempt: int):
        """One request, no retry: (done, None, None, None) where `done` is the reply, a malformed reply or an
        error no retry changes; else (None, the error to report if the retries run out, the server's
        Retry-After or None, the HTTP status or None)."""
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=self._headers(),
                                         method="POST")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                raw = response.read()
            return parse_chat_completion(raw), None, None, None
        except MalformedReply as err:
            return err, None, None, None
        except urllib.error.HTTPError as err:
            final, last, wait = self._http_failure(err, attempt)
            return final, last, wait, err.code
        except NETWORK_ERRORS as err:
            return None, self._network_failure(err, attempt), None, None

    def _http_failure(self, err: urllib.error.HTTPError, attempt: int):
        """(final, last, retry_after) of an HTTP error: `final` ends the request at once (a refused key, a
        status no retry can change); else `last` is the error to report if the retries run out and
        `retry_after` the server's Retry-After in seconds (None without one). The key is never in the text."""
        detail = _error_detail(err)
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if key:  # a server may quote the key it refused
            detail = detail.replace(key, "***")
        if err.code in AUTH_STATUS:
            used = (f"the key in the environment variable {self.api_key_env}" if self.api_key_env
                    else "no key (api_key_env is empty)")
            allowed = f", allowed to use model {self.model}" if err.code == 403 else ""
            return AuthenticationFailed(f"HTTP {err.code} from {self.base_url}: {detail}; authentication failed "
                                        f"with {used}: it must hold a valid key for this endpoint{allowed}"), None, None
        if err.code not in TRANSIENT_STATUS:
            return BackendError(f"HTTP {err.code} from {self.base_url}: {detail}"), None, None
        last = BackendError(f"HTTP {err.code} from {self.base_url} after {attempt + 1} attempts: {detail}")
        return None, last, _retry_after(err.headers)

    def _network_failure(self, err: Exception, attempt: int) -> BackendError:
        reason = getattr(err, "reason", err)
        return BackendError(f"{type(reason).__name__} talking to {self.base_url} after {attempt + 1} attempts: "
                            f"{reason}")


# what a request may meet on the way (no HTTP status): retried like a transient status
NETWORK_ERRORS = (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException)


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows a redirect with the same headers, Authorization included, to any host: the key
    would travel to wherever the endpoint points. It is sent to base_url alone; a redirect is an error."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl} refused (the key is sent to "
                                     "base_url only): set base_url to the final address", headers, fp)


_OPENER = urllib.request.build_opener(_RefuseRedirects)


def parse_chat_completion(raw: bytes) -> str:
    """The assistant text of a chat-completions response body; MalformedReply if there is none."""
    try:
        data = json.loads(raw)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise MalformedReply(f"not a chat completion ({type(err).__name__}): {raw[:120]!r}") from None
    if not isinstance(content, str):
        raise MalformedReply(f"message content is {type(content).__name__}, not text")
    return content


def _error_detail(err: urllib.error.HTTPError) -> str:
    if 300 <= err.code < 400:  # refused by _RefuseRedirects: its reason says why
        return str(err.reason)
    try:
        text = err.read()[:300].decode(errors="replace")
    except Exception:  # the body is only for the message
        text = ""
    return " ".join(text.split()) or str(err.reason)


def _retry_after(headers) -> float | None:
    try:
        return max(0.0, float(headers.get("Retry-After"))) if headers and headers.get("Retry-After") else None
    except ValueError:  # an HTTP date: fall back to exponential backoff
        return None


class LocalChatBackend(ChatBackend):
    """A registry model (name, hub id or folder) answering through its chat template with
    helpers.generation (batched; greedy at temperature 0, sampled above it).
    `loaded=(model, tokenizer, info)` reuses a model that is already in memory."""

    kind = "local"

    def __init__(self, *, model: str, cache_dir: str | Path | None = None, max_seq_length: int = 2048,
                 load_in_4bit: bool = True, batch_size: int = 8, seed: int = 0, loaded=None,
                 failure_limit: float = 0.5, min_failures: int = 2):
        super().__init__(cache_dir=cache_dir, failure_limit=failure_limit, min_failures=min_failures)
        self.model_name = model
        self.max_seq_length = max_seq_length
        self.load_in_4bit = load_in_4bit
        self.batch_size = batch_size
        self.seed = seed
        self._loaded = loaded

    def __repr__(self) -> str:
        return f"LocalChatBackend(model={self.model_name!r})"

    def identity(self) -> dict:
        return {"backend": self.kind, "model": self.model_name, "load_in_4bit": self.load_in_4bit, "seed": self.seed}

    def endpoint(self) -> str:
        return f"the local model {self.model_name}"

    @property
    def loaded(self):
        if self._loaded is None:
            from helpers.modeling import load_model

            self._loaded = load_model(self.model_name, max_seq_length=self.max_seq_length,
                                      load_in_4bit=self.load_in_4bit)
        return self._loaded

    def _complete_many(self, conversations, max_tokens, temperature):
        import torch

        from helpers.generation import generate

        model, tokenizer, info = self.loaded
        for start in range(0, len(conversations), self.batch_size):
            chunk = list(conversations[start:start + self.batch_size])
            # sampling: a seed of its own for each batch of requests, so equal prompts in later calls do
            # not repeat one draw, and a re-run gives the same replies
            digest = hashlib.sha256(json.dumps(chunk, sort_keys=True).encode()).hexdigest()
            torch.manual_seed(self.seed + int(digest[:8], 16))
            yield from generate(model, tokenizer, chunk, chat=True, stop_token_ids=info.stop_token_ids,
                                max_new_tokens=max_tokens, batch_size=self.batch_size, temperature=temperature,
                                desc=f"teacher {self.model_name}")


def make_backend(kind: str, **kw) -> ChatBackend:
    """kind "openai": base_url, model, api_key_env="OPENAI_API_KEY", cache_dir, timeout, max_retries
    (backoff, max_backoff); kind "local": model (registry name, hub id or folder), cache_dir,
    max_seq_length, load_in_4bit, batch_size, seed, loaded. Both: failure_limit, min_failures."""
    backends = {"openai": OpenAIChatBackend, "local": LocalChatBackend}
    if kind not in backends:
        raise ConfigError(f"unknown teacher backend '{kind}'; use one of: {', '.join(backends)}")
    try:
        return backends[kind](**kw)
    except TypeError as err:
        raise ConfigError(f"teacher backend '{kind}': {err}") from None
