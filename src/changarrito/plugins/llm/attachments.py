"""A customer's pictures and PDFs in each wire format the built-in providers speak.

Only a customer's (``user``) turn carries attachments: a turn of another role is sent as its
text alone. Every function leaves a turn without attachments exactly as before (a string).

* OpenAI Chat Completions: ``content`` becomes a list of parts, the attachments first
  (``image_url`` with a data URL and ``detail: auto``; ``file`` with ``filename`` and
  ``file_data``, a data URL: Chat Completions takes only PDFs as files), then the caption as
  a ``text`` part when it is not empty.
* Anthropic Messages: ``content`` becomes blocks, pictures and documents before the text
  (Anthropic's advice): ``image`` and ``document`` blocks with a base64 ``source``, the
  document titled with its file name when it has one.
* Ollama ``/api/chat``: ``content`` stays the caption and the pictures go in the message's
  ``images`` (base64, no data-URL prefix); Ollama reads no PDFs.
"""

from __future__ import annotations

from typing import Any

from changarrito.domain.chat import Attachment, ChatMessage

#: The file name of a PDF part when the customer's document had none.
DEFAULT_PDF_NAME = "document.pdf"


def _carried(message: ChatMessage) -> tuple[Attachment, ...]:
    return message.attachments if message.role == "user" else ()


def openai_part(attachment: Attachment) -> dict[str, Any]:
    """One attachment as a Chat Completions content part."""
    if attachment.kind == "pdf":
        name = attachment.filename or DEFAULT_PDF_NAME
        return {"type": "file", "file": {"filename": name, "file_data": attachment.data_url()}}
    return {"type": "image_url", "image_url": {"url": attachment.data_url(), "detail": "auto"}}


def openai_content(message: ChatMessage) -> str | list[dict[str, Any]]:
    """A turn's Chat Completions ``content``."""
    attachments = _carried(message)
    if not attachments:
        return message.content
    parts = [openai_part(a) for a in attachments]
    if message.content:
        parts.append({"type": "text", "text": message.content})
    return parts


def anthropic_block(attachment: Attachment) -> dict[str, Any]:
    """One attachment as a Messages content block."""
    if attachment.kind == "pdf":
        source = {"type": "base64", "media_type": "application/pdf", "data": attachment.base64()}
        block: dict[str, Any] = {"type": "document", "source": source}
        if attachment.filename:
            block["title"] = attachment.filename
        return block
    source = {"type": "base64", "media_type": attachment.mime_type, "data": attachment.base64()}
    return {"type": "image", "source": source}


def anthropic_content(message: ChatMessage) -> str | list[dict[str, Any]]:
    """A turn's Messages ``content``."""
    attachments = _carried(message)
    if not attachments:
        return message.content
    blocks = [anthropic_block(a) for a in attachments]
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    return blocks


def ollama_message(message: ChatMessage) -> dict[str, Any]:
    """A turn as an ``/api/chat`` message, its pictures in ``images``."""
    body: dict[str, Any] = {"role": message.role, "content": message.content}
    images = [a.base64() for a in _carried(message) if a.kind == "image"]
    if images:
        body["images"] = images
    return body
