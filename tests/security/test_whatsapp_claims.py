"""Claims on WhatsApp numbers and business accounts, tried as an attacker (issue 10, items 4, 5).

HTTP in, observable effect out: the tenant API's answers, the internal API's
``resolve-tenant``, the webhook's status and the rows it stored. The attacker is a tenant with
its own Meta app (its own access token, app secret and number); Graph (faked at the HTTP
level) lets each token read only its own numbers and accounts, as Meta's does.

- Squatting: the attacker saves another shop's ``phoneNumberId``. Graph does not confirm it, so
  the claim stays pending: the number is nobody's (``resolve-tenant`` 404), the attacker's app
  secret does not sign for it, and the real owner's ``PUT`` is not a 409: its confirmed claim
  takes the number, and its genuine webhooks are accepted under its own app secret.
- Hijacking an account: the attacker saves another shop's ``businessAccountId``. That shop's
  account-level webhooks stay checked with, and stored for, the shop that Graph confirmed.

The fixtures are self-contained (a ``tests/security`` run does not load the integration
suite's conftest): the service on the session's test database (``database_url``, from
``tests/conftest.py``) with its change listener, the whole app in front of it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.http import HttpClients
from changarrito.adapters.tokens import issue_token
from changarrito.bootstrap import Database, Service, bootstrap
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings
from whatsapp_payloads import change, encode, other_field, signed_headers, text_message, webhook

PLATFORM_SECRET = "claims-platform-app-secret-0123456"
JWT_SECRET = "claims-jwt-secret-0123456789abcdef0123456789"
INTERNAL_KEY = "claims-internal-key-0123456789abcdef"
GRAPH = "graph.test"


def new_id() -> str:
    return str(random.randrange(10**14, 10**15))


class FakeGraph:
    """Graph as far as a claim goes: a token reads its own numbers (``GET /{pnid}``) and the
    accounts they are in (``GET /{waba}/phone_numbers``); anything else is code 100."""

    def __init__(self) -> None:
        #: token -> {business account id: [phone number ids]}
        self.accounts: dict[str, dict[str, list[str]]] = {}

    def own(self, token: str, waba: str, pnid: str) -> None:
        self.accounts.setdefault(token, {}).setdefault(waba, []).append(pnid)

    def handler(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        mine = self.accounts.get(token, {})
        parts = request.url.path.strip("/").split("/")  # v23.0, id[, phone_numbers]
        listing = len(parts) == 3 and parts[2] == "phone_numbers"
        if request.method == "GET" and listing and parts[1] in mine:
            return httpx.Response(200, json={"data": [{"id": p} for p in mine[parts[1]]]})
        readable = any(parts[-1] in numbers for numbers in mine.values())
        if request.method == "GET" and len(parts) == 2 and readable:
            return httpx.Response(200, json={"id": parts[1], "display_phone_number": "+52"})
        error = {
            "message": "Unsupported get request. Object does not exist or missing permissions",
            "type": "GraphMethodException",
            "code": 100,
        }
        return httpx.Response(400, json={"error": error})


@dataclass(frozen=True)
class Shop:
    """A tenant with its own Meta app: what it may send to the tenant API."""

    tenant_id: str
    headers: dict[str, str]
    token: str
    app_secret: str


class World:
    def __init__(self, client: httpx.AsyncClient, graph: FakeGraph, service: Service) -> None:
        self.client = client
        self.graph = graph
        self.service = service

    async def shop(self, name: str) -> Shop:
        made = await self.client.post(
            "/api/v1/internal/tenants",
            json={"name": name},
            headers={"X-Internal-Key": INTERNAL_KEY},
        )
        assert made.status_code == 201, made.text
        tenant_id = made.json()["id"]
        jwt = issue_token(JWT_SECRET, tenant_id, timedelta(minutes=10))
        secret = f"{name}-app-secret-{uuid.uuid4().hex}"
        token = f"EAA{name}token{uuid.uuid4().hex}"
        return Shop(tenant_id, {"Authorization": f"Bearer {jwt}"}, token, secret)

    async def put_whatsapp(self, shop: Shop, pnid: str, waba: str) -> httpx.Response:
        body = {
            "credentials": {
                "accessToken": shop.token,
                "appSecret": shop.app_secret,
                "phoneNumberId": pnid,
                "businessAccountId": waba,
            },
            "displayName": "Sucursal",
        }
        return await self.client.put(
            "/api/v1/integrations/whatsapp", json=body, headers=shop.headers
        )

    async def status(self, shop: Shop) -> dict[str, Any]:
        got = await self.client.get("/api/v1/integrations/status", headers=shop.headers)
        assert got.status_code == 200, got.text
        section: dict[str, Any] = got.json()["whatsapp"]
        return section

    async def resolve(self, pnid: str) -> httpx.Response:
        return await self.client.get(
            f"/api/v1/internal/integrations/resolve-tenant/{pnid}",
            headers={"X-Internal-Key": INTERNAL_KEY},
        )

    async def post_webhook(self, payload: dict[str, Any], secret: str) -> httpx.Response:
        body = encode(payload)
        return await self.client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(body, secret)
        )

    async def rows(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        async with self.service.storage.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            names = [c.name for c in cur.description or ()]
            return [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]

    async def inbound(self, wamid: str) -> list[dict[str, Any]]:
        return await self.rows(
            "SELECT route, tenant_id::text AS tenant_id FROM whatsapp_inbound_messages "
            "WHERE wamid = %s",
            (wamid,),
        )


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    env = {
        "WHATSAPP_ACCESS_TOKEN": "EAAclaimsplatformtoken000000000000",
        "WHATSAPP_PHONE_NUMBER_ID": new_id(),
        "WHATSAPP_APP_SECRET": PLATFORM_SECRET,
        "WHATSAPP_API_BASE_URL": f"https://{GRAPH}",
        "JWT_SECRET": JWT_SECRET,
        "INTERNAL_API_KEY": INTERNAL_KEY,
    }
    graph = FakeGraph()
    service = await bootstrap(
        Settings.from_env(env),
        Database(database_url, KeyRing.generate("claims")),
        check_keys=False,
        http=HttpClients(transport=httpx.MockTransport(graph.handler)),
    )
    app = create_app(service.settings, service=service, role="all")
    app.state.service = service  # httpx's ASGI transport runs no lifespan
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield World(client, graph, service)
    finally:
        await service.aclose()


# --- item 5: a number is not claimed without proof -------------------------------------------


async def test_a_squatted_number_is_taken_by_its_real_owner_whose_webhooks_then_pass(
    world: World,
) -> None:
    owner, squatter = await world.shop("owner"), await world.shop("squatter")
    pnid, waba = new_id(), new_id()
    world.graph.own(owner.token, waba, pnid)  # only the owner's token reads them

    squat = await world.put_whatsapp(squatter, pnid, waba)
    assert squat.status_code == 200, squat.text  # saved, but the claim is pending

    claimed = await world.put_whatsapp(owner, pnid, waba)
    assert claimed.status_code == 200, claimed.text  # not a 409: a pending claim takes nothing
    assert claimed.json()["isVerified"] is True
    assert squat.json()["isVerified"] is False
    assert (await world.status(squatter))["numberClaim"] == "pending"
    assert (await world.status(owner))["numberClaim"] == "confirmed"
    resolved = await world.resolve(pnid)
    assert resolved.status_code == 200 and resolved.json() == {"tenantId": owner.tenant_id}

    genuine, forged = text_message("¿Tienen tortillas?"), text_message("forged by the squatter")
    ok = await world.post_webhook(
        webhook(change(pnid, messages=[genuine]), waba_id=waba), owner.app_secret
    )
    assert ok.status_code == 200, ok.text
    assert await world.inbound(genuine["id"]) == [{"route": "tenant", "tenant_id": owner.tenant_id}]
    bad = await world.post_webhook(
        webhook(change(pnid, messages=[forged]), waba_id=waba), squatter.app_secret
    )
    assert bad.status_code == 401
    assert await world.inbound(forged["id"]) == []

    # Now that the owner's claim is confirmed, the squatter cannot take it back.
    again = await world.put_whatsapp(squatter, pnid, waba)
    assert again.status_code == 409
    assert owner.tenant_id not in again.text
    verify = await world.client.post(
        "/api/v1/integrations/whatsapp/verify", headers=squatter.headers
    )
    assert verify.status_code == 200 and verify.json()["isVerified"] is False
    assert (await world.resolve(pnid)).json() == {"tenantId": owner.tenant_id}


async def test_a_pending_claim_is_not_routed_and_its_app_secret_signs_nothing(
    world: World,
) -> None:
    squatter = await world.shop("squatter")
    pnid, waba = new_id(), new_id()  # a number nobody here owns, of an account nobody owns

    assert (await world.put_whatsapp(squatter, pnid, waba)).status_code == 200

    assert (await world.resolve(pnid)).status_code == 404
    forged = text_message("forged for a number the squatter cannot read")
    body = webhook(change(pnid, messages=[forged]), waba_id=waba)
    assert (await world.post_webhook(body, squatter.app_secret)).status_code == 401
    assert await world.inbound(forged["id"]) == []
    # Meta's own delivery for it (the platform's app, as for any unknown number) is unrouted.
    assert (await world.post_webhook(body, PLATFORM_SECRET)).status_code == 200
    assert await world.inbound(forged["id"]) == [{"route": "unrouted", "tenant_id": None}]


async def test_a_claim_graph_could_not_confirm_is_confirmed_by_verify_later(
    world: World,
) -> None:
    shop = await world.shop("patient")
    pnid, waba = new_id(), new_id()

    saved = await world.put_whatsapp(shop, pnid, waba)  # Graph does not know it yet
    assert saved.status_code == 200
    assert (await world.resolve(pnid)).status_code == 404
    assert saved.json()["verificationError"].startswith("The WhatsApp number is not claimed")

    world.graph.own(shop.token, waba, pnid)
    verify = await world.client.post("/api/v1/integrations/whatsapp/verify", headers=shop.headers)
    assert verify.status_code == 200 and verify.json()["isVerified"] is True
    assert (await world.status(shop))["numberClaim"] == "confirmed"
    assert (await world.resolve(pnid)).json() == {"tenantId": shop.tenant_id}


# --- item 4: a business account cannot be hijacked -------------------------------------------


async def test_a_hijacked_business_account_id_does_not_move_the_accounts_webhooks(
    world: World,
) -> None:
    victim, hijacker = await world.shop("victim"), await world.shop("hijacker")
    waba, victims_number = new_id(), new_id()
    world.graph.own(victim.token, waba, victims_number)
    hijackers_number = new_id()
    world.graph.own(hijacker.token, new_id(), hijackers_number)  # its own, in its own account

    # The hijacker names the victim's account first (before the fix, the older credential
    # naming an account won it), then the victim connects its number.
    hijack = await world.put_whatsapp(hijacker, hijackers_number, waba)
    assert hijack.status_code == 200
    assert (await world.put_whatsapp(victim, victims_number, waba)).status_code == 200

    marker = uuid.uuid4().hex
    genuine = webhook(other_field("account_update", {"event": "X", "m": marker}), waba_id=waba)
    forged = webhook(other_field("account_update", {"event": "Y", "m": marker}), waba_id=waba)
    assert (await world.post_webhook(genuine, victim.app_secret)).status_code == 200
    assert (await world.post_webhook(forged, hijacker.app_secret)).status_code == 401
    stored = await world.rows(
        "SELECT payload->>'event' AS event, tenant_id::text AS tenant_id "
        "FROM whatsapp_webhook_events WHERE payload->>'m' = %s",
        (marker,),
    )
    assert stored == [{"event": "X", "tenant_id": victim.tenant_id}]
    assert hijack.json()["isVerified"] is False
    assert (await world.status(victim))["numberClaim"] == "confirmed"
    assert (await world.status(hijacker))["numberClaim"] == "pending"
