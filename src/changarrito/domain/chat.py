"""The wire shapes of a chat with an LLM: messages in, a reply (with its usage) out.

Pure records, shared by the ports (``ports.ChatBackend``, ``ports.MessageLog``...), the use
cases (``llm.Responder``, ``pipeline.Pipeline``) and the providers (``LLMProvider``); plugin
authors get them from ``changarrito.plugin``. ``LLMConfig`` is the non-secret config every LLM
provider shares.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class ChatMessage(msgspec.Struct, frozen=True):
    role: Literal["system", "user", "assistant"]
    content: str


class Usage(msgspec.Struct, frozen=True):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Reply(msgspec.Struct, frozen=True):
    """One LLM answer. ``source`` (tenant/platform) is filled in by the caller that resolved
    the credential, for billing and support."""

    text: str
    model: str
    usage: Usage
    latency_ms: float
    provider: str
    source: str | None = None


class LLMConfig(msgspec.Struct, frozen=True, rename="camel"):
    """Non-secret LLM settings common to every provider."""

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    system_prompt: str | None = None
    fallback_text: str | None = None
