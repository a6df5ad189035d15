"""Schema migrations: applied once, in order, safely from several processes at once."""

from __future__ import annotations

import asyncio
import re

import psycopg
import pytest

from changarrito.adapters.postgres import migrate as migrate_module
from changarrito.adapters.postgres.migrate import KINDS_CONSTRAINT, available, migrate, pending
from changarrito.adapters.postgres.pool import open_pool
from changarrito.domain.kinds import KINDS


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


def _allowed_kinds(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s",
            (KINDS_CONSTRAINT,),
        ).fetchone()
    assert row is not None
    return set(re.findall(r"'([^']*)'", row[0]))


async def test_the_integration_type_constraint_allows_exactly_the_kinds(
    fresh_database_url: str,
) -> None:
    pool = await open_pool(fresh_database_url, max_size=1)
    try:
        await migrate(pool)
    finally:
        await pool.close()
    assert _allowed_kinds(fresh_database_url) == {t.value for t in KINDS}


async def test_migrate_reasserts_the_kinds_constraint_when_the_kinds_change(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = await open_pool(fresh_database_url, max_size=1)
    try:
        await migrate(pool)
        more = [*migrate_module.kind_names(), "sms"]  # a new kind, as data only
        monkeypatch.setattr(migrate_module, "kind_names", lambda: sorted(more))
        assert await migrate(pool) == []
        assert _allowed_kinds(fresh_database_url) == {*(t.value for t in KINDS), "sms"}
        monkeypatch.undo()
        await migrate(pool)
        assert _allowed_kinds(fresh_database_url) == {t.value for t in KINDS}
    finally:
        await pool.close()
    with psycopg.connect(fresh_database_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        tenant = conn.execute("INSERT INTO tenants (name) VALUES ('x') RETURNING id").fetchone()
        assert tenant is not None
        conn.execute(
            "INSERT INTO tenant_integration_credentials "
            "(tenant_id, integration_type, provider, credentials) VALUES "
            """(%s, 'sms', 'p', '{"alg": "a", "kid": "k", "ct": "c"}')""",
            (tenant[0],),
        )
