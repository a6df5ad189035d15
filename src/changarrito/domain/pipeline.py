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
   records the whole reply, split into parts, *before* sending any of it (its first part
   already marked as being sent, in the same transaction);
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
from datetime import timedelta
from typing import Literal

from changarrito.domain.chat import ChatMessage, alternating
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
from changarrito.domain.model import IntegrationType, Resolved, Source
from changarrito.domain.ports import MessageLog, Replier, Senders, Verifications, WhatsAppSender
from changarrito.domain.queued import OutboundPart, QueuedMessage
from changarrito.domain.text import MAX_TEXT_CHARS, split_text, whole_sentences

#: The customer service window: free-form replies are allowed this long after their message.
SERVICE_WINDOW = timedelta(hours=24)
#: Message types that never get an answer, whatever text they carry.
UNANSWERED_TYPES = frozenset({"reaction", "system", "unsupported", "ephemeral", "errors"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a message: the worker records it in the queue."""

    kind: Literal["answered", "ignored", "retry", "failed", "dead"]
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
    ) -> None:
        self.senders = senders
        self.assistant = assistant
        self.whatsapp = whatsapp
        self.messages = messages
        self.verifications = verifications
        self.settings = settings or PipelineSettings()

    async def handle(self, message: QueuedMessage) -> Outcome:
        if message.attempts > self.settings.max_attempts:
            return Outcome("dead", f"no answer after {message.attempts - 1} attempts")
        recipient = message.recipient
        if message.type in UNANSWERED_TYPES or not (message.text or "").strip() or not recipient:
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
        if not parts:
            await self._mark_read(message, token, notes)
            text, fallback = await self._compose(message, notes)
            chunks = split_text(text, MAX_TEXT_CHARS)
            parts = await self.messages.plan(message, recipient, chunks, fallback=fallback)
        ordered = sorted(parts, key=lambda p: p.part)
        todo = [p for p in ordered if not p.wamid]
        wamids = {p.part: p.wamid for p in ordered if p.wamid}
        resent = 0
        settled: bool | None = None
        for index, part in enumerate(todo):
            resent += part.send_attempts - part.sending > 0
            if not part.sending:
                await self.messages.sending(part)
            quote = message.wamid if part.part == 1 else None
            sent = await self.whatsapp.send_text(
                message.phone_number_id, token, recipient, part.text, quote
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

    async def _mark_read(self, message: QueuedMessage, token: str, notes: list[str]) -> None:
        """Blue ticks and the typing indicator while the LLM thinks. Only a rejected token
        stops the answer: the same token could not send it either."""
        try:
            await self.whatsapp.mark_read(
                message.phone_number_id, token, message.wamid, typing=self.settings.typing_indicator
            )
        except ProviderAuthError:
            raise
        except ProviderError as exc:
            notes.append(f"could not mark the message read: {exc.message}")

    async def _compose(self, message: QueuedMessage, notes: list[str]) -> tuple[str, bool]:
        """The reply text, and whether it is the fallback text."""
        since = message.sent_at - SERVICE_WINDOW
        history = await self.messages.history(
            message, since=since, limit=max(0, self.settings.history_limit - 1)
        )
        said = ChatMessage(role="user", content=(message.text or "").strip())
        conversation = alternating([*history, said])
        last_attempt = message.attempts >= self.settings.max_attempts
        try:
            reply = await self.assistant.reply(message.tenant_id, conversation)
        except RetryableProviderError as exc:
            if not last_attempt:
                raise
            notes.append(f"the LLM is still failing on the last attempt: {exc.message}")
        except StorageError:
            raise
        except ChangarritoError as exc:
            notes.append(f"the LLM cannot answer: {exc.message}")
        else:
            text = reply.text.strip()
            if reply.truncated:  # never send half a sentence (or half a JSON) as the answer
                text = whole_sentences(text) or ""
                notes.append(
                    "the LLM's answer was cut at its output limit; "
                    + ("sent up to its last whole sentence" if text else "no sentence was whole")
                )
            if text:
                return text, False
            if not reply.truncated:
                notes.append("the LLM answered with an empty text")
        return await self.assistant.fallback_text(message.tenant_id), True


def _marked(part: OutboundPart) -> OutboundPart:
    """``part`` as ``sent`` left it when it recorded the part before: marked as being sent."""
    return replace(part, send_attempts=part.send_attempts + 1, sending=True)
