"""Secret fingerprints, tried as an attacker would: HTTP in through the real app on PostgreSQL,
the fingerprint a tenant is shown observed through the API.

- A fingerprint is no offline oracle: guessing a weak secret and hashing the guess does not
  reproduce it (it is an HMAC under a key derived from the server's key ring).
- It is scoped by tenant: the same secret stored by two tenants shows two fingerprints, so
  a tenant cannot tell that another uses the same key.
- It stays useful: stable across reads and across a restart with the same key ring.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import jwt
from litestar import Litestar
from litestar.testing import AsyncTestClient

from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.bootstrap import Database
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings

JWT_SECRET = "fingerprint-tests-jwt-secret-0123456789abcdef"
INTERNAL = {"X-Internal-Key": "fingerprint-tests-internal-key-0123456789"}
#: A weak secret an attacker could guess; the same in every tenant that stores it.
WEAK_KEY = "sk-password123"


@asynccontextmanager
async def running_app(
    database_url: str, keyring: KeyRing
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The backend on ``database_url`` (one "process": its lifespan bootstraps the service)."""
    env = {
        "DATABASE_URL": database_url,
        "CHANGARRITO_ENCRYPTION_KEYS": keyring.serialize(),
        "JWT_SECRET": JWT_SECRET,
        "INTERNAL_API_KEY": INTERNAL["X-Internal-Key"],
        "CHANGARRITO_WORKERS_CONCURRENCY": "0",
    }
    settings = Settings.from_env(env)
    app = create_app(settings, Database(database_url, keyring), role="backend")
    async with AsyncTestClient(app=app) as client:
        yield client


async def new_tenant(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    return (await tenant_and_token(client))[1]


async def tenant_and_token(client: AsyncTestClient[Litestar]) -> tuple[uuid.UUID, dict[str, str]]:
    created = await client.post("/api/v1/internal/tenants", json={"name": "T"}, headers=INTERNAL)
    assert created.status_code == 201, created.text
    now = int(time.time())
    claims = {"tenant_id": created.json()["id"], "sub": "owner", "iat": now, "exp": now + 600}
    token = {"Authorization": "Bearer " + jwt.encode(claims, JWT_SECRET, "HS256")}
    return uuid.UUID(created.json()["id"]), token


async def store_llm_key(
    client: AsyncTestClient[Litestar], headers: dict[str, str], key: str
) -> str:
    body = {"provider": "openai", "credentials": {"apiKey": key}}
    put = await client.put("/api/v1/integrations/llm", json=body, headers=headers)
    assert put.status_code == 200, put.text
    fingerprint: str = put.json()["credentials"]["apiKey"]["fingerprint"]
    return fingerprint


async def shown_fingerprint(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> str:
    got = await client.get("/api/v1/integrations/llm", headers=headers)
    assert got.status_code == 200, got.text
    fingerprint: str = got.json()["credentials"]["apiKey"]["fingerprint"]
    return fingerprint


async def test_a_guessed_weak_secret_cannot_be_confirmed_offline_from_its_fingerprint(
    fresh_database_url: str,
) -> None:
    async with running_app(fresh_database_url, KeyRing.generate("fp")) as client:
        tenant_id, headers = await tenant_and_token(client)
        fingerprint = await store_llm_key(client, headers, WEAK_KEY)
    assert len(fingerprint) == 12 and int(fingerprint, 16) >= 0
    # The attacker knows the code, the tenant and a list of likely secrets; not the key ring.
    offline: set[str] = set()
    for guess in ("sk-123456", "sk-qwerty", WEAK_KEY, "sk-letmein"):
        for message in (guess.encode(), tenant_id.bytes + guess.encode()):
            offline.add(hashlib.sha256(message).hexdigest()[:12])
            offline.add(hmac.new(b"", message, hashlib.sha256).hexdigest()[:12])
    assert fingerprint not in offline


async def test_the_same_secret_in_two_tenants_shows_two_fingerprints(
    fresh_database_url: str,
) -> None:
    async with running_app(fresh_database_url, KeyRing.generate("fp")) as client:
        first, second = await new_tenant(client), await new_tenant(client)
        mine = await store_llm_key(client, first, WEAK_KEY)
        theirs = await store_llm_key(client, second, WEAK_KEY)
    assert mine != theirs


async def test_a_fingerprint_is_stable_across_reads_and_a_restart_with_the_same_keys(
    fresh_database_url: str,
) -> None:
    keyring = KeyRing.generate("fp")
    key = f"sk-stable-{uuid.uuid4().hex}"
    async with running_app(fresh_database_url, keyring) as client:
        headers = await new_tenant(client)
        saved = await store_llm_key(client, headers, key)
        reads = [await shown_fingerprint(client, headers) for _ in range(2)]
    assert reads == [saved, saved]
    async with running_app(fresh_database_url, KeyRing.parse(keyring.serialize())) as restarted:
        assert await shown_fingerprint(restarted, headers) == saved
