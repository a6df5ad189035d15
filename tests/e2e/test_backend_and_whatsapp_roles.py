"""Two real processes: ``serve --role backend`` and ``serve --role whatsapp``.

The ``whatsapp`` process has no endpoint that shows credentials, and it should not get one for
a test. So the test watches what it does with them: a signed WhatsApp message for the tenant's
number goes in through its webhook, and its reply comes out to a fake Graph API (a local HTTP
server), carrying the access token it resolved for that number through the backend's internal
API. Changing the token through the backend's tenant API must show in the very next reply
after one second, although the credentials cache lives for 300 seconds: the process learns of
the change from PostgreSQL's notifications.

The LLM step is faked the same way; the tenant configured no LLM, so the reply is written with
the platform key from the ``whatsapp`` process's own environment (the backend has none).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.tokens import issue_token

JWT_SECRET = "e2e-jwt-secret-0123456789abcdef0123456789"
INTERNAL_KEY = "e2e-internal-key-0123456789abcdef"
WHATSAPP_OWN_OPENAI_KEY = "sk-e2e-whatsapp-process-own-key-0000"
NUMBER = "123456789012345"
APP_SECRET = "tenant-meta-app-secret-e2e-000000"
FIRST_TOKEN = "EAAe2eFIRSTtenanttoken000000000000"
SECOND_TOKEN = "EAAe2eSECONDtenanttoken11111111111"
GRAPH_VERSION = "v23.0"
WABA = "102290129340398"


@dataclass
class Seen:
    method: str
    path: str
    authorization: str
    body: Any


@dataclass
class FakeUpstream:
    """Meta's Graph API and OpenAI's chat API, as far as sending one reply goes."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        if path.endswith("/chat/completions"):
            return 200, {
                "id": "chatcmpl-e2e",
                "object": "chat.completion",
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "¡Claro! Sí tenemos."},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
            }
        if path.endswith("/messages"):
            to = body.get("to", "") if isinstance(body, dict) else ""
            return 200, {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": f"wamid.REPLY{len(self.seen)}"}],
            }
        if method == "GET" and path.split("?")[0] == f"/{GRAPH_VERSION}/{NUMBER}":
            return 200, {"id": NUMBER, "display_phone_number": "+52 55 5000 0000"}
        if method == "GET" and path.split("?")[0] == f"/{GRAPH_VERSION}/{WABA}/phone_numbers":
            return 200, {"data": [{"id": NUMBER}]}  # the backend confirming the tenant's claim
        return 404, {"error": {"message": f"no fake for {method} {path}"}}

    def replies_from(self, number: str) -> list[Seen]:
        """Text messages sent from ``number`` (not its read receipts)."""
        with self.lock:
            return [
                s
                for s in self.seen
                if s.path == f"/{GRAPH_VERSION}/{number}/messages"
                and isinstance(s.body, dict)
                and s.body.get("type") == "text"
            ]

    def graph_calls(self) -> list[Seen]:
        """What was sent through Graph (not the backend's reads confirming the claim)."""
        with self.lock:
            return [
                s
                for s in self.seen
                if s.method == "POST" and s.path.startswith(f"/{GRAPH_VERSION}/")
            ]

    def llm_calls(self) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path.endswith("/chat/completions")]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.do_POST()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            with fake.lock:
                fake.seen.append(
                    Seen(self.command, self.path, self.headers.get("Authorization", ""), body)
                )
            status, answer = fake.answer(self.command, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def inbound_text(number: str, text: str) -> bytes:
    """A Meta webhook with one text message to ``number`` (Meta's text-message example)."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "5215550000000",
                                "phone_number_id": number,
                            },
                            "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
                            "messages": [
                                {
                                    "from": "16505551234",
                                    "id": f"wamid.E2E{time.time_ns()}",
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload).encode()


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


def wait_for(condition: Any, timeout: float, what: str, *servers: Any) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    logs = "\n".join(f"--- {s.name} ---\n{s.stderr()[-4000:]}" for s in servers)
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{logs}", pytrace=False)


def test_the_whatsapp_process_replies_with_credentials_read_through_the_backend_and_sees_changes_within_a_second(  # noqa: E501
    start_server: Callable[..., Any], fresh_database_url: str, upstream: FakeUpstream
) -> None:
    common = {
        "DATABASE_URL": fresh_database_url,
        "CHANGARRITO_ENCRYPTION_KEYS": KeyRing.generate("e2e").serialize(),
        "INTERNAL_API_KEY": INTERNAL_KEY,
        "JWT_SECRET": JWT_SECRET,
        "CREDENTIALS_CACHE_TTL": "300",
        "CHANGARRITO_WORKER_POLL": "0.1",
    }
    graph = {"WHATSAPP_API_BASE_URL": upstream.url, "WHATSAPP_API_VERSION": GRAPH_VERSION}
    backend = start_server("backend", {**common, **graph}, name="backend")
    whatsapp = start_server(
        "whatsapp",
        {
            **common,
            "BACKEND_URL": backend.url,
            "WHATSAPP_API_BASE_URL": upstream.url,
            "WHATSAPP_API_VERSION": GRAPH_VERSION,
            "OPENAI_BASE_URL": upstream.url + "/v1",
            "OPENAI_API_KEY": WHATSAPP_OWN_OPENAI_KEY,
        },
        name="whatsapp",
    )
    api = httpx.Client(base_url=backend.url, timeout=10)
    tenant = api.post(
        "/api/v1/internal/tenants",
        json={"name": "Taquería E2E"},
        headers={"X-Internal-Key": INTERNAL_KEY},
    )
    assert tenant.status_code == 201, tenant.text
    token = issue_token(JWT_SECRET, tenant.json()["id"], timedelta(minutes=10))
    tenant_api = {"Authorization": f"Bearer {token}"}

    def configure(access_token: str) -> None:
        response = api.put(
            "/api/v1/integrations/whatsapp",
            json={
                "credentials": {
                    "accessToken": access_token,
                    "phoneNumberId": NUMBER,
                    "businessAccountId": WABA,
                    "appSecret": APP_SECRET,
                },
                "phoneNumber": "+52 55 5000 0000",
                "displayName": "Taquería E2E",
            },
            headers=tenant_api,
        )
        assert response.status_code == 200, response.text

    def message(text: str) -> None:
        body = inbound_text(NUMBER, text)
        response = httpx.post(
            whatsapp.url + "/webhooks/whatsapp", content=body, headers=signed(body)
        )
        assert response.status_code == 200, response.text

    # 1. The tenant's own number and token, set through the backend's tenant API.
    configure(FIRST_TOKEN)
    message("¿Tienen tacos de suadero?")
    first = wait_for(lambda: upstream.replies_from(NUMBER), 15, "the first reply", whatsapp)
    assert first[0].authorization == f"Bearer {FIRST_TOKEN}"
    llm = upstream.llm_calls()
    assert llm and llm[0].authorization == f"Bearer {WHATSAPP_OWN_OPENAI_KEY}"

    # 2. A new token through the tenant API; one second later the next reply uses it.
    wait_for(lambda: len(upstream.graph_calls()) >= 2, 5, "the first read receipt", whatsapp)
    configure(SECOND_TOKEN)
    time.sleep(1.0)
    message("¿Y de pastor?")
    replies = wait_for(
        lambda: (r := upstream.replies_from(NUMBER)) and len(r) > len(first) and r,
        15,
        "the second reply",
        whatsapp,
    )
    assert [r.authorization for r in replies[len(first) :]] == [f"Bearer {SECOND_TOKEN}"]
    # Every call to Graph for the first message used the first token, and for the second the
    # second one (read receipts included).
    tokens = [c.authorization.removeprefix("Bearer ") for c in upstream.graph_calls()]
    assert set(tokens) == {FIRST_TOKEN, SECOND_TOKEN}
    assert tokens == sorted(tokens, key=[FIRST_TOKEN, SECOND_TOKEN].index)

    # Neither process wrote a token to its log; both settled their garbage collector.
    for server in (backend, whatsapp):
        logs = server.stderr()
        assert FIRST_TOKEN not in logs and SECOND_TOKEN not in logs and APP_SECRET not in logs
        assert "changarrito.gc_settled" in logs
