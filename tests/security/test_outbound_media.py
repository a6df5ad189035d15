"""Pictures and documents the shop sends, tried as an attacker (the issue's item on outbound
media).

HTTP in, observable effect out: ``POST /api/v1/conversations/{id}/messages`` with a tenant
JWT, by link (JSON) or uploaded (``multipart/form-data``); what comes out is the problem the
API answers and what the fake Graph (on a real port) received: for every refusal, no upload,
no message, and no row in the conversation.

- A link is tenant input that Meta will fetch: only ``https``, a public host *name* (no IP
  literal in any spelling, no ``localhost`` or ``.local``/``.internal`` names), no user name
  or password, no port but 443, at most 2,048 characters (``media-link-refused``).
- A document's name is a plain file name (``media-filename-refused``); a caption is at most
  1,024 characters (``caption-too-long``).
- An upload's bytes are checked, not its declared type: an HTML page declared ``image/png``
  is ``media-content-mismatch``; a type WhatsApp does not take is ``media-type-not-allowed``;
  past the service's body limit it is a 413 ``body-too-large`` that says to send a link.
- Another tenant's conversation is a 404, whatever the body.

The fixtures are self-contained (a ``tests/security`` run does not load the integration
suite's conftest): the service on the session's test database (``database_url``, from
``tests/conftest.py``), the whole app in front of it.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.http import HttpClients
from changarrito.adapters.tokens import issue_token
from changarrito.bootstrap import Database, Service, bootstrap
from changarrito.entrypoints.http.app import MAX_BODY_BYTES, create_app
from changarrito.settings import Settings
from fakes.fake_graph import FakeGraph

JWT_SECRET = "outbound-media-jwt-secret-0123456789abcdef012"
INTERNAL = {"X-Internal-Key": "outbound-media-internal-key-0123456789"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
PDF = b"%PDF-1.7\n" + bytes(64)
HTML = b"<!DOCTYPE html><html><body><script>fetch('/steal')</script></body></html>"


def new_id() -> str:
    return str(random.randrange(10**14, 10**15))


@dataclass
class World:
    client: httpx.AsyncClient
    graph: FakeGraph
    service: Service
    db: psycopg.AsyncConnection[Any]

    async def shop(self) -> tuple[dict[str, str], str]:
        """A tenant with its own confirmed number and a conversation inside the window:
        ``(its bearer headers, the conversation id)``."""
        created = await self.client.post(
            "/api/v1/internal/tenants", json={"name": "Tienda"}, headers=INTERNAL
        )
        tenant_id = uuid.UUID(created.json()["id"])
        token = issue_token(
            JWT_SECRET, tenant_id, timedelta(hours=1), subject=f"user-of-{tenant_id}"
        )
        headers = {"Authorization": f"Bearer {token}"}
        number, waba, access = new_id(), new_id(), f"EAAmedia{uuid.uuid4().hex}"
        self.graph.own(access, waba, number)
        claimed = await self.client.put(
            "/api/v1/integrations/whatsapp",
            json={
                "credentials": {
                    "phoneNumberId": number,
                    "businessAccountId": waba,
                    "accessToken": access,
                }
            },
            headers=headers,
        )
        assert claimed.status_code == 200 and claimed.json()["isVerified"], claimed.text
        cur = await self.db.execute(
            "SELECT changarrito_conversation(%s, %s, %s, NULL, 'Ana', %s, true)",
            (number, tenant_id, f"52155{random.randrange(10**7, 10**8)}", _minutes_ago(5)),
        )
        found = await cur.fetchone()
        assert found is not None
        return headers, str(found[0])

    async def send(self, headers: dict[str, str], cid: str, **request: Any) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/conversations/{cid}/messages", headers=headers, **request
        )

    async def nothing_went_out(self, cid: str) -> None:
        assert self.graph.uploads() == []
        assert self.graph.media_sends(accepted_only=False) == []
        assert self.graph.sends(accepted_only=False) == []
        cur = await self.db.execute(
            "SELECT count(*) FROM whatsapp_outbound_messages WHERE conversation_id = %s", (cid,)
        )
        assert await cur.fetchone() == (0,)


def _minutes_ago(minutes: int) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def problem_type(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), (
        response.status_code,
        response.text,
    )
    return str(response.json()["type"]).rsplit("/", 1)[-1]


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    # Its wamids start where no other test's did: they are unique in the shared database.
    fake._ids = itertools.count(random.randrange(10**8, 10**12))
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def world(database_url: str, graph: FakeGraph) -> AsyncIterator[World]:
    env = {
        "WHATSAPP_ACCESS_TOKEN": "EAAmediaplatformtoken000000000000",
        "WHATSAPP_PHONE_NUMBER_ID": new_id(),
        "WHATSAPP_API_BASE_URL": graph.url,
        "JWT_SECRET": JWT_SECRET,
        "INTERNAL_API_KEY": INTERNAL["X-Internal-Key"],
    }
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    service = await bootstrap(
        Settings.from_env(env),
        Database(database_url, KeyRing.generate("outbound-media")),
        role="backend",
        listen=False,
        check_keys=False,
        http=HttpClients(transport=transport),
    )
    app = create_app(service.settings, service=service, role="backend")
    app.state.service = service  # httpx's ASGI transport runs no lifespan
    try:
        async with (
            await psycopg.AsyncConnection.connect(database_url, autocommit=True) as db,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client,
        ):
            yield World(client, graph, service, db)
    finally:
        await service.aclose()


@pytest.mark.parametrize(
    "link",
    [
        "http://tienda.example.mx/a.png",  # not https
        "javascript:alert(1)",
        "file:///etc/passwd",
        "data:image/png;base64,iVBORw0KGgo=",
        "ftp://tienda.example.mx/a.png",
        "https://127.0.0.1/a.png",
        "https://[::1]/a.png",
        "https://[::ffff:127.0.0.1]/a.png",
        "https://169.254.169.254/latest/meta-data/",
        "https://2130706433/a.png",  # 127.0.0.1 as one number
        "https://0x7f.1/a.png",
        "https://127.1/a.png",
        "https://localhost/a.png",
        "https://LOCALHOST./a.png",
        "https://printer.local/a.png",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://api.localhost/a.png",
        "https://user:secret@tienda.example.mx/a.png",
        "https://tienda.example.mx@attacker.example/a.png",
        "https://tienda.example.mx:8443/a.png",
        "https://tienda.example.mx/a b.png",
        "https://tienda.example.mx/\r\nX-Injected: 1",
        "https:///a.png",
        "https://tienda.example.mx/" + "a" * 2048,
        "",
    ],
)
async def test_a_link_off_the_public_https_web_is_refused_and_nothing_is_sent(
    world: World, link: str
) -> None:
    headers, cid = await world.shop()

    response = await world.send(headers, cid, json={"type": "image", "link": link})

    assert response.status_code == 422, response.text
    assert problem_type(response) == "media-link-refused"
    assert response.json()["errors"][0]["field"] == "link"
    await world.nothing_went_out(cid)


async def test_a_public_https_link_with_a_host_name_goes_to_graph_as_given(world: World) -> None:
    headers, cid = await world.shop()
    link = "https://cdn.tienda.example.mx:443/fotos/pastel.png?size=large#top"

    response = await world.send(headers, cid, json={"type": "image", "link": link})

    assert response.status_code == 201, response.text
    [send] = world.graph.media_sends()
    assert send.body["image"] == {"link": link}


@pytest.mark.parametrize(
    "filename",
    ["../../etc/passwd", "..\\..\\boot.ini", "folder/factura.pdf", "..", "factura\x00.pdf"],
)
async def test_a_documents_filename_with_a_path_is_refused_by_link_and_by_upload(
    world: World, filename: str
) -> None:
    headers, cid = await world.shop()

    by_link = await world.send(
        headers,
        cid,
        json={"type": "document", "link": "https://tienda.example.mx/f.pdf", "filename": filename},
    )
    uploaded = await world.send(
        headers,
        cid,
        data={"type": "document", "filename": filename},
        files={"file": ("f.pdf", PDF, "application/pdf")},
    )

    assert by_link.status_code == uploaded.status_code == 422, (by_link.text, uploaded.text)
    assert problem_type(by_link) == problem_type(uploaded)
    assert problem_type(by_link) == "media-filename-refused"
    await world.nothing_went_out(cid)


async def test_an_uploaded_files_own_name_with_a_path_is_refused_for_a_document(
    world: World,
) -> None:
    headers, cid = await world.shop()

    response = await world.send(
        headers,
        cid,
        data={"type": "document"},
        files={"file": ("../../../var/www/index.pdf", PDF, "application/pdf")},
    )

    assert response.status_code == 422, response.text
    assert problem_type(response) == "media-filename-refused"
    await world.nothing_went_out(cid)


async def test_an_html_page_declared_a_png_is_refused_for_its_bytes(world: World) -> None:
    headers, cid = await world.shop()

    response = await world.send(
        headers, cid, data={"type": "image"}, files={"file": ("cat.png", HTML, "image/png")}
    )

    assert response.status_code == 422, response.text
    assert problem_type(response) == "media-content-mismatch"
    await world.nothing_went_out(cid)


@pytest.mark.parametrize(
    ("kind", "file", "expected"),
    [
        (
            "image",
            ("cat.svg", b"<svg onload=alert(1)/>", "image/svg+xml"),
            "media-type-not-allowed",
        ),
        ("image", ("cat.html", HTML, "text/html"), "media-type-not-allowed"),
        ("image", ("x.bin", HTML, "application/octet-stream"), "media-type-not-allowed"),
        (
            "document",
            ("run.exe", b"MZ\x90\x00", "application/x-msdownload"),
            "media-type-not-allowed",
        ),
        ("document", ("f.pdf", HTML, "application/pdf"), "media-content-mismatch"),
        ("document", ("factura.pdf.exe", PDF, "application/pdf"), "media-content-mismatch"),
        ("document", ("notes.txt", b"MZ\x00\x00binary", "text/plain"), "media-content-mismatch"),
        ("image", ("empty.png", b"", "image/png"), "media-content-mismatch"),
        ("image", ("photo.jpg", PNG, "image/jpeg"), "media-content-mismatch"),  # a PNG, not JPEG
    ],
)
async def test_an_upload_whose_bytes_are_not_what_whatsapp_takes_is_refused(
    world: World, kind: str, file: tuple[str, bytes, str], expected: str
) -> None:
    headers, cid = await world.shop()

    response = await world.send(headers, cid, data={"type": kind}, files={"file": file})

    assert response.status_code == 422, response.text
    assert problem_type(response) == expected
    await world.nothing_went_out(cid)


async def test_an_upload_past_the_services_body_limit_is_a_413_that_says_to_send_a_link(
    world: World,
) -> None:
    headers, cid = await world.shop()
    big = b"\x89PNG\r\n\x1a\n" + bytes(MAX_BODY_BYTES)

    response = await world.send(
        headers, cid, data={"type": "image"}, files={"file": ("big.png", big, "image/png")}
    )

    assert response.status_code == 413, response.text
    assert problem_type(response) == "body-too-large"
    assert "link" in response.json()["detail"]
    await world.nothing_went_out(cid)


async def test_a_chunked_upload_past_the_limit_is_cut_off_with_the_same_413(world: World) -> None:
    headers, cid = await world.shop()
    boundary = "attackerboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nimage\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    async def body() -> AsyncIterator[bytes]:  # no Content-Length: the size is only streamed
        yield head + b"\x89PNG\r\n\x1a\n"
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield bytes(65536)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await world.send(
        {**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        cid,
        content=body(),
    )

    assert response.status_code == 413, response.text
    assert problem_type(response) == "body-too-large"
    await world.nothing_went_out(cid)


async def test_another_tenants_conversation_is_a_404_and_nothing_reaches_graph(
    world: World,
) -> None:
    _, victims = await world.shop()
    attacker, _ = await world.shop()

    by_link = await world.send(
        attacker, victims, json={"type": "image", "link": "https://tienda.example.mx/a.png"}
    )
    uploaded = await world.send(
        attacker, victims, data={"type": "image"}, files={"file": ("a.png", PNG, "image/png")}
    )
    read = await world.client.get(f"/api/v1/conversations/{victims}/messages", headers=attacker)

    for response in (by_link, uploaded, read):
        assert response.status_code == 404, response.text
        assert problem_type(response) == "conversation-not-found"
    await world.nothing_went_out(victims)


async def test_a_caption_over_1024_characters_is_refused_by_link_and_by_upload(
    world: World,
) -> None:
    headers, cid = await world.shop()
    caption = "ñ" * 1025

    by_link = await world.send(
        headers,
        cid,
        json={"type": "image", "link": "https://tienda.example.mx/a.png", "caption": caption},
    )
    uploaded = await world.send(
        headers,
        cid,
        data={"type": "image", "caption": caption},
        files={"file": ("a.png", PNG, "image/png")},
    )
    at_limit = await world.send(
        headers,
        cid,
        json={"type": "image", "link": "https://tienda.example.mx/a.png", "caption": "ñ" * 1024},
    )

    for response in (by_link, uploaded):
        assert response.status_code == 422, response.text
        assert problem_type(response) == "caption-too-long"
    assert at_limit.status_code == 201, at_limit.text
    assert world.graph.uploads() == []
    [sent] = world.graph.media_sends()
    assert sent.body["image"]["caption"] == "ñ" * 1024


async def test_a_caption_postgres_cannot_store_is_a_422_not_a_500(world: World) -> None:
    headers, cid = await world.shop()

    response = await world.send(
        headers,
        cid,
        json={"type": "image", "link": "https://tienda.example.mx/a.png", "caption": "a\x00b"},
    )

    assert response.status_code == 422, response.text
    assert problem_type(response) == "validation"
    await world.nothing_went_out(cid)
