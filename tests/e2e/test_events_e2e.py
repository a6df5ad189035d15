"""Events end to end, against a real ``changarrito serve``: the platform's receiver verifies
every event with the ``standardwebhooks`` reference verifier; it is killed in the middle of a
conversation and comes back on the same port, and still receives every event once, in the
conversation's order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest
from standardwebhooks.webhooks import Webhook

from changarrito.adapters.tokens import issue_token
from fakes.world import Shop, World, _free_port, module_world, running_server, wait_for

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
JWT_SECRET = "jwt-secret-e2e-00000000000000000000"


class PlatformBackend:
    """The platform's event receiver on a fixed port: ``stop()`` kills it (connections are
    refused), ``start()`` brings it back on the same port. It keeps what verified."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/changarrito/events"

    def start(self) -> None:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items()}
                try:
                    event = Webhook(SECRET).verify(body, headers)
                except Exception:
                    backend.refused += 1
                    self.send_response(401)
                else:
                    backend.received.append({"id": self.headers["webhook-id"], **event})
                    self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def stop(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def of(self, conversation_id: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e["data"].get("conversationId") == conversation_id]


@pytest.fixture(scope="module")
def world(pg_admin_url: str) -> Iterator[World]:
    yield from module_world(pg_admin_url)


@pytest.fixture(scope="module")
def backend() -> Iterator[PlatformBackend]:
    receiver = PlatformBackend()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="module")
def server(
    world: World, backend: PlatformBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = world.env(CHANGARRITO_EVENTS_URL=backend.url, CHANGARRITO_EVENTS_SECRET=SECRET)
    with running_server(env, tmp_path_factory.mktemp("serve")) as url:
        yield url


def api(server: str, shop: Shop, path: str) -> httpx.Response:
    token = issue_token(JWT_SECRET, shop.tenant_id, timedelta(minutes=5))
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.post(server + path, json={}, headers=headers, timeout=10)


def test_a_receiver_killed_mid_conversation_still_gets_every_event_once_in_order(
    world: World, server: str, backend: PlatformBackend
) -> None:
    shop = world.shop("zapateria", "133000000000001")
    first = world.say(server, shop, "¿Tienen del 26?", sender="5215540000001")
    wait_for("the answer", lambda: world.graph.replies_to(first))
    conversation = str(
        wait_for(
            "the event",
            lambda: next(
                (
                    e["data"]["conversationId"]
                    for e in backend.received
                    if e["data"].get("wamid") == first
                ),
                None,
            ),
        )
    )
    assert api(server, shop, f"/api/v1/conversations/{conversation}/handoff").status_code == 200
    wait_for("the handoff event", lambda: len(backend.of(conversation)) == 2)

    backend.stop()  # the platform's backend goes down
    assert api(server, shop, f"/api/v1/conversations/{conversation}/resume").status_code == 200
    second = world.say(server, shop, "¿Y del 27?", sender="5215540000001")
    wait_for("the answer", lambda: world.graph.replies_to(second))
    time.sleep(1.0)  # a few deliveries fail meanwhile
    backend.start()

    events = wait_for(
        "every event", lambda: (lambda e: e if len(e) >= 4 else None)(backend.of(conversation))
    )
    time.sleep(0.5)  # nothing more may arrive
    events = backend.of(conversation)
    assert [e["type"] for e in events] == [
        "message.received",
        "conversation.handoff",
        "conversation.resumed",
        "message.received",
    ]
    assert [e["data"].get("wamid") for e in events if e["type"] == "message.received"] == [
        first,
        second,
    ]
    assert len({e["id"] for e in events}) == len(events)  # each once
    assert backend.refused == 0
    with psycopg.connect(world.database_url) as conn:
        row = conn.execute(
            "SELECT attempts, state FROM changarrito_events WHERE type = 'conversation.resumed'"
            " AND data->>'conversationId' = %s",
            (conversation,),
        ).fetchone()
    assert row is not None and row[0] > 1 and row[1] == "delivered"  # it was tried while down
    assert "EAAzapateria" not in json.dumps(backend.received)  # no credential, ever


def test_each_answer_is_counted_in_the_shops_usage_on_its_own_key(
    world: World, server: str
) -> None:
    shop = world.shop("merceria", "133000000000002")
    platform = world.shop("abarrotes", "133000000000003", own_llm=False)
    for who, text in ((shop, "¿Tienen hilo rojo?"), (shop, "¿Y azul?"), (platform, "¿Abren?")):
        wamid = world.say(server, who, text, sender="5215540000009")
        wait_for("the answer", lambda wamid=wamid: world.graph.replies_to(wamid))

    def usage(of: Shop) -> list[dict[str, Any]]:
        token = issue_token(JWT_SECRET, of.tenant_id, timedelta(minutes=5))
        response = httpx.get(
            server + "/api/v1/usage",
            params={"groupBy": "source"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return [r for r in response.json()["data"] if r["kind"] == "llm_call"]

    [own] = usage(shop)
    [paid_by_platform] = usage(platform)
    assert (own["group"], own["acts"]) == ("tenant", 2)
    assert (paid_by_platform["group"], paid_by_platform["acts"]) == ("platform", 1)
    assert own["inputTokens"] > 0 and own["outputTokens"] > 0
