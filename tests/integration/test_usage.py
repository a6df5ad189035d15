"""The usage ledger on real PostgreSQL, read through the real app: every billable act counted
once, in the transaction of its own bookkeeping, whatever retries and crashes do; rolled up
per day, provider and source for the tenant, and across tenants for the operator.
"""

# The fixtures come from test_conversations_api (imported, then named as parameters).
# ruff: noqa: F811

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_conversations_api import (  # the same world: fake Graph, app, database
    app_service,  # noqa: F401
    db,  # noqa: F401
    graph,  # noqa: F401
    shop,  # noqa: F401
    test_settings,  # noqa: F401
)
from test_payment_notices import linked

from changarrito.adapters.postgres.message_log import PostgresMessageLog
from changarrito.bootstrap import Service
from changarrito.domain.chat import Reply, Usage
from changarrito.entrypoints.usage import print_usage
from conftest import INTERNAL_HEADERS

TODAY = datetime.now(UTC).date().isoformat()


def reply(tokens_in: int, tokens_out: int, source: str = "platform") -> Reply:
    return Reply("ok", "gpt-4o-mini", Usage(tokens_in, tokens_out), 1.0, "openai", source=source)


async def priced_status(
    db: psycopg.AsyncConnection[Any],
    number: str,
    tenant_id: uuid.UUID | None,
    wamid: str,
    status: str,
) -> None:
    raw = {
        "id": wamid,
        "status": status,
        "pricing": {
            "billable": True,
            "pricing_model": "PMP",
            "type": "regular",
            "category": "service",
        },
    }
    await db.execute(
        "INSERT INTO whatsapp_message_statuses (wamid, status, phone_number_id, tenant_id,"
        " occurred_at, raw) VALUES (%s, %s, %s, %s, now(), %s) ON CONFLICT DO NOTHING",
        (wamid, status, number, tenant_id, json.dumps(raw)),
    )


async def test_a_tenants_usage_is_rolled_up_by_source_kind_and_provider(
    app_client: Any, app_service: Service, shop: Any, db: psycopg.AsyncConnection[Any]
) -> None:
    tenant_id, headers, number, _ = await shop()
    log = app_service.storage.messages
    assert isinstance(log, PostgresMessageLog)
    await log.llm_used(tenant_id, reply(100, 20), "llm:a")
    await log.llm_used(tenant_id, reply(100, 20), "llm:a")  # the same act written again
    await log.llm_used(tenant_id, reply(50, 5, source="tenant"), "llm:b")
    wamid = f"wamid.{uuid.uuid4().hex}"
    for status in ("sent", "delivered", "read"):  # sent and delivered both carry pricing
        await priced_status(db, number, tenant_id, wamid, status)
    await linked(app_service, tenant_id)

    response = await app_client.get("/api/v1/usage", params={"groupBy": "source"}, headers=headers)

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["from"][:7], report["to"], report["groupBy"]) == (TODAY[:7], TODAY, "source")
    rows = {(r["group"], r["kind"]): r for r in report["data"]}
    assert set(rows) == {
        ("platform", "llm_call"),
        ("tenant", "llm_call"),
        ("tenant", "whatsapp_message"),
        ("platform", "payment_link"),
    }
    platform_llm = rows[("platform", "llm_call")]
    assert (platform_llm["acts"], platform_llm["inputTokens"], platform_llm["outputTokens"]) == (
        1,
        100,
        20,
    )
    assert (
        rows[("tenant", "whatsapp_message")]["acts"],
        rows[("tenant", "whatsapp_message")]["billable"],
    ) == (1, 1)
    by_provider = await app_client.get(
        "/api/v1/usage", params={"groupBy": "provider"}, headers=headers
    )
    assert {(r["group"], r["kind"], r["acts"]) for r in by_provider.json()["data"]} == {
        ("openai", "llm_call", 2),
        ("meta", "whatsapp_message", 1),
        ("stripe", "payment_link", 1),
    }
    by_day = await app_client.get("/api/v1/usage", headers=headers)
    assert {r["group"] for r in by_day.json()["data"]} == {TODAY}


async def test_a_tenant_sees_only_its_own_usage_and_the_operator_sees_every_tenant(
    app_client: Any, app_service: Service, shop: Any
) -> None:
    mine, my_headers, _, _ = await shop()
    theirs, _, _, _ = await shop()
    log = app_service.storage.messages
    assert isinstance(log, PostgresMessageLog)
    await log.llm_used(mine, reply(1, 1), f"llm:{uuid.uuid4().hex}")
    await log.llm_used(theirs, reply(7, 7), f"llm:{uuid.uuid4().hex}")

    own = await app_client.get("/api/v1/usage", params={"groupBy": "source"}, headers=my_headers)
    every = await app_client.get(
        "/api/v1/internal/usage", params={"groupBy": "source"}, headers=INTERNAL_HEADERS
    )
    one = await app_client.get(
        "/api/v1/internal/usage", params={"tenantId": str(theirs)}, headers=INTERNAL_HEADERS
    )

    assert [r["inputTokens"] for r in own.json()["data"]] == [1]
    tenants = {r["tenantId"] for r in every.json()["data"]}
    assert {str(mine), str(theirs)} <= tenants
    assert [(r["kind"], r["inputTokens"]) for r in one.json()["data"]] == [("llm_call", 7)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-12-10", "to": "2026-12-01"}, "to"),
        ({"from": "2024-01-01", "to": "2026-12-01"}, "to"),
        ({"groupBy": "tenant"}, "groupBy"),
        ({"from": "ayer"}, "from"),
    ],
)
async def test_a_period_or_grouping_that_is_not_one_is_a_400_or_422_naming_it(
    app_client: Any, shop: Any, params: dict[str, str], field: str
) -> None:
    _, headers, _, _ = await shop()

    response = await app_client.get("/api/v1/usage", params=params, headers=headers)

    assert response.status_code in (400, 422), response.text
    assert field in response.text


async def test_usage_needs_a_tenant_token_or_the_internal_key(app_client: Any) -> None:
    assert (await app_client.get("/api/v1/usage")).status_code == 401
    assert (await app_client.get("/api/v1/internal/usage")).status_code == 401


async def test_the_cli_prints_a_months_table_for_one_tenant(
    app_service: Service, shop: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant_id, _, _, _ = await shop()
    log = app_service.storage.messages
    assert isinstance(log, PostgresMessageLog)
    await log.llm_used(tenant_id, reply(1234, 56), f"llm:{uuid.uuid4().hex}")

    args = argparse.Namespace(tenant=str(tenant_id), month=None, json=False)
    assert await print_usage(app_service, args) == 0

    out = capsys.readouterr().out
    assert "platform  llm_call" in out and "1,234" in out and "56" in out


# --- any interleaving of retries and crashes -----------------------------------------------

#: One write attempt: which act (0..4), and whether its transaction crashes before commit.
attempts = st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=1, max_size=12)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=attempts)
async def test_a_ledger_replayed_from_any_retries_and_crashes_counts_each_act_once(
    app_service: Service, db: psycopg.AsyncConnection[Any], history: list[tuple[int, bool]]
) -> None:
    """Each attempt writes an act inside a transaction that commits or crashes (rolls back):
    the ledger then holds each act that committed at least once, exactly once."""
    assert app_service.storage.pool is not None
    run = uuid.uuid4().hex
    for act, crashes in history:
        async with app_service.storage.pool.connection() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO usage_ledger (act_key, source, kind, input_tokens)"
                        " VALUES (%s, 'platform', 'llm_call', 10) ON CONFLICT (act_key) DO NOTHING",
                        (f"llm:{run}:{act}",),
                    )
                    if crashes:
                        raise RuntimeError("the worker died")
            except RuntimeError:
                pass

    cur = await db.execute(
        "SELECT act_key, count(*) FROM usage_ledger WHERE act_key LIKE %s GROUP BY act_key",
        (f"llm:{run}:%",),
    )
    counted = dict(await cur.fetchall())
    committed = {f"llm:{run}:{act}" for act, crashes in history if not crashes}
    assert counted == {key: 1 for key in committed}
