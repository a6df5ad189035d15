"""Budgets on the platform's credentials: the limits a body may set, the period as a key, and
the check that stops the platform's credential once a hard limit is reached."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from changarrito.domain.budgets import (
    METRICS,
    BudgetExceeded,
    Budgets,
    Limit,
    limits_from_json,
    period_key,
)
from changarrito.domain.errors import ValidationFailed

TENANT = UUID(int=5)
NOW = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)

limit_values = st.one_of(st.none(), st.integers(0, 10**9))


@given(st.dictionaries(st.sampled_from(list(METRICS)), st.tuples(limit_values, limit_values)))
def test_any_limits_with_soft_at_most_hard_are_taken_as_given(
    given_limits: dict[str, tuple[int | None, int | None]],
) -> None:
    body = {m: {"soft": s, "hard": h} for m, (s, h) in given_limits.items()}
    valid = all(s is None or h is None or s <= h for s, h in given_limits.values())
    if not valid:
        with pytest.raises(ValidationFailed):
            limits_from_json(body)
        return
    assert limits_from_json(body) == {
        m: Limit(s, h) for m, (s, h) in given_limits.items() if s is not None or h is not None
    }


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"tokens": {"hard": 1}}, "tokens"),
        ({"llmTokens": {"hard": -1}}, "llmTokens.hard"),
        ({"llmTokens": {"hard": 1.5}}, "llmTokens.hard"),
        ({"llmTokens": {"hard": True}}, "llmTokens.hard"),
        ({"llmTokens": {"max": 10}}, "llmTokens.max"),
        ({"llmTokens": {"soft": 10, "hard": 5}}, "llmTokens.soft"),
        ({"llmTokens": 100}, "llmTokens"),
        ([], "body"),
    ],
)
def test_a_limit_that_is_not_one_is_refused_by_its_path(body: Any, path: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        limits_from_json(body)
    assert path in [p for p, _ in raised.value.errors]


def test_the_period_is_the_month_or_for_template_contacts_the_day() -> None:
    assert period_key("llmTokens", NOW) == "2026-12"
    assert period_key("platformTemplateContacts", NOW) == "2026-12-03"


class FakeStore:
    def __init__(self, limits: Mapping[str, Limit], figure: int) -> None:
        self._limits = {m: (limit, False) for m, limit in limits.items()}
        self.figure = figure

    async def limits(self, tenant_id: UUID | None) -> dict[str, tuple[Limit, bool]]:
        return dict(self._limits)

    async def set_limits(self, tenant_id: UUID | None, limits: Mapping[str, Limit]) -> None:
        self._limits = {m: (limit, False) for m, limit in limits.items()}

    async def standing_of(self, tenant_id: UUID, metric: str, period: str) -> tuple[Limit, int]:
        limit, _ = self._limits.get(metric, (Limit(), False))
        return limit, self.figure

    async def figures(self, tenant_id: UUID | None, periods: Mapping[str, str]) -> dict[str, Any]:
        return {m: (self.figure, None, None) for m in periods}


@given(st.integers(0, 1000), st.integers(0, 1000))
async def test_the_platforms_credential_stops_exactly_when_the_figure_reaches_the_hard_limit(
    figure: int, hard: int
) -> None:
    budgets = Budgets(FakeStore({"llmTokens": Limit(hard=hard)}, figure), clock=lambda: NOW)
    if figure >= hard:
        with pytest.raises(BudgetExceeded) as raised:
            await budgets.check(TENANT, "llmTokens")
        message = raised.value.message
        assert str(TENANT) in message and "llmTokens" in message and "2026-12" in message
        assert f"{figure:,} of {hard:,}" in message
    else:
        await budgets.check(TENANT, "llmTokens")


async def test_without_a_hard_limit_nothing_is_stopped_whatever_the_figure() -> None:
    budgets = Budgets(FakeStore({"llmTokens": Limit(soft=1)}, 10**12), clock=lambda: NOW)
    await budgets.check(TENANT, "llmTokens")
    await budgets.check(TENANT, "transcriptionSeconds")
