"""Who is offered tools: ``Responder`` (and ``Assistant``) pass ``tools=`` only to providers
that say ``supports_tools``, on the fallback call too; a plugin written before tools, with a
three-argument ``chat``, keeps answering."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import msgspec

from changarrito import hookimpl
from changarrito.domain.assistant import Assistant
from changarrito.domain.chat import HANDOFF_TOOL
from changarrito.domain.errors import ProviderAuthError
from changarrito.domain.llm import PORTABLE_CONFIG, Responder
from changarrito.domain.model import (
    Credential,
    IntegrationType,
    PlatformCredential,
    PlatformDefaults,
    Secrets,
)
from changarrito.plugin import ChatMessage, Credentials, LLMProvider, Reply, ToolCall, Usage
from changarrito.plugins.registry import ProviderRegistry, discover_none
from changarrito.testing import FakeCredentialSource, FakeLLMProvider, FakeProviders, FakeUpstream

LLM = IntegrationType.LLM
HI = [ChatMessage(role="user", content="quiero un reembolso")]
HANDOFF = ToolCall(name="handoff", arguments={"reason": "reembolso"}, id="call_1")


def platform(provider: str = "openai") -> PlatformDefaults:
    credential = PlatformCredential(LLM, provider, Secrets({"apiKey": "platform"}), {})
    return PlatformDefaults(
        credentials={(LLM, provider): credential}, default_providers={LLM: provider}
    )


def tenant_llm(tenant: Any, provider: str, key: str = "tenant", **config: Any) -> Credential:
    return Credential(
        tenant_id=tenant,
        integration_type=LLM,
        provider=provider,
        secrets=Secrets({"apiKey": key}),
        config=config,
    )


async def test_a_provider_that_supports_tools_is_offered_them_and_its_calls_come_back() -> None:
    provider = FakeLLMProvider("openai", supports_tools=True, tool_calls=[HANDOFF])
    use_case = Responder(FakeCredentialSource([], platform()), FakeProviders(provider))

    reply = await use_case.reply(uuid4(), HI, tools=(HANDOFF_TOOL,))

    assert provider.offered == [(HANDOFF_TOOL,)]
    assert reply.tool_calls == (HANDOFF,) and reply.handoff_reason == "reembolso"
    assert reply.source == "platform"


async def test_a_provider_without_tool_support_is_called_without_the_tools_argument() -> None:
    # The fake raises TypeError on ``tools=`` unless it supports them: like an old plugin.
    provider = FakeLLMProvider("ollama")
    use_case = Responder(FakeCredentialSource([], platform("ollama")), FakeProviders(provider))

    reply = await use_case.reply(uuid4(), HI, tools=(HANDOFF_TOOL,))

    assert reply.text.endswith("quiero un reembolso") and reply.tool_calls == ()
    assert provider.offered == [()]


async def test_without_tools_a_supporting_provider_gets_an_empty_offer() -> None:
    provider = FakeLLMProvider("openai", supports_tools=True, tool_calls=[HANDOFF])
    use_case = Responder(FakeCredentialSource([], platform()), FakeProviders(provider))

    reply = await use_case.reply(uuid4(), HI)

    assert provider.offered == [()] and reply.tool_calls == ()


async def test_the_platform_fallback_call_is_offered_the_tools_too() -> None:
    tenant = uuid4()
    stored = [tenant_llm(tenant, "anthropic", key="bad", handoffMessage="Te atiende Mari.")]
    anthropic = FakeLLMProvider(
        "anthropic", supports_tools=True, fail_for={"bad": ProviderAuthError("revoked")}
    )
    openai = FakeLLMProvider("openai", supports_tools=True, tool_calls=[HANDOFF])
    use_case = Responder(
        FakeCredentialSource(stored, platform()),
        FakeProviders(anthropic, openai),
        platform_fallback=True,
    )

    reply = await use_case.reply(tenant, HI, tools=(HANDOFF_TOOL,))

    assert anthropic.offered == [(HANDOFF_TOOL,)] and openai.offered == [(HANDOFF_TOOL,)]
    assert (reply.source, reply.handoff_reason) == ("platform", "reembolso")
    assert openai.calls[0][1].handoff_message == "Te atiende Mari."


def test_the_new_conversation_settings_survive_a_fallback_to_the_platform() -> None:
    assert {"handoffMessage", "textOnlyReply", "quietPeriodSeconds", "handoffIdleHours"} <= set(
        PORTABLE_CONFIG
    )


async def test_the_assistant_passes_the_tools_for_a_tenant_and_for_the_platform_number() -> None:
    tenant = uuid4()
    provider = FakeLLMProvider("openai", supports_tools=True, tool_calls=[HANDOFF])
    credentials = FakeCredentialSource([tenant_llm(tenant, "openai")], platform())
    assistant = Assistant(credentials, FakeProviders(provider))

    own = await assistant.reply(tenant, HI, tools=(HANDOFF_TOOL,))
    platforms = await assistant.reply(None, HI, tools=(HANDOFF_TOOL,))
    plain = await assistant.reply(tenant, HI)

    assert provider.offered == [(HANDOFF_TOOL,), (HANDOFF_TOOL,), ()]
    assert own.handoff_reason == platforms.handoff_reason == "reembolso"
    assert plain.handoff_reason is None


# --- a plugin written before tools ------------------------------------------------------------


class OldCredentials(Credentials, frozen=True):
    api_key: str


class OldStyleProvider(LLMProvider):
    """A third party's provider as written before tools: ``chat`` takes three arguments."""

    id = "old-style"
    name = "Old style"
    credentials_schema = OldCredentials
    default_model = "old-1"

    async def chat(  # type: ignore[override]
        self, messages: Sequence[ChatMessage], config: Any, credentials: Any
    ) -> Reply:
        return Reply(
            text=f"old: {messages[-1].content}",
            model=self.model_for(config),
            usage=Usage(input_tokens=1, output_tokens=1),
            latency_ms=1.0,
            provider=self.id,
        )

    async def verify(self, credentials: Any, config: Any) -> None:
        return None


async def test_a_plugin_whose_chat_predates_tools_still_answers_when_tools_are_offered() -> None:
    plugin = SimpleNamespace(
        register_llm_providers=hookimpl(lambda register: register(OldStyleProvider))
    )
    registry = ProviderRegistry.load(
        FakeUpstream().context(),
        env={},
        builtins=(),
        extra=[("old_style_plugin", plugin)],
        discover=discover_none,
    )
    assert registry.ids(LLM) == ["old-style"] and not registry.failed
    tenant = uuid4()
    credentials = FakeCredentialSource([tenant_llm(tenant, "old-style")], PlatformDefaults())

    reply = await Assistant(credentials, registry).reply(tenant, HI, tools=(HANDOFF_TOOL,))

    assert (reply.text, reply.provider, reply.source) == (
        "old: quiero un reembolso",
        "old-style",
        "tenant",
    )
    assert reply.tool_calls == () and reply.handoff_reason is None and reply.refused is False


def test_a_reply_built_the_old_way_has_no_tool_calls_and_is_not_refused() -> None:
    reply = Reply(text="hola", model="m", usage=Usage(), latency_ms=1.0, provider="p")
    assert (reply.tool_calls, reply.refused, reply.handoff_reason) == ((), False, None)
    decoded = msgspec.json.decode(msgspec.json.encode(reply), type=Reply)
    assert decoded == reply
