"""Credential input, tried as a tenant would: HTTP in through the real app (on the in-memory
fakes), the stored secret observed through the API.

- A secret that cannot travel in an HTTP header (non-ASCII; CR, LF, NUL) is a 422 at save time
  naming the field, for every kind, never a 500 later at verify time (nor a log line carrying
  an injected line break).
- A secret sent back in any mask shape keeps the stored one; a mask that shows other
  characters is refused; a plain new value still replaces it.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from changarrito.adapters.http import HttpClients
from changarrito.adapters.internal_api import llm_path, whatsapp_path
from changarrito.bootstrap import build_service
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings
from fakes.service import memory_storage

JWT_SECRET = "security-tests-jwt-secret-0123456789abcdef"
INTERNAL = {"X-Internal-Key": "security-tests-internal-key-0123456789"}
ENV = {
    "JWT_SECRET": JWT_SECRET,
    "INTERNAL_API_KEY": INTERNAL["X-Internal-Key"],
    "WHATSAPP_API_BASE_URL": "https://graph.test",
    "WHATSAPP_ACCESS_TOKEN": "EAAplatformwhatsapptoken0000000000",
    "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
    "OPENAI_API_KEY": "sk-platform-openai-key-000000000000",
}


def upstream(request: httpx.Request) -> httpx.Response:
    """Every provider says yes (Graph names the number it was asked about)."""
    number = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    return httpx.Response(200, json={"id": number, "object": "list", "data": []})


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings.from_env(ENV)
    http = HttpClients(transport=httpx.MockTransport(upstream))
    service = build_service(settings, memory_storage(), role="backend", http=http)
    try:
        async with AsyncTestClient(app=create_app(settings, service=service)) as c:
            yield c
    finally:
        await service.aclose()


Tenant = tuple[uuid.UUID, dict[str, str]]


@pytest.fixture
def tenant(client: AsyncTestClient[Litestar]) -> Callable[[], Awaitable[Tenant]]:
    async def make() -> Tenant:
        response = await client.post(
            "/api/v1/internal/tenants", json={"name": "Tienda"}, headers=INTERNAL
        )
        assert response.status_code == 201, response.text
        tenant_id = uuid.UUID(response.json()["id"])
        now = int(time.time())
        claims = {"tenant_id": str(tenant_id), "sub": "owner", "iat": now, "exp": now + 600}
        token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
        return tenant_id, {"Authorization": f"Bearer {token}"}

    return make


def number() -> str:
    return str(random.randrange(10**14, 10**15))


#: One secret field of every kind: (URL, the body with ``secret`` in that field, the field).
def whatsapp(secret: str, phone: str = "300000000000009") -> dict[str, Any]:
    return {
        "credentials": {
            "accessToken": secret,
            "phoneNumberId": phone,
            "businessAccountId": "400000000000009",
        }
    }


def llm(secret: str) -> dict[str, Any]:
    return {"provider": "openai", "credentials": {"apiKey": secret}}


def stripe(secret: str) -> dict[str, Any]:
    return {"credentials": {"apiKey": secret}}


KINDS: dict[str, tuple[str, Callable[[str], dict[str, Any]], str]] = {
    "whatsapp": ("/api/v1/integrations/whatsapp", whatsapp, "accessToken"),
    "llm": ("/api/v1/integrations/llm", llm, "apiKey"),
    "payments": ("/api/v1/integrations/payments/stripe", stripe, "apiKey"),
}

BAD_SECRETS = {
    "non-ascii": "sk-clave-secreta-\u00f1and\u00fa-1234",
    "non-ascii-lookalike": "sk-\u0430bcdefghijklmnop",  # a Cyrillic a
    "CR": "sk-first-part\rX-Injected: yes",
    "LF": "sk-first-part\nforged log line",
    "CRLF": "sk-first-part\r\nX-Injected: yes",
    "NUL": "sk-first-part\x00rest",
}


@pytest.mark.parametrize("bad", BAD_SECRETS, ids=str)
@pytest.mark.parametrize("kind", KINDS, ids=str)
async def test_a_secret_that_cannot_be_a_header_is_a_422_naming_the_field(
    client: AsyncTestClient[Litestar], tenant: Callable[[], Awaitable[Tenant]], kind: str, bad: str
) -> None:
    _, headers = await tenant()
    url, body, field = KINDS[kind]
    response = await client.put(url, json=body(BAD_SECRETS[bad]), headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == [f"credentials.{field}"]
    # Nothing was stored: the tenant still has nothing of its own to verify.
    assert (await client.get(url, headers=headers)).status_code == 404


async def test_a_bad_secret_next_to_a_stored_one_is_refused_and_the_stored_one_kept(
    client: AsyncTestClient[Litestar], tenant: Callable[[], Awaitable[Tenant]]
) -> None:
    tenant_id, headers = await tenant()
    url, body, _ = KINDS["llm"]
    assert (await client.put(url, json=body("sk-good-key-000wxyz"), headers=headers)).is_success
    response = await client.put(url, json=body("sk-bad-key\n000wxyz"), headers=headers)
    assert response.status_code == 422
    resolved = (await client.get(llm_path(tenant_id), headers=INTERNAL)).json()
    assert resolved["credentials"]["apiKey"] == "sk-good-key-000wxyz"


STORED = "sk-tenant-real-secret-0000wxyz"
MASKS = ["…wxyz", "****wxyz", "sk-…wxyz", "***", "sk-...wxyz", "•••• wxyz", "********", "…"]


async def stored_secret(
    client: AsyncTestClient[Litestar], kind: str, tenant_id: uuid.UUID, headers: dict[str, str]
) -> str | dict[str, str]:
    """The stored secret itself where the internal API tells it, else its fingerprint."""
    url, _, field = KINDS[kind]
    path = {"whatsapp": whatsapp_path, "llm": llm_path}.get(kind)
    if path is not None:
        resolved = (await client.get(path(tenant_id), headers=INTERNAL)).json()
        assert resolved["source"] == "tenant"
        return str(resolved["credentials"][field])
    return dict((await client.get(url, headers=headers)).json()["credentials"][field])


@pytest.mark.parametrize("kind", KINDS, ids=str)
async def test_every_mask_shape_keeps_the_stored_secret_and_a_new_value_replaces_it(
    client: AsyncTestClient[Litestar], tenant: Callable[[], Awaitable[Tenant]], kind: str
) -> None:
    tenant_id, headers = await tenant()
    url, body, _ = KINDS[kind]
    phone = number()

    def make(secret: str) -> dict[str, Any]:
        return whatsapp(secret, phone) if kind == "whatsapp" else body(secret)

    assert (await client.put(url, json=make(STORED), headers=headers)).status_code == 200
    original = await stored_secret(client, kind, tenant_id, headers)
    if kind != "payments":
        assert original == STORED
    for mask in MASKS:
        response = await client.put(url, json=make(mask), headers=headers)
        assert response.status_code == 200, (mask, response.text)
        assert await stored_secret(client, kind, tenant_id, headers) == original, mask

    replaced = "sk-tenant-brand-new-secret-1111"
    assert (await client.put(url, json=make(replaced), headers=headers)).status_code == 200
    now = await stored_secret(client, kind, tenant_id, headers)
    assert now != original
    if kind != "payments":
        assert now == replaced


@pytest.mark.parametrize("mask", ["****zzzz", "pk-…wxyz", "sk-...zzzz"])
async def test_a_mask_that_shows_other_characters_is_refused_and_changes_nothing(
    client: AsyncTestClient[Litestar], tenant: Callable[[], Awaitable[Tenant]], mask: str
) -> None:
    tenant_id, headers = await tenant()
    url, body, field = KINDS["llm"]
    assert (await client.put(url, json=body(STORED), headers=headers)).status_code == 200
    response = await client.put(url, json=body(mask), headers=headers)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [f"credentials.{field}"]
    assert await stored_secret(client, "llm", tenant_id, headers) == STORED


@pytest.mark.parametrize("mask", ["****wxyz", "***", "sk-…wxyz"])
async def test_a_mask_with_nothing_stored_is_refused(
    client: AsyncTestClient[Litestar], tenant: Callable[[], Awaitable[Tenant]], mask: str
) -> None:
    _, headers = await tenant()
    url, body, field = KINDS["payments"]
    response = await client.put(url, json=body(mask), headers=headers)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [f"credentials.{field}"]
