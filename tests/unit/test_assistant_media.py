"""What the assistant takes in besides text: attachments a model reads, and who transcribes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import msgspec
import pytest

from changarrito.domain.assistant import Assistant, TranscriptionPolicy
from changarrito.domain.chat import (
    Attachment,
    AttachmentKind,
    Audio,
    ChatMessage,
    LLMConfig,
    Reply,
    Tool,
    Transcript,
    Usage,
)
from changarrito.domain.errors import NotConfigured, ProviderAuthError, ValidationFailed
from changarrito.domain.llm import readable_by
from changarrito.domain.media import Capabilities
from changarrito.domain.model import (
    Credential,
    IntegrationType,
    PlatformCredential,
    PlatformDefaults,
    Resolved,
    Secrets,
)
from changarrito.domain.resolution import resolve

LLM = IntegrationType.LLM
TENANT = UUID(int=7)
PHOTO = Attachment("image", "image/jpeg", b"\xff\xd8\xff" + bytes(10), "photo.jpg")
PDF = Attachment("pdf", "application/pdf", b"%PDF-1.7", "ticket.pdf")
NOTE = Audio(b"OggS" + bytes(10), "audio/ogg", "voice-note.ogg")


class Backend:
    """A provider as the assistant sees it: what it reads, whether it transcribes."""

    supports_tools = False

    def __init__(
        self,
        provider_id: str,
        *,
        reads: frozenset[AttachmentKind] = frozenset(),
        transcribes: bool = False,
        fail_for: str | None = None,
    ) -> None:
        self.id = provider_id
        self._reads = reads
        self.supports_transcription = transcribes
        self.fail_for = fail_for
        self.chats: list[list[ChatMessage]] = []
        self.heard: list[tuple[Audio, LLMConfig, dict[str, Any]]] = []

    def parse_credentials(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return dict(data)

    def parse_config(self, data: Mapping[str, Any]) -> LLMConfig:
        return msgspec.convert(dict(data), LLMConfig)

    def reads(self, config: Any) -> frozenset[AttachmentKind]:
        return self._reads

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        config: Any,
        credentials: Any,
        *,
        tools: Sequence[Tool] = (),
    ) -> Reply:
        self.chats.append(list(messages))
        return Reply("ok", "m", Usage(), 1.0, self.id)

    async def transcribe(self, audio: Audio, config: Any, credentials: Any) -> Transcript:
        if credentials.get("apiKey") == self.fail_for:
            raise ProviderAuthError("key rejected", provider=self.id)
        self.heard.append((audio, config, credentials))
        return Transcript("hola", config.transcription_model or "default", self.id, seconds=2.0)


class Providers:
    def __init__(self, *backends: Backend) -> None:
        self.by_id = {b.id: b for b in backends}

    def llm(self, provider_id: str) -> Backend:
        if provider_id not in self.by_id:
            raise ValidationFailed(f"no provider {provider_id}")
        return self.by_id[provider_id]


class Credentials:
    def __init__(self, stored: list[Credential], platform: PlatformDefaults) -> None:
        self.stored = stored
        self.platform = platform

    async def resolve(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Resolved:
        return resolve(tenant_id, itype, self.stored, self.platform, provider)


PLATFORM = PlatformDefaults(
    credentials={
        (LLM, "openai"): PlatformCredential(
            LLM, "openai", Secrets({"apiKey": "sk-platform"}), {"model": "gpt-4o-mini"}
        )
    },
    default_providers={LLM: "openai"},
)


def tenant_llm(provider: str, key: str = "sk-tenant", **config: Any) -> Credential:
    return Credential(
        tenant_id=TENANT,
        integration_type=LLM,
        provider=provider,
        secrets=Secrets({"apiKey": key}),
        config=config,
    )


def assistant(
    stored: list[Credential], *, allowed: bool = False, fail_for: str | None = None
) -> tuple[Assistant, Backend, Backend]:
    openai = Backend(
        "openai", reads=frozenset({"image", "pdf"}), transcribes=True, fail_for=fail_for
    )
    anthropic = Backend("anthropic", reads=frozenset({"image"}))
    use_case = Assistant(
        Credentials(stored, PLATFORM),
        Providers(openai, anthropic),
        transcription=TranscriptionPolicy(model="whisper-1", platform_fallback=allowed),
    )
    return use_case, openai, anthropic


def test_an_attachment_a_model_cannot_read_is_replaced_by_a_note_saying_what_came() -> None:
    turn = [ChatMessage(role="user", content="¿Cuánto?", attachments=(PHOTO, PDF))]

    kept, sent = readable_by(turn, frozenset({"image"}))

    assert kept == [
        ChatMessage(
            role="user",
            content="¿Cuánto?\n[a document, which I cannot open]",
            attachments=(PHOTO,),
        )
    ]
    assert sent == ("image",)


async def test_a_reply_says_which_attachments_its_model_was_sent() -> None:
    use_case, _, anthropic = assistant([tenant_llm("anthropic")])
    turn = [ChatMessage(role="user", content="", attachments=(PHOTO, PDF))]

    reply = await use_case.reply(TENANT, turn)

    assert reply.read == ("image",)
    (sent,) = anthropic.chats
    assert sent[-1].attachments == (PHOTO,)


async def test_the_capabilities_are_those_of_the_tenants_model_and_transcriber() -> None:
    on_openai, _, _ = assistant([tenant_llm("openai")])
    on_anthropic, _, _ = assistant([tenant_llm("anthropic")])
    allowed, _, _ = assistant([tenant_llm("anthropic")], allowed=True)
    on_platform, _, _ = assistant([])

    assert await on_openai.capabilities(TENANT) == Capabilities(frozenset({"image", "pdf"}), True)
    assert await on_anthropic.capabilities(TENANT) == Capabilities(frozenset({"image"}), False)
    assert await allowed.capabilities(TENANT) == Capabilities(frozenset({"image"}), True)
    assert await on_platform.capabilities(TENANT) == Capabilities(frozenset({"image", "pdf"}), True)
    assert await on_platform.capabilities(None) == Capabilities(frozenset({"image", "pdf"}), True)


async def test_a_voice_note_is_transcribed_with_the_tenants_own_key_when_it_can() -> None:
    use_case, openai, _ = assistant([tenant_llm("openai", transcriptionModel="whisper-1")])

    transcript = await use_case.transcribe(TENANT, NOTE)

    assert (transcript.text, transcript.source, transcript.provider) == ("hola", "tenant", "openai")
    ((audio, config, credentials),) = openai.heard
    assert audio == NOTE and credentials == {"apiKey": "sk-tenant"}
    assert config.transcription_model == "whisper-1"


async def test_the_platform_transcribes_for_a_tenant_with_its_own_llm_only_when_allowed() -> None:
    refused, openai, _ = assistant([tenant_llm("anthropic")])
    with pytest.raises(NotConfigured):
        await refused.transcribe(TENANT, NOTE)
    assert openai.heard == []

    allowed, openai, _ = assistant(
        [tenant_llm("anthropic", transcriptionLanguage="es")], allowed=True
    )
    transcript = await allowed.transcribe(TENANT, NOTE)
    assert (transcript.source, transcript.model) == ("platform", "whisper-1")
    ((_, config, credentials),) = openai.heard
    assert credentials == {"apiKey": "sk-platform"} and config.transcription_language == "es"


async def test_a_rejected_tenant_key_falls_back_to_the_platform_only_when_allowed() -> None:
    strict, _, _ = assistant([tenant_llm("openai")], fail_for="sk-tenant")
    with pytest.raises(ProviderAuthError):
        await strict.transcribe(TENANT, NOTE)

    lenient, openai, _ = assistant([tenant_llm("openai")], allowed=True, fail_for="sk-tenant")
    transcript = await lenient.transcribe(TENANT, NOTE)
    assert transcript.source == "platform"
    assert [c for _, _, c in openai.heard] == [{"apiKey": "sk-platform"}]
