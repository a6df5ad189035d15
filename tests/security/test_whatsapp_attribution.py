"""Attribution of WhatsApp webhooks, tried as an attacker (issue 10, items 7 and 9).

HTTP in, observable effect out: the status of the response and the rows in PostgreSQL.

- A tenant's own app signs every number of its WhatsApp Business Account (``entry[].id``),
  also one nobody here has claimed: a batch naming the tenant's number and such a number is
  stored (the unclaimed number's updates ``unrouted``), not refused whole; the platform's
  secret does not sign for the tenant's account.
- An account-level event (no number) is stored with the tenant that owns the account.
- A status changes an outbound message only when it came for the number (and tenant) that
  sent it: a tenant cannot fail another tenant's message with its own app's signature, nor
  pre-claim a status so that the genuine one is dropped as a duplicate.

The fixtures are self-contained (a ``tests/security`` run does not load the integration
suite's conftest): the service on the session's test database (``database_url``, from
``tests/conftest.py``), the webhook app in front of it, tenants with their own Meta apps.
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
from changarrito.adapters.postgres.messages import apply_statuses
from changarrito.bootstrap import Database, Service, bootstrap
from changarrito.domain.changes import Change
from changarrito.domain.model import Credential, IntegrationType, Secrets, WhatsAppNumber
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings
from whatsapp_payloads import (
    CUSTOMER,
    change,
    encode,
    entries,
    new_wamid,
    other_field,
    signed_headers,
    status,
    text_message,
    webhook,
)

PLATFORM_SECRET = "attribution-platform-app-secret-0123"
SECRET_A = "attribution-tenant-a-app-secret-0123"
SECRET_B = "attribution-tenant-b-app-secret-4567"


def new_number() -> str:
    return str(random.randrange(10**14, 10**15))


@pytest.fixture
def platform_number() -> str:
    return new_number()


@pytest.fixture
async def service(database_url: str, platform_number: str) -> AsyncIterator[Service]:
    env = {
        "WHATSAPP_ACCESS_TOKEN": "EAAattributionplatformtoken0000000",
        "WHATSAPP_PHONE_NUMBER_ID": platform_number,
        "WHATSAPP_APP_SECRET": PLATFORM_SECRET,
        "WHATSAPP_VERIFY_TOKEN": "attribution-platform-verify-0123",
        "WHATSAPP_API_BASE_URL": "https://graph.test",
    }
    http = HttpClients(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    started = await bootstrap(
        Settings.from_env(env),
        Database(database_url, KeyRing.generate("attribution")),
        listen=False,
        check_keys=False,
        http=http,
    )
    try:
        yield started
    finally:
        await started.aclose()


Post = Callable[..., Awaitable[httpx.Response]]
Rows = Callable[..., Awaitable[list[dict[str, Any]]]]
Tenant = Callable[..., Awaitable[tuple[uuid.UUID, str, str]]]


@pytest.fixture
async def post(service: Service) -> AsyncIterator[Post]:
    app = create_app(service.settings, service=service, role="all")
    app.state.service = service
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

        async def send(payload: dict[str, Any], *, secret: str) -> httpx.Response:
            body = encode(payload)
            headers = signed_headers(body, secret)
            return await client.post("/webhooks/whatsapp", content=body, headers=headers)

        yield send


@pytest.fixture
def tenant(service: Service) -> Tenant:
    """``await tenant(app_secret=...)``: a tenant owning (a confirmed claim on) a fresh number
    of a fresh WhatsApp Business Account; returns ``(tenant_id, phone_number_id, waba_id)``."""

    async def make(*, app_secret: str | None = None) -> tuple[uuid.UUID, str, str]:
        made = await service.storage.store.create_tenant("Sucursal")
        pnid, waba = new_number(), new_number()
        secrets = {"accessToken": "EAAattributiontenant" + uuid.uuid4().hex}
        if app_secret:
            secrets["appSecret"] = app_secret
        credential = Credential(
            made.id,
            IntegrationType.WHATSAPP,
            "meta",
            Secrets(secrets),
            {"phoneNumberId": pnid, "businessAccountId": waba},
        )
        number = WhatsAppNumber(made.id, pnid, business_account_id=waba)  # as Graph confirmed
        await service.storage.store.save_credential(credential, number)
        service.resolver.invalidate_tenant(made.id)
        if service.storage.apps is not None:
            service.storage.apps.on_change(Change(tenant_id=made.id))
        return made.id, pnid, waba

    return make


@pytest.fixture
def rows(service: Service) -> Rows:
    async def query(sql: str, params: Any = None) -> list[dict[str, Any]]:
        async with service.storage.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            if cur.description is None:
                return []
            names = [c.name for c in cur.description]
            return [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]

    return query


async def inbound(rows: Rows, wamid: str) -> dict[str, Any]:
    [row] = await rows(
        "SELECT route, tenant_id, phone_number_id, state FROM whatsapp_inbound_messages "
        "WHERE wamid = %s",
        (wamid,),
    )
    return row


# --- item 7: a correctly signed batch is not lost -------------------------------------------


async def test_a_batch_naming_an_unclaimed_number_of_the_tenants_account_is_stored(
    post: Post, tenant: Tenant, rows: Rows
) -> None:
    tenant_id, own, waba = await tenant(app_secret=SECRET_A)
    unclaimed = new_number()  # the shop's second branch, never connected here
    mine, theirs = text_message("¿Abren hoy?"), text_message("¿Y la otra sucursal?")
    batch = webhook(
        change(own, messages=[mine]), change(unclaimed, messages=[theirs]), waba_id=waba
    )

    response = await post(batch, secret=SECRET_A)

    assert response.status_code == 200, response.text
    assert await inbound(rows, mine["id"]) == {
        "route": "tenant",
        "tenant_id": tenant_id,
        "phone_number_id": own,
        "state": "pending",
    }
    assert await inbound(rows, theirs["id"]) == {
        "route": "unrouted",
        "tenant_id": None,
        "phone_number_id": unclaimed,
        "state": "ignored",
    }


async def test_the_platforms_secret_does_not_sign_for_a_tenants_account(
    post: Post, tenant: Tenant, rows: Rows
) -> None:
    _, own, waba = await tenant(app_secret=SECRET_A)
    unclaimed = new_number()
    both = webhook(
        change(own, messages=[text_message("a")]),
        change(unclaimed, messages=[text_message("b")]),
        waba_id=waba,
    )
    forged = text_message("forged by whoever holds the platform's secret")
    only_unclaimed = webhook(change(unclaimed, messages=[forged]), waba_id=waba)

    assert (await post(both, secret=PLATFORM_SECRET)).status_code == 401
    assert (await post(only_unclaimed, secret=PLATFORM_SECRET)).status_code == 401
    found = "SELECT 1 FROM whatsapp_inbound_messages WHERE wamid = %s"
    assert await rows(found, (forged["id"],)) == []


async def test_an_unclaimed_number_of_an_account_nobody_owns_is_still_the_platforms_to_sign(
    post: Post, rows: Rows
) -> None:
    stray = text_message("hola")
    body = webhook(change(new_number(), messages=[stray]), waba_id=new_number())

    assert (await post(body, secret=SECRET_A)).status_code == 401
    assert (await post(body, secret=PLATFORM_SECRET)).status_code == 200
    assert (await inbound(rows, stray["id"]))["route"] == "unrouted"


async def test_an_account_level_event_is_stored_with_the_tenant_that_owns_the_account(
    post: Post, tenant: Tenant, rows: Rows
) -> None:
    own_app, _, own_waba = await tenant(app_secret=SECRET_A)
    shared_app, _, shared_waba = await tenant()  # on the platform's Meta app
    marker = uuid.uuid4().hex
    template = other_field("message_template_status_update", {"event": "APPROVED", "m": marker})
    account = other_field("account_update", {"event": "VERIFIED_ACCOUNT", "m": marker})

    assert (await post(webhook(template, waba_id=own_waba), secret=SECRET_A)).status_code == 200
    shared = webhook(account, waba_id=shared_waba)
    assert (await post(shared, secret=PLATFORM_SECRET)).status_code == 200

    found = await rows(
        "SELECT field, waba_id, tenant_id FROM whatsapp_webhook_events "
        "WHERE payload->>'m' = %s ORDER BY id",
        (marker,),
    )
    assert found == [
        {"field": "message_template_status_update", "waba_id": own_waba, "tenant_id": own_app},
        {"field": "account_update", "waba_id": shared_waba, "tenant_id": shared_app},
    ]


# --- item 9: statuses do not cross tenants ----------------------------------------------------


async def reply_of(rows: Rows, tenant_id: uuid.UUID, pnid: str, wamid: str) -> None:
    """An outbound reply of ``tenant_id`` from ``pnid``, as the worker records it once sent."""
    await rows(
        "INSERT INTO whatsapp_outbound_messages "
        "(tenant_id, phone_number_id, recipient, text, wamid, status) "
        "VALUES (%s, %s, %s, 'Sí, de 9 a 18.', %s, 'sent')",
        (tenant_id, pnid, CUSTOMER, wamid),
    )


async def outbound_status(rows: Rows, wamid: str) -> tuple[str, int | None]:
    [row] = await rows(
        "SELECT status, error_code FROM whatsapp_outbound_messages WHERE wamid = %s", (wamid,)
    )
    return row["status"], row["error_code"]


async def test_a_tenant_cannot_fail_another_tenants_message_with_its_own_signature(
    post: Post, tenant: Tenant, rows: Rows
) -> None:
    _, number_a, waba_a = await tenant(app_secret=SECRET_A)
    tenant_b, number_b, waba_b = await tenant(app_secret=SECRET_B)
    victim = new_wamid()
    await reply_of(rows, tenant_b, number_b, victim)

    attack = webhook(change(number_a, statuses=[status(victim, "failed")]), waba_id=waba_a)
    response = await post(attack, secret=SECRET_A)

    assert response.status_code in (200, 401), response.text
    assert await outbound_status(rows, victim) == ("sent", None)

    genuine = webhook(change(number_b, statuses=[status(victim, "delivered")]), waba_id=waba_b)
    for _ in range(2):
        assert (await post(genuine, secret=SECRET_B)).status_code == 200
    assert await outbound_status(rows, victim) == ("delivered", None)
    stored = await rows(
        "SELECT status FROM whatsapp_message_statuses WHERE wamid = %s AND phone_number_id = %s",
        (victim, number_b),
    )
    assert stored == [{"status": "delivered"}]


async def test_a_status_pre_claimed_from_another_number_does_not_drop_the_genuine_one(
    post: Post, tenant: Tenant, rows: Rows
) -> None:
    _, number_a, waba_a = await tenant(app_secret=SECRET_A)
    tenant_b, number_b, waba_b = await tenant(app_secret=SECRET_B)
    victim = new_wamid()
    await reply_of(rows, tenant_b, number_b, victim)

    squat = webhook(change(number_a, statuses=[status(victim, "read")]), waba_id=waba_a)
    assert (await post(squat, secret=SECRET_A)).status_code in (200, 401)
    genuine = webhook(change(number_b, statuses=[status(victim, "failed")]), waba_id=waba_b)
    assert (await post(genuine, secret=SECRET_B)).status_code == 200

    assert await outbound_status(rows, victim) == ("failed", 131049)


async def test_a_status_from_another_number_that_came_first_is_not_applied_later(
    post: Post, tenant: Tenant, rows: Rows, service: Service
) -> None:
    _, number_a, waba_a = await tenant(app_secret=SECRET_A)
    tenant_b, number_b, _ = await tenant(app_secret=SECRET_B)
    victim = new_wamid()  # B's reply, not recorded yet: Meta can be faster than the worker

    early = entries({waba_a: [change(number_a, statuses=[status(victim, "failed")])]})
    assert (await post(early, secret=SECRET_A)).status_code in (200, 401)
    await reply_of(rows, tenant_b, number_b, victim)
    async with service.storage.pool.connection() as conn:
        changed = await apply_statuses(conn, [victim])

    assert changed == []
    assert await outbound_status(rows, victim) == ("sent", None)


# --- conversations (issue 12): edits, deletions and the owner's messages ----------------------


def echo_change(pnid: str, customer: str, text: str) -> dict[str, Any]:
    """An ``smb_message_echoes`` change: the owner wrote ``text`` to ``customer``."""
    return {
        "field": "smb_message_echoes",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid},
            "message_echoes": [
                {
                    "from": "15550783881",
                    "to": customer,
                    "id": new_wamid(),
                    "timestamp": "1739321024",
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        },
    }


async def conversation_state(rows: Rows, pnid: str, phone: str) -> str:
    [row] = await rows(
        "SELECT v.state FROM whatsapp_conversations v JOIN whatsapp_contacts c"
        " ON c.id = v.contact_id WHERE c.phone_number_id = %s AND c.phone = %s",
        (pnid, phone),
    )
    return str(row["state"])


async def test_a_customer_can_neither_delete_nor_edit_another_customers_message(
    post: Post, tenant: Tenant, rows: Rows
) -> None:
    _, own, waba = await tenant(app_secret=SECRET_A)
    victim = text_message("quiero 3 kilos", sender="5215511111111")
    assert (
        await post(webhook(change(own, messages=[victim]), waba_id=waba), secret=SECRET_A)
    ).status_code == 200
    forged = [
        {
            "from": "5215522222222",
            "id": new_wamid(),
            "timestamp": "1750090702",
            "type": "revoke",
            "revoke": {"original_message_id": victim["id"]},
        },
        {
            "from": "5215522222222",
            "id": new_wamid(),
            "timestamp": "1750090702",
            "type": "edit",
            "edit": {
                "original_message_id": victim["id"],
                "message": {"type": "text", "text": {"body": "cancela todo"}},
            },
        },
    ]

    response = await post(webhook(change(own, messages=forged), waba_id=waba), secret=SECRET_A)

    assert response.status_code == 200
    [row] = await rows(
        "SELECT state, text, edited_at, revoked_at FROM whatsapp_inbound_messages WHERE wamid = %s",
        (victim["id"],),
    )
    assert row == {
        "state": "pending",
        "text": "quiero 3 kilos",
        "edited_at": None,
        "revoked_at": None,
    }


async def test_the_owners_message_signed_by_another_tenants_app_hands_nothing_over(
    post: Post, tenant: Tenant, rows: Rows
) -> None:
    _, own, waba = await tenant(app_secret=SECRET_A)
    await tenant(app_secret=SECRET_B)
    said = text_message("hola", sender=CUSTOMER)
    await post(webhook(change(own, messages=[said]), waba_id=waba), secret=SECRET_A)

    forged = webhook(echo_change(own, CUSTOMER, "yo atiendo"), waba_id=waba)
    response = await post(forged, secret=SECRET_B)

    assert response.status_code == 401
    assert await conversation_state(rows, own, CUSTOMER) == "bot"
    assert (
        await rows("SELECT 1 FROM whatsapp_outbound_messages WHERE phone_number_id = %s", (own,))
        == []
    )


async def test_the_owners_message_hands_over_that_numbers_conversation_only(
    post: Post, tenant: Tenant, rows: Rows
) -> None:
    _, first, waba_a = await tenant(app_secret=SECRET_A)
    _, second, waba_b = await tenant(app_secret=SECRET_B)
    for pnid, waba, secret in ((first, waba_a, SECRET_A), (second, waba_b, SECRET_B)):
        said = text_message("hola", sender=CUSTOMER)
        await post(webhook(change(pnid, messages=[said]), waba_id=waba), secret=secret)

    response = await post(
        webhook(echo_change(first, CUSTOMER, "yo atiendo"), waba_id=waba_a), secret=SECRET_A
    )

    assert response.status_code == 200
    assert await conversation_state(rows, first, CUSTOMER) == "human"
    assert await conversation_state(rows, second, CUSTOMER) == "bot"
