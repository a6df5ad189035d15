"""Schema migrations: applied once, in order, safely from several processes at once."""

from __future__ import annotations

import asyncio

import psycopg

from changarrito.adapters.postgres.migrate import available, migrate, pending
from changarrito.adapters.postgres.pool import open_pool


def test_migrations_are_numbered_and_start_with_the_initial_schema() -> None:
    names = [name for name, _ in available()]
    assert names[0] == "0001_init"
    assert names == sorted(names)


async def test_an_empty_database_has_every_migration_pending_and_none_after_migrate(
    fresh_database_url: str,
) -> None:
    pool = await open_pool(fresh_database_url, max_size=1)
    try:
        everything = [name for name, _ in available()]
        assert await pending(pool) == everything
        assert await migrate(pool) == everything
        assert await pending(pool) == []
    finally:
        await pool.close()


async def test_migrating_twice_applies_nothing_the_second_time(fresh_database_url: str) -> None:
    pool = await open_pool(fresh_database_url, max_size=1)
    try:
        first = await migrate(pool)
        assert first
        assert await migrate(pool) == []
    finally:
        await pool.close()
    with psycopg.connect(fresh_database_url) as conn:
        rows = conn.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
    assert [r[0] for r in rows] == first


async def test_two_processes_migrating_at_once_apply_each_migration_exactly_once(
    fresh_database_url: str,
) -> None:
    pools = [await open_pool(fresh_database_url, max_size=1) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(p) for p in pools))
    finally:
        for p in pools:
            await p.close()
    applied = [name for result in results for name in result]
    assert sorted(applied) == [name for name, _ in available()]


async def test_the_initial_schema_has_the_contract_tables_and_no_extension(
    fresh_database_url: str,
) -> None:
    pool = await open_pool(fresh_database_url, max_size=1)
    try:
        await migrate(pool)
    finally:
        await pool.close()
    with psycopg.connect(fresh_database_url) as conn:
        columns = {
            (t, c)
            for t, c in conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public'"
            ).fetchall()
        }
        extensions = {r[0] for r in conn.execute("SELECT extname FROM pg_extension").fetchall()}
    credential_columns = [
        *("id", "tenant_id", "integration_type", "provider", "credentials", "config"),
        *("is_active", "is_verified", "priority", "created_at", "updated_at", "verified_at"),
    ]
    for column in credential_columns:
        assert ("tenant_integration_credentials", column) in columns
    number_columns = ("id", "tenant_id", "phone_number_id", "phone_number", "display_name")
    for column in (*number_columns, "is_active"):
        assert ("tenant_whatsapp_numbers", column) in columns
    assert ("tenants", "name") in columns
    assert "pgcrypto" not in extensions
