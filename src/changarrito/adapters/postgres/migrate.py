"""Numbered SQL migrations (``migrations/NNNN_name.sql``), applied in order, once each.

Each migration runs in its own transaction together with its row in ``schema_migrations``,
under a transaction-level advisory lock: two processes migrating at once take turns, and the
second finds the work done. A migration therefore cannot use statements that refuse to run in
a transaction (``CREATE INDEX CONCURRENTLY``).

After the numbered files, ``migrate`` re-asserts the one constraint that follows the code rather
than a file: ``tenant_integration_credentials.integration_type`` allows exactly the kinds of
``changarrito.domain.kinds.KINDS``, so adding a kind needs no SQL. The constraint is replaced
only when it differs (a table scan under a brief exclusive lock, once per change of kinds).
"""

from __future__ import annotations

import re
from importlib.resources import files

import psycopg
from psycopg import sql

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.domain.kinds import KINDS

#: Arbitrary constant naming Changarrito's migration lock among the server's advisory locks.
LOCK_KEY = 0x63686731  # "chg1"

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

#: The constraint ``0001_init`` created inline; ``migrate`` keeps it equal to the kinds.
KINDS_CONSTRAINT = "tenant_integration_credentials_integration_type_check"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def available() -> list[tuple[str, str]]:
    """``(name, sql)`` of every shipped migration, in order (name without ``.sql``)."""
    folder = files("changarrito.adapters.postgres").joinpath("migrations")
    found = sorted(e.name for e in folder.iterdir() if _NAME.match(e.name))
    numbers = [n[:4] for n in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"two migrations share a number: {found}")
    return [(n.removesuffix(".sql"), folder.joinpath(n).read_text("utf-8")) for n in found]


async def migrate(pool: Pool) -> list[str]:
    """Applies the pending migrations; returns the names applied (empty when up to date)."""
    applied: list[str] = []
    with translated():
        async with pool.connection() as conn:
            async with conn.transaction():
                await _lock(conn)
                await conn.execute(_CREATE_TABLE)
            for name, script in available():
                async with conn.transaction():
                    await _lock(conn)
                    if await _is_applied(conn, name):
                        continue
                    await conn.execute(script)
                    await conn.execute(
                        "INSERT INTO schema_migrations (name) VALUES (%(name)s)", {"name": name}
                    )
                applied.append(name)
            async with conn.transaction():
                await _lock(conn)
                await _assert_kinds(conn)
    return applied


def kind_names() -> list[str]:
    """The wire names ``integration_type`` may hold: the kinds', sorted."""
    return sorted(t.value for t in KINDS)


async def kinds_in_database(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> list[str]:
    """The wire names the database's constraint allows (empty when there is none)."""
    cur = await conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'tenant_integration_credentials'::regclass AND conname = %(name)s",
        {"name": KINDS_CONSTRAINT},
    )
    row = await cur.fetchone()
    return re.findall(r"'([^']*)'", str(row[0])) if row else []


async def _assert_kinds(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    names = kind_names()
    if sorted(await kinds_in_database(conn)) == names:
        return
    statement = sql.SQL(
        "ALTER TABLE tenant_integration_credentials DROP CONSTRAINT IF EXISTS {name}, "
        "ADD CONSTRAINT {name} CHECK (integration_type IN ({kinds}))"
    ).format(
        name=sql.Identifier(KINDS_CONSTRAINT),
        kinds=sql.SQL(", ").join(sql.Literal(n) for n in names),
    )
    await conn.execute(statement)


class PostgresSchema:
    """The ``SchemaState`` port: which shipped migrations this database still lacks."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def pending_migrations(self) -> list[str]:
        return await pending(self.pool)


async def pending(pool: Pool) -> list[str]:
    """The names of the migrations not yet applied (all of them on an empty database)."""
    with translated():
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
            row = await cur.fetchone()
            done: set[str] = set()
            if row and row[0]:
                cur = await conn.execute("SELECT name FROM schema_migrations")
                done = {r[0] for r in await cur.fetchall()}
    return [name for name, _ in available() if name not in done]


async def _lock(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": LOCK_KEY})


async def _is_applied(conn: psycopg.AsyncConnection[tuple[object, ...]], name: str) -> bool:
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = %(name)s)", {"name": name}
    )
    row = await cur.fetchone()
    return bool(row and row[0])
