"""Telling the customer what became of their payment: "pago recibido" on WhatsApp.

Pure; its ports are ``NoticeStore`` (``domain/ports.py``; the Postgres adapter
``adapters/postgres/payments.py``) and the ``Inbox`` that sends. A payment link created for a
conversation (``conversationId``) gets one notice per outcome it reaches (``paid``,
``failed``, ``expired``), filed in the same transaction as the provider's notification moved
it, so a notification repeated by the provider files nothing more. A worker then:

1. leases the due notices (a dead worker's lease runs out and another takes them);
2. sends each through ``Inbox.notify`` with the idempotency key ``payment:<link>:<status>``:
   text inside the customer-service window, the tenant's ``paymentReceived``
   (``paymentFailed``, ``paymentExpired``) template outside it. The message is recorded under
   that key before it is sent, so a notice taken again after a crash finds it: sent already
   (a wamid), nothing more goes; not yet, the same row is sent. The one window left is the
   pipeline's: a worker killed after Meta accepted the message but before its wamid was
   written sends it again (Graph has no idempotency key);
3. records the outcome the owner sees on the link (``GET /api/v1/payments/links/{id}``):
   ``sent`` (as text or template), ``skipped`` with the reason (no template configured for a
   closed window, a template not approved, the conversation gone...), or ``failed`` (Meta
   refused it; a transient failure is tried again, ``MAX_ATTEMPTS`` times in all).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from changarrito.domain.backoff import backoff_delay
from changarrito.domain.errors import (
    ChangarritoError,
    ClientError,
    FinalProviderError,
    ProviderError,
)
from changarrito.domain.inbox import Inbox, Notice
from changarrito.domain.money import minor_unit_decimals
from changarrito.domain.payment_model import DueNotice, PaymentNotice
from changarrito.domain.ports import NoticeStore

#: The purpose (``templates`` key) of each outcome.
PURPOSES = {"paid": "paymentReceived", "failed": "paymentFailed", "expired": "paymentExpired"}
#: Attempts at a notice before a transient failure counts as final.
MAX_ATTEMPTS = 5
#: How long a worker holds a notice it is sending.
LEASE_SECONDS = 60.0
#: Backoff of a transient failure: from this many seconds, doubling, at most ``RETRY_CAP``.
RETRY_BASE = 5.0
RETRY_CAP = 600.0
#: Currencies written with ``$`` before the amount.
DOLLAR_SIGN = frozenset({"MXN", "USD", "CAD", "AUD", "ARS", "CLP", "COP", "UYU", "NZD", "SGD"})

#: What the customer reads inside the window, Spanish first (``{amount}``, ``{reference}``).
TEXTS = {
    "paid": "¡Recibimos tu pago de {amount}! Referencia: {reference}. Gracias. "
    "/ We received your payment of {amount} (reference {reference}). Thank you!",
    "failed": "Tu pago de {amount} (referencia {reference}) no se completó. "
    "/ Your payment of {amount} (reference {reference}) did not go through.",
    "expired": "El enlace de pago de {amount} (referencia {reference}) venció. "
    "/ The payment link for {amount} (reference {reference}) has expired.",
}


def format_amount(amount: Decimal, currency: str) -> str:
    """``$150.00 MXN``; ``150,00``-style locales are not guessed: one format everywhere."""
    decimals = minor_unit_decimals(currency)
    figure = f"{amount:,.{decimals}f}"
    return f"${figure} {currency}" if currency in DOLLAR_SIGN else f"{figure} {currency}"


@dataclass(frozen=True, slots=True)
class Delivered:
    """What one delivery did (the worker logs it): ``state`` sent, skipped, failed or
    pending (to be tried again), with the reason's ``code`` and words."""

    notice: DueNotice
    state: str
    sent_as: str | None = None
    code: str | None = None
    reason: str | None = None
    wamid: str | None = None


class PaymentNotices:
    def __init__(
        self,
        store: NoticeStore,
        inbox: Inbox,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        lease: float = LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.inbox = inbox
        self.max_attempts = max_attempts
        self.lease = lease

    async def deliver_due(self, worker: str, limit: int = 20) -> list[Delivered]:
        """Sends the notices due now (up to ``limit``); what became of each."""
        due = await self.store.claim_notices(worker, limit, self.lease)
        return [await self.deliver(notice) for notice in due]

    async def deliver(self, due: DueNotice) -> Delivered:
        link = due.link
        if link.conversation_id is None or due.status not in PURPOSES:
            why = "the link's conversation no longer exists"
            return await self._settle(due, "skipped", "no-conversation", why)
        amount = format_amount(link.amount, link.currency)
        notice = Notice(
            tenant_id=link.tenant_id,
            conversation_id=link.conversation_id,
            purpose=PURPOSES[due.status],
            text=TEXTS[due.status].format(amount=amount, reference=link.reference),
            values={"amount": amount, "reference": link.reference, "description": link.description},
            idempotency_key=f"payment:{link.id}:{due.status}",
            ref=f"payment:{link.id}",
        )
        try:
            message = await self.inbox.notify(notice)
        except ClientError as exc:
            return await self._settle(due, "skipped", exc.code, exc.message)
        except FinalProviderError as exc:
            return await self._settle(due, "failed", exc.code, exc.message)
        except (ProviderError, ChangarritoError) as exc:  # transient: a retry may do
            if due.attempts >= self.max_attempts:
                return await self._settle(due, "failed", exc.code, exc.message)
            delay = backoff_delay(due.attempts, base=RETRY_BASE, cap=RETRY_CAP)
            await self.store.retry_notice(due.id, delay, exc.message)
            return Delivered(due, "pending", code=exc.code, reason=exc.message)
        sent_as = "template" if message.template is not None else "text"
        outcome = PaymentNotice(due.status, "sent", sent_as, attempts=due.attempts)
        await self.store.settle_notice(due.id, outcome, message.row_id)
        return Delivered(due, "sent", sent_as=sent_as, wamid=message.wamid)

    async def _settle(self, due: DueNotice, state: str, code: str, reason: str) -> Delivered:
        outcome = PaymentNotice(due.status, state, None, code, reason, due.attempts)
        await self.store.settle_notice(due.id, outcome, None)
        return Delivered(due, state, code=code, reason=reason)
