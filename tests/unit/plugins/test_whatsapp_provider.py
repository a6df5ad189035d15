"""The built-in WhatsApp provider ``meta``: registered like the others, its cheap check of a
credential against Graph, its platform credential from the environment."""

from __future__ import annotations

from typing import Any

import pytest

from changarrito import hookimpl
from changarrito.domain.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderBadResponse,
    RetryableProviderError,
)
from changarrito.plugins.registry import ProviderRegistry, discover_none, format_plugins_table
from changarrito.plugins.whatsapp.meta import MetaProvider
from changarrito.testing.upstream import FakeUpstream, json_response

TOKEN = "EAAGm0PX4ZCpsBAKZBtesttoken1234567890"
PNID = "106540352242922"
WABA = "102290129340398"


def provider(upstream: FakeUpstream, **env: str) -> MetaProvider:
    return MetaProvider(upstream.context(env))


def number(pnid: str = PNID) -> Any:
    return json_response(
        200, {"id": pnid, "display_phone_number": "+1 555", "quality_rating": "GREEN"}
    )


class OtherWhatsApp(MetaProvider):
    id = "other-wa"


class OtherPlugin:
    @hookimpl
    def register_whatsapp_providers(self, register: Any) -> None:
        register(OtherWhatsApp)


def test_hook_register_whatsapp_providers_registers_meta_and_third_party_classes() -> None:
    registry = ProviderRegistry.load(
        FakeUpstream().context(),
        env={},
        builtins=("changarrito.plugins.whatsapp.meta",),
        extra=[("other", OtherPlugin())],
        discover=discover_none,
    )
    assert registry.ids("whatsapp") == ["meta", "other-wa"]
    assert isinstance(registry.whatsapp("meta"), MetaProvider)
    table = format_plugins_table(registry)
    assert any(line.split()[:2] == ["meta", "whatsapp"] for line in table.splitlines())


def test_registering_an_llm_class_as_a_whatsapp_provider_is_reported() -> None:
    from changarrito.plugins.llm.openai import OpenAIProvider

    class Wrong:
        @hookimpl
        def register_whatsapp_providers(self, register: Any) -> None:
            register(OpenAIProvider)

    registry = ProviderRegistry.load(
        FakeUpstream().context(),
        env={},
        builtins=(),
        extra=[("wrong", Wrong())],
        discover=discover_none,
    )
    assert "register_whatsapp_providers got" in registry.failed[0].error
    assert "not a subclass of WhatsAppProvider" in registry.failed[0].error


def listing(*pnids: str, after: str | None = None) -> Any:
    body: dict[str, Any] = {"data": [{"id": p} for p in pnids]}
    if after:
        body["paging"] = {"cursors": {"before": "b", "after": after}, "next": "https://next"}
    return json_response(200, body)


async def verify(meta: MetaProvider, waba: str = WABA) -> None:
    await meta.verify(
        meta.parse_credentials({"accessToken": TOKEN}),
        meta.parse_config({"phoneNumberId": PNID, "businessAccountId": waba}),
    )


async def test_verify_reads_the_number_and_its_account_from_graph_with_its_bearer_token() -> None:
    upstream = FakeUpstream(number(), listing("1", PNID))
    await verify(provider(upstream))
    first, second = upstream.requests
    assert str(first.url).startswith(f"https://graph.facebook.com/v23.0/{PNID}?")
    assert "display_phone_number" in first.url.params["fields"]
    assert str(second.url).startswith(f"https://graph.facebook.com/v23.0/{WABA}/phone_numbers?")
    for request in (first, second):
        assert request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_verify_follows_the_account_list_to_its_next_page() -> None:
    upstream = FakeUpstream(number(), listing("1", after="CURSOR"), listing(PNID))
    await verify(provider(upstream))
    assert upstream.last.url.params["after"] == "CURSOR"


async def test_a_number_the_account_does_not_list_fails_verification() -> None:
    upstream = FakeUpstream(number(), listing("1", "2"))
    with pytest.raises(ProviderBadRequest, match="does not list"):
        await verify(provider(upstream))


async def test_an_account_the_token_cannot_read_fails_verification() -> None:
    error = {"message": "Unsupported get request", "type": "GraphMethodException", "code": 100}
    upstream = FakeUpstream(number(), json_response(400, {"error": error}))
    with pytest.raises(ProviderBadRequest):
        await verify(provider(upstream))


async def test_the_graph_base_url_and_version_come_from_the_environment() -> None:
    upstream = FakeUpstream(number())
    meta = provider(
        upstream, WHATSAPP_API_BASE_URL="https://graph.test/", WHATSAPP_API_VERSION="v99.0"
    )
    await meta.check(TOKEN, PNID)
    assert str(upstream.last.url).startswith(f"https://graph.test/v99.0/{PNID}?")
    assert {"WHATSAPP_API_BASE_URL", "WHATSAPP_API_VERSION"} <= set(MetaProvider.env_vars())


async def test_a_refused_token_is_an_auth_error_without_the_token() -> None:
    error = {
        "message": f"Invalid OAuth access token {TOKEN}",
        "type": "OAuthException",
        "code": 190,
    }
    upstream = FakeUpstream(json_response(401, {"error": error}))
    with pytest.raises(ProviderAuthError) as info:
        await provider(upstream).check(TOKEN, PNID)
    assert TOKEN not in info.value.message and "Invalid OAuth" in info.value.message


async def test_an_id_that_is_not_a_graph_id_is_refused_before_any_call() -> None:
    upstream = FakeUpstream()
    with pytest.raises(ProviderBadRequest):
        await provider(upstream).check(TOKEN, "12ab")
    assert upstream.requests == []


async def test_an_answer_about_another_number_is_a_bad_response() -> None:
    with pytest.raises(ProviderBadResponse):
        await provider(FakeUpstream(number("999"))).check(TOKEN, PNID)


async def test_an_unreachable_graph_is_retryable() -> None:
    import httpx

    with pytest.raises(RetryableProviderError):
        await provider(FakeUpstream(httpx.ConnectError)).check(TOKEN, PNID)


def test_the_platform_credential_needs_the_token_and_the_number_and_is_trimmed() -> None:
    env = {"WHATSAPP_ACCESS_TOKEN": f" {TOKEN} ", "WHATSAPP_VERIFY_TOKEN": "  "}
    assert MetaProvider.platform_credentials(env) is None
    env["WHATSAPP_PHONE_NUMBER_ID"] = PNID
    assert MetaProvider.platform_credentials(env) == {"accessToken": TOKEN}
    assert MetaProvider.platform_config(env) == {"phoneNumberId": PNID}
    assert MetaProvider.platform_hint() == "WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID"


def test_the_credentials_never_show_their_values() -> None:
    creds = MetaProvider.parse_credentials({"accessToken": TOKEN, "appSecret": "app-secret-1"})
    assert TOKEN not in repr(creds) and "app-secret-1" not in str(creds)
