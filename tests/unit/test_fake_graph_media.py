"""The fake Graph's media (``tests/fakes/fake_graph.py``) with the real ``GraphClient``, on a
real port: what the integration and end-to-end suites rely on behaves as Meta's Media API
does (PROVIDERS.md 5.1), and the client's download rules hold against it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from changarrito.adapters.http import HttpClients
from changarrito.adapters.whatsapp.graph import GraphClient
from changarrito.domain.media import MAX_BYTES, MediaRefused, OutgoingMedia
from fakes._server import Answer
from fakes.fake_graph import FakeGraph, phone_number_id

TOKEN = "EAAfakegraphmediatoken0000000000"
PNID = "106540352242922"
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 64


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


async def test_an_added_item_is_downloaded_with_its_node_and_its_bytes(graph, client) -> None:
    item = graph.add_media("1037543291543636", PHOTO, "image/jpeg", token=TOKEN)

    got = await client.download_media(item.media_id, TOKEN, kind="image", phone_number_id=PNID)

    assert (got.content, got.mime_type, got.size) == (PHOTO, "image/jpeg", len(PHOTO))
    assert got.sha256 == hashlib.sha256(PHOTO).hexdigest()
    assert (graph.node_gets(item.media_id), graph.downloads(item.media_id)) == (1, 1)
    node = graph.recorded(lambda r: r.path.startswith(f"/{graph.version}/{item.media_id}"))[0]
    assert node.response["file_size"] == str(len(PHOTO))  # a string, as Meta's
    assert node.response["url"].startswith(f"{graph.url}/media-download/{item.media_id}?token=")
    download = graph.recorded(lambda r: r.path.startswith("/media-download/"))[0]
    assert download.headers["authorization"] == f"Bearer {TOKEN}"


async def test_the_node_and_the_download_want_the_items_bearer_token(graph, client) -> None:
    item = graph.add_media(None, PHOTO, "image/jpeg", token=TOKEN)

    with pytest.raises(Exception, match="no permission"):
        await client.download_media(item.media_id, "EAAsomeoneelse0000000", kind="image")
    anonymous = await client.http.get(graph.url).get(f"{graph.url}/v23.0/{item.media_id}")

    assert anonymous.status_code == 401
    assert graph.downloads(item.media_id) == 0


async def test_an_expired_link_is_asked_for_again_once(graph, client) -> None:
    item = graph.add_media(None, PHOTO, "image/png", token=TOKEN)
    graph.expire_downloads(item.media_id, 1)

    got = await client.download_media(item.media_id, TOKEN, kind="image")

    assert got.content == PHOTO
    assert (graph.node_gets(item.media_id), graph.downloads(item.media_id)) == (2, 2)


async def test_a_link_that_expires_twice_is_refused_as_expired(graph, client) -> None:
    item = graph.add_media(None, PHOTO, "image/png")
    graph.expire_downloads(item.media_id, 2)

    with pytest.raises(MediaRefused) as refused:
        await client.download_media(item.media_id, TOKEN, kind="image")

    assert refused.value.reason == "expired"
    assert (graph.node_gets(item.media_id), graph.downloads(item.media_id)) == (2, 2)


async def test_a_wrong_stated_hash_is_a_hash_mismatch(graph, client) -> None:
    item = graph.add_media(None, PHOTO, "image/jpeg")
    graph.state_wrong_hash(item.media_id)

    with pytest.raises(MediaRefused) as refused:
        await client.download_media(item.media_id, TOKEN, kind="image")

    assert refused.value.reason == "hash-mismatch"


async def test_more_bytes_than_the_node_stated_are_cut_off_while_streaming(graph, client) -> None:
    big = b"\xff\xd8\xff" + b"\x00" * MAX_BYTES["image"]
    item = graph.add_media(None, big, "image/jpeg")
    graph.state_size(item.media_id, 1000)

    with pytest.raises(MediaRefused) as refused:
        await client.download_media(item.media_id, TOKEN, kind="image")

    assert refused.value.reason == "too-large"
    assert graph.downloads(item.media_id) == 1


async def test_a_stated_size_over_the_limit_is_refused_before_downloading(graph, client) -> None:
    item = graph.add_media(None, PHOTO, "image/jpeg")
    graph.state_size(item.media_id, MAX_BYTES["image"] + 1)

    with pytest.raises(MediaRefused) as refused:
        await client.download_media(item.media_id, TOKEN, kind="image")

    assert refused.value.reason == "too-large"
    assert graph.downloads(item.media_id) == 0


async def test_an_upload_is_recorded_and_its_id_sends_and_downloads_the_same_bytes(
    graph, client
) -> None:
    media_id = await client.upload_media(PNID, TOKEN, PHOTO, "image/jpeg", "foto.jpg")
    wamid = await client.send_media(
        PNID, TOKEN, "5215512345678", OutgoingMedia("image", media_id=media_id, caption="Hoy")
    )

    [upload] = graph.uploads()
    assert (upload.phone_number_id, upload.token, upload.media_id) == (PNID, TOKEN, media_id)
    assert (upload.messaging_product, upload.type) == ("whatsapp", "image/jpeg")
    assert (upload.filename, upload.content_type, upload.content) == (
        "foto.jpg",
        "image/jpeg",
        PHOTO,
    )
    [sent] = graph.media_sends()
    assert wamid.startswith("wamid.FAKE")
    assert phone_number_id(sent) == PNID
    assert sent.body["image"] == {"id": media_id, "caption": "Hoy"}
    assert graph.sends() == []  # text sends stay apart
    back = await client.download_media(media_id, TOKEN, kind="image")
    assert back.content == PHOTO


async def test_a_scripted_upload_refusal_is_graphs_error(graph, client) -> None:
    graph.script_uploads(FakeGraph.error(131053, message="Media upload error"))

    with pytest.raises(Exception, match="Media upload error"):
        await client.upload_media(PNID, TOKEN, PHOTO, "image/jpeg", "foto.jpg")

    assert graph.uploads()[0].media_id is None


async def test_a_raw_answer_keeps_its_bytes_and_content_type(graph) -> None:
    graph.script_sends(Answer(200, content=b"\x00\x01binary", content_type="image/png"))

    async with httpx.AsyncClient() as http:
        response = await http.post(f"{graph.url}/v23.0/{PNID}/messages", json={"type": "text"})

    assert response.content == b"\x00\x01binary"
    assert response.headers["content-type"] == "image/png"
