"""The customer's media: what may be downloaded, and how big it may be.

Pure rules for the media download (``adapters/whatsapp/graph.py``
``GraphClient.download_media``): Meta's own size limit per type, checked on Graph's metadata
before anything is downloaded and again while the bytes arrive; an allow-list of MIME types per
type; and the SHA-256 Graph states, checked on the bytes received. Anything else is refused
with a ``MediaRefused`` whose ``reason`` says why (shown to the shop on the message).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Literal

from changarrito.domain.errors import FinalProviderError

MB = 1024 * 1024
#: Meta's limit on a picture's or document's caption, in characters.
MAX_CAPTION_CHARS = 1024

#: Meta's limits on inbound media, in bytes, per message type.
MAX_BYTES: dict[str, int] = {
    "audio": 16 * MB,
    "video": 16 * MB,
    "image": 5 * MB,
    "document": 100 * MB,
    "sticker": 500 * 1024,
}

#: The MIME types Meta documents per type (parameters such as ``; codecs=opus`` aside).
ALLOWED_MIME: dict[str, frozenset[str]] = {
    "audio": frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
    "video": frozenset({"video/mp4", "video/3gpp"}),
    "image": frozenset({"image/jpeg", "image/png"}),
    "document": frozenset(
        {
            "text/plain",
            "application/pdf",
            "application/msword",
            "application/vnd.ms-excel",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        }
    ),
    "sticker": frozenset({"image/webp"}),
}


class MediaRefused(FinalProviderError):
    """A media item that is not downloaded, or not used: ``reason`` is one of
    ``unknown-type``, ``type-not-allowed``, ``too-large``, ``hash-mismatch``, ``expired``,
    ``untrusted-host`` (a download link off Meta's hosts: the token is not sent there)."""

    code = "media-refused"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, provider="meta")
        self.reason = reason


def essence(mime: str | None) -> str:
    """``audio/ogg; codecs=opus`` → ``audio/ogg`` (lower case, no parameters)."""
    return (mime or "").split(";", 1)[0].strip().lower()


def check_metadata(kind: str, mime: str | None, size: int | None) -> int:
    """The byte limit for a ``kind`` item whose metadata says ``mime`` and ``size``;
    ``MediaRefused`` when the type is unknown, the MIME type is not allowed for it, or the
    stated size is over the limit."""
    limit = MAX_BYTES.get(kind)
    if limit is None:
        raise MediaRefused(f"{kind!r} is not a media type", reason="unknown-type")
    if essence(mime) not in ALLOWED_MIME[kind]:
        raise MediaRefused(
            f"a {kind} of type {essence(mime) or 'unknown'} is not accepted",
            reason="type-not-allowed",
        )
    if size is not None and size > limit:
        raise MediaRefused(
            f"the {kind} is {size:,} bytes, over the {limit:,}-byte limit", reason="too-large"
        )
    return limit


@dataclass(slots=True)
class Received:
    """Bytes of one item as they arrive: counted against ``limit`` and hashed."""

    kind: str
    limit: int
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise MediaRefused(
                f"the {self.kind} passed its {self.limit:,}-byte limit while downloading",
                reason="too-large",
            )
        self._hash.update(chunk)
        self.chunks.append(chunk)

    def verified(self, sha256: str | None) -> bytes:
        """The bytes, when their SHA-256 is the one Graph stated (webhooks give it in
        base64, Meta's media reference in hex: either is accepted; none stated: as is)."""
        digest = self._hash.digest()
        stated = (sha256 or "").strip()
        forms = (digest.hex(), base64.b64encode(digest).decode("ascii"))
        if stated and not any(
            hmac.compare_digest(stated.lower() if f == forms[0] else stated, f) for f in forms
        ):
            raise MediaRefused(
                "the media's SHA-256 is not the one WhatsApp stated", reason="hash-mismatch"
            )
        return b"".join(self.chunks)


@dataclass(frozen=True, slots=True)
class MediaFile:
    """A downloaded item, its size and SHA-256 checked (the bytes never in a ``repr``)."""

    content: bytes = field(repr=False)
    mime_type: str
    sha256: str | None
    size: int


@dataclass(frozen=True, slots=True)
class OutgoingMedia:
    """A picture or document the shop sends: by the id Graph's upload gave (``media_id``)
    or by a public HTTPS ``link`` Meta fetches, with an optional ``caption`` (up to 1,024
    characters) and, for a document, the ``filename`` the customer sees."""

    kind: Literal["image", "document"]
    media_id: str | None = None
    link: str | None = None
    caption: str | None = None
    filename: str | None = None


# --- what a worker makes of the customer's media (``reading.MediaReader``) ------------------

#: Inbound message types that carry a media item.
MEDIA_TYPES = frozenset(MAX_BYTES)


@dataclass(frozen=True, slots=True)
class MediaItem:
    """A customer's media item as stored (``whatsapp_media``): what Meta said it is, what
    became of it so far (``state``) and its message's current text (the caption, or once
    transcribed the transcript)."""

    inbound_id: int
    kind: str
    media_id: str | None
    mime_type: str | None
    sha256: str | None
    filename: str | None
    voice: bool
    state: str
    reason_code: str | None
    reason: str | None
    text: str | None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a tenant's assistant can take in besides text: the kinds its model ``reads``
    (``image``, ``pdf``) and whether a voice note can be transcribed for it."""

    reads: frozenset[str] = frozenset()
    transcribes: bool = False


Action = Literal["transcribe", "attach", "done", "unread", "failed"]


def action_for(item: MediaItem, can: Capabilities) -> Action:
    """What to do with ``item`` for a model that can do ``can``:

    - ``done``: nothing left (a voice note already transcribed: its text is the transcript);
    - ``failed``: it failed before (its ``reason`` stands; a message answered again after a
      crash does not download it again);
    - ``transcribe``: a voice note or audio file, when someone can transcribe it;
    - ``attach``: a picture (``image``) or a PDF for a model that reads it: downloaded for
      each answer, never kept;
    - ``unread``: anything else (a video, a sticker, a picture for a model without vision, a
      document that is not a PDF or for a model without documents, audio nobody can
      transcribe): the customer is told what can be read.
    """
    if item.state == "transcribed":
        return "done"
    if item.state == "failed":
        return "failed"
    if item.kind == "audio":
        return "transcribe" if can.transcribes else "unread"
    if item.kind == "image" and "image" in can.reads:
        return "attach"
    if item.kind == "document" and essence(item.mime_type) == "application/pdf":
        return "attach" if "pdf" in can.reads else "unread"
    return "unread"


_THINGS = {
    "audio": ("tu nota de voz", "your voice note"),
    "image": ("tu foto", "your photo"),
    "video": ("tu video", "your video"),
    "document": ("tu documento", "your document"),
    "sticker": ("tu sticker", "your sticker"),
}


def readable_kinds(can: Capabilities) -> tuple[str, str]:
    """What the assistant reads, in Spanish and in English (``texto, notas de voz y fotos``)."""
    es, en = ["mensajes de texto"], ["text messages"]
    if can.transcribes:
        es.append("notas de voz")
        en.append("voice notes")
    if "image" in can.reads:
        es.append("fotos")
        en.append("photos")
    if "pdf" in can.reads:
        es.append("documentos PDF")
        en.append("PDF documents")
    return _joined(es, "y"), _joined(en, "and")


def text_only_reply(can: Capabilities) -> str:
    """The once-per-conversation reply to what the assistant cannot read, when neither the
    tenant (``textOnlyReply``) nor the operator (``CHANGARRITO_TEXT_ONLY_REPLY``) wrote one:
    what it does read (``Solo puedo leer mensajes de texto y notas de voz``...)."""
    es_reads, en_reads = readable_kinds(can)
    return (
        f"Solo puedo leer {es_reads}; ¿me lo escribes, por favor? "
        f"/ I can only read {en_reads}; could you type it, please?"
    )


def failure_reply(kinds: list[str], can: Capabilities) -> str:
    """The one clear reply to a turn whose media could not be used and that said nothing
    else: what could not be opened, and what the assistant reads."""
    first = kinds[0] if kinds else "document"
    es_thing, en_thing = _THINGS.get(first, _THINGS["document"])
    es_reads, en_reads = readable_kinds(can)
    return (
        f"Perdón, no pude abrir {es_thing}. Puedo leer {es_reads}; ¿me lo escribes, por favor? "
        f"/ Sorry, I couldn't open {en_thing}. I can read {en_reads}; could you type it, please?"
    )


def _joined(words: list[str], conjunction: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


#: What the model is told of an item it does not get, in a turn that has words too.
MARKERS = {
    "audio": "[a voice note, which I cannot listen to]",
    "image": "[a photo, which I cannot see]",
    "video": "[a video, which I cannot watch]",
    "document": "[a document, which I cannot open]",
    "sticker": "[a sticker]",
}
FAILED_MARKERS = {
    "audio": "[a voice note that could not be transcribed]",
    "image": "[a photo that could not be opened]",
    "document": "[a document that could not be opened]",
}


def filename_for(kind: str, mime: str | None, filename: str | None) -> str:
    """A file name whose extension says the format (transcription APIs want one): the
    customer's own for a document, else ``voice-note.ogg``, ``audio.mp3``, ``photo.jpg``..."""
    if filename and "/" not in filename and "\\" not in filename:
        return filename
    extension = _EXTENSIONS.get(essence(mime), "bin")
    stem = {"audio": "voice-note", "image": "photo", "document": "document"}.get(kind, kind)
    return f"{stem}.{extension}"


_EXTENSIONS = {
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
    "audio/amr": "amr",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "application/pdf": "pdf",
}
