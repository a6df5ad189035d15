"""``Payments.receive_notification`` tells the provider which tenant a notification is for,
and stores only the status vocabulary, whatever the provider answered, with the credential
source that verified it, the link id the provider echoed, and a bounded payload."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from changarrito.domain.model import IntegrationType, Resolved, Secrets, Source
from changarrito.domain.payment_model import EventOutcome, PaymentEventRecord, PaymentStatus
from changarrito.domain.payments import MAX_STORED_PAYLOAD, Payments, next_status
from changarrito.plugin import PaymentEvent


class RecordingGateway:
    """A payment provider that records what ``parse_webhook`` was given."""

    def __init__(self, status: Any, **event: Any) -> None:
        self.status = status
        self.event = event
        self.tenants: list[UUID] = []

    def parse_credentials(self, data: Mapping[str, Any]) -> Any:
        return dict(data)

    def parse_config(self, data: Mapping[str, Any]) -> Any:
        return dict(data)

    async def create_payment_link(self, **kwargs: Any) -> Any:
        raise AssertionError("not called")

    async def parse_webhook(
        self, headers: Any, raw_body: bytes, credentials: Any, config: Any, *, tenant_id: UUID
    ) -> PaymentEvent:
        self.tenants.append(tenant_id)
        return PaymentEvent(
            provider="fakepay",
            event_id="evt_1",
            type="paid",
            provider_link_id="l1",
            status=self.status,
            **self.event,
        )


class Gateways:
    def __init__(self, gateway: RecordingGateway) -> None:
        self.gateway = gateway

    def payment(self, provider_id: str) -> Any:
        return self.gateway

    def ids(self, kind: str) -> list[str]:
        return ["fakepay"]


class Resolver:
    async def resolve(self, tenant_id: UUID, itype: IntegrationType, provider: Any = None) -> Any:
        return Resolved(
            tenant_id, itype, "fakepay", Secrets({"key": "k-123456"}), {}, Source.TENANT
        )


class Store:
    def __init__(self) -> None:
        self.events: list[PaymentEventRecord] = []

    async def record_event(self, event: PaymentEventRecord) -> EventOutcome:
        self.events.append(event)
        return EventOutcome(event=event, duplicate=False)


async def receive(status: Any, **event: Any) -> tuple[RecordingGateway, Store, UUID]:
    gateway, store, tenant = RecordingGateway(status, **event), Store(), uuid4()
    payments = Payments(store, Resolver(), Gateways(gateway))  # type: ignore[arg-type]
    await payments.receive_notification("fakepay", tenant, {}, b"{}")
    return gateway, store, tenant


async def test_the_provider_is_told_which_tenant_the_notification_is_for() -> None:
    gateway, store, tenant = await receive(PaymentStatus.PAID)

    assert gateway.tenants == [tenant]
    assert store.events[0].tenant_id == tenant
    assert store.events[0].status == "paid"


async def test_the_event_keeps_whose_credential_verified_it_and_the_link_it_names() -> None:
    link_id = uuid4()
    _, store, _ = await receive(
        PaymentStatus.PAID, link_id=str(link_id), amount=Decimal("10.50"), currency="mxn"
    )

    [event] = store.events
    assert (event.source, event.named_link_id) == (Source.TENANT, link_id)
    assert (event.amount, event.currency) == (Decimal("10.50"), "MXN")
    assert event.payload["linkId"] == str(link_id)


async def test_a_link_id_that_is_not_ours_names_no_link() -> None:
    _, store, _ = await receive(PaymentStatus.PAID, link_id="order-77")

    assert store.events[0].named_link_id is None


async def test_a_huge_provider_summary_is_stored_as_its_hash() -> None:
    _, store, _ = await receive(PaymentStatus.PAID, raw={"body": "x" * 250_000})

    payload = store.events[0].payload
    assert len(json.dumps(payload)) <= MAX_STORED_PAYLOAD
    assert payload["raw"]["omitted"] is True


async def test_a_status_outside_the_vocabulary_is_stored_as_unknown() -> None:
    _, store, _ = await receive("captured")

    assert store.events[0].status == PaymentStatus.UNKNOWN.value


@pytest.mark.parametrize(
    ("current", "incoming", "after"),
    [
        ("pending", "paid", "paid"),
        ("failed", "paid", "paid"),
        ("paid", "pending", "paid"),
        ("paid", "refunded", "refunded"),
        ("paid", "unknown", "paid"),
        ("pending", "captured", "pending"),
        ("pending", "declined", "pending"),
        ("failed", "declined", "failed"),
    ],
)
def test_a_link_status_only_moves_forward(current: str, incoming: str, after: str) -> None:
    assert next_status(current, incoming) == after
