"""The conversations PostgreSQL keeps (migration 0013's ``changarrito_conversation``), against
the domain's rules: the same sightings give the same contacts as ``ContactBook``, the window
moves as ``window_until`` says, and the webhook intake files every message in its
conversation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from changarrito.domain.conversations import partition, window_until

PHONES = st.sampled_from(["521", "522", "523", None])
USERS = st.sampled_from(["MX.u1", "MX.u2", "MX.u3", None])


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def sighted(conn: psycopg.Connection, pnid: str, sightings: list) -> list[set[int]]:
    """Files one inbound message per sighting, in order, and groups them by the conversation
    they end up in (a merge moves the messages already filed)."""
    for index, (phone, user) in enumerate(sightings):
        conn.execute(
            """
            INSERT INTO whatsapp_inbound_messages
                (wamid, phone_number_id, route, customer_id, customer_phone, customer_user_id,
                 type, text, raw, sent_at, state, conversation_id)
            VALUES (%(wamid)s, %(pnid)s, 'platform', coalesce(%(phone)s, %(user)s), %(phone)s,
                    %(user)s, 'text', %(index)s, '{}', now(), 'ignored',
                    changarrito_conversation(%(pnid)s, NULL, %(phone)s, %(user)s, NULL, now(),
                                             true))
            """,
            {
                "wamid": f"wamid.{uuid.uuid4().hex}",
                "pnid": pnid,
                "phone": phone,
                "user": user,
                "index": str(index),
            },
        )
    rows = conn.execute(
        "SELECT conversation_id, text::int FROM whatsapp_inbound_messages"
        " WHERE phone_number_id = %s AND conversation_id IS NOT NULL",
        (pnid,),
    ).fetchall()
    groups: dict[object, set[int]] = {}
    for conversation, index in rows:
        groups.setdefault(conversation, set()).add(index)
    return sorted(groups.values(), key=min)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(PHONES, USERS), max_size=10))
def test_postgres_files_every_sighting_in_the_conversation_the_domain_rules_give(
    conn: psycopg.Connection, sightings: list
) -> None:
    pnid = f"pn-{uuid.uuid4().hex[:12]}"
    assert sighted(conn, pnid, sightings) == partition(sightings)
    contacts = conn.execute(
        "SELECT count(*) FROM whatsapp_contacts c JOIN whatsapp_conversations v"
        " ON v.contact_id = c.id WHERE c.phone_number_id = %s",
        (pnid,),
    ).fetchone()
    assert contacts is not None and contacts[0] == len(partition(sightings))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.floats(min_value=-72, max_value=5), min_size=1, max_size=6))
def test_postgres_moves_the_window_as_the_domain_rule_says(
    conn: psycopg.Connection, hours_ago: list[float]
) -> None:
    pnid = f"pn-{uuid.uuid4().hex[:12]}"
    with conn.transaction():  # one now() for every sighting
        (now,) = conn.execute("SELECT now()").fetchone() or (None,)
        for hours in hours_ago:
            conn.execute(
                "SELECT changarrito_conversation(%s, NULL, '521', NULL, NULL, %s, true)",
                (pnid, now - timedelta(hours=hours)),
            )
        row = conn.execute(
            "SELECT window_open_until FROM whatsapp_conversations WHERE phone_number_id = %s",
            (pnid,),
        ).fetchone()
    expected = None
    for hours in hours_ago:
        expected = window_until(expected, now - timedelta(hours=hours), now)
    assert row is not None and row[0] == expected


def test_a_system_notice_neither_opens_the_window_nor_counts_as_the_customer_writing(
    conn: psycopg.Connection,
) -> None:
    pnid = f"pn-{uuid.uuid4().hex[:12]}"
    conn.execute(
        "SELECT changarrito_conversation(%s, NULL, '521', NULL, NULL, now(), false)", (pnid,)
    )
    row = conn.execute(
        "SELECT window_open_until, last_inbound_at, state FROM whatsapp_conversations"
        " WHERE phone_number_id = %s",
        (pnid,),
    ).fetchone()
    assert row == (None, None, "bot")


def test_one_number_keeps_the_conversations_of_each_of_its_owners_apart(
    conn: psycopg.Connection,
) -> None:
    pnid, first, second = f"pn-{uuid.uuid4().hex[:12]}", uuid.uuid4(), uuid.uuid4()
    one = conn.execute(
        "SELECT changarrito_conversation(%s, %s, '521', NULL, NULL, now(), true)", (pnid, first)
    ).fetchone()
    other = conn.execute(
        "SELECT changarrito_conversation(%s, %s, '521', NULL, NULL, now(), true)", (pnid, second)
    ).fetchone()
    assert one is not None and other is not None and one[0] != other[0]


def test_a_closed_conversation_opens_again_with_the_bot_when_the_customer_writes(
    conn: psycopg.Connection,
) -> None:
    pnid = f"pn-{uuid.uuid4().hex[:12]}"
    (conversation,) = conn.execute(
        "SELECT changarrito_conversation(%s, NULL, '521', NULL, NULL, now(), true)", (pnid,)
    ).fetchone() or (None,)
    conn.execute(
        "UPDATE whatsapp_conversations SET state = 'closed' WHERE id = %s", (conversation,)
    )

    conn.execute(
        "SELECT changarrito_conversation(%s, NULL, '521', NULL, NULL, now(), true)", (pnid,)
    )

    state = conn.execute(
        "SELECT state, state_changed_by FROM whatsapp_conversations WHERE id = %s", (conversation,)
    ).fetchone()
    switches = conn.execute(
        "SELECT from_state, to_state, actor FROM whatsapp_conversation_switches"
        " WHERE conversation_id = %s",
        (conversation,),
    ).fetchall()
    assert state == ("bot", "customer")
    assert switches == [("closed", "bot", "customer")]
