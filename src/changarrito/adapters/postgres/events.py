"""The event outbox on PostgreSQL (the domain's ``EventStore``): ``changarrito_events`` of
migration 0017, read and settled by the named blocks of ``events.sql``. Events are filed by
``changarrito_emit`` inside the statements of the changes they report (``emit`` below)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.events import Event

_EVENT_ROW = class_row(Event)
EMIT = "SELECT changarrito_emit(%(type)s, %(tenant_id)s::uuid, %(key)s, %(data)s)"
ENABLE = "UPDATE changarrito_event_config SET enabled = %(on)s WHERE enabled <> %(on)s"


async def emit(
    conn: AsyncConnection[Any],
    type_: str,
    tenant_id: UUID | None,
    key: str,
    data: dict[str, Any],
) -> None:
    """Files an event in ``conn``'s transaction (nothing when events are off)."""
    params = {"type": type_, "tenant_id": tenant_id, "key": key, "data": Jsonb(data)}
    await conn.execute(EMIT, params)


async def set_enabled(pool: Pool, on: bool) -> None:
    """Whether events are filed, for every process on the database (set at start-up)."""
    with translated():
        async with pool.connection() as conn:
            await conn.execute(ENABLE, {"on": on})


class PostgresEvents:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def claim_events(self, worker: str, limit: int, lease: float) -> list[Event]:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_EVENT_ROW)
                params = {"worker": worker, "limit": limit, "lease": lease}
                await cur.execute(QUERIES["claim_events"], params)
                return await cur.fetchall()

    async def event_delivered(self, row_id: int, status: int | None) -> None:
        await self._execute("event_delivered", {"id": row_id, "status": status})

    async def event_failed(
        self, row_id: int, delay: float | None, error: str, status: int | None
    ) -> None:
        params = {"id": row_id, "delay": delay, "error": error, "status": status}
        await self._execute("event_failed", params)

    async def events(self, state: str | None, limit: int, before: int | None = None) -> list[Event]:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_EVENT_ROW)
                params = {"state": state, "limit": limit, "before": before}
                await cur.execute(QUERIES["list_events"], params)
                return await cur.fetchall()

    async def retry_events(self, row_ids: Sequence[int] | None) -> int:
        ids = list(row_ids) if row_ids is not None else None
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["retry_events"], {"ids": ids})
                row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _execute(self, query: str, params: dict[str, Any]) -> None:
        with translated():
            async with self.pool.connection() as conn:
                await conn.execute(QUERIES[query], params)
