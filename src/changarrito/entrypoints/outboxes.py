"""The outboxes' loops, inside every worker process: the payment notices
(``PaymentNotices.deliver_due``) and the events for the platform's backend
(``EventDelivery.deliver_due``). Each is woken by the workers' notification (what files a
notice or an event sends ``changarrito_inbound`` in its transaction) and polls every
``CHANGARRITO_WORKER_POLL`` seconds in case one was missed (or a retry fell due). Every
outcome is logged; a failure of the loop itself (the database unreachable) is logged and
the loop goes on. Neither ever waits on the message workers, nor they on it: a receiver that
is down delays only its own events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog

from changarrito.domain.errors import ChangarritoError
from changarrito.domain.event_delivery import EventDelivery
from changarrito.domain.events import Delivery
from changarrito.domain.payment_notices import Delivered, PaymentNotices

log = structlog.get_logger("changarrito.outbox")
T = TypeVar("T")

#: Items one round handles at most before it looks again.
BATCH = 20


async def _loop(
    name: str,
    round_: Callable[[], Awaitable[Sequence[T]]],
    wakeup: asyncio.Event,
    poll: float,
    report: Callable[[T], None],
) -> None:
    while True:
        wakeup.clear()
        done: Sequence[T] = ()
        try:
            done = await round_()
        except ChangarritoError as exc:
            log.warning(f"{name}.round_failed", error=exc.message)
        for item in done:
            report(item)
        if len(done) >= BATCH:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout=poll)


async def run_notices(
    notices: PaymentNotices, worker: str, wakeup: asyncio.Event, poll: float
) -> None:
    """The payment notices, until cancelled."""

    def report(item: Delivered) -> None:
        event = "payments.notice_" + ("retry" if item.state == "pending" else item.state)
        log.info(
            event,
            link_id=str(item.notice.link.id),
            tenant_id=str(item.notice.link.tenant_id),
            status=item.notice.status,
            attempt=item.notice.attempts,
            sent_as=item.sent_as,
            wamid=item.wamid,
            code=item.code,
            reason=item.reason,
        )

    await _loop(
        "payments.notices", lambda: notices.deliver_due(worker, BATCH), wakeup, poll, report
    )


async def run_events(
    events: EventDelivery, worker: str, wakeup: asyncio.Event, poll: float
) -> None:
    """The events for the platform's backend, until cancelled."""

    def report(item: Delivery) -> None:
        level = log.info if item.state == "delivered" else log.warning
        level(
            "events." + ("retry" if item.state == "pending" else item.state),
            event_id=item.event.event_id,
            type=item.event.type,
            tenant_id=str(item.event.tenant_id) if item.event.tenant_id else None,
            attempt=item.event.attempts,
            status=item.posted.status,
            error=item.posted.error,
            delay=item.delay,
        )

    await _loop("events", lambda: events.deliver_due(worker, BATCH), wakeup, poll, report)
