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

from changarrito.domain.errors import FinalProviderError

MB = 1024 * 1024

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
