"""The budgets on PostgreSQL (the domain's ``budgets.BudgetStore``): ``usage_budgets`` and
``usage_figures`` of migration 0019, through the named blocks of ``budgets.sql``. The
figures themselves are added to by the ledger's trigger."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.budgets import Limit


class PostgresBudgets:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def limits(self, tenant_id: UUID | None) -> dict[str, tuple[Limit, bool]]:
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["budget_limits"], {"tenant_id": tenant_id})
                rows = await cur.fetchall()
        return {str(m): (Limit(soft, hard), bool(inherited)) for m, soft, hard, inherited in rows}

    async def set_limits(self, tenant_id: UUID | None, limits: Mapping[str, Limit]) -> None:
        params = {
            "tenant_id": tenant_id,
            "metrics": list(limits),
            "softs": [limit.soft for limit in limits.values()],
            "hards": [limit.hard for limit in limits.values()],
        }
        with translated():
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(QUERIES["delete_budgets"], {"tenant_id": tenant_id})
                if limits:
                    await conn.execute(QUERIES["insert_budgets"], params)

    async def standing_of(self, tenant_id: UUID, metric: str, period: str) -> tuple[Limit, int]:
        params = {"tenant_id": tenant_id, "metric": metric, "period": period}
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["budget_standing"], params)
                row = await cur.fetchone()
        if row is None:
            return Limit(), 0
        soft, hard, figure = row
        return Limit(soft, hard), int(figure)

    async def figures(
        self, tenant_id: UUID | None, periods: Mapping[str, str]
    ) -> dict[str, tuple[int, datetime | None, datetime | None]]:
        params = {
            "tenant_id": tenant_id,
            "metrics": list(periods),
            "periods": list(periods.values()),
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["usage_figures"], params)
                rows = await cur.fetchall()
        return {str(m): (int(amount), soft, hard) for m, amount, soft, hard in rows}
