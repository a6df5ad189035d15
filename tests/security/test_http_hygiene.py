"""HTTP hygiene, tried as an attacker would, through the real app on the in-memory fakes.

- Every response says ``X-Content-Type-Options: nosniff`` (the webhook handshake echoes
  ``hub.challenge``: sniffed as HTML it would be reflected script); every API response, which
  may carry credentials (tenant integrations, internal API), says ``Cache-Control: no-store``,
  problem+json errors included.
- A client that trickles a request body is cut off (408, connection closed) once
  ``CHANGARRITO_REQUEST_TIMEOUT`` has passed, on a real uvicorn server run as ``serve`` runs
  it and a raw socket (slowly sent request heads: ``test_limits.py``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient
from slow_client import dribble, endless_spaces

from changarrito.adapters.http import HttpClients
from changarrito.bootstrap import Service, build_service
from changarrito.entrypoints.http.app import create_app
from changarrito.entrypoints.server import server_options
from changarrito.settings import Settings
from fakes.service import memory_storage

JWT_SECRET = "hygiene-tests-jwt-secret-0123456789abcdef"
INTERNAL = {"X-Internal-Key": "hygiene-tests-internal-key-0123456789"}
VERIFY_TOKEN = "hygiene-platform-verify-token-000"
TIMEOUT = 1.0
ENV = {
    "JWT_SECRET": JWT_SECRET,
    "INTERNAL_API_KEY": INTERNAL["X-Internal-Key"],
    "WHATSAPP_API_BASE_URL": "https://graph.test",
    "WHATSAPP_ACCESS_TOKEN": "EAAplatformwhatsapptoken0000000000",
    "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
    "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
    "WHATSAPP_APP_SECRET": "hygiene-platform-app-secret-000",
    "OPENAI_API_KEY": "sk-platform-openai-key-000000000000",
    "CHANGARRITO_REQUEST_TIMEOUT": str(TIMEOUT),
}


def upstream(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"object": "list", "data": []})


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    settings = Settings.from_env(ENV)
    http = HttpClients(transport=httpx.MockTransport(upstream))
    built = build_service(settings, memory_storage(), role="all", http=http)
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
def app(service: Service) -> Litestar:
    return create_app(Settings.from_env(ENV), service=service, role="all")


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as c:
        yield c


async def new_tenant(client: AsyncTestClient[Litestar]) -> tuple[uuid.UUID, dict[str, str]]:
    response = await client.post("/api/v1/internal/tenants", json={"name": "T"}, headers=INTERNAL)
    assert response.status_code == 201, response.text
    tenant_id = uuid.UUID(response.json()["id"])
    now = int(time.time())
    claims = {"tenant_id": str(tenant_id), "sub": "owner", "iat": now, "exp": now + 600}
    return tenant_id, {"Authorization": "Bearer " + jwt.encode(claims, JWT_SECRET, "HS256")}


def assert_no_sniff(response: httpx.Response) -> None:
    assert response.headers.get("x-content-type-options") == "nosniff", dict(response.headers)


def assert_no_store(response: httpx.Response) -> None:
    assert_no_sniff(response)
    assert response.headers.get("cache-control") == "no-store", dict(response.headers)


async def test_tenant_responses_with_credentials_are_never_stored(client) -> None:
    _, headers = await new_tenant(client)
    body = {"provider": "openai", "credentials": {"apiKey": "sk-tenant-hygiene-key-0000"}}
    put = await client.put("/api/v1/integrations/llm", json=body, headers=headers)
    assert put.status_code == 200, put.text
    assert_no_store(put)
    for path in ("/api/v1/integrations/llm", "/api/v1/integrations/status"):
        got = await client.get(path, headers=headers)
        assert got.status_code == 200
        assert_no_store(got)


async def test_internal_responses_are_never_stored(client) -> None:
    tenant_id, _ = await new_tenant(client)
    created = await client.post("/api/v1/internal/tenants", json={"name": "Otra"}, headers=INTERNAL)
    assert created.status_code == 201
    assert_no_store(created)
    resolved = await client.get(f"/api/v1/internal/integrations/{tenant_id}/llm", headers=INTERNAL)
    assert resolved.status_code == 200
    assert "sk-platform-openai-key" in resolved.text  # the platform's key, in the clear
    assert_no_store(resolved)


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/api/v1/integrations/status", {}, 401),
        ("GET", "/api/v1/integrations/status", {"Authorization": "Bearer forged"}, 401),
        (
            "GET",
            "/api/v1/internal/integrations/00000000-0000-4000-8000-000000000000/llm",
            {"X-Internal-Key": "no"},
            401,
        ),
        ("GET", "/api/v1/no-such-thing", {}, 404),
        ("DELETE", "/api/v1/integrations/status", {}, 405),
    ],
)
async def test_problem_responses_of_the_api_carry_the_same_headers(
    client, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    response = await client.request(method, path, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert_no_store(response)


async def test_a_validation_problem_carries_them_too(client) -> None:
    _, headers = await new_tenant(client)
    bad = {"provider": "openai", "credentials": {"apiKey": ""}}
    response = await client.put("/api/v1/integrations/llm", json=bad, headers=headers)
    assert response.status_code in (400, 422)
    assert_no_store(response)


async def test_the_webhook_and_health_are_never_sniffed(client) -> None:
    challenge = "<script>alert(document.domain)</script>"
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": challenge}
    handshake = await client.get("/webhooks/whatsapp", params=params)
    assert handshake.status_code == 200
    assert handshake.text == challenge
    assert handshake.headers["content-type"].startswith("text/plain")
    assert_no_sniff(handshake)

    unsigned = await client.post("/webhooks/whatsapp", content=b'{"object":"x","entry":[]}')
    assert unsigned.status_code == 401
    assert_no_sniff(unsigned)
    refused = await client.get("/webhooks/whatsapp", params={**params, "hub.verify_token": "no"})
    assert refused.status_code == 403
    assert_no_sniff(refused)
    assert_no_sniff(await client.get("/health"))


# --- slow clients, on a real server ---------------------------------------------------------


@pytest.fixture
async def server(app: Litestar) -> AsyncIterator[int]:
    """The app under uvicorn as ``serve`` runs it, on a free local port (its lifespan run)."""
    options = server_options(Settings.from_env(ENV), host="127.0.0.1", port=0)
    config = uvicorn.Config(app, lifespan="on", **options)
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    for _ in range(200):
        if running.started:
            break
        await asyncio.sleep(0.01)
    assert running.started
    port: int = running.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        running.should_exit = True
        await asyncio.wait_for(task, 10)


def request_head(method: str, path: str, headers: dict[str, str], length: int) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["Content-Type: application/json", "", ""]
    return "\r\n".join(lines).encode()


async def test_a_webhook_body_trickled_byte_by_byte_is_cut_off(server: int) -> None:
    head = request_head("POST", "/webhooks/whatsapp", {}, 1_000_000)
    answer, closed_after = await dribble(server, endless_spaces(), 0.05, TIMEOUT + 3, first=head)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"application/problem+json" in answer
    assert b"/problems/request-timeout" in answer
    assert closed_after < TIMEOUT + 2, "the connection was left open"
    # The server is not stuck: a prompt client is served as before.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server}") as http:
        response = await http.post(
            "/api/v1/internal/tenants", json={"name": "Rapida"}, headers=INTERNAL
        )
    assert response.status_code == 201, response.text
    assert_no_store(response)


async def test_a_tenant_put_trickled_byte_by_byte_is_cut_off(client, server: int) -> None:
    _, headers = await new_tenant(client)
    head = request_head("PUT", "/api/v1/integrations/llm", headers, 10_000)
    answer, closed_after = await dribble(server, endless_spaces(), 0.05, TIMEOUT + 3, first=head)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"no-store" in answer.lower()
    assert closed_after < TIMEOUT + 2, "the connection was left open"


def test_the_timeout_is_a_setting_with_a_default() -> None:
    settings: Any = Settings.from_env({})
    assert getattr(settings, "request_timeout", None) == 10.0
