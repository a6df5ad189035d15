"""The usage ledger's roll-ups on PostgreSQL (the domain's ``usage.UsageStore``): the named
block of ``usage.sql`` over ``usage_ledger`` (migration 0018, whose triggers and the
pipeline's ``llm_used`` write it)."""

from __future__ import annotations

from uuid import UUID

from psycopg.rows import class_row

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.usage import Period, UsageRow

_ROW = class_row(UsageRow)


class PostgresUsage:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def usage(
        self, tenant_id: UUID | None, period: Period, group_by: str, *, every_tenant: bool
    ) -> list[UsageRow]:
        params = {
            "grp": group_by,
            "first": period.first,
            "last": period.last,
            "every": every_tenant,
            "tenant_id": tenant_id,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_ROW)
                await cur.execute(QUERIES["usage_rollup"], params)
                return await cur.fetchall()
