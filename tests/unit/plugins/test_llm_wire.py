"""Each built-in LLM provider speaks its vendor's documented wire format."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from changarrito.domain.errors import (
    ProviderBadResponse,
    ProviderQuotaExceeded,
    RetryableProviderError,
)
from changarrito.plugin import ChatMessage, LLMProvider
from changarrito.plugins.llm.anthropic import AnthropicProvider
from changarrito.plugins.llm.azure_openai import AzureOpenAIProvider
from changarrito.plugins.llm.ollama import OllamaProvider
from changarrito.plugins.llm.openai import OpenAIProvider
from changarrito.plugins.llm.openrouter import OpenRouterProvider
from changarrito.testing import FakeUpstream, json_response

HI = [ChatMessage(role="user", content="hola")]
OPENAI_OK = {
    "model": "gpt-4o-mini-2024",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "¡Hola!"}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2},
}


async def chat(
    cls: type[LLMProvider],
    upstream: FakeUpstream,
    credentials: dict[str, Any],
    config: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Any:
    provider = cls(upstream.context(env))
    return await provider.chat(
        HI, provider.parse_config(config or {}), provider.parse_credentials(credentials)
    )


async def test_openai_posts_chat_completions_with_bearer_key_and_system_prompt() -> None:
    upstream = FakeUpstream(json_response(200, OPENAI_OK))
    config = {"model": "gpt-4o", "systemPrompt": "Eres un tendero.", "maxTokens": 50}
    reply = await chat(OpenAIProvider, upstream, {"apiKey": "sk-tenant"}, config)
    request = upstream.last
    assert str(request.url) == "https://api.openai.com/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-tenant"
    assert upstream.last_json() == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Eres un tendero."},
            {"role": "user", "content": "hola"},
        ],
        "max_completion_tokens": 50,
    }
    assert (reply.text, reply.model, reply.usage.input_tokens) == ("¡Hola!", "gpt-4o-mini-2024", 5)


async def test_openai_base_url_comes_from_the_environment_override() -> None:
    upstream = FakeUpstream(json_response(200, OPENAI_OK))
    await chat(OpenAIProvider, upstream, {"apiKey": "k"}, env={"OPENAI_BASE_URL": "http://x:9/v1/"})
    assert str(upstream.last.url) == "http://x:9/v1/chat/completions"


async def test_openai_defaults_the_model_when_none_is_configured() -> None:
    upstream = FakeUpstream(json_response(200, OPENAI_OK))
    await chat(OpenAIProvider, upstream, {"apiKey": "k"})
    assert upstream.last_json()["model"] == "gpt-4o-mini"


async def test_openai_rate_limit_honours_retry_after_ms() -> None:
    body = {"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}}
    upstream = FakeUpstream(json_response(429, body, {"retry-after-ms": "1500"}))
    with pytest.raises(RetryableProviderError) as info:
        await chat(OpenAIProvider, upstream, {"apiKey": "k"})
    assert info.value.retry_after == 1.5 and info.value.provider_code == "rate_limit_exceeded"


@pytest.mark.parametrize(
    "code", ["insufficient_quota", "credit_balance_exhausted", "monthly_spend_limit_exceeded"]
)
async def test_openai_quota_codes_on_429_are_final(code: str) -> None:
    upstream = FakeUpstream(json_response(429, {"error": {"message": "no", "code": code}}))
    with pytest.raises(ProviderQuotaExceeded) as info:
        await chat(OpenAIProvider, upstream, {"apiKey": "k"})
    assert not info.value.retryable


async def test_openrouter_posts_to_its_api_with_attribution_header() -> None:
    upstream = FakeUpstream(json_response(200, OPENAI_OK))
    await chat(OpenRouterProvider, upstream, {"apiKey": "sk-or-1"}, {"model": "anthropic/x"})
    assert str(upstream.last.url) == "https://openrouter.ai/api/v1/chat/completions"
    assert upstream.last.headers["authorization"] == "Bearer sk-or-1"
    assert upstream.last.headers["x-title"] == "Changarrito"
    assert upstream.last_json()["model"] == "anthropic/x"


async def test_openrouter_402_is_out_of_credits() -> None:
    body = {"error": {"code": 402, "message": "Insufficient credits"}}
    with pytest.raises(ProviderQuotaExceeded):
        await chat(OpenRouterProvider, FakeUpstream(json_response(402, body)), {"apiKey": "k"})


async def test_openrouter_error_inside_a_200_is_a_bad_response() -> None:
    body = {"choices": [], "error": {"code": 502, "message": "upstream died"}}
    with pytest.raises(ProviderBadResponse) as info:
        await chat(OpenRouterProvider, FakeUpstream(json_response(200, body)), {"apiKey": "k"})
    assert "upstream died" in str(info.value) and info.value.retryable


async def test_azure_uses_the_deployment_url_api_version_and_api_key_header() -> None:
    upstream = FakeUpstream(json_response(200, OPENAI_OK))
    credentials = {"apiKey": "az-key", "endpoint": "https://shop.openai.azure.com/"}
    await chat(AzureOpenAIProvider, upstream, credentials, {"deployment": "gpt4o-prod"})
    request = upstream.last
    assert str(request.url) == (
        "https://shop.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
        "?api-version=2024-10-21"
    )
    assert request.headers["api-key"] == "az-key" and "authorization" not in request.headers
    assert "model" not in upstream.last_json()


async def test_azure_rejects_a_deployment_name_that_would_change_the_path() -> None:
    from changarrito.domain.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="deployment"):
        AzureOpenAIProvider.parse_config({"deployment": "../../admin"})


async def test_anthropic_pins_the_version_and_sends_system_top_level_with_max_tokens() -> None:
    ok = {"model": "claude-x", "content": [{"type": "text", "text": "Hola"}], "usage": {}}
    upstream = FakeUpstream(json_response(200, ok))
    config = {"model": "claude-x", "systemPrompt": "Sé breve."}
    reply = await chat(AnthropicProvider, upstream, {"apiKey": "sk-ant-1"}, config)
    request = upstream.last
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-1"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert upstream.last_json() == {
        "model": "claude-x",
        "max_tokens": 1024,
        "system": "Sé breve.",
        "messages": [{"role": "user", "content": "hola"}],
    }
    assert reply.text == "Hola"


async def test_anthropic_529_overloaded_is_retryable() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    upstream = FakeUpstream(json_response(529, body, {"retry-after": "3"}))
    with pytest.raises(RetryableProviderError) as info:
        await chat(
            AnthropicProvider, upstream, {"apiKey": "k"}, env={"ANTHROPIC_BASE_URL": "http://a"}
        )
    assert info.value.status == 529 and info.value.retry_after == 3.0
    assert str(upstream.last.url) == "http://a/messages"


async def test_ollama_posts_api_chat_without_streaming_to_the_configured_server() -> None:
    ok = {"model": "llama3.2", "message": {"content": "Hola"}, "done": True, "eval_count": 2}
    upstream = FakeUpstream(json_response(200, ok))
    env = {"OLLAMA_BASE_URL": "http://gpu:11434"}
    platform = OllamaProvider.platform_credentials(env)
    assert platform == {"baseUrl": "http://gpu:11434"}
    await chat(OllamaProvider, upstream, platform, {"temperature": 0.2})
    assert str(upstream.last.url) == "http://gpu:11434/api/chat"
    assert "authorization" not in upstream.last.headers
    body = upstream.last_json()
    assert body["stream"] is False and body["options"] == {"temperature": 0.2}


def test_ollama_platform_default_is_localhost() -> None:
    assert OllamaProvider.platform_credentials({}) == {"baseUrl": "http://localhost:11434"}


async def test_a_connection_failure_is_retryable_and_hides_httpx() -> None:
    with pytest.raises(RetryableProviderError) as info:
        await chat(OpenAIProvider, FakeUpstream(httpx.ConnectError), {"apiKey": "k"})
    assert "ConnectError" in str(info.value) and info.value.__cause__ is None


@pytest.mark.parametrize("cls", [OpenAIProvider, OpenRouterProvider])
async def test_a_content_given_as_a_list_of_parts_is_read_as_its_text(
    cls: type[LLMProvider],
) -> None:
    parts = [
        {"type": "text", "text": "¡Hola! "},
        {"type": "reasoning", "text": "thinking out loud"},
        {"type": "text", "text": "¿Qué te doy?"},
    ]
    answer = {**OPENAI_OK, "choices": [{"index": 0, "message": {"content": parts}}]}
    upstream = FakeUpstream(json_response(200, answer))

    reply = await chat(cls, upstream, {"apiKey": "sk-tenant"})

    assert reply.text == "¡Hola! ¿Qué te doy?"


@pytest.mark.parametrize(
    ("cls", "answer", "credentials"),
    [
        (
            OpenAIProvider,
            {**OPENAI_OK, "choices": [{"message": {"content": "Ho"}, "finish_reason": "length"}]},
            {"apiKey": "k"},
        ),
        (
            AnthropicProvider,
            {"content": [{"type": "text", "text": "Ho"}], "stop_reason": "max_tokens"},
            {"apiKey": "k"},
        ),
        (
            OllamaProvider,
            {"message": {"content": "Ho"}, "done": True, "done_reason": "length"},
            {"baseUrl": "http://gpu:11434"},
        ),
    ],
    ids=["openai", "anthropic", "ollama"],
)
async def test_an_answer_stopped_at_the_output_limit_says_it_was_cut(
    cls: type[LLMProvider], answer: dict[str, Any], credentials: dict[str, Any]
) -> None:
    cut = await chat(cls, FakeUpstream(json_response(200, answer)), credentials)
    whole = {**answer}
    whole.pop("stop_reason", None)
    whole.pop("done_reason", None)
    if "choices" in whole:
        whole["choices"] = [{"message": {"content": "Ho"}, "finish_reason": "stop"}]
    complete = await chat(cls, FakeUpstream(json_response(200, whole)), credentials)

    assert (cut.text, cut.truncated) == ("Ho", True)
    assert complete.truncated is False
