"""A real Litestar app on real PostgreSQL, with every provider faked behind httpx.MockTransport.

Fixtures others can reuse:
- ``test_settings``: settings with a JWT secret, an internal key and platform credentials;
- ``fake_providers``: the fake Graph/OpenAI/Anthropic/Stripe/... upstream (``FakeUpstreams``);
- ``app_service``: the ``Service`` bootstrapped on the test database, its HTTP faked;
- ``memory_service``: the same service built on the in-memory fakes (``tests/fakes/memory``),
  no PostgreSQL at all;
- ``app``: ``create_app(settings, service=...)`` on the service the test module picks: the
  in-memory one where a module sets ``SERVICE = "memory"`` (tests of the API, not of SQL),
  else the PostgreSQL one;
- ``app_client``: a ``litestar.testing.AsyncTestClient`` on it (lifespan run), whose bodies
  are scanned for secrets at the end of the session;
- ``make_tenant``: creates a tenant and returns ``(tenant_id, bearer headers)``;
- ``token_for``: a signed tenant JWT (claims overridable).

Session-wide secret scan (``secret_ledger``): every credential value the tests ``PUT`` through
``app_client`` (or ``remember``) is recorded; every response body the clients see (except
the internal API's, which exist to return secrets) and every structlog line (captured with
the service's redaction processor applied) is kept; at the end of the session none may
contain a recorded secret.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
import structlog
from litestar import Litestar
from litestar.testing import AsyncTestClient

from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.http import HttpClients
from changarrito.adapters.logs import redact_secrets
from changarrito.bootstrap import Database, Service, bootstrap, build_service
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings
from fakes.service import memory_storage

JWT_SECRET = "integration-tests-jwt-secret-0123456789abcdef"
INTERNAL_KEY = "integration-tests-internal-key-0123456789"
PLATFORM_PHONE_NUMBER_ID = "100000000000001"
GRAPH = "https://graph.test"

TEST_ENV = {
    "JWT_SECRET": JWT_SECRET,
    "INTERNAL_API_KEY": INTERNAL_KEY,
    "WHATSAPP_API_BASE_URL": GRAPH,
    "WHATSAPP_ACCESS_TOKEN": "EAAplatformwhatsapptoken0000000000",
    "WHATSAPP_PHONE_NUMBER_ID": PLATFORM_PHONE_NUMBER_ID,
    "WHATSAPP_BUSINESS_ACCOUNT_ID": "200000000000001",
    "WHATSAPP_VERIFY_TOKEN": "platform-verify-token-000000",
    "WHATSAPP_APP_SECRET": "platform-app-secret-000000000",
    "OPENAI_API_KEY": "sk-platform-openai-key-000000000000",
    "STRIPE_API_KEY": "sk_test_platformstripekey0000000",
    "STRIPE_WEBHOOK_SECRET": "whsec_platformstripe000000000",
}
#: Platform secrets: never in a tenant-facing body or a log line either.
PLATFORM_SECRETS = [
    v
    for k, v in TEST_ENV.items()
    if k not in ("WHATSAPP_API_BASE_URL", "WHATSAPP_PHONE_NUMBER_ID") and "ACCOUNT_ID" not in k
]

#: Credential fields that are identifiers or endpoints, not secrets.
NOT_SECRET = re.compile(r"(?i)phoneNumberId|businessAccountId|url|endpoint")
MIN_SECRET_LENGTH = 8


# --- the secret scan ----------------------------------------------------------------------


@dataclass
class SecretLedger:
    secrets: set[str] = field(default_factory=set)
    bodies: list[tuple[str, str]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)

    def remember(self, value: Any) -> None:
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH and not value.startswith("…"):
            self.secrets.add(value)

    def remember_credentials(self, body: Any) -> None:
        """Records the secret values of a PUT body's ``credentials`` object."""
        creds = body.get("credentials") if isinstance(body, dict) else None
        if isinstance(creds, dict):
            for name, value in creds.items():
                if not NOT_SECRET.search(str(name)):
                    self.remember(value)

    def saw_body(self, where: str, text: str) -> None:
        self.bodies.append((where, text))

    def leaks(self) -> list[str]:
        found = []
        for secret in self.secrets:
            for where, text in self.bodies:
                if secret in text:
                    found.append(f"response of {where} contains a stored secret")
            for line in self.log_lines:
                if secret in line:
                    found.append(f"log line contains a stored secret: {line[:200]}")
        return found


_LEDGER = SecretLedger()
for _value in PLATFORM_SECRETS:
    _LEDGER.remember(_value)


@pytest.fixture(scope="session", autouse=True)
def secret_ledger() -> Iterator[SecretLedger]:
    """Asserts at the end of the session that no recorded secret leaked anywhere."""
    yield _LEDGER
    leaks = _LEDGER.leaks()
    assert not leaks, "secrets leaked:\n" + "\n".join(sorted(set(leaks))[:20])
    # A run of modules that never use the app client has nothing to scan; when secrets were
    # stored through the API, though, their responses must have been seen.
    assert _LEDGER.bodies or len(_LEDGER.secrets) <= len(PLATFORM_SECRETS), (
        "the secret scan saw no response at all"
    )


@pytest.fixture(autouse=True)
def _capture_logs() -> Iterator[None]:
    """Keeps every structlog line of the test, as the service would write it (redacted)."""
    processors = [structlog.contextvars.merge_contextvars, redact_secrets]
    with structlog.testing.capture_logs(processors=processors) as captured:
        yield
    _LEDGER.log_lines.extend(json.dumps(entry, default=str) for entry in captured)


def record_exchange(ledger: SecretLedger) -> dict[str, list[Callable[..., Any]]]:
    """httpx event hooks that feed the ledger (for clients built outside ``app_client``)."""

    async def on_request(request: httpx.Request) -> None:
        if request.method in ("PUT", "POST") and request.url.path.startswith(
            "/api/v1/integrations"
        ):
            with contextlib.suppress(ValueError):
                ledger.remember_credentials(json.loads(request.content or b"null"))

    async def on_response(response: httpx.Response) -> None:
        await response.aread()
        path = response.request.url.path
        if not path.startswith("/api/v1/internal/"):
            ledger.saw_body(f"{response.request.method} {path}", response.text)

    return {"request": [on_request], "response": [on_response]}


# --- fake providers -----------------------------------------------------------------------


class FakeUpstreams:
    """Every provider API in one MockTransport handler.

    A credential containing ``bad`` is refused (401 with the provider's own error body);
    one containing ``down`` meets a 503. Anything else works. Requests are recorded. Graph's
    ``GET /{waba_id}/phone_numbers`` lists the numbers read with the same token before (a
    token reads its own numbers, and its accounts list them); ``GET
    /{waba_id}/message_templates`` lists no templates.
    """

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.numbers_read: dict[str, list[str]] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        auth = " ".join(
            request.headers.get(h, "") for h in ("authorization", "x-api-key", "api-key")
        )
        host = request.url.host
        if "down" in auth:
            return httpx.Response(503, json={"error": {"message": "overloaded"}})
        if "bad" in auth:
            return self.refusal(host)
        if host == "graph.test" and request.url.path.endswith("/message_templates"):
            return httpx.Response(200, json={"data": []})  # an account without templates
        if host == "graph.test" and request.url.path.endswith("/phone_numbers"):
            listed = self.numbers_read.get(auth, [])
            return httpx.Response(200, json={"data": [{"id": n} for n in listed]})
        if host == "graph.test":
            number = request.url.path.rstrip("/").rsplit("/", 1)[-1]
            self.numbers_read.setdefault(auth, []).append(number)
            return httpx.Response(
                200, json={"id": number, "display_phone_number": "+52 55 0000 0000"}
            )
        if "stripe" in host:
            return httpx.Response(200, json={"object": "balance", "available": []})
        return httpx.Response(200, json={"object": "list", "data": []})

    @staticmethod
    def refusal(host: str) -> httpx.Response:
        if host == "graph.test":
            body = {"error": {"message": "Invalid OAuth access token.", "code": 190}}
        elif "stripe" in host:
            body = {"error": {"message": "Invalid API Key provided", "type": "invalid_request"}}
        else:
            body = {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}
        return httpx.Response(401, json=body)

    def to(self, host_part: str) -> list[httpx.Request]:
        return [r for r in self.requests if host_part in r.url.host]


@pytest.fixture
def fake_providers() -> FakeUpstreams:
    return FakeUpstreams()


# --- the app ------------------------------------------------------------------------------


@pytest.fixture
def test_settings() -> Settings:
    return Settings.from_env(TEST_ENV)


@pytest.fixture
async def app_service(
    request: pytest.FixtureRequest,
    test_settings: Settings,
    fake_providers: FakeUpstreams,
) -> AsyncIterator[Service]:
    """The service the module asks for (``SERVICE = "memory"``), on PostgreSQL otherwise."""
    http = HttpClients(transport=httpx.MockTransport(fake_providers.handler))
    if getattr(request.module, "SERVICE", "postgres") == "memory":
        service = build_service(test_settings, memory_storage(), role="backend", http=http)
    else:
        database_url = request.getfixturevalue("database_url")
        # Each test has its own key ring; rows of other tests' tenants are never read.
        database = Database(database_url, KeyRing.generate("it"))
        service = await bootstrap(
            test_settings, database, role="backend", listen=False, check_keys=False, http=http
        )
    try:
        yield service
    finally:
        await service.aclose()


@pytest.fixture
def app(test_settings: Settings, app_service: Service) -> Litestar:
    return create_app(test_settings, service=app_service, role="backend")


@pytest.fixture
async def app_client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as client:
        client.event_hooks = record_exchange(_LEDGER)
        yield client


def token_for(
    tenant_id: uuid.UUID | str,
    *,
    secret: str = JWT_SECRET,
    ttl: int = 3600,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    now = int(time.time())
    body: dict[str, Any] = {
        "tenant_id": str(tenant_id),
        "sub": f"user-of-{tenant_id}",
        "iat": now,
        "exp": now + ttl,
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, secret, algorithm=algorithm)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


INTERNAL_HEADERS = {"X-Internal-Key": INTERNAL_KEY}


@pytest.fixture
def make_tenant(
    app_client: AsyncTestClient[Litestar],
) -> Callable[..., Any]:
    """``await make_tenant("name")`` → ``(tenant_id, headers with its bearer token)``."""

    async def make(name: str = "Tienda") -> tuple[uuid.UUID, dict[str, str]]:
        response = await app_client.post(
            "/api/v1/internal/tenants", json={"name": name}, headers=INTERNAL_HEADERS
        )
        assert response.status_code == 201, response.text
        tenant_id = uuid.UUID(response.json()["id"])
        return tenant_id, bearer(token_for(tenant_id))

    return make
