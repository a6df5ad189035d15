"""``Payments.receive_notification`` tells the provider which tenant a notification is for,
and stores only the status vocabulary, whatever the provider answered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID, uuid4

import pytest

from changarrito.domain.model import IntegrationType, Resolved, Secrets, Source
from changarrito.domain.payment_model import EventOutcome, PaymentEventRecord, PaymentStatus
from changarrito.domain.payments import Payments, next_status
from changarrito.plugin import PaymentEvent


class RecordingGateway:
    """A payment provider that records what ``parse_webhook`` was given."""

    def __init__(self, status: Any) -> None:
        self.status = status
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


async def receive(status: Any) -> tuple[RecordingGateway, Store, UUID]:
    gateway, store, tenant = RecordingGateway(status), Store(), uuid4()
    payments = Payments(store, Resolver(), Gateways(gateway))  # type: ignore[arg-type]
    await payments.receive_notification("fakepay", tenant, {}, b"{}")
    return gateway, store, tenant


async def test_the_provider_is_told_which_tenant_the_notification_is_for() -> None:
    gateway, store, tenant = await receive(PaymentStatus.PAID)

    assert gateway.tenants == [tenant]
    assert store.events[0].tenant_id == tenant
    assert store.events[0].status == "paid"


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
    ],
)
def test_a_link_status_only_moves_forward(current: str, incoming: str, after: str) -> None:
    assert next_status(current, incoming) == after
