"""Uploading and sending pictures and documents through Graph, against a mock transport: the
wire Meta documents (PROVIDERS.md 5.1: multipart upload with ``messaging_product``, ``type``
and ``file``; ``image``/``document`` bodies by ``id`` or ``link``, caption, filename), Graph's
refusals classified like a text's, and each call counted."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from changarrito.adapters.whatsapp.graph import GraphClient
from changarrito.domain.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderTimeout,
    RetryableProviderError,
)
from changarrito.domain.media import OutgoingMedia
from changarrito.testing.upstream import FakeUpstream, json_response

TOKEN = "EAAGm0PX4ZCpsBAKZBsendmediatoken12345"
PNID = "106540352242922"
INBOUND = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
PDF = b"%PDF-1.7\n" + b"0" * 500
GRAPH = "https://graph.example.test"


class Counted:
    """What the client reports to the metrics (``Metrics.graph_call``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str | None]] = []

    def graph_call(self, kind: str, error: BaseException | None, code: str | None) -> None:
        self.calls.append((kind, type(error).__name__ if error else None, code))


def sent(wamid: str = "wamid.MEDIA1") -> httpx.Response:
    return json_response(
        200,
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": "+5215512345678", "wa_id": "5215512345678"}],
            "messages": [{"id": wamid}],
        },
    )


def graph_error(code: int, status: int = 400, message: str = "boom") -> httpx.Response:
    return json_response(
        status, {"error": {"message": message, "type": "OAuthException", "code": code}}
    )


def client(upstream: FakeUpstream, metrics: Counted | None = None) -> GraphClient:
    return GraphClient(upstream.clients(), f"{GRAPH}/", "v23.0", metrics=metrics)  # type: ignore[arg-type]


async def test_an_upload_is_a_multipart_post_to_the_numbers_media_edge() -> None:
    upstream = FakeUpstream(json_response(200, {"id": "1013859600285441"}))
    metrics = Counted()

    media_id = await client(upstream, metrics).upload_media(
        PNID, TOKEN, PDF, "application/pdf", "ticket.pdf"
    )

    assert media_id == "1013859600285441"
    request = upstream.last
    assert request.method == "POST"
    assert str(request.url) == f"{GRAPH}/v23.0/{PNID}/media"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    form = upstream.last_form()
    assert form.fields == {"messaging_product": "whatsapp", "type": "application/pdf"}
    file = form.files["file"]
    assert (file.filename, file.content_type, file.data) == ("ticket.pdf", "application/pdf", PDF)
    assert metrics.calls == [("upload", None, None)]


async def test_a_picture_goes_by_its_uploaded_id_with_its_caption_quoting_a_message() -> None:
    upstream = FakeUpstream(sent("wamid.PIC"))
    media = OutgoingMedia("image", media_id="1013859600285441", caption="Así quedó 🎂")

    wamid = await client(upstream).send_media(PNID, TOKEN, "5215512345678", media, INBOUND)

    assert wamid == "wamid.PIC"
    assert str(upstream.last.url) == f"{GRAPH}/v23.0/{PNID}/messages"
    assert upstream.last.headers["content-type"] == "application/json"
    assert upstream.last_json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+5215512345678",
        "type": "image",
        "image": {"id": "1013859600285441", "caption": "Así quedó 🎂"},
        "context": {"message_id": INBOUND},
    }


async def test_a_document_goes_by_link_with_its_filename_and_no_context_unless_quoting() -> None:
    upstream = FakeUpstream(sent())
    media = OutgoingMedia(
        "document", link="https://shop.example.mx/menu.pdf", filename="menu.pdf", caption=None
    )

    await client(upstream).send_media(PNID, TOKEN, "US.13491208655302741918", media)

    body: dict[str, Any] = upstream.last_json()
    assert body["recipient"] == "US.13491208655302741918"  # a business-scoped user id
    assert body["type"] == "document"
    assert body["document"] == {"link": "https://shop.example.mx/menu.pdf", "filename": "menu.pdf"}
    assert "context" not in body


async def test_a_pictures_filename_is_not_sent_meta_has_none_for_it() -> None:
    upstream = FakeUpstream(sent())
    media = OutgoingMedia("image", link="https://shop.example.mx/a.png", filename="a.png")

    await client(upstream).send_media(PNID, TOKEN, "5215512345678", media)

    assert upstream.last_json()["image"] == {"link": "https://shop.example.mx/a.png"}


@pytest.mark.parametrize(
    "media",
    [
        OutgoingMedia("image"),
        OutgoingMedia("image", media_id="1", link="https://shop.example.mx/a.png"),
        OutgoingMedia("image", media_id="../../me"),
        OutgoingMedia("audio", media_id="1"),  # type: ignore[arg-type]
        OutgoingMedia("image", media_id="1", caption="x" * 1025),
    ],
)
async def test_a_media_message_graph_would_refuse_is_refused_without_a_call(
    media: OutgoingMedia,
) -> None:
    upstream = FakeUpstream(sent())

    with pytest.raises(ProviderBadRequest):
        await client(upstream).send_media(PNID, TOKEN, "5215512345678", media)

    assert upstream.requests == []


async def test_a_phone_number_id_that_is_not_graphs_is_refused_without_an_upload() -> None:
    upstream = FakeUpstream(json_response(200, {"id": "1"}))

    with pytest.raises(ProviderBadRequest):
        await client(upstream).upload_media("../me", TOKEN, PDF, "application/pdf", "a.pdf")

    assert upstream.requests == []


@pytest.mark.parametrize(
    ("answer", "error", "retryable"),
    [
        (graph_error(190, 401, "Invalid OAuth access token"), ProviderAuthError, False),
        (graph_error(131053, 400, "Media upload error"), ProviderError, False),
        (graph_error(130429, 400, "Rate limit hit"), RetryableProviderError, True),
        (httpx.ReadTimeout, ProviderTimeout, True),
    ],
)
async def test_upload_refusals_are_classified_like_a_texts_and_counted(
    answer: Any, error: type[ProviderError], retryable: bool
) -> None:
    upstream = FakeUpstream(answer)
    metrics = Counted()

    with pytest.raises(error) as raised:
        await client(upstream, metrics).upload_media(PNID, TOKEN, PDF, "application/pdf", "a.pdf")

    assert raised.value.retryable is retryable
    assert TOKEN not in raised.value.message
    assert [(kind, name) for kind, name, _ in metrics.calls] == [
        ("upload", type(raised.value).__name__)
    ]


async def test_an_upload_answer_without_an_id_is_a_provider_error() -> None:
    upstream = FakeUpstream(json_response(200, {"id": ""}))

    with pytest.raises(ProviderError, match="no media id"):
        await client(upstream).upload_media(PNID, TOKEN, PDF, "application/pdf", "a.pdf")


async def test_a_media_send_graph_refuses_is_classified_and_counted_as_a_message() -> None:
    upstream = FakeUpstream(graph_error(131047, 400, "Re-engagement message"))
    metrics = Counted()
    media = OutgoingMedia("image", media_id="1013859600285441")

    with pytest.raises(ProviderError) as raised:
        await client(upstream, metrics).send_media(PNID, TOKEN, "5215512345678", media)

    assert raised.value.provider_code == "131047"
    assert metrics.calls == [("message", type(raised.value).__name__, "131047")]


async def test_a_media_send_without_a_wamid_in_the_answer_is_a_provider_error() -> None:
    upstream = FakeUpstream(json_response(200, {"messaging_product": "whatsapp", "messages": []}))

    with pytest.raises(ProviderError, match="no message id"):
        await client(upstream).send_media(
            PNID, TOKEN, "5215512345678", OutgoingMedia("image", media_id="1")
        )
