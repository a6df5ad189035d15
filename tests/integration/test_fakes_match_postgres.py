"""The in-memory fakes (``tests/fakes/memory.py``) behave like the PostgreSQL adapters.

Every test runs twice through the ``ports`` fixture: on the fakes and on the real adapters
(a shared database: each test creates its own tenants, numbers, links and wamids). Both runs
make the same assertions, error classes and ``code``s included, so a rule of the API that a
fakes-only service test relies on holds on PostgreSQL too. The fakes' run needs no database.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID, uuid4

import pytest

from changarrito.adapters.crypto.aesgcm import AesGcmCipher
from changarrito.adapters.postgres.audit import PostgresAuditLog
from changarrito.adapters.postgres.group_commit import GroupCommit
from changarrito.adapters.postgres.message_log import PostgresMessageLog
from changarrito.adapters.postgres.migrate import PostgresSchema
from changarrito.adapters.postgres.payments import PostgresPaymentStore
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.store import PostgresStore
from changarrito.adapters.postgres.whatsapp_apps import WhatsAppApps
from changarrito.domain.chat import Attachment, Reply, Transcript, Usage
from changarrito.domain.errors import (
    ChangarritoError,
    Conflict,
    NotConfigured,
    StorageUnavailable,
    TenantNotFound,
    ValidationFailed,
)
from changarrito.domain.media import MediaItem
from changarrito.domain.model import (
    AuditEntry,
    Credential,
    IntegrationType,
    Secrets,
    Source,
    WhatsAppNumber,
)
from changarrito.domain.payments import PaymentEventRecord, PaymentLinkRecord
from changarrito.domain.ports import (
    AuditLog,
    CredentialStore,
    IntakeStore,
    MessageLog,
    PaymentStore,
    SchemaState,
    TenantStore,
    WhatsAppAppIndex,
)
from changarrito.domain.queued import QueuedMessage
from changarrito.domain.whatsapp import (
    Customer,
    InboundMessage,
    Intake,
    RouteKind,
    StatusUpdate,
)
from fakes.memory import (
    MemoryAuditLog,
    MemoryIntake,
    MemoryMessageLog,
    MemoryPaymentStore,
    MemorySchema,
    MemoryStore,
    MemoryWhatsAppApps,
)

WHATSAPP, LLM, PAYMENTS = IntegrationType.WHATSAPP, IntegrationType.LLM, IntegrationType.PAYMENTS


class Store(TenantStore, CredentialStore, Protocol):
    """Both store ports, as one object."""


@dataclass
class Ports:
    """One implementation of every port, plus what a test needs to look at what it stored."""

    store: Store
    audit: AuditLog
    payments: PaymentStore
    intake: IntakeStore
    schema: SchemaState
    #: A fresh index of the tenants' Meta apps (the Postgres one caches what it loaded).
    apps: Callable[[], WhatsAppAppIndex]
    #: The tenant's stored audit entries, oldest first.
    audit_of: Callable[[UUID], Awaitable[list[AuditEntry]]]
    #: How many statuses are stored for a wamid.
    statuses_of: Callable[[str], Awaitable[int]]
    messages: MessageLog
    #: A stored inbound message (by wamid) as a worker claims it.
    queued: Callable[[str], Awaitable[QueuedMessage]]
    #: The status of the reply part Meta knows by this wamid.
    status_of: Callable[[str], Awaitable[str | None]]


@pytest.fixture(params=["memory", "postgres"])
def ports(request: pytest.FixtureRequest) -> Ports:
    """The fakes, or the PostgreSQL adapters (only these need the database)."""
    if request.param == "postgres":
        found: Ports = request.getfixturevalue("postgres_ports")
        return found
    return memory_ports()


def memory_ports() -> Ports:
    store = MemoryStore()
    audit = MemoryAuditLog()
    intake = MemoryIntake()
    log = MemoryMessageLog(intake)

    async def audit_of(tenant_id: UUID) -> list[AuditEntry]:
        return audit.of(tenant_id)

    async def statuses_of(wamid: str) -> int:
        return sum(1 for w, _, _ in intake.statuses if w == wamid)

    async def queued(wamid: str) -> QueuedMessage:
        return intake.queued(wamid)

    async def status_of(wamid: str) -> str | None:
        return log.status_of(wamid)

    return Ports(
        store=store,
        audit=audit,
        payments=MemoryPaymentStore(store),
        intake=intake,
        schema=MemorySchema(),
        apps=lambda: MemoryWhatsAppApps(store),
        audit_of=audit_of,
        statuses_of=statuses_of,
        messages=log,
        queued=queued,
        status_of=status_of,
    )


@pytest.fixture
async def postgres_ports(pool: Pool, cipher: AesGcmCipher) -> AsyncIterator[Ports]:
    """The adapters as ``bootstrap.postgres_storage`` builds them."""
    group = GroupCommit(pool)

    async def audit_of(tenant_id: UUID) -> list[AuditEntry]:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT tenant_id, actor, integration, action, provider, outcome, client_ip, "
                "user_agent, details, created_at FROM integration_audit_log "
                "WHERE tenant_id = %(t)s ORDER BY id",
                {"t": tenant_id},
            )
            return [AuditEntry(*row) for row in await cur.fetchall()]

    async def statuses_of(wamid: str) -> int:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM whatsapp_message_statuses WHERE wamid = %(w)s", {"w": wamid}
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def queued(wamid: str) -> QueuedMessage:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, wamid, phone_number_id, tenant_id, type, text, sent_at, 1, "
                "customer_id, customer_phone, customer_user_id "
                "FROM whatsapp_inbound_messages WHERE wamid = %(w)s",
                {"w": wamid},
            )
            row = await cur.fetchone()
        assert row is not None
        return QueuedMessage(*row)

    async def status_of(wamid: str) -> str | None:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT status FROM whatsapp_outbound_messages WHERE wamid = %(w)s", {"w": wamid}
            )
            row = await cur.fetchone()
        return str(row[0]) if row else None

    try:
        yield Ports(
            store=PostgresStore(pool, cipher),
            audit=PostgresAuditLog(pool),
            payments=PostgresPaymentStore(pool),
            intake=group,
            schema=PostgresSchema(pool),
            apps=lambda: WhatsAppApps(pool, cipher),
            audit_of=audit_of,
            statuses_of=statuses_of,
            messages=PostgresMessageLog(pool),
            queued=queued,
            status_of=status_of,
        )
    finally:
        await group.aclose()


def test_every_fake_has_every_method_of_its_port_with_the_same_parameters() -> None:
    """Also checked statically (mypy) by ``Ports``; this one runs with the tests."""
    fakes: list[tuple[type, type]] = [
        (MemoryStore, TenantStore),
        (MemoryStore, CredentialStore),
        (MemoryAuditLog, AuditLog),
        (MemoryPaymentStore, PaymentStore),
        (MemoryIntake, IntakeStore),
        (MemoryWhatsAppApps, WhatsAppAppIndex),
        (MemorySchema, SchemaState),
        (MemoryMessageLog, MessageLog),
    ]
    for fake, port in fakes:
        methods = {
            name
            for klass in port.__mro__
            if klass.__module__.startswith("changarrito.")
            for name, value in vars(klass).items()
            if inspect.isfunction(value) and not name.startswith("_")
        }
        assert methods, port
        for name in sorted(methods):
            assert (fake.__name__, name, parameters(getattr(fake, name))) == (
                fake.__name__,
                name,
                parameters(getattr(port, name)),
            )
            is_async = inspect.iscoroutinefunction
            assert is_async(getattr(fake, name)) == is_async(getattr(port, name)), name


def parameters(function: Callable[..., object]) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


async def raised(call: Coroutine[Any, Any, object]) -> tuple[type[ChangarritoError], str]:
    """The class and ``code`` of the domain error ``call`` raises (it must raise one)."""
    try:
        await call
    except ChangarritoError as error:
        return type(error), error.code
    raise AssertionError("no error was raised")


def unique(prefix: str) -> str:
    return prefix + secrets.token_hex(6)


def llm(tenant_id: UUID, key: str = "sk-test-000000", **fields: Any) -> Credential:
    return Credential(tenant_id, LLM, "openai", Secrets({"apiKey": key}), {"model": "m"}, **fields)


def whatsapp(
    tenant_id: UUID, phone_number_id: str, **secrets_: str
) -> tuple[Credential, WhatsAppNumber]:
    credential = Credential(
        tenant_id,
        WHATSAPP,
        "meta",
        Secrets({"accessToken": unique("EAA"), **secrets_}),
        {"phoneNumberId": phone_number_id},
    )
    return credential, WhatsAppNumber(tenant_id, phone_number_id, display_name="Shop")


# --- tenants ------------------------------------------------------------------------------------


async def test_a_new_tenant_is_read_back_with_its_name_trimmed_and_listed(ports: Ports) -> None:
    first = await ports.store.create_tenant("  Tacos Lupita ")
    second = await ports.store.create_tenant("Ferretería")
    assert first.name == "Tacos Lupita"
    assert await ports.store.get_tenant(first.id) == first
    mine = [t for t in await ports.store.list_tenants() if t.id in (first.id, second.id)]
    assert mine == sorted([first, second], key=lambda t: (t.created_at, t.id))


async def test_a_blank_tenant_name_is_a_validation_error(ports: Ports) -> None:
    assert await raised(ports.store.create_tenant("   ")) == (ValidationFailed, "validation")


async def test_an_unknown_tenant_is_tenant_not_found_for_every_store_call(ports: Ports) -> None:
    nobody = uuid4()
    store = ports.store
    calls: list[Coroutine[Any, Any, object]] = [
        store.get_tenant(nobody),
        store.delete_tenant(nobody),
        store.credentials_for(nobody),
        store.numbers_for(nobody),
        store.delete_credentials(nobody, LLM),
        store.set_verified(nobody, LLM, "openai", True),
        store.save_credential(llm(nobody)),
    ]
    for call in calls:
        error, code = await raised(call)
        assert (error, code) == (TenantNotFound, "tenant-not-found")


# --- credentials ----------------------------------------------------------------------------


async def test_saving_the_same_integration_again_replaces_it_and_keeps_its_id(
    ports: Ports,
) -> None:
    tenant = await ports.store.create_tenant("shop")
    first = await ports.store.save_credential(llm(tenant.id, "sk-first-0000"))
    again = await ports.store.save_credential(llm(tenant.id, "sk-second-000", priority=3))
    assert (again.id, again.created_at) == (first.id, first.created_at)
    assert again.updated_at >= first.updated_at
    [stored] = await ports.store.credentials_for(tenant.id)
    assert stored.id == first.id
    assert stored.secrets.reveal() == {"apiKey": "sk-second-000"}
    assert (stored.priority, dict(stored.config)) == (3, {"model": "m"})


async def test_credentials_come_lowest_priority_first_then_newest(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    store = ports.store
    await store.save_credential(llm(tenant.id, priority=1))
    await store.save_credential(Credential(tenant.id, LLM, "anthropic", Secrets({"apiKey": "k"})))
    await store.save_credential(Credential(tenant.id, PAYMENTS, "stripe", Secrets({"apiKey": "k"})))
    everything = await store.credentials_for(tenant.id)
    assert [c.provider for c in everything] == ["stripe", "anthropic", "openai"]
    assert [c.provider for c in await store.credentials_for(tenant.id, LLM)] == [
        "anthropic",
        "openai",
    ]
    assert all(isinstance(c.integration_type, IntegrationType) for c in everything)


async def test_marking_a_credential_verified_and_unverified(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    await ports.store.save_credential(llm(tenant.id))
    await ports.store.set_verified(tenant.id, LLM, "openai", True)
    [ok] = await ports.store.credentials_for(tenant.id)
    assert ok.is_verified and ok.verified_at is not None and ok.verification_error is None
    await ports.store.set_verified(tenant.id, LLM, "openai", False, "key revoked")
    [bad] = await ports.store.credentials_for(tenant.id)
    assert (bad.is_verified, bad.verified_at, bad.verification_error) == (
        False,
        None,
        "key revoked",
    )


async def test_verifying_a_credential_that_is_not_stored_is_not_configured(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    error, code = await raised(ports.store.set_verified(tenant.id, LLM, "openai", True))
    assert (error, code) == (NotConfigured, "not-configured")


async def test_deleting_credentials_counts_them_and_only_touches_the_asked_type(
    ports: Ports,
) -> None:
    tenant = await ports.store.create_tenant("shop")
    await ports.store.save_credential(llm(tenant.id))
    await ports.store.save_credential(Credential(tenant.id, LLM, "anthropic", Secrets({"k": "v"})))
    await ports.store.save_credential(
        Credential(tenant.id, PAYMENTS, "stripe", Secrets({"k": "v"}))
    )
    assert await ports.store.delete_credentials(tenant.id, LLM, "openai") == 1
    assert await ports.store.delete_credentials(tenant.id, LLM) == 1
    assert await ports.store.delete_credentials(tenant.id, LLM) == 0
    assert [c.provider for c in await ports.store.credentials_for(tenant.id)] == ["stripe"]


# --- WhatsApp numbers ------------------------------------------------------------------------


async def test_a_number_claimed_by_another_tenant_is_a_conflict(ports: Ports) -> None:
    owner = await ports.store.create_tenant("owner")
    other = await ports.store.create_tenant("other")
    pnid = unique("pn")
    await ports.store.save_credential(*whatsapp(owner.id, pnid))
    error, code = await raised(ports.store.save_credential(*whatsapp(other.id, pnid)))
    assert (error, code) == (Conflict, "conflict")
    # The credential of the refused request was not stored either (one transaction).
    assert await ports.store.credentials_for(other.id) == []
    found = await ports.store.number_owner(pnid)
    assert found is not None and found.tenant_id == owner.id


async def test_a_number_of_another_tenant_in_the_request_is_a_validation_error(
    ports: Ports,
) -> None:
    tenant = await ports.store.create_tenant("shop")
    other = await ports.store.create_tenant("other")
    credential, _ = whatsapp(tenant.id, "x")
    number = WhatsAppNumber(other.id, unique("pn"))
    error, code = await raised(ports.store.save_credential(credential, number))
    assert (error, code) == (ValidationFailed, "validation")


async def test_claiming_its_own_number_again_updates_it_and_keeps_its_id(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    pnid = unique("pn")
    credential, number = whatsapp(tenant.id, pnid)
    await ports.store.save_credential(credential, number)
    first = await ports.store.number_owner(pnid)
    renamed = WhatsAppNumber(tenant.id, pnid, "+52 55", "Tacos", is_active=False)
    await ports.store.save_credential(credential, renamed)
    again = await ports.store.number_owner(pnid)
    assert first is not None and again is not None
    assert again == WhatsAppNumber(tenant.id, pnid, "+52 55", "Tacos", False, id=first.id)


async def test_a_tenants_numbers_are_listed_in_the_order_they_were_claimed(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    first, second = unique("pn"), unique("pn")
    await ports.store.save_credential(*whatsapp(tenant.id, first))
    await ports.store.save_credential(*whatsapp(tenant.id, second))
    numbers = await ports.store.numbers_for(tenant.id)
    assert [n.phone_number_id for n in numbers] == [first, second]
    empty = await ports.store.create_tenant("no numbers")
    assert await ports.store.numbers_for(empty.id) == []


async def test_a_number_comes_with_its_owners_whatsapp_credentials_only(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    pnid = unique("pn")
    credential, number = whatsapp(tenant.id, pnid)
    await ports.store.save_credential(replace_active(credential, False), number)
    await ports.store.save_credential(llm(tenant.id))
    owner, stored = await ports.store.number_with_credentials(pnid)
    assert owner is not None and owner.tenant_id == tenant.id
    assert [(c.integration_type, c.provider, c.is_active) for c in stored] == [
        (WHATSAPP, "meta", False)
    ]
    assert stored[0].secrets == credential.secrets
    assert await ports.store.number_with_credentials(unique("pn")) == (None, [])
    assert await ports.store.number_owner(unique("pn")) is None


def replace_active(credential: Credential, active: bool) -> Credential:
    return Credential(
        credential.tenant_id,
        credential.integration_type,
        credential.provider,
        credential.secrets,
        credential.config,
        is_active=active,
    )


async def test_deleting_whatsapp_credentials_releases_the_tenants_numbers(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    other = await ports.store.create_tenant("next owner")
    pnid = unique("pn")
    await ports.store.save_credential(*whatsapp(tenant.id, pnid))
    assert await ports.store.delete_credentials(tenant.id, WHATSAPP) == 1
    assert await ports.store.numbers_for(tenant.id) == []
    assert await ports.store.number_owner(pnid) is None
    await ports.store.save_credential(*whatsapp(other.id, pnid))
    found = await ports.store.number_owner(pnid)
    assert found is not None and found.tenant_id == other.id


async def test_deleting_a_tenant_deletes_its_credentials_and_numbers(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    other = await ports.store.create_tenant("next owner")
    pnid = unique("pn")
    await ports.store.save_credential(*whatsapp(tenant.id, pnid))
    await ports.store.save_credential(llm(tenant.id))
    await ports.store.delete_tenant(tenant.id)
    error, code = await raised(ports.store.get_tenant(tenant.id))
    assert (error, code) == (TenantNotFound, "tenant-not-found")
    assert tenant.id not in {t.id for t in await ports.store.list_tenants()}
    assert await ports.store.number_with_credentials(pnid) == (None, [])
    await ports.store.save_credential(*whatsapp(other.id, pnid))


# --- the audit log ------------------------------------------------------------------------------


async def test_an_audit_entry_is_stored_as_given_with_a_long_user_agent_cut(
    ports: Ports,
) -> None:
    tenant_id = uuid4()  # no tenant needed: the record outlives a deleted tenant
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    entry = AuditEntry(
        tenant_id,
        "user-1",
        "llm",
        "configure",
        provider="openai",
        client_ip="203.0.113.7",
        user_agent="x" * 600,
        details={"fields": ["apiKey"]},
        at=at,
    )
    await ports.audit.record(entry)
    await ports.audit.record(AuditEntry(tenant_id, "user-1", "llm", "delete", at=at))
    first, second = await ports.audit_of(tenant_id)
    assert first.user_agent == "x" * 512
    assert (first.actor, first.action, first.provider, first.client_ip) == (
        "user-1",
        "configure",
        "openai",
        "203.0.113.7",
    )
    assert (dict(first.details), first.at, first.outcome) == ({"fields": ["apiKey"]}, at, "ok")
    assert (second.action, second.user_agent, dict(second.details)) == ("delete", None, {})


# --- payments ---------------------------------------------------------------------------------


def link(tenant_id: UUID, provider_link_id: str | None = None, **fields: Any) -> PaymentLinkRecord:
    values: dict[str, Any] = {
        "provider": "stripe",
        "url": "https://pay.test/" + (provider_link_id or "x"),
        "amount": Decimal("120.50"),
        "currency": "MXN",
        "description": "2 tacos",
        "reference": "order-1",
        "source": Source.TENANT,
    }
    values.update(fields)
    return PaymentLinkRecord(
        tenant_id=tenant_id, provider_link_id=provider_link_id or unique("cs_"), **values
    )


def event(tenant_id: UUID, status: str, **fields: Any) -> PaymentEventRecord:
    """A verified event for the tenant's own account, for ``link()``'s amount and currency."""
    values: dict[str, Any] = {
        "provider": "stripe",
        "event_id": unique("evt_"),
        "type": "checkout.session." + status,
        "payload": {"id": "x"},
        "source": Source.TENANT,
        "amount": Decimal("120.50"),
        "currency": "MXN",
    }
    values.update(fields)
    return PaymentEventRecord(tenant_id=tenant_id, status=status, **values)


def shape(found: PaymentLinkRecord | None) -> tuple[Any, ...] | None:
    if found is None:
        return None
    return (
        found.id,
        found.tenant_id,
        found.provider,
        found.provider_link_id,
        found.url,
        found.amount,
        found.currency,
        found.reference,
        found.source,
        found.status,
    )


async def test_a_saved_link_is_read_back_by_its_tenant_only(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    other = await ports.store.create_tenant("other")
    saved = await ports.payments.save_link(link(tenant.id))
    assert shape(await ports.payments.get_link(tenant.id, saved.id)) == shape(saved)
    assert await ports.payments.get_link(other.id, saved.id) is None
    assert await ports.payments.get_link(tenant.id, uuid4()) is None
    assert (saved.amount, saved.status) == (Decimal("120.50"), "pending")


async def test_saving_the_same_provider_link_again_returns_the_stored_one(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    provider_link_id = unique("cs_")
    first = await ports.payments.save_link(link(tenant.id, provider_link_id))
    retry = link(tenant.id, provider_link_id, url="https://pay.test/other")
    assert shape(await ports.payments.save_link(retry)) == shape(first)
    assert await ports.payments.get_link(tenant.id, retry.id) is None


async def test_a_provider_link_of_another_tenant_is_a_conflict(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    other = await ports.store.create_tenant("other")
    provider_link_id = unique("cs_")
    await ports.payments.save_link(link(tenant.id, provider_link_id))
    error, code = await raised(ports.payments.save_link(link(other.id, provider_link_id)))
    assert (error, code) == (Conflict, "conflict")


async def test_a_link_of_an_unknown_tenant_is_tenant_not_found(ports: Ports) -> None:
    error, code = await raised(ports.payments.save_link(link(uuid4())))
    assert (error, code) == (TenantNotFound, "tenant-not-found")


async def test_an_event_moves_its_link_forward_and_never_back(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    saved = await ports.payments.save_link(link(tenant.id))
    by_link = {"provider_link_id": saved.provider_link_id}
    steps = ["declined", "paid", "pending", "failed", "unknown", "refunded", "paid"]
    seen = []
    for status in steps:
        outcome = await ports.payments.record_event(event(tenant.id, status, **by_link))
        assert not outcome.duplicate and outcome.link is not None
        assert outcome.event.link_id == saved.id == outcome.link.id
        seen.append(outcome.link.status)
    assert seen == ["pending", "paid", "paid", "paid", "paid", "refunded", "refunded"]
    found = await ports.payments.get_link(tenant.id, saved.id)
    assert found is not None and found.status == "refunded"


async def test_a_redelivered_event_is_a_duplicate_and_changes_nothing(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    saved = await ports.payments.save_link(link(tenant.id))
    paid = event(tenant.id, "paid", provider_link_id=saved.provider_link_id)
    assert not (await ports.payments.record_event(paid)).duplicate
    again = await ports.payments.record_event(
        event(tenant.id, "refunded", event_id=paid.event_id, provider_link_id=paid.provider_link_id)
    )
    assert (again.duplicate, again.link) == (True, None)
    found = await ports.payments.get_link(tenant.id, saved.id)
    assert found is not None and found.status == "paid"


async def test_an_event_id_stored_for_another_tenant_is_not_a_duplicate(ports: Ports) -> None:
    """Events are unique per (tenant, provider, event id): another tenant's event with the
    same id claims nothing here."""
    tenant = await ports.store.create_tenant("shop")
    other = await ports.store.create_tenant("other")
    saved = await ports.payments.save_link(link(other.id))
    first = event(tenant.id, "paid")
    await ports.payments.record_event(first)
    outcome = await ports.payments.record_event(
        event(other.id, "paid", event_id=first.event_id, named_link_id=saved.id)
    )
    assert not outcome.duplicate and outcome.link is not None
    assert outcome.link.status == "paid"


async def test_an_event_naming_our_link_id_moves_that_link_and_never_one_by_reference(
    ports: Ports,
) -> None:
    tenant = await ports.store.create_tenant("shop")
    reference = unique("order-")
    older = await ports.payments.save_link(link(tenant.id, reference=reference))
    newest = await ports.payments.save_link(link(tenant.id, reference=reference))
    outcome = await ports.payments.record_event(
        event(tenant.id, "paid", reference=reference, named_link_id=older.id)
    )
    assert outcome.link is not None and outcome.link.id == older.id
    assert outcome.event.link_id == older.id and outcome.link.status == "paid"
    found = await ports.payments.get_link(tenant.id, newest.id)
    assert found is not None and found.status == "pending"


async def test_an_event_about_no_link_of_its_tenant_is_stored_without_one(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    other = await ports.store.create_tenant("other")
    mine = await ports.payments.save_link(link(tenant.id, reference=unique("order-")))
    theirs = await ports.payments.save_link(link(other.id, reference=unique("order-")))
    for about in (
        {"provider_link_id": theirs.provider_link_id},  # another tenant's link
        {"named_link_id": theirs.id},
        {"reference": theirs.reference},
        {"reference": mine.reference},  # a reference names no link
        {"provider_link_id": unique("cs_"), "reference": mine.reference},
        {"named_link_id": uuid4(), "provider_link_id": mine.provider_link_id},  # they disagree
        {"provider": "mercadopago", "provider_link_id": mine.provider_link_id},
        {"named_link_id": mine.id, "amount": Decimal("120.49")},  # less than the link
        {"named_link_id": mine.id, "currency": "USD"},
        {"named_link_id": mine.id, "amount": None},
        {"named_link_id": mine.id, "source": Source.PLATFORM},  # another account verified it
        {},  # names nothing
    ):
        outcome = await ports.payments.record_event(event(tenant.id, "paid", **about))
        assert (outcome.duplicate, outcome.link, outcome.event.link_id) == (False, None, None)
    for owner, saved in ((tenant.id, mine), (other.id, theirs)):
        found = await ports.payments.get_link(owner, saved.id)
        assert found is not None and found.status == "pending"


async def test_an_event_of_an_unknown_tenant_is_tenant_not_found(ports: Ports) -> None:
    error, code = await raised(ports.payments.record_event(event(uuid4(), "paid")))
    assert (error, code) == (TenantNotFound, "tenant-not-found")


async def test_deleting_a_tenant_deletes_its_links(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    other = await ports.store.create_tenant("next")
    saved = await ports.payments.save_link(link(tenant.id))
    await ports.store.delete_tenant(tenant.id)
    assert await ports.payments.get_link(tenant.id, saved.id) is None
    # Its provider link is free again (the row went with the tenant).
    again = await ports.payments.save_link(link(other.id, saved.provider_link_id))
    assert again.tenant_id == other.id


# --- the webhook intake ------------------------------------------------------------------------

SENT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def message(wamid: str, tenant_id: UUID | None = None, **fields: Any) -> InboundMessage:
    values: dict[str, Any] = {
        "phone_number_id": "pn-intake",
        "route": RouteKind.TENANT if tenant_id else RouteKind.PLATFORM,
        "type": "text",
        "customer": Customer(phone="5215512345678"),
        "text": "hola",
        "sent_at": SENT,
        "raw": b'{"id": "x"}',
    }
    values.update(fields)
    return InboundMessage(wamid=wamid, tenant_id=tenant_id, **values)


def status(
    wamid: str,
    value: str,
    minutes: int = 0,
    *,
    phone_number_id: str = "pn-intake",
    tenant_id: UUID | None = None,
) -> StatusUpdate:
    at = SENT + timedelta(minutes=minutes)
    return StatusUpdate(wamid, value, phone_number_id, tenant_id, at, raw=b"{}")


async def test_a_redelivered_message_is_not_new(ports: Ports) -> None:
    one, two, three = unique("wamid."), unique("wamid."), unique("wamid.")
    assert await ports.intake.submit(Intake(messages=[message(one), message(two)])) == {one, two}
    assert await ports.intake.submit(Intake(messages=[message(two), message(three)])) == {three}
    assert await ports.intake.submit(Intake(messages=[message(one)])) == set()


async def test_the_same_message_twice_in_one_webhook_is_new_once(ports: Ports) -> None:
    wamid = unique("wamid.")
    tenant_id = uuid4()  # no foreign key: a message outlives its tenant
    twice = Intake(messages=[message(wamid, tenant_id), message(wamid, tenant_id, text="again")])
    assert await ports.intake.submit(twice) == {wamid}


async def test_a_status_is_stored_once_per_wamid_number_and_status(ports: Ports) -> None:
    wamid = unique("wamid.")
    first = Intake(statuses=[status(wamid, "sent"), status(wamid, "sent", 1)])
    assert await ports.intake.submit(first) == set()
    await ports.intake.submit(Intake(statuses=[status(wamid, "delivered"), status(wamid, "sent")]))
    assert await ports.statuses_of(wamid) == 2
    elsewhere = status(wamid, "sent", phone_number_id=unique("pn"))
    await ports.intake.submit(Intake(statuses=[elsewhere, elsewhere]))
    assert await ports.statuses_of(wamid) == 3


async def test_a_message_routed_to_a_tenant_without_its_id_is_not_stored(ports: Ports) -> None:
    wamid = unique("wamid.")
    broken = Intake(messages=[message(wamid, None, route=RouteKind.TENANT)])
    error, code = await raised(ports.intake.submit(broken))
    assert (error, code) == (StorageUnavailable, "storage-unavailable")
    assert await ports.intake.submit(Intake(messages=[message(wamid)])) == {wamid}


# --- the tenants' Meta apps ----------------------------------------------------------------------


async def test_a_tenants_own_meta_app_is_found_by_token_secret_and_account(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    token, secret, waba = unique("verify-"), unique("secret-"), unique("waba")
    credential, number = whatsapp(tenant.id, unique("pn"), verifyToken=token, appSecret=secret)
    credential = Credential(
        tenant.id,
        WHATSAPP,
        "meta",
        credential.secrets,
        {**credential.config, "businessAccountId": waba},
    )
    await ports.store.save_credential(credential, replace(number, business_account_id=waba))
    apps = ports.apps()
    assert await apps.verify_token_matches(token)
    assert not await apps.verify_token_matches(token + "x")
    assert not await apps.verify_token_matches("")
    assert await apps.app_secret(tenant.id) == secret
    assert await apps.tenant_of_account(waba) == tenant.id
    assert await apps.app_secret(uuid4()) is None
    assert await apps.tenant_of_account(unique("waba")) is None


async def test_an_account_belongs_to_a_confirmed_claim_never_to_the_credential_naming_it(
    ports: Ports,
) -> None:
    owner = await ports.store.create_tenant("owner")
    hijacker = await ports.store.create_tenant("hijacker")
    waba = unique("waba")
    # The hijacker's credential names the account, but no confirmed claim of its own is in it.
    named, _ = whatsapp(hijacker.id, unique("pn"), appSecret="hijacker-secret")
    named = replace(named, config={**named.config, "businessAccountId": waba})
    await ports.store.save_credential(named)
    assert await ports.apps().tenant_of_account(waba) is None
    credential, number = whatsapp(owner.id, unique("pn"), appSecret="owner-secret")
    await ports.store.save_credential(credential, replace(number, business_account_id=waba))
    assert await ports.apps().tenant_of_account(waba) == owner.id
    # A later confirmed claim on the same account (another number of it) does not take it.
    later, number = whatsapp(hijacker.id, unique("pn"), appSecret="hijacker-secret")
    await ports.store.save_credential(later, replace(number, business_account_id=waba))
    assert await ports.apps().tenant_of_account(waba) == owner.id
    await ports.store.delete_credentials(owner.id, WHATSAPP)
    assert await ports.apps().tenant_of_account(waba) == hijacker.id


async def test_claiming_a_number_again_keeps_or_changes_its_confirmed_account(
    ports: Ports,
) -> None:
    tenant = await ports.store.create_tenant("shop")
    pnid, waba = unique("pn"), unique("waba")
    credential, number = whatsapp(tenant.id, pnid)
    await ports.store.save_credential(credential, replace(number, business_account_id=waba))
    found = await ports.store.number_owner(pnid)
    assert found is not None and found.business_account_id == waba
    [listed] = await ports.store.numbers_for(tenant.id)
    owner, _ = await ports.store.number_with_credentials(pnid)
    assert listed == owner == found
    await ports.store.save_credential(credential, number)
    again = await ports.store.number_owner(pnid)
    assert again is not None and again.business_account_id is None and again.id == found.id


async def test_an_inactive_whatsapp_credential_is_no_meta_app(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    token = unique("verify-")
    credential, number = whatsapp(tenant.id, unique("pn"), verifyToken=token, appSecret="s3")
    await ports.store.save_credential(replace_active(credential, False), number)
    apps = ports.apps()
    assert not await apps.verify_token_matches(token)
    assert await apps.app_secret(tenant.id) is None


async def test_a_meta_app_without_an_app_secret_has_none(ports: Ports) -> None:
    tenant = await ports.store.create_tenant("shop")
    token = unique("verify-")
    await ports.store.save_credential(*whatsapp(tenant.id, unique("pn"), verifyToken=token))
    apps = ports.apps()
    assert await apps.verify_token_matches(token)
    assert await apps.app_secret(tenant.id) is None


# --- the pipeline's message log ------------------------------------------------------------------


async def stored(ports: Ports, *messages: InboundMessage) -> list[QueuedMessage]:
    await ports.intake.submit(Intake(messages=list(messages)))
    return [await ports.queued(m.wamid) for m in messages]


async def test_a_reply_is_recorded_once_whole(ports: Ports) -> None:
    (claimed,) = await stored(ports, message(unique("wamid."), phone_number_id=unique("pn")))
    parts = await ports.messages.plan(
        claimed, "5215512345678", ["Hola", "¿Qué tal?"], fallback=False
    )
    # The first part is recorded as being sent: it is sent right after the plan.
    assert [(p.part, p.text, p.wamid, p.send_attempts, p.sending) for p in parts] == [
        (1, "Hola", None, 1, True),
        (2, "¿Qué tal?", None, 0, False),
    ]
    again = await ports.messages.plan(claimed, "5215512345678", ["Otra"], fallback=True)
    unmarked = [replace(p, sending=False) for p in parts]
    assert again == unmarked == await ports.messages.planned(claimed)


async def test_a_reply_to_a_message_that_is_not_stored_is_a_conflict(ports: Ports) -> None:
    (claimed,) = await stored(ports, message(unique("wamid."), phone_number_id=unique("pn")))
    missing = QueuedMessage(
        2**62, unique("wamid."), "pn", None, "text", "hola", SENT, 1, "521", "521"
    )
    error, code = await raised(ports.messages.plan(missing, "521", ["Hola"], fallback=False))
    assert (error, code) == (Conflict, "conflict")
    assert await ports.messages.planned(missing) == []
    assert await ports.messages.planned(claimed) == []


async def test_sending_counts_attempts_until_meta_accepts_the_part(ports: Ports) -> None:
    (claimed,) = await stored(ports, message(unique("wamid."), phone_number_id=unique("pn")))
    (part,) = await ports.messages.plan(claimed, "5215512345678", ["Hola"], fallback=False)
    await ports.messages.sending(part)
    await ports.messages.sending(part)
    wamid = unique("wamid.R")
    await ports.messages.sent(part, wamid)
    await ports.messages.sending(part)
    (after,) = await ports.messages.planned(claimed)
    assert (after.wamid, after.send_attempts) == (wamid, 3)  # the plan's mark, then two
    assert await ports.status_of(wamid) == "sent"


async def test_a_wamid_marks_the_next_part_and_settles_only_a_message_its_worker_holds(
    ports: Ports,
) -> None:
    (claimed,) = await stored(ports, message(unique("wamid."), phone_number_id=unique("pn")))
    first, second = await ports.messages.plan(claimed, "521", ["a", "b"], fallback=False)
    one, two = unique("wamid.R"), unique("wamid.R")
    assert await ports.messages.sent(first, one, next_part=second)
    # Nobody holds this message's lease: its last wamid is recorded, the queue is untouched.
    unheld = replace(claimed, claimed_by="w-nobody")
    assert not await ports.messages.sent(second, two, answered=unheld)
    after = await ports.messages.planned(claimed)
    assert [(p.wamid, p.send_attempts) for p in after] == [(one, 1), (two, 1)]


async def test_a_wamid_recorded_for_two_parts_is_a_conflict(ports: Ports) -> None:
    (claimed,) = await stored(ports, message(unique("wamid."), phone_number_id=unique("pn")))
    first, second = await ports.messages.plan(claimed, "521", ["a", "b"], fallback=False)
    wamid = unique("wamid.R")
    await ports.messages.sent(first, wamid)
    error, code = await raised(ports.messages.sent(second, wamid))
    assert (error, code) == (Conflict, "conflict")


async def test_a_status_that_came_before_the_wamid_applies_and_none_goes_back(
    ports: Ports,
) -> None:
    pnid = unique("pn")
    (claimed,) = await stored(ports, message(unique("wamid."), phone_number_id=pnid))
    (part,) = await ports.messages.plan(claimed, "5215512345678", ["Hola"], fallback=False)
    wamid = unique("wamid.R")

    def of(value: str) -> StatusUpdate:
        return status(wamid, value, phone_number_id=pnid)

    await ports.intake.submit(Intake(statuses=[of("delivered")]))
    await ports.messages.sent(part, wamid)
    assert await ports.status_of(wamid) == "delivered"
    await ports.intake.submit(Intake(statuses=[of("read"), of("typo")]))
    assert await ports.status_of(wamid) == "read"
    await ports.intake.submit(Intake(statuses=[of("failed"), of("sent")]))
    assert await ports.status_of(wamid) == "read"


async def test_a_status_for_another_number_or_tenant_moves_no_reply(ports: Ports) -> None:
    tenant, pnid = uuid4(), unique("pn")
    (claimed,) = await stored(ports, message(unique("wamid."), tenant, phone_number_id=pnid))
    (part,) = await ports.messages.plan(claimed, "5215512345678", ["Hola"], fallback=False)
    wamid = unique("wamid.R")
    early = status(wamid, "delivered", phone_number_id=unique("pn"), tenant_id=uuid4())
    await ports.intake.submit(Intake(statuses=[early]))
    await ports.messages.sent(part, wamid)
    assert await ports.status_of(wamid) == "sent"
    strangers = [
        status(wamid, "failed", phone_number_id=unique("pn"), tenant_id=tenant),
        status(wamid, "delivered", phone_number_id=pnid, tenant_id=uuid4()),
        status(wamid, "played", phone_number_id=pnid),
    ]
    await ports.intake.submit(Intake(statuses=strangers))
    assert await ports.status_of(wamid) == "sent"
    await ports.intake.submit(
        Intake(statuses=[status(wamid, "read", phone_number_id=pnid, tenant_id=tenant)])
    )
    assert await ports.status_of(wamid) == "read"


# --- the schema -----------------------------------------------------------------------------------


async def test_a_migrated_database_has_no_pending_migrations(ports: Ports) -> None:
    assert await ports.schema.pending_migrations() == []


# --- the customer's media ----------------------------------------------------------------------

VOICE_NOTE = (
    b'{"id": "x", "type": "audio", "audio": {"id": "9001", "mime_type": "audio/ogg; codecs=opus",'
    b' "sha256": "c2hh", "voice": true}}'
)


async def voice_note(ports: Ports) -> QueuedMessage:
    (claimed,) = await stored(
        ports,
        message(
            unique("wamid."), phone_number_id=unique("pn"), type="audio", text=None, raw=VOICE_NOTE
        ),
    )
    return claimed


async def test_a_media_message_is_filed_from_its_webhook_on_first_sight(ports: Ports) -> None:
    note = await voice_note(ports)
    (text,) = await stored(ports, message(unique("wamid."), phone_number_id=unique("pn")))

    (item,) = await ports.messages.media_items([note.id, text.id])
    assert item == MediaItem(
        note.id,
        "audio",
        "9001",
        "audio/ogg; codecs=opus",
        "c2hh",
        None,
        True,
        "received",
        None,
        None,
        None,
    )
    assert await ports.messages.media_items([note.id]) == [item]  # filed once


async def test_a_transcript_becomes_the_messages_text_once(ports: Ports) -> None:
    note = await voice_note(ports)
    await ports.messages.media_items([note.id])
    heard = Transcript("¿Tienen tortillas?", "whisper-1", "openai", seconds=2.5, source="tenant")

    first = await ports.messages.transcribed(note.id, None, "¿Tienen tortillas?", heard)
    second = await ports.messages.transcribed(note.id, None, "otra cosa", heard)
    await ports.messages.media_outcome(note.id, "failed", "expired", "too late")

    assert first == second == "¿Tienen tortillas?"
    (item,) = await ports.messages.media_items([note.id])
    assert (item.state, item.text, item.reason_code) == ("transcribed", "¿Tienen tortillas?", None)


async def test_an_item_that_could_not_be_used_keeps_its_reason(ports: Ports) -> None:
    note = await voice_note(ports)
    await ports.messages.media_items([note.id])

    await ports.messages.media_outcome(note.id, "failed", "too-large", "x" * 600)

    (item,) = await ports.messages.media_items([note.id])
    assert (item.state, item.reason_code, item.reason) == ("failed", "too-large", "x" * 500)


async def test_an_item_a_model_was_sent_is_read(ports: Ports) -> None:
    raw = b'{"id": "x", "type": "image", "image": {"id": "77", "mime_type": "image/jpeg"}}'
    (photo,) = await stored(
        ports,
        message(unique("wamid."), phone_number_id=unique("pn"), type="image", text=None, raw=raw),
    )
    await ports.messages.media_items([photo.id])
    reply = Reply("ok", "gpt-4o", Usage(), 1.0, "openai", source="platform", read=("image",))

    await ports.messages.media_used(
        None, [(photo.id, Attachment("image", "image/jpeg", b"x"))], reply
    )

    (item,) = await ports.messages.media_items([photo.id])
    assert item.state == "read"
