"""The ``whatsapp`` role's remote credentials provider against a real backend app.

The backend is the real Litestar app (role ``backend``) on real PostgreSQL, reached through
``httpx.ASGITransport``; a switch in front of it plays the backend being down. The provider
under test has its own environment (its own platform credentials), as a separate process
would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import structlog
from litestar import Litestar
from litestar.testing import AsyncTestClient

from changarrito.adapters.http import HttpClients
from changarrito.adapters.postgres.notify import Listener
from changarrito.adapters.remote import RemoteResolver
from changarrito.bootstrap import Service
from changarrito.domain.changes import Change
from changarrito.domain.errors import (
    ConfigurationError,
    CredentialsUnavailable,
    TenantNotFound,
    UnknownPhoneNumber,
)
from changarrito.domain.model import (
    Credential,
    IntegrationType,
    PlatformCredential,
    PlatformDefaults,
    Secrets,
    Source,
    WhatsAppNumber,
)

#: The built-in WhatsApp provider's id (Meta's Cloud API).
WHATSAPP_PROVIDER = "meta"
BACKEND = "http://backend.internal:3141"
#: This process's own platform credentials (the backend has others).
OWN_OPENAI_KEY = "sk-whatsapp-process-own-openai-key-0000"
OWN_NUMBER = "100000000000999"
TTL = 60.0


@dataclass
class Backend:
    """The backend app behind a switch, counting the requests that reach it."""

    app: Litestar
    down: bool = False
    requests: list[httpx.Request] = field(default_factory=list)

    def transport(self) -> httpx.AsyncBaseTransport:
        asgi = httpx.ASGITransport(app=self.app)
        backend = self

        class Switch(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                if backend.down:
                    raise httpx.ConnectError("connection refused", request=request)
                backend.requests.append(request)
                return await asgi.handle_async_request(request)

        return Switch()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def backend(app: Litestar, app_client: AsyncTestClient[Litestar]) -> Backend:
    # ``app_client`` has run the app's lifespan: the service is on ``app.state``.
    return Backend(app)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def own_platform(**overrides: Any) -> PlatformDefaults:
    credentials = {
        (IntegrationType.LLM, "openai"): PlatformCredential(
            IntegrationType.LLM, "openai", Secrets({"apiKey": OWN_OPENAI_KEY}), {"model": "m1"}
        ),
        (IntegrationType.WHATSAPP, WHATSAPP_PROVIDER): PlatformCredential(
            IntegrationType.WHATSAPP,
            WHATSAPP_PROVIDER,
            Secrets({"accessToken": "EAAownplatformtoken000000000000"}),
            {"phoneNumberId": OWN_NUMBER},
        ),
    }
    values: dict[str, Any] = {
        "credentials": credentials,
        "default_providers": {IntegrationType.LLM: "openai"},
        "whatsapp_phone_number_id": OWN_NUMBER,
    }
    values.update(overrides)
    return PlatformDefaults(**values)


@pytest.fixture
async def remote(
    backend: Backend, test_settings: Any, clock: Clock
) -> AsyncIterator[RemoteResolver]:
    http = HttpClients(transport=backend.transport())
    key = test_settings.auth.internal_api_key
    resolver = RemoteResolver(http, BACKEND, key, own_platform(), ttl=TTL, clock=clock)
    try:
        yield resolver
    finally:
        await http.aclose()


async def new_tenant(service: Service) -> UUID:
    return (await service.storage.store.create_tenant(f"shop-{uuid4().hex[:6]}")).id


async def give_whatsapp(
    service: Service, tenant: UUID, token: str, number: str | None = None
) -> str:
    number = number or str(10**14 + uuid4().int % 10**14)
    await service.storage.store.save_credential(
        Credential(
            tenant,
            IntegrationType.WHATSAPP,
            WHATSAPP_PROVIDER,
            Secrets({"accessToken": token, "appSecret": "tenant-app-secret-0000000"}),
            {"phoneNumberId": number, "businessAccountId": "300000000000001"},
        ),
        WhatsAppNumber(tenant, number),
    )
    return number


async def test_a_tenants_own_credentials_come_from_the_backend_marked_tenant(
    remote: RemoteResolver, app_service: Service
) -> None:
    tenant = await new_tenant(app_service)
    number = await give_whatsapp(app_service, tenant, "EAAtenanttoken1111111111111")

    resolved = await remote.resolve(tenant, IntegrationType.WHATSAPP)
    sender = await remote.sender(number)

    assert resolved.source is Source.TENANT and not resolved.stale
    assert resolved.secrets["accessToken"] == "EAAtenanttoken1111111111111"
    assert sender.tenant_id == tenant
    assert sender.secrets["accessToken"] == "EAAtenanttoken1111111111111"
    assert sender.config["phoneNumberId"] == number


async def test_a_tenant_with_nothing_of_its_own_gets_this_process_platform_credentials(
    remote: RemoteResolver, app_service: Service, backend: Backend
) -> None:
    tenant = await new_tenant(app_service)

    resolved = await remote.resolve(tenant, IntegrationType.LLM)

    assert backend.requests, "the backend was asked first"
    assert resolved.source is Source.PLATFORM
    assert resolved.secrets["apiKey"] == OWN_OPENAI_KEY  # not the backend's platform key


async def test_without_platform_keys_of_its_own_the_backends_platform_answer_is_used(
    backend: Backend, app_service: Service, test_settings: Any
) -> None:
    tenant = await new_tenant(app_service)
    async with contextlib.AsyncExitStack() as stack:
        http = HttpClients(transport=backend.transport())
        stack.push_async_callback(http.aclose)
        bare = RemoteResolver(
            http, BACKEND, test_settings.auth.internal_api_key, PlatformDefaults()
        )

        resolved = await bare.resolve(tenant, IntegrationType.LLM)

    assert resolved.source is Source.PLATFORM
    assert resolved.secrets["apiKey"] == test_settings.plugins.env["OPENAI_API_KEY"]


async def test_a_second_resolve_within_the_ttl_asks_the_backend_nothing(
    remote: RemoteResolver, app_service: Service, backend: Backend, clock: Clock
) -> None:
    tenant = await new_tenant(app_service)
    number = await give_whatsapp(app_service, tenant, "EAAtenanttoken2222222222222")
    await remote.sender(number)
    asked = len(backend.requests)

    clock.now += TTL - 1
    await remote.sender(number)
    await remote.resolve(tenant, IntegrationType.WHATSAPP)
    clock.now += 2
    await remote.resolve(tenant, IntegrationType.WHATSAPP)

    assert asked == 2  # the number's route, then the tenant's credential
    assert len(backend.requests) == asked + 1  # only once the TTL has passed


async def test_concurrent_misses_share_one_request(
    remote: RemoteResolver, app_service: Service, backend: Backend
) -> None:
    tenant = await new_tenant(app_service)

    results = await asyncio.gather(
        *(remote.resolve(tenant, IntegrationType.LLM) for _ in range(10))
    )

    assert len(backend.requests) == 1
    assert {r.secrets["apiKey"] for r in results} == {OWN_OPENAI_KEY}


async def test_while_the_backend_is_down_the_last_good_value_is_served_stale_and_logged_once(
    remote: RemoteResolver, app_service: Service, backend: Backend, clock: Clock
) -> None:
    tenant = await new_tenant(app_service)
    number = await give_whatsapp(app_service, tenant, "EAAtenanttoken3333333333333")
    await remote.sender(number)

    backend.down = True
    clock.now += TTL * 3
    with structlog.testing.capture_logs() as logs:
        first = await remote.sender(number)
        second = await remote.resolve(tenant, IntegrationType.WHATSAPP)
        third = await remote.resolve(tenant, IntegrationType.WHATSAPP)
    backend.down = False
    recovered = await remote.resolve(tenant, IntegrationType.WHATSAPP)

    assert first.stale and second.stale and third.stale and not recovered.stale
    assert first.secrets["accessToken"] == "EAAtenanttoken3333333333333"
    warnings = [e for e in logs if e["event"] == "credentials.serving_stale"]
    # One per key: the number's route and the tenant's WhatsApp credential.
    assert sorted(bool(e.get("phone_number_id")) for e in warnings) == [False, True]
    assert all("EAAtenanttoken" not in str(e) for e in logs)


async def test_with_the_backend_down_and_nothing_cached_the_call_fails_as_retryable(
    remote: RemoteResolver, app_service: Service, backend: Backend
) -> None:
    tenant = await new_tenant(app_service)
    backend.down = True

    with pytest.raises(CredentialsUnavailable) as failed:
        await remote.resolve(tenant, IntegrationType.LLM)

    assert failed.value.retryable
    assert "BACKEND_URL" in failed.value.message


async def test_a_change_notification_makes_the_next_resolve_see_the_change_at_once(
    remote: RemoteResolver, app_service: Service, database_url: str
) -> None:
    tenant = await new_tenant(app_service)
    number = await give_whatsapp(app_service, tenant, "EAAtenanttokenOLD0000000000")
    assert (await remote.sender(number)).secrets["accessToken"] == "EAAtenanttokenOLD0000000000"
    ready = asyncio.Event()
    changes = Listener(database_url)
    changes.on_change(remote.on_change)
    listener = asyncio.create_task(changes.run(ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), timeout=5)
        await give_whatsapp(app_service, tenant, "EAAtenanttokenNEW1111111111", number)
        app_service.resolver.invalidate_tenant(tenant)  # as the tenant API does, in its process

        async def new_token_seen() -> None:
            while (await remote.sender(number)).secrets["accessToken"] != (
                "EAAtenanttokenNEW1111111111"
            ):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(new_token_seen(), timeout=1.0)  # the TTL is a minute
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def test_numbers_route_through_the_backend_and_the_platform_number_needs_no_request(
    remote: RemoteResolver, app_service: Service, backend: Backend
) -> None:
    tenant = await new_tenant(app_service)
    number = await give_whatsapp(app_service, tenant, "EAAtenanttoken4444444444444")

    own = await remote.route(OWN_NUMBER)
    asked = len(backend.requests)
    tenants = await remote.route(number)

    assert own.tenant_id is None and asked == 0
    assert tenants.tenant_id == tenant
    with pytest.raises(UnknownPhoneNumber):
        await remote.route("999999999999999")


async def test_a_number_nobody_owns_costs_the_backend_one_request_a_second_not_one_a_body(
    remote: RemoteResolver, backend: Backend, clock: Clock
) -> None:
    nobodys = "199999999999991"
    for _ in range(5):
        with pytest.raises(UnknownPhoneNumber):
            await remote.sender(nobodys)
    asked = len(backend.requests)
    clock.now += 1.1
    with pytest.raises(UnknownPhoneNumber):
        await remote.route(nobodys)

    assert asked == 1
    assert len(backend.requests) == 2


async def test_a_number_claimed_after_it_was_unknown_routes_on_its_change_notification(
    remote: RemoteResolver, app_service: Service
) -> None:
    number = "199999999999992"
    with pytest.raises(UnknownPhoneNumber):
        await remote.route(number)
    tenant = await new_tenant(app_service)
    await give_whatsapp(app_service, tenant, "EAAtenanttoken5555555555555", number)

    remote.on_change(Change(phone_number_id=number))  # what the listener hands it

    async def routed() -> UUID | None:
        while True:  # the backend's own store forgets the number on its notification
            with contextlib.suppress(UnknownPhoneNumber):
                return (await remote.route(number)).tenant_id
            remote.on_change(Change(phone_number_id=number))
            await asyncio.sleep(0.05)

    assert await asyncio.wait_for(routed(), timeout=2.0) == tenant


async def test_an_unknown_tenant_is_not_found(remote: RemoteResolver) -> None:
    with pytest.raises(TenantNotFound):
        await remote.resolve(uuid4(), IntegrationType.LLM)


async def test_a_wrong_internal_key_is_a_configuration_error_never_served_stale(
    backend: Backend, app_service: Service
) -> None:
    tenant = await new_tenant(app_service)
    http = HttpClients(transport=backend.transport())
    try:
        wrong = RemoteResolver(http, BACKEND, "not-the-internal-key-000000000", own_platform())
        with pytest.raises(ConfigurationError) as failed:
            await wrong.resolve(tenant, IntegrationType.LLM)
    finally:
        await http.aclose()
    assert "INTERNAL_API_KEY" in failed.value.message
