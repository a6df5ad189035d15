"""``GraphClient.message_templates``: every page of an account's templates, against the fake
Graph on a real port (paged as Meta pages) and a mock transport (the page cap, errors)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from changarrito.adapters.http import HttpClients
from changarrito.adapters.whatsapp import graph as graph_module
from changarrito.adapters.whatsapp.graph import GraphClient
from changarrito.domain.errors import ProviderAuthError, ProviderBadRequest, ProviderError
from changarrito.testing.upstream import FakeUpstream, json_response
from fakes.fake_graph import FakeGraph

TOKEN = "EAAtemplatesowntoken000000000000"
WABA = "102290129340398"


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    fake.start()
    fake.own(TOKEN, WABA)
    for n in range(7):
        fake.add_template(WABA, f"plantilla_{n}", quality="GREEN" if n == 0 else None)
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


async def test_every_page_is_read_with_the_after_cursor_until_no_next(graph, client) -> None:
    graph.template_page_size = 3
    before = len(graph.template_reads())
    try:
        listing = await client.message_templates(WABA, TOKEN)
    finally:
        graph.template_page_size = None

    assert listing.complete
    assert [t.name for t in listing.templates] == [f"plantilla_{n}" for n in range(7)]
    reads = graph.template_reads()[before:]
    assert len(reads) == 3
    queries = [parse_qs(urlsplit(r.path).query) for r in reads]
    assert "after" not in queries[0] and all("after" in q for q in queries[1:])
    assert all(q["limit"] == ["100"] and "components" in q["fields"][0] for q in queries)
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in reads)


async def test_a_template_is_read_as_meta_lists_it(graph, client) -> None:
    listing = await client.message_templates(WABA, TOKEN)

    first = listing.templates[0]
    assert (first.status, first.category, first.language, first.quality) == (
        "APPROVED",
        "UTILITY",
        "es_MX",
        "GREEN",
    )
    assert list(first.components) == [{"type": "BODY", "text": "Hola {{1}}"}]
    assert first.id.isdigit()


async def test_a_token_that_does_not_own_the_account_is_graphs_refusal(client) -> None:
    with pytest.raises(ProviderError) as refused:
        await client.message_templates(WABA, "EAAsomeoneelsestoken0000000")

    assert refused.value.provider_code == "100"
    assert not refused.value.retryable


async def test_an_account_id_that_is_not_one_is_refused_before_any_call(client) -> None:
    with pytest.raises(ProviderBadRequest):
        await client.message_templates("../me", TOKEN)


def paged(request: httpx.Request) -> httpx.Response:
    after = request.url.params.get("after", "0")
    nxt = str(int(after) + 1)
    body = {
        "data": [{"id": after, "name": f"t{after}", "language": "es", "status": "approved"}],
        "paging": {"cursors": {"after": nxt}, "next": f"https://elsewhere.test/?after={nxt}"},
    }
    return json_response(200, body)


async def test_the_listing_stops_at_the_page_cap_and_says_it_is_not_complete(monkeypatch) -> None:
    monkeypatch.setattr(graph_module, "MAX_TEMPLATE_PAGES", 4)
    upstream = FakeUpstream(paged)
    client = GraphClient(upstream.clients(), "https://graph.example.test", "v23.0")

    listing = await client.message_templates(WABA, TOKEN)

    assert not listing.complete
    assert [t.name for t in listing.templates] == ["t0", "t1", "t2", "t3"]
    assert listing.templates[0].status == "APPROVED"
    # The next page is asked of the Graph host with the cursor, never of the ``next`` URL.
    assert {r.url.host for r in upstream.requests} == {"graph.example.test"}


async def test_a_bad_token_is_an_auth_error_and_a_body_that_is_no_listing_a_bad_response() -> None:
    refusal = json_response(401, {"error": {"message": "Invalid OAuth access token", "code": 190}})
    client = GraphClient(FakeUpstream(refusal).clients(), "https://graph.example.test", "v23.0")
    with pytest.raises(ProviderAuthError):
        await client.message_templates(WABA, TOKEN)

    garbled = GraphClient(
        FakeUpstream(json_response(200, {"data": "x"})).clients(),
        "https://graph.example.test",
        "v23.0",
    )
    with pytest.raises(ProviderError) as bad:
        await garbled.message_templates(WABA, TOKEN)
    assert bad.value.retryable
