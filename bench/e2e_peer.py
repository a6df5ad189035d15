"""The end-to-end bench's peer: the WhatsApp LLM bot a developer would write with pywa_async.

``pywa_async.WhatsApp`` on FastAPI, its webhook checked with the app secret
(``validate_updates=True``), answering every number's messages (``filter_updates=False``, as
Changarrito answers every tenant's). The message handler is the naive bot: it awaits the LLM
(an OpenAI-compatible ``POST /chat/completions`` through one shared ``httpx.AsyncClient``)
and sends the answer back through Graph with ``msg.reply_text`` (quoting the message, as
Changarrito's first part does). pywa answers the webhook 200 first and runs the handler as a
FastAPI background task: nothing is stored, so a crash or a failed call loses the message.

pywa always talks to ``https://graph.facebook.com``; its client's ``base_url`` is pointed at
the Graph fake after construction (the only change to pywa's defaults). Served like
``bench.servers``: one uvicorn process with ``bench.servers.uvicorn_options``, the settings
``changarrito serve`` runs with (its event loop, HTTP parser and head deadline, no access log).

Run: ``python -m bench.e2e_peer --port P --llm-url URL --graph-url URL``.
"""

# No ``from __future__ import annotations``: FastAPI and pywa read the handlers' hints.
import argparse
import os
from typing import Any

from bench.servers import APP_SECRET_ENV, uvicorn_options

#: The API key and model the bot sends to the fake LLM.
LLM_KEY = "sk-bench-peer-000000000000000000"
MODEL = "gpt-4o-mini"
SYSTEM_PROMPT = "Eres la tienda de la esquina."


def peer_app(phone_id: str, llm_url: str, graph_url: str) -> Any:
    import fastapi
    import httpx
    from pywa_async import WhatsApp, types

    app = fastapi.FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    llm = httpx.AsyncClient(
        base_url=llm_url.rstrip("/"),
        headers={"Authorization": f"Bearer {LLM_KEY}"},
        timeout=httpx.Timeout(60.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )
    graph = httpx.AsyncClient(
        timeout=httpx.Timeout(20.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )
    counts = {"messages": 0, "replied": 0, "errors": 0}
    wa = WhatsApp(
        phone_id=phone_id,
        token="EAAGbenchpeertoken000000000000000",
        session=graph,
        server=app,
        verify_token="bench-verify",
        app_secret=os.environ[APP_SECRET_ENV],
        validate_updates=True,
        webhook_endpoint="/webhooks/whatsapp",
        filter_updates=False,
    )
    # pywa set Meta's host (with its Graph version path): keep the path, swap the host.
    meta = "https://graph.facebook.com"
    graph.base_url = str(graph.base_url).replace(meta, graph_url.rstrip("/"))

    @wa.on_message
    async def on_message(_: WhatsApp, msg: types.Message) -> None:
        counts["messages"] += 1
        try:
            response = await llm.post(
                "/chat/completions",
                json={
                    "model": MODEL,
                    "messages": [
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": msg.text or ""},
                    ],
                },
            )
            response.raise_for_status()
            answer = response.json()["choices"][0]["message"]["content"]
            await msg.reply_text(answer, quote=True)
        except Exception:
            counts["errors"] += 1
            raise
        counts["replied"] += 1

    @app.get("/__bench/stats")
    async def stats() -> dict[str, Any]:
        return counts

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--llm-url", required=True, help="the OpenAI-compatible base URL (…/v1)")
    parser.add_argument("--graph-url", required=True, help="the Graph API fake's base URL")
    parser.add_argument("--phone-id", default="100000000000001")
    args = parser.parse_args()
    config = uvicorn.Config(
        peer_app(args.phone_id, args.llm_url, args.graph_url),
        lifespan="on",
        **uvicorn_options(args.port),
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
