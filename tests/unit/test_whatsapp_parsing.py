"""Decoding Meta's webhook into domain records, and the outbound status machine."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from changarrito.adapters.whatsapp.webhook_parser import Destination, parse, to_intake
from changarrito.domain.conversations import UNREADABLE_TYPES
from changarrito.domain.errors import InvalidWebhook
from changarrito.domain.whatsapp import (
    MAX_UPDATES,
    STATUS_ORDER,
    InboundState,
    RouteKind,
    advance,
    final_status,
    meta_time,
)
from whatsapp_payloads import (
    CUSTOMER,
    CUSTOMER_BSUID,
    FAILED_ERROR,
    RATE_LIMIT_ERROR,
    change,
    contact,
    encode,
    every_type,
    message,
    other_field,
    status,
    text_message,
    webhook,
)

PNID = "106540352242922"
NOW = datetime(2026, 5, 1, tzinfo=UTC)
TENANT = uuid.uuid4()


def intake_of(payload: object, route: RouteKind = RouteKind.TENANT):  # type: ignore[no-untyped-def]
    tenant = TENANT if route is RouteKind.TENANT else None
    return to_intake(parse(encode(payload)), {PNID: Destination(route, tenant)}, NOW)


@pytest.mark.parametrize("name", list(every_type()))
def test_every_documented_message_type_gives_its_text_to_answer(name: str) -> None:
    sent, text = every_type()[name]
    [record] = intake_of(webhook(change(PNID, messages=[sent]))).messages

    assert (record.wamid, record.type, record.text) == (sent["id"], sent["type"], text)
    # Meta's sample of an unsupported message is an edit it could not show: nothing new said.
    unreadable = not text and sent["type"] in UNREADABLE_TYPES and sent["type"] != "unsupported"
    assert record.state is (InboundState.PENDING if text or unreadable else InboundState.IGNORED)
    assert record.unreadable is unreadable
    assert record.tenant_id == TENANT
    assert encode(sent) == record.raw


def test_a_system_message_without_contacts_keeps_its_sender() -> None:
    sent = message("system", {"body": "User changed number", "wa_id": "12195555358"})
    [record] = intake_of(webhook(change(PNID, messages=[sent], contacts=[]))).messages

    assert (record.customer.phone, record.customer.name, record.text) == (CUSTOMER, None, None)


def test_a_user_known_only_by_business_scoped_id_is_answered_by_it() -> None:
    sent = text_message("hola", sender=None, from_user_id=CUSTOMER_BSUID)
    value = change(PNID, messages=[sent], contacts=[contact(None, user_id=CUSTOMER_BSUID)])
    [record] = intake_of(webhook(value)).messages

    assert (record.customer.key, record.customer.phone) == (CUSTOMER_BSUID, None)
    assert record.state is InboundState.PENDING


def test_the_contact_matching_the_sender_names_them_among_several() -> None:
    msgs = [text_message("a", sender="1"), text_message("b", sender="2")]
    value = change(
        PNID, messages=msgs, contacts=[contact("2", name="Dos"), contact("1", name="Uno")]
    )

    assert [m.customer.name for m in intake_of(webhook(value)).messages] == ["Uno", "Dos"]


def test_messages_to_a_number_nobody_owns_are_never_pending() -> None:
    [record] = intake_of(
        webhook(change(PNID, messages=[text_message()])), RouteKind.UNROUTED
    ).messages

    assert (record.route, record.tenant_id, record.state) == (
        RouteKind.UNROUTED,
        None,
        InboundState.IGNORED,
    )


def test_unknown_members_types_and_fields_do_not_break_decoding() -> None:
    sent = text_message("hola", brand_new_member={"x": [1, 2]})
    value = change(PNID, messages=[sent, message("poll_vote", {"q": 1})])
    value["value"]["future"] = True
    hook = webhook(value, other_field("user_id_update", {"anything": 1}))
    hook["entry"][0]["novelty"] = "yes"

    intake = intake_of(hook)
    assert [m.text for m in intake.messages] == ["hola", None]
    assert [(e.kind, e.field) for e in intake.events] == [("field", "user_id_update")]


def test_statuses_and_value_level_errors_become_records() -> None:
    value = change(
        PNID,
        statuses=[status("wamid.A", "sent", timestamp="1750030073"), status("wamid.A", "failed")],
        errors=[RATE_LIMIT_ERROR],
    )
    intake = intake_of(webhook(value))

    sent, failed = intake.statuses
    assert (sent.status, sent.occurred_at, sent.error_code) == (
        "sent",
        datetime.fromtimestamp(1750030073, UTC),
        None,
    )
    assert (failed.error_code, failed.error_title) == (FAILED_ERROR["code"], FAILED_ERROR["title"])
    assert [(e.kind, e.error_code) for e in intake.events] == [("error", 130429)]


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b'{"object": "instagram", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",'
        b' "value": {"statuses": [{"id": "w", "status": "sent"}]}}]}]}',
    ],
)
def test_a_body_that_is_not_a_webhook_says_why(body: bytes) -> None:
    with pytest.raises(InvalidWebhook, match="not a WhatsApp webhook"):
        parse(body)


def test_more_updates_than_meta_ever_batches_is_refused() -> None:
    msgs = [text_message(str(i)) for i in range(MAX_UPDATES + 1)]

    with pytest.raises(InvalidWebhook, match="updates"):
        parse(encode(webhook(change(PNID, messages=msgs))))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1749416383", datetime.fromtimestamp(1749416383, UTC)),
        (1749416383, datetime.fromtimestamp(1749416383, UTC)),
        ("soon", NOW),
        ("-5", NOW),
        ("9" * 30, NOW),
        (None, NOW),
    ],
)
def test_metas_timestamps_are_read_or_replaced_by_the_time_received(
    value: object, expected: datetime
) -> None:
    assert meta_time(value, NOW) == expected  # type: ignore[arg-type]


# --- the status machine ---------------------------------------------------------------------


def test_a_read_reply_is_never_downgraded_by_a_late_delivered() -> None:
    assert advance("read", "delivered") == "read"
    assert advance("delivered", "read") == "read"
    assert advance("sent", "failed") == "failed"
    assert advance("read", "failed") == "read"
    assert advance("read", "played") == "played"
    assert advance("sent", "deleted") == "sent"  # a status we do not know is not applied


@given(st.lists(st.sampled_from([*STATUS_ORDER, "unknown"]), max_size=8))
def test_the_final_status_does_not_depend_on_arrival_order(statuses: list[str]) -> None:
    results = {
        final_status("queued", p) for p in itertools.islice(itertools.permutations(statuses), 50)
    }

    assert len(results) == 1


@given(st.sampled_from(STATUS_ORDER), st.sampled_from([*STATUS_ORDER, "other"]))
def test_a_status_never_moves_backwards(current: str, incoming: str) -> None:
    after = advance(current, incoming)

    assert STATUS_ORDER.index(after) >= STATUS_ORDER.index(current)


@pytest.mark.parametrize(
    ("unsupported", "code", "told"),
    [
        ("poll_creation", 131051, True),
        ("gif", 131051, True),
        ("edit", 131051, False),
        ("revoke", 131051, False),
        (None, 131060, False),
    ],
)
def test_a_message_whatsapp_could_not_show_gets_the_text_only_reply_unless_it_said_nothing_new(
    unsupported: str | None, code: int, told: bool
) -> None:
    sent = {
        "from": "16505551234",
        "id": "wamid.U1",
        "timestamp": "1750090702",
        "type": "unsupported",
        "unsupported": {"type": unsupported},
        "errors": [{"code": code, "title": "t"}],
    }
    [record] = intake_of(webhook(change(PNID, messages=[sent]))).messages

    assert record.unreadable is told
    assert record.state is (InboundState.PENDING if told else InboundState.IGNORED)


def test_an_edit_carries_the_new_text_for_the_message_it_edits_and_is_never_answered() -> None:
    sent = {
        "from": "16505551234",
        "id": "wamid.E1",
        "timestamp": "1750090702",
        "type": "edit",
        "edit": {
            "original_message_id": "wamid.A",
            "message": {"type": "text", "text": {"body": "mejor dos kilos"}},
        },
    }
    [record] = intake_of(webhook(change(PNID, messages=[sent]))).messages

    assert (record.changes_wamid, record.text) == ("wamid.A", "mejor dos kilos")
    assert record.state is InboundState.IGNORED


def test_a_revoke_names_the_message_it_deletes_and_is_never_answered() -> None:
    sent = {
        "from": "16505551234",
        "id": "wamid.R1",
        "timestamp": "1750090702",
        "type": "revoke",
        "revoke": {"original_message_id": "wamid.A"},
    }
    [record] = intake_of(webhook(change(PNID, messages=[sent]))).messages

    assert (record.changes_wamid, record.text, record.state) == (
        "wamid.A",
        None,
        InboundState.IGNORED,
    )


def test_an_owner_echo_is_read_as_the_owner_writing_to_that_customer() -> None:
    echoes = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "smb_message_echoes",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": PNID,
                            },
                            "message_echoes": [
                                {
                                    "from": "15550783881",
                                    "to": "16505551234",
                                    "id": "wamid.HBgE",
                                    "timestamp": "1739321024",
                                    "type": "text",
                                    "text": {"body": "Te paso la cuenta para el depósito"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    intake = intake_of(echoes)

    [echo] = intake.echoes
    assert (echo.wamid, echo.owner, echo.customer, echo.text) == (
        "wamid.HBgE",
        "15550783881",
        "16505551234",
        "Te paso la cuenta para el depósito",
    )
    assert echo.tenant_id == TENANT and intake.messages == []
    [event] = intake.events  # what Meta sent is kept as sent, as for any other field
    assert event.field == "smb_message_echoes"
