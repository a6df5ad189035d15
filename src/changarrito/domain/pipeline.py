"""Answering one inbound WhatsApp message: the use case the message workers run.

Pure: its ports are in ``ports.py`` (``MessageLog``: the Postgres message log;
``WhatsAppSender``: the Graph client; ``Senders``, ``Verifications``: the credential resolver and
store; ``Replier``: the LLM ``Assistant`` of ``domain/assistant.py``). For a claimed message
(a ``QueuedMessage``), ``Pipeline.handle``:

1. ignores what has nothing to answer (reactions, system notices, statuses) and numbers that
   nobody owns; a number that changed owner since intake is never answered by the new one;
2. resolves the sender credential of the number that received the message;
3. unless a reply is already recorded for it (a re-claimed message): marks the message read
   (with the typing indicator), loads the conversation (that customer, that number, that
   tenant, within Meta's 24-hour window), asks the tenant's LLM (or the platform's) and
   records the whole reply (none when the customer wrote more than 24 hours ago by Meta's
   timestamp: Meta would refuse it, and the message fails saying so), split into parts,
   *before* sending any of it (its first part already marked as being sent, in the same
   transaction);
4. sends each part that has no wamid yet, recording each wamid as soon as Meta returns it:
   in the same transaction, the next part is marked as being sent or, after the last part,
   the message is recorded answered in the queue (``Outcome.settled``), so a message costs
   the database three round trips and a share of a claim: the history, the plan, one per
   part.

So a re-claimed message resumes where it stopped and never resends a part with a wamid. The
one unavoidable window: a worker killed after Meta accepted a part but before its wamid was
committed sends that part again when the message is retried (at-least-once; the Graph API has
no idempotency key). The wamid is written right after the response, in its own transaction.

When the LLM cannot answer (a final error, or a retryable one on the last attempt), the
tenant's ``fallbackText`` (or the platform's) is sent instead of silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal
from uuid import uuid4

from changarrito.domain import media
from changarrito.domain.budgets import BudgetExceeded
from changarrito.domain.chat import HANDOFF_TOOL, ChatMessage, alternating
from changarrito.domain.conversations import (
    SERVICE_WINDOW,
    UNREADABLE_TYPES,
    ConversationSettings,
    ConversationState,
    Switch,
    idle_resume_due,
    quiet_until,
    window_open,
    window_until,
)
from changarrito.domain.errors import (
    ChangarritoError,
    FinalProviderError,
    NotConfigured,
    ProviderAuthError,
    ProviderError,
    RecipientRateLimited,
    RetryableProviderError,
    StorageError,
    UnknownPhoneNumber,
)
from changarrito.domain.media import Capabilities
from changarrito.domain.model import IntegrationType, Resolved, Source
from changarrito.domain.ports import MessageLog, Replier, Senders, Verifications, WhatsAppSender
from changarrito.domain.queued import OutboundPart, QueuedMessage, Turn, TurnMessage
from changarrito.domain.reading import MediaReader, Reading
from changarrito.domain.text import MAX_TEXT_CHARS, split_text, whole_sentences

#: Message types that never get an answer, whatever text they carry.
UNANSWERED_TYPES = frozenset({"reaction", "system", "ephemeral", "errors"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a message: the worker records it in the queue."""

    #: ``defer``: a burst is still going on, claim it again in ``retry_after`` seconds.
    kind: Literal["answered", "ignored", "retry", "defer", "failed", "dead"]
    reason: str | None = None
    retry_after: float | None = None
    #: The retry waits for this recipient only (Meta's pair rate limit, 131056).
    per_recipient: bool = False
    wamids: tuple[str, ...] = ()
    fallback: bool = False
    #: Parts that may already have reached the customer before a crash and were sent again.
    resent: int = 0
    notes: tuple[str, ...] = field(default=())
    #: Whether the pipeline already recorded the outcome in the queue, with the last wamid
    #: (``False``: the worker had lost the message's lease by then); ``None``: not recorded,
    #: the worker records it.
    settled: bool | None = None


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    max_attempts: int = 8
    history_limit: int = 20
    typing_indicator: bool = True
    #: What the customer gets when a hard budget stops the platform's LLM for the tenant
    #: (``CHANGARRITO_BUDGET_EXCEEDED``): the fallback text, a handoff, or nothing.
    budget_exceeded: str = "fallback"


class Pipeline:
    def __init__(
        self,
        *,
        senders: Senders,
        assistant: Replier,
        whatsapp: WhatsAppSender,
        messages: MessageLog,
        verifications: Verifications,
        settings: PipelineSettings | None = None,
        reader: MediaReader | None = None,
    ) -> None:
        self.senders = senders
        self.assistant = assistant
        self.whatsapp = whatsapp
        self.messages = messages
        self.verifications = verifications
        self.settings = settings or PipelineSettings()
        self.reader = reader or MediaReader(whatsapp=whatsapp, assistant=assistant, log=messages)

    async def handle(self, message: QueuedMessage) -> Outcome:
        if message.attempts > self.settings.max_attempts:
            return Outcome("dead", f"no answer after {message.attempts - 1} attempts")
        recipient = message.recipient
        said = (message.text or "").strip()
        if (
            message.type in UNANSWERED_TYPES
            or not recipient
            or not (said or message.type in UNREADABLE_TYPES)
        ):
            return Outcome("ignored", f"nothing to answer in a {message.type} message")
        try:
            sender = await self.senders.sender(message.phone_number_id)
        except UnknownPhoneNumber as exc:
            return Outcome("ignored", exc.message)
        except NotConfigured as exc:
            return Outcome("failed", exc.message)
        if sender.tenant_id != message.tenant_id:
            return Outcome("failed", "the number changed owner since the message arrived")
        token = sender.secrets.get("accessToken")
        if not token:
            return Outcome("failed", "the number's WhatsApp credential has no access token")
        try:
            return await self._answer(message, sender, token, recipient)
        except RetryableProviderError as exc:
            return Outcome(
                "retry",
                exc.message,
                retry_after=exc.retry_after,
                per_recipient=isinstance(exc, RecipientRateLimited),
            )
        except ProviderAuthError as exc:
            if sender.source is Source.TENANT and sender.tenant_id is not None:
                await self.verifications.set_verified(
                    sender.tenant_id, IntegrationType.WHATSAPP, sender.provider, False, exc.message
                )
            return Outcome("failed", exc.message)
        except FinalProviderError as exc:
            return Outcome("failed", exc.message)

    async def _answer(
        self, message: QueuedMessage, sender: Resolved, token: str, recipient: str
    ) -> Outcome:
        parts = await self.messages.planned(message) if message.has_reply is not False else []
        fallback = False
        notes: list[str] = []
        quote = message.wamid
        if not parts:
            planned = await self._plan(message, token, recipient, notes)
            if isinstance(planned, Outcome):
                return planned
            parts, fallback, quote = planned
        ordered = sorted(parts, key=lambda p: p.part)
        todo = [p for p in ordered if not p.wamid]
        wamids = {p.part: p.wamid for p in ordered if p.wamid}
        resent = 0
        settled: bool | None = None
        for index, part in enumerate(todo):
            resent += part.send_attempts - part.sending > 0
            if not part.sending:
                await self.messages.sending(part)
            sent = await self.whatsapp.send_text(
                message.phone_number_id,
                token,
                recipient,
                part.text,
                quote if part.part == 1 else None,
            )
            following = todo[index + 1] if index + 1 < len(todo) else None
            answered = message if following is None and message.claimed_by else None
            done = await self.messages.sent(part, sent[0], next_part=following, answered=answered)
            if following is not None:
                todo[index + 1] = _marked(following)
            elif answered is not None:
                settled = done
            wamids[part.part] = sent[0]
        return Outcome(
            "answered",
            wamids=tuple(wamids[p.part] for p in ordered),
            fallback=fallback,
            resent=resent,
            notes=tuple(notes),
            settled=settled,
        )

    async def _plan(
        self, message: QueuedMessage, token: str, recipient: str, notes: list[str]
    ) -> Outcome | tuple[list[OutboundPart], bool, str]:
        """The reply to the turn ``message`` opens, recorded (its parts, whether it is the
        fallback text, the message it quotes), or why there is none now: a person answers
        the conversation, the customer is still typing (a burst), or only what cannot be read
        came and the customer was already told."""
        settings = await self.assistant.conversation_settings(message.tenant_id)
        turn = await self.messages.turn(
            message,
            since=message.sent_at - SERVICE_WINDOW,
            limit=max(0, self.settings.history_limit - 1),
        )
        switches: list[Switch] = []
        if turn.state == ConversationState.HUMAN:
            if not idle_resume_due(turn.human_active_at, settings.handoff_idle, turn.now):
                await self._transcribe_for_the_shop(message, token)
                return Outcome("ignored", "a person is answering this conversation")
            idle = settings.handoff_idle.total_seconds() / 3600
            reason = f"nobody from the shop wrote for {idle:g} hours"
            switches.append(Switch(ConversationState.BOT, "idle", reason, before_reply=True))
        elif turn.state == ConversationState.CLOSED:
            return Outcome("ignored", "the conversation is closed")
        due = quiet_until(turn.last_received_at, settings.quiet_period)
        if due is None:  # bursts off: every message gets its own answer, in order
            turn = replace(turn, waiting=())
        elif due > turn.now:
            wait = (due - turn.now).total_seconds()
            return Outcome("defer", "the customer may still be typing", retry_after=wait)
        first = TurnMessage(message.id, message.wamid, message.type, message.text, turn.received_at)
        said = sorted([first, *turn.waiting], key=lambda m: (m.received_at, m.id))
        if not window_open(window_until(None, message.sent_at, turn.received_at), turn.now):
            return Outcome("failed", WINDOW_CLOSED)
        newest = said[-1].wamid
        items = await self.reader.items(said)
        can = await self.assistant.capabilities(message.tenant_id) if items else Capabilities()
        busy = any(media.action_for(i, can) in ("transcribe", "attach") for i in items.values())
        if busy:  # the typing indicator while the voice note is transcribed
            await self._mark_read(message, newest, token, notes)
        reading = await self.reader.read(
            message.tenant_id,
            message.phone_number_id,
            token,
            said,
            items,
            can,
            last_attempt=message.attempts >= self.settings.max_attempts,
        )
        failed = not reading.readable and bool(reading.failures)
        notice = not reading.readable and not failed
        if notice and turn.text_only_notice_at is not None:
            return Outcome("ignored", "only text can be read for now; the customer was told")
        if not busy:
            await self._mark_read(message, newest, token, notes)
        fallback = False
        if failed:
            text = media.failure_reply(reading.failures, can)
        elif notice:
            text = settings.text_only_reply or media.text_only_reply(can)
        else:
            composed, fallback, handoff = await self._compose(
                message, turn, reading, settings, notes
            )
            if composed is None:  # the budget is used up, and the operator chose silence
                return Outcome("ignored", notes[-1], notes=tuple(notes))
            text = composed
            if handoff is not None:
                switches.append(handoff)
        parts = await self.messages.plan(
            message,
            recipient,
            split_text(text, MAX_TEXT_CHARS),
            fallback=fallback,
            turn=turn,
            notice=notice,
            switches=switches,
        )
        if parts is None:
            return Outcome(
                "ignored",
                "not sent: a person took the conversation over, or the customer deleted the "
                "message, while the reply was being written",
            )
        return parts, fallback, newest

    async def _transcribe_for_the_shop(self, message: QueuedMessage, token: str) -> None:
        """A voice note in a conversation a person answers is still transcribed, so the
        person reads it in the inbox; nothing else of the turn is read, and nobody answers."""
        if message.type != "audio":
            return
        said = [TurnMessage(message.id, message.wamid, message.type, message.text, message.sent_at)]
        items = await self.reader.items(said)
        if not items:
            return
        can = await self.assistant.capabilities(message.tenant_id)
        last = message.attempts >= self.settings.max_attempts
        await self.reader.read(
            message.tenant_id, message.phone_number_id, token, said, items, can, last_attempt=last
        )

    async def _mark_read(
        self, message: QueuedMessage, wamid: str, token: str, notes: list[str]
    ) -> None:
        """Blue ticks (on the turn's newest message: the ones before it are read with it)
        and the typing indicator while the LLM thinks. Only a rejected token stops the
        answer: the same token could not send it either."""
        try:
            await self.whatsapp.mark_read(
                message.phone_number_id, token, wamid, typing=self.settings.typing_indicator
            )
        except ProviderAuthError:
            raise
        except ProviderError as exc:
            notes.append(f"could not mark the message read: {exc.message}")

    async def _compose(
        self,
        message: QueuedMessage,
        turn: Turn,
        reading: Reading,
        settings: ConversationSettings,
        notes: list[str],
    ) -> tuple[str | None, bool, Switch | None]:
        """The reply text, whether it is the fallback text, and the switch to a person when
        the model handed the conversation over (its ``handoff`` tool, or a refusal) or the
        tenant's budget is used up and the operator chose a handoff. No text when the budget
        is used up and the operator chose silence."""
        said = (
            ChatMessage(role="user", content=m.text, attachments=m.attachments)
            for m in reading.messages
        )
        conversation = alternating([*turn.history, *said])
        last_attempt = message.attempts >= self.settings.max_attempts
        try:
            reply = await self.assistant.reply(
                message.tenant_id, conversation, tools=(HANDOFF_TOOL,)
            )
        except RetryableProviderError as exc:
            if not last_attempt:
                raise
            notes.append(f"the LLM is still failing on the last attempt: {exc.message}")
        except StorageError:
            raise
        except BudgetExceeded as exc:
            notes.append(exc.message)
            if self.settings.budget_exceeded == "silence":
                return None, False, None
            if self.settings.budget_exceeded == "handoff":
                why = f"the platform's {exc.metric} budget is used up for {exc.period}"
                return (
                    settings.handoff_message,
                    False,
                    Switch(ConversationState.HUMAN, "budget", why),
                )
        except ChangarritoError as exc:
            notes.append(f"the LLM cannot answer: {exc.message}")
        else:
            await self.messages.llm_used(message.tenant_id, reply, f"llm:{uuid4().hex}")
            await self.reader.used(message.tenant_id, reading, reply)
            handoff = reply.handoff_reason or (
                "the model declined to answer" if reply.refused else None
            )
            if handoff is not None:
                switch = Switch(ConversationState.HUMAN, "model", handoff)
                return settings.handoff_message, False, switch
            text = reply.text.strip()
            if reply.truncated:  # never send half a sentence (or half a JSON) as the answer
                text = whole_sentences(text) or ""
                notes.append(
                    "the LLM's answer was cut at its output limit; "
                    + ("sent up to its last whole sentence" if text else "no sentence was whole")
                )
            if text:
                return text, False, None
            if not reply.truncated:
                notes.append("the LLM answered with an empty text")
        return await self.assistant.fallback_text(message.tenant_id), True, None


#: Why a turn got no reply: Meta would refuse free text now (131047). The window is the
#: turn's first message's (a burst lasts seconds, not a day).
WINDOW_CLOSED = (
    "the customer wrote more than 24 hours ago (by Meta's timestamp), so only an approved "
    "template can reach them now"
)


def _marked(part: OutboundPart) -> OutboundPart:
    """``part`` as ``sent`` left it when it recorded the part before: marked as being sent."""
    return replace(part, send_attempts=part.send_attempts + 1, sending=True)
