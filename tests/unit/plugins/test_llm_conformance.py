"""Every built-in LLM provider passes the conformance kit shipped to plugin authors."""

from __future__ import annotations

from typing import Any

import httpx

from changarrito.plugins.llm import anthropic, azure_openai, ollama, openai, openrouter
from changarrito.testing import LLMProviderConformance, json_response

KEY = "sk-test-abcdefghijklmnop0123456789"


class TestOpenAIConformance(LLMProviderConformance):
    provider_class = openai.OpenAIProvider
    plugin = openai
    credentials = {"apiKey": KEY}


class TestOpenRouterConformance(LLMProviderConformance):
    provider_class = openrouter.OpenRouterProvider
    plugin = openrouter
    credentials = {"apiKey": "sk-or-v1-abcdefghijklmnop0123456789"}

    def quota_response(self) -> httpx.Response:
        return json_response(402, {"error": {"code": 402, "message": "Insufficient credits"}})


class TestAzureOpenAIConformance(LLMProviderConformance):
    provider_class = azure_openai.AzureOpenAIProvider
    plugin = azure_openai
    credentials = {
        "apiKey": "0123456789abcdef0123456789abcdef",
        "endpoint": "https://shop.openai.azure.com",
    }


class TestAnthropicConformance(LLMProviderConformance):
    provider_class = anthropic.AnthropicProvider
    plugin = anthropic
    credentials = {"apiKey": "sk-ant-api03-abcdefghijklmnop0123456789"}

    def ok_response(self, text: str) -> httpx.Response:
        return json_response(
            200,
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-test",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 9, "output_tokens": 4},
            },
        )

    def error_response(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        kind = {401: "authentication_error", 429: "rate_limit_error"}.get(status, "api_error")
        body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
        return json_response(status, body, headers)

    def quota_response(self) -> httpx.Response:
        body = {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "spend limit reached",
                "details": {"error_code": "enforced_spend_limit_reached"},
            },
        }
        return json_response(429, body)


class TestOllamaConformance(LLMProviderConformance):
    provider_class = ollama.OllamaProvider
    plugin = ollama
    credentials = {
        "baseUrl": "https://ollama.shop.example",
        "apiKey": "ollama-proxy-key-0123456789",
    }

    def ok_response(self, text: str) -> httpx.Response:
        return json_response(
            200,
            {
                "model": "llama3.2",
                "message": {"role": "assistant", "content": text},
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": 12,
                "eval_count": 5,
            },
        )

    def error_response(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return json_response(status, {"error": message}, headers)

    def quota_response(self) -> None:
        return None


def test_the_kits_media_checks_apply_to_the_built_ins_that_declare_them() -> None:
    kits = [
        TestOpenAIConformance,
        TestOpenRouterConformance,
        TestAzureOpenAIConformance,
        TestAnthropicConformance,
        TestOllamaConformance,
    ]
    assert all(k.provider_class.supports_attachments for k in kits)
    transcribing = {k.provider_class.id for k in kits if k.provider_class.supports_transcription}
    assert transcribing == {"openai", "azure-openai"}
