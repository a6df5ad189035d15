"""Fixtures of the WhatsApp webhook tests: the app (role ``all``) on the test database.

- ``wa_service``: a bootstrapped service with the platform's WhatsApp settings below;
- ``wa_client``: an ``AsyncTestClient`` on the webhook app (lifespan run);
- ``post_webhook``: ``await post_webhook(payload_or_bytes, secret=..., headers=...)``;
- ``tenant_number``: ``await tenant_number(app_secret=..., verify_token=...)`` creates a tenant
  owning a fresh number, returns ``(tenant_id, phone_number_id)``;
- ``rows``: ``await rows("SELECT ...", params)`` on the test database.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.http import HttpClients
from changarrito.bootstrap import Database, Service, bootstrap
from changarrito.domain.changes import Change
from changarrito.domain.model import Credential, IntegrationType, Secrets, WhatsAppNumber
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings
from whatsapp_payloads import encode, signed_headers

PLATFORM_SECRET = "wa-platform-app-secret-0123456789"
PLATFORM_VERIFY = "wa-platform-verify-token-0123"


def new_number() -> str:
    return str(random.randrange(10**14, 10**15))


def platform_env(**overrides: str | None) -> dict[str, str]:
    env = {
        "WHATSAPP_ACCESS_TOKEN": "EAAwebhooktestplatformtoken000000",
        "WHATSAPP_PHONE_NUMBER_ID": new_number(),
        "WHATSAPP_APP_SECRET": PLATFORM_SECRET,
        "WHATSAPP_VERIFY_TOKEN": PLATFORM_VERIFY,
        "WHATSAPP_API_BASE_URL": "https://graph.test",
    }
    env.update({k: v for k, v in overrides.items() if v is not None})
    return {k: v for k, v in env.items() if overrides.get(k, "x") is not None}


@pytest.fixture
def wa_env() -> dict[str, str]:
    return platform_env()


@pytest.fixture
async def wa_service(database_url: str, wa_env: dict[str, str]) -> AsyncIterator[Service]:
    http = HttpClients(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    service = await bootstrap(
        Settings.from_env(wa_env),
        Database(database_url, KeyRing.generate("wa")),
        listen=False,
        check_keys=False,
        http=http,
    )
    try:
        yield service
    finally:
        await service.aclose()


@pytest.fixture
async def wa_client(
    wa_service: Service, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    """A truly concurrent client (Litestar's test client runs requests one at a time)."""
    app = create_app(wa_service.settings, service=wa_service, role="all")
    app.state.service = wa_service  # what the lifespan does with a given service
    hooks: dict[str, list[Callable[..., Any]]] = {}
    try:  # feed the session's secret scan (tests/integration/conftest.py) when it runs
        ledger = request.getfixturevalue("secret_ledger")

        async def scanned(response: httpx.Response) -> None:
            await response.aread()
            ledger.saw_body(f"{response.request.method} {response.url.path}", response.text)

        hooks["response"] = [scanned]
    except pytest.FixtureLookupError:
        pass
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks=hooks
    ) as client:
        yield client


PostWebhook = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
def post_webhook(wa_client: httpx.AsyncClient) -> PostWebhook:
    async def post(
        payload: Any, *, secret: str | None = PLATFORM_SECRET, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else encode(payload)
        sent = signed_headers(body, secret) if secret is not None else {}
        sent.update(headers or {})
        return await wa_client.post("/webhooks/whatsapp", content=body, headers=sent)

    return post


@pytest.fixture
def tenant_number(wa_service: Service) -> Callable[..., Awaitable[tuple[uuid.UUID, str]]]:
    async def make(
        *, app_secret: str | None = None, verify_token: str | None = None, waba: str | None = None
    ) -> tuple[uuid.UUID, str]:
        tenant = await wa_service.storage.store.create_tenant("Tienda")
        pnid = new_number()
        secrets = {"accessToken": "EAAtenanttoken" + uuid.uuid4().hex}
        if app_secret:
            secrets["appSecret"] = app_secret
        if verify_token:
            secrets["verifyToken"] = verify_token
        account = waba or new_number()
        config = {"phoneNumberId": pnid, "businessAccountId": account}
        credential = Credential(
            tenant.id, IntegrationType.WHATSAPP, "meta", Secrets(secrets), config
        )
        # Claimed as Graph confirmed it: the number, in its business account.
        number = WhatsAppNumber(tenant.id, pnid, business_account_id=account)
        await wa_service.storage.store.save_credential(credential, number)
        wa_service.resolver.invalidate_tenant(tenant.id)
        if wa_service.storage.apps is not None:
            wa_service.storage.apps.on_change(Change(tenant_id=tenant.id))
        return tenant.id, pnid

    return make


@pytest.fixture
def rows(wa_service: Service) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
    async def query(sql: str, params: Any = None) -> list[dict[str, Any]]:
        async with wa_service.storage.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            if cur.description is None:
                return []
            names = [c.name for c in cur.description or ()]
            return [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]

    return query
