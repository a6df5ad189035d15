"""The conversation rules of ``domain/conversations.py``: who a customer is (the contact
merge), the customer-service window, the quiet period and the idle resume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from changarrito.domain.conversations import (
    SERVICE_WINDOW,
    ContactBook,
    ConversationSettings,
    idle_resume_due,
    partition,
    quiet_until,
    send_as,
    window_open,
    window_until,
)

phones = st.sampled_from(["521", "522", "523", None])
users = st.sampled_from(["MX.u1", "MX.u2", "MX.u3", None])
sightings = st.lists(st.tuples(phones, users), max_size=12)
times = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
)


@given(sightings)
def test_no_two_contacts_ever_share_a_phone_or_a_business_scoped_id(seen: list) -> None:
    book = ContactBook()
    for phone, user in seen:
        book.sight(phone, user)
    contacts = list(book.contacts.values())
    held_phones = [c.phone for c in contacts if c.phone]
    held_users = [c.user_id for c in contacts if c.user_id]
    assert len(held_phones) == len(set(held_phones))
    assert len(held_users) == len(set(held_users))
    assert all(c.phone or c.user_id for c in contacts)


@given(sightings)
def test_a_sighting_belongs_to_the_contact_that_now_holds_its_keys(seen: list) -> None:
    book = ContactBook()
    for phone, user in seen:
        contact = book.sight(phone, user)
        if phone is None and user is None:
            assert contact is None
            continue
        assert contact is not None
        if user:
            assert book.by_user(user) is book.contacts[contact]
        if phone:
            assert book.by_phone(phone) is book.contacts[contact]


@given(sightings)
def test_messages_of_one_business_scoped_id_are_always_one_conversation(seen: list) -> None:
    groups = partition(seen)
    for user in {u for _, u in seen if u}:
        indexes = {i for i, (_, u) in enumerate(seen) if u == user}
        assert sum(1 for g in groups if g & indexes) == 1


def test_a_phone_seen_then_shown_with_its_business_scoped_id_is_merged_not_split() -> None:
    """A customer first seen by phone only, then with both: one conversation."""
    book = ContactBook()
    first = book.sight("529", None)
    assert book.sight("529", "MX.new") == first
    assert book.sight(None, "MX.new") == first


def test_a_username_user_seen_by_id_then_by_phone_and_id_keeps_the_older_conversation() -> None:
    assert partition([(None, "MX.u1"), ("521", None), ("521", "MX.u1")]) == [{0, 1, 2}]
    book = ContactBook()
    by_id = book.sight(None, "MX.u1")
    book.sight("521", None)
    assert book.sight("521", "MX.u1") == by_id and len(book.contacts) == 1


def test_a_phone_that_moves_to_another_person_leaves_the_first_persons_conversation() -> None:
    assert partition([("521", "MX.u1"), ("521", "MX.u2"), (None, "MX.u1")]) == [{0, 2}, {1}]


@given(st.one_of(st.none(), times), times, st.floats(min_value=0, max_value=72 * 3600))
def test_the_window_never_shrinks_and_a_late_webhook_does_not_reopen_it(
    current: datetime | None, sent: datetime, delay: float
) -> None:
    received = sent + timedelta(seconds=delay)
    until = window_until(current, sent, received)
    opened = sent + SERVICE_WINDOW  # sent <= received here
    assert until == (opened if current is None else max(current, opened))
    # A message Meta timestamped in the future opens the window from when it reached us.
    assert window_until(None, received + timedelta(hours=5), received) == received + SERVICE_WINDOW


@given(times, st.floats(min_value=0, max_value=86400 * 2))
def test_the_window_is_open_for_24_hours_after_the_customers_message(
    sent: datetime, later: float
) -> None:
    until = window_until(None, sent, sent)
    assert window_open(until, sent + timedelta(seconds=later)) is (later < 24 * 3600)
    assert window_open(None, sent) is False


#: A customer's message: Meta's timestamp, and how many seconds later it reached us (up to
#: three days: a webhook redelivered late).
sightings = st.tuples(times, st.floats(min_value=0, max_value=72 * 3600))


@given(
    st.lists(sightings, max_size=12),
    times,
    st.booleans(),
)
def test_any_history_allows_free_text_exactly_until_24_hours_after_its_latest_message(
    history: list[tuple[datetime, float]], now: datetime, has_template: bool
) -> None:
    """Whatever order the customer's messages reach us in, and however late: text may go
    while some message is less than 24 hours old (by Meta's timestamp, or by when it reached
    us if that is earlier); otherwise the purpose's template, or nothing."""
    until: datetime | None = None
    for sent, delay in history:
        until = window_until(until, sent, sent + timedelta(seconds=delay))
    inside = any(now < sent + SERVICE_WINDOW for sent, _ in history)

    assert window_open(until, now) is inside
    expected = "text" if inside else ("template" if has_template else None)
    assert send_as(until, now, template=has_template) == expected


@given(times, st.floats(min_value=-5, max_value=120))
def test_the_quiet_period_counts_from_the_newest_message_and_zero_turns_it_off(
    last: datetime, quiet: float
) -> None:
    due = quiet_until(last, quiet)
    if quiet <= 0:
        assert due is None
    else:
        assert due == last + timedelta(seconds=min(quiet, 60))


@given(times, st.floats(min_value=0, max_value=48), st.floats(min_value=0.1, max_value=48))
def test_a_conversation_goes_back_to_the_bot_only_after_the_idle_time(
    active: datetime, hours: float, idle: float
) -> None:
    now = active + timedelta(hours=hours)
    due = idle_resume_due(active, timedelta(hours=idle), now)
    assert due is (timedelta(hours=hours) >= timedelta(hours=idle))  # as datetimes round
    assert idle_resume_due(None, timedelta(hours=idle), now)  # nobody acted: due at once


def test_a_tenants_llm_config_overrides_the_platforms_conversation_settings() -> None:
    platform = ConversationSettings(quiet_period=2)
    own = platform.overridden_by(
        {"quietPeriodSeconds": 0, "handoffIdleHours": 3, "handoffMessage": " Ya te atiendo "}
    )
    assert own.quiet_period == 0 and own.handoff_idle == timedelta(hours=3)
    assert own.handoff_message == "Ya te atiendo"
    assert own.text_only_reply == platform.text_only_reply is None  # says what it reads
    assert platform.overridden_by({"textOnlyReply": " Solo texto "}).text_only_reply == (
        "Solo texto"
    )
    assert platform.overridden_by({"quietPeriodSeconds": True, "handoffMessage": " "}) == platform
