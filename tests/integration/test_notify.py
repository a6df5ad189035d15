"""Change notifications reach other processes' listeners within a second."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg
import pytest

from changarrito.adapters.crypto.aesgcm import AesGcmCipher
from changarrito.adapters.postgres.notify import listen_for_changes
from changarrito.adapters.postgres.pool import Pool, open_pool
from changarrito.adapters.postgres.store import PostgresStore
from changarrito.domain.errors import Conflict
from changarrito.domain.model import Credential, IntegrationType, Secrets, WhatsAppNumber


class Changes:
    """Collects ``on_change`` calls and lets a test wait for one."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._arrived = asyncio.Event()

    def __call__(self, kind: str, value: str) -> None:
        self.seen.append((kind, value))
        self._arrived.set()

    async def wait_for(self, change: tuple[str, str], within: float = 1.0) -> None:
        async with asyncio.timeout(within):
            while change not in self.seen:
                self._arrived.clear()
                await self._arrived.wait()


@pytest.fixture
async def changes(database_url: str) -> AsyncIterator[Changes]:
    """A listener on its own connection, as in another process; stopped after the test."""
    received = Changes()
    ready = asyncio.Event()
    task = asyncio.create_task(
        listen_for_changes(database_url, received, ready=ready, min_backoff=0.05)
    )
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
        await changes.wait_for(("tenant", str(tenant.id)))
        await changes.wait_for(("number", number.phone_number_id))
    finally:
        await other_process.close()


async def test_every_kind_of_write_notifies_the_tenant(
    changes: Changes, pool: Pool, cipher: AesGcmCipher
) -> None:
    store = PostgresStore(pool, cipher)
    tenant = await store.create_tenant("Every write")
    expected = ("tenant", str(tenant.id))
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
    await changes.wait_for(("tenant", str(owner.id)))
    changes.seen.clear()
    with pytest.raises(Conflict):
        await store.save_credential(
            Credential(other.id, IntegrationType.WHATSAPP, "meta", Secrets({"accessToken": "b"})),
            WhatsAppNumber(other.id, number.phone_number_id),
        )
    # Notifications arrive in commit order: once this later one is in, the other would be too.
    await store.set_verified(owner.id, IntegrationType.WHATSAPP, "meta", True)
    await changes.wait_for(("tenant", str(owner.id)))
    assert ("tenant", str(other.id)) not in changes.seen


async def test_after_losing_its_connection_the_listener_reconnects_and_says_all(
    changes: Changes, database_url: str, pool: Pool, cipher: AesGcmCipher
) -> None:
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid() "
            "AND datname = current_database()"
        )
    await changes.wait_for(("all", ""), within=5)
    store = PostgresStore(pool, cipher)
    tenant = await store.create_tenant("After reconnect")
    await store.save_credential(
        Credential(tenant.id, IntegrationType.LLM, "openai", Secrets({"apiKey": "k"}))
    )
    await changes.wait_for(("tenant", str(tenant.id)))
