"""The world around a real ``changarrito`` process in end-to-end tests: a database seeded with
shops (tenants with their own WhatsApp numbers and, optionally, their own LLM key and prompt),
the fake Graph API and LLM it talks to, the environment that points it at them, and helpers to
post signed webhooks and to wait for what the fakes receive.

Everything runs synchronously (the e2e tests are plain functions); seeding runs its coroutine
with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from changarrito.adapters.crypto.aesgcm import AesGcmCipher
from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.postgres.migrate import migrate
from changarrito.adapters.postgres.pool import open_pool
from changarrito.adapters.postgres.store import PostgresStore
from changarrito.domain.model import Credential, IntegrationType, Secrets, WhatsAppNumber
from fakes.fake_graph import FakeGraph
from fakes.fake_llm import FakeLLM
from whatsapp_payloads import change, encode, signed_headers, text_message, webhook

PLATFORM_PNID = "900000000000001"
PLATFORM_TOKEN = "EAAplatformGraphToken00000000000000"
#: The WhatsApp Business Account every seeded shop's number is in (confirmed, as seeded).
SHOPS_WABA = "1020304050"
PLATFORM_APP_SECRET = "platform-app-secret-e2e"
PLATFORM_LLM_KEY = "sk-platform-llm-key-e2e-000000"
PLATFORM_MODEL = "platform-model"

#: Seconds a freshly seeded shop may take to reach a running server (a change notification).
SETTLE = 3.0

T = TypeVar("T")


@dataclass(frozen=True)
class Shop:
    """A seeded tenant and what it configured."""

    name: str
    tenant_id: UUID
    phone_number_id: str
    token: str
    app_secret: str | None
    llm_key: str | None
    system_prompt: str | None
    fallback_text: str | None

    @property
    def webhook_secret(self) -> str:
        """The secret Meta signs this number's webhooks with: its own app's, else ours."""
        return self.app_secret or PLATFORM_APP_SECRET


class World:
    def __init__(self, database_url: str, graph: FakeGraph, llm: FakeLLM) -> None:
        self.database_url = database_url
        self.graph = graph
        self.llm = llm
        self.keyring = KeyRing.generate("e2e")
        self.seeded_at = 0.0
        asyncio.run(self._migrate())

    async def _migrate(self) -> None:
        pool = await open_pool(self.database_url, max_size=1)
        try:
            await migrate(pool)
        finally:
            await pool.close()

    def env(self, **extra: str) -> dict[str, str]:
        """The service's environment: everything upstream is a local fake; short backoffs."""
        env = {
            "DATABASE_URL": self.database_url,
            "CHANGARRITO_ENCRYPTION_KEYS": self.keyring.serialize(),
            "WHATSAPP_API_BASE_URL": self.graph.url,
            "WHATSAPP_API_VERSION": self.graph.version,
            "WHATSAPP_ACCESS_TOKEN": PLATFORM_TOKEN,
            "WHATSAPP_PHONE_NUMBER_ID": PLATFORM_PNID,
            "WHATSAPP_APP_SECRET": PLATFORM_APP_SECRET,
            "WHATSAPP_VERIFY_TOKEN": "platform-verify-token-e2e",
            "OPENAI_API_KEY": PLATFORM_LLM_KEY,
            "OPENAI_BASE_URL": self.llm.url + "/v1",
            # The shops' own LLM credentials name the fake LLM on this host.
            "CHANGARRITO_ALLOW_PRIVATE_URLS": "loopback",
            "LLM_MODEL": PLATFORM_MODEL,
            "INTERNAL_API_KEY": "internal-key-e2e-0000000000000000",
            "JWT_SECRET": "jwt-secret-e2e-00000000000000000000",
            "CHANGARRITO_WORKERS_CONCURRENCY": "2",
            "CHANGARRITO_WORKER_POLL": "0.1",
            "CHANGARRITO_RETRY_BASE": "0.2",
            "CHANGARRITO_RETRY_MAX": "0.5",
            "CHANGARRITO_MAX_ATTEMPTS": "4",
            "CHANGARRITO_WORKER_LEASE": "2",
            "CHANGARRITO_WORKER_GRACE": "2",
            "CHANGARRITO_GRAPH_TIMEOUT": "1",
            "CHANGARRITO_LOG_LEVEL": "INFO",
            # Each message answered at once; the conversation tests turn bursts on.
            "CHANGARRITO_QUIET_PERIOD": "0",
        }
        env.update(extra)
        return env

    def shop(
        self,
        name: str,
        phone_number_id: str,
        *,
        own_llm: bool = True,
        own_app: bool = True,
        fallback_text: str | None = None,
    ) -> Shop:
        """Seeds a tenant with its own WhatsApp number (verified, its claim confirmed), and its
        own LLM key and system prompt when ``own_llm`` (else it uses the platform's LLM)."""
        shop = Shop(
            name=name,
            tenant_id=UUID(int=0),
            phone_number_id=phone_number_id,
            token=f"EAA{name}GraphToken000000000000000",
            app_secret=f"{name}-app-secret-e2e" if own_app else None,
            llm_key=f"sk-{name}-llm-key-e2e-00000000" if own_llm else None,
            system_prompt=f"Eres el asistente de la tienda {name}." if own_llm else None,
            fallback_text=fallback_text,
        )
        return asyncio.run(self._seed(shop))

    async def _seed(self, shop: Shop) -> Shop:
        pool = await open_pool(self.database_url, max_size=1)
        try:
            store = PostgresStore(pool, AesGcmCipher(self.keyring))
            tenant = await store.create_tenant(shop.name)
            secrets = {"accessToken": shop.token}
            if shop.app_secret:
                secrets["appSecret"] = shop.app_secret
            await store.save_credential(
                Credential(
                    tenant.id,
                    IntegrationType.WHATSAPP,
                    "meta",
                    Secrets(secrets),
                    {"phoneNumberId": shop.phone_number_id, "businessAccountId": SHOPS_WABA},
                    is_verified=True,
                ),
                WhatsAppNumber(
                    tenant.id,
                    shop.phone_number_id,
                    "+5215500000000",
                    shop.name,
                    business_account_id=SHOPS_WABA,
                ),
            )
            # Graph confirms the claim as it was seeded (a tenant's PUT or verify asks again).
            self.graph.own(shop.token, SHOPS_WABA, shop.phone_number_id)
            config: dict[str, Any] = {}
            if shop.fallback_text:
                config["fallbackText"] = shop.fallback_text
            if shop.llm_key:
                config.update({"model": f"{shop.name}-model", "systemPrompt": shop.system_prompt})
                llm_secrets = {"apiKey": shop.llm_key, "baseUrl": self.llm.url + "/v1"}
                await store.save_credential(
                    Credential(
                        tenant.id, IntegrationType.LLM, "openai", Secrets(llm_secrets), config
                    )
                )
            elif config:  # the platform's LLM, but the shop's own fallback text
                await store.save_credential(
                    Credential(
                        tenant.id,
                        IntegrationType.LLM,
                        "openai",
                        Secrets({"apiKey": PLATFORM_LLM_KEY, "baseUrl": self.llm.url + "/v1"}),
                        config,
                    )
                )
        finally:
            await pool.close()
        self.seeded_at = time.monotonic()
        return Shop(**{**shop.__dict__, "tenant_id": tenant.id})

    # Meta's side ------------------------------------------------------------------------------

    @staticmethod
    def text_webhook(phone_number_id: str, *messages: dict[str, Any]) -> dict[str, Any]:
        return webhook(change(phone_number_id, messages=list(messages)))

    def post(self, server_url: str, payload: dict[str, Any], secret: str) -> httpx.Response:
        """Posts a signed webhook and expects 200. A shop seeded a moment ago reaches the
        server through a change notification; until it has (milliseconds), its app secret is
        unknown there and the post is a 401, retried here for up to ``SETTLE`` seconds."""
        body = encode(payload)
        while True:
            response = httpx.post(
                server_url + "/webhooks/whatsapp",
                content=body,
                headers=signed_headers(body, secret),
                timeout=10,
            )
            settling = time.monotonic() - self.seeded_at < SETTLE
            if response.status_code != 401 or not settling:
                break
            time.sleep(0.05)
        assert response.status_code == 200, response.text
        return response

    def say(self, server_url: str, shop_or_pnid: Shop | str, text: str, **kw: Any) -> str:
        """Posts one customer text message to a number; returns its wamid."""
        if isinstance(shop_or_pnid, Shop):
            pnid, secret = shop_or_pnid.phone_number_id, shop_or_pnid.webhook_secret
        else:
            pnid, secret = shop_or_pnid, PLATFORM_APP_SECRET
        message = text_message(text, **kw)
        self.post(server_url, self.text_webhook(pnid, message), secret)
        return str(message["id"])

    # The database, read directly ----------------------------------------------------------------

    def inbound(self, wamid: str) -> dict[str, Any]:
        with psycopg.connect(self.database_url) as conn:
            cur = conn.execute(
                "SELECT id, state, attempts, last_error FROM whatsapp_inbound_messages"
                " WHERE wamid = %(wamid)s",
                {"wamid": wamid},
            )
            row = cur.fetchone()
            names = [c.name for c in cur.description or ()]
        assert row is not None, f"no inbound message {wamid}"
        return dict(zip(names, row, strict=True))

    def chats_about(self, text: str) -> list[Any]:
        """The LLM requests whose last message is ``text`` (the message being answered)."""
        return [c for c in self.llm.chats() if c.body["messages"][-1]["content"] == text]

    def reset(self) -> None:
        """Back to well-behaved fakes (after a test scripted faults)."""
        self.graph.script_sends()
        self.graph.script_reads()
        self.graph.send_delay = 0.0
        self.llm.script()

    def credential_verification(self, tenant_id: UUID) -> tuple[bool, str | None]:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT is_verified, verification_error FROM tenant_integration_credentials"
                " WHERE tenant_id = %(t)s AND integration_type = 'whatsapp'",
                {"t": tenant_id},
            ).fetchone()
        assert row is not None
        return bool(row[0]), row[1]


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 45.0) -> T:
    """Polls ``check`` until it returns something truthy; fails naming ``what`` otherwise.

    The default is generous on purpose: a passing check returns at once, and a 2-core CI
    machine running the whole suite can be several times slower than a quiet one.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def fakes() -> Iterator[tuple[FakeGraph, FakeLLM]]:
    """Both fakes, started, for a fixture to yield from."""
    graph, llm = FakeGraph(), FakeLLM()
    graph.start()
    llm.start()
    try:
        yield graph, llm
    finally:
        graph.stop()
        llm.stop()


def module_world(admin_url: str) -> Iterator[World]:
    """A world on a scratch database of its own, both fakes started: what a module's
    ``world`` fixture yields from (``yield from module_world(pg_admin_url)``)."""
    for graph, llm in fakes():
        with scratch_database(admin_url) as url:
            yield World(url, graph, llm)


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new empty database on the test server (for a module's shared world), dropped after."""
    name = f"chg_e2e_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(admin_url, dbname=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(env: dict[str, str], folder: Path, role: str = "all") -> Iterator[str]:
    """``changarrito serve`` for a whole module (the e2e ``start_server`` fixture starts one
    per test); yields its URL once ``/ready`` answers, stops its process group after."""
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = (folder / "serve.log").open("ab")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("changarrito")),
            "serve",
            "--port",
            str(port),
            "--role",
            role,
        ],
        env={"PATH": os.environ.get("PATH", ""), "CHANGARRITO_HOME": str(folder), **env},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError((folder / "serve.log").read_text(errors="replace"))
        try:
            return httpx.get(url + "/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for("the server to be ready", ready, 60)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


class Worker:
    """A ``changarrito worker`` process of its own, in its own process group."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "worker.log"
        self._out = self.log.open("ab")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("changarrito")), "worker"],
            env={"PATH": os.environ.get("PATH", ""), "CHANGARRITO_HOME": str(folder), **env},
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._out,
            start_new_session=True,
        )
        wait_for("the worker to start", lambda: "workers.started" in self.output(), 30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def close(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._out.close()
