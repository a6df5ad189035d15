"""Events for the platform's backend: signed as Standard Webhooks says (checked with the
specification's reference verifier, the ``standardwebhooks`` package), and delivered with
retries, backoff and a dead letter."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from changarrito.domain.errors import ConfigurationError
from changarrito.domain.event_delivery import EventDelivery
from changarrito.domain.events import (
    MAX_ATTEMPTS,
    Event,
    Posted,
    Receiver,
    body_of,
    headers_for,
    parse_secret,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def event(**changes: Any) -> Event:
    base = Event(
        id=1,
        event_id="evt_0123456789abcdef",
        type="conversation.handoff",
        tenant_id=UUID(int=7),
        ordering_key="conversation:c1",
        data={"conversationId": "c1", "actor": "api:user"},
        created_at=NOW,
        attempts=1,
    )
    return replace(base, **changes)


@settings(max_examples=50)
@given(
    data=st.dictionaries(st.text(max_size=10), st.text(max_size=40) | st.integers(), max_size=5),
    kind=st.sampled_from(["payment.succeeded", "message.failed", "conversation.resumed"]),
)
def test_every_event_verifies_with_the_reference_standard_webhooks_verifier(
    data: dict[str, Any], kind: str
) -> None:
    e = event(type=kind, data=data)
    body = body_of(e)
    # The verifier checks the timestamp against the real clock: sign for "now".
    now = datetime.now(UTC).timestamp()
    headers = headers_for(Receiver("https://x", parse_secret(SECRET)), e, body, now)
    received = Webhook(SECRET).verify(body, headers)

    assert received == {"type": kind, "timestamp": "2026-12-01T12:00:00Z", "data": data}
    assert headers["webhook-id"] == e.event_id


def test_a_signature_with_another_secret_or_body_does_not_verify() -> None:
    e = event()
    body = body_of(e)
    now = datetime.now(UTC).timestamp()
    headers = headers_for(Receiver("https://x", parse_secret(SECRET)), e, body, now)
    other = "whsec_" + base64.b64encode(b"another secret of 24 b!!").decode()

    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"api:user", b"api:evil"), headers)


@pytest.mark.parametrize("value", ["whsec_not base64!", "whsec_", "whsec_c2hvcnQ="])
def test_a_secret_that_is_not_whsec_base64_of_16_bytes_stops_start_up(value: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_secret(value)
    assert "CHANGARRITO_EVENTS_SECRET" in raised.value.message


def test_the_body_is_the_contracts_envelope_and_never_more() -> None:
    assert json.loads(body_of(event())) == {
        "type": "conversation.handoff",
        "timestamp": "2026-12-01T12:00:00Z",
        "data": {"conversationId": "c1", "actor": "api:user"},
    }


class FakeOutbox:
    def __init__(self, events: Sequence[Event]) -> None:
        self.due = list(events)
        self.delivered: list[tuple[int, int | None]] = []
        self.failed: list[tuple[int, float | None, str, int | None]] = []

    async def claim_events(self, worker: str, limit: int, lease: float) -> list[Event]:
        claimed, self.due = self.due[:limit], self.due[limit:]
        return claimed

    async def event_delivered(self, row_id: int, status: int | None) -> None:
        self.delivered.append((row_id, status))

    async def event_failed(
        self, row_id: int, delay: float | None, error: str, status: int | None
    ) -> None:
        self.failed.append((row_id, delay, error, status))

    async def events(self, state: str | None, limit: int, before: int | None = None) -> list[Event]:
        return []

    async def retry_events(self, row_ids: Sequence[int] | None) -> int:
        return 0


class FakePoster:
    def __init__(self, *answers: Posted) -> None:
        self.answers = list(answers)
        self.posts: list[tuple[str, bytes, Mapping[str, str]]] = []

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Posted:
        self.posts.append((url, body, headers))
        return self.answers.pop(0) if self.answers else Posted(204)


async def test_a_2xx_is_delivered_and_anything_else_is_tried_again_later() -> None:
    outbox = FakeOutbox([event(id=1), event(id=2, ordering_key="payment:p1")])
    poster = FakePoster(Posted(204), Posted(None, "the receiver could not be reached"))
    delivery = EventDelivery(outbox, poster, Receiver("https://rx.test/e", parse_secret(SECRET)))

    done = await delivery.deliver_due("w")

    assert [d.state for d in done] == ["delivered", "pending"]
    assert outbox.delivered == [(1, 204)]
    [(row, delay, error, status)] = outbox.failed
    assert (row, status, error) == (2, None, "the receiver could not be reached")
    assert delay is not None and 2.5 <= delay <= 5.0
    assert all(url == "https://rx.test/e" for url, _, _ in poster.posts)


async def test_an_event_out_of_attempts_is_dead_lettered() -> None:
    outbox = FakeOutbox([event(attempts=MAX_ATTEMPTS)])
    delivery = EventDelivery(
        outbox, FakePoster(Posted(500)), Receiver("https://rx.test/e", parse_secret(SECRET))
    )

    [done] = await delivery.deliver_due("w")

    assert done.state == "dead"
    assert outbox.failed == [(1, None, "the receiver answered 500", 500)]
