"""Reading the usage ledger: what each tenant used, on whose credentials, per day.

Pure; its port is ``UsageStore`` below (the Postgres adapter ``adapters/postgres/usage.py``
over ``usage_ledger``, migration 0018). The ledger holds one
row per billable act (``KINDS``); a report rolls them up over whole UTC days ``[from, to]``
(both included), by ``day``, ``provider`` or ``source`` (``tenant``: the tenant's own
credential paid; ``platform``: the operator's), and always by kind, since each kind counts
in its own units: ``acts`` (calls, transcriptions, pictures, messages, links), tokens in and
out, seconds of audio, and how many of the messages Meta bills.

A period defaults to this calendar month up to today, is at most ``MAX_DAYS`` long and never
ends before it starts; a bad one is a ``ValidationFailed`` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, Protocol, get_args
from uuid import UUID

from changarrito.domain.errors import ValidationFailed
from changarrito.domain.model import utcnow

Kind = Literal[
    "llm_call",
    "transcription",
    "image_to_model",
    "document_to_model",
    "whatsapp_message",
    "payment_link",
]
KINDS: tuple[str, ...] = get_args(Kind)
GroupBy = Literal["day", "provider", "source"]
GROUPINGS: tuple[str, ...] = get_args(GroupBy)
#: The longest period one report covers.
MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class Period:
    first: date
    last: date


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One group's use of one kind: ``group`` is the day (``2026-12-03``), the provider
    (``openai``; ``""`` when none) or the source; ``tenant_id`` only in a report across
    tenants (``None`` there: the platform's own number)."""

    group: str
    kind: str
    acts: int
    input_tokens: int
    output_tokens: int
    seconds: float
    billable: int
    tenant_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    group_by: str
    rows: tuple[UsageRow, ...]


def period_of(first: date | None, last: date | None, today: date) -> Period:
    """The period asked for (``from``, ``to``), this month up to today by default."""
    first = first or today.replace(day=1)
    last = last or max(today, first)
    if last < first:
        problem = "must not be before from"
        raise ValidationFailed(f"to {problem}", errors=[("to", problem)])
    if (last - first) >= timedelta(days=MAX_DAYS):
        problem = f"must be at most {MAX_DAYS} days after from"
        raise ValidationFailed(f"to {problem}", errors=[("to", problem)])
    return Period(first, last)


def month_of(text: str | None, today: date) -> Period:
    """``YYYY-MM`` as its whole month (this month, up to today, when ``None``)."""
    if text is None:
        return Period(today.replace(day=1), today)
    try:
        year, month = (int(part) for part in text.split("-"))
        first = date(year, month, 1)
    except ValueError:
        problem = "must be a month as YYYY-MM, e.g. 2026-12"
        raise ValidationFailed(f"month {problem}", errors=[("month", problem)]) from None
    following = (first + timedelta(days=32)).replace(day=1)
    return Period(first, following - timedelta(days=1))


def group_of(value: str | None) -> str:
    group = value or "day"
    if group not in GROUPINGS:
        problem = f"must be one of {', '.join(GROUPINGS)}"
        raise ValidationFailed(f"groupBy {problem}", errors=[("groupBy", problem)])
    return group


class UsageStore(Protocol):
    """The ledger's roll-ups (the Postgres adapter ``adapters/postgres/usage.py``)."""

    async def usage(
        self, tenant_id: UUID | None, period: Period, group_by: str, *, every_tenant: bool
    ) -> list[UsageRow]:
        """The rows of ``tenant_id`` (``None``: the platform's own number) in the period,
        grouped; with ``every_tenant``, of every tenant, each row naming its own."""
        ...


class UsageReports:
    def __init__(self, store: UsageStore, *, today: Callable[[], date] | None = None) -> None:
        self.store = store
        self.today = today or (lambda: utcnow().date())

    async def report(
        self,
        tenant_id: UUID | None,
        first: date | None,
        last: date | None,
        group_by: str | None,
        *,
        every_tenant: bool = False,
    ) -> Report:
        period = period_of(first, last, self.today())
        group = group_of(group_by)
        rows = await self.store.usage(tenant_id, period, group, every_tenant=every_tenant)
        return Report(period, group, tuple(rows))

    async def month(
        self, tenant_id: UUID | None, month: str | None, *, every_tenant: bool = False
    ) -> Report:
        """A calendar month by source (the CLI's table)."""
        period = month_of(month, self.today())
        rows = await self.store.usage(tenant_id, period, "source", every_tenant=every_tenant)
        return Report(period, "source", tuple(rows))
