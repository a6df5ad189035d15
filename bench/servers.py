"""The intake bench's servers, each run on a chosen stack, by default the one ``changarrito
serve`` runs on.

Apps (``KIND``):

- ``bare``: a Litestar endpoint that reads the body and answers 200 (the floor: the framework
  and the server, no work).
- ``bare-asgi``: the same as a plain ASGI route on Litestar (``@asgi``), the kind of route
  Changarrito's webhook is: the floor of that route, without Litestar's handler machinery
  (dependency injection, signature model, response object).
- ``pywa``: pywa's asyncio client (``pywa_async.WhatsApp(server=FastAPI(), app_secret=...,
  validate_updates=True)``) with an ``async`` message and status handler that count what they
  get: what an asyncio service would use. pywa checks the signature, answers 200 and parses
  the update in a background task; it stores nothing.
- ``pywa-sync``: the same with pywa's synchronous client, whose handlers run in a thread pool
  (a second, labelled row: not the peer of an asyncio service).
- ``changarrito``: the real app (``app_from_env``, as ``serve --workers N`` builds it), for
  the stacks ``serve`` does not run on; on the default stack the bench runs ``changarrito
  serve`` itself.

``GET /__bench/stats`` of the pywa apps shows the counts, so the bench can check that every
body was really parsed (a body pywa cannot read would be cheap and prove nothing).

Stacks (``--stack``):

- ``serve`` (default): uvicorn with ``changarrito.entrypoints.server.server_options``, the
  one place ``serve`` gets its settings (uvloop, httptools with the head deadline, no access
  log), so a baseline runs exactly as ``serve`` does, with serve's garbage collector settings
  (``entrypoints/collector.py``) as well;
- ``h11``: uvicorn on h11 and the asyncio loop (uvicorn's default without its extras; what
  ``serve`` ran on before issue 11);
- ``granian``: granian (Rust, hyper) at its fastest documented configuration for one ASGI
  process: ``--interface asgi`` (lifespan on), uvloop, single-threaded runtime, HTTP/1 only,
  websockets and access log off, its own header read timeout set to the request timeout.

Every stack runs one process with lifespan on. Run: ``python -m bench.servers KIND --port P
[--stack serve|h11|granian]``.
"""

# No ``from __future__ import annotations``: Litestar and FastAPI read the handlers' hints.
import argparse
import logging
import os
import shutil
import sys
from typing import Any

#: The platform app secret the benches sign with (pywa's ``app_secret``).
APP_SECRET_ENV = "BENCH_APP_SECRET"
#: The platform's phone number id (pywa's ``phone_id``).
PHONE_ID_ENV = "BENCH_PHONE_ID"
KINDS = ("bare", "bare-asgi", "pywa", "pywa-sync", "changarrito")
STACKS = ("serve", "h11", "granian")
#: The factory of each app, as ``module:callable`` (granian imports it in its worker).
FACTORIES = {
    "bare": "bench.servers:bare_app",
    "bare-asgi": "bench.servers:bare_asgi_app",
    "pywa": "bench.servers:pywa_async_app",
    "pywa-sync": "bench.servers:pywa_sync_app",
    "changarrito": "changarrito.entrypoints.http.app:app_from_env",
}


def bare_app() -> Any:
    from litestar import Litestar, Request, Response, post

    @post("/webhooks/whatsapp", status_code=200, media_type="text/plain")
    async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
        await request.body()
        return Response(b"", media_type="text/plain", status_code=200)

    return Litestar(route_handlers=[receive], openapi_config=None, logging_config=None)


def bare_asgi_app() -> Any:
    from litestar import Litestar, asgi
    from litestar.types import Receive, Scope, Send

    @asgi("/webhooks/whatsapp", copy_scope=False)
    async def receive(scope: Scope, receive: Receive, send: Send) -> None:
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return Litestar(route_handlers=[receive], openapi_config=None, logging_config=None)


class _Errors(logging.Handler):
    """Counts pywa's error log records (an update it could not construct is one)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.last = record.getMessage()[:300]


def _pywa_app(client: Any, *, asynchronous: bool) -> Any:
    import fastapi

    app = fastapi.FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    counts = {"messages": 0, "statuses": 0, "bsuids": 0}
    errors = _Errors()
    logging.getLogger("pywa").addHandler(errors)
    logging.getLogger("pywa_async").addHandler(errors)

    wa = client(
        phone_id=os.environ.get(PHONE_ID_ENV, "100000000000001"),
        token="bench-token-not-used",
        server=app,
        verify_token="bench-verify",
        app_secret=os.environ[APP_SECRET_ENV],
        validate_updates=True,
        webhook_endpoint="/webhooks/whatsapp",
        # The bodies go to many businesses' numbers, as Changarrito's do: handle them all.
        filter_updates=False,
    )

    def message(msg: Any) -> None:
        counts["messages"] += 1
        if msg.from_user.bsuid:
            counts["bsuids"] += 1

    def status(_: Any) -> None:
        counts["statuses"] += 1

    if asynchronous:

        async def on_message(_: Any, msg: Any) -> None:
            message(msg)

        async def on_status(_: Any, update: Any) -> None:
            status(update)

        wa.on_message(on_message)
        wa.on_message_status(on_status)
    else:
        wa.on_message(lambda _, msg: message(msg))
        wa.on_message_status(lambda _, update: status(update))

    @app.get("/__bench/stats")
    async def stats() -> dict[str, Any]:
        return {**counts, "errors": errors.count, "last_error": errors.last}

    return app


def pywa_async_app() -> Any:
    from pywa_async import WhatsApp

    return _pywa_app(WhatsApp, asynchronous=True)


def pywa_sync_app() -> Any:
    from pywa import WhatsApp

    return _pywa_app(WhatsApp, asynchronous=False)


def _factory(kind: str) -> Any:
    module, _, name = FACTORIES[kind].partition(":")
    return getattr(__import__(module, fromlist=[name]), name)


def request_timeout() -> float:
    """``CHANGARRITO_REQUEST_TIMEOUT`` as the service reads it (the same head deadline on
    every stack)."""
    from changarrito.settings import Settings

    return Settings.from_env().request_timeout


def uvicorn_options(port: int, stack: str = "serve") -> dict[str, Any]:
    """uvicorn's settings for a server on 127.0.0.1:``port``: ``serve``'s own (any bench's
    peer on uvicorn should use these) or, for ``h11``, uvicorn's default without its extras."""
    if stack == "serve":
        from changarrito.entrypoints.server import server_options
        from changarrito.settings import Settings

        return server_options(Settings.from_env(), host="127.0.0.1", port=port)
    return {
        "host": "127.0.0.1",
        "port": port,
        "log_config": None,
        "access_log": False,
        "loop": "asyncio",
        "http": "h11",
    }


def run_uvicorn(kind: str, port: int, stack: str) -> None:
    import uvicorn

    from changarrito.entrypoints.collector import settle_after_start

    options = uvicorn_options(port, stack)
    app = _factory(kind)()
    if stack == "serve" and kind != "changarrito":
        # serve's garbage collector settings too (Changarrito's app settles its own once
        # its service is built), so that no row gains from a runtime setting the others lack.
        settle_after_start()
    uvicorn.Server(uvicorn.Config(app, lifespan="on", **options)).run()


def run_granian(kind: str, port: int) -> None:
    """Replaces this process with granian's (its worker imports the app's factory)."""
    granian = shutil.which("granian", path=os.path.dirname(sys.executable))
    if granian is None:
        raise SystemExit("granian is missing: run `make bench-setup`")
    argv = [
        granian,
        "--interface",
        "asgi",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--runtime-mode",
        "st",
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--no-ws",
        "--no-access-log",
        "--log-level",
        "warning",
        "--http1-header-read-timeout",
        str(round(request_timeout() * 1000)),
        FACTORIES[kind],
    ]
    os.execv(granian, argv)  # noqa: S606 (a fixed argv, no shell)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stack", choices=STACKS, default="serve")
    args = parser.parse_args()
    if args.stack == "granian":
        run_granian(args.kind, args.port)
    else:
        run_uvicorn(args.kind, args.port, args.stack)


if __name__ == "__main__":
    main()
