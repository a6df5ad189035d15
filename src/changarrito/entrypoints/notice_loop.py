"""The payment notices' loop, inside every worker process: sends what is due
(``PaymentNotices.deliver_due``), woken by the workers' notification (a payment notification
that files a notice sends ``changarrito_inbound`` in its transaction) and polling every
``CHANGARRITO_WORKER_POLL`` seconds in case one was missed (or a retry fell due). Every
notice's outcome is logged with its link and status; a failure of the loop itself (the
database unreachable) is logged and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from changarrito.domain.errors import ChangarritoError
from changarrito.domain.payment_notices import PaymentNotices

log = structlog.get_logger("changarrito.payments")

#: Notices one round sends at most before it looks again.
BATCH = 20


async def run_notices(
    notices: PaymentNotices, worker: str, wakeup: asyncio.Event, poll: float
) -> None:
    """Until cancelled."""
    while True:
        wakeup.clear()
        delivered = []
        try:
            delivered = await notices.deliver_due(worker, BATCH)
        except ChangarritoError as exc:
            log.warning("payments.notices_failed", worker=worker, error=exc.message)
        for done in delivered:
            event = "payments.notice_" + ("retry" if done.state == "pending" else done.state)
            log.info(
                event,
                link_id=str(done.notice.link.id),
                tenant_id=str(done.notice.link.tenant_id),
                status=done.notice.status,
                attempt=done.notice.attempts,
                sent_as=done.sent_as,
                wamid=done.wamid,
                code=done.code,
                reason=done.reason,
            )
        if len(delivered) == BATCH:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout=poll)
