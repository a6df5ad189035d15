"""Limits, tried as an attacker would, against a real ``changarrito serve`` process on
PostgreSQL with fake upstreams (Graph, an OpenAI-compatible LLM, Stripe).

- Slow clients: a client that dribbles its request head, or opens a connection and sends
  nothing, is cut off once ``CHANGARRITO_REQUEST_TIMEOUT`` has passed; a keep-alive client that
  keeps the connection longer than that, and a handler slower than that, are served.
- Rate limits: a tenant that creates payment links or verifies credentials in a loop (each an
  outbound call on someone's key) gets a 429 ``rate-limited`` with ``Retry-After`` past the
  operator's limit, and the provider sees no more calls; the limit is the tenant's (another
  tenant is served) and global (a second process on the same database counts the same calls).
- Platform LLM caps: a tenant whose own key fails, answered on the platform's key, cannot make
  that call with its own ``maxTokens`` or a system prompt of any size.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slow_client import dribble

from changarrito.adapters.postgres.pool import open_pool
from changarrito.adapters.postgres.rate_limits import PostgresRateLimits
from changarrito.domain.chat import ChatMessage
from changarrito.domain.llm import PlatformLimits
from fakes._server import Answer, FakeServer, Recorded
from fakes.fake_llm import FakeLLM
from fakes.memory import MemoryRateLimits
from fakes.world import (
    PLATFORM_LLM_KEY,
    World,
    module_world,
    running_server,
    wait_for,
)

TIMEOUT = 1.0
LINKS_PER_MINUTE = 3
VERIFY_PER_MINUTE = 2
MAX_TOKENS = 256
MAX_PROMPT_CHARS = 2000
STRIPE_KEY = "sk_test_platform_limits_000000000000"


class FakeStripe(FakeServer):
    """Creates a Checkout Session for every ``POST /v1/checkout/sessions``; answers
    ``GET /v1/balance`` (verify)."""

    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1)

    def answer(self, recorded: Recorded) -> Answer:
        if recorded.path.startswith("/v1/checkout/sessions"):
            n = next(self._ids)
            return Answer(200, {"id": f"cs_test_{n}", "url": f"https://pay.test/{n}"})
        if recorded.path.startswith("/v1/balance"):
            return Answer(200, {"object": "balance", "available": []})
        return Answer(404, {"error": {"message": "no route"}})

    def sessions(self) -> int:
        return sum(1 for r in self.requests if r.path.startswith("/v1/checkout/sessions"))


@pytest.fixture(scope="module")
def stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def world(pg_admin_url: str) -> Iterator[World]:
    yield from module_world(pg_admin_url)


@pytest.fixture(scope="module")
def env(world: World, stripe: FakeStripe) -> dict[str, str]:
    return world.env(
        CHANGARRITO_REQUEST_TIMEOUT=str(TIMEOUT),
        CHANGARRITO_PAYMENT_LINKS_PER_MINUTE=str(LINKS_PER_MINUTE),
        CHANGARRITO_VERIFY_PER_MINUTE=str(VERIFY_PER_MINUTE),
        CHANGARRITO_LLM_PLATFORM_FALLBACK="on",
        CHANGARRITO_PLATFORM_LLM_MAX_TOKENS=str(MAX_TOKENS),
        CHANGARRITO_PLATFORM_LLM_MAX_PROMPT_CHARS=str(MAX_PROMPT_CHARS),
        STRIPE_API_KEY=STRIPE_KEY,
        STRIPE_BASE_URL=stripe.url,
    )


@pytest.fixture(scope="module")
def serve_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def server(env: dict[str, str], serve_folder: Path) -> Iterator[str]:
    with running_server(env, serve_folder) as url:
        yield url


@pytest.fixture(autouse=True)
def _well_behaved_fakes_again(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "world" in request.fixturenames:
        request.getfixturevalue("world").reset()


def new_tenant(server: str, env: dict[str, str]) -> tuple[uuid.UUID, dict[str, str]]:
    """A tenant made through the internal API, and a JWT for it."""
    created = httpx.post(
        server + "/api/v1/internal/tenants",
        json={"name": "Tienda"},
        headers={"X-Internal-Key": env["INTERNAL_API_KEY"]},
    )
    assert created.status_code == 201, created.text
    tenant_id = uuid.UUID(created.json()["id"])
    now = int(time.time())
    claims = {"tenant_id": str(tenant_id), "sub": "owner", "iat": now, "exp": now + 600}
    token = jwt.encode(claims, env["JWT_SECRET"], algorithm="HS256")
    return tenant_id, {"Authorization": f"Bearer {token}"}


def link(n: int) -> dict[str, Any]:
    return {"amount": "10.00", "currency": "MXN", "description": "Tacos", "reference": f"o-{n}"}


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/problems/rate-limited")
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= 60


# --- slow clients ----------------------------------------------------------------------------


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


SLOW_HEAD = (
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    + b"".join(b"X-Padding-%d: %s\r\n" % (i, b"a" * 40) for i in range(40))
    + b"\r\n"
)


async def test_a_request_head_dribbled_byte_by_byte_is_cut_off(server: str) -> None:
    answer, closed_after = await dribble(port_of(server), SLOW_HEAD, 0.02, TIMEOUT + 4)
    assert closed_after < TIMEOUT + 2, "the connection was left open"
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"application/problem+json" in answer
    assert b"/problems/request-timeout" in answer


async def test_a_connection_that_sends_nothing_is_closed(server: str) -> None:
    answer, closed_after = await dribble(port_of(server), b"", 0.0, TIMEOUT + 4)
    assert closed_after < TIMEOUT + 2, "the connection was left open"
    assert answer == b""


async def test_a_hundred_slow_clients_do_not_stop_a_prompt_one(server: str) -> None:
    port = port_of(server)
    slow = [asyncio.create_task(dribble(port, SLOW_HEAD, 0.05, TIMEOUT + 4)) for _ in range(100)]
    await asyncio.sleep(0.2)
    async with httpx.AsyncClient(base_url=server) as http:
        assert (await http.get("/health")).status_code == 200
    results = await asyncio.gather(*slow)
    assert all(closed_after < TIMEOUT + 2 for _, closed_after in results)


def test_serve_says_it_runs_on_uvloop_and_httptools(server: str, serve_folder: Path) -> None:
    lines = (serve_folder / "serve.log").read_text(errors="replace").splitlines()
    starting = [json.loads(line) for line in lines if '"changarrito.starting"' in line]
    assert len(starting) == 1, lines
    assert starting[0]["loop"] == "uvloop"
    assert starting[0]["http"].startswith("httptools ")
    assert starting[0]["server"].startswith("uvicorn ")


def test_pipelined_requests_are_all_answered_and_the_next_head_is_awaited(server: str) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.settimeout(TIMEOUT + 4)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 3)
        answer = b""
        while answer.count(b"HTTP/1.1 200 ") < 3 or not answer.endswith(b'{"status":"ok"}'):
            chunk = sock.recv(65536)
            assert chunk, f"closed before three answers: {answer!r}"
            answer += chunk
        started = time.monotonic()
        assert sock.recv(65536) == b"", "a connection idle after its answers was left open"
        assert time.monotonic() - started < TIMEOUT + 2


def test_a_keep_alive_client_is_served_for_longer_than_the_timeout(server: str) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.settimeout(5)
        started = time.monotonic()
        for _ in range(5):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, "the server closed a keep-alive connection between requests"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
            time.sleep(TIMEOUT * 0.6)
        assert time.monotonic() - started > TIMEOUT * 2


def test_a_handler_slower_than_the_timeout_still_answers(
    world: World, server: str, env: dict[str, str]
) -> None:
    _, headers = new_tenant(server, env)
    body = {"provider": "openai", "credentials": {"apiKey": "sk-slow-verify-key-000000000"}}
    body["credentials"]["baseUrl"] = world.llm.url + "/v1"
    assert httpx.put(server + "/api/v1/integrations/llm", json=body, headers=headers).is_success

    original = world.llm.answer

    def slow(recorded: Recorded) -> Answer:
        answer = original(recorded)
        return Answer(answer.status, answer.body, delay=TIMEOUT * 1.5)

    world.llm.answer = slow  # type: ignore[method-assign]
    try:
        verify = httpx.post(server + "/api/v1/integrations/llm/verify", headers=headers, timeout=10)
    finally:
        world.llm.answer = original  # type: ignore[method-assign]
    assert verify.status_code == 200, verify.text
    assert verify.json()["isVerified"] is True


# --- rate limits -----------------------------------------------------------------------------


def test_creating_payment_links_in_a_loop_is_stopped_at_the_limit(
    server: str, env: dict[str, str], stripe: FakeStripe
) -> None:
    _, headers = new_tenant(server, env)
    before = stripe.sessions()
    answers = [
        httpx.post(server + "/api/v1/payments/links", json=link(n), headers=headers)
        for n in range(LINKS_PER_MINUTE + 3)
    ]
    assert [a.status_code for a in answers[:LINKS_PER_MINUTE]] == [201] * LINKS_PER_MINUTE
    for refused in answers[LINKS_PER_MINUTE:]:
        assert_rate_limited(refused)
    assert stripe.sessions() - before == LINKS_PER_MINUTE  # no outbound call past the limit

    # The limit is this tenant's: another is served at once.
    _, others = new_tenant(server, env)
    other = httpx.post(server + "/api/v1/payments/links", json=link(99), headers=others)
    assert other.status_code == 201, other.text


def test_verifying_in_a_loop_is_stopped_at_the_limit_across_every_kind(
    world: World, server: str, env: dict[str, str], stripe: FakeStripe
) -> None:
    _, headers = new_tenant(server, env)
    body = {"provider": "openai", "credentials": {"apiKey": "sk-verify-loop-key-0000000000"}}
    body["credentials"]["baseUrl"] = world.llm.url + "/v1"
    assert httpx.put(server + "/api/v1/integrations/llm", json=body, headers=headers).is_success
    put = httpx.put(
        server + "/api/v1/integrations/payments/stripe",
        json={"credentials": {"apiKey": "sk_test_tenant_verify_loop_0000"}},
        headers=headers,
    )
    assert put.is_success, put.text

    def outbound() -> int:
        models = world.llm.recorded(lambda r: r.path.endswith("/models"))
        return len(models) + sum(1 for r in stripe.requests if r.path.startswith("/v1/balance"))

    before = outbound()
    paths = ["llm/verify", "payments/stripe/verify"] * 3
    answers = [httpx.post(f"{server}/api/v1/integrations/{p}", headers=headers) for p in paths]
    assert [a.status_code for a in answers[:VERIFY_PER_MINUTE]] == [200] * VERIFY_PER_MINUTE
    for refused in answers[VERIFY_PER_MINUTE:]:
        assert_rate_limited(refused)
    assert outbound() - before == VERIFY_PER_MINUTE


def test_anonymous_calls_spend_no_tenants_allowance(server: str, env: dict[str, str]) -> None:
    _, headers = new_tenant(server, env)
    for n in range(LINKS_PER_MINUTE + 2):
        anonymous = httpx.post(server + "/api/v1/payments/links", json=link(n))
        assert anonymous.status_code == 401
    created = httpx.post(server + "/api/v1/payments/links", json=link(0), headers=headers)
    assert created.status_code == 201, created.text


def test_the_limit_holds_across_processes_on_one_database(
    server: str, env: dict[str, str], tmp_path: Path, stripe: FakeStripe
) -> None:
    _, headers = new_tenant(server, env)
    with running_server(env, tmp_path / "second") as second:
        urls = [server, second] * LINKS_PER_MINUTE
        answers = [
            httpx.post(url + "/api/v1/payments/links", json=link(n), headers=headers)
            for n, url in enumerate(urls[: LINKS_PER_MINUTE + 1])
        ]
    assert [a.status_code for a in answers[:LINKS_PER_MINUTE]] == [201] * LINKS_PER_MINUTE
    assert_rate_limited(answers[LINKS_PER_MINUTE])


async def test_the_postgres_limiter_and_its_fake_agree(database_url: str) -> None:
    """A burst of ``limit``, then a wait of one interval; tenants and actions apart."""
    pool = await open_pool(database_url, max_size=2)
    try:
        async with pool.connection() as conn:
            rows = await conn.execute("INSERT INTO tenants (name) VALUES ('a'), ('b') RETURNING id")
            a, b = [row[0] for row in await rows.fetchall()]
        for limiter in (PostgresRateLimits(pool), MemoryRateLimits()):
            taken = [await limiter.acquire(a, "verify", 3, 60.0) for _ in range(4)]
            assert taken[:3] == [0.0, 0.0, 0.0]
            assert 19.0 < taken[3] <= 20.0  # one interval (60 s / 3) after the burst
            assert await limiter.acquire(a, "payment-links", 3, 60.0) == 0.0
            assert await limiter.acquire(b, "verify", 3, 60.0) == 0.0
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM tenants WHERE id = ANY(%s)", [[a, b]])
    finally:
        await pool.close()


# --- the platform's LLM key ------------------------------------------------------------------


def test_a_tenant_on_the_platforms_key_gets_the_operators_caps_not_its_own(
    world: World, server: str, env: dict[str, str]
) -> None:
    shop = world.shop("caps", "555000000000077", own_llm=False)
    now = int(time.time())
    claims = {"tenant_id": str(shop.tenant_id), "sub": "owner", "iat": now, "exp": now + 600}
    headers = {"Authorization": "Bearer " + jwt.encode(claims, env["JWT_SECRET"], "HS256")}
    huge_prompt = "Responde siempre con todo detalle. " * 1000  # 35,000 characters
    body = {
        "provider": "openai",
        "credentials": {"apiKey": "sk-caps-revoked-key-00000000", "baseUrl": world.llm.url + "/v1"},
        "config": {"model": "caps-model", "maxTokens": 100000, "systemPrompt": huge_prompt},
    }
    put = httpx.put(server + "/api/v1/integrations/llm", json=body, headers=headers)
    assert put.status_code == 200, put.text
    # The tenant's key is refused for good: the service answers on the platform's.
    world.llm.script(FakeLLM.error(401, "Incorrect API key provided", "invalid_api_key"))

    wamid = world.say(server, shop, "¿Me cuentas todo?")

    wait_for("the reply", lambda: world.graph.replies_to(wamid))
    platform = [
        c
        for c in world.chats_about("¿Me cuentas todo?")
        if c.headers.get("authorization") == f"Bearer {PLATFORM_LLM_KEY}"
    ]
    assert len(platform) == 1, [c.headers.get("authorization") for c in world.llm.chats()]
    sent = platform[0].body
    assert sent["max_completion_tokens"] == MAX_TOKENS
    assert sum(len(m["content"]) for m in sent["messages"]) <= MAX_PROMPT_CHARS
    assert sent["messages"][-1]["content"] == "¿Me cuentas todo?"
    assert sent["messages"][0]["content"].startswith("Responde siempre")


@settings(deadline=None, max_examples=200)
@given(
    cap=st.integers(1, 5000),
    chars=st.integers(100, 5000),
    asked=st.one_of(st.none(), st.integers(1, 10**6), st.text(max_size=5)),
    prompt=st.one_of(st.none(), st.text(max_size=6000)),
    history=st.lists(st.text(max_size=3000), min_size=1, max_size=12),
)
def test_whatever_the_tenant_asks_a_platform_call_stays_within_the_caps(
    cap: int, chars: int, asked: Any, prompt: str | None, history: list[str]
) -> None:
    config: dict[str, Any] = {"model": "m", "temperature": 0.3}
    if asked is not None:
        config["maxTokens"] = asked
    if prompt is not None:
        config["systemPrompt"] = prompt
    messages = [ChatMessage(role="user", content=text) for text in history]

    capped, sent = PlatformLimits(max_tokens=cap, max_prompt_chars=chars).fit(config, messages)

    assert 1 <= capped["maxTokens"] <= cap
    if isinstance(asked, int) and asked <= cap:
        assert capped["maxTokens"] == asked  # a modest ask is kept
    system = capped.get("systemPrompt") or ""
    assert len(system) + sum(len(m.content) for m in sent) <= chars
    assert (prompt or "").startswith(system)
    assert sent and history[-1].startswith(sent[-1].content)  # the newest is always sent
    assert [m.content for m in sent[:-1]] == history[len(history) - len(sent) : -1]
    assert (capped["model"], capped["temperature"]) == ("m", 0.3)
