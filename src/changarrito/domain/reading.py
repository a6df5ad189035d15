"""Reading what the customer sent besides words: the use case the pipeline runs on a turn's
voice notes, pictures, documents, videos and stickers before the model answers.

Pure: its ports are in ``ports.py`` (``WhatsAppSender.download_media``: the Graph client;
``Replier``: the assistant, which knows what the tenant's model reads and transcribes with
the credential the fallback policy picks; ``MediaLog``: the Postgres record of each item).
For each media message of a turn, ``media.action_for`` decides, and ``MediaReader.read``:

- **transcribes** a voice note once: downloaded with the receiving number's token (Meta's
  limits, the allow-list and the hash checked), transcribed, and the transcript stored as the
  message's text in the same statement that records who transcribed it, so a message claimed
  again after a crash finds it and never transcribes twice;
- **attaches** a picture (or a PDF) for a model that reads it, downloaded for this answer
  only and never kept; the use is recorded once the model has read it (``used``);
- leaves **unread** what the model cannot take (a video, a sticker, a picture for a model
  without vision...): the model is told what came, and a turn with nothing else gets the
  tenant's "only text and voice notes" reply, once per conversation;
- records a **failure** (too big, wrong type, an expired link twice, a refused
  transcription) with its reason on the item, for the shop to see, and the turn gets one
  clear reply saying what could not be opened and what can be read.

A failure of the receiving number's own token propagates (the pipeline marks the WhatsApp
credential); a transient failure propagates too (the message is retried), except on the
last attempt, where it is a failure like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from changarrito.domain import media
from changarrito.domain.budgets import BudgetExceeded
from changarrito.domain.chat import Attachment, AttachmentKind, Audio, Reply
from changarrito.domain.errors import (
    ChangarritoError,
    FinalProviderError,
    ProviderAuthError,
    ProviderError,
    RetryableProviderError,
    StorageError,
)
from changarrito.domain.media import Capabilities, MediaItem, MediaRefused
from changarrito.domain.ports import MediaLog, MetricsRecorder, Replier, WhatsAppSender
from changarrito.domain.queued import TurnMessage


@dataclass(frozen=True, slots=True)
class Read:
    """One message of the turn as the model gets it: its words (the text, the caption, the
    transcript or a marker of what came) and the items it sees."""

    id: int
    text: str
    attachments: tuple[Attachment, ...] = ()
    #: The kind of an item that could not be used (``failure_reply``), or of one the model
    #: cannot take (``unread``).
    failed: str | None = None
    unread: str | None = None

    @property
    def readable(self) -> bool:
        return bool(self.attachments) or (
            bool(self.text) and self.failed is None and self.unread is None
        )


@dataclass(frozen=True, slots=True)
class Reading:
    """The turn as read: its messages, in order."""

    messages: tuple[Read, ...]

    @property
    def readable(self) -> bool:
        """Whether anything in the turn can be answered by the model."""
        return any(m.readable for m in self.messages)

    @property
    def failures(self) -> list[str]:
        return [m.failed for m in self.messages if m.failed]

    def attached(self) -> list[tuple[int, Attachment]]:
        return [(m.id, a) for m in self.messages for a in m.attachments]


#: What the model is told of a message WhatsApp could not show (an unsupported type).
UNSHOWN = "[a message WhatsApp could not show]"


class MediaReader:
    """Makes what a turn's media says readable to the model (see the module docstring)."""

    def __init__(
        self,
        *,
        whatsapp: WhatsAppSender,
        assistant: Replier,
        log: MediaLog,
        metrics: MetricsRecorder | None = None,
    ) -> None:
        self.whatsapp = whatsapp
        self.assistant = assistant
        self.log = log
        self.metrics = metrics

    async def items(self, said: Sequence[TurnMessage]) -> dict[int, MediaItem]:
        """The turn's media items, filed on first sight."""
        ids = [m.id for m in said if m.type in media.MEDIA_TYPES]
        return {i.inbound_id: i for i in await self.log.media_items(ids)} if ids else {}

    async def read(
        self,
        tenant_id: UUID | None,
        phone_number_id: str,
        token: str,
        said: Sequence[TurnMessage],
        items: dict[int, MediaItem],
        can: Capabilities,
        *,
        last_attempt: bool,
    ) -> Reading:
        """The turn ``said`` as the model reads it (``items``: its media, ``can``: what the
        tenant's assistant reads)."""
        read: list[Read] = []
        for message in said:
            item = items.get(message.id)
            if item is None:
                text = (message.text or "").strip()
                unread = None if text else message.type
                marker = media.MARKERS.get(message.type, UNSHOWN)
                read.append(Read(message.id, text or marker, unread=unread))
                continue
            read.append(await self._one(tenant_id, phone_number_id, token, item, can, last_attempt))
        return Reading(tuple(read))

    async def used(self, tenant_id: UUID | None, reading: Reading, reply: Reply) -> None:
        """Records each picture and document the model was sent in the call that made
        ``reply`` (the kinds its provider read: a fallback model may have read fewer)."""
        sent = [(i, a) for i, a in reading.attached() if a.kind in reply.read]
        if sent:
            await self.log.media_used(tenant_id, sent, reply)
            for _, attachment in sent:
                self._media_to_model(attachment.kind, reply, tenant_id)

    async def _one(
        self,
        tenant_id: UUID | None,
        phone_number_id: str,
        token: str,
        item: MediaItem,
        can: Capabilities,
        last_attempt: bool,
    ) -> Read:
        caption = (item.text or "").strip()
        action = media.action_for(item, can)
        if action == "done":
            return Read(item.inbound_id, caption)
        if action == "failed":
            return self._failed(item, caption)
        if action == "unread":
            if item.state == "received":
                await self.log.media_outcome(
                    item.inbound_id, "unread", "not-readable", _unread_reason(item, can)
                )
            return Read(item.inbound_id, caption or media.MARKERS[item.kind], unread=item.kind)
        try:
            file = await self._download(tenant_id, phone_number_id, token, item)
            if action == "attach":
                kind: AttachmentKind = "image" if item.kind == "image" else "pdf"
                name = media.filename_for(item.kind, file.mime_type, item.filename)
                attachment = Attachment(kind, file.mime_type, file.content, name)
                return Read(item.inbound_id, caption, (attachment,))
            text = await self._transcribe(tenant_id, item, file)
        except MediaRefused as exc:
            return await self._failure(item, caption, exc.reason, exc.message)
        except ProviderAuthError:
            raise  # the number's own token: the pipeline marks its credential
        except FinalProviderError as exc:  # Graph refused the item (a bad or unknown id...)
            return await self._failure(item, caption, "download-failed", exc.message)
        except RetryableProviderError as exc:
            if not last_attempt:
                raise
            return await self._failure(item, caption, "unavailable", exc.message)
        return Read(item.inbound_id, text)

    async def _download(
        self, tenant_id: UUID | None, phone_number_id: str, token: str, item: MediaItem
    ) -> media.MediaFile:
        if not item.media_id:
            raise MediaRefused("WhatsApp sent no media id for it", reason="no-media-id")
        try:
            file = await self.whatsapp.download_media(
                item.media_id, token, kind=item.kind, phone_number_id=phone_number_id
            )
        except ProviderError as exc:
            self._download_counted(item.kind, tenant_id, 0, exc)
            raise
        self._download_counted(item.kind, tenant_id, file.size, None)
        return file

    async def _transcribe(
        self, tenant_id: UUID | None, item: MediaItem, file: media.MediaFile
    ) -> str:
        audio = Audio(
            file.content, file.mime_type, media.filename_for("audio", file.mime_type, None)
        )
        try:
            transcript = await self.assistant.transcribe(tenant_id, audio)
        except (StorageError, RetryableProviderError):
            raise
        except FinalProviderError as exc:  # the transcriber's own refusal, not the number's
            raise MediaRefused(
                f"the transcription failed: {exc.message}", reason="transcription-refused"
            ) from None
        except BudgetExceeded as exc:  # the platform's transcription is used up this month
            raise MediaRefused(exc.message, reason="budget-exceeded") from None
        except ChangarritoError as exc:  # nobody may transcribe it (NotConfigured...)
            raise MediaRefused(exc.message, reason="no-transcriber") from None
        text = transcript.text.strip()
        if not text:
            raise MediaRefused("no words could be heard in the voice note", reason="empty")
        return await self.log.transcribed(item.inbound_id, tenant_id, text, transcript)

    async def _failure(self, item: MediaItem, caption: str, code: str, reason: str) -> Read:
        await self.log.media_outcome(item.inbound_id, "failed", code, reason)
        return self._failed(item, caption)

    @staticmethod
    def _failed(item: MediaItem, caption: str) -> Read:
        marker = media.FAILED_MARKERS.get(item.kind, media.MARKERS[item.kind])
        return Read(item.inbound_id, f"{marker} {caption}".strip(), failed=item.kind)

    def _download_counted(
        self, kind: str, tenant_id: UUID | None, size: int, error: BaseException | None
    ) -> None:
        if self.metrics is not None:
            self.metrics.media_download(kind, tenant_id, size, error)

    def _media_to_model(self, kind: str, reply: Reply, tenant_id: UUID | None) -> None:
        if self.metrics is not None:
            self.metrics.media_to_model(kind, reply.provider, reply.source or "", tenant_id)


def _unread_reason(item: MediaItem, can: Capabilities) -> str:
    if item.kind == "audio":
        return "nobody can transcribe voice notes for this shop (see the assistant's settings)"
    if item.kind == "image":
        return "the shop's model does not read pictures (the assistant's vision setting)"
    if item.kind == "document":
        if media.essence(item.mime_type) == "application/pdf":
            return "the shop's model does not read PDF documents (the documents setting)"
        return f"documents of type {media.essence(item.mime_type) or 'unknown'} cannot be read"
    return f"a {item.kind} cannot be read; the customer was told what can"
