"""The templates API on real PostgreSQL and the real app, syncing from the fake Graph API on a
real port: sync, list, filters and pages, removal, scopes (another tenant sees none), the
platform's internal twin, and the template webhooks updating what the API shows."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.http import HttpClients
from changarrito.bootstrap import Database, Service, bootstrap
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings
from conftest import INTERNAL_HEADERS, TEST_ENV
from fakes.fake_graph import FakeGraph

API = "/api/v1/templates"
INTERNAL = "/api/v1/internal/templates"
PLATFORM_TOKEN = TEST_ENV["WHATSAPP_ACCESS_TOKEN"]
PLATFORM_WABA = TEST_ENV["WHATSAPP_BUSINESS_ACCOUNT_ID"]
APP_SECRET = TEST_ENV["WHATSAPP_APP_SECRET"]

PAGO = [
    {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW..."]}},
    {"type": "BODY", "text": "Hola {{1}}, recibimos tu pago de {{2}}."},
    {
        "type": "BUTTONS",
        "buttons": [{"type": "URL", "text": "Ver pedido", "url": "https://tienda.mx/p/{{1}}"}],
    },
]


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    fake.start()
    fake.own(PLATFORM_TOKEN, PLATFORM_WABA)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def test_settings(graph: FakeGraph) -> Settings:
    return Settings.from_env({**TEST_ENV, "WHATSAPP_API_BASE_URL": graph.url})


@pytest.fixture
async def app_service(test_settings: Settings, database_url: str) -> AsyncIterator[Service]:
    database = Database(database_url, KeyRing.generate("it"))
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    service = await bootstrap(
        test_settings,
        database,
        role="all",
        listen=False,
        check_keys=False,
        http=HttpClients(transport=transport),
    )
    try:
        yield service
    finally:
        await service.aclose()


@pytest.fixture
def app(test_settings: Settings, app_service: Service) -> Litestar:
    return create_app(test_settings, service=app_service, role="all")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn


def unique_id() -> str:
    return str(random.randrange(10**14, 10**15))


@pytest.fixture
def shop(
    app_client: AsyncTestClient[Litestar], make_tenant: Callable[..., Any], graph: FakeGraph
) -> Callable[..., Any]:
    """``await shop()`` → a tenant with its own confirmed number: ``(headers, waba_id)``."""

    async def make(name: str = "Tienda") -> tuple[dict[str, str], str]:
        _, headers = await make_tenant(name)
        number, waba = unique_id(), unique_id()
        token = f"EAAshop{uuid.uuid4().hex}"
        graph.own(token, waba, number)
        body = {
            "credentials": {
                "phoneNumberId": number,
                "businessAccountId": waba,
                "accessToken": token,
            }
        }
        response = await app_client.put("/api/v1/integrations/whatsapp", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return headers, waba

    return make


async def test_a_sync_stores_every_page_graph_lists_and_the_list_shows_them(
    app_client, shop, graph
) -> None:
    headers, waba = await shop()
    graph.add_template(waba, "pago_recibido", components=PAGO, quality="GREEN")
    graph.add_template(waba, "pedido_listo", "es_MX")
    graph.add_template(waba, "pedido_listo", "en_US", status="PENDING")
    graph.template_page_size = 2
    try:
        synced = await app_client.post(f"{API}/sync", headers=headers)
    finally:
        graph.template_page_size = None

    assert synced.status_code == 200, synced.text
    assert synced.json() == {"businessAccountId": waba, "synced": 3, "removed": 0, "complete": True}
    listed = await app_client.get(API, headers=headers)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert [(t["name"], t["language"]) for t in page["data"]] == [
        ("pago_recibido", "es_MX"),
        ("pedido_listo", "en_US"),
        ("pedido_listo", "es_MX"),
    ]
    assert page["nextCursor"] is None
    pago = page["data"][0]
    assert (pago["category"], pago["status"], pago["quality"]) == ("UTILITY", "APPROVED", "GREEN")
    assert pago["components"] == PAGO
    assert pago["businessAccountId"] == waba and pago["id"].isdigit()
    assert pago["parameters"] == [
        {"component": "header", "kind": "image", "required": True},
        {"component": "body", "kind": "text", "index": 1, "required": True},
        {"component": "body", "kind": "text", "index": 2, "required": True},
        {
            "component": "button",
            "kind": "text",
            "index": 1,
            "button": 0,
            "subType": "url",
            "required": True,
        },
    ]


async def test_templates_are_filtered_by_status_and_name_and_paged_with_the_cursor(
    app_client, shop, graph
) -> None:
    headers, waba = await shop()
    for name in ("a_uno", "b_dos", "c_tres"):
        graph.add_template(waba, name)
    graph.add_template(waba, "d_pausada", status="PAUSED")
    assert (await app_client.post(f"{API}/sync", headers=headers)).status_code == 200

    paused = (await app_client.get(API, params={"status": "PAUSED"}, headers=headers)).json()
    named = (await app_client.get(API, params={"name": "b_dos"}, headers=headers)).json()
    assert [t["name"] for t in paused["data"]] == ["d_pausada"]
    assert [t["name"] for t in named["data"]] == ["b_dos"]

    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 1, "status": "APPROVED"}
        if cursor:
            params["cursor"] = cursor
        page = (await app_client.get(API, params=params, headers=headers)).json()
        seen += [t["name"] for t in page["data"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ["a_uno", "b_dos", "c_tres"]

    bad = await app_client.get(API, params={"cursor": "bm90LWEtY3Vyc29y"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["type"].endswith("/invalid-cursor")
    unknown = await app_client.get(API, params={"status": "SOMETHING"}, headers=headers)
    assert unknown.status_code == 400


async def test_a_template_gone_from_graph_is_removed_and_a_changed_one_updated_on_sync(
    app_client, shop, graph
) -> None:
    headers, waba = await shop()
    graph.add_template(waba, "se_queda")
    graph.add_template(waba, "se_va")
    assert (await app_client.post(f"{API}/sync", headers=headers)).json()["synced"] == 2

    graph.remove_template(waba, "se_va", "es_MX")
    graph.set_template(waba, "se_queda", "es_MX", status="PAUSED", category="MARKETING")
    again = await app_client.post(f"{API}/sync", headers=headers)

    assert again.json() == {"businessAccountId": waba, "synced": 1, "removed": 1, "complete": True}
    data = (await app_client.get(API, headers=headers)).json()["data"]
    assert [(t["name"], t["status"], t["category"]) for t in data] == [
        ("se_queda", "PAUSED", "MARKETING")
    ]


async def test_another_tenant_sees_none_of_them_and_cannot_sync_without_its_own_number(
    app_client, shop, make_tenant, graph
) -> None:
    headers, waba = await shop()
    graph.add_template(waba, "solo_mia")
    assert (await app_client.post(f"{API}/sync", headers=headers)).status_code == 200
    other_shop, _ = await shop("Otra")
    _, on_platform = await make_tenant("Sin numero")

    for other in (other_shop, on_platform):
        listed = await app_client.get(API, headers=other)
        assert listed.status_code == 200 and listed.json()["data"] == []
        named = await app_client.get(API, params={"name": "solo_mia"}, headers=other)
        assert named.json()["data"] == []
    refused = await app_client.post(f"{API}/sync", headers=on_platform)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert (
        problem["type"].endswith("/no-own-whatsapp")
        and "PUT /api/v1/integrations" in (problem["detail"])
    )
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await app_client.get(API)).status_code == 401


async def test_graphs_refusal_of_a_sync_is_a_provider_problem_and_keeps_what_was_stored(
    app_client, shop, graph
) -> None:
    headers, waba = await shop()
    graph.add_template(waba, "guardada")
    assert (await app_client.post(f"{API}/sync", headers=headers)).status_code == 200
    with graph._lock:  # the token lost its access to the account
        graph._accounts = {(t, w) for t, w in graph._accounts if w != waba}

    refused = await app_client.post(f"{API}/sync", headers=headers)

    assert refused.status_code == 502, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    data = (await app_client.get(API, headers=headers)).json()["data"]
    assert [t["name"] for t in data] == ["guardada"]


async def test_the_internal_twin_syncs_and_lists_the_platforms_own_account(
    app_client, shop, graph
) -> None:
    name = f"plataforma_{uuid.uuid4().hex[:8]}"
    graph.add_template(PLATFORM_WABA, name)
    headers, _ = await shop()

    synced = await app_client.post(f"{INTERNAL}/sync", headers=INTERNAL_HEADERS)
    assert synced.status_code == 200, synced.text
    assert synced.json()["businessAccountId"] == PLATFORM_WABA
    listed = await app_client.get(INTERNAL, params={"name": name}, headers=INTERNAL_HEADERS)
    assert [t["name"] for t in listed.json()["data"]] == [name]
    tenant = await app_client.get(API, params={"name": name}, headers=headers)
    assert tenant.json()["data"] == []
    assert (await app_client.get(INTERNAL)).status_code == 401


def signed_webhook(waba: str, field: str, value: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": waba, "time": 1735689600, "changes": [{"field": field, "value": value}]}
            ],
        }
    ).encode()
    digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


async def test_template_webhooks_are_stored_as_events_and_update_what_the_api_shows(
    app_client, shop, graph, db
) -> None:
    headers, waba = await shop()
    template = graph.add_template(waba, "pago_recibido", components=PAGO)
    assert (await app_client.post(f"{API}/sync", headers=headers)).status_code == 200
    ids = {
        "message_template_id": int(template["id"]),  # an integer in webhooks
        "message_template_name": "pago_recibido",
        "message_template_language": "es_MX",
    }
    deliveries = [
        (
            "message_template_status_update",
            {**ids, "event": "PAUSED", "reason": None, "message_template_category": "UTILITY"},
        ),
        (
            "template_category_update",
            {**ids, "previous_category": "UTILITY", "new_category": "MARKETING"},
        ),
        (
            "message_template_quality_update",
            {**ids, "previous_quality_score": "GREEN", "new_quality_score": "RED"},
        ),
    ]
    for field, value in deliveries:
        body, signature = signed_webhook(waba, field, value)
        response = await app_client.post("/webhooks/whatsapp", content=body, headers=signature)
        assert response.status_code == 200, response.text

    shown = (await app_client.get(API, headers=headers)).json()["data"][0]
    assert (shown["status"], shown["category"], shown["quality"]) == ("PAUSED", "MARKETING", "RED")
    cur = await db.execute(
        "SELECT field FROM whatsapp_webhook_events WHERE waba_id = %s ORDER BY id", (waba,)
    )
    assert [r[0] for r in await cur.fetchall()] == [f for f, _ in deliveries]


async def test_a_scheduled_sync_skips_an_owner_synced_moments_ago_by_another_worker(
    app_client, app_service, shop, graph, db
) -> None:
    headers, waba = await shop()
    graph.add_template(waba, "pedido_listo", "es_MX")
    synced = await app_client.post(f"{API}/sync", headers=headers)
    assert synced.status_code == 200, synced.text
    cur = await db.execute(
        "SELECT DISTINCT tenant_id FROM whatsapp_templates WHERE business_account_id = %s",
        (waba,),
    )
    ((owner,),) = await cur.fetchall()
    catalog = app_service.templates  # the use case the schedule calls

    skipped = await catalog.sync_due(owner, 3600)
    due = await catalog.sync_due(owner, 0)

    assert skipped is None
    assert due is not None and due.synced == 1
