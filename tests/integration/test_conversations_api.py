"""The conversations API on real PostgreSQL and the real app, sending to the fake Graph API.

Conversations are made the way intake makes them (the ``changarrito_conversation`` function
of migration 0013), their messages inserted as rows; a tenant's number is its own, claimed
through ``PUT /api/v1/integrations/whatsapp`` (the fake Graph confirms it).
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.http import HttpClients
from changarrito.bootstrap import Database, Service, bootstrap
from changarrito.settings import Settings
from conftest import INTERNAL_HEADERS, PLATFORM_PHONE_NUMBER_ID, TEST_ENV, bearer, token_for
from fakes.fake_graph import FakeGraph, phone_number_id

API = "/api/v1/conversations"
INTERNAL = "/api/v1/internal/conversations"
PLATFORM_TOKEN = TEST_ENV["WHATSAPP_ACCESS_TOKEN"]
_serial = itertools.count(1)


# --- the world: a fake Graph on a port, the service sending to it -----------------------------


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    # Its wamids start where no other test's did: they are unique in the shared database.
    fake._ids = itertools.count(random.randrange(10**8, 10**12))
    fake.start()
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
    # Real sockets to the fake Graph, none kept open: the app runs on the test client's loop.
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    http = HttpClients(transport=transport)
    service = await bootstrap(
        test_settings, database, role="backend", listen=False, check_keys=False, http=http
    )
    try:
        yield service
    finally:
        await service.aclose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn


def unique_number() -> str:
    return str(random.randrange(10**14, 10**15))


def unique_phone() -> str:
    return f"52155{random.randrange(10**7, 10**8)}"


@pytest.fixture
def shop(
    app_client: AsyncTestClient[Litestar], make_tenant: Callable[..., Any], graph: FakeGraph
) -> Callable[..., Any]:
    """``await shop()`` → a tenant with its own confirmed number: ``(tenant_id, headers,
    phone_number_id, token)``."""

    async def make(name: str = "Tienda") -> tuple[uuid.UUID, dict[str, str], str, str]:
        tenant_id, headers = await make_tenant(name)
        number, waba = unique_number(), unique_number()
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
        assert response.json()["isVerified"] is True, response.text
        return tenant_id, headers, number, token

    return make


async def conversation(
    db: psycopg.AsyncConnection[Any],
    number: str,
    tenant_id: uuid.UUID | None,
    *,
    phone: str | None = None,
    user_id: str | None = None,
    name: str | None = "Ana",
    last_wrote: timedelta = timedelta(minutes=5),
    active: datetime | None = None,
) -> str:
    """A conversation as intake makes it (its window from a message ``last_wrote`` ago);
    ``active``: its last activity."""
    if phone is None and user_id is None:
        phone = unique_phone()
    sent_at = datetime.now(UTC) - last_wrote
    cur = await db.execute(
        "SELECT changarrito_conversation(%s, %s, %s, %s, %s, %s, true)",
        (number, tenant_id, phone, user_id, name, sent_at),
    )
    row = await cur.fetchone()
    assert row is not None and row[0] is not None
    if active is not None:
        await db.execute(
            "UPDATE whatsapp_conversations SET last_activity_at = %s WHERE id = %s",
            (active, row[0]),
        )
    return str(row[0])


async def inbound(
    db: psycopg.AsyncConnection[Any],
    conversation_id: str,
    number: str,
    tenant_id: uuid.UUID | None,
    text: str,
    *,
    at: datetime,
    state: str = "answered",
    joined_to: int | None = None,
    edited: bool = False,
    revoked: bool = False,
) -> int:
    now = datetime.now(UTC)
    cur = await db.execute(
        """
        INSERT INTO whatsapp_inbound_messages
            (wamid, phone_number_id, tenant_id, route, customer_id, customer_phone, type, text,
             raw, sent_at, received_at, state, conversation_id, joined_to, edited_at, revoked_at)
        VALUES (%s, %s, %s, %s, 'c', 'c', 'text', %s, '{"secret": "RAW-PAYLOAD"}', %s, %s, %s,
                %s, %s, %s, %s)
        RETURNING id
        """,
        (
            f"wamid.IN{uuid.uuid4().hex}",
            number,
            tenant_id,
            "tenant" if tenant_id else "platform",
            text,
            at,
            at,
            state,
            conversation_id,
            joined_to,
            now if edited else None,
            now if revoked else None,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def outbound(
    db: psycopg.AsyncConnection[Any],
    conversation_id: str,
    number: str,
    tenant_id: uuid.UUID | None,
    text: str,
    *,
    at: datetime,
    status: str = "delivered",
    author: str = "bot",
) -> int:
    failed = status == "failed"
    cur = await db.execute(
        """
        INSERT INTO whatsapp_outbound_messages
            (tenant_id, phone_number_id, recipient, text, wamid, status, created_at,
             conversation_id, author, error_code, error_title)
        VALUES (%s, %s, 'c', %s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING id
        """,
        (
            tenant_id,
            number,
            text,
            None if failed else f"wamid.OUT{uuid.uuid4().hex}",
            status,
            at,
            conversation_id,
            author,
            131047 if failed else None,
            "Re-engagement message" if failed else None,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def row(db: psycopg.AsyncConnection[Any], sql: str, *params: Any) -> tuple[Any, ...]:
    cur = await db.execute(sql, params)
    found = await cur.fetchone()
    assert found is not None
    return tuple(found)


def problem_type(response: Any) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return str(response.json()["type"]).rsplit("/", 1)[-1]


# --- listing ------------------------------------------------------------------------------------


async def test_a_tenant_lists_its_conversations_newest_activity_first_with_their_contact(
    app_client, shop, db
) -> None:
    tenant_id, headers, number, _ = await shop()
    now = datetime.now(UTC)
    old = await conversation(db, number, tenant_id, name="Old", active=now - timedelta(hours=2))
    new = await conversation(db, number, tenant_id, phone="5215511112222", name="Nueva", active=now)
    closed = await conversation(
        db,
        number,
        tenant_id,
        name="Cerrada",
        last_wrote=timedelta(days=2),
        active=now - timedelta(hours=1),
    )

    response = await app_client.get(API, headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["id"] for c in body["data"]] == [new, closed, old]
    assert body["nextCursor"] is None
    first = body["data"][0]
    assert first["contact"] == {"name": "Nueva", "phone": "5215511112222", "userId": None}
    assert first["state"] == "bot"
    assert first["phoneNumberId"] == number
    assert first["windowOpen"] is True
    assert body["data"][1]["windowOpen"] is False
    for key in (
        "windowOpenUntil",
        "lastInboundAt",
        "lastActivityAt",
        "stateChangedAt",
        "stateChangedBy",
        "createdAt",
    ):
        assert key in first


async def test_the_list_filters_by_state_and_finds_names_and_phone_digits(
    app_client, shop, db
) -> None:
    tenant_id, headers, number, _ = await shop()
    lupita = await conversation(db, number, tenant_id, phone="5215598765432", name="Lupita Díaz")
    pedro = await conversation(db, number, tenant_id, phone="5215500001111", name="Pedro")
    by_bsuid = await conversation(db, number, tenant_id, user_id="MX.abc123", name=None)
    await db.execute("UPDATE whatsapp_conversations SET state = 'human' WHERE id = %s", (pedro,))

    async def ids(**params: str) -> set[str]:
        response = await app_client.get(API, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return {c["id"] for c in response.json()["data"]}

    assert await ids(state="human") == {pedro}
    assert await ids(state="bot") == {lupita, by_bsuid}
    assert await ids(state="closed") == set()
    assert await ids(q="lupi") == {lupita}
    assert await ids(q="DÍAZ") == {lupita}
    assert await ids(q="98765") == {lupita}
    assert await ids(q="+52155") == {lupita, pedro}
    assert await ids(q="+52 155-0000") == {pedro}
    assert await ids(q="pedro", state="bot") == set()
    assert await ids(q="nadie") == set()


async def test_pages_follow_the_cursor_without_repeating_or_skipping_a_conversation(
    app_client, shop, db
) -> None:
    tenant_id, headers, number, _ = await shop()
    same = datetime.now(UTC)
    made = {await conversation(db, number, tenant_id, active=same) for _ in range(3)}
    made |= {
        await conversation(db, number, tenant_id, active=same - timedelta(minutes=i))
        for i in range(1, 4)
    }
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        response = await app_client.get(API, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [c["id"] for c in body["data"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == 2
    assert len(seen) == len(set(seen)) == 6
    assert set(seen) == made


@pytest.mark.parametrize(
    "params",
    [
        {"state": "sleeping"},
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "many"},
        {"cursor": "not a cursor"},
        {"cursor": "WyJtIiwiMjAyNi0wMS0wMVQwMDowMDowMCswMDowMCIsMCwxXQ"},  # a message cursor
        {"cursor": "WyJjIiwieWVzdGVyZGF5IiwiMSJd"},  # ["c","yesterday","1"]
    ],
)
async def test_a_bad_filter_limit_or_cursor_is_a_400_problem(app_client, shop, params) -> None:
    _, headers, _, _ = await shop()

    response = await app_client.get(API, params=params, headers=headers)

    assert response.status_code == 400, response.text
    assert problem_type(response) in ("invalid-request", "invalid-cursor")


async def test_a_search_with_a_nul_is_refused_not_a_crash(app_client, shop) -> None:
    _, headers, _, _ = await shop()

    response = await app_client.get(API, params={"q": "a\x00b"}, headers=headers)

    assert response.status_code in (400, 422), response.text
    assert problem_type(response) in ("invalid-request", "validation")


# --- one conversation and its messages ------------------------------------------------------------


async def test_messages_merge_both_directions_newest_first_and_never_show_the_raw_payload(
    app_client, shop, db
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)
    t = datetime.now(UTC) - timedelta(minutes=10)
    first = await inbound(db, cid, number, tenant_id, "hola", at=t)
    joined = await inbound(
        db,
        cid,
        number,
        tenant_id,
        "¿tienen tortillas?",
        at=t + timedelta(seconds=1),
        state="joined",
        joined_to=first,
    )
    reply = await outbound(db, cid, number, tenant_id, "¡Sí!", at=t + timedelta(seconds=5))
    edited = await inbound(
        db,
        cid,
        number,
        tenant_id,
        "dos kilos",
        at=t + timedelta(minutes=1),
        edited=True,
        state="pending",
    )
    deleted = await inbound(
        db,
        cid,
        number,
        tenant_id,
        "perdón",
        at=t + timedelta(minutes=2),
        revoked=True,
        state="ignored",
    )
    failed = await outbound(
        db, cid, number, tenant_id, "¿algo más?", at=t + timedelta(minutes=3), status="failed"
    )

    response = await app_client.get(f"{API}/{cid}/messages", headers=headers)

    assert response.status_code == 200, response.text
    assert "RAW-PAYLOAD" not in response.text
    data = response.json()["data"]
    assert [m["id"] for m in data] == [
        f"out_{failed}",
        f"in_{deleted}",
        f"in_{edited}",
        f"out_{reply}",
        f"in_{joined}",
        f"in_{first}",
    ]
    by_id = {m["id"]: m for m in data}
    assert by_id[f"in_{joined}"]["status"] == "answered"
    assert by_id[f"in_{joined}"]["answeredWith"] == f"in_{first}"
    assert by_id[f"in_{first}"]["answeredWith"] is None
    assert by_id[f"in_{first}"] | {"at": None, "wamid": None} == {
        "id": f"in_{first}",
        "direction": "inbound",
        "author": "customer",
        "type": "text",
        "text": "hola",
        "wamid": None,
        "at": None,
        "status": "answered",
        "answeredWith": None,
        "error": None,
        "edited": False,
        "deleted": False,
        "media": None,
        "template": None,
    }
    assert by_id[f"in_{edited}"]["edited"] is True
    assert by_id[f"in_{deleted}"]["deleted"] is True
    assert by_id[f"out_{reply}"]["author"] == "bot"
    assert by_id[f"out_{reply}"]["status"] == "delivered"
    assert by_id[f"out_{reply}"]["error"] is None
    assert by_id[f"out_{failed}"]["status"] == "failed"
    assert by_id[f"out_{failed}"]["error"] == {"code": 131047, "title": "Re-engagement message"}


async def test_message_pages_follow_the_cursor_across_both_directions(app_client, shop, db) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)
    same = datetime.now(UTC) - timedelta(minutes=1)
    made = set()
    for i in range(3):  # inbound and outbound at the very same instant, and apart
        made.add(f"in_{await inbound(db, cid, number, tenant_id, f'i{i}', at=same)}")
        made.add(f"out_{await outbound(db, cid, number, tenant_id, f'o{i}', at=same)}")
    made.add(f"in_{await inbound(db, cid, number, tenant_id, 'x', at=same - timedelta(1))}")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await app_client.get(f"{API}/{cid}/messages", params=params, headers=headers)
        assert response.status_code == 200, response.text
        seen += [m["id"] for m in response.json()["data"]]
        cursor = response.json()["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == made
    assert seen[-1].startswith("in_")  # the oldest, a day before


async def test_a_conversation_shows_its_window_and_its_latest_switches(
    app_client, shop, db
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id, phone="5215512340000", name="Rosa")

    response = await app_client.get(f"{API}/{cid}", headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == cid
    assert body["contact"]["name"] == "Rosa"
    assert body["windowOpen"] is True
    until = datetime.fromisoformat(body["windowOpenUntil"])
    assert timedelta(hours=23) < until - datetime.now(UTC) < timedelta(hours=24)
    assert body["switches"] == []
    assert body["stateChangedBy"] == "system"


# --- sending --------------------------------------------------------------------------------------


async def test_the_shop_sends_a_text_inside_the_window_from_the_conversations_number(
    app_client, shop, db, graph
) -> None:
    tenant_id, headers, number, token = await shop()
    cid = await conversation(db, number, tenant_id, phone="5215544443333")
    before = await row(db, "SELECT last_activity_at FROM whatsapp_conversations WHERE id = %s", cid)

    response = await app_client.post(
        f"{API}/{cid}/messages", json={"type": "text", "text": "Le atiendo yo 🙂"}, headers=headers
    )

    assert response.status_code == 201, response.text
    message = response.json()
    assert message["direction"] == "outbound"
    assert message["author"] == "shop"
    assert message["status"] == "sent"
    assert message["wamid"].startswith("wamid.FAKE")
    sends = graph.sends()
    assert len(sends) == 1
    assert phone_number_id(sends[0]) == number
    assert sends[0].headers["authorization"] == f"Bearer {token}"
    assert sends[0].body["to"] == "+5215544443333"
    assert sends[0].body["text"]["body"] == "Le atiendo yo 🙂"
    assert "context" not in sends[0].body
    stored = await row(
        db,
        "SELECT author, author_ref, conversation_id::text, inbound_id, tenant_id, recipient,"
        " wamid, text FROM whatsapp_outbound_messages WHERE id = %s",
        int(message["id"].removeprefix("out_")),
    )
    assert stored == (
        "shop",
        f"user-of-{tenant_id}",
        cid,
        None,
        tenant_id,
        "5215544443333",
        message["wamid"],
        "Le atiendo yo 🙂",
    )
    after = await row(
        db,
        "SELECT last_activity_at, human_active_at, state FROM whatsapp_conversations WHERE id = %s",
        cid,
    )
    assert after[0] > before[0]
    assert after[1] is not None
    assert after[2] == "bot"  # sending alone does not take the conversation over
    listed = (await app_client.get(f"{API}/{cid}/messages", headers=headers)).json()["data"]
    assert listed[0] == message


async def test_outside_the_window_a_send_is_a_409_window_closed_and_nothing_reaches_graph(
    app_client, shop, db, graph
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id, last_wrote=timedelta(hours=25))

    response = await app_client.post(
        f"{API}/{cid}/messages", json={"type": "text", "text": "¿Sigue ahí?"}, headers=headers
    )

    assert response.status_code == 409, response.text
    assert response.json()["type"].endswith("/window-closed")
    assert "template" in response.json()["detail"]
    assert "24-hour" in response.json()["detail"]
    assert graph.sends(accepted_only=False) == []
    count = await row(
        db, "SELECT count(*) FROM whatsapp_outbound_messages WHERE conversation_id = %s", cid
    )
    assert count == (0,)


async def test_a_send_graph_refuses_is_recorded_failed_without_a_wamid_and_answered_502(
    app_client, shop, db, graph
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)
    graph.script_sends(FakeGraph.error(131026, message="Message undeliverable"))

    response = await app_client.post(
        f"{API}/{cid}/messages", json={"type": "text", "text": "Hola"}, headers=headers
    )

    assert response.status_code == 502, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    stored = await row(
        db,
        "SELECT wamid, status, error_code, error_title IS NOT NULL, failed_at IS NOT NULL"
        " FROM whatsapp_outbound_messages WHERE conversation_id = %s",
        cid,
    )
    assert stored == (None, "failed", 131026, True, True)
    listed = (await app_client.get(f"{API}/{cid}/messages", headers=headers)).json()["data"]
    assert listed[0]["status"] == "failed"
    assert listed[0]["wamid"] is None
    assert listed[0]["error"]["code"] == 131026


async def test_a_send_with_handoff_also_gives_the_conversation_to_a_person(
    app_client, shop, db, graph
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)

    response = await app_client.post(
        f"{API}/{cid}/messages",
        json={"type": "text", "text": "Soy Marta, de la tienda", "handoff": True},
        headers=headers,
    )

    assert response.status_code == 201, response.text
    detail = (await app_client.get(f"{API}/{cid}", headers=headers)).json()
    assert detail["state"] == "human"
    assert detail["stateChangedBy"] == f"api:user-of-{tenant_id}"
    assert [(s["from"], s["to"]) for s in detail["switches"]] == [("bot", "human")]
    assert len(graph.sends()) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"type": "text", "text": ""},
        {"type": "text", "text": "x" * 4097},
        {"type": "text"},
        {"type": "text", "text": "hola", "extra": 1},
        {"type": "video", "text": "hola"},
        {"text": "hola"},
        [],
        # Meta's own shape is not ours: the link is at the top level.
        {"type": "image", "image": {"link": "https://example.test/a.jpg"}},
        {"type": "document", "document": {"id": "123"}},
        {"type": "image", "link": "https://shop.example.mx/a.png", "filename": "a.png"},
        {"type": "image", "id": "1013859600285441"},
    ],
)
async def test_a_malformed_send_is_a_client_problem_and_sends_nothing(
    app_client, shop, db, graph, body
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)

    response = await app_client.post(f"{API}/{cid}/messages", json=body, headers=headers)

    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert graph.sends(accepted_only=False) == []
    assert graph.media_sends(accepted_only=False) == []


async def test_a_blank_text_is_a_422_and_sends_nothing(app_client, shop, db, graph) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)

    response = await app_client.post(
        f"{API}/{cid}/messages", json={"type": "text", "text": "  \n "}, headers=headers
    )

    assert response.status_code == 422, response.text
    assert graph.sends(accepted_only=False) == []


# --- pictures and documents ----------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"1 0 obj\n" * 50


async def outbound_media(db: psycopg.AsyncConnection[Any], message: dict[str, Any]) -> Any:
    stored = await row(
        db,
        "SELECT media, text, author FROM whatsapp_outbound_messages WHERE id = %s",
        int(message["id"].removeprefix("out_")),
    )
    return stored


async def test_the_shop_sends_a_picture_by_link_with_its_caption(
    app_client, shop, db, graph
) -> None:
    tenant_id, headers, number, token = await shop()
    cid = await conversation(db, number, tenant_id, phone="5215544440000")
    link = "https://cdn.tienda.example.mx/pasteles/tres-leches.jpg?v=2"

    response = await app_client.post(
        f"{API}/{cid}/messages",
        json={"type": "image", "link": link, "caption": "Así quedó 🎂"},
        headers=headers,
    )

    assert response.status_code == 201, response.text
    message = response.json()
    assert (message["type"], message["author"], message["status"]) == ("image", "shop", "sent")
    assert message["text"] == "Así quedó 🎂"
    assert message["media"] == {
        "type": "image",
        "mimeType": None,
        "filename": None,
        "caption": "Así quedó 🎂",
        "link": link,
        "uploaded": False,
        "size": None,
        "state": None,
        "reasonCode": None,
        "reason": None,
    }
    [send] = graph.media_sends()
    assert phone_number_id(send) == number
    assert send.headers["authorization"] == f"Bearer {token}"
    assert send.body["to"] == "+5215544440000"
    assert (send.body["type"], send.body["image"]) == (
        "image",
        {"link": link, "caption": "Así quedó 🎂"},
    )
    assert graph.uploads() == [] and graph.sends() == []
    assert await outbound_media(db, message) == (
        {"type": "image", "link": link},
        "Así quedó 🎂",
        "shop",
    )
    listed = (await app_client.get(f"{API}/{cid}/messages", headers=headers)).json()["data"]
    assert listed[0] == message


async def test_a_document_by_link_carries_the_filename_the_customer_sees(
    app_client, shop, db, graph
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)
    link = "https://tienda.example.mx/menu.pdf"

    response = await app_client.post(
        f"{API}/{cid}/messages",
        json={"type": "document", "link": link, "filename": "Menú de diciembre.pdf"},
        headers=headers,
    )

    assert response.status_code == 201, response.text
    assert response.json()["text"] == ""
    assert response.json()["media"]["caption"] is None
    assert response.json()["media"]["filename"] == "Menú de diciembre.pdf"
    [send] = graph.media_sends()
    assert send.body["document"] == {"link": link, "filename": "Menú de diciembre.pdf"}


async def test_an_uploaded_picture_is_checked_uploaded_to_the_number_and_sent_by_its_id(
    app_client, shop, db, graph
) -> None:
    tenant_id, headers, number, token = await shop()
    cid = await conversation(db, number, tenant_id)

    response = await app_client.post(
        f"{API}/{cid}/messages",
        data={"type": "image", "caption": "El pedido"},
        files={"file": ("pedido.png", PNG, "image/png")},
        headers=headers,
    )

    assert response.status_code == 201, response.text
    message = response.json()
    [upload] = graph.uploads()
    assert (upload.phone_number_id, upload.token) == (number, token)
    assert (upload.messaging_product, upload.type, upload.content_type) == (
        "whatsapp",
        "image/png",
        "image/png",
    )
    assert upload.content == PNG
    [send] = graph.media_sends()
    assert send.body["image"] == {"id": upload.media_id, "caption": "El pedido"}
    assert message["media"]["uploaded"] is True
    assert message["media"]["link"] is None
    assert message["media"]["mimeType"] == "image/png"
    assert message["media"]["filename"] is None  # a picture has no name on WhatsApp
    media, text, _ = await outbound_media(db, message)
    assert media == {"type": "image", "id": upload.media_id, "mimeType": "image/png"}
    assert text == "El pedido"


async def test_an_uploaded_document_is_named_after_its_file_unless_a_filename_is_given(
    app_client, shop, db, graph
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)

    own_name = await app_client.post(
        f"{API}/{cid}/messages",
        data={"type": "document"},
        files={"file": ("ticket.pdf", PDF, "application/pdf")},
        headers=headers,
    )
    renamed = await app_client.post(
        f"{API}/{cid}/messages",
        data={"type": "document", "filename": "Factura 0042.pdf", "handoff": "true"},
        files={"file": ("tmp123.pdf", PDF, "application/octet-stream")},
        headers=headers,
    )

    assert own_name.status_code == renamed.status_code == 201, (own_name.text, renamed.text)
    first, second = graph.media_sends()
    assert first.body["document"] == {"id": graph.uploads()[0].media_id, "filename": "ticket.pdf"}
    assert second.body["document"]["filename"] == "Factura 0042.pdf"
    assert graph.uploads()[1].type == "application/pdf"  # read from the bytes
    assert renamed.json()["media"]["mimeType"] == "application/pdf"
    detail = (await app_client.get(f"{API}/{cid}", headers=headers)).json()
    assert detail["state"] == "human"


async def test_outside_the_window_a_picture_is_a_409_and_nothing_is_uploaded_or_sent(
    app_client, shop, db, graph
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id, last_wrote=timedelta(hours=25))

    by_link = await app_client.post(
        f"{API}/{cid}/messages",
        json={"type": "image", "link": "https://tienda.example.mx/a.png"},
        headers=headers,
    )
    uploaded = await app_client.post(
        f"{API}/{cid}/messages",
        data={"type": "image"},
        files={"file": ("a.png", PNG, "image/png")},
        headers=headers,
    )

    assert by_link.status_code == uploaded.status_code == 409
    assert problem_type(by_link) == problem_type(uploaded) == "window-closed"
    assert graph.uploads() == [] and graph.media_sends(accepted_only=False) == []
    count = await row(
        db, "SELECT count(*) FROM whatsapp_outbound_messages WHERE conversation_id = %s", cid
    )
    assert count == (0,)


async def test_an_upload_graph_refuses_is_recorded_failed_and_answered_502(
    app_client, shop, db, graph
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)
    graph.script_uploads(FakeGraph.error(131053, message="Media upload error"))

    response = await app_client.post(
        f"{API}/{cid}/messages",
        data={"type": "image"},
        files={"file": ("a.png", PNG, "image/png")},
        headers=headers,
    )

    assert response.status_code == 502, response.text
    assert graph.media_sends(accepted_only=False) == []
    stored = await row(
        db,
        "SELECT wamid, status, error_code, media FROM whatsapp_outbound_messages"
        " WHERE conversation_id = %s",
        cid,
    )
    assert stored == (None, "failed", 131053, {"type": "image", "mimeType": "image/png"})
    [listed] = (await app_client.get(f"{API}/{cid}/messages", headers=headers)).json()["data"]
    assert (listed["type"], listed["status"]) == ("image", "failed")
    assert listed["error"]["code"] == 131053
    assert listed["media"]["uploaded"] is True


async def test_a_picture_graph_refuses_to_send_is_recorded_failed_with_its_error(
    app_client, shop, db, graph
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)
    graph.script_sends(FakeGraph.error(131051, message="Unsupported message type"))

    response = await app_client.post(
        f"{API}/{cid}/messages",
        json={"type": "image", "link": "https://tienda.example.mx/a.png"},
        headers=headers,
    )

    assert response.status_code == 502, response.text
    stored = await row(
        db,
        "SELECT wamid, status, error_code FROM whatsapp_outbound_messages"
        " WHERE conversation_id = %s",
        cid,
    )
    assert stored == (None, "failed", 131051)


async def test_the_customers_media_shows_what_became_of_it_and_why_it_could_not_be_used(
    app_client, shop, db
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)
    t = datetime.now(UTC) - timedelta(minutes=5)
    photo = await inbound(db, cid, number, tenant_id, "", at=t)
    voice = await inbound(db, cid, number, tenant_id, "", at=t + timedelta(seconds=1))
    fresh = await inbound(db, cid, number, tenant_id, "", at=t + timedelta(seconds=2))
    await db.execute(
        "UPDATE whatsapp_inbound_messages SET type = CASE WHEN id = %s THEN 'audio'"
        " ELSE 'image' END WHERE id = ANY(%s)",
        (voice, [photo, voice, fresh]),
    )
    await db.execute(
        """
        INSERT INTO whatsapp_media
            (inbound_id, tenant_id, kind, media_id, mime_type, file_size, filename, state,
             reason_code, reason)
        VALUES (%s, %s, 'image', '1', 'image/jpeg', 20480, NULL, 'read', NULL, NULL),
               (%s, %s, 'audio', '2', 'audio/ogg', 17000000, NULL, 'failed', 'too-large',
                'the audio is 17,000,000 bytes, over the 16,777,216-byte limit')
        """,
        (photo, tenant_id, voice, tenant_id),
    )

    response = await app_client.get(f"{API}/{cid}/messages", headers=headers)

    assert response.status_code == 200, response.text
    by_id = {m["id"]: m for m in response.json()["data"]}
    assert by_id[f"in_{photo}"]["type"] == "image"
    assert by_id[f"in_{photo}"]["media"] == {
        "type": "image",
        "mimeType": "image/jpeg",
        "filename": None,
        "caption": None,
        "link": None,
        "uploaded": None,
        "size": 20480,
        "state": "read",
        "reasonCode": None,
        "reason": None,
    }
    failed = by_id[f"in_{voice}"]["media"]
    assert (failed["type"], failed["state"], failed["reasonCode"]) == (
        "audio",
        "failed",
        "too-large",
    )
    assert "16,777,216-byte limit" in failed["reason"]
    assert by_id[f"in_{fresh}"]["media"] is None  # no worker looked at it yet


async def test_the_internal_api_sends_a_document_from_the_platform_number(
    app_client, db, graph
) -> None:
    cid = await conversation(
        db, PLATFORM_PHONE_NUMBER_ID, None, phone="5215577775555", name=f"p{next(_serial)}"
    )

    sent = await app_client.post(
        f"{INTERNAL}/{cid}/messages",
        data={"type": "document", "caption": "Su factura"},
        files={"file": ("factura.pdf", PDF, "application/pdf")},
        headers=INTERNAL_HEADERS,
    )

    assert sent.status_code == 201, sent.text
    [upload] = graph.uploads()
    assert (upload.phone_number_id, upload.token) == (PLATFORM_PHONE_NUMBER_ID, PLATFORM_TOKEN)
    [send] = graph.media_sends()
    assert send.body["document"]["caption"] == "Su factura"


@pytest.mark.parametrize(
    ("data", "files"),
    [
        ({"type": "image"}, {}),  # no file
        ({"type": "video"}, {"file": ("a.png", PNG, "image/png")}),
        ({"type": "text"}, {"file": ("a.png", PNG, "image/png")}),
        ({"type": "image", "filename": "a.png"}, {"file": ("a.png", PNG, "image/png")}),
        ({"type": "image", "color": "red"}, {"file": ("a.png", PNG, "image/png")}),
        ({"type": "image", "handoff": "maybe"}, {"file": ("a.png", PNG, "image/png")}),
        ({}, {"file": ("a.png", PNG, "image/png"), "type": ("t.txt", b"image", "text/plain")}),
    ],
)
async def test_a_malformed_upload_is_a_400_naming_the_field_and_sends_nothing(
    app_client, shop, db, graph, data, files
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)

    response = await app_client.post(
        f"{API}/{cid}/messages",
        data=data,
        files=files or {"unused": ("", b"", "text/plain")},
        headers=headers,
    )

    assert response.status_code == 400, response.text
    assert problem_type(response) == "invalid-request"
    assert response.json()["errors"]
    assert graph.uploads() == [] and graph.media_sends(accepted_only=False) == []


async def test_a_json_message_over_64_kib_is_a_413_that_says_so(
    app_client, shop, db, graph
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)

    response = await app_client.post(
        f"{API}/{cid}/messages",
        json={"type": "image", "link": "https://tienda.example.mx/a.png", "caption": "x" * 70_000},
        headers=headers,
    )

    assert response.status_code == 413, response.text
    assert problem_type(response) == "body-too-large"
    assert "64 KiB" in response.json()["detail"]
    assert graph.media_sends(accepted_only=False) == []


# --- handoff and resume ---------------------------------------------------------------------------


async def test_handoff_and_resume_switch_the_conversation_and_record_each_switch_once(
    app_client, shop, db
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)
    actor = f"api:user-of-{tenant_id}"

    handed = await app_client.post(
        f"{API}/{cid}/handoff", json={"reason": "pide hablar con Marta"}, headers=headers
    )
    again = await app_client.post(f"{API}/{cid}/handoff", headers=headers)

    assert handed.status_code == again.status_code == 200, (handed.text, again.text)
    assert handed.json()["state"] == "human"
    assert handed.json()["stateChangedBy"] == actor
    assert again.json()["switches"] == handed.json()["switches"]
    human_at = await row(
        db, "SELECT human_active_at FROM whatsapp_conversations WHERE id = %s", cid
    )
    assert human_at[0] is not None

    resumed = await app_client.post(f"{API}/{cid}/resume", headers=headers)
    once_more = await app_client.post(f"{API}/{cid}/resume", json={}, headers=headers)

    assert resumed.status_code == once_more.status_code == 200
    assert resumed.json()["state"] == once_more.json()["state"] == "bot"
    switches = once_more.json()["switches"]
    assert [(s["from"], s["to"], s["actor"], s["reason"]) for s in switches] == [
        ("human", "bot", actor, None),
        ("bot", "human", actor, "pide hablar con Marta"),
    ]
    stored = await row(
        db, "SELECT count(*) FROM whatsapp_conversation_switches WHERE conversation_id = %s", cid
    )
    assert stored == (2,)


async def test_the_switch_query_takes_the_platform_scope_and_says_whether_it_switched(
    app_service, db
) -> None:
    """The pipeline reuses ``switch_conversation`` (model handoff, idle resume) by name."""
    from changarrito.adapters.postgres.queries import QUERIES

    cid = await conversation(db, PLATFORM_PHONE_NUMBER_ID, None, name=f"q{next(_serial)}")
    params = {
        "id": cid,
        "tenant_id": None,
        "to_state": "human",
        "actor": "model",
        "reason": "asked for a person",
    }

    async def switch(**changes: Any) -> Any:
        cur = await db.execute(QUERIES["switch_conversation"], {**params, **changes})
        return await cur.fetchone()

    first = await switch()
    second = await switch()
    elsewhere = await switch(tenant_id=uuid.uuid4())

    assert first == ("human", True)
    assert second == ("human", False)
    assert elsewhere is None
    stored = await row(
        db,
        "SELECT count(*), min(actor), min(from_state) FROM whatsapp_conversation_switches"
        " WHERE conversation_id = %s",
        cid,
    )
    assert stored == (1, "model", "bot")


# --- isolation ------------------------------------------------------------------------------------


async def test_tenant_a_never_sees_reads_writes_to_hands_off_or_resumes_tenant_bs_conversations(
    app_client, shop, db, graph
) -> None:
    _, headers_a, _, _ = await shop("A")
    tenant_b, headers_b, number_b, _ = await shop("B")
    cid = await conversation(db, number_b, tenant_b, name="Cliente de B")
    await inbound(db, cid, number_b, tenant_b, "secreto de B", at=datetime.now(UTC))

    listed = await app_client.get(API, params={"q": "Cliente de B"}, headers=headers_a)
    assert listed.status_code == 200
    assert listed.json()["data"] == []
    attempts = [
        await app_client.get(f"{API}/{cid}", headers=headers_a),
        await app_client.get(f"{API}/{cid}/messages", headers=headers_a),
        await app_client.post(
            f"{API}/{cid}/messages", json={"type": "text", "text": "hola"}, headers=headers_a
        ),
        await app_client.post(f"{API}/{cid}/handoff", headers=headers_a),
        await app_client.post(f"{API}/{cid}/resume", headers=headers_a),
    ]
    for response in attempts:
        assert response.status_code == 404, response.text
        assert problem_type(response) == "conversation-not-found"
        assert "secreto" not in response.text
    missing = await app_client.get(f"{API}/{uuid.uuid4()}", headers=headers_a)
    assert missing.json() == attempts[0].json()  # the same answer whether it exists or not
    assert graph.sends(accepted_only=False) == []
    own = (await app_client.get(f"{API}/{cid}", headers=headers_b)).json()
    assert own["state"] == "bot" and own["switches"] == []


async def test_the_tenant_api_never_shows_the_platform_numbers_conversations_nor_the_reverse(
    app_client, shop, db
) -> None:
    tenant_id, headers, number, _ = await shop()
    mark = f"Mezcla{next(_serial)}{uuid.uuid4().hex[:6]}"
    platform = await conversation(db, PLATFORM_PHONE_NUMBER_ID, None, name=f"{mark} plataforma")
    tenants = await conversation(db, number, tenant_id, name=f"{mark} tienda")

    as_tenant = await app_client.get(API, params={"q": mark}, headers=headers)
    as_platform = await app_client.get(INTERNAL, params={"q": mark}, headers=INTERNAL_HEADERS)

    assert [c["id"] for c in as_tenant.json()["data"]] == [tenants]
    assert [c["id"] for c in as_platform.json()["data"]] == [platform]
    assert (await app_client.get(f"{API}/{platform}", headers=headers)).status_code == 404
    internal_read = await app_client.get(f"{INTERNAL}/{tenants}", headers=INTERNAL_HEADERS)
    assert internal_read.status_code == 404
    internal_switch = await app_client.post(
        f"{INTERNAL}/{tenants}/handoff", headers=INTERNAL_HEADERS
    )
    assert internal_switch.status_code == 404


async def test_the_internal_api_sends_from_the_platform_number_and_switches_as_internal(
    app_client, db, graph
) -> None:
    cid = await conversation(
        db, PLATFORM_PHONE_NUMBER_ID, None, phone="5215577776666", name=f"p{next(_serial)}"
    )

    sent = await app_client.post(
        f"{INTERNAL}/{cid}/messages",
        json={"type": "text", "text": "Hola desde la plataforma", "handoff": True},
        headers=INTERNAL_HEADERS,
    )
    detail = await app_client.get(f"{INTERNAL}/{cid}", headers=INTERNAL_HEADERS)
    resumed = await app_client.post(f"{INTERNAL}/{cid}/resume", headers=INTERNAL_HEADERS)

    assert sent.status_code == 201, sent.text
    assert sent.json()["author"] == "shop"
    [send] = graph.sends()
    assert phone_number_id(send) == PLATFORM_PHONE_NUMBER_ID
    assert send.headers["authorization"] == f"Bearer {PLATFORM_TOKEN}"
    assert detail.json()["state"] == "human"
    assert detail.json()["stateChangedBy"] == "internal"
    assert resumed.json()["state"] == "bot"
    messages = await app_client.get(f"{INTERNAL}/{cid}/messages", headers=INTERNAL_HEADERS)
    assert [m["text"] for m in messages.json()["data"]] == ["Hola desde la plataforma"]


async def test_every_conversation_endpoint_wants_its_credentials(app_client, shop, db) -> None:
    tenant_id, _, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)
    other_tenant = bearer(token_for(uuid.uuid4()))
    calls = [
        ("GET", API),
        ("GET", f"{API}/{cid}"),
        ("GET", f"{API}/{cid}/messages"),
        ("POST", f"{API}/{cid}/messages"),
        ("POST", f"{API}/{cid}/handoff"),
        ("POST", f"{API}/{cid}/resume"),
    ]
    for method, path in calls:
        anonymous = await app_client.request(method, path, json={"type": "text", "text": "x"})
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        internal = await app_client.request(
            method,
            path.replace(API, INTERNAL),
            json={"type": "text", "text": "x"},
            headers={"X-Internal-Key": "wrong"},
        )
        assert internal.status_code == 401, (method, path, internal.text)
    unknown_tenant = await app_client.get(API, headers=other_tenant)
    assert unknown_tenant.status_code in (200, 401)
    if unknown_tenant.status_code == 200:
        assert unknown_tenant.json()["data"] == []


async def test_the_schema_documents_both_apis_with_their_problems(app_client) -> None:
    schema = (await app_client.get("/schema/openapi.json")).json()
    paths = schema["paths"]
    for base, scheme in ((API, "BearerAuth"), (INTERNAL, "InternalKey")):
        expected = {
            base: {"get": {"400", "401"}},
            f"{base}/{{conversation_id}}": {"get": {"401", "404"}},
            f"{base}/{{conversation_id}}/messages": {
                "get": {"401", "404"},
                "post": {"201", "401", "404", "409", "422", "502"},
            },
            f"{base}/{{conversation_id}}/handoff": {"post": {"200", "401", "404"}},
            f"{base}/{{conversation_id}}/resume": {"post": {"200", "401", "404"}},
        }
        for path, methods in expected.items():
            assert path in paths, path
            for method, statuses in methods.items():
                operation = paths[path][method]
                assert statuses <= set(operation["responses"]), (path, method)
                assert operation["security"] == [{scheme: []}], (path, method)
    send = paths[f"{API}/{{conversation_id}}/messages"]["post"]
    assert "window-closed" in send["responses"]["409"]["description"]
    assert set(send["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    upload = send["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["required"] == ["type", "file"]
    assert upload["properties"]["file"] == {"type": "string", "format": "binary"}
    assert "media" in schema["components"]["schemas"]["ConversationMessage"]["properties"]


async def test_a_cursor_made_from_another_tenants_conversation_only_pages_the_callers_own(
    app_client, shop, db
) -> None:
    from changarrito.entrypoints.http.conversations import conversation_cursor

    tenant_a, headers_a, number_a, _ = await shop("A")
    tenant_b, _, number_b, _ = await shop("B")
    later = datetime.now(UTC) + timedelta(hours=1)
    b_id = await conversation(db, number_b, tenant_b, active=later)
    mine = await conversation(db, number_a, tenant_a)
    forged = conversation_cursor((later, uuid.UUID(b_id)))

    response = await app_client.get(API, params={"cursor": forged}, headers=headers_a)

    assert response.status_code == 200, response.text
    assert [c["id"] for c in response.json()["data"]] == [mine]
