"""Budgets on what the platform pays for: limits on a tenant's use of the platform's
credentials, per calendar month (or day), checked before each use.

Pure; its port is ``BudgetStore`` below (the Postgres adapter ``adapters/postgres/
budgets.py``: ``usage_budgets`` and ``usage_figures``, migration 0019). The rules:

- **What is limited** (``METRICS``): ``llmTokens`` (tokens in and out of LLM calls on the
  platform's key) and ``transcriptionSeconds`` (seconds of audio the platform's provider
  transcribed), per calendar month (UTC), both enforced; ``platformMessages`` (messages Meta
  priced, sent from the platform's number) per month and ``platformTemplateContacts``
  (customers reached with a template outside the window from the platform's number) per
  UTC day are accepted and shown, but count nothing yet: the platform's number answers only
  the platform's own conversations (it routes to no tenant), so no tenant's traffic leaves
  from it today, and the platform's own number is not budgeted. A tenant's own
  credentials are never limited: only platform-sourced use is counted.
- **Limits**: each metric has a ``soft`` limit (reaching it files ``usage.limit_reached``,
  once per period) and a ``hard`` one (reaching it stops the platform's credential for the
  rest of the period, and files the event). A tenant's own limit for a metric overrides the
  default (``PUT /api/v1/internal/budgets/default``); none: no limit.
- **The period is a key**, not a cron: the figure of ``2026-12`` is another row than the one
  of ``2026-11``, so nothing is reset and nothing drifts.
- **Atomic across processes**: the figures are added to in the transaction that counts each
  act (the ledger's trigger), so every process reads the same figure. A use is allowed while
  the figure is below the hard limit; a call already in flight when the limit is reached
  still counts. So the overshoot is at most one call per worker slot (worker processes times
  ``CHANGARRITO_WORKERS_CONCURRENCY``), each at most the operator's caps on a platform call
  (``CHANGARRITO_PLATFORM_LLM_MAX_TOKENS`` out, the prompt cut to
  ``CHANGARRITO_PLATFORM_LLM_MAX_PROMPT_CHARS``).
- **When a hard limit stops a reply**, the operator chooses what the customer gets
  (``CHANGARRITO_BUDGET_EXCEEDED``): ``fallback`` (the tenant's fallback text), ``handoff``
  (the conversation goes to the shop's people) or ``silence``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from changarrito.domain.errors import Conflict, ValidationFailed
from changarrito.domain.model import utcnow

Metric = Literal[
    "llmTokens", "transcriptionSeconds", "platformMessages", "platformTemplateContacts"
]
#: Each metric and the period it counts over.
METRICS: Mapping[str, str] = {
    "llmTokens": "month",
    "transcriptionSeconds": "month",
    "platformMessages": "month",
    "platformTemplateContacts": "day",
}
#: The largest limit accepted (a bigint, with room to add to it).
MAX_LIMIT = 10**15
BudgetChoice = Literal["fallback", "handoff", "silence"]
CHOICES: tuple[str, ...] = ("fallback", "handoff", "silence")


class BudgetExceeded(Conflict):
    """The platform's limit for this tenant is reached for this period."""

    code = "budget-exceeded"

    def __init__(self, tenant_id: UUID | None, metric: str, period: str, figure: int, hard: int):
        who = f"tenant {tenant_id}" if tenant_id else "the platform's own number"
        super().__init__(
            f"The hard limit on {metric} for {who} is reached for {period}: "
            f"{figure:,} of {hard:,}. The platform's credential is not used until the period "
            "ends or the operator raises the limit."
        )
        self.tenant_id = tenant_id
        self.metric = metric
        self.period = period
        self.figure = figure
        self.hard = hard


@dataclass(frozen=True, slots=True)
class Limit:
    soft: int | None = None
    hard: int | None = None


@dataclass(frozen=True, slots=True)
class Standing:
    """One metric of a tenant now: the limit that applies (``inherited``: the default's),
    this period's key and figure, and when each limit was first reached in it."""

    metric: str
    limit: Limit
    inherited: bool
    period: str
    figure: int
    soft_reached_at: datetime | None = None
    hard_reached_at: datetime | None = None

    @property
    def stopped(self) -> bool:
        return self.limit.hard is not None and self.figure >= self.limit.hard


def period_key(metric: str, now: datetime) -> str:
    """``2026-12`` for a monthly metric, ``2026-12-03`` for a daily one (UTC)."""
    return now.strftime("%Y-%m-%d" if METRICS[metric] == "day" else "%Y-%m")


def limits_from_json(body: Any) -> dict[str, Limit]:
    """The limits of a PUT body: ``{"llmTokens": {"soft"?, "hard"?}, ...}``, every problem
    named by its path; ``{}`` (or a metric set to ``null``) removes a limit."""
    if not isinstance(body, Mapping):
        problem = f"must be an object keyed by metric ({', '.join(METRICS)})"
        raise ValidationFailed(f"the body {problem}", errors=[("body", problem)])
    problems: list[tuple[str, str]] = []
    limits: dict[str, Limit] = {}
    for metric, value in body.items():
        if metric not in METRICS:
            problems.append((metric, f"is not a metric ({', '.join(METRICS)})"))
            continue
        if value is None:
            continue
        if not isinstance(value, Mapping):
            problems.append((metric, 'must be an object: {"soft"?, "hard"?}'))
            continue
        found: dict[str, int | None] = {"soft": None, "hard": None}
        for key, number in value.items():
            if key not in found:
                problems.append((f"{metric}.{key}", "is not a limit (soft, hard)"))
            elif number is None:
                continue
            elif type(number) is not int or not 0 <= number <= MAX_LIMIT:
                problems.append(
                    (f"{metric}.{key}", f"must be a whole number from 0 to {MAX_LIMIT:,}")
                )
            else:
                found[key] = number
        soft, hard = found["soft"], found["hard"]
        if soft is not None and hard is not None and soft > hard:
            problems.append((f"{metric}.soft", "must not be above hard"))
        if soft is not None or hard is not None:
            limits[metric] = Limit(soft, hard)
    if problems:
        listed = "; ".join(f"{path} {problem}" for path, problem in problems)
        raise ValidationFailed(f"the budgets are not valid: {listed}", errors=problems)
    return limits


class BudgetStore(Protocol):
    async def limits(self, tenant_id: UUID | None) -> dict[str, tuple[Limit, bool]]:
        """The limit of each metric that has one for the tenant (``None``: the default
        only), and whether it is the default's (``True``) rather than its own."""
        ...

    async def set_limits(self, tenant_id: UUID | None, limits: Mapping[str, Limit]) -> None:
        """Replaces the tenant's own limits (``None``: the default's) with ``limits``."""
        ...

    async def standing_of(self, tenant_id: UUID, metric: str, period: str) -> tuple[Limit, int]:
        """The limit that applies to one metric of the tenant and its figure in the period,
        in one read (what each use of the platform's credential checks)."""
        ...

    async def figures(
        self, tenant_id: UUID | None, periods: Mapping[str, str]
    ) -> dict[str, tuple[int, datetime | None, datetime | None]]:
        """This period's figure of each metric (``periods``: metric → period key), and when
        its soft and hard limits were reached."""
        ...


class Budgets:
    def __init__(self, store: BudgetStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock

    async def standing(
        self, tenant_id: UUID | None, *, default_only: bool = False
    ) -> list[Standing]:
        """Every metric of the tenant (or, ``default_only``, the defaults) now."""
        now = self.clock()
        periods = {metric: period_key(metric, now) for metric in METRICS}
        limits = await self.store.limits(None if default_only else tenant_id)
        figures = {} if default_only else await self.store.figures(tenant_id, periods)
        found = []
        for metric, period in periods.items():
            limit, inherited = limits.get(metric, (Limit(), False))
            figure, soft_at, hard_at = figures.get(metric, (0, None, None))
            found.append(Standing(metric, limit, inherited, period, figure, soft_at, hard_at))
        return found

    async def set(self, tenant_id: UUID | None, body: Any) -> list[Standing]:
        """Replaces the tenant's own limits (``None``: the defaults) with the body's."""
        await self.store.set_limits(tenant_id, limits_from_json(body))
        return await self.standing(tenant_id, default_only=tenant_id is None)

    async def check(self, tenant_id: UUID, metric: str) -> None:
        """``BudgetExceeded`` when the tenant's hard limit on ``metric`` is reached this
        period; nothing when there is none."""
        period = period_key(metric, self.clock())
        limit, figure = await self.store.standing_of(tenant_id, metric, period)
        if limit.hard is not None and figure >= limit.hard:
            raise BudgetExceeded(tenant_id, metric, period, figure, limit.hard)
