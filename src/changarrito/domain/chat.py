"""The wire shapes of a chat with an LLM: messages in, a reply (with its usage) out.

Pure records, shared by the ports (``ports.ChatBackend``, ``ports.MessageLog``...), the use
cases (``llm.Responder``, ``pipeline.Pipeline``) and the providers (``LLMProvider``); plugin
authors get them from ``changarrito.plugin``. ``LLMConfig`` is the non-secret config every LLM
provider shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec


class ChatMessage(msgspec.Struct, frozen=True):
    role: Literal["system", "user", "assistant"]
    content: str


def alternating(turns: Sequence[ChatMessage]) -> list[ChatMessage]:
    """``turns`` as every chat API accepts them: system messages first, then a customer
    (``user``) turn, then turns that alternate. Assistant turns before the first customer turn
    are dropped (a history cut at its limit can start with a reply, which Anthropic-style APIs
    refuse), and consecutive turns of one role are joined into one, in order, separated by a
    blank line (two messages in a row, or a reply in two parts)."""
    system = [t for t in turns if t.role == "system"]
    chat: list[ChatMessage] = []
    for turn in turns:
        if turn.role == "system" or (not chat and turn.role != "user"):
            continue
        if chat and chat[-1].role == turn.role:
            chat[-1] = ChatMessage(role=turn.role, content=f"{chat[-1].content}\n\n{turn.content}")
        else:
            chat.append(turn)
    return [*system, *chat]


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
    #: The model stopped at its output limit (``finish_reason: length``,
    #: ``stop_reason: max_tokens``): ``text`` may end mid-sentence, even mid-word.
    truncated: bool = False


class LLMConfig(msgspec.Struct, frozen=True, rename="camel"):
    """Non-secret LLM settings common to every provider."""

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    system_prompt: str | None = None
    fallback_text: str | None = None
