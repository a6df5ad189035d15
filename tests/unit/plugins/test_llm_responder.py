"""The LLM use case: tenant first, platform default otherwise, fallback only when allowed."""

from __future__ import annotations

from uuid import uuid4

import pytest

from changarrito.domain.chat import ChatMessage
from changarrito.domain.errors import (
    NotConfigured,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderQuotaExceeded,
    RetryableProviderError,
)
from changarrito.domain.llm import Responder
from changarrito.domain.model import (
    Credential,
    IntegrationType,
    PlatformCredential,
    PlatformDefaults,
    Secrets,
)
from changarrito.testing import FakeCredentialSource, FakeLLMProvider, FakeProviders

LLM = IntegrationType.LLM
HI = [ChatMessage(role="user", content="hola")]
PLATFORM = PlatformDefaults(
    credentials={
        (LLM, "openai"): PlatformCredential(
            LLM, "openai", Secrets({"apiKey": "platform"}), {"model": "gpt-4o-mini"}
        )
    },
    default_providers={LLM: "openai"},
)


def tenant_llm(tenant, provider="anthropic", key="tenant", **config):  # type: ignore[no-untyped-def]
    return Credential(
        tenant_id=tenant,
        integration_type=LLM,
        provider=provider,
        secrets=Secrets({"apiKey": key}),
        config=config,
    )


def responder(stored, *, fallback=False, fail_for=None):  # type: ignore[no-untyped-def]
    openai = FakeLLMProvider("openai")
    anthropic = FakeLLMProvider("anthropic", fail_for=fail_for)
    use_case = Responder(
        FakeCredentialSource(stored, PLATFORM),
        FakeProviders(openai, anthropic),
        platform_fallback=fallback,
    )
    return use_case, openai, anthropic


async def test_tenant_provider_key_model_and_prompt_win_over_the_platform() -> None:
    tenant = uuid4()
    stored = [tenant_llm(tenant, model="claude-x", systemPrompt="Eres Doña Mari.")]
    use_case, openai, anthropic = responder(stored)
    reply = await use_case.reply(tenant, HI)
    assert (reply.provider, reply.model, reply.source) == ("anthropic", "claude-x", "tenant")
    _, config, credentials = anthropic.calls[0]
    assert credentials == {"apiKey": "tenant"} and config.system_prompt == "Eres Doña Mari."
    assert not openai.calls


async def test_without_tenant_credentials_the_platform_default_answers_with_llm_model() -> None:
    use_case, openai, _ = responder([])
    reply = await use_case.reply(uuid4(), HI)
    assert (reply.provider, reply.model, reply.source) == ("openai", "gpt-4o-mini", "platform")
    assert openai.calls[0][2] == {"apiKey": "platform"}


@pytest.mark.parametrize("error", [ProviderAuthError("revoked"), ProviderQuotaExceeded("broke")])
async def test_a_final_tenant_failure_falls_back_to_the_platform_when_allowed(error) -> None:  # type: ignore[no-untyped-def]
    tenant = uuid4()
    stored = [tenant_llm(tenant, key="bad", model="claude-x", systemPrompt="Sé breve.")]
    use_case, openai, _ = responder(stored, fallback=True, fail_for={"bad": error})
    reply = await use_case.reply(tenant, HI)
    assert (reply.provider, reply.model, reply.source) == ("openai", "gpt-4o-mini", "platform")
    _, config, credentials = openai.calls[0]
    assert credentials == {"apiKey": "platform"} and config.system_prompt == "Sé breve."


async def test_a_final_tenant_failure_propagates_when_fallback_is_off() -> None:
    tenant = uuid4()
    use_case, openai, _ = responder(
        [tenant_llm(tenant, key="bad")], fail_for={"bad": ProviderAuthError("revoked")}
    )
    with pytest.raises(ProviderAuthError):
        await use_case.reply(tenant, HI)
    assert not openai.calls


@pytest.mark.parametrize("error", [RetryableProviderError("busy"), ProviderBadRequest("no")])
async def test_retryable_or_bad_request_failures_never_fall_back(error) -> None:  # type: ignore[no-untyped-def]
    tenant = uuid4()
    use_case, openai, _ = responder(
        [tenant_llm(tenant, key="bad")], fallback=True, fail_for={"bad": error}
    )
    with pytest.raises(type(error)):
        await use_case.reply(tenant, HI)
    assert not openai.calls


async def test_fallback_without_a_platform_credential_reports_the_tenant_failure() -> None:
    tenant = uuid4()
    use_case = Responder(
        FakeCredentialSource([tenant_llm(tenant, key="bad")], PlatformDefaults()),
        FakeProviders(FakeLLMProvider("anthropic", fail_for={"bad": ProviderAuthError("x")})),
        platform_fallback=True,
    )
    with pytest.raises(ProviderAuthError):
        await use_case.reply(tenant, HI)


async def test_no_credentials_anywhere_is_not_configured() -> None:
    use_case = Responder(FakeCredentialSource([], PlatformDefaults()), FakeProviders())
    with pytest.raises(NotConfigured):
        await use_case.reply(uuid4(), HI)


def test_domain_llm_imports_only_stdlib_msgspec_and_the_domain() -> None:
    import ast
    import sys
    from pathlib import Path

    import changarrito.domain.llm as module

    tree = ast.parse(Path(module.__file__).read_text())
    roots = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    foreign = {r for r in roots if r not in sys.stdlib_module_names} - {
        "msgspec",
        "changarrito",
        "__future__",
    }
    assert not foreign
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("changarrito")
        ):
            assert node.module.startswith("changarrito.domain")
