"""OpenAI's ``POST /audio/transcriptions`` (also Azure OpenAI's and OpenAI-compatible
servers'): the multipart form sent, and the ``json`` answer read.

The form is ``file`` (the audio with its filename and content type: the API tells the format
by them, so a WhatsApp voice note goes as ``*.ogg``, ``audio/ogg``), ``model``, ``language``
when configured and ``response_format=json`` (the only format every model takes). The answer
is ``{"text", "usage"?}``, ``usage`` being ``{"type": "duration", "seconds"}`` (whisper-1)
or ``{"type": "tokens", "input_tokens", "output_tokens", ...}`` (the gpt-4o models).
"""

from __future__ import annotations

import httpx
import msgspec

from changarrito.domain.chat import Audio, Transcript, Usage
from changarrito.plugins.upstream import decode_json

PATH = "/audio/transcriptions"


class _Usage(msgspec.Struct):
    type: str = ""
    seconds: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0


class TranscriptionAnswer(msgspec.Struct):
    """The part of a ``response_format=json`` transcription we read."""

    text: str
    usage: _Usage | None = None


def form(
    audio: Audio, *, model: str | None, language: str | None
) -> tuple[dict[str, tuple[str, bytes, str]], dict[str, str]]:
    """(files, fields) of the multipart request; ``model=None`` sends no ``model`` field
    (Azure's deployment URL names it)."""
    fields = {"response_format": "json"}
    if model:
        fields["model"] = model
    if language:
        fields["language"] = language
    return {"file": (audio.filename, audio.data, audio.mime_type)}, fields


def transcript(response: httpx.Response, *, model: str, provider: str) -> Transcript:
    """The answer as a ``Transcript`` (``ProviderBadResponse`` when it is not one)."""
    answer: TranscriptionAnswer = decode_json(response, TranscriptionAnswer, provider)
    usage = answer.usage
    seconds = usage.seconds if usage is not None and usage.type == "duration" else None
    tokens = None
    if usage is not None and usage.type == "tokens":
        tokens = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    return Transcript(
        text=answer.text.strip(), model=model, provider=provider, seconds=seconds, usage=tokens
    )
