"""Numbers nobody owns are remembered for a second at most: their bodies cost no lookup each,
and a claim confirmed in another process routes to its tenant within a second, with or
without its change notification."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from whatsapp_webhook_fixtures import PLATFORM_SECRET, new_number, platform_env

from changarrito.adapters.cache import UnknownNumbers
from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.http import HttpClients
from changarrito.adapters.postgres.pool import open_pool
from changarrito.adapters.postgres.store import PostgresStore
from changarrito.bootstrap import Database, Service, bootstrap
from changarrito.domain.model import Credential, IntegrationType, Secrets, WhatsAppNumber
from changarrito.domain.whatsapp import RouteKind
from changarrito.settings import Settings
from whatsapp_payloads import change, encode, sign, text_message, webhook


async def _service(database_url: str, *, listen: bool) -> Service:
    return await bootstrap(
        Settings.from_env(platform_env()),
        Database(database_url, KeyRing.generate("wa")),
        listen=listen,
        check_keys=False,
        http=HttpClients(transport=httpx.MockTransport(lambda r: httpx.Response(500))),
    )


@pytest.fixture
async def listening(database_url: str) -> AsyncIterator[Service]:
    service = await _service(database_url, listen=True)
    try:
        yield service
    finally:
        await service.aclose()


@pytest.fixture
async def deaf(database_url: str) -> AsyncIterator[Service]:
    """A service whose change listener never runs: every notification is lost to it."""
    service = await _service(database_url, listen=False)
    try:
        yield service
    finally:
        await service.aclose()


async def _route(service: Service, pnid: str) -> tuple[RouteKind, uuid.UUID | None]:
    body = encode(webhook(change(pnid, messages=[text_message()])))
    received = await service.webhook.receive(body, sign(body, PLATFORM_SECRET))
    (message,) = received.intake.messages
    return message.route, message.tenant_id


def _store(service: Service) -> PostgresStore:
    store = service.storage.store
    assert isinstance(store, PostgresStore)
    return store


async def _claim_elsewhere(service: Service, database_url: str, pnid: str) -> uuid.UUID:
    """Creates a tenant and claims ``pnid`` for it, confirmed, through a pool of its own (as
    another process would)."""
    pool = await open_pool(database_url, max_size=2)
    try:
        assert service.storage.cipher is not None
        other = PostgresStore(pool, service.storage.cipher)
        tenant = await other.create_tenant("Llegó después")
        account = new_number()
        credential = Credential(
            tenant.id,
            IntegrationType.WHATSAPP,
            "meta",
            Secrets({"accessToken": "EAAclaimedlater" + uuid.uuid4().hex}),
            {"phoneNumberId": pnid, "businessAccountId": account},
            is_verified=True,
        )
        await other.save_credential(
            credential, WhatsAppNumber(tenant.id, pnid, business_account_id=account)
        )
        return tenant.id
    finally:
        await pool.close()


async def _routes_to(service: Service, pnid: str, tenant_id: uuid.UUID, within: float) -> float:
    """Seconds until ``pnid``'s bodies route to ``tenant_id`` (fails past ``within``)."""
    start = time.monotonic()
    while (route := await _route(service, pnid)) != (RouteKind.TENANT, tenant_id):
        assert route == (RouteKind.UNROUTED, None)
        assert time.monotonic() - start < within, "the claim did not route in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_bodies_for_an_unknown_number_cost_no_lookup_after_the_first(
    deaf: Service,
) -> None:
    pnid = new_number()
    assert await _route(deaf, pnid) == (RouteKind.UNROUTED, None)
    pool = deaf.storage.pool
    assert pool is not None
    before = pool.get_stats().get("requests_num", 0)
    for _ in range(5):
        assert await _route(deaf, pnid) == (RouteKind.UNROUTED, None)
    # Five bodies stored (a checkout each for their commit), no checkout to look the number up.
    assert pool.get_stats().get("requests_num", 0) - before == 5


async def test_a_number_claimed_in_another_process_routes_to_its_tenant_at_once(
    listening: Service, database_url: str
) -> None:
    pnid = new_number()
    assert await _route(listening, pnid) == (RouteKind.UNROUTED, None)
    assert pnid in _store(listening).unknown
    tenant_id = await _claim_elsewhere(listening, database_url, pnid)
    assert await _routes_to(listening, pnid, tenant_id, within=1.0) < 0.5


async def test_a_claim_whose_notification_was_lost_routes_within_a_second(
    deaf: Service, database_url: str
) -> None:
    pnid = new_number()
    assert await _route(deaf, pnid) == (RouteKind.UNROUTED, None)
    tenant_id = await _claim_elsewhere(deaf, database_url, pnid)
    assert await _routes_to(deaf, pnid, tenant_id, within=1.2) <= 1.05


async def test_a_claim_in_this_process_routes_at_once(deaf: Service) -> None:
    pnid = new_number()
    assert await _route(deaf, pnid) == (RouteKind.UNROUTED, None)
    store = _store(deaf)
    tenant = await store.create_tenant("Aquí mismo")
    credential = Credential(
        tenant.id,
        IntegrationType.WHATSAPP,
        "meta",
        Secrets({"accessToken": "EAAclaimedhere" + uuid.uuid4().hex}),
        {"phoneNumberId": pnid},
    )
    await store.save_credential(credential, WhatsAppNumber(tenant.id, pnid))
    deaf.resolver.invalidate_tenant(tenant.id)
    assert await _route(deaf, pnid) == (RouteKind.TENANT, tenant.id)


async def test_a_flood_of_random_numbers_keeps_a_bounded_number_of_them(deaf: Service) -> None:
    store = _store(deaf)
    store.unknown = UnknownNumbers(maxsize=50)
    for _ in range(300):
        assert await _route(deaf, new_number()) == (RouteKind.UNROUTED, None)
    assert len(store.unknown) == 50


async def test_concurrent_lookups_of_one_number_share_one_round_trip(deaf: Service) -> None:
    store = _store(deaf)
    pool = deaf.storage.pool
    assert pool is not None
    pnid = new_number()
    before = pool.get_stats().get("requests_num", 0)
    answers = await asyncio.gather(*(store.number_with_credentials(pnid) for _ in range(50)))
    assert answers == [(None, [])] * 50
    assert pool.get_stats().get("requests_num", 0) - before == 1
    assert len(store._lookups) == 0
