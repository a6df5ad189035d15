"""The rate limiter on PostgreSQL (the domain's ``RateLimiter``): one row per tenant and
action, taken with one statement (``rate_limits.sql``) on the database's clock.

Global on purpose: every process of the service counts in the same rows, so a tenant gets
the operator's limit whatever process its calls land on. Each guarded call is an outbound
provider call anyway, so one small upsert in front of it costs nothing noticeable.
"""

from __future__ import annotations

from uuid import UUID

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES


class PostgresRateLimits:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def acquire(self, tenant_id: UUID, action: str, limit: int, period: float) -> float:
        params = {
            "tenant_id": tenant_id,
            "action": action,
            "interval": period / limit,
            "period": float(period),
        }
        with translated():
            async with self.pool.connection() as conn, conn.transaction():
                # A count lost in a crash only forgives a call or two: no need to wait for
                # the disk on every guarded request.
                await conn.execute("SET LOCAL synchronous_commit = off")
                cur = await conn.execute(QUERIES["take_rate_limit"], params)
                row = await cur.fetchone()
        return max(0.0, float(row[0])) if row is not None else 0.0
