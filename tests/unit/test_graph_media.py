"""Downloading a customer's media through Graph (issue 13, item 1), against a mock transport:
the node, Meta's limits checked before and while downloading, the allow-list, the SHA-256,
one fresh link when the first expired, and the token never sent off Meta's hosts."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from changarrito.adapters.whatsapp.graph import GraphClient
from changarrito.domain.media import MAX_BYTES, MediaRefused, Received, check_metadata
from changarrito.testing.upstream import FakeUpstream, json_response

TOKEN = "EAAGm0PX4ZCpsBAKZBmediatoken1234567890"
PNID = "106540352242922"
MEDIA = "1037543291543636"
VOICE = b"OggS" + bytes(range(256)) * 40
DOWNLOAD = "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1037543291543636"


def node(
    content: bytes = VOICE,
    *,
    mime: str = "audio/ogg; codecs=opus",
    url: str = DOWNLOAD,
    sha256: str | None = None,
    size: int | None = None,
) -> httpx.Response:
    return json_response(
        200,
        {
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": mime,
            "sha256": sha256 if sha256 is not None else hashlib.sha256(content).hexdigest(),
            "file_size": str(len(content) if size is None else size),
            "id": MEDIA,
        },
    )


def body(content: bytes = VOICE, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=content, headers={"Content-Type": "audio/ogg"})


def client(upstream: FakeUpstream) -> GraphClient:
    return GraphClient(upstream.clients(), "https://graph.example.test/", "v23.0")


async def test_a_voice_note_is_downloaded_with_the_numbers_token_and_its_hash_checked() -> None:
    upstream = FakeUpstream(node(), body())

    got = await client(upstream).download_media(MEDIA, TOKEN, kind="audio", phone_number_id=PNID)

    assert (got.content, got.mime_type, got.size) == (VOICE, "audio/ogg", len(VOICE))
    meta, download = upstream.requests
    assert str(meta.url) == f"https://graph.example.test/v23.0/{MEDIA}?phone_number_id={PNID}"
    assert meta.headers["authorization"] == download.headers["authorization"] == f"Bearer {TOKEN}"
    assert str(download.url) == DOWNLOAD


async def test_the_hash_webhooks_give_in_base64_is_accepted_too() -> None:
    stated = base64.b64encode(hashlib.sha256(VOICE).digest()).decode()
    upstream = FakeUpstream(node(sha256=stated), body())

    got = await client(upstream).download_media(MEDIA, TOKEN, kind="audio")

    assert got.content == VOICE


async def test_an_expired_link_is_asked_for_again_once() -> None:
    upstream = FakeUpstream(node(), body(b"", 404), node(), body())

    got = await client(upstream).download_media(MEDIA, TOKEN, kind="audio")

    assert got.content == VOICE and len(upstream.requests) == 4


async def test_a_link_that_expires_twice_is_refused() -> None:
    upstream = FakeUpstream(node(), body(b"", 404), node(), body(b"", 404))

    with pytest.raises(MediaRefused) as refused:
        await client(upstream).download_media(MEDIA, TOKEN, kind="audio")

    assert refused.value.reason == "expired" and len(upstream.requests) == 4


@pytest.mark.parametrize(
    ("kind", "mime", "size", "reason"),
    [
        ("image", "image/jpeg", 5 * 1024 * 1024 + 1, "too-large"),
        ("sticker", "image/webp", 500 * 1024 + 1, "too-large"),
        ("image", "image/svg+xml", 10, "type-not-allowed"),
        ("audio", "application/x-msdownload", 10, "type-not-allowed"),
        ("hologram", "image/png", 10, "unknown-type"),
    ],
)
async def test_metadata_over_the_limit_or_off_the_allow_list_is_refused_before_downloading(
    kind: str, mime: str, size: int, reason: str
) -> None:
    upstream = FakeUpstream(node(mime=mime, size=size), body())

    with pytest.raises(MediaRefused) as refused:
        await client(upstream).download_media(MEDIA, TOKEN, kind=kind)

    assert refused.value.reason == reason
    assert len(upstream.requests) == 1  # nothing downloaded


async def test_a_body_longer_than_its_metadata_said_is_cut_off_at_the_limit() -> None:
    big = b"\xff" * (5 * 1024 * 1024 + 10)
    upstream = FakeUpstream(node(big, mime="image/jpeg", size=1000), body(big))

    with pytest.raises(MediaRefused) as refused:
        await client(upstream).download_media(MEDIA, TOKEN, kind="image")

    assert refused.value.reason == "too-large"


async def test_bytes_that_do_not_match_the_stated_hash_are_refused() -> None:
    upstream = FakeUpstream(node(sha256=hashlib.sha256(b"other").hexdigest()), body())

    with pytest.raises(MediaRefused) as refused:
        await client(upstream).download_media(MEDIA, TOKEN, kind="audio")

    assert refused.value.reason == "hash-mismatch"


@pytest.mark.parametrize(
    "url",
    [
        "https://attacker.example/steal",
        "http://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
        "https://fbsbx.com.attacker.example/x",
    ],
)
async def test_the_token_is_never_sent_to_a_download_link_off_metas_hosts(url: str) -> None:
    upstream = FakeUpstream(node(url=url), body())

    with pytest.raises(MediaRefused) as refused:
        await client(upstream).download_media(MEDIA, TOKEN, kind="audio")

    assert refused.value.reason == "untrusted-host"
    assert len(upstream.requests) == 1


async def test_a_media_id_that_is_not_graphs_is_refused_without_a_call() -> None:
    upstream = FakeUpstream(node())

    with pytest.raises(Exception, match="not a WhatsApp media id"):
        await client(upstream).download_media("../../me", TOKEN, kind="audio")

    assert upstream.requests == []


@given(
    st.sampled_from(sorted(MAX_BYTES)),
    st.lists(st.integers(min_value=0, max_value=300_000), max_size=40),
)
def test_bytes_are_refused_exactly_when_they_pass_the_types_limit(
    kind: str, chunks: list[int]
) -> None:
    limit = MAX_BYTES[kind]
    received = Received(kind, limit)
    total = 0
    for size in chunks:
        total += size
        if total > limit:
            with pytest.raises(MediaRefused):
                received.add(b"x" * size)
            return
        received.add(b"x" * size)
    assert received.size == total <= limit


def test_the_stated_size_at_the_limit_is_accepted_and_one_byte_more_is_not() -> None:
    assert check_metadata("image", "image/png", 5 * 1024 * 1024) == 5 * 1024 * 1024
    with pytest.raises(MediaRefused):
        check_metadata("image", "image/png", 5 * 1024 * 1024 + 1)
