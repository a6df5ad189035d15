"""Conversations: who a customer is, who answers them, and when a free-form message may go.

Pure rules, applied by the Postgres adapters (``changarrito_conversation`` in migration 0013
implements ``ContactBook.sight`` in SQL; a test runs both on the same sightings) and by the
pipeline and the tenant API:

- **contacts** (``ContactBook``): a customer of one receiving number is known by the
  business-scoped user id (BSUID), by the phone, or both. The BSUID identifies a person; a
  phone identifies whoever last showed it. A sighting with both joins the contact of each (the
  older one stays); a phone last seen with another BSUID moves to the one it is seen with now;
- **state** (``ConversationState``): ``bot`` (the assistant answers), ``human`` (a person
  does and the assistant stays silent, until ``resume`` or an idle time), ``closed`` (a new
  message from the customer opens it again, with the bot);
- **the customer-service window** (``window_until``): free-form messages may be sent until
  24 hours after Meta's timestamp of the customer's last message, never later than 24 hours
  after it reached us (a webhook redelivered a day late does not reopen it);
- **bursts** (``quiet_until``): messages that follow each other within the quiet period are
  answered together, once the customer has been quiet that long.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

#: The customer service window: free-form replies are allowed this long after their message.
SERVICE_WINDOW = timedelta(hours=24)
#: The default quiet period: a burst's messages this close together get one reply.
DEFAULT_QUIET_PERIOD = 2.0
#: Longest quiet period a tenant may configure (seconds).
MAX_QUIET_PERIOD = 60.0
#: The default idle time after which a conversation with a person goes back to the bot.
DEFAULT_HANDOFF_IDLE = timedelta(hours=12)
#: Types that are to be answered even without text: media (``reading.MediaReader`` makes
#: them readable where it can; what the model cannot read gets the "only text and voice
#: notes" reply, once per conversation) and what WhatsApp could not show.
UNREADABLE_TYPES = frozenset({"audio", "image", "video", "document", "sticker", "unsupported"})
#: Inbound types that are not the customer writing (they neither open the window nor count).
NOT_FROM_THE_CUSTOMER = frozenset({"system", "errors"})

DEFAULT_HANDOFF_MESSAGE = (
    "Te comunico con una persona del equipo; en un momento te atienden. "
    "/ I'm passing you to a person on the team; they'll be with you shortly."
)


class ConversationState(StrEnum):
    BOT = "bot"
    HUMAN = "human"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Switch:
    """A change of a conversation's state, recorded with who made it (``api:<subject>``,
    ``owner:<phone>``, ``model``, ``idle``...) and why. ``before_reply``: applied before the
    reply is recorded (an idle conversation back to the bot), else after it (a handoff)."""

    to: ConversationState
    actor: str
    reason: str | None = None
    before_reply: bool = False


def opens_window(message_type: str) -> bool:
    """Whether an inbound message of this type is the customer writing (and so opens the
    window and counts as their activity): everything but system notices and errors."""
    return message_type not in NOT_FROM_THE_CUSTOMER


def window_until(current: datetime | None, sent_at: datetime, received_at: datetime) -> datetime:
    """The window after a customer's message Meta timestamped ``sent_at`` reached us at
    ``received_at``: it never shrinks, and a late message does not reopen it."""
    opened = min(sent_at, received_at) + SERVICE_WINDOW
    return opened if current is None or opened > current else current


def window_open(until: datetime | None, now: datetime) -> bool:
    return until is not None and now < until


def send_as(until: datetime | None, now: datetime, *, template: bool) -> str | None:
    """How a message for a purpose goes at ``now``: ``text`` inside the window, ``template``
    outside it when the purpose has one, else ``None`` (nothing may be sent)."""
    if window_open(until, now):
        return "text"
    return "template" if template else None


def quiet_until(last_received: datetime, quiet_period: float) -> datetime | None:
    """When the burst ending with a message received at ``last_received`` is due; ``None``
    when quiet periods are off (``0``)."""
    if quiet_period <= 0:
        return None
    return last_received + timedelta(seconds=min(quiet_period, MAX_QUIET_PERIOD))


def idle_resume_due(human_active_at: datetime | None, idle: timedelta, now: datetime) -> bool:
    """Whether a conversation with a person has been idle long enough to go back to the bot
    (counted from the last time someone from the shop acted in it)."""
    return human_active_at is None or now >= human_active_at + idle


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    """How one tenant's conversations are answered: the platform's defaults
    (``CHANGARRITO_QUIET_PERIOD``...), which a tenant's LLM config overrides."""

    #: Seconds of quiet after a customer's message before the burst is answered (0: off).
    quiet_period: float = DEFAULT_QUIET_PERIOD
    #: How long a conversation with a person stays with them without activity.
    handoff_idle: timedelta = DEFAULT_HANDOFF_IDLE
    #: What the customer is told when the conversation is handed to a person.
    handoff_message: str = DEFAULT_HANDOFF_MESSAGE
    #: The once-per-conversation reply to what the assistant cannot read (``None``: one that
    #: says what it reads, ``media.text_only_reply``).
    text_only_reply: str | None = None

    def overridden_by(self, config: Mapping[str, Any]) -> ConversationSettings:
        """These settings with a tenant's LLM config's own (``quietPeriodSeconds``,
        ``handoffIdleHours``, ``handoffMessage``, ``textOnlyReply``) where it set them."""
        quiet = _number(config.get("quietPeriodSeconds"))
        idle = _number(config.get("handoffIdleHours"))
        message = _text(config.get("handoffMessage"))
        notice = _text(config.get("textOnlyReply"))
        return ConversationSettings(
            quiet_period=self.quiet_period if quiet is None else min(quiet, MAX_QUIET_PERIOD),
            handoff_idle=self.handoff_idle if not idle else timedelta(hours=idle),
            handoff_message=message or self.handoff_message,
            text_only_reply=notice or self.text_only_reply,
        )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


# --- contacts ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Contact:
    """One contact of ``ContactBook``: its keys, and the order it was created in."""

    id: int
    user_id: str | None = None
    phone: str | None = None


@dataclass(slots=True)
class ContactBook:
    """The contacts of one receiving number, as the merge rules keep them (an in-memory model
    of ``changarrito_conversation``; ids are in creation order). ``sight`` returns the
    contact a message belongs to."""

    contacts: dict[int, Contact] = field(default_factory=dict)
    _next: int = 1

    def by_user(self, user_id: str) -> Contact | None:
        return next((c for c in self.contacts.values() if c.user_id == user_id), None)

    def by_phone(self, phone: str) -> Contact | None:
        return next((c for c in self.contacts.values() if c.phone == phone), None)

    def sight(self, phone: str | None, user_id: str | None) -> int | None:
        """The contact of a message from ``phone`` / ``user_id`` (created, completed, or
        merged as the rules say); ``None`` when it names nobody."""
        phone, user_id = phone or None, user_id or None
        if phone is None and user_id is None:
            return None
        u = self.by_user(user_id) if user_id else None
        p = self.by_phone(phone) if phone else None
        if u is None and p is None:
            return self._new(user_id, phone)
        if p is None or (u is not None and u.id == p.id):
            assert u is not None
            u.phone = phone or u.phone
            return u.id
        if u is None and (p.user_id is None or user_id is None):
            p.user_id = user_id or p.user_id
            return p.id
        if u is None:  # the phone was another person's: it is this new person's now
            p.phone = None
            return self._new(user_id, phone)
        if p.user_id is not None:  # two people: the phone moves to the BSUID's
            p.phone = None
            u.phone = phone
            return u.id
        keep, gone = (p, u) if p.id < u.id else (u, p)
        del self.contacts[gone.id]
        keep.user_id, keep.phone = user_id, phone
        return keep.id

    def _new(self, user_id: str | None, phone: str | None) -> int:
        contact = Contact(self._next, user_id, phone)
        self.contacts[contact.id] = contact
        self._next += 1
        return contact.id


def partition(sightings: Iterable[tuple[str | None, str | None]]) -> list[set[int]]:
    """Which sightings (by index) ``ContactBook`` puts in one contact, as a set of groups:
    a merge moves earlier sightings along with their contact."""
    book = ContactBook()
    owner: dict[int, int] = {}
    for index, (phone, user_id) in enumerate(sightings):
        before = set(book.contacts)
        contact = book.sight(phone, user_id)
        merged = before - set(book.contacts)
        for seen, of in owner.items():
            if of in merged and contact is not None:
                owner[seen] = contact
        if contact is not None:
            owner[index] = contact
    groups: dict[int, set[int]] = {}
    for seen, of in owner.items():
        groups.setdefault(of, set()).add(seen)
    return sorted(groups.values(), key=min)
