"""``GET /metrics``: every metric is exported from the first scrape, and each one moves with the
traffic it counts (webhooks, the queue, a worker run against fake Graph and LLM APIs, the
resolver and its cache). Each test has its own database, so the queue is only its own."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.http import HttpClients
from changarrito.adapters.metrics import Metrics, serve_metrics
from changarrito.bootstrap import Database, Service, bootstrap
from changarrito.domain.model import Credential, IntegrationType, Secrets, WhatsAppNumber
from changarrito.entrypoints.http.app import MAX_BODY_BYTES, create_app
from changarrito.entrypoints.workers import Workers
from changarrito.settings import MetricsSettings, Settings, WorkerSettings
from whatsapp_payloads import change, encode, signed_headers, text_message, webhook

APP_SECRET = "metrics-platform-app-secret-0000"
INTERNAL_KEY = "metrics-internal-key-00000000000000"
PLATFORM_PNID = "190000000000001"
REFUSED_CUSTOMER = "5215599999999"

EVERY_METRIC = (
    "changarrito_webhook_requests_total",
    "changarrito_webhook_request_duration_seconds",
    "changarrito_queue_depth",
    "changarrito_queue_oldest_age_seconds",
    "changarrito_whatsapp_sends_total",
    "changarrito_llm_calls_total",
    "changarrito_llm_call_duration_seconds",
    "changarrito_cache_hits_total",
    "changarrito_cache_misses_total",
    "changarrito_cache_hit_ratio",
    "changarrito_credential_resolutions_total",
    "changarrito_media_downloads_total",
    "changarrito_media_downloaded_bytes_total",
    "changarrito_transcriptions_total",
    "changarrito_transcribed_audio_seconds_total",
    "changarrito_media_to_model_total",
)


def env(**extra: str) -> dict[str, str]:
    return {
        "WHATSAPP_API_BASE_URL": "https://graph.test",
        "WHATSAPP_ACCESS_TOKEN": "EAAmetricsplatformtoken00000000000",
        "WHATSAPP_PHONE_NUMBER_ID": PLATFORM_PNID,
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "OPENAI_API_KEY": "sk-metrics-platform-000000000000",
        "OPENAI_BASE_URL": "https://llm.test/v1",
        "INTERNAL_API_KEY": INTERNAL_KEY,
        "JWT_SECRET": "metrics-jwt-secret-000000000000000000",
        "CHANGARRITO_METRICS_QUEUE_CACHE": "0",
        "CHANGARRITO_QUIET_PERIOD": "0",  # messages due at once
        **extra,
    }


def upstreams(request: httpx.Request) -> httpx.Response:
    """Graph sends a wamid back (or refuses one customer with 131047); the LLM echoes, or
    refuses a key containing ``bad``."""
    body = json.loads(request.content or b"{}")
    if request.url.host == "graph.test":
        if body.get("status") == "read":
            return httpx.Response(200, json={"success": True})
        if body.get("to") == "+" + REFUSED_CUSTOMER:
            error = {"message": "(#131047) Re-engagement message", "code": 131047}
            return httpx.Response(400, json={"error": error})
        return httpx.Response(200, json={"messages": [{"id": f"wamid.OUT{uuid.uuid4().hex}"}]})
    if "bad" in request.headers.get("authorization", ""):
        error = {"message": "Incorrect API key provided", "code": "invalid_api_key"}
        return httpx.Response(401, json={"error": error})
    text = body["messages"][-1]["content"]
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "model": body.get("model", "m"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"Re: {text}"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        },
    )


async def start(database_url: str, **extra: str) -> tuple[Service, httpx.AsyncClient]:
    settings = Settings.from_env(env(**extra))
    http = HttpClients(transport=httpx.MockTransport(upstreams))
    database = Database(database_url, KeyRing.generate("metrics"))
    service = await bootstrap(settings, database, listen=False, check_keys=False, http=http)
    app = create_app(settings, service=service, role="all")
    app.state.service = service
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    return service, client


@pytest.fixture
async def running(fresh_database_url: str) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    service, client = await start(fresh_database_url)
    try:
        yield service, client
    finally:
        await client.aclose()
        await service.aclose()


Scrape = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return parse(response.text)


def parse(text: str) -> Scrape:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Scrape, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def post(client: httpx.AsyncClient, payload: Any, secret: str = APP_SECRET) -> int:
    body = payload if isinstance(payload, bytes) else encode(payload)
    response = await client.post(
        "/webhooks/whatsapp", content=body, headers=signed_headers(body, secret)
    )
    return response.status_code


def number() -> str:
    return str(random.randrange(10**14, 10**15))


async def shop(service: Service, *, llm_key: str | None = None) -> tuple[uuid.UUID, str]:
    """A tenant owning a WhatsApp number (signed by the platform's app), with its own LLM key."""
    tenant = await service.storage.store.create_tenant("Tienda")
    pnid = number()
    await service.storage.store.save_credential(
        Credential(
            tenant.id,
            IntegrationType.WHATSAPP,
            "meta",
            Secrets({"accessToken": "EAAshoptoken" + uuid.uuid4().hex}),
            {"phoneNumberId": pnid, "businessAccountId": number()},
        ),
        WhatsAppNumber(tenant.id, pnid),
    )
    if llm_key:
        secrets = Secrets({"apiKey": llm_key, "baseUrl": "https://llm.test/v1"})
        await service.storage.store.save_credential(
            Credential(tenant.id, IntegrationType.LLM, "openai", secrets, {"model": "shop-m"})
        )
    return tenant.id, pnid


def says(pnid: str, text: str, sender: str) -> dict[str, Any]:
    return webhook(change(pnid, messages=[text_message(text, sender=sender)]))


async def settle(service: Service, timeout: float = 15.0) -> None:
    """Runs the message workers until no message is pending or being answered."""
    settings = WorkerSettings(concurrency=2, poll=0.05, retry_base=0.05, max_attempts=2)
    workers = Workers(service, settings)
    task = asyncio.create_task(workers.run())
    try:
        async with asyncio.timeout(timeout):
            while True:
                async with service.storage.pool.connection() as conn:
                    cur = await conn.execute(
                        "SELECT count(*) FROM whatsapp_inbound_messages"
                        " WHERE state IN ('pending', 'processing')"
                    )
                    row = await cur.fetchone()
                if row is not None and row[0] == 0:
                    return
                await asyncio.sleep(0.05)
    finally:
        workers.stop()
        await task


async def test_every_metric_is_exported_as_prometheus_text_from_the_first_scrape(
    running: tuple[Service, httpx.AsyncClient],
) -> None:
    _, client = running

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    types = {line.split()[2] for line in response.text.splitlines() if line.startswith("# TYPE")}
    assert set(EVERY_METRIC) <= types
    samples = parse(response.text)
    assert value(samples, "changarrito_queue_depth", state="pending") == 0
    assert value(samples, "changarrito_queue_oldest_age_seconds") == 0
    assert ("changarrito_webhook_requests_total", frozenset({("outcome", "accepted")})) in samples


async def test_each_webhook_outcome_is_counted_and_timed(
    running: tuple[Service, httpx.AsyncClient],
) -> None:
    _, client = running
    before = await scrape(client)
    hello = says(PLATFORM_PNID, "hola", "5215511111111")

    assert await post(client, hello) == 200
    assert await post(client, hello) == 200  # Meta delivering it again
    assert await post(client, hello, secret="forged") == 401
    assert await post(client, b'{"object": "page"}') == 400
    assert await post(client, b"{" + b" " * MAX_BODY_BYTES + b"}") == 413

    after = await scrape(client)
    for outcome in ("accepted", "duplicate", "invalid-signature", "bad-request", "too-large"):
        assert moved(before, after, "changarrito_webhook_requests_total", outcome=outcome) == 1
        count = "changarrito_webhook_request_duration_seconds_count"
        assert moved(before, after, count, outcome=outcome) == 1
    assert moved(before, after, "changarrito_webhook_requests_total", outcome="unavailable") == 0
    assert value(after, "changarrito_webhook_request_duration_seconds_sum") > 0


async def test_the_queue_depth_and_the_oldest_messages_age_follow_the_stored_messages(
    running: tuple[Service, httpx.AsyncClient],
) -> None:
    service, client = running
    _, pnid = await shop(service, llm_key="sk-shop-good-key-0000000000")
    for n in range(3):
        assert await post(client, says(pnid, f"pedido {n}", f"52155000000{n:02d}")) == 200
    await asyncio.sleep(0.05)

    waiting = await scrape(client)
    await settle(service)
    done = await scrape(client)

    assert value(waiting, "changarrito_queue_depth", state="pending") == 3
    assert value(waiting, "changarrito_queue_depth", state="due") == 3
    assert value(waiting, "changarrito_queue_oldest_age_seconds") >= 0.05
    assert value(done, "changarrito_queue_depth", state="pending") == 0
    assert value(done, "changarrito_queue_oldest_age_seconds") == 0


async def test_a_scrape_storm_reads_the_queue_once_per_cache_period(
    fresh_database_url: str,
) -> None:
    service, client = await start(fresh_database_url, CHANGARRITO_METRICS_QUEUE_CACHE="30")
    try:
        first = await scrape(client)
        assert await post(client, says(PLATFORM_PNID, "hola", "5215511111111")) == 200

        storm = await asyncio.gather(*(client.get("/metrics") for _ in range(20)))

        assert all(r.status_code == 200 for r in storm)
        for response in storm:  # still the reading from before the message arrived
            assert value(parse(response.text), "changarrito_queue_depth", state="pending") == 0
        assert value(first, "changarrito_queue_depth", state="pending") == 0
    finally:
        await client.aclose()
        await service.aclose()


async def test_a_worker_run_counts_sends_llm_calls_credential_sources_and_cache_hits(
    running: tuple[Service, httpx.AsyncClient],
) -> None:
    service, client = running
    _, own_llm = await shop(service, llm_key="sk-shop-good-key-0000000000")
    _, bad_llm = await shop(service, llm_key="sk-shop-bad-key-00000000000")
    _, platform_llm = await shop(service)
    before = await scrape(client)
    for pnid, customer in (
        (own_llm, "5215510000001"),
        (own_llm, "5215510000002"),
        (bad_llm, "5215520000001"),
        (platform_llm, "5215530000001"),
        (PLATFORM_PNID, "5215540000001"),
        (own_llm, REFUSED_CUSTOMER),
    ):
        assert await post(client, says(pnid, "¿Tienen pan?", customer)) == 200

    await settle(service)
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return moved(before, after, name, **labels)

    sends = "changarrito_whatsapp_sends_total"
    assert delta(sends, kind="message", outcome="sent", graph_code="") == 5
    assert delta(sends, kind="read", outcome="sent") == 6
    assert delta(sends, kind="message", outcome="provider-refused", graph_code="131047") == 1
    llm = "changarrito_llm_calls_total"
    assert delta(llm, provider="openai", outcome="ok", source="tenant") == 3
    assert delta(llm, provider="openai", outcome="provider-auth", source="tenant") == 1
    assert delta(llm, provider="openai", outcome="ok", source="platform") == 2
    assert delta("changarrito_llm_call_duration_seconds_count", provider="openai") == 6
    resolutions = "changarrito_credential_resolutions_total"
    assert delta(resolutions, integration="whatsapp", source="tenant") >= 5
    assert delta(resolutions, integration="whatsapp", source="platform") >= 1
    assert delta(resolutions, integration="llm", source="tenant") >= 4
    assert delta(resolutions, integration="llm", source="platform") >= 1
    assert delta("changarrito_cache_hits_total", cache="credentials") > 0
    assert delta("changarrito_cache_misses_total", cache="credentials") > 0
    assert 0 < value(after, "changarrito_cache_hit_ratio", cache="credentials") < 1
    assert not any("tenant" in dict(labels) for _, labels in after)


async def test_tenant_ids_become_labels_only_when_switched_on(fresh_database_url: str) -> None:
    service, client = await start(fresh_database_url, CHANGARRITO_METRICS_TENANT_LABELS="on")
    try:
        tenant_id, _ = await shop(service, llm_key="sk-shop-good-key-0000000000")
        for path in ("whatsapp", "llm"):
            response = await client.get(
                f"/api/v1/internal/integrations/{tenant_id}/{path}",
                headers={"X-Internal-Key": INTERNAL_KEY},
            )
            assert response.status_code == 200

        samples = await scrape(client)
    finally:
        await client.aclose()
        await service.aclose()

    resolutions = "changarrito_credential_resolutions_total"
    assert value(samples, resolutions, integration="whatsapp", tenant=str(tenant_id)) == 1
    assert value(samples, resolutions, integration="llm", tenant=str(tenant_id)) == 1


def test_a_bad_metrics_setting_stops_start_up_with_a_line_naming_it() -> None:
    from changarrito.domain.errors import ConfigurationError

    for name, bad in (
        ("CHANGARRITO_METRICS_TENANT_LABELS", "sometimes"),
        ("CHANGARRITO_METRICS_PORT", "99999"),
        ("CHANGARRITO_METRICS_QUEUE_CACHE", "soon"),
    ):
        with pytest.raises(ConfigurationError, match=name):
            Settings.from_env({name: bad})


@pytest.fixture
def free_port() -> Iterator[Callable[[], int]]:
    def pick() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    yield pick


def test_the_worker_process_serves_its_metrics_on_its_own_port(
    free_port: Callable[[], int],
) -> None:
    metrics = Metrics(MetricsSettings(port=free_port()))
    metrics.webhook("accepted", 0.01)
    server = serve_metrics(metrics)
    try:
        response = httpx.get(f"http://127.0.0.1:{metrics.settings.port}/metrics", timeout=5)
    finally:
        server.shutdown()

    assert response.status_code == 200
    samples = parse(response.text)
    assert value(samples, "changarrito_webhook_requests_total", outcome="accepted") == 1
    assert serve_metrics(Metrics()) is None  # no port, no listener
