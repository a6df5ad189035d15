"""Template sends through the conversations API, on real PostgreSQL and the real app, to the
fake Graph: checked against the synced template before anything reaches Meta, recorded with
their category and whether the window was closed; a text outside the window goes as the
shop's ``handoffReply`` template or is a 409; ``POST /api/v1/messages`` writes first.

The operator here allows only UTILITY and AUTHENTICATION templates from a tenant's own number
(``CHANGARRITO_TEMPLATE_CATEGORIES``), so a MARKETING one is refused.
"""

# The fixtures come from test_conversations_api (imported, then named as parameters).
# ruff: noqa: F811

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from test_conversations_api import (  # the same world: fake Graph, app, database
    API,
    app_service,  # noqa: F401
    conversation,
    db,  # noqa: F401
    graph,  # noqa: F401
    problem_type,
    unique_number,
    unique_phone,
)

from changarrito.settings import Settings
from conftest import TEST_ENV
from fakes.fake_graph import FakeGraph

PAGO = "pago_recibido"
BODY = "Hola {{1}}, recibimos tu pago de {{2}}. ¡Gracias!"


@pytest.fixture
def test_settings(graph: FakeGraph) -> Settings:
    env = {**TEST_ENV, "WHATSAPP_API_BASE_URL": graph.url}
    return Settings.from_env(env | {"CHANGARRITO_TEMPLATE_CATEGORIES": "utility,authentication"})


@pytest.fixture
def shop(app_client: AsyncTestClient[Any], make_tenant: Any, graph: FakeGraph) -> Any:
    """``await shop(templates=...)`` → a tenant with its own number and synced templates:
    ``(tenant_id, headers, phone_number_id, waba_id)``."""

    async def make(templates: dict[str, Any] | None = None) -> tuple[uuid.UUID, Any, str, str]:
        tenant_id, headers = await make_tenant("Tienda")
        number, waba = unique_number(), unique_number()
        token = f"EAAshop{uuid.uuid4().hex}"
        graph.own(token, waba, number)
        graph.add_template(waba, PAGO, components=[{"type": "BODY", "text": BODY}])
        promo = [{"type": "BODY", "text": "¡Oferta de la semana!"}]
        graph.add_template(waba, "promo", components=promo, category="MARKETING")
        body: dict[str, Any] = {
            "credentials": {
                "phoneNumberId": number,
                "businessAccountId": waba,
                "accessToken": token,
            }
        }
        if templates is not None:
            body["templates"] = templates
        put = await app_client.put("/api/v1/integrations/whatsapp", json=body, headers=headers)
        assert put.status_code == 200, put.text
        synced = await app_client.post("/api/v1/templates/sync", headers=headers)
        assert synced.status_code == 200, synced.text
        return tenant_id, headers, number, waba

    return make


def template(name: str = PAGO, parameters: Any = ("Ana", "$150.00 MXN")) -> dict[str, Any]:
    return {"type": "template", "name": name, "language": "es_MX", "parameters": list(parameters)}


async def test_a_template_goes_outside_the_window_and_is_recorded_with_its_category(
    app_client: AsyncTestClient[Any], shop: Any, db: psycopg.AsyncConnection[Any], graph: FakeGraph
) -> None:
    tenant_id, headers, number, _ = await shop()
    phone = unique_phone()
    cid = await conversation(db, number, tenant_id, phone=phone, last_wrote=timedelta(hours=25))
    graph.close_window(phone)

    response = await app_client.post(f"{API}/{cid}/messages", json=template(), headers=headers)

    assert response.status_code == 201, response.text
    message = response.json()
    assert message["type"] == "template"
    assert message["text"] == "Hola Ana, recibimos tu pago de $150.00 MXN. ¡Gracias!"
    assert message["template"] == {
        "name": PAGO,
        "language": "es_MX",
        "category": "UTILITY",
        "outsideWindow": True,
        "purpose": None,
    }
    [sent] = graph.template_sends()
    assert sent.body["template"] == {
        "name": PAGO,
        "language": {"code": "es_MX"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Ana"},
                    {"type": "text", "text": "$150.00 MXN"},
                ],
            }
        ],
    }
    cur = await db.execute(
        "SELECT tenant_id, phone_number_id, template_category, outside_window"
        " FROM whatsapp_outbound_messages WHERE wamid = %s",
        (message["wamid"],),
    )
    assert await cur.fetchone() == (tenant_id, number, "UTILITY", True)


async def test_a_template_webhook_pause_refuses_the_next_send_before_graph(
    app_client: AsyncTestClient[Any], shop: Any, db: psycopg.AsyncConnection[Any], graph: FakeGraph
) -> None:
    tenant_id, headers, number, waba = await shop()
    cid = await conversation(db, number, tenant_id)
    await db.execute(
        "UPDATE whatsapp_templates SET status = 'PAUSED' WHERE business_account_id = %s"
        " AND name = %s",
        (waba, PAGO),
    )

    response = await app_client.post(f"{API}/{cid}/messages", json=template(), headers=headers)

    assert response.status_code == 409, response.text
    assert problem_type(response) == "template-not-sendable"
    assert "PAUSED" in response.json()["detail"]
    assert graph.template_sends(accepted_only=False) == []


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (template(parameters=["Ana"]), 422, "template-parameters-invalid"),
        (template(parameters=["Ana", "$1", "extra"]), 422, "template-parameters-invalid"),
        (template(parameters=["Ana", "línea\nnueva"]), 422, "template-parameters-invalid"),
        (template(name="no_existe"), 404, "template-not-found"),
        (template(name="promo", parameters=[]), 409, "template-category-not-allowed"),
        ({**template(), "parameters": {"body": "no es lista"}}, 422, "template-parameters-invalid"),
    ],
)
async def test_a_template_send_that_does_not_fit_the_synced_template_is_refused_before_graph(
    app_client: AsyncTestClient[Any],
    shop: Any,
    db: psycopg.AsyncConnection[Any],
    graph: FakeGraph,
    body: dict[str, Any],
    status: int,
    kind: str,
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id)

    response = await app_client.post(f"{API}/{cid}/messages", json=body, headers=headers)

    assert response.status_code == status, response.text
    assert problem_type(response) == kind
    if status == 422:
        assert response.json()["errors"], response.text
    assert graph.template_sends(accepted_only=False) == []


async def test_a_text_outside_the_window_is_a_409_without_a_handoff_reply_template(
    app_client: AsyncTestClient[Any], shop: Any, db: psycopg.AsyncConnection[Any], graph: FakeGraph
) -> None:
    tenant_id, headers, number, _ = await shop()
    cid = await conversation(db, number, tenant_id, last_wrote=timedelta(hours=24, minutes=1))

    body = {"type": "text", "text": "¿Sigues interesado?"}
    response = await app_client.post(f"{API}/{cid}/messages", json=body, headers=headers)

    assert response.status_code == 409, response.text
    assert problem_type(response) == "window-closed"
    assert graph.sends(accepted_only=False) == []


async def test_a_text_outside_the_window_goes_as_the_shops_handoff_reply_template(
    app_client: AsyncTestClient[Any], shop: Any, db: psycopg.AsyncConnection[Any], graph: FakeGraph
) -> None:
    mapping = {
        "handoffReply": {"name": PAGO, "language": "es_MX", "parameters": ["customerName", "text"]}
    }
    tenant_id, headers, number, _ = await shop(templates=mapping)
    cid = await conversation(db, number, tenant_id, name="Ana", last_wrote=timedelta(days=2))

    body = {"type": "text", "text": "tu pedido"}
    response = await app_client.post(f"{API}/{cid}/messages", json=body, headers=headers)

    assert response.status_code == 201, response.text
    assert response.json()["template"]["purpose"] == "handoffReply"
    [sent] = graph.template_sends()
    values = [p["text"] for p in sent.body["template"]["components"][0]["parameters"]]
    assert values == ["Ana", "tu pedido"]
    shown = await app_client.get("/api/v1/integrations/whatsapp", headers=headers)
    assert shown.json()["config"]["templates"] == mapping

    # A PUT that only rotates the token keeps the mapping; an empty one clears it.
    credentials = {
        "phoneNumberId": number,
        "businessAccountId": shown.json()["config"]["businessAccountId"],
    }
    kept = await app_client.put(
        "/api/v1/integrations/whatsapp", json={"credentials": credentials}, headers=headers
    )
    assert kept.json()["config"]["templates"] == mapping
    cleared = await app_client.put(
        "/api/v1/integrations/whatsapp",
        json={"credentials": credentials, "templates": {}},
        headers=headers,
    )
    assert "templates" not in cleared.json()["config"]


@pytest.mark.parametrize(
    ("templates", "field"),
    [
        ({"paymentSent": {"name": PAGO, "language": "es_MX"}}, "templates.paymentSent"),
        ({"paymentReceived": {"name": "Pago Recibido", "language": "es_MX"}}, "name"),
        (
            {"paymentReceived": {"name": PAGO, "language": "es_MX", "parameters": ["total"]}},
            "parameters",
        ),
    ],
)
async def test_a_template_mapping_that_names_no_purpose_or_field_is_a_422(
    app_client: AsyncTestClient[Any], make_tenant: Any, graph: FakeGraph, templates: Any, field: str
) -> None:
    _, headers = await make_tenant("Tienda")
    number, waba, token = unique_number(), unique_number(), f"EAA{uuid.uuid4().hex}"
    graph.own(token, waba, number)
    body = {
        "credentials": {"phoneNumberId": number, "businessAccountId": waba, "accessToken": token},
        "templates": templates,
    }

    response = await app_client.put("/api/v1/integrations/whatsapp", json=body, headers=headers)

    assert response.status_code == 422, response.text
    assert any(field in e["field"] for e in response.json()["errors"]), response.text


async def test_a_shop_writes_first_to_a_new_customer_with_a_template(
    app_client: AsyncTestClient[Any], shop: Any, graph: FakeGraph
) -> None:
    _, headers, _, _ = await shop()
    phone = unique_phone()
    body = {"to": f"+{phone}", **template()}

    response = await app_client.post("/api/v1/messages", json=body, headers=headers)

    assert response.status_code == 201, response.text
    started = response.json()
    assert started["conversation"]["contact"]["phone"] == phone
    assert started["conversation"]["windowOpen"] is False
    assert started["message"]["template"]["outsideWindow"] is True
    [sent] = graph.template_sends()
    assert sent.body["to"] == f"+{phone}"
    listed = await app_client.get(
        f"{API}/{started['conversation']['id']}/messages", headers=headers
    )
    assert [m["type"] for m in listed.json()["data"]] == ["template"]

    again = await app_client.post("/api/v1/messages", json=body, headers=headers)
    assert again.json()["conversation"]["id"] == started["conversation"]["id"]


@pytest.mark.parametrize("to", ["hola", "+52", "US.", "+52 55 1234 5678 9999 0000"])
async def test_writing_first_to_something_that_is_not_a_phone_or_user_id_is_a_422(
    app_client: AsyncTestClient[Any], shop: Any, graph: FakeGraph, to: str
) -> None:
    _, headers, _, _ = await shop()

    response = await app_client.post(
        "/api/v1/messages", json={"to": to, **template()}, headers=headers
    )

    assert response.status_code == 422, response.text
    assert graph.template_sends(accepted_only=False) == []


async def test_a_tenant_on_the_platforms_number_cannot_write_first(
    app_client: AsyncTestClient[Any], make_tenant: Any, graph: FakeGraph
) -> None:
    _, headers = await make_tenant("Sin número")

    body = {"to": f"+{unique_phone()}", **template()}
    response = await app_client.post("/api/v1/messages", json=body, headers=headers)

    assert response.status_code == 409, response.text
    assert problem_type(response) == "no-own-whatsapp"
