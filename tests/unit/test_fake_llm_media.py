"""The fake LLM server of the integration and end-to-end tests transcribes voice notes like
OpenAI's (and Azure's) ``/audio/transcriptions`` and keeps what each chat request sent,
pictures included, for the tests to read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from changarrito.adapters.http import HttpClients
from changarrito.domain.errors import ProviderAuthError, RetryableProviderError
from changarrito.plugin import (
    Attachment,
    Audio,
    ChatMessage,
    LLMProvider,
    ProviderContext,
    Transcript,
)
from changarrito.plugins.llm.anthropic import AnthropicProvider
from changarrito.plugins.llm.azure_openai import AzureOpenAIProvider
from changarrito.plugins.llm.openai import OpenAIProvider
from fakes.fake_llm import FakeLLM

KEY = "sk-fake-0000000"
#: Every byte value, so a body decoded as text anywhere on the way would show.
VOICE = Audio(data=b"OggS" + bytes(range(256)) * 8, mime_type="audio/ogg", filename="nota.ogg")
PICTURE = Attachment("image", "image/jpeg", b"\xff\xd8\xff\xe0fake-jpeg")


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def providers(llm: FakeLLM) -> AsyncIterator[dict[str, LLMProvider]]:
    llm.set_transcript(None)
    llm.script_transcription()
    http = HttpClients()
    env = {
        "OPENAI_BASE_URL": llm.url + "/v1",
        "ANTHROPIC_BASE_URL": llm.url + "/v1",
        # the platform's own Azure endpoint: trusted, so the guard lets 127.0.0.1 through
        "AZURE_OPENAI_API_KEY": "az-fake-key",
        "AZURE_OPENAI_ENDPOINT": llm.url,
    }
    context = ProviderContext(http=http, env=env)
    try:
        yield {
            "openai": OpenAIProvider(context),
            "anthropic": AnthropicProvider(context),
            "azure-openai": AzureOpenAIProvider(context),
        }
    finally:
        await http.aclose()


async def transcribe(provider: LLMProvider, config: dict[str, str] | None = None) -> Transcript:
    credentials = (
        {"apiKey": "az-fake-key", "endpoint": provider.context.env["AZURE_OPENAI_ENDPOINT"]}
        if provider.id == "azure-openai"
        else {"apiKey": KEY}
    )
    return await provider.transcribe(
        VOICE, provider.parse_config(config or {}), provider.parse_credentials(credentials)
    )


async def test_a_voice_note_is_recorded_with_its_model_name_type_bytes_and_language(
    llm: FakeLLM, providers: dict[str, LLMProvider]
) -> None:
    transcript = await transcribe(providers["openai"], {"transcriptionLanguage": "es"})

    received = llm.last_transcription()
    assert received.path == "/v1/audio/transcriptions"
    assert (received.model, received.filename, received.content_type) == (
        "gpt-4o-mini-transcribe",
        "nota.ogg",
        "audio/ogg",
    )
    assert received.data == VOICE.data
    assert (received.language, received.response_format) == ("es", "json")
    assert received.headers["authorization"] == f"Bearer {KEY}"
    assert transcript.text == FakeLLM.transcript_for(VOICE.data)
    assert transcript.seconds == FakeLLM.seconds_for(VOICE.data)


async def test_a_fixed_transcript_is_answered_until_it_is_cleared(
    llm: FakeLLM, providers: dict[str, LLMProvider]
) -> None:
    llm.set_transcript("Quiero dos kilos de tortillas.", seconds=2.0)
    first = await transcribe(providers["openai"])
    llm.set_transcript(None)
    after = await transcribe(providers["openai"])
    assert (first.text, first.seconds) == (
        "Quiero dos kilos de tortillas.",
        2.0,
    )
    assert after.text == FakeLLM.transcript_for(VOICE.data)


async def test_queued_transcription_failures_come_first_and_are_recorded(
    llm: FakeLLM, providers: dict[str, LLMProvider]
) -> None:
    before = len(llm.transcriptions())
    llm.fail_transcription(401, "Incorrect API key provided")
    llm.fail_transcription(429, "Rate limit", code="rate_limit_exceeded")
    with pytest.raises(ProviderAuthError):
        await transcribe(providers["openai"])
    with pytest.raises(RetryableProviderError) as info:
        await transcribe(providers["openai"])
    ok = await transcribe(providers["openai"])
    assert info.value.provider_code == "rate_limit_exceeded"
    assert ok.text == FakeLLM.transcript_for(VOICE.data)
    assert len(llm.transcriptions()) == before + 3


async def test_a_chat_script_does_not_touch_transcriptions(
    llm: FakeLLM, providers: dict[str, LLMProvider]
) -> None:
    llm.script(FakeLLM.error(529, "Overloaded"))
    try:
        transcript = await transcribe(providers["openai"])
    finally:
        llm.script()
    assert transcript.text == FakeLLM.transcript_for(VOICE.data)


async def test_azure_transcriptions_are_served_on_the_deployment_path(
    llm: FakeLLM, providers: dict[str, LLMProvider]
) -> None:
    transcript = await transcribe(providers["azure-openai"], {"transcriptionModel": "stt"})
    received = llm.last_transcription()
    assert received.path.startswith("/openai/deployments/stt/audio/transcriptions?api-version=")
    assert received.model is None and received.headers["api-key"] == "az-fake-key"
    assert transcript.model == "stt"


@pytest.mark.parametrize(
    ("wire", "part"),
    [
        (
            "openai",
            {"type": "image_url", "image_url": {"url": PICTURE.data_url(), "detail": "auto"}},
        ),
        (
            "anthropic",
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/jpeg", "data": PICTURE.base64()},
            },
        ),
    ],
)
async def test_a_picture_reaches_the_model_as_its_wires_part_and_is_kept_for_the_test(
    llm: FakeLLM, providers: dict[str, LLMProvider], wire: str, part: dict[str, object]
) -> None:
    provider = providers[wire]
    message = ChatMessage(role="user", content="¿Cuánto cuesta?", attachments=(PICTURE,))
    reply = await provider.chat(
        [message], provider.parse_config({}), provider.parse_credentials({"apiKey": KEY})
    )
    assert llm.last_content_parts() == [part, {"type": "text", "text": "¿Cuánto cuesta?"}]
    assert FakeLLM.content_parts(llm.chats()[-1]) == llm.last_content_parts()
    assert reply.text == "Respuesta a: ¿Cuánto cuesta?"


async def test_a_plain_turn_is_one_text_part(
    llm: FakeLLM, providers: dict[str, LLMProvider]
) -> None:
    provider = providers["openai"]
    await provider.chat(
        [ChatMessage(role="user", content="hola")],
        provider.parse_config({}),
        provider.parse_credentials({"apiKey": KEY}),
    )
    assert llm.last_content_parts() == [{"type": "text", "text": "hola"}]
