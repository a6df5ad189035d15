"""The internal API: X-Internal-Key, resolved credentials with their source, numbers, tenants."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from changarrito.adapters.internal_api import (
    ResolvedCredential,
    TenantRoute,
    llm_path,
    resolve_tenant_path,
    whatsapp_path,
)
from changarrito.domain.errors import ConfigurationError
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings
from conftest import INTERNAL_HEADERS, PLATFORM_PHONE_NUMBER_ID, TEST_ENV

#: These test the API, not SQL: the service runs on the in-memory fakes (``tests/fakes``).
SERVICE = "memory"

WA = {
    "credentials": {
        "accessToken": "EAAinternaltenanttoken55555555",
        "phoneNumberId": "",
        "businessAccountId": "400000000000002",
        "appSecret": "internal-app-secret-5555555",
    },
    "phoneNumber": "+52 55 5555 5555",
    "displayName": "Tienda Interna",
}


def number() -> str:
    return str(uuid.uuid4().int % 10**15).rjust(15, "7")


@pytest.mark.parametrize(
    "headers", [{}, {"X-Internal-Key": "wrong"}, {"X-Internal-Key": ""}], ids=str
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", whatsapp_path(uuid.uuid4())),
        ("GET", llm_path(uuid.uuid4())),
        ("GET", resolve_tenant_path("123")),
        ("POST", "/api/v1/internal/tenants"),
    ],
)
async def test_every_internal_endpoint_refuses_a_missing_or_wrong_key(
    app_client, headers, method, path
) -> None:
    response = await app_client.request(method, path, headers=headers, json={"name": "x"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/invalid-internal-key")


async def test_a_tenant_jwt_does_not_open_the_internal_api(app_client, make_tenant) -> None:
    tenant_id, headers = await make_tenant()
    response = await app_client.get(whatsapp_path(tenant_id), headers=headers)
    assert response.status_code == 401


async def test_creating_a_tenant_returns_its_id_and_name(app_client) -> None:
    response = await app_client.post(
        "/api/v1/internal/tenants", json={"name": "Abarrotes Lupita"}, headers=INTERNAL_HEADERS
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name"}
    assert body["name"] == "Abarrotes Lupita"
    uuid.UUID(body["id"])


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": 3}])
async def test_a_tenant_needs_a_name(app_client, body) -> None:
    response = await app_client.post(
        "/api/v1/internal/tenants", json=body, headers=INTERNAL_HEADERS
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_tenant_without_its_own_credentials_resolves_to_the_platforms(
    app_client, make_tenant
) -> None:
    tenant_id, _ = await make_tenant()
    wa = await app_client.get(whatsapp_path(tenant_id), headers=INTERNAL_HEADERS)
    assert wa.status_code == 200, wa.text
    resolved = msgspec.json.decode(wa.content, type=ResolvedCredential)
    assert (resolved.source, resolved.provider, resolved.integration) == (
        "platform",
        "meta",
        "whatsapp",
    )
    assert resolved.credentials["accessToken"] == TEST_ENV["WHATSAPP_ACCESS_TOKEN"]
    assert resolved.config["phoneNumberId"] == PLATFORM_PHONE_NUMBER_ID

    llm = await app_client.get(llm_path(tenant_id), headers=INTERNAL_HEADERS)
    resolved = msgspec.json.decode(llm.content, type=ResolvedCredential)
    assert (resolved.source, resolved.provider) == ("platform", "openai")
    assert resolved.credentials == {"apiKey": TEST_ENV["OPENAI_API_KEY"]}
    assert resolved.config["model"] == "gpt-4o-mini"
    assert resolved.tenant_id == tenant_id
    assert resolved.is_verified is False


async def test_a_tenants_own_credentials_resolve_with_source_tenant(
    app_client, make_tenant
) -> None:
    tenant_id, headers = await make_tenant()
    body = {**WA, "credentials": {**WA["credentials"], "phoneNumberId": number()}}
    assert (
        await app_client.put("/api/v1/integrations/whatsapp", json=body, headers=headers)
    ).status_code == 200
    llm_body = {
        "provider": "anthropic",
        "credentials": {"apiKey": "sk-ant-internal-6666666"},
        "config": {"systemPrompt": "Eres amable"},
    }
    assert (
        await app_client.put("/api/v1/integrations/llm", json=llm_body, headers=headers)
    ).status_code == 200

    wa = (await app_client.get(whatsapp_path(tenant_id), headers=INTERNAL_HEADERS)).json()
    assert wa["source"] == "tenant"
    assert wa["credentials"] == {
        "accessToken": WA["credentials"]["accessToken"],
        "appSecret": WA["credentials"]["appSecret"],
    }
    assert wa["config"]["phoneNumberId"] == body["credentials"]["phoneNumberId"]
    assert wa["config"]["businessAccountId"] == "400000000000002"
    assert set(wa) == {
        "tenantId",
        "integration",
        "provider",
        "source",
        "isVerified",
        "credentials",
        "config",
    }

    llm = (await app_client.get(llm_path(tenant_id), headers=INTERNAL_HEADERS)).json()
    assert (llm["source"], llm["provider"]) == ("tenant", "anthropic")
    assert llm["credentials"] == {"apiKey": "sk-ant-internal-6666666"}
    assert llm["config"]["systemPrompt"] == "Eres amable"
    assert llm["config"]["model"]  # the provider's default when the tenant named none


async def test_a_change_through_the_tenant_api_is_seen_at_once(app_client, make_tenant) -> None:
    tenant_id, headers = await make_tenant()
    first = (await app_client.get(llm_path(tenant_id), headers=INTERNAL_HEADERS)).json()
    assert first["source"] == "platform"  # and now it is cached
    body = {"provider": "openai", "credentials": {"apiKey": "sk-changed-7777777"}}
    await app_client.put("/api/v1/integrations/llm", json=body, headers=headers)
    second = (await app_client.get(llm_path(tenant_id), headers=INTERNAL_HEADERS)).json()
    assert (second["source"], second["credentials"]["apiKey"]) == ("tenant", "sk-changed-7777777")
    await app_client.delete("/api/v1/integrations/llm", headers=headers)
    third = (await app_client.get(llm_path(tenant_id), headers=INTERNAL_HEADERS)).json()
    assert third["source"] == "platform"


async def test_an_unknown_tenant_is_a_404(app_client) -> None:
    for path in (whatsapp_path(uuid.uuid4()), llm_path(uuid.uuid4())):
        response = await app_client.get(path, headers=INTERNAL_HEADERS)
        assert response.status_code == 404
        assert response.json()["type"].endswith("/tenant-not-found")


async def test_a_malformed_tenant_id_is_a_400(app_client) -> None:
    response = await app_client.get(whatsapp_path("not-a-uuid"), headers=INTERNAL_HEADERS)
    assert response.status_code in (400, 404)


async def test_resolve_tenant_names_the_owner_null_for_the_platform_and_404_otherwise(
    app_client, make_tenant
) -> None:
    tenant_id, headers = await make_tenant()
    mine = number()
    body = {**WA, "credentials": {**WA["credentials"], "phoneNumberId": mine}}
    await app_client.put("/api/v1/integrations/whatsapp", json=body, headers=headers)

    owned = await app_client.get(resolve_tenant_path(mine), headers=INTERNAL_HEADERS)
    assert owned.status_code == 200
    assert msgspec.json.decode(owned.content, type=TenantRoute).tenant_id == tenant_id

    platform = await app_client.get(
        resolve_tenant_path(PLATFORM_PHONE_NUMBER_ID), headers=INTERNAL_HEADERS
    )
    assert platform.status_code == 200
    assert platform.content == b'{"tenantId":null}'

    nobody = await app_client.get(resolve_tenant_path(number()), headers=INTERNAL_HEADERS)
    assert nobody.status_code == 404
    assert nobody.headers["content-type"].startswith("application/problem+json")

    await app_client.delete("/api/v1/integrations/whatsapp", headers=headers)
    released = await app_client.get(resolve_tenant_path(mine), headers=INTERNAL_HEADERS)
    assert released.status_code == 404


def test_the_backend_role_refuses_to_start_without_an_internal_key() -> None:
    env = {k: v for k, v in TEST_ENV.items() if k != "INTERNAL_API_KEY"}
    with pytest.raises(ConfigurationError, match="INTERNAL_API_KEY is not set"):
        create_app(Settings.from_env(env), role="backend")


async def test_without_an_internal_key_the_all_role_keeps_the_internal_api_closed(
    app_service,
) -> None:
    from litestar.testing import AsyncTestClient

    env = {k: v for k, v in TEST_ENV.items() if k != "INTERNAL_API_KEY"}
    settings = Settings.from_env(env)
    object.__setattr__(app_service, "settings", settings)
    app = create_app(settings, service=app_service, role="all")
    async with AsyncTestClient(app=app) as client:
        for key in ("", "anything"):
            response = await client.post(
                "/api/v1/internal/tenants", json={"name": "x"}, headers={"X-Internal-Key": key}
            )
            assert response.status_code == 401
