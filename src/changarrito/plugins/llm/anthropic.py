"""Anthropic Messages API: ``x-api-key``, pinned ``anthropic-version``, top-level ``system``.

Tools: offered as ``tools: [{name, description, input_schema}]`` with ``tool_choice:
{"type": "auto"}`` (only when there are some); ``tool_use`` content blocks come back as
``ToolCall``s (their ``input`` is an object already; anything else is read as ``{}``).
``stop_reason: refusal`` is a refusal.

Attachments: a customer's pictures and PDFs become ``image`` and ``document`` blocks (base64)
before the caption's ``text`` block (``changarrito.plugins.llm.attachments``). Every Claude 3
and later reads pictures; PDFs by default on 3.5 Sonnet, 3.5 Haiku, 3.7 and the 4 family
(``changarrito.plugins.llm.families``). No transcription: Anthropic has no speech-to-text API.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import msgspec

from changarrito import hookimpl
from changarrito.domain.chat import ChatMessage, Reply, Tool, ToolCall, Usage
from changarrito.plugins.base import Credentials, LLMProvider
from changarrito.plugins.hookspecs import RegisterLLM
from changarrito.plugins.llm.attachments import anthropic_content
from changarrito.plugins.llm.families import ANTHROPIC_IMAGES, ANTHROPIC_PDFS, reads
from changarrito.plugins.llm.openai_compat import ApiKey
from changarrito.plugins.upstream import decode_json

#: Pinned: newer versions reject ``temperature`` and change authentication.
ANTHROPIC_VERSION = "2023-06-01"
#: ``max_tokens`` is required by the API; used when the tenant sets none.
DEFAULT_MAX_TOKENS = 1024
#: Codes meaning the account is out of money, not busy (final even on 429).
QUOTA_CODES = frozenset({"billing_error", "enforced_spend_limit_reached"})


class AnthropicCredentials(Credentials, frozen=True):
    api_key: ApiKey


class _Block(msgspec.Struct):
    type: str
    text: str | None = None
    #: ``tool_use`` blocks: the call's id, the tool's name and its arguments (an object).
    id: str | None = None
    name: str | None = None
    input: Any = None

    def call(self) -> ToolCall | None:
        if self.type != "tool_use" or not self.name:
            return None
        arguments = self.input if isinstance(self.input, dict) else {}
        return ToolCall(name=self.name, arguments=arguments, id=self.id)


class _Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0


class _Message(msgspec.Struct):
    content: list[_Block]
    model: str | None = None
    usage: _Usage | None = None
    stop_reason: str | None = None


class AnthropicProvider(LLMProvider):
    id = "anthropic"
    name = "Anthropic"
    supports_tools = True
    supports_attachments = True
    default_model = "claude-3-5-haiku-latest"
    default_base_url = "https://api.anthropic.com/v1"
    base_url_env = "ANTHROPIC_BASE_URL"
    credentials_schema: ClassVar[type[msgspec.Struct]] = AnthropicCredentials
    platform_env = {"apiKey": "ANTHROPIC_API_KEY"}

    def headers(self, credentials: Any) -> dict[str, str]:
        return {
            "x-api-key": credentials.api_key,
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
        }

    def body(self, messages: Sequence[ChatMessage], config: Any) -> dict[str, Any]:
        system = [m.content for m in messages if m.role == "system"]
        if getattr(config, "system_prompt", None):
            system.insert(0, config.system_prompt)
        body: dict[str, Any] = {
            "model": self.model_for(config),
            "max_tokens": getattr(config, "max_tokens", None) or DEFAULT_MAX_TOKENS,
            "messages": [
                {"role": m.role, "content": anthropic_content(m)}
                for m in messages
                if m.role != "system"
            ],
        }
        if system:
            body["system"] = "\n\n".join(system)
        if getattr(config, "temperature", None) is not None:
            body["temperature"] = config.temperature
        return body

    def vision_default(self, model: str) -> bool:
        return reads(ANTHROPIC_IMAGES, model)

    def documents_default(self, model: str) -> bool:
        return reads(ANTHROPIC_PDFS, model)

    def error_details(self, payload: Any) -> tuple[str | None, str | None, bool]:
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            return "no details", None, False
        details = error.get("details")
        detail_code = details.get("error_code") if isinstance(details, dict) else None
        code = detail_code or error.get("type")
        code = None if code is None else str(code)
        quota = code in QUOTA_CODES or error.get("type") in QUOTA_CODES
        return str(error.get("message") or "no details"), code, quota

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        config: Any,
        credentials: Any,
        *,
        tools: Sequence[Tool] = (),
    ) -> Reply:
        body = self.body(messages, config)
        if tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in tools
            ]
            body["tool_choice"] = {"type": "auto"}
        started = time.perf_counter()
        response = await self.call_json(
            "POST",
            self.platform_base_url() + "/messages",
            credentials=credentials,
            headers=self.headers(credentials),
            json=body,
        )
        message: _Message = decode_json(response, _Message, self.id)
        usage = message.usage or _Usage()
        calls = (b.call() for b in message.content)
        return Reply(
            text="".join(b.text or "" for b in message.content if b.type == "text"),
            truncated=message.stop_reason in ("max_tokens", "model_context_window_exceeded"),
            tool_calls=tuple(c for c in calls if c is not None),
            refused=message.stop_reason == "refusal",
            model=message.model or self.model_for(config),
            usage=Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            provider=self.id,
        )

    async def verify(self, credentials: Any, config: Any) -> None:
        """``GET /v1/models``: authenticated, free."""
        await self.call_json(
            "GET",
            self.platform_base_url() + "/models",
            credentials=credentials,
            headers=self.headers(credentials),
        )


@hookimpl
def register_llm_providers(register: RegisterLLM) -> None:
    register(AnthropicProvider)
