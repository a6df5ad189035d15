"""The audit log on PostgreSQL (``AuditLog``): one row per change, never a secret."""

from __future__ import annotations

from importlib.resources import files
from uuid import UUID

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import parse
from changarrito.domain.model import AuditEntry

QUERIES = parse(
    files("changarrito.adapters.postgres").joinpath("audit.sql").read_text(encoding="utf-8")
)

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

    async def entries_for(self, tenant_id: UUID, limit: int = 100) -> list[AuditEntry]:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(AuditEntry))
                await cur.execute(
                    QUERIES["audit_entries_for"], {"tenant_id": tenant_id, "limit": limit}
                )
                return await cur.fetchall()
