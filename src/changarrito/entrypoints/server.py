"""``changarrito serve``: prepare the database, check it, then run the ASGI server.

The server is uvicorn on uvloop with its httptools (llhttp) parser, the fastest stack uvicorn
offers (``docs/performance.md`` has the measurements against h11/asyncio and granian), with one
addition uvicorn lacks (its issue #157): a deadline on the request *head*. ``HeadDeadline``
closes a connection whose request line and headers have not all arrived
``CHANGARRITO_REQUEST_TIMEOUT`` seconds after it opened, or after the previous response on it:
a slowloris client that dribbles its headers, or opens connections and sends nothing, cannot
hold a connection longer than that. Once a head is in, the app's own body deadline
(``entrypoints.http.hygiene``) takes over; a handler may then run as long as it needs, and a
keep-alive client is only held to the same deadline between its requests.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import os
import signal
import sys
from typing import Any

import httptools
import structlog
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from changarrito.bootstrap import bootstrap, check_role, embedded_defaults, prepare_database
from changarrito.entrypoints.http.app import create_app
from changarrito.entrypoints.http.problems import PROBLEM_JSON, problem_document
from changarrito.settings import Role, Settings

log = structlog.get_logger("changarrito.serve")


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    role: Role,
    workers: int = 1,
) -> int:
    check_role(settings, role)
    database = prepare_database(settings)
    settings = embedded_defaults(settings)

    async def check() -> None:
        # Migrations, the key ring and the plugins are checked here, once, so a bad
        # configuration stops start-up with one line instead of failing the first request.
        service = await bootstrap(settings, database, listen=False, role=role)
        await service.aclose()

    asyncio.run(check())
    common = server_options(settings, host=host, port=port)
    log.info(
        "changarrito.starting",
        url=f"http://{host}:{port}",
        role=role,
        workers=workers,
        database="embedded" if database.embedded else "external",
        server=f"uvicorn {uvicorn.__version__}",
        loop=LOOP,
        http=HTTP_PARSER,
    )
    # uvicorn handles SIGTERM gracefully and then re-raises it; exiting through SystemExit
    # instead (not the default kill) lets atexit stop the embedded PostgreSQL cleanly.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if workers <= 1:
        app = create_app(settings, database, role=role, settle_gc=True)
        uvicorn.Server(uvicorn.Config(app, lifespan="on", **common)).run()
        return 0
    # Worker processes rebuild the app from the environment: hand them the settled database.
    os.environ["DATABASE_URL"] = database.url
    os.environ["CHANGARRITO_ENCRYPTION_KEYS"] = database.keyring.serialize()
    os.environ["CHANGARRITO_ROLE"] = role
    if settings.auth.jwt_secret:
        os.environ["JWT_SECRET"] = settings.auth.jwt_secret
    uvicorn.run(
        "changarrito.entrypoints.http.app:app_from_env",
        factory=True,
        workers=workers,
        lifespan="on",
        **common,
    )
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(0)


#: The HTTP/1.1 parser ``HeadDeadline`` runs on: httptools, uvicorn's binding of llhttp.
HTTP_PARSER = f"httptools {httptools.__version__}"


#: The event loop: uvloop (a dependency wherever it builds: not on Windows, not on PyPy).
LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def server_options(settings: Settings, *, host: str, port: int) -> dict[str, Any]:
    """uvicorn's settings for ``serve`` (tests and the benches run the app under the same
    ones). ``http`` is ``HeadDeadline`` as a partial, which (unlike a class made at run time)
    pickles for ``serve --workers N``."""
    return {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "loop": LOOP,
        "http": functools.partial(HeadDeadline, head_timeout=settings.request_timeout),
    }


def _too_slow(timeout: float) -> bytes:
    detail = f"The request head did not arrive within {timeout:g} seconds."
    body = json.dumps(problem_document(408, "request-timeout", detail)).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        f"content-type: {PROBLEM_JSON}\r\n"
        "x-content-type-options: nosniff\r\n"
        "connection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class HeadDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline on each request head (see the module
    docstring). One timer per wait for a head: armed when the connection opens and when a
    response completes with no next request parsed yet, cancelled once a request is parsed.
    At the deadline a client that sent part of a head gets a 408 problem; one that sent
    nothing is just closed (as uvicorn closes an idle keep-alive connection)."""

    def __init__(self, *args: Any, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_started = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        self.head_started = self.head_timer is not None
        super().data_received(data)
        if self.cycle is not cycle or self.transport.get_protocol() is not self:
            self._head_arrived()  # a request was parsed (or the connection was upgraded)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The latest request parsed is answered and no pipelined one is waiting: the next
        # head must come.
        if self.cycle.response_complete and not self.transport.is_closing():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._head_arrived()
        self.head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _head_arrived(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        self.head_started = False

    def _head_too_slow(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.head_started:
            self.transport.write(_too_slow(self.head_timeout))
        self.transport.close()
