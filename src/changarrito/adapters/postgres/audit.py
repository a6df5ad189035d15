"""The audit log on PostgreSQL (``AuditLog``): one row per change, never a secret."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.model import AuditEntry

#: Longest user agent kept (they are client-controlled).
MAX_USER_AGENT = 512


class PostgresAuditLog:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def record(self, entry: AuditEntry) -> None:
        params = {
            "tenant_id": entry.tenant_id,
            "actor": entry.actor,
            "integration": entry.integration,
            "provider": entry.provider,
            "action": entry.action,
            "outcome": entry.outcome,
            "client_ip": entry.client_ip,
            "user_agent": (entry.user_agent or "")[:MAX_USER_AGENT] or None,
            "details": Jsonb(dict(entry.details)),
            "at": entry.at,
        }
        with translated():
            async with self.pool.connection() as conn:
                await conn.execute(QUERIES["record_audit"], params)
