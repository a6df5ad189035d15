"""Budgets on real PostgreSQL through the real app: the operator sets default and per-tenant
limits; the ledger's platform-sourced acts add to the period's figure in their own
transaction; reaching a limit files ``usage.limit_reached`` once; the hard limit stops the
platform's credential (``Budgets.check``), the tenant's status shows it, and concurrent
workers never overshoot past one call each.
"""

# The fixtures come from test_conversations_api (imported, then named as parameters).
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
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

from changarrito.adapters.postgres.events import set_enabled
from changarrito.adapters.postgres.message_log import PostgresMessageLog
from changarrito.bootstrap import Service
from changarrito.domain.budgets import BudgetExceeded, Budgets
from changarrito.domain.chat import Reply, Usage
from conftest import INTERNAL_HEADERS

MONTH = datetime.now(UTC).strftime("%Y-%m")


def spent(tokens: int, source: str = "platform") -> Reply:
    return Reply("ok", "gpt-4o-mini", Usage(tokens, 0), 1.0, "openai", source=source)


def log_of(service: Service) -> PostgresMessageLog:
    log = service.storage.messages
    assert isinstance(log, PostgresMessageLog)
    return log


def budgets_of(service: Service) -> Budgets:
    assert service.budgets is not None
    return service.budgets


@pytest.fixture
async def clean_defaults(app_service: Service) -> AsyncIterator[None]:
    """The defaults are global: each test that sets them leaves none behind."""
    yield
    await budgets_of(app_service).set(None, {})


async def test_the_operator_sets_a_tenants_budget_and_reads_where_it_stands(
    app_client: Any, app_service: Service, shop: Any, clean_defaults: None
) -> None:
    tenant_id, _, _, _ = await shop()
    default = await app_client.put(
        "/api/v1/internal/budgets/default",
        json={"transcriptionSeconds": {"hard": 3600}},
        headers=INTERNAL_HEADERS,
    )
    assert default.status_code == 200, default.text
    put = await app_client.put(
        f"/api/v1/internal/tenants/{tenant_id}/budgets",
        json={"llmTokens": {"soft": 100, "hard": 150}},
        headers=INTERNAL_HEADERS,
    )
    assert put.status_code == 200, put.text
    await log_of(app_service).llm_used(tenant_id, spent(120), f"llm:{uuid.uuid4().hex}")
    await log_of(app_service).llm_used(tenant_id, spent(999, "tenant"), f"llm:{uuid.uuid4().hex}")

    shown = await app_client.get(
        f"/api/v1/internal/tenants/{tenant_id}/budgets", headers=INTERNAL_HEADERS
    )

    budgets = shown.json()["budgets"]
    llm = budgets["llmTokens"]
    assert (llm["soft"], llm["hard"], llm["inherited"], llm["period"]) == (100, 150, False, MONTH)
    assert (llm["figure"], llm["stopped"]) == (120, False)  # its own key's tokens never count
    assert llm["softReachedAt"] is not None and llm["hardReachedAt"] is None
    seconds = budgets["transcriptionSeconds"]
    assert (seconds["hard"], seconds["inherited"], seconds["figure"]) == (3600, True, 0)
    assert budgets["platformMessages"]["hard"] is None


async def test_reaching_the_hard_limit_stops_the_platforms_credential_and_the_status_says_so(
    app_client: Any, app_service: Service, shop: Any, db: psycopg.AsyncConnection[Any]
) -> None:
    tenant_id, headers, _, _ = await shop()
    budgets = budgets_of(app_service)
    await budgets.set(tenant_id, {"llmTokens": {"soft": 50, "hard": 100}})
    await budgets.check(tenant_id, "llmTokens")  # nothing used yet
    assert app_service.storage.pool is not None
    await set_enabled(app_service.storage.pool, True)
    try:
        for _ in range(3):
            await log_of(app_service).llm_used(tenant_id, spent(40), f"llm:{uuid.uuid4().hex}")
    finally:
        await set_enabled(app_service.storage.pool, False)

    with pytest.raises(BudgetExceeded) as raised:
        await budgets.check(tenant_id, "llmTokens")
    assert f"{tenant_id}" in raised.value.message and "120 of 100" in raised.value.message
    status = await app_client.get("/api/v1/integrations/status", headers=headers)
    assert status.json()["budgets"] == [
        {
            "metric": "llmTokens",
            "period": MONTH,
            "figure": 120,
            "soft": 50,
            "hard": 100,
            "stopped": True,
        }
    ]
    cur = await db.execute(
        "SELECT data->>'level', data->>'figure', data->>'limit' FROM changarrito_events"
        " WHERE type = 'usage.limit_reached' AND tenant_id = %s ORDER BY id",
        (tenant_id,),
    )
    assert await cur.fetchall() == [("soft", "80", "50"), ("hard", "120", "100")]


@pytest.mark.parametrize(
    "body",
    [{"llmTokens": {"hard": -5}}, {"tokens": {"hard": 5}}, {"llmTokens": {"soft": 9, "hard": 1}}],
)
async def test_a_budget_that_is_not_one_is_a_422_and_changes_nothing(
    app_client: Any, app_service: Service, shop: Any, body: dict[str, Any]
) -> None:
    tenant_id, _, _, _ = await shop()
    await budgets_of(app_service).set(tenant_id, {"llmTokens": {"hard": 7}})

    response = await app_client.put(
        f"/api/v1/internal/tenants/{tenant_id}/budgets", json=body, headers=INTERNAL_HEADERS
    )

    assert response.status_code == 422, response.text
    assert response.json()["errors"]
    [llm] = [
        s for s in await budgets_of(app_service).standing(tenant_id) if s.metric == "llmTokens"
    ]
    assert llm.limit.hard == 7


async def test_budgets_need_the_internal_key_and_a_tenant_that_exists(app_client: Any) -> None:
    nobody = uuid.uuid4()
    assert (await app_client.get(f"/api/v1/internal/tenants/{nobody}/budgets")).status_code == 401
    missing = await app_client.get(
        f"/api/v1/internal/tenants/{nobody}/budgets", headers=INTERNAL_HEADERS
    )
    assert missing.status_code == 404


# --- concurrent workers -----------------------------------------------------------------


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    workers=st.integers(1, 6),
    hard=st.integers(100, 2_000),
    cost=st.integers(1, 400),
)
async def test_concurrent_workers_never_overshoot_by_more_than_one_call_each(
    app_service: Service, workers: int, hard: int, cost: int
) -> None:
    """Each worker checks, then spends ``cost`` tokens (the call), until it is stopped: the
    figure ends at most ``workers`` calls past the hard limit."""
    tenant_id = (await app_service.storage.store.create_tenant(f"t-{uuid.uuid4().hex}")).id
    budgets = budgets_of(app_service)
    await budgets.set(tenant_id, {"llmTokens": {"hard": hard}})
    log = log_of(app_service)

    async def worker() -> None:
        while True:
            try:
                await budgets.check(tenant_id, "llmTokens")
            except BudgetExceeded:
                return
            await asyncio.sleep(0)  # the call is in flight: others check meanwhile
            await log.llm_used(tenant_id, spent(cost), f"llm:{uuid.uuid4().hex}")

    await asyncio.gather(*(worker() for _ in range(workers)))

    [llm] = [s for s in await budgets.standing(tenant_id) if s.metric == "llmTokens"]
    assert hard <= llm.figure < hard + workers * cost
