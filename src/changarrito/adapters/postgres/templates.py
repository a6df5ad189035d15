"""The synced message templates on PostgreSQL (the domain's ``ports.TemplateStore``).

Queries are the named blocks of ``templates.sql``; each is scoped by ``tenant_id`` (NULL: the
platform's own account). A sync is one transaction, one at a time per owner (an advisory
lock): what Graph listed is upserted, then (after a complete listing) what it did not list is
removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from psycopg.rows import kwargs_row
from psycopg.types.json import Jsonb

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.templates import (
    GraphTemplate,
    Parameter,
    Template,
    TemplateFilters,
    TemplateKey,
    TemplateUpdate,
)


def parameter_record(p: Parameter) -> dict[str, Any]:
    """A parameter as the ``parameters`` jsonb keeps it (and the API shows it)."""
    record: dict[str, Any] = {"component": p.component, "kind": p.kind}
    if p.name is not None:
        record["name"] = p.name
    if p.index is not None:
        record["index"] = p.index
    if p.button is not None:
        record["button"] = p.button
    if p.sub_type is not None:
        record["subType"] = p.sub_type
    record["required"] = p.required
    return record


def parameter_of(record: Mapping[str, Any]) -> Parameter:
    return Parameter(
        component=str(record.get("component", "")),
        kind=str(record.get("kind", "")),
        name=record.get("name"),
        index=record.get("index"),
        button=record.get("button"),
        sub_type=record.get("subType"),
        required=bool(record.get("required", True)),
    )


def _template(*, parameters: list[dict[str, Any]], **columns: Any) -> Template:
    return Template(**columns, parameters=[parameter_of(p) for p in parameters or []])


_TEMPLATE_ROW = kwargs_row(_template)


class PostgresTemplates:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def templates(
        self,
        tenant_id: UUID | None,
        filters: TemplateFilters,
        after: TemplateKey | None,
        limit: int,
    ) -> list[Template]:
        params = {
            "tenant_id": tenant_id,
            "status": filters.status,
            "name": filters.name,
            "after_name": after[0] if after else None,
            "after_language": after[1] if after else None,
            "after_id": after[2] if after else None,
            "limit": limit,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=_TEMPLATE_ROW)
                await cur.execute(QUERIES["list_templates"], params)
                return await cur.fetchall()

    async def replace_templates(
        self,
        tenant_id: UUID | None,
        waba_id: str,
        listed: Sequence[tuple[GraphTemplate, Sequence[Parameter]]],
        *,
        complete: bool,
    ) -> tuple[int, int]:
        rows = [
            {
                "tenant_id": tenant_id,
                "waba": waba_id,
                "template_id": t.id,
                "name": t.name,
                "language": t.language,
                "category": t.category,
                "sub_category": t.sub_category,
                "status": t.status,
                "quality": t.quality,
                "parameter_format": (t.parameter_format or "POSITIONAL").upper(),
                "components": Jsonb(list(t.components)),
                "parameters": Jsonb([parameter_record(p) for p in parameters]),
            }
            for t, parameters in listed
        ]
        removed = 0
        with translated():
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(QUERIES["lock_template_owner"], {"tenant_id": tenant_id})
                if rows:
                    async with conn.cursor() as cur:
                        await cur.executemany(QUERIES["upsert_template"], rows)
                if complete:
                    cur = await conn.execute(
                        QUERIES["remove_unlisted_templates"],
                        {"tenant_id": tenant_id, "waba": waba_id},
                    )
                    removed = cur.rowcount
        return len(rows), removed

    async def apply_update(self, update: TemplateUpdate) -> int:
        params = {
            "waba": update.business_account_id,
            "template_id": update.template_id,
            "name": update.name,
            "language": update.language,
            "status": update.status,
            "category": update.category,
            "quality": update.quality,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["update_template"], params)
                return cur.rowcount

    async def template_owners(self) -> list[UUID]:
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["template_owners"])
                return [row[0] for row in await cur.fetchall()]

    async def synced_within(self, tenant_id: UUID | None, seconds: float) -> bool:
        params = {"tenant_id": tenant_id, "seconds": seconds}
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["template_synced_within"], params)
                row = await cur.fetchone()
        return bool(row and row[0])
