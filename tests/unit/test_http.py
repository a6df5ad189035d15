"""The shared HTTP clients on asyncio's own transports (``adapters/http_streams.py``): real
sockets on 127.0.0.1, plain and TLS, keep-alive, a server's close, timeouts and refusals."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from changarrito.adapters.http import HttpClients, on_asyncio
from changarrito.adapters.http_streams import AsyncioBackend

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def backend_of(client: httpx.AsyncClient) -> object:
    transport = client._transport
    inner = getattr(transport, "inner", transport)
    return inner._pool._network_backend  # type: ignore[attr-defined]


async def test_every_client_httpx_builds_runs_on_asyncio_transports() -> None:
    http = HttpClients()
    try:
        assert isinstance(backend_of(http.get("https://graph.facebook.com")), AsyncioBackend)
        assert isinstance(backend_of(http.get("https://llm.example", tenant=True)), AsyncioBackend)
    finally:
        await http.aclose()


def test_a_transport_that_is_not_httpxs_own_is_left_alone() -> None:
    mock = httpx.MockTransport(lambda _: httpx.Response(200))
    on_asyncio(mock)
    on_asyncio(None)
    assert not hasattr(mock, "_pool")


async def serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> asyncio.Server:
    return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request's head and its ``Content-Length`` body; ``None`` at the end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


def answer(body: bytes, *, close: bool = False) -> bytes:
    connection = b"close" if close else b"keep-alive"
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: " + connection + b"\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class Counting:
    """A keep-alive server answering each request with its connection's number and the
    request's number on it; ``close_after`` closes each connection after that many."""

    def __init__(self, close_after: int | None = None) -> None:
        self.connections = 0
        self.close_after = close_after

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number, served = self.connections, 0
        while (request := await read_request(reader)) is not None:
            served += 1
            body = f"{number}.{served} {len(request)}".encode()
            writer.write(answer(body))
            await writer.drain()
            if self.close_after is not None and served >= self.close_after:
                break
        writer.close()


@pytest.fixture
async def http() -> AsyncIterator[HttpClients]:
    clients = HttpClients(private="on")
    yield clients
    await clients.aclose()


async def test_requests_share_a_kept_alive_connection(http: HttpClients) -> None:
    server = await serve(counting := Counting())
    url = f"http://127.0.0.1:{port_of(server)}"
    async with server:
        client = http.get(url)
        first = await client.post(url + "/a", content=b"x" * 100_000)
        texts = [(await client.get(url + "/b")).text for _ in range(3)]

    assert first.text.startswith("1.1 ") and int(first.text.split()[1]) > 100_000
    assert [t.split()[0] for t in texts] == ["1.2", "1.3", "1.4"]
    assert counting.connections == 1


async def test_a_connection_the_server_closed_while_idle_is_replaced(http: HttpClients) -> None:
    server = await serve(counting := Counting(close_after=1))
    url = f"http://127.0.0.1:{port_of(server)}"
    async with server:
        client = http.get(url)
        first = await client.get(url)
        await asyncio.sleep(0.05)  # the server's close reaches the idle connection
        second = await client.get(url)

    assert (first.text.split()[0], second.text.split()[0]) == ("1.1", "2.1")
    assert counting.connections == 2


async def test_a_large_answer_arrives_whole(http: HttpClients) -> None:
    big = bytes(range(256)) * 8192  # 2 MiB: reading pauses and resumes

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(big, close=True))
        await writer.drain()
        writer.close()

    server = await serve(handler)
    url = f"http://127.0.0.1:{port_of(server)}"
    async with server:
        response = await http.get(url).get(url)

    assert response.content == big


async def test_a_silent_server_is_a_read_timeout(http: HttpClients) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    server = await serve(handler)
    url = f"http://127.0.0.1:{port_of(server)}"
    async with server:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(url).get(url, timeout=httpx.Timeout(5.0, read=0.1))


async def test_a_server_that_hangs_up_mid_answer_is_a_remote_protocol_error(
    http: HttpClients,
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.close()

    server = await serve(handler)
    url = f"http://127.0.0.1:{port_of(server)}"
    async with server:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(url).get(url)


async def test_nothing_listening_is_a_connect_error(http: HttpClients) -> None:
    server = await serve(Counting())
    url = f"http://127.0.0.1:{port_of(server)}"
    server.close()
    await server.wait_closed()

    with pytest.raises(httpx.ConnectError):
        await http.get(url).get(url)


def certificate(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for 127.0.0.1 and ``localhost``, and a client context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_tls_connections_are_verified_and_kept_alive(tmp_path: Path) -> None:
    server_context, client_context = certificate(tmp_path)
    server = await serve(counting := Counting(), server_context)
    url = f"https://localhost:{port_of(server)}"
    transport = httpx.AsyncHTTPTransport(verify=client_context)
    on_asyncio(transport)
    async with server, httpx.AsyncClient(transport=transport) as client:
        texts = [(await client.get(url)).text for _ in range(3)]
        untrusted = httpx.AsyncHTTPTransport()
        on_asyncio(untrusted)
        async with httpx.AsyncClient(transport=untrusted) as stranger:
            with pytest.raises(httpx.ConnectError):
                await stranger.get(url)

    assert [t.split()[0] for t in texts] == ["1.1", "1.2", "1.3"]
    assert counting.connections == 1  # kept alive; the stranger never got past the handshake
    assert isinstance(backend_of(client), AsyncioBackend)


def test_the_same_holds_on_uvloop_the_loop_serve_runs_on(tmp_path: Path) -> None:
    uvloop = pytest.importorskip("uvloop")
    server_context, client_context = certificate(tmp_path)

    async def main() -> list[str]:
        server = await serve(Counting(close_after=2), server_context)
        url = f"https://localhost:{port_of(server)}"
        transport = httpx.AsyncHTTPTransport(verify=client_context)
        on_asyncio(transport)
        async with server, httpx.AsyncClient(transport=transport) as client:
            texts = []
            for _ in range(3):
                texts.append((await client.get(url)).text.split()[0])
                await asyncio.sleep(0.05)
            return texts

    assert uvloop.run(main()) == ["1.1", "1.2", "2.1"]


async def test_a_cookie_one_answer_sets_never_travels_with_the_next_request(
    http: HttpClients,
) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request)
            writer.write(
                b"HTTP/1.1 200 OK\r\nset-cookie: session=tenant-a; Path=/\r\n"
                b"content-length: 2\r\n\r\nok"
            )
            await writer.drain()
        writer.close()

    server = await serve(handler)
    url = f"http://127.0.0.1:{port_of(server)}"
    async with server:
        client = http.get(url)
        await client.get(url)
        await client.get(url)

    assert len(seen) == 2 and b"cookie" not in seen[1].lower()
    assert not client.cookies
