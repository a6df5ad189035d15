"""Attacks on the two ways in that held when the service was tried as an attacker would, kept
here so they stay held: HTTP in through the real app (on the in-memory fakes), the answer and
what the service fetched observed.

- A tenant JWT with ``alg: none``, an HS256 token whose HMAC key is the JWKS public key (the
  algorithm-confusion attack), and a token that brings its own key (``jku``, ``jwk``, ``x5u``
  headers) are refused; the service never fetches a URL a token names.
- The internal key is compared whole: a prefix, an extension, another case or an empty value
  is a 401, and the refusal says nothing about the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from changarrito.adapters.http import HttpClients
from changarrito.bootstrap import build_service
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings
from fakes.service import memory_storage

INTERNAL_KEY = "security-tests-internal-key-0123456789"
JWKS_URL = "https://idp.test/.well-known/jwks.json"
EVIL_JWKS = "https://evil.test/jwks.json"
STATUS = "/api/v1/integrations/status"

IDP_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EVIL_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "use": "sig", "alg": "RS256"}


class Network:
    """The identity provider's JWKS, and an attacker's; every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = EVIL_KEY if request.url.host == "evil.test" else IDP_KEY
        return httpx.Response(200, json={"keys": [_jwk(key, "idp-1")]})

    def hosts(self) -> set[str]:
        return {r.url.host for r in self.requests}


@pytest.fixture
def network() -> Network:
    return Network()


@pytest.fixture
async def client(network: Network) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings.from_env(
        {"JWT_JWKS_URL": JWKS_URL, "JWT_AUDIENCE": "chg", "INTERNAL_API_KEY": INTERNAL_KEY}
    )
    http = HttpClients(transport=httpx.MockTransport(network))
    service = build_service(settings, memory_storage(), role="backend", http=http)
    try:
        async with AsyncTestClient(app=create_app(settings, service=service)) as c:
            yield c
    finally:
        await service.aclose()


async def _tenant(client: AsyncTestClient[Litestar]) -> str:
    response = await client.post(
        "/api/v1/internal/tenants",
        json={"name": "Abarrotes"},
        headers={"X-Internal-Key": INTERNAL_KEY},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _claims(tenant_id: str) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "exp": int(time.time()) + 300, "aud": "chg"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_signed(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """A JWT signed with HMAC-SHA256 by hand (PyJWT refuses a PEM as an HMAC key)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def _status_of(client: AsyncTestClient[Litestar], token: str) -> httpx.Response:
    return await client.get(STATUS, headers={"Authorization": f"Bearer {token}"})


async def test_a_genuine_token_from_the_identity_provider_is_accepted(client, network) -> None:
    # The control: the refusals below are about the attack, not a broken setup.
    tenant_id = await _tenant(client)
    token = jwt.encode(_claims(tenant_id), IDP_KEY, "RS256", headers={"kid": "idp-1"})
    assert (await _status_of(client, token)).status_code == 200


async def test_an_unsigned_token_is_refused(client) -> None:
    tenant_id = await _tenant(client)
    for alg in ("none", "None", "NONE"):
        header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        token = f"{header}.{_b64(json.dumps(_claims(tenant_id)).encode())}."
        response = await _status_of(client, token)
        assert response.status_code == 401, alg
        assert response.json()["type"].endswith("/invalid-token")


async def test_an_hs256_token_keyed_with_the_jwks_public_key_is_refused(client) -> None:
    tenant_id = await _tenant(client)
    public_pem = IDP_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_der = IDP_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "idp-1"}
    for key in (public_pem, public_der, json.dumps(_jwk(IDP_KEY, "idp-1")).encode()):
        response = await _status_of(client, _hand_signed(header, _claims(tenant_id), key))
        assert response.status_code == 401
        assert response.json()["type"].endswith("/invalid-token")


@pytest.mark.parametrize("field", ["jku", "x5u"])
async def test_a_token_naming_its_own_key_url_is_refused_and_the_url_never_fetched(
    client, network, field
) -> None:
    tenant_id = await _tenant(client)
    token = jwt.encode(
        _claims(tenant_id), EVIL_KEY, "RS256", headers={"kid": "idp-1", field: EVIL_JWKS}
    )
    response = await _status_of(client, token)
    assert response.status_code == 401
    assert "evil.test" not in network.hosts()


async def test_a_token_carrying_its_own_public_key_is_refused(client, network) -> None:
    tenant_id = await _tenant(client)
    token = jwt.encode(
        _claims(tenant_id),
        EVIL_KEY,
        "RS256",
        headers={"kid": "attacker", "jwk": _jwk(EVIL_KEY, "attacker")},
    )
    response = await _status_of(client, token)
    assert response.status_code == 401
    assert network.hosts() <= {"idp.test"}


async def test_a_token_signed_by_another_key_under_the_providers_kid_is_refused(client) -> None:
    tenant_id = await _tenant(client)
    token = jwt.encode(_claims(tenant_id), EVIL_KEY, "RS256", headers={"kid": "idp-1"})
    assert (await _status_of(client, token)).status_code == 401


@pytest.mark.parametrize(
    "given",
    [
        INTERNAL_KEY[:-1],
        INTERNAL_KEY + "0",
        INTERNAL_KEY.upper(),
        INTERNAL_KEY[:8],
        " " + INTERNAL_KEY,
        "",
        "x" * len(INTERNAL_KEY),
    ],
    ids=["prefix", "extended", "other-case", "short-prefix", "padded", "empty", "same-length"],
)
async def test_only_the_whole_internal_key_opens_the_internal_api(client, given) -> None:
    tenant = str(uuid.uuid4())
    path = f"/api/v1/internal/integrations/{tenant}/whatsapp"
    response = await client.get(path, headers={"X-Internal-Key": given})
    assert response.status_code == 401
    assert response.json()["type"].endswith("/invalid-internal-key")
    assert INTERNAL_KEY not in response.text
    assert INTERNAL_KEY[:8] not in response.text


async def test_the_internal_api_without_the_header_is_refused(client) -> None:
    response = await client.post("/api/v1/internal/tenants", json={"name": "x"})
    assert response.status_code == 401
