"""Notifications reach other processes' listeners within a second: the store's changes, and
any channel a ``Listener`` serves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest
import structlog.testing

from changarrito.adapters.crypto.aesgcm import AesGcmCipher
from changarrito.adapters.postgres.notify import INBOUND_CHANNEL, Listener
from changarrito.adapters.postgres.pool import Pool, open_pool
from changarrito.adapters.postgres.store import PostgresStore
from changarrito.domain.changes import EVERYTHING, Change
from changarrito.domain.errors import Conflict
from changarrito.domain.model import Credential, IntegrationType, Secrets, WhatsAppNumber


class Changes:
    """Collects ``on_change`` calls and lets a test wait for one."""

    def __init__(self) -> None:
        self.seen: list[Change] = []
        self._arrived = asyncio.Event()

    def __call__(self, change: Change) -> None:
        self.seen.append(change)
        self._arrived.set()

    async def wait_for(self, change: Change, within: float = 1.0) -> None:
        async with asyncio.timeout(within):
            while change not in self.seen:
                self._arrived.clear()
                await self._arrived.wait()


@pytest.fixture
async def changes(database_url: str) -> AsyncIterator[Changes]:
    """A listener on its own connection, as in another process; stopped after the test."""
    received = Changes()
    ready = asyncio.Event()
    listener = Listener(database_url, min_backoff=0.05)
    listener.on_change(received)
    task = asyncio.create_task(listener.run(ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_write_through_one_pool_reaches_a_listener_within_a_second(
    changes: Changes, database_url: str, cipher: AesGcmCipher
) -> None:
    other_process = await open_pool(database_url, max_size=2)
    try:
        store = PostgresStore(other_process, cipher)
        tenant = await store.create_tenant("Notified")
        credential = Credential(
            tenant.id, IntegrationType.WHATSAPP, "meta", Secrets({"accessToken": "EAAG-x"})
        )
        number = WhatsAppNumber(tenant.id, f"pn-{tenant.id.hex[:12]}")
        await store.save_credential(credential, number)
        await changes.wait_for(Change(tenant_id=tenant.id))
        await changes.wait_for(Change(phone_number_id=number.phone_number_id))
    finally:
        await other_process.close()


async def test_every_kind_of_write_notifies_the_tenant(
    changes: Changes, pool: Pool, cipher: AesGcmCipher
) -> None:
    store = PostgresStore(pool, cipher)
    tenant = await store.create_tenant("Every write")
    expected = Change(tenant_id=tenant.id)
    credential = Credential(tenant.id, IntegrationType.LLM, "openai", Secrets({"apiKey": "k"}))
    for write in (
        lambda: store.save_credential(credential),
        lambda: store.set_verified(tenant.id, IntegrationType.LLM, "openai", True),
        lambda: store.delete_credentials(tenant.id, IntegrationType.LLM),
        lambda: store.delete_tenant(tenant.id),
    ):
        changes.seen.clear()
        await write()
        await changes.wait_for(expected)


async def test_nothing_is_notified_when_a_write_rolls_back(
    changes: Changes, pool: Pool, cipher: AesGcmCipher
) -> None:
    store = PostgresStore(pool, cipher)
    owner = await store.create_tenant("Owner")
    other = await store.create_tenant("Loser")
    number = WhatsAppNumber(owner.id, f"pn-{owner.id.hex[:12]}")
    await store.save_credential(
        Credential(owner.id, IntegrationType.WHATSAPP, "meta", Secrets({"accessToken": "a"})),
        number,
    )
    await changes.wait_for(Change(tenant_id=owner.id))
    changes.seen.clear()
    with pytest.raises(Conflict):
        await store.save_credential(
            Credential(other.id, IntegrationType.WHATSAPP, "meta", Secrets({"accessToken": "b"})),
            WhatsAppNumber(other.id, number.phone_number_id),
        )
    # Notifications arrive in commit order: once this later one is in, the other would be too.
    await store.set_verified(owner.id, IntegrationType.WHATSAPP, "meta", True)
    await changes.wait_for(Change(tenant_id=owner.id))
    assert Change(tenant_id=other.id) not in changes.seen


async def test_after_losing_its_connection_the_listener_reconnects_and_says_everything(
    changes: Changes, database_url: str, pool: Pool, cipher: AesGcmCipher
) -> None:
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid() "
            "AND datname = current_database()"
        )
    await changes.wait_for(EVERYTHING, within=5)
    store = PostgresStore(pool, cipher)
    tenant = await store.create_tenant("After reconnect")
    await store.save_credential(
        Credential(tenant.id, IntegrationType.LLM, "openai", Secrets({"apiKey": "k"}))
    )
    await changes.wait_for(Change(tenant_id=tenant.id))


# --- one listener, several channels ---------------------------------------------------------


class Inbox:
    """Collects the payloads of one channel and lets a test wait for one."""

    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.reconnects = 0
        self._arrived = asyncio.Event()

    def __call__(self, payload: str) -> None:
        self.payloads.append(payload)
        self._arrived.set()

    def reconnected(self) -> None:
        self.reconnects += 1
        self._arrived.set()

    async def wait_until(self, done: Callable[[], bool], within: float = 2.0) -> None:
        async with asyncio.timeout(within):
            while not done():
                self._arrived.clear()
                await self._arrived.wait()


@contextlib.asynccontextmanager
async def running(listener: Listener) -> AsyncIterator[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(listener.run(ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def notify(database_url: str, channel: str, payload: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))


async def test_one_listener_serves_several_channels_each_with_its_own_callback(
    database_url: str, pool: Pool, cipher: AesGcmCipher
) -> None:
    changes, inbound, other = Changes(), Inbox(), Inbox()
    listener = Listener(database_url, name="test.listener")
    listener.on_change(changes)
    listener.on(INBOUND_CHANNEL, inbound)
    listener.on("changarrito_test_other", other)
    async with running(listener):
        await notify(database_url, INBOUND_CHANNEL, "42")
        await notify(database_url, "changarrito_test_other", "hello")
        tenant = await PostgresStore(pool, cipher).create_tenant("Two channels")
        await PostgresStore(pool, cipher).delete_tenant(tenant.id)
        await changes.wait_for(Change(tenant_id=tenant.id))
        await inbound.wait_until(lambda: inbound.payloads == ["42"])
        await other.wait_until(lambda: other.payloads == ["hello"])
    assert all(not c.everything for c in changes.seen)


async def test_a_callback_that_raises_is_logged_and_the_listener_keeps_listening(
    database_url: str,
) -> None:
    inbox = Inbox()

    def flaky(payload: str) -> None:
        if payload == "boom":
            raise RuntimeError("a bug in a callback")
        inbox(payload)

    listener = Listener(database_url, name="test.listener")
    listener.on(INBOUND_CHANNEL, flaky)
    with structlog.testing.capture_logs() as logs:
        async with running(listener):
            await notify(database_url, INBOUND_CHANNEL, "boom")
            await notify(database_url, INBOUND_CHANNEL, "after")
            await inbox.wait_until(lambda: inbox.payloads == ["after"])
    failures = [e for e in logs if e["event"] == "test.listener.callback_failed"]
    assert [e["channel"] for e in failures] == [INBOUND_CHANNEL]


async def test_an_idle_listener_checks_its_connection_and_still_hears_what_comes_next(
    database_url: str,
) -> None:
    inbox = Inbox()
    listener = Listener(database_url, idle_check=0.05)
    listener.on(INBOUND_CHANNEL, inbox)
    async with running(listener):
        await asyncio.sleep(0.2)  # a few idle checks
        await notify(database_url, INBOUND_CHANNEL, "still there")
        await inbox.wait_until(lambda: inbox.payloads == ["still there"])


async def test_after_a_reconnection_every_channel_is_heard_again_and_told_of_the_gap(
    database_url: str,
) -> None:
    inbound, other = Inbox(), Inbox()
    listener = Listener(database_url, min_backoff=0.05, name="test.listener")
    listener.on(INBOUND_CHANNEL, inbound, on_reconnect=inbound.reconnected)
    listener.on("changarrito_test_other", other)
    async with running(listener):
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%%changarrito_test_other%%' "
                "AND pid <> pg_backend_pid() AND datname = current_database()"
            )
        await inbound.wait_until(lambda: inbound.reconnects == 1, within=5)
        await notify(database_url, INBOUND_CHANNEL, "1")
        await notify(database_url, "changarrito_test_other", "2")
        await inbound.wait_until(lambda: inbound.payloads == ["1"])
        await other.wait_until(lambda: other.payloads == ["2"])


async def test_a_channel_registered_once_the_listener_runs_is_refused(database_url: str) -> None:
    listener = Listener(database_url)
    listener.on(INBOUND_CHANNEL, Inbox())
    async with running(listener):
        with pytest.raises(RuntimeError, match="before the listener runs"):
            listener.on("changarrito_test_other", Inbox())
