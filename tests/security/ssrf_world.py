"""The attacker's world for ``test_ssrf.py``: the app on the in-memory fakes, a fake DNS, a
fake upstream that records what reached it, and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from changarrito.adapters.http import HttpClients
from changarrito.bootstrap import Service, build_service
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings
from fakes.service import memory_storage

JWT_SECRET = "ssrf-tests-jwt-secret-0123456789abcdef00"
INTERNAL = {"X-Internal-Key": "ssrf-tests-internal-key-0123456789abcd"}
ENV = {
    "JWT_SECRET": JWT_SECRET,
    "INTERNAL_API_KEY": INTERNAL["X-Internal-Key"],
    "OPENAI_API_KEY": "sk-platform-openai-key-000000000000",
}
LLM = "/api/v1/integrations/llm"
KEY = "sk-tenant-own-key-1234567890"
PUBLIC = "93.184.216.34"  # example.com's address
INTERNAL_SECRET_TEXT = "FATAL: password authentication failed for user postgres at 10.0.0.7"


class World:
    """A fake DNS (``names``), the fake upstream's requests and the app in front."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}
        self.asked: list[str] = []
        self.requests: list[httpx.Request] = []
        self.answer = httpx.Response(200, json={"object": "list", "data": []})
        self.failure: type[httpx.TransportError] | None = None
        self.client: AsyncTestClient[Litestar]
        self.service: Service

    async def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.names:
            raise OSError("no such name")
        return self.names[host]

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failure is not None:
            raise self.failure("details", request=request)
        return self.answer

    async def tenant(self) -> dict[str, str]:
        response = await self.client.post(
            "/api/v1/internal/tenants", json={"name": "Tienda"}, headers=INTERNAL
        )
        assert response.status_code == 201, response.text
        now = int(time.time())
        claims = {"tenant_id": response.json()["id"], "iat": now, "exp": now + 600}
        return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}

    async def put_llm(
        self, headers: dict[str, str], provider: str, credentials: dict[str, str]
    ) -> httpx.Response:
        body = {"provider": provider, "credentials": credentials}
        return await self.client.put(LLM, json=body, headers=headers)

    async def verify(self, headers: dict[str, str]) -> dict[str, Any]:
        response = await self.client.post(f"{LLM}/verify", headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json())


Make = Callable[..., Awaitable[World]]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """``await make(env=..., transport=True)``: the app on the fakes; ``transport=False`` puts
    real sockets under the HTTP clients (the fake DNS still answers for names)."""
    opened: list[tuple[Service, AsyncTestClient[Litestar]]] = []

    async def build(*, env: dict[str, str] | None = None, transport: bool = True) -> World:
        world = World()
        settings = Settings.from_env({**ENV, **(env or {})})
        mock = httpx.MockTransport(world.handler) if transport else None
        http = HttpClients(
            transport=mock,
            resolve=world.resolve,
            private=settings.plugins.allow_private_urls,
        )
        world.service = build_service(settings, memory_storage(), role="backend", http=http)
        world.client = AsyncTestClient(app=create_app(settings, service=world.service))
        await world.client.__aenter__()
        opened.append((world.service, world.client))
        return world

    try:
        yield build
    finally:
        for service, client in opened:
            await client.__aexit__(None, None, None)
            await service.aclose()


class _Models(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b'{"object":"list","data":[]}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[tuple[int, list[str]]]:
    """A real HTTP server on 127.0.0.1 (its own thread): (port, paths it was asked for)."""
    hits: list[str] = []
    handler = type("Models", (_Models,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()


def tenant_of(headers: dict[str, str]) -> uuid.UUID:
    claims = jwt.decode(headers["Authorization"].split()[1], options={"verify_signature": False})
    return uuid.UUID(claims["tenant_id"])
