"""Template sends with the real ``GraphClient`` against the fake Graph on a real port: the
wire body Meta documents, the fake's customer-service window (131047 for anything but a
template once it is closed) and Graph's template errors, which come back final."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from changarrito.adapters.http import HttpClients
from changarrito.adapters.whatsapp.graph import MAX_CALLBACK_DATA_CHARS, GraphClient
from changarrito.domain.errors import FinalProviderError, ProviderBadRequest
from changarrito.domain.media import OutgoingMedia
from fakes._server import Answer
from fakes.fake_graph import FakeGraph, phone_number_id

TOKEN = "EAAfakegraphtemplatetoken000000000"
PNID = "106540352242922"
WABA = "102290129340398"
PHONE = "+5215512345678"
BSUID = "MX.1a2B3c4D5e6F7g8H"
ORDER_READY = [{"type": "BODY", "text": "Hola {{1}}, tu pedido {{2}} está listo."}]
BODY = [
    {
        "type": "body",
        "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "A-17"}],
    }
]


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def client(graph: FakeGraph) -> AsyncIterator[GraphClient]:
    http = HttpClients(transport=httpx.AsyncHTTPTransport())
    try:
        yield GraphClient(http, graph.url, graph.version)
    finally:
        await http.aclose()


async def send(client: GraphClient, name: str = "pedido_listo", **kwargs: Any) -> str:
    kwargs.setdefault("components", BODY)
    kwargs.setdefault("language", "es_MX")
    to = kwargs.pop("to", PHONE)
    return await client.send_template(PNID, TOKEN, to, name, **kwargs)


async def test_a_template_goes_on_the_wire_exactly_as_meta_documents_it(graph, client) -> None:
    graph.add_template(WABA, "pedido_listo", "es_MX", components=ORDER_READY)

    wamid = await send(client)

    [sent] = graph.template_sends()
    assert sent.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": PHONE,
        "type": "template",
        "template": {
            "name": "pedido_listo",
            "language": {"code": "es_MX"},
            "components": BODY,
        },
    }
    assert wamid == sent.response["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert phone_number_id(sent) == PNID
    assert graph.sends(accepted_only=False) == []  # ``sends()`` stays text messages only


async def test_a_template_without_components_sends_no_components_member(graph, client) -> None:
    graph.add_template(WABA, "hello_world", "en_US", components=[{"type": "BODY", "text": "Hi"}])

    await send(client, "hello_world", language="en_US", components=[])

    [sent] = graph.template_sends()
    assert sent.body["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


async def test_a_phone_number_without_its_plus_is_sent_with_it(graph, client) -> None:
    graph.add_template(WABA, "pedido_listo", components=ORDER_READY)

    await send(client, to=PHONE.removeprefix("+"))

    [sent] = graph.template_sends()
    assert sent.body["to"] == PHONE


async def test_a_business_scoped_user_id_goes_in_recipient(graph, client) -> None:
    graph.add_template(WABA, "pedido_listo", components=ORDER_READY)

    await send(client, to=BSUID)

    [sent] = graph.template_sends()
    assert sent.body["recipient"] == BSUID
    assert "to" not in sent.body


async def test_callback_data_is_sent_as_biz_opaque_callback_data(graph, client) -> None:
    graph.add_template(WABA, "pedido_listo", components=ORDER_READY)

    await send(client, callback_data="order:A-17")
    await send(client, callback_data="x" * MAX_CALLBACK_DATA_CHARS)

    first, longest = graph.template_sends()
    assert first.body["biz_opaque_callback_data"] == "order:A-17"
    assert longest.body["biz_opaque_callback_data"] == "x" * 512
    await send(client)
    assert "biz_opaque_callback_data" not in graph.template_sends()[-1].body


async def test_callback_data_over_512_characters_is_refused_before_any_request(
    graph, client
) -> None:
    graph.add_template(WABA, "pedido_listo", components=ORDER_READY)

    with pytest.raises(ProviderBadRequest, match="512"):
        await send(client, callback_data="x" * 513)

    assert graph.requests == []


async def test_a_closed_window_refuses_text_with_131047_but_lets_a_template_through(
    graph, client
) -> None:
    graph.add_template(WABA, "pedido_listo", components=ORDER_READY)
    graph.close_window(PHONE.removeprefix("+"))  # the same recipient, without its "+"

    with pytest.raises(FinalProviderError) as refused:
        await client.send_text(PNID, TOKEN, PHONE, "¿Sigue ahí?")
    wamid = await send(client)

    assert refused.value.provider_code == "131047"
    assert refused.value.status == 400
    assert not refused.value.retryable
    assert "24 hours" in refused.value.message
    [text] = graph.sends(accepted_only=False)
    assert text.response["error"]["message"] == "(#131047) Re-engagement message"
    assert text.response["error"]["error_data"]["details"] == (
        "Message failed to send because more than 24 hours have passed since the customer"
        " last replied to this number."
    )
    assert [s.response["messages"][0]["id"] for s in graph.template_sends()] == [wamid]


async def test_a_closed_window_refuses_media_too_and_opening_it_lets_text_through(
    graph, client
) -> None:
    graph.close_window(BSUID)
    picture = OutgoingMedia(kind="image", link="https://shop.example.mx/a.jpg")

    with pytest.raises(FinalProviderError) as refused:
        await client.send_media(PNID, TOKEN, BSUID, picture)
    graph.open_window(BSUID)
    await client.send_text(PNID, TOKEN, BSUID, "Hola de nuevo")
    await client.send_text(PNID, TOKEN, PHONE, "Otro cliente, su ventana abierta")

    assert refused.value.provider_code == "131047"
    assert graph.media_sends() == []
    assert len(graph.sends()) == 2


async def test_scripted_answers_come_before_the_window_and_the_templates(graph, client) -> None:
    graph.close_window(PHONE)
    graph.script_sends(Answer(200, {"messages": [{"id": "wamid.SCRIPTED"}]}))

    assert await client.send_text(PNID, TOKEN, PHONE, "Hola") == ["wamid.SCRIPTED"]
    graph.script_sends(Answer(200, {"messages": [{"id": "wamid.SCRIPTED2"}]}))
    assert await send(client, "no_such_template") == "wamid.SCRIPTED2"


@pytest.mark.parametrize(
    ("setup", "name", "language", "code", "status"),
    [
        ("none", "pedido_listo", "es_MX", "132001", 404),
        ("approved", "otro_nombre", "es_MX", "132001", 404),
        ("approved", "pedido_listo", "en_US", "132001", 404),
        ("PENDING", "pedido_listo", "es_MX", "132001", 404),
        ("REJECTED", "pedido_listo", "es_MX", "132001", 404),
        ("PAUSED", "pedido_listo", "es_MX", "132015", 400),
        ("DISABLED", "pedido_listo", "es_MX", "132016", 400),
    ],
)
async def test_a_template_graph_cannot_send_comes_back_final_with_its_code(
    graph, client, setup, name, language, code, status
) -> None:
    if setup != "none":
        state = "APPROVED" if setup == "approved" else setup
        graph.add_template(WABA, "pedido_listo", "es_MX", components=ORDER_READY, status=state)

    with pytest.raises(ProviderBadRequest) as refused:
        await send(client, name, language=language)

    assert isinstance(refused.value, FinalProviderError)
    assert not refused.value.retryable
    assert (refused.value.provider_code, refused.value.status) == (code, status)
    assert graph.template_sends() == []
    assert len(graph.template_sends(accepted_only=False)) == 1


async def test_the_missing_template_error_reads_as_metas(graph, client) -> None:
    with pytest.raises(ProviderBadRequest, match="Template name does not exist in the translation"):
        await send(client)


@pytest.mark.parametrize("count", [0, 1, 3])
async def test_a_body_with_the_wrong_number_of_parameters_is_132000(graph, client, count) -> None:
    graph.add_template(WABA, "pedido_listo", components=ORDER_READY)
    parameters = [{"type": "text", "text": str(n)} for n in range(count)]
    components = [{"type": "body", "parameters": parameters}] if count else []

    with pytest.raises(ProviderBadRequest) as refused:
        await send(client, components=components)

    assert refused.value.provider_code == "132000"
    assert not refused.value.retryable
    assert graph.template_sends() == []


async def test_named_placeholders_count_once_each(graph, client) -> None:
    text = "Hola {{nombre}}, {{nombre}}: tu pedido {{ pedido }} está listo."
    graph.add_template(WABA, "pedido_nombrado", components=[{"type": "BODY", "text": text}])
    named = [
        {"type": "text", "parameter_name": "nombre", "text": "Ana"},
        {"type": "text", "parameter_name": "pedido", "text": "A-17"},
    ]

    await send(client, "pedido_nombrado", components=[{"type": "body", "parameters": named}])

    assert len(graph.template_sends()) == 1


async def test_a_number_in_an_account_sends_only_that_accounts_templates(graph, client) -> None:
    other = "109999999999999"
    graph.own(TOKEN, WABA, PNID)
    graph.add_template(other, "de_otra_cuenta", components=ORDER_READY)
    graph.add_template(WABA, "pedido_listo", components=ORDER_READY)

    with pytest.raises(ProviderBadRequest) as refused:
        await send(client, "de_otra_cuenta")
    await send(client, "pedido_listo")

    assert refused.value.provider_code == "132001"
    assert [s.body["template"]["name"] for s in graph.template_sends()] == ["pedido_listo"]


@pytest.mark.parametrize(
    ("code", "status"),
    [(132000, 400), (132001, 404), (132015, 400), (132016, 400), (131047, 400)],
)
async def test_re_engagement_and_template_errors_are_classified_final(
    graph, client, code, status
) -> None:
    graph.script_sends(FakeGraph.error(code, status, "scripted refusal"))

    with pytest.raises(FinalProviderError) as refused:
        await send(client)

    assert not refused.value.retryable
    assert refused.value.provider_code == str(code)
