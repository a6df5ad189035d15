"""Secrets never leak: not in exceptions, reprs or logs, and never to a tenant's endpoint."""

from __future__ import annotations

from uuid import uuid4

import pytest
import structlog.testing
from hypothesis import given
from hypothesis import strategies as st

from changarrito.domain.chat import ChatMessage
from changarrito.domain.errors import ProviderAuthError, ValidationFailed
from changarrito.domain.llm import Responder
from changarrito.domain.model import (
    Credential,
    IntegrationType,
    PlatformCredential,
    PlatformDefaults,
    Secrets,
)
from changarrito.plugin import scrub
from changarrito.plugins.base import ProviderContext
from changarrito.plugins.llm.ollama import OllamaProvider
from changarrito.plugins.llm.openai import OpenAIProvider
from changarrito.plugins.registry import ProviderRegistry, discover_none
from changarrito.testing import FakeCredentialSource, FakeUpstream, json_response

PLATFORM_KEY = "sk-platform-SECRET-0123456789abcdef"
TENANT_KEY = "sk-tenant-SECRET-abcdef0123456789"
LLM = IntegrationType.LLM
OK = {"choices": [{"message": {"content": "ok"}}], "usage": {}}


def test_openai_style_key_echo_is_scrubbed() -> None:
    message = "Incorrect API key provided: sk-tenant*************6789. See docs."
    assert "6789" not in scrub(message, [TENANT_KEY])
    assert TENANT_KEY not in scrub(f"key {TENANT_KEY} refused", [TENANT_KEY])


@given(st.text(min_size=12, max_size=40).filter(lambda s: s.strip() == s and " " not in s))
def test_scrub_removes_any_secret_value_wherever_it_appears(secret: str) -> None:
    assert secret not in scrub(f"before {secret} after, and again:{secret}", [secret])


def test_credentials_repr_hides_values() -> None:
    parsed = OpenAIProvider.parse_credentials({"apiKey": TENANT_KEY})
    assert TENANT_KEY not in repr(parsed) and "apiKey=***" in repr(parsed)


def test_invalid_credentials_message_names_the_field_not_the_value() -> None:
    with pytest.raises(ValidationFailed) as info:
        OpenAIProvider.parse_credentials({"apiKey": TENANT_KEY, "baseUrl": "ftp://nope"})
    assert "credentials.baseUrl" in str(info.value) and TENANT_KEY not in str(info.value)


async def test_rejected_key_echo_stays_out_of_the_exception_and_the_logs() -> None:
    body = {"error": {"message": f"Incorrect API key provided: {TENANT_KEY}", "code": "x"}}
    provider = OpenAIProvider(FakeUpstream(json_response(401, body)).context())
    with structlog.testing.capture_logs() as logs, pytest.raises(ProviderAuthError) as info:
        await provider.chat(
            [ChatMessage(role="user", content="hi")],
            provider.parse_config({}),
            provider.parse_credentials({"apiKey": TENANT_KEY}),
        )
    assert logs and logs[0]["event"] == "upstream_failed"
    for text in (str(info.value), repr(info.value), repr(logs)):
        assert TENANT_KEY not in text


def test_platform_credentials_never_carry_an_endpoint() -> None:
    env = {"OPENAI_API_KEY": PLATFORM_KEY, "OPENAI_BASE_URL": "https://proxy.platform"}
    assert OpenAIProvider.platform_credentials(env) == {"apiKey": PLATFORM_KEY}


def test_tenant_base_url_without_its_own_key_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="apiKey"):
        OpenAIProvider.parse_credentials({"baseUrl": "https://evil.example"})


async def test_tenant_endpoint_never_receives_the_platform_key_even_on_fallback() -> None:
    tenant = uuid4()
    upstream = FakeUpstream(
        json_response(401, {"error": {"message": "bad key"}}), json_response(200, OK)
    )
    registry = ProviderRegistry.load(
        upstream.context({"OPENAI_BASE_URL": "https://platform.example/v1"}),
        env={},
        builtins=("changarrito.plugins.llm.openai", "changarrito.plugins.llm.ollama"),
        discover=discover_none,
    )
    own = Credential(
        tenant_id=tenant,
        integration_type=LLM,
        provider="openai",
        secrets=Secrets({"apiKey": TENANT_KEY, "baseUrl": "https://tenant.example/v1"}),
        config={"model": "tenant-model", "systemPrompt": "Hola."},
    )
    platform = PlatformDefaults(
        credentials={
            (LLM, "openai"): PlatformCredential(
                LLM, "openai", Secrets({"apiKey": PLATFORM_KEY}), {"model": "gpt-4o-mini"}
            )
        },
        default_providers={LLM: "openai"},
    )
    responder = Responder(FakeCredentialSource([own], platform), registry, platform_fallback=True)
    reply = await responder.reply(tenant, [ChatMessage(role="user", content="hola")])
    first, second = upstream.requests
    assert first.url.host == "tenant.example" and TENANT_KEY in first.headers["authorization"]
    assert second.url.host == "platform.example" and PLATFORM_KEY in second.headers["authorization"]
    for request in upstream.requests:
        if request.url.host == "tenant.example":
            assert PLATFORM_KEY not in str(request.headers) + request.content.decode()
    assert reply.source == "platform"
    assert "Hola." in second.content.decode() and "tenant-model" not in second.content.decode()


async def test_a_tenant_ollama_server_gets_only_the_tenant_key() -> None:
    upstream = FakeUpstream(json_response(200, {"message": {"content": "ok"}}))
    provider = OllamaProvider(ProviderContext(http=upstream.clients(), env={}))
    await provider.chat(
        [ChatMessage(role="user", content="hi")],
        provider.parse_config({}),
        provider.parse_credentials({"baseUrl": "https://t.example", "apiKey": TENANT_KEY}),
    )
    assert upstream.last.url.host == "t.example"
    assert upstream.last.headers["authorization"] == f"Bearer {TENANT_KEY}"
