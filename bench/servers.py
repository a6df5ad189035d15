"""The intake bench's baselines, served exactly as ``changarrito serve`` serves itself.

- ``bare``: a Litestar endpoint that reads the body and answers 200 (the floor: the framework
  and the server, no work).
- ``pywa``: pywa's own webhook handler on FastAPI (``WhatsApp(server=app, app_secret=...,
  validate_updates=True)``), with a message and a status handler that count what they get.
  pywa checks the signature, answers 200 and parses the update in a background task; it
  stores nothing. ``GET /__bench/stats`` shows the counts, so the bench can check that every
  body was really parsed (a body pywa cannot read would be cheap and prove nothing).

Both run under uvicorn with the settings of ``changarrito.entrypoints.server.serve``: one
process, ``log_config=None``, ``access_log=False``, ``lifespan="on"``, and the event loop and
HTTP parser that uvicorn picks in the project's own virtualenv (``--loop``, ``--http``).

Run: ``python -m bench.servers bare|pywa --port P --loop asyncio --http h11``.
"""

# No ``from __future__ import annotations``: Litestar and FastAPI read the handlers' hints.
import argparse
import logging
import os
from typing import Any

#: The platform app secret the benches sign with (pywa's ``app_secret``).
APP_SECRET_ENV = "BENCH_APP_SECRET"


def bare_app() -> Any:
    from litestar import Litestar, Request, Response, post

    @post("/webhooks/whatsapp", status_code=200, media_type="text/plain")
    async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
        await request.body()
        return Response(b"", media_type="text/plain", status_code=200)

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


def pywa_app(phone_id: str) -> Any:
    import fastapi
    from pywa import WhatsApp, types

    app = fastapi.FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    counts = {"messages": 0, "statuses": 0, "bsuids": 0}
    errors = _Errors()
    logging.getLogger("pywa").addHandler(errors)

    wa = WhatsApp(
        phone_id=phone_id,
        token="bench-token-not-used",
        server=app,
        verify_token="bench-verify",
        app_secret=os.environ[APP_SECRET_ENV],
        validate_updates=True,
        webhook_endpoint="/webhooks/whatsapp",
        # The bodies go to many businesses' numbers, as Changarrito's do: handle them all.
        filter_updates=False,
    )

    @wa.on_message
    def on_message(_: WhatsApp, msg: types.Message) -> None:
        counts["messages"] += 1
        if msg.from_user.bsuid:
            counts["bsuids"] += 1

    @wa.on_message_status
    def on_status(_: WhatsApp, status: types.MessageStatus) -> None:
        counts["statuses"] += 1

    @app.get("/__bench/stats")
    async def stats() -> dict[str, Any]:
        return {**counts, "errors": errors.count, "last_error": errors.last}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("bare", "pywa"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", default="asyncio")
    parser.add_argument("--http", default="h11")
    parser.add_argument("--phone-id", default="100000000000001")
    args = parser.parse_args()
    app = bare_app() if args.kind == "bare" else pywa_app(args.phone_id)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop=args.loop,
        http=args.http,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
