"""Zero-latency upstreams for the benchmarks, each run as its own process on 127.0.0.1.

- ``openai``: an OpenAI-compatible ``POST /v1/chat/completions`` (and ``GET /v1/models``) that
  answers at once. Its reply echoes the first ``[token]`` of the last user message, so a reply
  can be traced back to the webhook that caused it.
- ``graph``: the Graph API's ``POST /{version}/{phone-number-id}/messages``; it records when
  each text reply arrived (``time.monotonic_ns``, one clock for every process of the machine)
  and serves the record at ``GET /__bench/replies``.
- ``sink``: the platform's receiver of events (``CHANGARRITO_EVENTS_URL``): answers every
  ``POST`` 204 at once, without checking its signature, and counts the posts, their distinct
  ``webhook-id``, their types and the distinct ``messageId`` of the ``message.received`` ones;
  ``GET /__bench/count`` serves the counts (``?before=<monotonic ns>``: also how many posts
  had arrived by then).

A bare HTTP/1.1 server on asyncio (keep-alive, Content-Length or chunked bodies): a fake whose
own cost is a few tens of microseconds, so that what is measured is the client.

Run: ``python -m bench.fakes openai|graph|sink --port P``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import re
import signal
import time
from collections.abc import Awaitable, Callable

Handler = Callable[[str, str, dict[str, str], bytes], Awaitable[tuple[int, bytes]]]

_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found"}
_TOKEN = re.compile(r"\[([A-Za-z0-9_.:-]{1,80})\]")


class _Connection(asyncio.Protocol):
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue[tuple[str, str, dict[str, str], bytes] | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.task = asyncio.get_running_loop().create_task(self._serve())

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            request = self._parse()
            if request is None:
                return
            self.queue.put_nowait(request)

    def _parse(self) -> tuple[str, str, dict[str, str], bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            pos = start
            while True:
                nl = self.buffer.find(b"\r\n", pos)
                if nl < 0:
                    return None
                size = int(bytes(self.buffer[pos:nl]).split(b";")[0], 16)
                if len(self.buffer) < nl + 2 + size + 2:
                    return None
                body += self.buffer[nl + 2 : nl + 2 + size]
                pos = nl + 2 + size + 2
                if size == 0:
                    break
            del self.buffer[:pos]
            return method, target, headers, bytes(body)
        length = int(headers.get("content-length") or 0)
        if len(self.buffer) < start + length:
            return None
        body_bytes = bytes(self.buffer[start : start + length])
        del self.buffer[: start + length]
        return method, target, headers, body_bytes

    async def _serve(self) -> None:
        while True:
            request = await self.queue.get()
            if request is None or self.transport is None or self.transport.is_closing():
                return
            status, body = await self.handler(*request)
            if status == 204:  # no body, and so no Content-Length (RFC 9110, 8.6)
                self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                continue
            self.transport.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()
                + body
            )


async def serve(handler: Handler, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(handler), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    async with server:
        await stopped.wait()


# --- OpenAI ------------------------------------------------------------------------------


def completion(text: str, model: str, serial: int) -> bytes:
    return json.dumps(
        {
            "id": f"chatcmpl-bench{serial}",
            "object": "chat.completion",
            "created": 1767225600,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
            "system_fingerprint": "fp_bench",
        }
    ).encode()


def openai_handler() -> Handler:
    serial = itertools.count(1)

    async def handle(method: str, target: str, headers: dict[str, str], body: bytes):  # type: ignore[no-untyped-def]
        path = target.split("?", 1)[0]
        if method == "GET" and path.endswith("/models"):
            return 200, b'{"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]}'
        if method != "POST" or not path.endswith("/chat/completions"):
            return 404, b'{"error":{"message":"not found","type":"invalid_request_error"}}'
        if not headers.get("authorization", "").startswith("Bearer "):
            return 400, b'{"error":{"message":"no key","type":"invalid_request_error"}}'
        request = json.loads(body)
        users = [m for m in request.get("messages", []) if m.get("role") == "user"]
        last = str(users[-1].get("content", "")) if users else ""
        token = _TOKEN.search(last)
        text = f"Gracias, recibido [{token.group(1)}]." if token else "Gracias, recibido."
        return 200, completion(text, str(request.get("model") or "gpt-4o-mini"), next(serial))

    return handle


# --- Graph API ---------------------------------------------------------------------------


def graph_handler() -> Handler:
    replies: list[tuple[str, int, str]] = []  # (token, arrival ns, to)
    other = {"read": 0, "untraced": 0}
    serial = itertools.count(1)

    async def handle(method: str, target: str, headers: dict[str, str], body: bytes):  # type: ignore[no-untyped-def]
        arrived = time.monotonic_ns()
        path = target.split("?", 1)[0]
        if method == "GET" and path == "/__bench/replies":
            data = {"replies": replies, **other}
            return 200, json.dumps(data).encode()
        if method == "POST" and path == "/__bench/reset":
            replies.clear()
            other.update(read=0, untraced=0)
            return 200, b"{}"
        if method != "POST" or not path.endswith("/messages"):
            return 404, b'{"error":{"message":"Unknown path","type":"OAuthException","code":100}}'
        if not headers.get("authorization", "").startswith("Bearer "):
            return 400, b'{"error":{"message":"no token","type":"OAuthException","code":190}}'
        request = json.loads(body)
        if request.get("status") == "read":
            other["read"] += 1
            return 200, b'{"success":true}'
        text = str((request.get("text") or {}).get("body", ""))
        to = str(request.get("to") or request.get("recipient") or "")
        token = _TOKEN.search(text)
        if token:
            replies.append((token.group(1), arrived, to))
        else:
            other["untraced"] += 1
        wamid = f"wamid.BENCHOUT{next(serial):012d}"
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid}],
        }
        return 200, json.dumps(answer).encode()

    return handle


# --- the events' receiver ----------------------------------------------------------------


def sink_handler() -> Handler:
    arrivals: list[int] = []  # monotonic ns of each post, in order of arrival
    ids: set[str] = set()
    messages: set[str] = set()  # the messageId of every message.received
    types: dict[str, int] = {}

    async def handle(method: str, target: str, headers: dict[str, str], body: bytes):  # type: ignore[no-untyped-def]
        arrived = time.monotonic_ns()
        path, _, query = target.partition("?")
        if method == "GET" and path == "/__bench/count":
            data: dict[str, object] = {
                "count": len(arrivals),
                "distinct": len(ids),
                "types": types,
                "received_messages": len(messages),
            }
            if query.startswith("before="):
                data["before"] = bisect.bisect_right(arrivals, int(query[len("before=") :]))
            return 200, json.dumps(data).encode()
        if method != "POST":
            return 404, b'{"error":"not found"}'
        arrivals.append(arrived)
        ids.add(headers.get("webhook-id", ""))
        event = json.loads(body) if body else {}
        kind = str(event.get("type", ""))
        types[kind] = types.get(kind, 0) + 1
        if kind == "message.received":
            messages.add(str((event.get("data") or {}).get("messageId", "")))
        return 204, b""

    return handle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("openai", "graph", "sink"))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    handlers = {"openai": openai_handler, "graph": graph_handler, "sink": sink_handler}
    handler = handlers[args.kind]()
    asyncio.run(serve(handler, args.port))


if __name__ == "__main__":
    main()
