"""The app's own OpenAPI schema: complete, and every response schemathesis provokes obeys it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.http import HttpClients
from changarrito.bootstrap import Database, bootstrap
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings
from conftest import _LEDGER, INTERNAL_HEADERS, TEST_ENV, FakeUpstreams, bearer, token_for

#: Operations of the tenant and internal APIs (this suite's); others test their own.
OURS = ("/api/v1/integrations", "/api/v1/internal")
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def running_app(database_url: str) -> Iterator[tuple[Litestar, TestClient[Litestar]]]:
    """The backend app on a sync client, its service built on the client's loop."""
    test_settings = Settings.from_env(TEST_ENV)
    app = create_app(test_settings, service=object(), role="backend")  # type: ignore[arg-type]
    http = HttpClients(transport=httpx.MockTransport(FakeUpstreams().handler))
    database = Database(database_url, KeyRing.generate("schema"))

    async def build() -> Any:
        return await bootstrap(test_settings, database, listen=False, check_keys=False, http=http)

    with TestClient(app=app) as client:
        service = client.blocking_portal.call(build)
        app.state.service = service
        try:
            yield app, client
        finally:
            client.blocking_portal.call(service.aclose)


@pytest.fixture(scope="module")
def openapi(running_app: tuple[Litestar, TestClient[Litestar]]) -> dict[str, Any]:
    _, client = running_app
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_every_endpoint_of_the_contract_is_documented_with_its_errors(openapi) -> None:
    paths = openapi["paths"]
    expected = {
        "/api/v1/integrations/status": ["get"],
        "/api/v1/integrations/whatsapp": ["put", "delete"],
        "/api/v1/integrations/llm": ["put", "delete"],
        "/api/v1/integrations/payments/{provider}": ["put", "delete"],
        "/api/v1/integrations/whatsapp/verify": ["post"],
        "/api/v1/integrations/llm/verify": ["post"],
        "/api/v1/integrations/payments/{provider}/verify": ["post"],
        "/api/v1/internal/integrations/{tenant_id}/whatsapp": ["get"],
        "/api/v1/internal/integrations/{tenant_id}/llm": ["get"],
        "/api/v1/internal/integrations/resolve-tenant/{phone_number_id}": ["get"],
        "/api/v1/internal/tenants": ["post"],
        "/api/v1/conversations/{conversation_id}/messages": ["get", "post"],
        "/api/v1/messages": ["post"],
        "/api/v1/templates": ["get"],
        "/api/v1/templates/sync": ["post"],
        "/api/v1/payments/links": ["post"],
    }
    for path, methods in expected.items():
        assert path in paths, path
        for method in methods:
            operation = paths[path][method]
            assert "401" in operation["responses"], (path, method)
            problem = operation["responses"]["401"]["content"]
            assert "application/problem+json" in problem, (path, method)
            assert operation.get("security"), (path, method)
            if method == "put":
                assert "requestBody" in operation
                assert "422" in operation["responses"]
    whatsapp = openapi["components"]["schemas"]["WhatsAppIntegrationUpdate"]["properties"]
    assert "paymentReceived" in str(whatsapp["templates"])  # the purposes mapping
    link = openapi["components"]["schemas"]["PaymentLinkCreate"]["properties"]
    assert "conversationId" in link
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["BearerAuth"]["scheme"] == "bearer"
    assert schemes["InternalKey"]["name"] == "X-Internal-Key"


def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(
    running_app, openapi
) -> None:
    _, client = running_app
    created = client.post(
        "/api/v1/internal/tenants", json={"name": "schemathesis"}, headers=INTERNAL_HEADERS
    )
    tenant_id = uuid.UUID(created.json()["id"])
    auth = {**bearer(token_for(tenant_id)), **INTERNAL_HEADERS}
    schema = schemathesis.openapi.from_dict(openapi)
    operations = [
        result.ok() for result in schema.get_all_operations() if result.ok().path.startswith(OURS)
    ]
    assert len(operations) >= 15

    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            if "tenant_id" in (case.path_parameters or {}) and case.path_parameters:
                case.path_parameters["tenant_id"] = str(tenant_id)  # a real one, mostly 200s
            kwargs = case.as_transport_kwargs(base_url="http://testserver.local", headers=auth)
            response = client.request(
                kwargs["method"],
                kwargs["url"],
                params=kwargs.get("params"),
                headers=kwargs.get("headers"),
                json=kwargs.get("json"),
                content=kwargs.get("data"),
            )
            if not response.request.url.path.startswith("/api/v1/internal/"):
                _LEDGER.saw_body(f"{case.method} {case.formatted_path}", response.text)
            case.validate_response(response, checks=CHECKS)

        try:
            exercise()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_the_schema_documents_metas_webhook_though_it_is_a_plain_asgi_route() -> None:
    app = create_app(Settings.from_env(TEST_ENV), service=object(), role="all")  # type: ignore[arg-type]

    with TestClient(app=app) as client:
        schema = client.get("/schema/openapi.json").json()

    webhook = schema["paths"]["/webhooks/whatsapp"]
    assert webhook["get"]["summary"] == "Meta's verification handshake"
    assert {p["name"] for p in webhook["get"]["parameters"]} == {
        "hub.mode",
        "hub.verify_token",
        "hub.challenge",
    }
    assert webhook["post"]["parameters"][0]["name"] == "x-hub-signature-256"
    assert set(webhook["post"]["responses"]) == {"200", "400", "401", "413", "503"}
    assert "/api/v1/internal/tenants" in schema["paths"]  # the generated paths are all there
