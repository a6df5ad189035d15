"""The LLM conformance kit's checks of pictures, PDFs and voice notes (``LLMProviderConformance``
inherits them; they are skipped for a provider that declares neither capability).

* ``supports_attachments``: with ``vision`` and ``documents`` on, ``reads`` names a kind; a
  picture (and a PDF, when ``reads`` then names ``pdf``) leaves in the chat request (its
  base64 is in the body) next to its caption; with both off, ``reads`` is empty.
* ``supports_transcription``: ``transcribe`` sends the audio with the credentials and returns
  a ``Transcript`` with the text, a model and the provider's id; 401 is a final
  ``ProviderAuthError`` and 429 a retryable error, as for ``chat``.

A provider whose transcription answer is not OpenAI's (``{"text", "usage"}``) overrides
``transcription_response(text)``.
"""

from __future__ import annotations

import base64
import json
from typing import Any, ClassVar

import httpx
import pytest

from changarrito.domain.chat import Attachment, AttachmentKind, Audio, ChatMessage, Transcript
from changarrito.domain.errors import ProviderAuthError, ProviderError, RetryableProviderError
from changarrito.plugins.base import LLMProvider
from changarrito.testing.upstream import FakeUpstream, json_response

#: A voice note as WhatsApp sends it (an Ogg page header, then bytes that are not text).
AUDIO = Audio(
    data=b"OggS\x00\x02" + bytes(range(256)) * 4, mime_type="audio/ogg", filename="nota.ogg"
)
#: A picture and a PDF whose base64 the kit looks for in the request.
IMAGE = Attachment("image", "image/jpeg", b"\xff\xd8\xff\xe0kit-picture" + bytes(range(64)))
PDF = Attachment("pdf", "application/pdf", b"%PDF-1.4 kit-document", filename="ticket.pdf")
CAPTION = "¿Qué precio tiene esto?"
HEARD = "Quiero dos kilos de tortillas."


def _body_text(request: httpx.Request) -> str:
    """The request body as text, JSON escapes undone (``\\/`` is ``/``) when it is JSON."""
    text = request.content.decode("utf-8", "replace")
    try:
        return text + json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return text


class MediaChecks:
    """Mixed into ``LLMProviderConformance``; see the module docstring."""

    provider_class: ClassVar[type[LLMProvider]]
    config: ClassVar[dict[str, Any]]
    env: ClassVar[dict[str, str]]

    # Provided by LLMProviderConformance ---------------------------------------------------------

    def ok_response(self, text: str) -> httpx.Response:
        raise NotImplementedError

    def error_response(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        raise NotImplementedError

    def chat(
        self,
        *answers: Any,
        messages: list[ChatMessage] | None = None,
        config: dict[str, Any] | None = None,
    ) -> tuple[Any, FakeUpstream]:
        raise NotImplementedError

    def call(
        self,
        upstream: FakeUpstream,
        method: str,
        *args: Any,
        config: dict[str, Any] | None = None,
    ) -> Any:
        raise NotImplementedError

    @property
    def secret(self) -> str:
        raise NotImplementedError

    # Wire format: override when your transcription answer is not OpenAI's ------------------

    def transcription_response(self, text: str) -> httpx.Response:
        """A successful transcription whose text is ``text``."""
        return json_response(200, {"text": text, "usage": {"type": "duration", "seconds": 2.5}})

    # Helpers --------------------------------------------------------------------------------

    def reads(self, **settings: bool) -> frozenset[AttachmentKind]:
        provider = self.provider_class(FakeUpstream().context(self.env))
        return provider.reads(provider.parse_config({**self.config, **settings}))

    def attachment_sent(self, attachment: Attachment) -> httpx.Request:
        kind = "vision" if attachment.kind == "image" else "documents"
        if attachment.kind not in self.reads(vision=True, documents=True):
            pytest.skip(f"{self.provider_class.id} never reads a {attachment.kind}")
        message = ChatMessage(role="user", content=CAPTION, attachments=(attachment,))
        _, upstream = self.chat(
            self.ok_response("Cuesta 20 pesos."),
            messages=[message],
            config={**self.config, kind: True},
        )
        return upstream.last

    def transcribe(self, *answers: Any) -> tuple[Any, FakeUpstream]:
        if not self.provider_class.supports_transcription:
            pytest.skip(f"{self.provider_class.id} does not declare supports_transcription")
        upstream = FakeUpstream(*answers)
        return self.call(upstream, "transcribe", AUDIO), upstream

    def transcribe_error(self, *answers: Any) -> ProviderError:
        with pytest.raises(ProviderError) as info:
            self.transcribe(*answers)
        return info.value

    # The checks -----------------------------------------------------------------------------

    def test_reads_nothing_when_vision_and_documents_are_off(self) -> None:
        assert self.reads(vision=False, documents=False) == frozenset()

    def test_a_provider_that_supports_attachments_reads_some_when_turned_on(self) -> None:
        if not self.provider_class.supports_attachments:
            pytest.skip("the provider does not declare supports_attachments")
        assert self.reads(vision=True, documents=True), (
            "supports_attachments is set, but reads() names nothing with vision and documents on"
        )

    def test_a_picture_leaves_in_the_chat_request_with_its_caption(self) -> None:
        if not self.provider_class.supports_attachments:
            pytest.skip("the provider does not declare supports_attachments")
        body = _body_text(self.attachment_sent(IMAGE))
        assert IMAGE.base64() in body, "the picture's bytes (base64) are not in the request"
        assert CAPTION in body

    def test_a_pdf_leaves_in_the_chat_request_with_its_caption(self) -> None:
        if not self.provider_class.supports_attachments:
            pytest.skip("the provider does not declare supports_attachments")
        body = _body_text(self.attachment_sent(PDF))
        assert PDF.base64() in body, "the PDF's bytes (base64) are not in the request"
        assert CAPTION in body

    def test_transcription_returns_text_model_and_provider(self) -> None:
        transcript, upstream = self.transcribe(self.transcription_response(HEARD))
        assert isinstance(transcript, Transcript)
        assert transcript.text == HEARD
        assert transcript.model and transcript.provider == self.provider_class.id
        assert AUDIO.data in upstream.last.content or (
            base64.b64encode(AUDIO.data).decode() in _body_text(upstream.last)
        ), "the audio's bytes are not in the request"

    def test_transcription_sends_the_credentials(self) -> None:
        _, upstream = self.transcribe(self.transcription_response(HEARD))
        sent = " ".join(f"{k}={v}" for k, v in upstream.last.headers.items())
        assert self.secret in sent or self.secret in str(upstream.last.url), (
            "transcribe must authenticate with the credentials"
        )

    def test_transcription_with_a_rejected_key_is_a_final_auth_error(self) -> None:
        error = self.transcribe_error(self.error_response(401, "invalid key"))
        assert isinstance(error, ProviderAuthError) and not error.retryable

    def test_transcription_rate_limit_is_retryable(self) -> None:
        error = self.transcribe_error(self.error_response(429, "slow down", {"retry-after": "7"}))
        assert isinstance(error, RetryableProviderError) and error.retry_after == 7.0
