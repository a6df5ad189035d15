"""The payment rules of the domain: which event may move which link (``applies_to``), what is
kept of an event (``stored_payload``, ``bounded_event_id``), and that a declined attempt moves
nothing. Pure functions, tested with hypothesis."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from changarrito.domain.model import Source
from changarrito.domain.payment_model import PaymentEventRecord, PaymentLinkRecord, PaymentStatus
from changarrito.domain.payments import (
    MAX_EVENT_ID,
    MAX_STORED_PAYLOAD,
    applies_to,
    bounded_event_id,
    next_status,
    stored_payload,
)

TENANT = UUID("0f0e0d0c-0b0a-4908-8706-050403020100")
CURRENCIES = st.sampled_from(["MXN", "USD", "JPY", "KWD"])
AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**6), places=2)
SOURCES = st.sampled_from(list(Source))
STATUSES = st.sampled_from([s.value for s in PaymentStatus])


def a_link(amount: Decimal = Decimal("250.00"), currency: str = "MXN", **fields: Any) -> Any:
    values: dict[str, Any] = {
        "tenant_id": TENANT,
        "provider": "stripe",
        "provider_link_id": "cs_1",
        "url": "https://pay.test/cs_1",
        "amount": amount,
        "currency": currency,
        "description": "tacos",
        "reference": "order-77",
        "source": Source.PLATFORM,
    }
    values.update(fields)
    return PaymentLinkRecord(**values)


def paying(link: PaymentLinkRecord, **fields: Any) -> PaymentEventRecord:
    """The event that genuinely pays ``link``: named by our id, its amount, its currency."""
    values: dict[str, Any] = {
        "tenant_id": link.tenant_id,
        "provider": link.provider,
        "event_id": "evt_1",
        "type": "payment_intent.succeeded",
        "status": "paid",
        "payload": {},
        "source": link.source,
        "named_link_id": link.id,
        "amount": link.amount,
        "currency": link.currency,
    }
    values.update(fields)
    return PaymentEventRecord(**values)


@given(amount=AMOUNTS, currency=CURRENCIES, source=SOURCES, extra=AMOUNTS)
def test_a_payment_naming_the_link_for_at_least_its_amount_in_its_currency_applies(
    amount: Decimal, currency: str, source: Source, extra: Decimal
) -> None:
    link = a_link(amount, currency, source=source)

    assert applies_to(paying(link), link)
    assert applies_to(paying(link, amount=amount + extra), link)
    assert applies_to(paying(link, named_link_id=None, provider_link_id="cs_1"), link)


@given(amount=AMOUNTS, paid=AMOUNTS, status=st.sampled_from(["paid", "refunded"]))
def test_a_payment_for_less_than_the_link_never_applies(
    amount: Decimal, paid: Decimal, status: str
) -> None:
    link = a_link(amount)
    event = paying(link, amount=paid, status=status)

    assert applies_to(event, link) == (paid >= amount)


@given(currency=CURRENCIES, other=CURRENCIES, amount=AMOUNTS)
def test_a_payment_in_another_currency_never_applies_whatever_its_amount(
    currency: str, other: str, amount: Decimal
) -> None:
    link = a_link(Decimal("0.01"), currency)
    event = paying(link, currency=other, amount=amount)

    assert applies_to(event, link) == (currency == other)


@given(status=STATUSES)
def test_a_payment_that_does_not_say_its_amount_or_currency_moves_no_money(status: str) -> None:
    link = a_link()
    money = status in ("paid", "refunded")

    assert applies_to(paying(link, status=status, amount=None), link) is not money
    assert applies_to(paying(link, status=status, currency=None), link) is not money
    assert applies_to(paying(link, status=status, amount=Decimal("NaN")), link) is not money


@given(status=STATUSES, link_source=SOURCES, event_source=SOURCES)
def test_an_event_verified_with_another_credential_source_never_applies(
    status: str, link_source: Source, event_source: Source
) -> None:
    link = a_link(source=link_source)
    event = paying(link, status=status, source=event_source)

    assert applies_to(event, link) == (link_source is event_source)


@given(status=STATUSES)
def test_an_event_of_another_tenant_or_provider_never_applies(status: str) -> None:
    link = a_link()

    assert not applies_to(paying(link, status=status, tenant_id=uuid4()), link)
    assert not applies_to(paying(link, status=status, provider="mercadopago"), link)


@given(status=STATUSES, same_reference=st.booleans())
def test_an_event_naming_another_link_or_none_never_applies_whatever_its_reference(
    status: str, same_reference: bool
) -> None:
    link = a_link()
    reference = link.reference if same_reference else "other"

    assert not applies_to(paying(link, status=status, named_link_id=uuid4()), link)
    assert not applies_to(
        paying(link, status=status, named_link_id=None, reference=reference), link
    )
    # Our id and the provider's link id must agree when the event carries both.
    assert not applies_to(paying(link, status=status, provider_link_id="cs_other"), link)


def test_an_older_links_payment_does_not_pay_a_newer_link_with_the_same_reference() -> None:
    older, newer = a_link(Decimal(100)), a_link(Decimal(500), provider_link_id="cs_2")

    event = paying(older)

    assert applies_to(event, older)
    assert not applies_to(event, newer)
    assert not applies_to(replace(event, named_link_id=newer.id), newer)  # 100 < 500


@given(current=st.sampled_from(["pending", "paid", "failed", "expired", "refunded"]))
def test_a_declined_attempt_moves_no_link(current: str) -> None:
    assert next_status(current, PaymentStatus.DECLINED.value) == current


json_values = st.none() | st.booleans() | st.integers() | st.text(max_size=100)


@given(
    raw=st.dictionaries(st.text(max_size=20), json_values | st.lists(json_values), max_size=10),
    reference=st.text(max_size=1000),
    padding=st.sampled_from([0, 100, 4000, 300_000]),
)
@settings(max_examples=50)
def test_a_stored_payload_is_at_most_a_few_kilobytes_whatever_the_provider_sent(
    raw: dict[str, Any], reference: str, padding: int
) -> None:
    facts = {key: reference for key in ("type", "linkId", "providerLinkId", "reference", "x")}
    facts.update(status="paid", amount=None)
    payload = stored_payload(facts, {**raw, "padding": "x" * padding})

    assert len(json.dumps(payload).encode()) <= MAX_STORED_PAYLOAD
    assert "amount" not in payload and payload["status"] == "paid"


def test_a_small_summary_is_kept_and_a_large_one_only_as_its_hash() -> None:
    small = stored_payload({"status": "paid"}, {"id": "evt_1"})
    large = stored_payload({"status": "paid"}, {"body": "x" * 250_000})

    assert small == {"status": "paid", "raw": {"id": "evt_1"}}
    assert large["raw"]["omitted"] is True and large["raw"]["bytes"] > 250_000
    assert len(large["raw"]["sha256"]) == 64


def test_a_stored_payload_has_no_nul_character_which_jsonb_refuses() -> None:
    payload = stored_payload({"reference": "order\x0077"}, {"note": "a\x00b", "k\x00": 1})

    assert "\x00" not in json.dumps(payload, ensure_ascii=False)
    assert "\\u0000" not in json.dumps(payload)
    assert payload["reference"] == "order77" and payload["raw"]["note"] == "ab"


@given(event_id=st.text(min_size=1, max_size=2000))
def test_an_event_id_is_stored_bounded_and_stable(event_id: str) -> None:
    stored = bounded_event_id(event_id)

    assert len(stored) <= MAX_EVENT_ID + len("sha256:")
    assert stored == bounded_event_id(event_id)
    assert (stored == event_id) == (len(event_id) <= MAX_EVENT_ID)


def test_a_literal_backslash_u0000_in_a_payload_is_kept_as_text_and_nul_characters_dropped() -> (
    None
):
    payload = stored_payload({"status": "paid"}, {"path": "C:\\u0000dir", "nul\x00key": "a\x00b"})

    assert payload["raw"] == {"path": "C:\\u0000dir", "nulkey": "ab"}
    assert "\x00" not in json.dumps(payload, ensure_ascii=False)
