"""What the shop may send through the inbox (``inbox.Inbox``): text PostgreSQL can store, and
a picture or document that WhatsApp takes.

Pure rules. A picture or document the shop sends is untrusted input: a ``link`` must be a
public HTTPS URL with a host name (``check_link``: we never fetch it, Meta does), an upload
must really be what its type says, within ``media.py``'s limits (``check_upload``), a caption
at most 1,024 characters and a document's name a plain file name (``check_filename``). Each
refusal is a ``MediaNotSendable`` with its own ``code``, raised before anything is recorded
or sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from changarrito.domain.errors import ValidationFailed
from changarrito.domain.media import ALLOWED_MIME, MAX_BYTES, MAX_CAPTION_CHARS, essence


class MediaNotSendable(ValidationFailed):
    """The picture or document cannot be sent as given."""

    code = "media-not-sendable"


class MediaLinkRefused(MediaNotSendable):
    """The media link is not a public HTTPS URL with a host name."""

    code = "media-link-refused"


class CaptionTooLong(MediaNotSendable):
    """A caption is at most 1,024 characters."""

    code = "caption-too-long"


class FilenameRefused(MediaNotSendable):
    """A document's name must be a plain file name (no folders), up to 240 characters."""

    code = "media-filename-refused"


class MediaTypeNotAllowed(MediaNotSendable):
    """WhatsApp does not accept this type of file for this kind of message."""

    code = "media-type-not-allowed"


class MediaContentMismatch(MediaNotSendable):
    """The file's bytes are not what its type says."""

    code = "media-content-mismatch"


class MediaTooLarge(MediaNotSendable):
    """The file is over WhatsApp's size limit for this kind of message."""

    code = "media-too-large"


@dataclass(frozen=True, slots=True)
class MediaUpload:
    """A picture or document the shop uploads to send: its bytes, the MIME type the upload
    declared (checked against the bytes, never trusted alone), the uploaded file's own name
    (``file_name``), an optional ``caption`` and, for a document, the ``filename`` the
    customer sees (default: the file's own name)."""

    kind: Literal["image", "document"]
    content: bytes = field(repr=False)
    declared_type: str | None
    file_name: str | None = None
    caption: str | None = None
    filename: str | None = None


def check_text(field: str, value: str, *, blank: bool = True) -> None:
    """``ValidationFailed`` for text PostgreSQL cannot store (a NUL, a lone surrogate) and,
    unless ``blank``, for text with nothing but whitespace."""
    problem = None
    if "\x00" in value:
        problem = "must not contain NUL characters"
    elif not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problem = "must be valid Unicode text (no lone surrogates)"
    if problem is None and not blank and not value.strip():
        problem = "must not be blank"
    if problem is not None:
        raise ValidationFailed(f"{field} {problem}", errors=[(field, problem)])


#: Meta's limit on a caption; our limits on a link Meta fetches and on a document's name.
MAX_LINK_CHARS = 2048
MAX_FILENAME_CHARS = 240
#: Host names that never name a public host (RFC 6761, RFC 8375, ICANN's ``.internal``).
PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".lan")
_LABEL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")

#: How each type's content starts (bytes any such file has at offset 0).
MAGIC: Mapping[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "application/pdf": (b"%PDF-",),
    # Office 97-2003 files are OLE2 compound files; Office 2007+ files are ZIP archives.
    "application/msword": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",),
    "application/vnd.ms-excel": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",),
    "application/vnd.ms-powerpoint": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (b"PK\x03\x04",),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (b"PK\x03\x04",),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": (b"PK\x03\x04",),
}
#: The file name extensions a document of each type may have (the icon the customer sees).
EXTENSIONS: Mapping[str, frozenset[str]] = {
    "text/plain": frozenset({"txt", "text", "csv", "log"}),
    "application/pdf": frozenset({"pdf"}),
    "application/msword": frozenset({"doc", "dot"}),
    "application/vnd.ms-excel": frozenset({"xls", "xlt"}),
    "application/vnd.ms-powerpoint": frozenset({"ppt", "pps", "pot"}),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": frozenset({"docx"}),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": frozenset({"xlsx"}),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": frozenset(
        {"pptx"}
    ),
}


def check_link(link: str | None) -> str:
    """``link`` when Meta may be asked to fetch it: ``https``, at most 2,048 characters, no
    user name or password, no spaces or control characters, a host *name* (not an IP
    address, not ``localhost`` nor a ``.local``/``.internal``-style private name) and no port
    but 443. We never fetch it ourselves; this keeps the shop's input to public URLs."""

    def refuse(problem: str) -> MediaLinkRefused:
        return MediaLinkRefused(f"the link {problem}", errors=[("link", problem)])

    if not link:
        raise refuse("is required")
    if len(link) > MAX_LINK_CHARS:
        raise refuse(f"is over {MAX_LINK_CHARS:,} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in link):
        raise refuse("must not contain spaces or control characters")
    try:
        parts = urlsplit(link)
        port = parts.port
    except ValueError as exc:
        raise refuse("is not a valid URL") from exc
    if parts.scheme.lower() != "https":
        raise refuse("must be an https:// URL")
    if "@" in parts.netloc:
        raise refuse("must not carry a user name or password")
    if port not in (None, 443):
        raise refuse("must not name a port other than 443")
    host = (parts.hostname or "").rstrip(".")
    if not _public_host_name(host):
        raise refuse("must name a public host by its name (not an IP address or a local name)")
    return link


def _public_host_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return False
    labels = ascii_host.split(".")
    if len(labels) < 2 or not all(
        0 < len(label) <= 63 and set(label) <= _LABEL for label in labels
    ):
        return False
    if labels[-1].isdigit() or ascii_host == "localhost":  # 127.1, 0x7f.1 and the like
        return False
    return not f".{ascii_host}".endswith(PRIVATE_SUFFIXES)


def check_caption(caption: str | None) -> str | None:
    """The caption (``None`` when blank); ``CaptionTooLong`` past 1,024 characters."""
    if caption is None or not caption.strip():
        return None
    check_text("caption", caption)
    if len(caption) > MAX_CAPTION_CHARS:
        problem = f"is over {MAX_CAPTION_CHARS:,} characters"
        raise CaptionTooLong(f"the caption {problem}", errors=[("caption", problem)])
    return caption


def check_filename(kind: str, filename: str | None, *, upload: bool = False) -> str | None:
    """A document's name as the customer sees it: a plain name (no ``/`` or ``\\``, not
    ``.`` or ``..``, no control characters), up to 240 characters. A picture has none: a
    ``filename`` for one is refused, unless it is an upload's own file name (then unused)."""
    if filename is None or (upload and kind != "document"):
        return None
    problem = None
    if kind != "document":
        problem = "is only for documents"
    elif not filename.strip() or filename.strip() in (".", ".."):
        problem = "must be a file name"
    elif len(filename) > MAX_FILENAME_CHARS:
        problem = f"is over {MAX_FILENAME_CHARS} characters"
    elif any(c in "/\\" for c in filename):
        problem = "must be a plain file name, without folders"
    elif any(ord(c) < 32 or ord(c) == 127 for c in filename):
        problem = "must not contain control characters"
    if problem is not None:
        raise FilenameRefused(f"the filename {problem}", errors=[("filename", problem)])
    check_text("filename", filename)
    return filename


def check_upload(upload: MediaUpload) -> str:
    """The MIME type the upload is sent with, when its bytes may be sent as ``kind``: a type
    WhatsApp accepts for it (``media.ALLOWED_MIME``; a generic or missing declaration is
    read from the bytes for JPEG, PNG and PDF), within its size limit (``media.MAX_BYTES``),
    and bytes that really are of that type (their signature; plain text has no NUL byte),
    with a document's name ending as its type does."""
    kind, content = upload.kind, upload.content
    declared = essence(upload.declared_type)
    if declared in ("", "application/octet-stream"):
        declared = sniff(content) or declared
    allowed = ALLOWED_MIME.get(kind, frozenset())
    if kind not in ("image", "document") or declared not in allowed:
        problem = f"a {kind} of type {declared or 'unknown'} is not accepted"
        raise MediaTypeNotAllowed(problem, errors=[("file", problem)])
    limit = MAX_BYTES[kind]
    if len(content) > limit:
        problem = f"the {kind} is {len(content):,} bytes, over the {limit:,}-byte limit"
        raise MediaTooLarge(problem, errors=[("file", problem)])
    if not content or not _looks_like(declared, content):
        problem = f"the file is not a {declared} file"
        raise MediaContentMismatch(problem, errors=[("file", problem)])
    name = upload.filename or upload.file_name
    if kind == "document" and name and "." in name.strip("."):
        extension = name.rsplit(".", 1)[-1].lower()
        if extension not in EXTENSIONS.get(declared, frozenset()):
            problem = f"a {declared} file cannot be named .{extension}"
            raise MediaContentMismatch(problem, errors=[("filename", problem)])
    return declared


def sniff(content: bytes) -> str | None:
    """The type of a JPEG, PNG or PDF file, from its first bytes."""
    for mime in ("image/jpeg", "image/png", "application/pdf"):
        if content.startswith(MAGIC[mime]):
            return mime
    return None


def _looks_like(mime: str, content: bytes) -> bool:
    if mime == "text/plain":
        return b"\x00" not in content
    return content.startswith(MAGIC[mime])
