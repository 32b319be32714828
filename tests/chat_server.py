"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for the tests: real HTTP, real
sockets, scripted failures.

    >>> with ChatServer(script=[("status", 503), ("reply", "B")]) as server:
    ...     backend = make_backend("openai", base_url=server.base_url, model="m", api_key_env="")
    ...     backend.chat([{"role": "user", "content": "?"}])      # 503, retried, then 'B'

Each request takes the next action of `script`; when the script is used up, `default(request)`
answers (by default: "echo: <last message>"): with a text, or with an action, e.g.
`default=lambda request: ("status", 401)` for a server that refuses every request. Actions:
    ("reply", text)            200 with a chat completion whose content is `text`
    ("status", code[, hdrs[, message]])   that HTTP status with a JSON error body ("scripted <code>",
                               or `message`) and headers (e.g. Retry-After)
    ("body", bytes)            200 with this raw body (malformed replies)
    ("sleep", seconds)         wait, then answer with the default (a client timeout)
    ("drop",)                  close the connection without an answer
`requests` keeps every request: path, headers, parsed JSON body, `arrived` and `answered`
(time.monotonic() when it came in and when its answer was sent). `latency(request)` -> seconds
delays every answer (e.g. to keep requests in flight together); `max_in_flight` is the most requests
the server held at once.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(text: str, model: str = "test-model") -> bytes:
    return json.dumps({"id": "chatcmpl-test", "object": "chat.completion", "model": model,
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text}}]}).encode()


def echo(request: dict) -> str:
    return "echo: " + request["body"]["messages"][-1]["content"]


class ChatServer:
    def __init__(self, script=(), default=echo, latency=None):
        self.script = list(script)
        self.default = default
        self.latency = latency
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet tests
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                request = {"path": self.path, "headers": dict(self.headers), "body": body,
                           "arrived": time.monotonic(), "answered": None}
                with server._lock:
                    server.requests.append(request)
                    action = server.script.pop(0) if server.script else None
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                self._request = request
                try:
                    if server.latency:
                        time.sleep(server.latency(request))
                    return self._answer(request, action)
                finally:
                    self._done()  # a dropped connection, or an error: no reply was written

            def _done(self):
                """The request leaves the server's count and gets its `answered` time, once, before
                its reply is written: after, the client may read the reply, return and look at
                `requests` (or send its next request) before this thread gets the lock."""
                with server._lock:
                    if self._request["answered"] is None:
                        server.in_flight -= 1
                        self._request["answered"] = time.monotonic()

            def _answer(self, request, action):
                if self.path != "/v1/chat/completions":
                    return self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())
                if action is None or action[0] == "sleep":
                    if action:
                        time.sleep(action[1])
                    answer = server.default(request)
                    if not isinstance(answer, tuple):
                        return self._send(200, completion(answer))
                    action = answer
                if action[0] == "reply":
                    return self._send(200, completion(action[1]))
                if action[0] == "status":
                    message = action[3] if len(action) > 3 else f"scripted {action[1]}"
                    error = json.dumps({"error": {"message": message}}).encode()
                    return self._send(action[1], error, action[2] if len(action) > 2 else {})
                if action[0] == "body":
                    return self._send(200, action[1])
                if action[0] == "drop":
                    self._done()
                    self.close_connection = True
                    self.connection.close()
                    return None
                raise ValueError(f"unknown action {action}")

            def _send(self, code, body, headers=None):
                self._done()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
