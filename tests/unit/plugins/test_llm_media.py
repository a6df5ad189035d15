"""Pictures, PDFs and voice notes on each built-in LLM provider's wire.

The shapes asserted here are the vendors' documented ones, checked once against what the
official SDKs send (openai-python 3.57 and anthropic-sdk-python 2.15, on a mock transport):
the same content parts and blocks, and for a transcription the same multipart fields
(``model``, ``language``, ``response_format``, then ``file`` with its filename and content
type) and, on Azure, the same deployment URL with ``api-version`` and ``api-key``.
"""

from __future__ import annotations

from typing import Any

import pytest

from changarrito.domain.errors import (
    ProviderAuthError,
    ProviderQuotaExceeded,
    RetryableProviderError,
    ValidationFailed,
)
from changarrito.plugin import Attachment, Audio, ChatMessage, LLMProvider, Transcript, Usage
from changarrito.plugins.llm.anthropic import AnthropicProvider
from changarrito.plugins.llm.azure_openai import AzureOpenAIProvider
from changarrito.plugins.llm.ollama import OllamaProvider
from changarrito.plugins.llm.openai import OpenAIProvider
from changarrito.plugins.llm.openrouter import OpenRouterProvider
from changarrito.testing import FakeUpstream, Form, json_response

PICTURE = Attachment("image", "image/jpeg", b"\xff\xd8\xff\xe0jpeg-bytes")
STICKER = Attachment("image", "image/webp", b"RIFF\x00\x00WEBPVP8 ")
TICKET = Attachment("pdf", "application/pdf", b"%PDF-1.4 ticket", filename="ticket.pdf")
UNNAMED_PDF = Attachment("pdf", "application/pdf", b"%PDF-1.7 sin nombre")
VOICE = Audio(data=b"OggS\x00\x02\x00\x00opus\xff\xfe", mime_type="audio/ogg", filename="nota.ogg")

OPENAI_OK = {
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Cuesta 20 pesos."}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2},
}
ANTHROPIC_OK = {"model": "claude-x", "content": [{"type": "text", "text": "Ok"}], "usage": {}}
OLLAMA_OK = {"model": "llava", "message": {"content": "Ok"}, "done": True}
AZURE = {"apiKey": "az-key", "endpoint": "https://shop.openai.azure.com"}


def customer(text: str, *attachments: Attachment) -> ChatMessage:
    return ChatMessage(role="user", content=text, attachments=attachments)


async def chat(
    cls: type[LLMProvider],
    answer: dict[str, Any],
    messages: list[ChatMessage],
    credentials: dict[str, Any],
    config: dict[str, Any] | None = None,
) -> FakeUpstream:
    upstream = FakeUpstream(json_response(200, answer))
    provider = cls(upstream.context())
    try:
        await provider.chat(
            messages, provider.parse_config(config or {}), provider.parse_credentials(credentials)
        )
    finally:
        await provider.context.http.aclose()
    return upstream


async def transcribe(
    cls: type[LLMProvider],
    upstream: FakeUpstream,
    credentials: dict[str, Any],
    config: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Transcript:
    provider = cls(upstream.context(env))
    try:
        return await provider.transcribe(
            VOICE, provider.parse_config(config or {}), provider.parse_credentials(credentials)
        )
    finally:
        await provider.context.http.aclose()


def heard(text: str = "Quiero dos kilos", usage: dict[str, Any] | None = None) -> Any:
    return json_response(200, {"text": text, **({"usage": usage} if usage else {})})


# --- OpenAI-compatible content parts ---------------------------------------------------------


async def test_a_picture_is_sent_to_openai_as_an_image_url_part_before_its_caption() -> None:
    upstream = await chat(
        OpenAIProvider, OPENAI_OK, [customer("¿Cuánto cuesta?", PICTURE)], {"apiKey": "k"}
    )
    assert upstream.last_json()["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": PICTURE.data_url(), "detail": "auto"},
                },
                {"type": "text", "text": "¿Cuánto cuesta?"},
            ],
        }
    ]
    assert PICTURE.data_url().startswith("data:image/jpeg;base64,/9j/")


async def test_a_pdf_is_sent_to_openai_as_a_file_part_with_its_name_and_a_data_url() -> None:
    upstream = await chat(OpenAIProvider, OPENAI_OK, [customer("", TICKET)], {"apiKey": "k"})
    assert upstream.last_json()["messages"][0]["content"] == [
        {
            "type": "file",
            "file": {"filename": "ticket.pdf", "file_data": TICKET.data_url()},
        }
    ]
    assert TICKET.data_url().startswith("data:application/pdf;base64,JVBERi0")


async def test_a_pdf_without_a_name_is_sent_as_document_pdf_and_no_empty_text_part() -> None:
    upstream = await chat(
        OpenAIProvider, OPENAI_OK, [customer("", PICTURE, UNNAMED_PDF)], {"apiKey": "k"}
    )
    parts = upstream.last_json()["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "file"]
    assert parts[1]["file"]["filename"] == "document.pdf"


async def test_turns_without_attachments_stay_plain_strings_next_to_one_with_them() -> None:
    history = [
        customer("hola"),
        ChatMessage(role="assistant", content="¿Qué se te ofrece?"),
        customer("esto", PICTURE),
    ]
    upstream = await chat(
        OpenAIProvider, OPENAI_OK, history, {"apiKey": "k"}, {"systemPrompt": "Eres amable."}
    )
    messages = upstream.last_json()["messages"]
    assert [m["content"] for m in messages[:3]] == ["Eres amable.", "hola", "¿Qué se te ofrece?"]
    assert isinstance(messages[3]["content"], list)


async def test_attachments_on_a_turn_that_is_not_the_customers_are_not_sent() -> None:
    reply = ChatMessage(role="assistant", content="Mira", attachments=(PICTURE,))
    upstream = await chat(OpenAIProvider, OPENAI_OK, [customer("hola"), reply], {"apiKey": "k"})
    assert upstream.last_json()["messages"][1] == {"role": "assistant", "content": "Mira"}


@pytest.mark.parametrize(
    ("cls", "credentials"),
    [(OpenRouterProvider, {"apiKey": "sk-or"}), (AzureOpenAIProvider, AZURE)],
    ids=["openrouter", "azure-openai"],
)
async def test_every_openai_compatible_vendor_sends_the_same_parts(
    cls: type[LLMProvider], credentials: dict[str, Any]
) -> None:
    upstream = await chat(cls, OPENAI_OK, [customer("ve", STICKER, TICKET)], credentials)
    assert upstream.last_json()["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": STICKER.data_url(), "detail": "auto"}},
        {"type": "file", "file": {"filename": "ticket.pdf", "file_data": TICKET.data_url()}},
        {"type": "text", "text": "ve"},
    ]


# --- Anthropic blocks --------------------------------------------------------------------------


async def test_anthropic_gets_base64_image_and_document_blocks_before_the_text() -> None:
    upstream = await chat(
        AnthropicProvider,
        ANTHROPIC_OK,
        [customer("¿Qué dice?", STICKER, TICKET)],
        {"apiKey": "k"},
        {"systemPrompt": "Sé breve."},
    )
    body = upstream.last_json()
    assert body["system"] == "Sé breve."
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/webp",
                        "data": STICKER.base64(),
                    },
                },
                {
                    "type": "document",
                    "source": {
                        "type": "base64",
                        "media_type": "application/pdf",
                        "data": TICKET.base64(),
                    },
                    "title": "ticket.pdf",
                },
                {"type": "text", "text": "¿Qué dice?"},
            ],
        }
    ]


async def test_an_anthropic_document_without_a_name_has_no_title_and_no_empty_text() -> None:
    upstream = await chat(
        AnthropicProvider, ANTHROPIC_OK, [customer("", UNNAMED_PDF)], {"apiKey": "k"}
    )
    (block,) = upstream.last_json()["messages"][0]["content"]
    assert block["type"] == "document" and "title" not in block


async def test_anthropic_turns_without_attachments_stay_plain_strings() -> None:
    upstream = await chat(AnthropicProvider, ANTHROPIC_OK, [customer("hola")], {"apiKey": "k"})
    assert upstream.last_json()["messages"] == [{"role": "user", "content": "hola"}]


# --- Ollama images -----------------------------------------------------------------------------


async def test_ollama_gets_the_pictures_as_base64_images_next_to_the_caption() -> None:
    upstream = await chat(
        OllamaProvider,
        OLLAMA_OK,
        [customer("hola"), customer("¿y esto?", PICTURE, STICKER)],
        {"baseUrl": "http://gpu:11434"},
    )
    assert upstream.last_json()["messages"] == [
        {"role": "user", "content": "hola"},
        {"role": "user", "content": "¿y esto?", "images": [PICTURE.base64(), STICKER.base64()]},
    ]


async def test_ollama_never_reads_pdfs_even_when_documents_is_on() -> None:
    provider = OllamaProvider(FakeUpstream().context())
    config = provider.parse_config({"model": "llava", "documents": True})
    assert provider.reads(config) == {"image"}


# --- reads(): the tenant's settings, else the model's family ---------------------------------

BOTH = {"image", "pdf"}


@pytest.mark.parametrize(
    ("cls", "model", "expected"),
    [
        (OpenAIProvider, None, BOTH),  # gpt-4o-mini
        (OpenAIProvider, "gpt-4o-2024-08-06", BOTH),
        (OpenAIProvider, "chatgpt-4o-latest", BOTH),
        (OpenAIProvider, "gpt-4.1-nano", BOTH),
        (OpenAIProvider, "gpt-4.5-preview", BOTH),
        (OpenAIProvider, "gpt-5-mini", BOTH),
        (OpenAIProvider, "gpt-4-turbo", BOTH),
        (OpenAIProvider, "gpt-4-turbo-preview", set()),
        (OpenAIProvider, "o1", BOTH),
        (OpenAIProvider, "o1-mini", set()),
        (OpenAIProvider, "o3-2025-04-16", BOTH),
        (OpenAIProvider, "o3-mini", set()),
        (OpenAIProvider, "o4-mini", BOTH),
        (OpenAIProvider, "gpt-3.5-turbo", set()),
        (OpenAIProvider, "gpt-4", set()),
        (OpenAIProvider, "gpt-4o-audio-preview", set()),
        (OpenAIProvider, "ft:gpt-4o-mini-2024-07-18:shop::abc", BOTH),
        (OpenRouterProvider, None, {"image"}),  # openai/gpt-4o-mini
        (OpenRouterProvider, "anthropic/claude-3.5-sonnet", {"image"}),
        (OpenRouterProvider, "google/gemini-2.5-flash", {"image"}),
        (OpenRouterProvider, "qwen/qwen2.5-vl-72b-instruct:free", {"image"}),
        (OpenRouterProvider, "meta-llama/llama-4-maverick", {"image"}),
        (OpenRouterProvider, "meta-llama/llama-3.1-8b-instruct", set()),
        (OpenRouterProvider, "openai/gpt-3.5-turbo", set()),
        (AzureOpenAIProvider, None, {"image"}),  # gpt-4o-mini: PDFs only when turned on
        (AzureOpenAIProvider, "gpt-35-turbo", set()),
        (AnthropicProvider, None, BOTH),  # claude-3-5-haiku-latest
        (AnthropicProvider, "claude-3-haiku-20240307", {"image"}),
        (AnthropicProvider, "claude-3-opus-20240229", {"image"}),
        (AnthropicProvider, "claude-3-5-sonnet-20241022", BOTH),
        (AnthropicProvider, "claude-3-7-sonnet-latest", BOTH),
        (AnthropicProvider, "claude-sonnet-4-20250514", BOTH),
        (AnthropicProvider, "claude-opus-4-1", BOTH),
        (AnthropicProvider, "claude-haiku-4-5", BOTH),
        (AnthropicProvider, "claude-2.1", set()),
        (OllamaProvider, None, set()),  # llama3.2
        (OllamaProvider, "llava:13b", {"image"}),
        (OllamaProvider, "llama3.2-vision", {"image"}),
        (OllamaProvider, "gemma3:4b", {"image"}),
        (OllamaProvider, "gemma3:1b", set()),
        (OllamaProvider, "qwen2.5vl:7b", {"image"}),
        (OllamaProvider, "minicpm-v", {"image"}),
        (OllamaProvider, "moondream", {"image"}),
        (OllamaProvider, "granite3.2-vision:2b", {"image"}),
        (OllamaProvider, "mistral", set()),
    ],
)
def test_without_settings_a_model_reads_what_its_family_reads(
    cls: type[LLMProvider], model: str | None, expected: set[str]
) -> None:
    provider = cls(FakeUpstream().context())
    assert provider.reads(provider.parse_config({"model": model} if model else {})) == expected


@pytest.mark.parametrize(
    ("cls", "model", "settings", "expected"),
    [
        (OpenAIProvider, "gpt-4o", {"vision": False}, {"pdf"}),
        (OpenAIProvider, "gpt-4o", {"documents": False}, {"image"}),
        (OpenAIProvider, "gpt-4o", {"vision": False, "documents": False}, set()),
        (OpenAIProvider, "gpt-3.5-turbo", {"vision": True}, {"image"}),
        (OpenAIProvider, "my-proxy-model", {"vision": True, "documents": True}, BOTH),
        (OpenRouterProvider, "openai/gpt-4o", {"documents": True}, BOTH),
        (AzureOpenAIProvider, "gpt-4o", {"documents": True}, BOTH),
        (AnthropicProvider, "claude-3-haiku-20240307", {"documents": True}, BOTH),
        (AnthropicProvider, "claude-3-5-sonnet-latest", {"vision": None}, BOTH),
        (OllamaProvider, "llama3.2", {"vision": True}, {"image"}),
        (OllamaProvider, "llava", {"vision": False}, set()),
    ],
)
def test_the_tenants_vision_and_documents_settings_win_over_the_family(
    cls: type[LLMProvider], model: str, settings: dict[str, Any], expected: set[str]
) -> None:
    provider = cls(FakeUpstream().context())
    assert provider.reads(provider.parse_config({"model": model, **settings})) == expected


# --- Transcription -----------------------------------------------------------------------------


async def test_a_voice_note_is_sent_to_openai_as_an_ogg_file_part() -> None:
    upstream = FakeUpstream(heard())
    transcript = await transcribe(OpenAIProvider, upstream, {"apiKey": "sk-tenant"})

    request = upstream.last
    assert request.method == "POST"
    assert str(request.url) == "https://api.openai.com/v1/audio/transcriptions"
    assert request.headers["authorization"] == "Bearer sk-tenant"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    form = Form.of(request)
    assert form.fields == {"model": "gpt-4o-mini-transcribe", "response_format": "json"}
    assert set(form.files) == {"file"}
    assert (form.files["file"].filename, form.files["file"].content_type) == (
        "nota.ogg",
        "audio/ogg",
    )
    assert form.files["file"].data == VOICE.data
    assert transcript == Transcript(
        text="Quiero dos kilos", model="gpt-4o-mini-transcribe", provider="openai"
    )


async def test_the_configured_transcription_model_and_language_are_sent() -> None:
    upstream = FakeUpstream(heard())
    config = {"transcriptionModel": "whisper-1", "transcriptionLanguage": "es"}
    transcript = await transcribe(OpenAIProvider, upstream, {"apiKey": "k"}, config)
    assert upstream.last_form().fields == {
        "model": "whisper-1",
        "language": "es",
        "response_format": "json",
    }
    assert transcript.model == "whisper-1"


def test_a_transcription_language_that_is_not_iso_639_1_is_refused_by_name() -> None:
    with pytest.raises(ValidationFailed, match="transcriptionLanguage"):
        OpenAIProvider.parse_config({"transcriptionLanguage": "spanish"})


async def test_a_duration_usage_is_the_transcripts_seconds() -> None:
    upstream = FakeUpstream(heard(" Hola. ", {"type": "duration", "seconds": 3.5}))
    transcript = await transcribe(OpenAIProvider, upstream, {"apiKey": "k"})
    assert (transcript.text, transcript.seconds, transcript.usage) == ("Hola.", 3.5, None)


async def test_a_token_usage_is_the_transcripts_usage() -> None:
    usage = {
        "type": "tokens",
        "input_tokens": 14,
        "output_tokens": 45,
        "total_tokens": 59,
        "input_token_details": {"audio_tokens": 14, "text_tokens": 0},
    }
    transcript = await transcribe(OpenAIProvider, FakeUpstream(heard(usage=usage)), {"apiKey": "k"})
    assert transcript.seconds is None
    assert transcript.usage == Usage(input_tokens=14, output_tokens=45)


async def test_an_answer_without_text_is_a_bad_response() -> None:
    from changarrito.domain.errors import ProviderBadResponse

    with pytest.raises(ProviderBadResponse):
        await transcribe(OpenAIProvider, FakeUpstream(json_response(200, {})), {"apiKey": "k"})


async def test_azure_transcribes_on_the_transcription_deployment_without_a_model_field() -> None:
    upstream = FakeUpstream(heard())
    transcript = await transcribe(
        AzureOpenAIProvider, upstream, AZURE, {"deployment": "gpt4o-prod"}
    )
    request = upstream.last
    assert str(request.url) == (
        "https://shop.openai.azure.com/openai/deployments/whisper/audio/transcriptions"
        "?api-version=2024-10-21"
    )
    assert request.headers["api-key"] == "az-key" and "authorization" not in request.headers
    assert upstream.last_form().fields == {"response_format": "json"}
    assert (transcript.model, transcript.provider) == ("whisper", "azure-openai")


async def test_azure_takes_the_transcription_deployment_and_api_version_from_the_config() -> None:
    upstream = FakeUpstream(heard())
    config = {
        "transcriptionModel": "stt-mx",
        "transcriptionLanguage": "es",
        "apiVersion": "2025-04-01-preview",
    }
    await transcribe(AzureOpenAIProvider, upstream, AZURE, config)
    assert str(upstream.last.url) == (
        "https://shop.openai.azure.com/openai/deployments/stt-mx/audio/transcriptions"
        "?api-version=2025-04-01-preview"
    )
    assert upstream.last_form().fields == {"language": "es", "response_format": "json"}


def test_an_azure_transcription_deployment_that_would_change_the_path_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="transcriptionModel"):
        AzureOpenAIProvider.parse_config({"transcriptionModel": "../../admin"})


@pytest.mark.parametrize(
    ("cls", "credentials"),
    [(OpenAIProvider, {"apiKey": "sk-rejected-0123456789"}), (AzureOpenAIProvider, AZURE)],
    ids=["openai", "azure-openai"],
)
async def test_a_rejected_key_on_transcription_is_a_final_auth_error(
    cls: type[LLMProvider], credentials: dict[str, Any]
) -> None:
    body = {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}
    with pytest.raises(ProviderAuthError) as info:
        await transcribe(cls, FakeUpstream(json_response(401, body)), credentials)
    assert not info.value.retryable and info.value.provider == cls.id


async def test_a_rate_limited_transcription_is_retryable_with_its_retry_after() -> None:
    body = {"error": {"message": "Rate limit", "code": "rate_limit_exceeded"}}
    upstream = FakeUpstream(json_response(429, body, {"retry-after": "4"}))
    with pytest.raises(RetryableProviderError) as info:
        await transcribe(OpenAIProvider, upstream, {"apiKey": "k"})
    assert info.value.retry_after == 4.0


async def test_an_out_of_quota_transcription_is_final() -> None:
    body = {"error": {"message": "quota", "code": "insufficient_quota"}}
    with pytest.raises(ProviderQuotaExceeded):
        await transcribe(OpenAIProvider, FakeUpstream(json_response(429, body)), {"apiKey": "k"})


async def test_a_tenants_own_endpoint_gets_the_transcription_and_its_words_stay_out() -> None:
    body = {"error": {"message": "internal detail of the tenant's proxy"}}
    upstream = FakeUpstream(json_response(401, body))
    credentials = {"apiKey": "sk-own", "baseUrl": "https://llm.shop.example/v1"}
    with pytest.raises(ProviderAuthError) as info:
        await transcribe(OpenAIProvider, upstream, credentials)
    assert str(upstream.last.url) == "https://llm.shop.example/v1/audio/transcriptions"
    assert "internal detail" not in str(info.value)


@pytest.mark.parametrize("cls", [OpenRouterProvider, AnthropicProvider, OllamaProvider])
async def test_providers_without_transcription_say_so_and_call_nothing(
    cls: type[LLMProvider],
) -> None:
    assert cls.supports_transcription is False
    upstream = FakeUpstream(heard())
    credentials = {"baseUrl": "http://gpu:11434"} if cls is OllamaProvider else {"apiKey": "k"}
    with pytest.raises(NotImplementedError):
        await transcribe(cls, upstream, credentials)
    assert upstream.requests == []


# --- No bytes in a repr ------------------------------------------------------------------------


def test_attachment_and_audio_bytes_never_appear_in_a_repr() -> None:
    message = customer("mira", PICTURE, TICKET)
    shown = " ".join([repr(message), str(message), repr(PICTURE), repr(TICKET), repr(VOICE)])
    for secret in (PICTURE.base64(), TICKET.base64(), "jpeg-bytes", "%PDF", "opus"):
        assert secret not in shown
    assert "ticket.pdf" in repr(TICKET) and "nota.ogg" in repr(VOICE)


async def test_a_sent_forms_file_bytes_never_appear_in_its_repr() -> None:
    upstream = FakeUpstream(heard())
    await transcribe(OpenAIProvider, upstream, {"apiKey": "k"})
    assert "opus" not in repr(upstream.last_form())
