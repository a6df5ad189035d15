"""The tenant API through a real Litestar app on real PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from litestar.testing import AsyncTestClient

from changarrito.adapters.http import HttpClients
from changarrito.bootstrap import Service, build_service
from changarrito.domain.errors import UnknownPhoneNumber
from changarrito.domain.model import IntegrationType, Source
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings
from conftest import (
    _LEDGER,
    JWT_SECRET,
    PLATFORM_PHONE_NUMBER_ID,
    TEST_ENV,
    bearer,
    record_exchange,
    token_for,
)

#: These test the API, not SQL: the service runs on the in-memory fakes (``tests/fakes``).
SERVICE = "memory"

STATUS_ON_A_FRESH_TENANT = (
    '{"whatsapp": {"configured": false, "usesPlatformNumber": true, "isVerified": false},'
    ' "llm": {"configured": false, "usesPlatformDefault": true, "provider": "openai",'
    ' "model": "gpt-4o-mini"},'
    ' "payments": {"stripe": {"configured": false}, "mercadopago": {"configured": false},'
    ' "clip": {"configured": false}}}'
)


async def test_status_of_a_fresh_tenant_is_the_contract_shape_byte_for_byte(
    app_client, make_tenant
) -> None:
    _, headers = await make_tenant()
    response = await app_client.get("/api/v1/integrations/status", headers=headers)
    assert response.status_code == 200, response.text
    expected = json.dumps(json.loads(STATUS_ON_A_FRESH_TENANT), separators=(",", ":"))
    assert response.content == expected.encode()


WA_TOKEN = "EAAtenantwhatsapptoken1111111111a1b2"
WA_BODY = {
    "credentials": {
        "accessToken": WA_TOKEN,
        "phoneNumberId": "300000000000001",
        "businessAccountId": "400000000000001",
        "appSecret": "tenant-app-secret-1111111111",
        "verifyToken": "tenant-verify-token-111111111",
    },
    "phoneNumber": "+52 55 1111 1111",
    "displayName": "Tienda Uno",
}


def wa_body(number: str, token: str = WA_TOKEN, **extra_credentials: str) -> dict:
    body = json.loads(json.dumps(WA_BODY))
    body["credentials"].update(phoneNumberId=number, accessToken=token, **extra_credentials)
    return body


def unique_number() -> str:
    import random

    return str(random.randrange(10**14, 10**15))


async def test_putting_whatsapp_stores_it_and_shows_only_hints_and_fingerprints(
    app_client, make_tenant
) -> None:
    _, headers = await make_tenant()
    number = unique_number()
    response = await app_client.put(
        "/api/v1/integrations/whatsapp", json=wa_body(number), headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["credentials"]["accessToken"]["hint"] == "…a1b2"
    assert len(body["credentials"]["accessToken"]["fingerprint"]) == 12
    assert body["config"]["phoneNumberId"] == number
    assert body["isVerified"] is True  # Graph confirmed the claim as it was saved
    assert WA_TOKEN not in response.text

    status = (await app_client.get("/api/v1/integrations/status", headers=headers)).json()
    assert status["whatsapp"]["configured"] is True
    assert status["whatsapp"]["usesPlatformNumber"] is False
    assert status["whatsapp"]["phoneNumberId"] == number
    assert status["whatsapp"]["displayName"] == "Tienda Uno"
    assert status["whatsapp"]["numberClaim"] == "confirmed"


async def test_a_whatsapp_put_graph_does_not_confirm_is_saved_with_its_claim_pending(
    app_client, make_tenant, app_service
) -> None:
    _, headers = await make_tenant()
    number = unique_number()
    response = await app_client.put(
        "/api/v1/integrations/whatsapp",
        json=wa_body(number, token="EAAdowntenanttoken0000000000"),
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["isVerified"] is False
    assert response.json()["verificationError"].startswith("The WhatsApp number is not claimed")
    status = (await app_client.get("/api/v1/integrations/status", headers=headers)).json()
    assert status["whatsapp"]["numberClaim"] == "pending"
    assert status["whatsapp"]["displayName"] == "Tienda Uno"
    assert await app_service.storage.store.number_owner(number) is None


async def test_a_put_without_the_secret_or_with_its_hint_keeps_the_stored_secret(
    app_client, make_tenant, app_service
) -> None:
    tenant_id, headers = await make_tenant()
    number = unique_number()
    await app_client.put("/api/v1/integrations/whatsapp", json=wa_body(number), headers=headers)

    with_hint = wa_body(number, token="…a1b2")
    with_hint["displayName"] = "Renamed"
    response = await app_client.put(
        "/api/v1/integrations/whatsapp", json=with_hint, headers=headers
    )
    assert response.status_code == 200, response.text
    without = wa_body(number)
    without["displayName"] = "Renamed"
    del without["credentials"]["accessToken"]
    response = await app_client.put("/api/v1/integrations/whatsapp", json=without, headers=headers)
    assert response.status_code == 200, response.text

    resolved = await app_service.resolver.resolve(tenant_id, IntegrationType.WHATSAPP)
    assert resolved.secrets["accessToken"] == WA_TOKEN
    assert resolved.config["displayName"] == "Renamed"


async def test_a_masked_value_that_is_not_the_stored_hint_is_refused(
    app_client, make_tenant
) -> None:
    _, headers = await make_tenant()
    number = unique_number()
    await app_client.put("/api/v1/integrations/whatsapp", json=wa_body(number), headers=headers)
    response = await app_client.put(
        "/api/v1/integrations/whatsapp", json=wa_body(number, token="…zzzz"), headers=headers
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == "credentials.accessToken"


async def test_a_first_whatsapp_put_without_a_token_names_the_missing_field(
    app_client, make_tenant
) -> None:
    _, headers = await make_tenant()
    body = wa_body(unique_number())
    del body["credentials"]["accessToken"]
    response = await app_client.put("/api/v1/integrations/whatsapp", json=body, headers=headers)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "https://changarrito.dev/problems/validation"
    assert {"field": "credentials.accessToken", "message": "is required"} in problem["errors"]


async def test_a_phone_number_id_that_is_not_a_graph_id_is_a_field_error(
    app_client, make_tenant
) -> None:
    _, headers = await make_tenant()
    response = await app_client.put(
        "/api/v1/integrations/whatsapp", json=wa_body("not-a-number"), headers=headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "credentials.phoneNumberId"


async def test_a_body_of_the_wrong_shape_is_a_400_problem(app_client, make_tenant) -> None:
    _, headers = await make_tenant()
    response = await app_client.put(
        "/api/v1/integrations/whatsapp", json={"credentials": "nope"}, headers=headers
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith("/invalid-request")


async def test_a_number_owned_by_another_tenant_is_a_409_that_does_not_name_the_owner(
    app_client, make_tenant
) -> None:
    owner_id, owner = await make_tenant("Dueña")
    _, other = await make_tenant("Otra")
    number = unique_number()
    assert (
        await app_client.put("/api/v1/integrations/whatsapp", json=wa_body(number), headers=owner)
    ).status_code == 200
    response = await app_client.put(
        "/api/v1/integrations/whatsapp", json=wa_body(number), headers=other
    )
    assert response.status_code == 409
    assert str(owner_id) not in response.text
    assert "Dueña" not in response.text


async def test_the_platforms_own_number_cannot_be_claimed(app_client, make_tenant) -> None:
    _, headers = await make_tenant()
    response = await app_client.put(
        "/api/v1/integrations/whatsapp", json=wa_body(PLATFORM_PHONE_NUMBER_ID), headers=headers
    )
    assert response.status_code == 409


async def test_changing_the_number_releases_the_old_one(app_client, make_tenant) -> None:
    _, first = await make_tenant()
    _, second = await make_tenant()
    old, new = unique_number(), unique_number()
    await app_client.put("/api/v1/integrations/whatsapp", json=wa_body(old), headers=first)
    await app_client.put("/api/v1/integrations/whatsapp", json=wa_body(new), headers=first)
    response = await app_client.put(
        "/api/v1/integrations/whatsapp", json=wa_body(old), headers=second
    )
    assert response.status_code == 200, response.text


async def test_deleting_whatsapp_goes_back_to_the_platform_number(
    app_client, make_tenant, app_service
) -> None:
    tenant_id, headers = await make_tenant()
    number = unique_number()
    await app_client.put("/api/v1/integrations/whatsapp", json=wa_body(number), headers=headers)
    await app_service.resolver.resolve(tenant_id, IntegrationType.WHATSAPP)  # now cached

    response = await app_client.delete("/api/v1/integrations/whatsapp", headers=headers)
    assert response.status_code == 204
    status = (await app_client.get("/api/v1/integrations/status", headers=headers)).json()
    assert status["whatsapp"] == {
        "configured": False,
        "usesPlatformNumber": True,
        "isVerified": False,
    }
    resolved = await app_service.resolver.resolve(tenant_id, IntegrationType.WHATSAPP)
    assert resolved.source is Source.PLATFORM
    with pytest.raises(UnknownPhoneNumber):
        await app_service.resolver.route(number)
    got = await app_client.get("/api/v1/integrations/whatsapp", headers=headers)
    assert got.status_code == 404


async def test_putting_an_llm_replaces_the_cached_platform_default_at_once(
    app_client, make_tenant, app_service
) -> None:
    tenant_id, headers = await make_tenant()
    before = await app_service.resolver.resolve(tenant_id, IntegrationType.LLM)
    assert before.source is Source.PLATFORM

    key = "sk-ant-tenant-anthropic-key-2222c3d4"
    body = {
        "provider": "anthropic",
        "credentials": {"apiKey": key},
        "config": {"model": "claude-x", "maxTokens": 300, "temperature": 0.3},
    }
    response = await app_client.put("/api/v1/integrations/llm", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["credentials"]["apiKey"]["hint"] == "…c3d4"

    after = await app_service.resolver.resolve(tenant_id, IntegrationType.LLM)
    assert (after.source, after.provider, after.secrets["apiKey"]) == (
        Source.TENANT,
        "anthropic",
        key,
    )
    status = (await app_client.get("/api/v1/integrations/status", headers=headers)).json()
    assert status["llm"]["configured"] is True
    assert status["llm"]["usesPlatformDefault"] is False
    assert (status["llm"]["provider"], status["llm"]["model"]) == ("anthropic", "claude-x")


async def test_switching_llm_provider_leaves_one_llm_configuration(
    app_client, make_tenant, app_service
) -> None:
    tenant_id, headers = await make_tenant()
    for provider, key in (("anthropic", "sk-ant-first-key-000000"), ("openai", "sk-second-00000")):
        body = {"provider": provider, "credentials": {"apiKey": key}}
        response = await app_client.put("/api/v1/integrations/llm", json=body, headers=headers)
        assert response.status_code == 200, response.text
    stored = await app_service.storage.store.credentials_for(tenant_id, IntegrationType.LLM)
    assert [c.provider for c in stored] == ["openai"]
    status = (await app_client.get("/api/v1/integrations/status", headers=headers)).json()
    assert (status["llm"]["provider"], status["llm"]["model"]) == ("openai", "gpt-4o-mini")


async def test_an_unknown_llm_provider_is_a_422_listing_the_installed_ones(
    app_client, make_tenant
) -> None:
    _, headers = await make_tenant()
    body = {"provider": "skynet", "credentials": {"apiKey": "sk-whatever-123456"}}
    response = await app_client.put("/api/v1/integrations/llm", json=body, headers=headers)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("/unknown-llm-provider")
    for installed in ("openai", "anthropic", "openrouter", "azure-openai", "ollama"):
        assert installed in problem["detail"]


async def test_llm_credentials_are_checked_against_the_providers_schema(
    app_client, make_tenant
) -> None:
    _, headers = await make_tenant()
    missing = {"provider": "openai", "credentials": {}}
    response = await app_client.put("/api/v1/integrations/llm", json=missing, headers=headers)
    assert response.status_code == 422
    assert {"field": "credentials.apiKey", "message": "is required"} in response.json()["errors"]

    unknown = {"provider": "openai", "credentials": {"apiKey": "sk-x-000000000", "nope": "x"}}
    response = await app_client.put("/api/v1/integrations/llm", json=unknown, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "credentials.nope"

    wrong_type = {
        "provider": "openai",
        "credentials": {"apiKey": "sk-x-000000000"},
        "config": {"maxTokens": "many"},
    }
    response = await app_client.put("/api/v1/integrations/llm", json=wrong_type, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "config.maxTokens"

    empty = {"provider": "openai", "credentials": {"apiKey": ""}}
    response = await app_client.put("/api/v1/integrations/llm", json=empty, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "credentials.apiKey"


async def test_deleting_the_llm_goes_back_to_the_platform_default(
    app_client, make_tenant, app_service
) -> None:
    tenant_id, headers = await make_tenant()
    body = {"provider": "openai", "credentials": {"apiKey": "sk-tenant-openai-3333"}}
    await app_client.put("/api/v1/integrations/llm", json=body, headers=headers)
    assert (await app_service.resolver.resolve(tenant_id, IntegrationType.LLM)).source == "tenant"
    assert (await app_client.delete("/api/v1/integrations/llm", headers=headers)).status_code == 204
    resolved = await app_service.resolver.resolve(tenant_id, IntegrationType.LLM)
    assert resolved.source is Source.PLATFORM


async def test_payments_put_get_delete_for_each_builtin_provider(app_client, make_tenant) -> None:
    _, headers = await make_tenant()
    bodies = {
        "stripe": {
            "credentials": {
                "apiKey": "sk_test_tenant_stripe_4444",
                "webhookSecret": "whsec_tenant_4444x",
            },
            "config": {"successUrl": "https://shop.example/ok"},
        },
        "mercadopago": {
            "credentials": {"accessToken": "APP_USR-tenant-mp-5555"},
            "config": {"sandbox": True},
        },
        "clip": {
            "credentials": {
                "apiKey": "clip-tenant-api-6666",
                "secretKey": "clip-tenant-secret-6666",
            }
        },
    }
    for provider, body in bodies.items():
        url = f"/api/v1/integrations/payments/{provider}"
        response = await app_client.put(url, json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["provider"] == provider
        got = await app_client.get(url, headers=headers)
        assert got.status_code == 200
        assert set(got.json()["credentials"]) == set(body["credentials"])
    status = (await app_client.get("/api/v1/integrations/status", headers=headers)).json()
    assert list(status["payments"])[:3] == ["stripe", "mercadopago", "clip"]
    assert all(status["payments"][p]["configured"] for p in bodies)

    response = await app_client.delete("/api/v1/integrations/payments/clip", headers=headers)
    assert response.status_code == 204
    status = (await app_client.get("/api/v1/integrations/status", headers=headers)).json()
    assert status["payments"]["clip"] == {"configured": False}
    assert status["payments"]["stripe"]["configured"] is True


async def test_an_unknown_payment_provider_is_a_404_listing_the_installed_ones(
    app_client, make_tenant
) -> None:
    _, headers = await make_tenant()
    for method in ("put", "get", "delete"):
        kwargs = {"json": {"credentials": {}}} if method == "put" else {}
        response = await getattr(app_client, method)(
            "/api/v1/integrations/payments/paypal", headers=headers, **kwargs
        )
        assert response.status_code == 404, (method, response.text)
        assert response.json()["type"].endswith("/unknown-payment-provider")
        assert "stripe" in response.json()["detail"]


async def test_payment_credentials_are_checked_against_the_providers_schema(
    app_client, make_tenant
) -> None:
    _, headers = await make_tenant()
    response = await app_client.put(
        "/api/v1/integrations/payments/clip",
        json={"credentials": {"apiKey": "clip-only-the-key"}},
        headers=headers,
    )
    assert response.status_code == 422
    assert {"field": "credentials.secretKey", "message": "is required"} in response.json()["errors"]


async def test_verifying_whatsapp_asks_graph_and_records_the_answer(
    app_client, make_tenant, fake_providers
) -> None:
    _, headers = await make_tenant()
    number = unique_number()
    await app_client.put("/api/v1/integrations/whatsapp", json=wa_body(number), headers=headers)
    response = await app_client.post("/api/v1/integrations/whatsapp/verify", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["isVerified"] is True
    graph, account = fake_providers.to("graph.test")[-2:]
    assert graph.url.path == f"/v23.0/{number}"
    assert "display_phone_number" in graph.url.params["fields"]
    assert account.url.path == f"/v23.0/{WA_BODY['credentials']['businessAccountId']}/phone_numbers"
    for call in (graph, account):
        assert call.headers["authorization"] == f"Bearer {WA_TOKEN}"

    status = (await app_client.get("/api/v1/integrations/status", headers=headers)).json()
    assert status["whatsapp"]["isVerified"] is True
    assert status["whatsapp"]["verifiedAt"]


async def test_a_failed_verification_records_the_providers_error_without_the_secret(
    app_client, make_tenant
) -> None:
    _, headers = await make_tenant()
    bad = "EAAbadtenanttoken77777777777777"
    await app_client.put(
        "/api/v1/integrations/whatsapp", json=wa_body(unique_number(), token=bad), headers=headers
    )
    response = await app_client.post("/api/v1/integrations/whatsapp/verify", headers=headers)
    assert response.status_code == 200
    result = response.json()
    assert result["isVerified"] is False
    assert result["errorCode"] == "provider-auth"
    assert "Invalid OAuth access token" in result["error"]
    assert bad not in response.text
    got = (await app_client.get("/api/v1/integrations/whatsapp", headers=headers)).json()
    assert got["isVerified"] is False
    assert "Invalid OAuth" in got["verificationError"]


async def test_verifying_llm_and_payments_calls_the_providers_check(
    app_client, make_tenant, fake_providers
) -> None:
    _, headers = await make_tenant()
    await app_client.put(
        "/api/v1/integrations/llm",
        json={"provider": "openai", "credentials": {"apiKey": "sk-good-tenant-key-8888"}},
        headers=headers,
    )
    response = await app_client.post("/api/v1/integrations/llm/verify", headers=headers)
    assert response.json()["isVerified"] is True, response.text
    assert fake_providers.to("openai")[-1].url.path == "/v1/models"

    await app_client.put(
        "/api/v1/integrations/payments/stripe",
        json={"credentials": {"apiKey": "sk_test_bad_tenant_9999"}},
        headers=headers,
    )
    response = await app_client.post("/api/v1/integrations/payments/stripe/verify", headers=headers)
    assert response.status_code == 200
    assert response.json()["isVerified"] is False
    status = (await app_client.get("/api/v1/integrations/status", headers=headers)).json()
    assert status["llm"]["isVerified"] is True
    assert status["payments"]["stripe"]["isVerified"] is False
    assert status["payments"]["stripe"]["verificationError"]


async def test_verifying_what_is_not_configured_is_a_409(app_client, make_tenant) -> None:
    _, headers = await make_tenant()
    for url in ("whatsapp/verify", "llm/verify", "payments/stripe/verify"):
        response = await app_client.post(f"/api/v1/integrations/{url}", headers=headers)
        assert response.status_code == 409, url
        assert response.json()["type"].endswith("/not-configured")


async def test_a_body_past_the_tenant_api_limit_is_a_413(app_client, make_tenant) -> None:
    _, headers = await make_tenant()
    body = {
        "provider": "openai",
        "credentials": {"apiKey": "sk-" + "x" * 100},
        "config": {"systemPrompt": "x" * 70_000},
    }
    response = await app_client.put("/api/v1/integrations/llm", json=body, headers=headers)
    assert response.status_code == 413


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "problem"),
    [
        (None, "missing-token"),
        ("", "missing-token"),
        ("Basic dXNlcjpwYXNz", "missing-token"),
        ("Bearer ", "missing-token"),
        ("Bearer not.a.jwt", "invalid-token"),
    ],
)
async def test_a_request_without_a_usable_bearer_token_is_a_401_problem(
    app_client, authorization, problem
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await app_client.get("/api/v1/integrations/status", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == f"https://changarrito.dev/problems/{problem}"


async def test_expired_forged_and_unsigned_tokens_are_refused(app_client, make_tenant) -> None:
    tenant_id, _ = await make_tenant()
    cases = {
        "expired-token": token_for(tenant_id, ttl=-120),
        "invalid-token": token_for(tenant_id, secret="not-the-secret-" + "z" * 32),
    }
    unsigned = jwt.encode(
        {"tenant_id": str(tenant_id), "exp": int(time.time()) + 60}, None, algorithm="none"
    )
    no_exp = token_for(tenant_id, exp=None)
    for expected, token in [*cases.items(), ("invalid-token", unsigned), ("invalid-token", no_exp)]:
        response = await app_client.get("/api/v1/integrations/status", headers=bearer(token))
        assert response.status_code == 401, expected
        assert response.json()["type"].endswith("/" + expected)
        assert JWT_SECRET not in response.text


async def test_a_token_naming_no_existing_tenant_is_refused(app_client) -> None:
    for tenant in (uuid.uuid4(), "not-a-uuid"):
        response = await app_client.get(
            "/api/v1/integrations/status", headers=bearer(token_for(tenant))
        )
        assert response.status_code == 401
        assert response.json()["type"].endswith("/invalid-token")
    missing_claim = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, JWT_SECRET)
    response = await app_client.get("/api/v1/integrations/status", headers=bearer(missing_claim))
    assert response.status_code == 401


def rebuilt(service: Service, settings: Settings, http: HttpClients | None = None) -> Service:
    """The same stores under other settings (the service is built once per settings)."""
    return build_service(settings, service.storage, role="backend", http=http or service.http)


async def test_issuer_and_audience_are_checked_when_configured(
    app_service, make_tenant, app_client
) -> None:
    tenant_id, _ = await make_tenant()
    settings = Settings.from_env({**TEST_ENV, "JWT_ISSUER": "https://idp", "JWT_AUDIENCE": "chg"})
    app = create_app(settings, service=rebuilt(app_service, settings))
    async with AsyncTestClient(app=app) as client:
        client.event_hooks = record_exchange(_LEDGER)
        good = token_for(tenant_id, iss="https://idp", aud="chg")
        for token, status in [
            (good, 200),
            (token_for(tenant_id, iss="https://idp", aud="other"), 401),
            (token_for(tenant_id, iss="https://idp"), 401),
            (token_for(tenant_id, iss="https://evil", aud="chg"), 401),
            (token_for(tenant_id, aud="chg"), 401),
        ]:
            response = await client.get("/api/v1/integrations/status", headers=bearer(token))
            assert response.status_code == status, response.text


def _jwks_app(app_service, keys: list[tuple[str, Any]]) -> tuple[Any, list[httpx.Request]]:
    fetched: list[httpx.Request] = []

    def jwks(request: httpx.Request) -> httpx.Response:
        fetched.append(request)
        body = {"keys": []}
        for kid, key in keys:
            jwk = json.loads(
                jwt.algorithms.get_default_algorithms()[
                    "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
                ].to_jwk(key.public_key())
            )
            body["keys"].append({**jwk, "kid": kid, "use": "sig"})
        return httpx.Response(200, json=body)

    settings = Settings.from_env(
        {
            **{k: v for k, v in TEST_ENV.items() if k != "JWT_SECRET"},
            "JWT_JWKS_URL": "https://idp.test/.well-known/jwks.json",
            "JWT_AUDIENCE": "chg",
        }
    )
    http = HttpClients(transport=httpx.MockTransport(jwks))
    return create_app(settings, service=rebuilt(app_service, settings, http)), fetched


async def test_rs256_and_es256_tokens_are_checked_against_the_jwks(
    app_service, make_tenant
) -> None:
    tenant_id, _ = await make_tenant()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    app, fetched = _jwks_app(app_service, [("r1", rsa_key), ("e1", ec_key)])
    claims = {"tenant_id": str(tenant_id), "exp": int(time.time()) + 60, "aud": "chg"}
    async with AsyncTestClient(app=app) as client:
        for token, status in [
            (jwt.encode(claims, rsa_key, "RS256", headers={"kid": "r1"}), 200),
            (jwt.encode(claims, ec_key, "ES256", headers={"kid": "e1"}), 200),
            (jwt.encode(claims, stranger, "RS256", headers={"kid": "r1"}), 401),
            (jwt.encode(claims, stranger, "RS256", headers={"kid": "unknown"}), 401),
            (jwt.encode(claims, ec_key, "ES256", headers={"kid": "r1"}), 401),
            (jwt.encode({**claims, "aud": "x"}, rsa_key, "RS256", headers={"kid": "r1"}), 401),
            (token_for(tenant_id, aud="chg"), 401),  # HS256 is off without JWT_SECRET
        ]:
            response = await client.get("/api/v1/integrations/status", headers=bearer(token))
            assert response.status_code == status, response.text
    assert 1 <= len(fetched) <= 2  # cached, refetched at most once for the unknown kid


async def test_a_jwks_that_cannot_be_fetched_is_a_502_not_a_crash(app_service, make_tenant) -> None:
    tenant_id, _ = await make_tenant()
    settings = Settings.from_env(
        {**TEST_ENV, "JWT_SECRET": "", "JWT_JWKS_URL": "https://idp.test/jwks.json"}
    )

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    service = rebuilt(app_service, settings, HttpClients(transport=httpx.MockTransport(down)))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode({"tenant_id": str(tenant_id), "exp": int(time.time()) + 60}, key, "RS256")
    async with AsyncTestClient(app=create_app(settings, service=service)) as client:
        response = await client.get("/api/v1/integrations/status", headers=bearer(token))
    assert response.status_code == 502
    assert response.json()["type"].endswith("/jwks-unavailable")
