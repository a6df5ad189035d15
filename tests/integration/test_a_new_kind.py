"""A new integration kind is its row, its base class and its hook: nothing else is edited.

The test adds a kind (``shipping``) the way a change to ``domain/kinds.py`` and
``plugins/hookspecs.py`` would (a row in ``KINDS``, a base in ``PROVIDER_BASES``, a hook spec),
registers one provider of it from a plugin, and sees the rest follow: the registry and the
``changarrito plugins`` listing, the status's new section in its row's shape, the kind's
endpoints with literal paths in the OpenAPI schema, and their errors. No PostgreSQL: the
service runs on the in-memory fakes (the database's check constraint follows ``KINDS`` too,
see ``test_migrations.py``).
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator, Iterator
from enum import StrEnum
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from changarrito import hookimpl
from changarrito.adapters.http import HttpClients
from changarrito.bootstrap import build_service
from changarrito.domain.kinds import KINDS, DefaultRule, Kind, StatusShape
from changarrito.entrypoints.http.app import create_app
from changarrito.plugin import Credentials, Provider
from changarrito.plugins import hookspecs
from changarrito.plugins.manager import format_plugins_table, load_plugins
from changarrito.settings import Settings
from conftest import INTERNAL_HEADERS, TEST_ENV, FakeUpstreams, bearer, token_for
from fakes.service import memory_storage


class NewType(StrEnum):
    """Stands in for the new member of ``IntegrationType``."""

    SHIPPING = "shipping"


SHIPPING = Kind(
    type=NewType.SHIPPING,
    hook="register_shipping_providers",
    label="shipping",
    shape=StatusShape.SINGLE,
    default=DefaultRule.FIRST_CONFIGURED,
    platform_flag="usesPlatformCarrier",
)


class ShippingProvider(Provider):
    """The new kind's base class (``plugins/shipping/base.py``)."""


@hookspecs.hookspec
def register_shipping_providers(register: Any) -> None:
    """Registers shipping providers: call ``register(cls)`` once per ``ShippingProvider``.

    Returns nothing.
    """


class CarrierCredentials(Credentials, frozen=True):
    api_key: str


class Carrier(ShippingProvider):
    id = "estafeta"
    name = "Estafeta"
    credentials_schema = CarrierCredentials
    config_schema = msgspec.Struct

    async def verify(self, credentials: Any, config: Any) -> None:
        return None


@hookimpl
def register_shipping_providers_impl(register: Any) -> None:
    register(Carrier)


PLUGIN = types.SimpleNamespace(register_shipping_providers=register_shipping_providers_impl)


@pytest.fixture
def new_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[Kind]:
    monkeypatch.setitem(KINDS, NewType.SHIPPING, SHIPPING)
    monkeypatch.setitem(hookspecs.PROVIDER_BASES, NewType.SHIPPING, ShippingProvider)
    monkeypatch.setattr(hookspecs, SHIPPING.hook, register_shipping_providers, raising=False)
    yield SHIPPING


@pytest.fixture
async def client(new_kind: Kind) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = Settings.from_env(TEST_ENV)
    http = HttpClients(transport=httpx.MockTransport(FakeUpstreams().handler))
    registry = load_plugins(settings.plugins, http=http, extra=[("shipping", PLUGIN)])
    assert not registry.failed, registry.failed
    service = build_service(
        settings, memory_storage(), role="backend", http=http, registry=registry
    )
    async with AsyncTestClient(app=create_app(settings, service=service)) as client:
        yield client


async def tenant(client: Any) -> dict[str, str]:
    created = await client.post(
        "/api/v1/internal/tenants", json={"name": "envios"}, headers=INTERNAL_HEADERS
    )
    return bearer(token_for(created.json()["id"]))


def test_the_registry_and_the_plugins_listing_know_the_new_kind(new_kind: Kind) -> None:
    registry = load_plugins({}, extra=[("shipping", PLUGIN)])
    assert registry.ids(new_kind.type) == ["estafeta"]
    row = next(line for line in format_plugins_table(registry).splitlines() if "estafeta" in line)
    assert row.split()[:2] == ["estafeta", "shipping"]


async def test_the_status_has_the_new_kinds_section_after_the_others(client: Any) -> None:
    headers = await tenant(client)
    status = (await client.get("/api/v1/integrations/status", headers=headers)).json()
    assert list(status) == ["whatsapp", "llm", "payments", "shipping"]
    assert status["shipping"] == {"configured": False, "usesPlatformCarrier": True}


async def test_the_new_kinds_endpoints_are_documented_with_literal_paths(client: Any) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    assert set(paths["/api/v1/integrations/shipping"]) >= {"get", "put", "delete"}
    assert "post" in paths["/api/v1/integrations/shipping/verify"]
    put = paths["/api/v1/integrations/shipping"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ShippingIntegrationUpdate"
    )
    assert put["operationId"] == "ApiV1IntegrationsShippingPutShipping"


async def test_the_new_kinds_endpoints_answer_like_the_others(client: Any) -> None:
    headers = await tenant(client)
    got = await client.get("/api/v1/integrations/shipping", headers=headers)
    assert got.status_code == 404
    assert got.json()["type"].endswith("/integration-not-configured")
    body = {"provider": "dhl", "credentials": {"apiKey": "k-000000000000"}}
    unknown = await client.put("/api/v1/integrations/shipping", json=body, headers=headers)
    assert unknown.status_code == 422
    assert unknown.json()["type"].endswith("/unknown-shipping-provider")
    assert "installed: estafeta" in unknown.json()["detail"]
    nothing = await client.post("/api/v1/integrations/shipping/verify", headers=headers)
    assert nothing.status_code == 409
