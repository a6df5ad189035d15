"""A small threaded HTTP server that records requests and answers from a script: JSON, or raw
bytes with their own ``Content-Type`` (a file download)."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    """A scripted answer: ``status`` and JSON ``body`` after ``delay`` seconds. ``hang`` keeps
    the request open longer than any client waits, like an upstream that stopped answering.
    ``content`` (bytes) answers those bytes as they are, with ``content_type``, instead of
    JSON."""

    status: int = 200
    body: Any = None
    delay: float = 0.0
    hang: bool = False
    content: bytes | None = None
    content_type: str = "application/octet-stream"


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)
    #: False when the client hung up before the answer was ready (it never saw one).
    answered: bool = True
    #: The status and body answered.
    status: int = 0
    response: Any = None
    #: The body's bytes as received (``body`` is them decoded: JSON, else text).
    raw: bytes = b""


class FakeServer:
    """Base of the fakes: ``handle(recorded) -> Answer`` decides each answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.in_flight = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                recorded = Recorded(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    raw=raw,
                )
                answer = fake.answer(recorded)
                recorded.status, recorded.response = answer.status, answer.body
                with fake._lock:
                    fake.in_flight += 1
                try:
                    if answer.hang:
                        time.sleep(30)
                    elif answer.delay:
                        time.sleep(answer.delay)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                if answer.hang or _client_gone(self.connection):
                    recorded.answered = False
                with fake._lock:
                    fake.requests.append(recorded)
                if not recorded.answered:
                    self.close_connection = True
                    return
                if answer.content is not None:
                    payload, content_type = answer.content, answer.content_type
                else:
                    body = answer.body if answer.body is not None else {}
                    payload, content_type = json.dumps(body).encode(), "application/json"
                self.send_response(answer.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # ``shutdown`` waits for the loop's next poll: at the default half second, every test
        # that stops a fake paid half a second for it.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, recorded: Recorded) -> Answer:
        raise NotImplementedError

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def recorded(self, where: Callable[[Recorded], bool] = lambda r: True) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if where(r)]


def _client_gone(conn: socket.socket) -> bool:
    """True when the client closed its end (a killed process): reading would give EOF."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
