"""Fakes for the LLM use case: a scripted provider, a lookup and a credential source."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import msgspec

from changarrito.domain import resolution
from changarrito.domain.chat import ChatMessage, LLMConfig, Reply, Tool, ToolCall, Usage
from changarrito.domain.errors import ValidationFailed
from changarrito.domain.model import Credential, IntegrationType, PlatformDefaults, Resolved


class FakeLLMProvider:
    """Answers ``"<id>:<model>: <last message>"``; ``fail_for`` maps an apiKey to the error
    raised when it is used. Records ``(messages, config, credentials)`` per call.

    With ``supports_tools=True`` its ``chat`` takes ``tools=`` (recorded per call in
    ``offered``) and answers with ``tool_calls`` (e.g. ``(ToolCall("handoff", {"reason":
    "wants a refund"}),)``) whenever tools were offered; without it, its ``chat`` has the old
    three-argument signature, like a plugin written before tools."""

    def __init__(
        self,
        provider_id: str = "fake",
        *,
        fail_for: Mapping[str, Exception] | None = None,
        default_model: str = "fake-model",
        supports_tools: bool = False,
        tool_calls: Sequence[ToolCall] = (),
    ) -> None:
        self.id = provider_id
        self.default_model = default_model
        self.fail_for = dict(fail_for or {})
        self.supports_tools = supports_tools
        self.tool_calls = tuple(tool_calls)
        self.calls: list[tuple[list[ChatMessage], LLMConfig, dict[str, Any]]] = []
        self.offered: list[tuple[Tool, ...]] = []

    def parse_credentials(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return dict(data)

    def parse_config(self, data: Mapping[str, Any]) -> LLMConfig:
        return msgspec.convert(dict(data), LLMConfig)

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        config: Any,
        credentials: Any,
        *,
        tools: Sequence[Tool] | None = None,
    ) -> Reply:
        if tools is not None and not self.supports_tools:  # as an old plugin's ``chat`` would
            raise TypeError("chat() got an unexpected keyword argument 'tools'")
        self.calls.append((list(messages), config, credentials))
        self.offered.append(tuple(tools or ()))
        error = self.fail_for.get(credentials.get("apiKey", ""))
        if error is not None:
            raise error
        model = config.model or self.default_model
        return Reply(
            text=f"{self.id}:{model}: {messages[-1].content if messages else ''}",
            model=model,
            usage=Usage(input_tokens=len(messages), output_tokens=1),
            latency_ms=0.0,
            provider=self.id,
            tool_calls=self.tool_calls if tools else (),
        )


class FakeProviders:
    """A ``ProviderLookup`` over fake (or real) providers, by id."""

    def __init__(self, *providers: Any) -> None:
        self.by_id = {p.id: p for p in providers}

    def llm(self, provider_id: str) -> Any:
        try:
            return self.by_id[provider_id]
        except KeyError:
            raise ValidationFailed(f"Unknown llm provider {provider_id!r}") from None


class FakeCredentialSource:
    """A ``CredentialSource`` over stored credentials in a list, with the real policy."""

    def __init__(
        self,
        stored: list[Credential] | None = None,
        platform: PlatformDefaults | None = None,
        *,
        on_resolve: Callable[[Resolved], None] | None = None,
    ) -> None:
        self.stored = list(stored or [])
        self.platform = platform or PlatformDefaults()
        self.on_resolve = on_resolve

    async def resolve(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Resolved:
        resolved = resolution.resolve(tenant_id, itype, self.stored, self.platform, provider)
        if self.on_resolve:
            self.on_resolve(resolved)
        return resolved
