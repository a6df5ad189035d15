"""The message pipeline as a pure use case: fakes for every port, one inbound message at a time."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from changarrito.domain.assistant import DEFAULT_FALLBACK_TEXT, Assistant
from changarrito.domain.backoff import backoff_delay
from changarrito.domain.budgets import BudgetExceeded
from changarrito.domain.chat import (
    HANDOFF_TOOL,
    Attachment,
    Audio,
    ChatMessage,
    Reply,
    Tool,
    ToolCall,
    Transcript,
    Usage,
)
from changarrito.domain.conversations import (
    DEFAULT_HANDOFF_MESSAGE,
    ConversationSettings,
    ConversationState,
    Switch,
)
from changarrito.domain.errors import (
    NotConfigured,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderQuotaExceeded,
    RecipientRateLimited,
    RetryableProviderError,
    UnknownPhoneNumber,
)
from changarrito.domain.media import (
    Capabilities,
    MediaFile,
    MediaItem,
    MediaRefused,
    OutgoingMedia,
    text_only_reply,
)
from changarrito.domain.model import (
    IntegrationType,
    PlatformCredential,
    PlatformDefaults,
    Resolved,
    Secrets,
    Source,
)
from changarrito.domain.pipeline import Pipeline, PipelineSettings
from changarrito.domain.queued import OutboundPart, QueuedMessage, Turn, TurnMessage
from changarrito.domain.text import split_text

TENANT = UUID("11111111-1111-1111-1111-111111111111")
PNID = "106540352242922"
CUSTOMER = "16505551234"
#: The database's clock when a turn is read.
NOW = datetime(2026, 5, 1, 12, 5, tzinfo=UTC)


def inbound(**changes: Any) -> QueuedMessage:
    message = QueuedMessage(
        id=7,
        wamid="wamid.IN7",
        phone_number_id=PNID,
        tenant_id=TENANT,
        type="text",
        text="¿Tienen tallas grandes?",
        sent_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
        attempts=1,
        customer_id=CUSTOMER,
        customer_phone=CUSTOMER,
    )
    return replace(message, **changes)


def sender(tenant_id: UUID | None = TENANT, token: str = "EAAtenant-token") -> Resolved:
    return Resolved(
        tenant_id=tenant_id,
        integration_type=IntegrationType.WHATSAPP,
        provider="meta",
        secrets=Secrets({"accessToken": token}),
        config={"phoneNumberId": PNID},
        source=Source.TENANT if tenant_id else Source.PLATFORM,
    )


class FakeSenders:
    def __init__(self, resolved: Resolved | Exception) -> None:
        self.resolved = resolved

    async def sender(self, phone_number_id: str) -> Resolved:
        if isinstance(self.resolved, Exception):
            raise self.resolved
        return self.resolved


class FakeAssistant:
    def __init__(
        self, *answers: str | Reply | Exception, fallback: str = "Te respondemos pronto"
    ) -> None:
        self.answers = list(answers) or ["Sí, hasta la XL."]
        self.fallback = fallback
        self.calls: list[tuple[UUID | None, list[ChatMessage]]] = []
        self.tools: list[tuple[Tool, ...]] = []
        self.settings = ConversationSettings(quiet_period=0)
        self.can = Capabilities()
        self.transcripts: list[str | Exception] = ["¿Tienen tortillas de harina?"]
        self.heard: list[Audio] = []

    async def reply(
        self,
        tenant_id: UUID | None,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[Tool] = (),
    ) -> Reply:
        self.calls.append((tenant_id, list(messages)))
        self.tools.append(tuple(tools))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, Reply):
            return answer
        return Reply(text=answer, model="m", usage=Usage(), latency_ms=1.0, provider="fake")

    async def fallback_text(self, tenant_id: UUID | None) -> str:
        return self.fallback

    async def conversation_settings(self, tenant_id: UUID | None) -> ConversationSettings:
        return self.settings

    async def capabilities(self, tenant_id: UUID | None) -> Capabilities:
        return self.can

    async def transcribe(self, tenant_id: UUID | None, audio: Audio) -> Transcript:
        self.heard.append(audio)
        said = self.transcripts.pop(0) if len(self.transcripts) > 1 else self.transcripts[0]
        if isinstance(said, Exception):
            raise said
        return Transcript(said, "whisper-1", "openai", seconds=3.5, source="tenant")


@dataclass
class FakeWhatsApp:
    errors: list[Exception] = field(default_factory=list)
    sends: list[dict[str, Any]] = field(default_factory=list)
    reads: list[dict[str, Any]] = field(default_factory=list)
    read_error: Exception | None = None
    #: Media ids Graph serves: their bytes, or the error a download raises (once each).
    media: dict[str, MediaFile | list[Exception]] = field(default_factory=dict)
    downloads: list[str] = field(default_factory=list)

    async def download_media(
        self, media_id: str, token: str, *, kind: str, phone_number_id: str | None = None
    ) -> MediaFile:
        self.downloads.append(media_id)
        served = self.media[media_id]
        if isinstance(served, list):
            error = served.pop(0) if len(served) > 1 else served[0]
            raise error
        return served

    async def upload_media(
        self, phone_number_id: str, token: str, content: bytes, mime_type: str, filename: str
    ) -> str:
        raise AssertionError("the pipeline uploads nothing")

    async def send_media(
        self,
        phone_number_id: str,
        token: str,
        to: str,
        media: OutgoingMedia,
        reply_to_wamid: str | None = None,
    ) -> str:
        raise AssertionError("the pipeline sends no media")

    async def send_text(
        self, phone_number_id: str, token: str, to: str, body: str, reply_to_wamid: str | None
    ) -> list[str]:
        if self.errors:
            raise self.errors.pop(0)
        self.sends.append(
            {
                "from": phone_number_id,
                "token": token,
                "to": to,
                "body": body,
                "quote": reply_to_wamid,
            }
        )
        return [f"wamid.OUT{len(self.sends)}"]

    async def mark_read(
        self, phone_number_id: str, token: str, wamid: str, *, typing: bool = False
    ) -> None:
        if self.read_error is not None:
            raise self.read_error
        self.reads.append({"from": phone_number_id, "wamid": wamid, "typing": typing})


class Crash(Exception):
    """The process dies here."""


@dataclass
class FakeLog:
    earlier: list[ChatMessage] = field(default_factory=list)
    parts: list[OutboundPart] = field(default_factory=list)
    crash_after_send: bool = False
    history_calls: list[dict[str, Any]] = field(default_factory=list)
    #: Every write, in order: ("plan", n parts), ("sending", part), ("sent", part, next, settle).
    writes: list[tuple[Any, ...]] = field(default_factory=list)
    #: Whether the worker still holds the lease when the last wamid settles the message.
    lease_held: bool = True
    #: The conversation the turn reads (``None``: none, as for a message stored without).
    conversation: UUID | None = None
    state: str = "bot"
    waiting: tuple[TurnMessage, ...] = ()
    #: Seconds between the message's arrival and the turn being read.
    waited: float = 60.0
    human_active_at: datetime | None = None
    notice_at: datetime | None = None
    #: A person took the conversation over before the plan: it records nothing.
    taken_over: bool = False
    plans: list[dict[str, Any]] = field(default_factory=list)
    #: The media items, by message id, as ``media_items`` files them; and their uses.
    items: dict[int, MediaItem] = field(default_factory=dict)
    uses: list[tuple[int, str, str | None]] = field(default_factory=list)
    #: The LLM calls counted in the usage ledger, by act key.
    llm_calls: dict[str, tuple[UUID | None, Reply]] = field(default_factory=dict)

    async def media_items(self, inbound_ids: Sequence[int]) -> list[MediaItem]:
        return [self.items[i] for i in inbound_ids if i in self.items]

    async def media_outcome(
        self, inbound_id: int, state: str, reason_code: str | None, reason: str | None
    ) -> None:
        item = self.items[inbound_id]
        if item.state != "transcribed":
            self.items[inbound_id] = replace(
                item, state=state, reason_code=reason_code, reason=reason
            )

    async def transcribed(
        self, inbound_id: int, tenant_id: UUID | None, text: str, transcript: Transcript
    ) -> str:
        item = self.items[inbound_id]
        if item.state == "transcribed":
            return item.text or text
        self.items[inbound_id] = replace(item, state="transcribed", text=text)
        self.uses.append((inbound_id, "transcription", transcript.source))
        return text

    async def llm_used(self, tenant_id: UUID | None, reply: Reply, act_key: str) -> None:
        self.llm_calls[act_key] = (tenant_id, reply)

    async def media_used(
        self, tenant_id: UUID | None, sent: Sequence[tuple[int, Attachment]], reply: Reply
    ) -> None:
        for inbound_id, attachment in sent:
            self.uses.append((inbound_id, attachment.kind, reply.source))

    async def turn(self, message: QueuedMessage, *, since: datetime, limit: int) -> Turn:
        self.history_calls.append({"since": since, "limit": limit})
        return Turn(
            conversation_id=self.conversation,
            state=self.state,
            now=NOW,
            received_at=NOW - timedelta(seconds=self.waited),
            human_active_at=self.human_active_at,
            text_only_notice_at=self.notice_at,
            waiting=self.waiting,
            history=tuple(self.earlier[-limit:] if limit else []),
        )

    async def planned(self, message: QueuedMessage) -> list[OutboundPart]:
        return list(self.parts)

    async def plan(
        self,
        message: QueuedMessage,
        recipient: str,
        parts: Sequence[str],
        *,
        fallback: bool,
        turn: Turn | None = None,
        notice: bool = False,
        switches: Sequence[Switch] = (),
    ) -> list[OutboundPart] | None:
        self.plans.append({"turn": turn, "notice": notice, "switches": list(switches)})
        if self.taken_over:
            return None
        if self.parts:
            return list(self.parts)
        self.writes.append(("plan", len(parts)))
        self.parts = [
            OutboundPart(id=n, part=n, text=t, send_attempts=int(n == 1))
            for n, t in enumerate(parts, 1)
        ]
        return [replace(p, sending=p.part == 1) for p in self.parts]

    def _replace(self, part_id: int, **changes: Any) -> None:
        self.parts = [replace(p, **changes) if p.id == part_id else p for p in self.parts]

    def _attempt(self, part_id: int) -> None:
        (stored,) = [p for p in self.parts if p.id == part_id]
        self._replace(part_id, send_attempts=stored.send_attempts + 1)

    async def sending(self, part: OutboundPart) -> None:
        self.writes.append(("sending", part.part))
        self._attempt(part.id)

    async def sent(
        self,
        part: OutboundPart,
        wamid: str,
        *,
        next_part: OutboundPart | None = None,
        answered: QueuedMessage | None = None,
    ) -> bool:
        if self.crash_after_send:
            self.crash_after_send = False
            raise Crash
        settle = answered.claimed_by if answered else None
        self.writes.append(("sent", part.part, next_part.part if next_part else None, settle))
        self._replace(part.id, wamid=wamid)
        if next_part is not None:
            self._attempt(next_part.id)
        return answered is None or self.lease_held


@dataclass
class FakeVerifications:
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    async def set_verified(
        self,
        tenant_id: UUID,
        integration_type: IntegrationType,
        provider: str,
        verified: bool,
        error: str | None = None,
    ) -> None:
        self.calls.append((tenant_id, integration_type, provider, verified, error))


@dataclass
class World:
    senders: FakeSenders
    assistant: FakeAssistant
    whatsapp: FakeWhatsApp
    log: FakeLog
    verifications: FakeVerifications
    pipeline: Pipeline


def world(
    *,
    resolved: Resolved | Exception | None = None,
    assistant: FakeAssistant | None = None,
    whatsapp: FakeWhatsApp | None = None,
    log: FakeLog | None = None,
    max_attempts: int = 3,
) -> World:
    w = World(
        FakeSenders(resolved or sender()),
        assistant or FakeAssistant(),
        whatsapp or FakeWhatsApp(),
        log or FakeLog(),
        FakeVerifications(),
        pipeline=None,  # type: ignore[arg-type]
    )
    w.pipeline = Pipeline(
        senders=w.senders,
        assistant=w.assistant,
        whatsapp=w.whatsapp,
        messages=w.log,
        verifications=w.verifications,
        settings=PipelineSettings(max_attempts=max_attempts, history_limit=5),
    )
    return w


@pytest.mark.parametrize(
    ("choice", "kind", "sent", "to_person"),
    [
        ("fallback", "answered", "Te respondemos pronto", False),
        ("handoff", "answered", DEFAULT_HANDOFF_MESSAGE, True),
        ("silence", "ignored", None, False),
    ],
)
async def test_a_used_up_budget_gets_the_operators_choice_of_reply(
    choice: str, kind: str, sent: str | None, to_person: bool
) -> None:
    exceeded = BudgetExceeded(TENANT, "llmTokens", "2026-05", 200_100, 200_000)
    w = world(assistant=FakeAssistant(exceeded))
    w.pipeline.settings = replace(w.pipeline.settings, budget_exceeded=choice)

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == kind
    assert [s["body"] for s in w.whatsapp.sends] == ([sent] if sent else [])
    switches = [s for p in w.log.plans for s in p.get("switches", ())]
    assert any(s.actor == "budget" for s in switches) is to_person
    if choice == "silence":
        assert "200,100 of 200,000" in (outcome.reason or "")


async def test_every_llm_answer_is_counted_once_in_the_usage_ledger_with_its_tokens() -> None:
    answer = Reply("Sí.", "gpt-x", Usage(120, 30), 1.0, "openai", source="platform")
    w = world(assistant=FakeAssistant(answer))

    await w.pipeline.handle(inbound())

    [(key, (tenant_id, reply))] = w.log.llm_calls.items()
    assert key.startswith("llm:")
    assert (tenant_id, reply.usage, reply.source) == (TENANT, Usage(120, 30), "platform")


async def test_a_customer_message_is_answered_from_the_number_that_received_it() -> None:
    earlier = [
        ChatMessage(role="user", content="Hola"),
        ChatMessage(role="assistant", content="¡Hola!"),
    ]
    w = world(log=FakeLog(earlier=earlier))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "answered"
    assert outcome.wamids == ("wamid.OUT1",)
    assert w.whatsapp.sends == [
        {
            "from": PNID,
            "token": "EAAtenant-token",
            "to": CUSTOMER,
            "body": "Sí, hasta la XL.",
            "quote": "wamid.IN7",
        }
    ]
    assert w.whatsapp.reads == [{"from": PNID, "wamid": "wamid.IN7", "typing": True}]
    tenant_id, conversation = w.assistant.calls[0]
    assert tenant_id == TENANT
    assert conversation == [*earlier, ChatMessage(role="user", content="¿Tienen tallas grandes?")]
    assert w.log.parts[0].wamid == "wamid.OUT1"


@pytest.mark.parametrize(
    ("sent_ago", "answered"),
    [(timedelta(hours=23, minutes=59), True), (timedelta(hours=24, seconds=1), False)],
)
async def test_a_message_meta_timestamped_over_24_hours_ago_gets_no_llm_call_and_no_reply(
    sent_ago: timedelta, answered: bool
) -> None:
    """A webhook redelivered a day late: Meta would refuse a free-form reply (131047)."""
    w = world()

    outcome = await w.pipeline.handle(inbound(sent_at=NOW - sent_ago))

    assert (outcome.kind == "answered") is answered
    if not answered:
        assert outcome.kind == "failed"
        assert "more than 24 hours ago" in (outcome.reason or "")
        assert w.assistant.calls == [] and w.whatsapp.sends == []


async def test_a_history_cut_at_its_limit_reaches_the_model_starting_with_the_customer() -> None:
    # history_limit 5: the four newest earlier turns, the oldest of them a reply.
    earlier = [
        ChatMessage(role="user", content="Hola"),
        ChatMessage(role="assistant", content="¡Hola! ¿En qué te ayudo?"),
        ChatMessage(role="user", content="¿Tienen tortillas?"),
        ChatMessage(role="assistant", content="Sí, de maíz y de harina."),
        ChatMessage(role="user", content="Una pregunta"),
    ]
    w = world(log=FakeLog(earlier=earlier))

    await w.pipeline.handle(inbound())

    _, conversation = w.assistant.calls[0]
    assert conversation == [
        ChatMessage(role="user", content="¿Tienen tortillas?"),
        ChatMessage(role="assistant", content="Sí, de maíz y de harina."),
        ChatMessage(role="user", content="Una pregunta\n\n¿Tienen tallas grandes?"),
    ]


def cut(text: str) -> Reply:
    """An answer the model stopped at its output limit."""
    return Reply(
        text=text, model="m", usage=Usage(), latency_ms=1.0, provider="fake", truncated=True
    )


async def test_an_answer_cut_at_the_output_limit_is_sent_up_to_its_last_whole_sentence() -> None:
    w = world(assistant=FakeAssistant(cut("Claro, hay tortillas. También tenemos tostadas de ma")))

    outcome = await w.pipeline.handle(inbound())

    assert [s["body"] for s in w.whatsapp.sends] == ["Claro, hay tortillas."]
    assert outcome.kind == "answered" and not outcome.fallback
    assert any("cut at its output limit" in n for n in outcome.notes)


async def test_an_answer_cut_before_its_first_sentence_ended_gets_the_fallback_text() -> None:
    w = world(assistant=FakeAssistant(cut('{"'), fallback="Te respondemos pronto"))

    outcome = await w.pipeline.handle(inbound())

    assert [s["body"] for s in w.whatsapp.sends] == ["Te respondemos pronto"]
    assert outcome.fallback


async def test_the_conversation_is_limited_to_the_24_hour_window_and_the_history_limit() -> None:
    w = world()

    await w.pipeline.handle(inbound())

    (call,) = w.log.history_calls
    assert (inbound().sent_at - call["since"]).total_seconds() == 24 * 3600
    assert call["limit"] == 4  # the history limit counts the message being answered


@pytest.mark.parametrize(
    "changes",
    [
        {"type": "reaction", "text": None},
        {"type": "reaction", "text": "👍"},
        {"type": "system", "text": "User changed number"},
        {"type": "text", "text": "   "},
        {"type": "location", "text": None},
        {"customer_id": None, "customer_phone": None},
    ],
)
async def test_messages_with_nothing_to_answer_are_ignored(changes: dict[str, Any]) -> None:
    w = world()

    outcome = await w.pipeline.handle(inbound(**changes))

    assert outcome.kind == "ignored"
    assert w.whatsapp.sends == [] and w.whatsapp.reads == [] and w.assistant.calls == []


async def test_a_number_nobody_owns_is_never_answered() -> None:
    w = world(resolved=UnknownPhoneNumber("nobody owns it"))

    outcome = await w.pipeline.handle(inbound(tenant_id=None))

    assert outcome.kind == "ignored"
    assert w.whatsapp.sends == [] and w.assistant.calls == []


async def test_a_number_that_changed_owner_is_not_answered_with_the_new_owners_settings() -> None:
    w = world(resolved=sender(tenant_id=uuid4()))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "failed"
    assert w.whatsapp.sends == [] and w.assistant.calls == []


async def test_a_tenant_number_without_whatsapp_credentials_fails_with_the_fix() -> None:
    w = world(resolved=NotConfigured("PUT /api/v1/integrations/whatsapp"))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "failed"
    assert "PUT /api/v1/integrations/whatsapp" in (outcome.reason or "")


async def test_the_platforms_own_number_is_answered_with_the_platforms_credentials() -> None:
    w = world(resolved=sender(tenant_id=None, token="EAAplatform"))

    outcome = await w.pipeline.handle(inbound(tenant_id=None))

    assert outcome.kind == "answered"
    assert w.whatsapp.sends[0]["token"] == "EAAplatform"
    assert w.assistant.calls[0][0] is None


@pytest.mark.parametrize(
    "error",
    [
        ProviderAuthError("bad key"),
        ProviderQuotaExceeded("no credit"),
        ProviderBadRequest("bad model"),
        NotConfigured("no LLM"),
    ],
)
async def test_when_the_llm_cannot_answer_the_fallback_text_is_sent(error: Exception) -> None:
    w = world(assistant=FakeAssistant(error, fallback="Gracias, te escribimos en breve"))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "answered" and outcome.fallback
    assert [s["body"] for s in w.whatsapp.sends] == ["Gracias, te escribimos en breve"]


async def test_an_empty_llm_answer_is_replaced_by_the_fallback_text() -> None:
    w = world(assistant=FakeAssistant("  "))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.fallback
    assert w.whatsapp.sends[0]["body"] == "Te respondemos pronto"


async def test_a_busy_llm_is_retried_later_without_sending_anything() -> None:
    busy = RetryableProviderError("overloaded", status=529, retry_after=3.0)
    w = world(assistant=FakeAssistant(busy))

    outcome = await w.pipeline.handle(inbound(attempts=1))

    assert outcome.kind == "retry"
    assert outcome.retry_after == 3.0
    assert w.whatsapp.sends == [] and w.log.parts == []


async def test_a_busy_llm_on_the_last_attempt_gets_the_fallback_instead_of_silence() -> None:
    w = world(assistant=FakeAssistant(RetryableProviderError("overloaded")), max_attempts=3)

    outcome = await w.pipeline.handle(inbound(attempts=3))

    assert outcome.kind == "answered" and outcome.fallback
    assert w.whatsapp.sends[0]["body"] == "Te respondemos pronto"


async def test_the_pair_rate_limit_retries_later_for_that_recipient_only() -> None:
    limited = RecipientRateLimited("pair rate limit", retry_after=6.0)
    w = world(whatsapp=FakeWhatsApp(errors=[limited]))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "retry"
    assert outcome.per_recipient
    assert outcome.retry_after == 6.0


async def test_a_throughput_limit_is_retried_without_holding_back_the_recipient() -> None:
    w = world(whatsapp=FakeWhatsApp(errors=[RetryableProviderError("130429")]))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "retry" and not outcome.per_recipient


async def test_a_rejected_token_fails_at_once_and_marks_the_tenant_credential_unverified() -> None:
    rejected = ProviderAuthError("WhatsApp rejected the access token", provider_code="190")
    w = world(whatsapp=FakeWhatsApp(errors=[rejected]))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "failed"
    assert w.verifications.calls == [
        (TENANT, IntegrationType.WHATSAPP, "meta", False, "WhatsApp rejected the access token")
    ]


async def test_a_rejected_platform_token_fails_without_touching_any_tenant() -> None:
    w = world(
        resolved=sender(tenant_id=None),
        whatsapp=FakeWhatsApp(errors=[ProviderAuthError("bad token")]),
    )

    outcome = await w.pipeline.handle(inbound(tenant_id=None))

    assert outcome.kind == "failed"
    assert w.verifications.calls == []


async def test_a_rejected_token_on_mark_read_stops_before_the_llm_is_asked() -> None:
    whatsapp = FakeWhatsApp(read_error=ProviderAuthError("bad token"))
    w = world(whatsapp=whatsapp)

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "failed"
    assert w.assistant.calls == []


async def test_a_failed_read_receipt_does_not_stop_the_answer() -> None:
    w = world(whatsapp=FakeWhatsApp(read_error=RetryableProviderError("busy")))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "answered"
    assert any("read" in note for note in outcome.notes)


async def test_outside_the_24_hour_window_the_message_fails_without_retrying() -> None:
    window = ProviderError("131047 re-engagement", provider_code="131047")
    w = world(whatsapp=FakeWhatsApp(errors=[_final(window)]))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "failed"
    assert "131047" in (outcome.reason or "")


def _final(error: ProviderError) -> Exception:
    from changarrito.domain.errors import FinalProviderError

    return FinalProviderError(error.message, provider_code=error.provider_code)


async def test_a_long_reply_is_recorded_whole_then_sent_part_by_part_quoting_only_once() -> None:
    long_reply = "\n\n".join(f"Sección {n}. " + "texto " * 500 for n in range(3))
    w = world(assistant=FakeAssistant(long_reply))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "answered"
    assert len(w.whatsapp.sends) == len(w.log.parts) == 3
    assert [s["quote"] for s in w.whatsapp.sends] == ["wamid.IN7", None, None]
    assert all(p.wamid for p in w.log.parts)


async def test_a_reclaimed_message_resumes_and_never_resends_a_part_with_a_wamid() -> None:
    log = FakeLog(
        parts=[
            OutboundPart(id=1, part=1, text="uno", wamid="wamid.SENT", send_attempts=1),
            OutboundPart(id=2, part=2, text="dos"),
        ]
    )
    w = world(log=log)

    outcome = await w.pipeline.handle(inbound(attempts=2))

    assert outcome.kind == "answered"
    assert [s["body"] for s in w.whatsapp.sends] == ["dos"]
    assert outcome.wamids == ("wamid.SENT", "wamid.OUT1")
    assert w.assistant.calls == [] and w.whatsapp.reads == []  # no second LLM answer
    assert outcome.resent == 0


async def test_a_crash_between_metas_acceptance_and_the_wamid_commit_resends_that_part_once() -> (
    None
):
    # The one documented window: the send reached Meta, the process died before recording it.
    log = FakeLog(crash_after_send=True)
    w = world(log=log)

    with pytest.raises(Crash):
        await w.pipeline.handle(inbound(attempts=1))
    outcome = await w.pipeline.handle(inbound(attempts=2))

    assert outcome.kind == "answered" and outcome.resent == 1
    assert [s["body"] for s in w.whatsapp.sends] == ["Sí, hasta la XL.", "Sí, hasta la XL."]
    assert len(w.assistant.calls) == 1  # the recorded reply was reused, not regenerated


async def test_a_message_past_its_attempts_is_dead_lettered_untouched() -> None:
    w = world(max_attempts=3)

    outcome = await w.pipeline.handle(inbound(attempts=4))

    assert outcome.kind == "dead"
    assert w.whatsapp.sends == [] and w.assistant.calls == []


# -- the Assistant: tenant or platform LLM, and the fallback text ----------------------------


class FakeCredentials:
    def __init__(self, platform: PlatformDefaults, tenant_config: dict[str, Any] | None) -> None:
        self.platform = platform
        self.tenant_config = tenant_config
        self.asked: list[UUID] = []

    async def resolve(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Resolved:
        self.asked.append(tenant_id)
        if self.tenant_config is None:
            raise NotConfigured("no LLM")
        return Resolved(
            tenant_id,
            itype,
            "fake",
            Secrets({"apiKey": "sk-tenant"}),
            self.tenant_config,
            Source.TENANT,
        )


class EchoProvider:
    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, Any], Any]] = []

    def parse_credentials(self, data: Any) -> Any:
        return dict(data)

    def parse_config(self, data: Any) -> Any:
        return dict(data)

    async def chat(self, messages: Sequence[ChatMessage], config: Any, credentials: Any) -> Reply:
        self.seen.append((config, credentials))
        return Reply(text="ok", model="m", usage=Usage(), latency_ms=1.0, provider="fake")


class Providers:
    def __init__(self, provider: EchoProvider) -> None:
        self.provider = provider

    def llm(self, provider_id: str) -> EchoProvider:
        return self.provider


PLATFORM = PlatformDefaults(
    credentials={
        (IntegrationType.LLM, "fake"): PlatformCredential(
            IntegrationType.LLM, "fake", Secrets({"apiKey": "sk-platform"}), {"model": "small"}
        )
    },
    default_providers={IntegrationType.LLM: "fake"},
)


async def test_the_assistant_answers_the_platforms_number_with_the_platforms_llm_only() -> None:
    provider = EchoProvider()
    credentials = FakeCredentials(PLATFORM, {"systemPrompt": "tenant"})
    assistant = Assistant(credentials, Providers(provider))

    await assistant.reply(None, [ChatMessage(role="user", content="hi")])

    config, secrets = provider.seen[0]
    assert secrets == {"apiKey": "sk-platform"}
    assert config == {"model": "small", "maxTokens": 1024}  # the operator's cap
    assert credentials.asked == []  # no tenant's settings were looked at


async def test_the_assistant_answers_a_tenant_with_its_own_llm_settings() -> None:
    provider = EchoProvider()
    assistant = Assistant(
        FakeCredentials(PLATFORM, {"systemPrompt": "Eres Lupita"}), Providers(provider)
    )

    await assistant.reply(TENANT, [ChatMessage(role="user", content="hi")])

    config, secrets = provider.seen[0]
    assert secrets == {"apiKey": "sk-tenant"}
    assert config["systemPrompt"] == "Eres Lupita"


@pytest.mark.parametrize(
    ("tenant_config", "tenant_id", "expected"),
    [
        ({"fallbackText": "Vuelvo en un momento"}, TENANT, "Vuelvo en un momento"),
        ({"fallbackText": "  "}, TENANT, "Platform says hi"),
        ({}, TENANT, "Platform says hi"),
        (None, TENANT, "Platform says hi"),
        ({"fallbackText": "Vuelvo en un momento"}, None, "Platform says hi"),
    ],
)
async def test_the_fallback_text_is_the_tenants_own_else_the_platforms(
    tenant_config: dict[str, Any] | None, tenant_id: UUID | None, expected: str
) -> None:
    credentials = FakeCredentials(PLATFORM, tenant_config)
    assistant = Assistant(credentials, Providers(EchoProvider()), fallback_text="Platform says hi")

    assert await assistant.fallback_text(tenant_id) == expected


def test_the_default_fallback_text_speaks_spanish_and_english() -> None:
    assert "Gracias" in DEFAULT_FALLBACK_TEXT and "Thanks" in DEFAULT_FALLBACK_TEXT


# -- splitting and backoff ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet="abcdeéñ ..!?\n👍", min_size=0, max_size=600),
    limit=st.integers(min_value=8, max_value=120),
)
def test_split_parts_fit_the_limit_and_keep_every_word(text: str, limit: int) -> None:
    parts = split_text(text, limit)

    assert all(0 < len(p) <= limit for p in parts)
    assert all(p == p.strip() for p in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())


def test_split_prefers_paragraphs_then_sentences_then_words() -> None:
    assert split_text("Uno dos.\n\nTres cuatro.", 15) == ["Uno dos.", "Tres cuatro."]
    assert split_text("Hola amigo. Qué tal estás hoy", 20) == ["Hola amigo.", "Qué tal estás hoy"]
    assert split_text("palabra palabra palabra", 16) == ["palabra palabra", "palabra"]
    assert split_text("x" * 10, 4) == ["xxxx", "xxxx", "xx"]
    assert split_text("short", 4096) == ["short"]
    assert split_text("  \n ", 4096) == []


def test_backoff_grows_exponentially_with_jitter_up_to_a_cap() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, base=1.0, cap=30.0, rng=rng) for n in range(1, 9)]

    for attempt, delay in enumerate(delays, start=1):
        full = min(30.0, 2.0 ** (attempt - 1))
        assert full / 2 <= delay <= full
    assert max(delays) <= 30.0


def test_backoff_never_retries_sooner_than_the_provider_asked() -> None:
    assert backoff_delay(1, base=0.1, cap=60.0, retry_after=12.0) == 12.0


@given(st.floats(min_value=0, max_value=10**7), st.integers(min_value=1, max_value=20))
def test_a_providers_retry_after_is_honoured_up_to_the_longest_backoff(
    retry_after: float, attempt: int
) -> None:
    delay = backoff_delay(attempt, base=2.0, cap=600.0, retry_after=retry_after)
    assert delay <= 600.0
    assert delay >= min(retry_after, 600.0)


class CountingLog(FakeLog):
    planned_calls: int = 0

    async def planned(self, message: QueuedMessage) -> list[OutboundPart]:
        self.planned_calls += 1
        return await super().planned(message)


async def test_a_claim_that_saw_no_reply_spares_reading_the_reply_back() -> None:
    w = world(log=(log := CountingLog()))

    outcome = await w.pipeline.handle(inbound(has_reply=False))

    assert outcome.kind == "answered" and log.planned_calls == 0
    assert [s["body"] for s in w.whatsapp.sends] == ["Sí, hasta la XL."]


async def test_a_claim_that_saw_a_reply_resumes_it_without_a_second_llm_answer() -> None:
    log = CountingLog(parts=[OutboundPart(id=1, part=1, text="uno", wamid="wamid.SENT")])
    w = world(log=log)

    outcome = await w.pipeline.handle(inbound(attempts=2, has_reply=True))

    assert outcome.wamids == ("wamid.SENT",) and log.planned_calls == 1
    assert w.assistant.calls == [] and w.whatsapp.sends == [] and w.whatsapp.reads == []


# -- the writes per message: each mark folded into the write before it ----------------------


async def test_a_fresh_answer_costs_the_plan_and_one_write_per_part_settled_with_the_last() -> None:
    long_reply = "\n\n".join(f"Sección {n}. " + "texto " * 500 for n in range(3))
    w = world(assistant=FakeAssistant(long_reply))

    outcome = await w.pipeline.handle(inbound(has_reply=False, claimed_by="w1"))

    # The plan marks part 1 as being sent; each wamid marks the next part; the last settles.
    assert w.log.writes == [
        ("plan", 3),
        ("sent", 1, 2, None),
        ("sent", 2, 3, None),
        ("sent", 3, None, "w1"),
    ]
    assert [p.send_attempts for p in w.log.parts] == [1, 1, 1]
    assert outcome.kind == "answered" and outcome.settled is True and outcome.resent == 0
    assert outcome.wamids == ("wamid.OUT1", "wamid.OUT2", "wamid.OUT3")


async def test_an_answer_whose_lease_was_lost_by_its_last_wamid_says_so() -> None:
    w = world(log=FakeLog(lease_held=False))

    outcome = await w.pipeline.handle(inbound(claimed_by="w1"))

    assert outcome.kind == "answered" and outcome.settled is False
    assert w.log.parts[0].wamid == "wamid.OUT1"  # the wamid is recorded all the same


async def test_a_message_no_worker_claimed_is_left_for_its_caller_to_settle() -> None:
    w = world()

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "answered" and outcome.settled is None
    assert w.log.writes == [("plan", 1), ("sent", 1, None, None)]


async def test_a_resumed_reply_marks_its_first_unsent_part_then_folds_the_rest() -> None:
    log = FakeLog(
        parts=[
            OutboundPart(id=1, part=1, text="uno", wamid="wamid.SENT", send_attempts=1),
            OutboundPart(id=2, part=2, text="dos", send_attempts=1),
            OutboundPart(id=3, part=3, text="tres"),
        ]
    )
    w = world(log=log)

    outcome = await w.pipeline.handle(inbound(attempts=2, claimed_by="w2"))

    assert log.writes == [("sending", 2), ("sent", 2, 3, None), ("sent", 3, None, "w2")]
    assert [p.send_attempts for p in log.parts] == [1, 2, 1]
    assert outcome.resent == 1  # part 2 may have reached the customer before the crash
    assert outcome.wamids == ("wamid.SENT", "wamid.OUT1", "wamid.OUT2")


async def test_a_resumed_reply_with_every_wamid_is_left_for_the_worker_to_settle() -> None:
    log = FakeLog(parts=[OutboundPart(id=1, part=1, text="uno", wamid="wamid.SENT")])
    w = world(log=log)

    outcome = await w.pipeline.handle(inbound(attempts=2, claimed_by="w2"))

    assert outcome.kind == "answered" and outcome.settled is None and log.writes == []


# --- conversations: who answers, bursts, what cannot be read -------------------------------


def waiting(id: int, text: str | None, *, ago: float, type: str = "text") -> TurnMessage:
    return TurnMessage(id, f"wamid.IN{id}", type, text, NOW - timedelta(seconds=ago))


async def test_a_conversation_a_person_answers_gets_nothing_from_the_bot() -> None:
    w = world(log=FakeLog(state="human", human_active_at=NOW - timedelta(hours=1)))

    outcome = await w.pipeline.handle(inbound())

    assert (outcome.kind, outcome.reason) == ("ignored", "a person is answering this conversation")
    assert w.assistant.calls == [] and w.whatsapp.sends == [] and w.whatsapp.reads == []


async def test_a_conversation_idle_past_the_handoff_time_goes_back_to_the_bot_and_is_answered() -> (
    None
):
    w = world(log=FakeLog(state="human", human_active_at=NOW - timedelta(hours=12, seconds=1)))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "answered" and len(w.whatsapp.sends) == 1
    (switch,) = w.log.plans[0]["switches"]
    assert (switch.to, switch.actor, switch.before_reply) == (ConversationState.BOT, "idle", True)


async def test_a_closed_conversation_is_not_answered() -> None:
    w = world(log=FakeLog(state="closed"))

    assert (await w.pipeline.handle(inbound())).kind == "ignored"
    assert w.whatsapp.sends == []


async def test_a_message_inside_the_quiet_period_is_deferred_until_the_customer_is_quiet() -> None:
    w = world(log=FakeLog(waited=0.5, waiting=(waiting(6, "hola", ago=1.5),)))
    w.assistant.settings = ConversationSettings(quiet_period=2)

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "defer" and outcome.retry_after == pytest.approx(1.5)
    assert w.assistant.calls == [] and w.whatsapp.reads == [] and w.log.plans == []


async def test_a_burst_gets_one_llm_call_with_every_message_in_order_and_one_reply() -> None:
    burst = (waiting(8, "una pregunta", ago=3), waiting(9, "¿tienen tortillas?", ago=2.5))
    w = world(log=FakeLog(waited=4, waiting=burst))
    w.assistant.settings = ConversationSettings(quiet_period=2)

    outcome = await w.pipeline.handle(inbound(text="hola"))

    assert outcome.kind == "answered"
    (call,) = w.assistant.calls
    assert call[1][-1] == ChatMessage(
        role="user", content="hola\n\nuna pregunta\n\n¿tienen tortillas?"
    )
    (send,) = w.whatsapp.sends
    assert send["quote"] == "wamid.IN9"  # the newest, once: nothing is quoted twice
    assert [r["wamid"] for r in w.whatsapp.reads] == ["wamid.IN9"]
    assert w.log.plans[0]["turn"].waiting == burst


async def test_a_voice_note_nobody_transcribes_gets_a_reply_that_says_what_can_be_read() -> None:
    w = world()

    outcome = await w.pipeline.handle(inbound(type="audio", text=None))

    assert outcome.kind == "answered" and w.assistant.calls == []
    assert [s["body"] for s in w.whatsapp.sends] == [
        "Solo puedo leer mensajes de texto; ¿me lo escribes, por favor? "
        "/ I can only read text messages; could you type it, please?"
    ]
    assert w.log.plans[0]["notice"] is True

    again = world(log=FakeLog(notice_at=NOW - timedelta(minutes=3)))
    outcome = await again.pipeline.handle(inbound(type="audio", text=None))
    assert outcome.kind == "ignored" and again.whatsapp.sends == []


async def test_a_voice_note_in_a_burst_with_text_is_named_to_the_model() -> None:
    w = world(log=FakeLog(waiting=(waiting(8, None, ago=30, type="audio"),)))
    w.assistant.settings = ConversationSettings(quiet_period=2)

    await w.pipeline.handle(inbound(text="te mandé un audio"))

    (call,) = w.assistant.calls
    assert call[1][-1].content == ("te mandé un audio\n\n[a voice note, which I cannot listen to]")
    assert w.log.plans[0]["notice"] is False


async def test_the_model_is_offered_the_handoff_tool() -> None:
    w = world()

    await w.pipeline.handle(inbound())

    assert w.assistant.tools == [(HANDOFF_TOOL,)]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (
            Reply(
                "",
                "m",
                Usage(),
                1.0,
                "fake",
                tool_calls=(ToolCall("handoff", {"reason": "refund"}),),
            ),
            "refund",
        ),
        (
            Reply("No puedo ayudar con eso.", "m", Usage(), 1.0, "fake", refused=True),
            "the model declined to answer",
        ),
    ],
)
async def test_a_handoff_by_the_model_tells_the_customer_and_hands_the_conversation_over(
    reply: Reply, reason: str
) -> None:
    w = world(assistant=FakeAssistant(reply))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "answered"
    assert [s["body"] for s in w.whatsapp.sends] == [ConversationSettings().handoff_message]
    (switch,) = w.log.plans[0]["switches"]
    assert (switch.to, switch.actor, switch.reason, switch.before_reply) == (
        ConversationState.HUMAN,
        "model",
        reason,
        False,
    )


async def test_a_reply_written_while_a_person_took_over_is_dropped_unsent() -> None:
    w = world(log=FakeLog(taken_over=True))

    outcome = await w.pipeline.handle(inbound())

    assert outcome.kind == "ignored" and "a person took the conversation over" in (
        outcome.reason or ""
    )
    assert w.whatsapp.sends == []


async def test_with_the_quiet_period_off_each_waiting_message_gets_its_own_answer() -> None:
    w = world(log=FakeLog(waiting=(waiting(8, "¿y de maíz?", ago=0.1),)))

    outcome = await w.pipeline.handle(inbound(text="hola"))

    assert outcome.kind == "answered"
    assert w.assistant.calls[0][1][-1] == ChatMessage(role="user", content="hola")
    assert w.log.plans[0]["turn"].waiting == ()
    assert w.whatsapp.sends[0]["quote"] == "wamid.IN7"


# --- the customer's media ------------------------------------------------------------------

OGG = b"OggS\x00\x02" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0" + bytes(300)
PDF = b"%PDF-1.7\n" + bytes(300)
#: An assistant that transcribes voice notes and reads nothing else.
TRANSCRIBES = Capabilities(frozenset(), transcribes=True)


def item(
    kind: str, *, inbound_id: int = 7, mime: str = "audio/ogg; codecs=opus", **changes: Any
) -> MediaItem:
    base = MediaItem(
        inbound_id=inbound_id,
        kind=kind,
        media_id=f"90{inbound_id}",
        mime_type=mime,
        sha256=None,
        filename=None,
        voice=kind == "audio",
        state="received",
        reason_code=None,
        reason=None,
        text=None,
    )
    return replace(base, **changes)


def media_world(
    stored: MediaItem,
    served: MediaFile | list[Exception],
    *,
    can: Capabilities = TRANSCRIBES,
    max_attempts: int = 3,
    **log: Any,
) -> World:
    w = world(
        whatsapp=FakeWhatsApp(media={stored.media_id or "": served}),
        log=FakeLog(items={stored.inbound_id: stored}, **log),
        max_attempts=max_attempts,
    )
    w.assistant.can = can
    return w


async def test_a_voice_note_is_transcribed_and_the_model_answers_what_it_said() -> None:
    w = media_world(item("audio"), MediaFile(OGG, "audio/ogg", None, len(OGG)))

    outcome = await w.pipeline.handle(inbound(type="audio", text=None))

    assert outcome.kind == "answered"
    (audio,) = w.assistant.heard
    assert (audio.data, audio.mime_type, audio.filename) == (OGG, "audio/ogg", "voice-note.ogg")
    (call,) = w.assistant.calls
    assert call[1][-1] == ChatMessage(role="user", content="¿Tienen tortillas de harina?")
    assert w.log.items[7].state == "transcribed"
    assert w.log.items[7].text == "¿Tienen tortillas de harina?"
    assert w.log.uses == [(7, "transcription", "tenant")]
    # the typing indicator shows while it is transcribed
    assert w.whatsapp.reads == [{"from": PNID, "wamid": "wamid.IN7", "typing": True}]


async def test_a_voice_note_claimed_again_after_a_crash_is_not_transcribed_twice() -> None:
    done = item("audio", state="transcribed", text="¿Abren el domingo?")
    w = media_world(done, MediaFile(OGG, "audio/ogg", None, len(OGG)))

    outcome = await w.pipeline.handle(inbound(type="audio", text=None, attempts=2))

    assert outcome.kind == "answered"
    assert w.assistant.heard == [] and w.whatsapp.downloads == []
    (call,) = w.assistant.calls
    assert call[1][-1].content == "¿Abren el domingo?"


async def test_a_voice_note_nobody_can_transcribe_gets_the_text_only_reply_once() -> None:
    w = media_world(item("audio"), [AssertionError("not downloaded")], can=Capabilities())

    outcome = await w.pipeline.handle(inbound(type="audio", text=None))

    assert outcome.kind == "answered" and w.assistant.calls == []
    assert [s["body"] for s in w.whatsapp.sends] == [text_only_reply(Capabilities())]
    assert w.whatsapp.downloads == [] and w.log.plans[0]["notice"] is True
    assert (w.log.items[7].state, w.log.items[7].reason_code) == ("unread", "not-readable")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (MediaRefused("too big", reason="too-large"), "too-large"),
        (MediaRefused("expired twice", reason="expired"), "expired"),
        (MediaRefused("bad hash", reason="hash-mismatch"), "hash-mismatch"),
    ],
)
async def test_a_voice_note_that_cannot_be_downloaded_gets_one_clear_reply_and_a_reason(
    error: MediaRefused, code: str
) -> None:
    w = media_world(item("audio"), [error])

    outcome = await w.pipeline.handle(inbound(type="audio", text=None))

    assert outcome.kind == "answered" and w.assistant.calls == []
    (send,) = w.whatsapp.sends
    assert "no pude abrir tu nota de voz" in send["body"].lower()
    assert "notas de voz" in send["body"] and "voice notes" in send["body"]
    assert w.log.plans[0]["notice"] is False  # not the once-per-conversation notice
    stored = w.log.items[7]
    assert (stored.state, stored.reason_code, stored.reason) == ("failed", code, error.message)


async def test_a_transcription_the_provider_refuses_does_not_touch_the_whatsapp_credential() -> (
    None
):
    w = media_world(item("audio"), MediaFile(OGG, "audio/ogg", None, len(OGG)))
    w.assistant.transcripts = [ProviderAuthError("key rejected", provider="openai")]

    outcome = await w.pipeline.handle(inbound(type="audio", text=None))

    assert outcome.kind == "answered"
    assert "nota de voz" in w.whatsapp.sends[0]["body"]
    assert w.log.items[7].reason_code == "transcription-refused"
    assert w.verifications.calls == []


async def test_a_transcription_that_is_only_busy_is_retried_until_the_last_attempt() -> None:
    busy = RetryableProviderError("429", provider="openai", retry_after=3.0)
    w = media_world(item("audio"), MediaFile(OGG, "audio/ogg", None, len(OGG)), max_attempts=2)
    w.assistant.transcripts = [busy]

    first = await w.pipeline.handle(inbound(type="audio", text=None, attempts=1))
    assert (first.kind, first.retry_after) == ("retry", 3.0)
    assert w.whatsapp.sends == [] and w.log.items[7].state == "received"

    last = await w.pipeline.handle(inbound(type="audio", text=None, attempts=2))
    assert last.kind == "answered"
    assert w.log.items[7].reason_code == "unavailable"


async def test_a_photo_reaches_a_model_with_vision_as_an_attachment_with_its_caption() -> None:
    photo = item("image", mime="image/jpeg", text="[photo] ¿Tienen este modelo?")
    w = media_world(
        photo,
        MediaFile(JPEG, "image/jpeg", None, len(JPEG)),
        can=Capabilities(frozenset({"image"})),
    )
    w.assistant.answers = [
        Reply("Sí, en negro.", "gpt-4o", Usage(), 1.0, "openai", source="tenant", read=("image",))
    ]

    await w.pipeline.handle(inbound(type="image", text="[photo] ¿Tienen este modelo?"))

    (call,) = w.assistant.calls
    last = call[1][-1]
    assert last.content == "[photo] ¿Tienen este modelo?"
    assert last.attachments == (Attachment("image", "image/jpeg", JPEG, "photo.jpg"),)
    assert w.log.uses == [(7, "image", "tenant")]


async def test_a_photo_the_model_did_not_read_is_not_recorded_as_read() -> None:
    photo = item("image", mime="image/jpeg")
    w = media_world(
        photo,
        MediaFile(JPEG, "image/jpeg", None, len(JPEG)),
        can=Capabilities(frozenset({"image"})),
    )

    await w.pipeline.handle(inbound(type="image", text=None))

    assert w.assistant.calls and w.log.uses == []  # the reply says it read nothing


async def test_a_photo_without_caption_for_a_model_without_vision_gets_the_text_only_reply() -> (
    None
):
    w = media_world(item("image", mime="image/jpeg"), [AssertionError("not downloaded")])

    outcome = await w.pipeline.handle(inbound(type="image", text=None))

    assert outcome.kind == "answered" and w.assistant.calls == []
    assert [s["body"] for s in w.whatsapp.sends] == [text_only_reply(TRANSCRIBES)]
    assert "notas de voz" in w.whatsapp.sends[0]["body"]
    assert w.whatsapp.downloads == []


async def test_a_pdf_reaches_a_model_that_reads_documents() -> None:
    receipt = item("document", mime="application/pdf", filename="comprobante.pdf")
    w = media_world(
        receipt,
        MediaFile(PDF, "application/pdf", None, len(PDF)),
        can=Capabilities(frozenset({"image", "pdf"})),
    )

    await w.pipeline.handle(inbound(type="document", text=None))

    (call,) = w.assistant.calls
    assert call[1][-1].attachments == (
        Attachment("pdf", "application/pdf", PDF, "comprobante.pdf"),
    )


async def test_a_spreadsheet_is_not_downloaded_and_the_customer_is_told_what_can_be_read() -> None:
    sheet = item("document", mime="application/vnd.ms-excel", filename="pedido.xls", text=None)
    w = media_world(sheet, [AssertionError("not downloaded")], can=Capabilities(frozenset({"pdf"})))

    outcome = await w.pipeline.handle(inbound(type="document", text=None))

    assert outcome.kind == "answered" and w.whatsapp.downloads == []
    assert w.log.items[7].reason == "documents of type application/vnd.ms-excel cannot be read"


@pytest.mark.parametrize("kind", ["sticker", "video"])
async def test_a_sticker_or_a_video_alone_gets_the_text_only_reply_once_per_conversation(
    kind: str,
) -> None:
    mime = "image/webp" if kind == "sticker" else "video/mp4"
    w = media_world(item(kind, mime=mime), [AssertionError("not downloaded")])

    outcome = await w.pipeline.handle(inbound(type=kind, text=None))

    assert outcome.kind == "answered"
    assert [s["body"] for s in w.whatsapp.sends] == [text_only_reply(TRANSCRIBES)]

    told = media_world(item(kind, mime=mime), [AssertionError("not downloaded")], notice_at=NOW)
    again = await told.pipeline.handle(inbound(type=kind, text=None))
    assert again.kind == "ignored" and told.whatsapp.sends == [] and told.whatsapp.reads == []


async def test_a_voice_note_in_a_burst_with_text_reaches_the_model_as_its_transcript() -> None:
    note = item("audio", inbound_id=8)
    w = media_world(
        note,
        MediaFile(OGG, "audio/ogg", None, len(OGG)),
        waiting=(waiting(8, None, ago=30, type="audio"),),
    )
    w.assistant.settings = ConversationSettings(quiet_period=2)

    await w.pipeline.handle(inbound(text="hola"))

    (call,) = w.assistant.calls
    assert call[1][-1].content == "hola\n\n¿Tienen tortillas de harina?"


async def test_a_voice_note_to_a_person_is_transcribed_for_them_and_not_answered() -> None:
    w = media_world(
        item("audio"),
        MediaFile(OGG, "audio/ogg", None, len(OGG)),
        state="human",
        human_active_at=NOW - timedelta(minutes=5),
    )

    outcome = await w.pipeline.handle(inbound(type="audio", text=None))

    assert (outcome.kind, outcome.reason) == ("ignored", "a person is answering this conversation")
    assert w.log.items[7].text == "¿Tienen tortillas de harina?"  # the person reads it
    assert w.assistant.calls == [] and w.whatsapp.sends == [] and w.whatsapp.reads == []
