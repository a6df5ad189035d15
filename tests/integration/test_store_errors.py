"""Driver errors are translated at the adapter edge: nothing from psycopg escapes."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from changarrito.adapters.crypto.aesgcm import AesGcmCipher
from changarrito.adapters.postgres.pool import Pool, open_pool
from changarrito.adapters.postgres.store import PostgresStore
from changarrito.domain.errors import (
    ConfigurationError,
    Conflict,
    StorageUnavailable,
)
from changarrito.domain.model import Credential, IntegrationType, Secrets


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_database_is_one_line_naming_the_server_but_not_the_password() -> None:
    port = free_port()
    url = f"postgresql://shop:hunter2-very-secret@127.0.0.1:{port}/changarrito"
    with pytest.raises(StorageUnavailable) as caught:
        await open_pool(url, connect_timeout=2)
    message = str(caught.value)
    assert f"127.0.0.1:{port}/changarrito" in message
    assert "hunter2" not in message and "\n" not in message
    assert caught.value.__cause__ is None  # no driver exception chained (it may hold the DSN)


async def test_a_malformed_database_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL") as caught:
        await open_pool("postgresql://u:s3cr3t@host:notaport/db?bogus_option=1")
    assert "s3cr3t" not in str(caught.value)


async def test_a_unique_violation_becomes_a_conflict(pool: Pool, cipher: AesGcmCipher) -> None:
    store = PostgresStore(pool, cipher)
    tenant = await store.create_tenant("Dup ids")
    first = await store.save_credential(
        Credential(tenant.id, IntegrationType.LLM, "openai", Secrets({"apiKey": "sk-1"}))
    )
    clash = Credential(tenant.id, IntegrationType.LLM, "anthropic", Secrets({"apiKey": "sk-2"}))
    with pytest.raises(Conflict):
        await store.save_credential(replace(clash, id=first.id))


async def test_a_closed_pool_is_storage_unavailable(
    database_url: str, cipher: AesGcmCipher
) -> None:
    pool = await open_pool(database_url, max_size=1)
    await pool.close()
    with pytest.raises(StorageUnavailable):
        await PostgresStore(pool, cipher).list_tenants()
