"""Tenant A's token never reads or changes tenant B: random operations by several tenants.

A hypothesis state machine drives the real app (sync ``TestClient``; the service is built on
the client's own event loop) and keeps a model of what each tenant configured. After every
step each tenant sees exactly its own model, the internal API resolves each tenant to its own
secrets (or the platform's), and no tenant-facing body holds another tenant's secret.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from litestar.testing import TestClient

from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.http import HttpClients
from changarrito.bootstrap import Database, bootstrap
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Settings
from conftest import (
    _LEDGER,
    INTERNAL_HEADERS,
    TEST_ENV,
    FakeUpstreams,
    bearer,
    token_for,
)

NUMBERS = [str(900000000000000 + i) for i in range(4)]
LLM_PROVIDERS = ["openai", "anthropic", "openrouter"]
PAYMENT_CREDENTIALS = {
    "stripe": lambda key: {"apiKey": key},
    "mercadopago": lambda key: {"accessToken": key},
    "clip": lambda key: {"apiKey": key, "secretKey": key + "-s"},
}


@dataclass
class Shop:
    id: uuid.UUID
    headers: dict[str, str]
    number: str | None = None
    llm: tuple[str, str] | None = None
    payments: dict[str, str] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)


class TenantIsolation(RuleBasedStateMachine):
    database_url: str = ""
    shops = Bundle("shops")

    def __init__(self) -> None:
        super().__init__()
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            # Each example starts empty (the database is this test's own).
            if conn.execute("SELECT to_regclass('tenants')").fetchone()[0]:
                conn.execute("TRUNCATE tenants CASCADE")
        env = dict(TEST_ENV)
        self.settings = Settings.from_env(env)
        self.app = create_app(self.settings, service=object(), role="backend")  # type: ignore[arg-type]
        self.client = TestClient(app=self.app)
        self.client.__enter__()
        fake = FakeUpstreams()
        http = HttpClients(transport=httpx.MockTransport(fake.handler))
        database = Database(self.database_url, KeyRing.generate("iso"))

        async def build() -> Any:
            return await bootstrap(
                self.settings, database, listen=False, check_keys=False, http=http
            )

        self.service = self.client.blocking_portal.call(build)  # type: ignore[union-attr]
        self.app.state.service = self.service
        self.all: list[Shop] = []
        self.counter = 0

    def teardown(self) -> None:
        self.client.blocking_portal.call(self.service.aclose)  # type: ignore[union-attr]
        self.client.__exit__(None, None, None)

    # -- helpers ---------------------------------------------------------------------------

    def secret(self, shop: Shop, kind: str) -> str:
        self.counter += 1
        value = f"{kind}-{shop.id.hex[:8]}-secret-{self.counter:04d}"
        shop.secrets.add(value)
        _LEDGER.remember(value)
        return value

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        if not path.startswith("/api/v1/internal/"):
            _LEDGER.saw_body(f"{method} {path}", response.text)
        assert response.status_code < 500, response.text
        return response

    # -- rules ------------------------------------------------------------------------------

    @initialize(target=shops)
    def first_shop(self) -> Shop:
        return self.new_shop()

    @precondition(lambda self: len(self.all) < 3)
    @rule(target=shops)
    def another_shop(self) -> Shop:
        return self.new_shop()

    def new_shop(self) -> Shop:
        response = self.call(
            "POST", "/api/v1/internal/tenants", json={"name": "shop"}, headers=INTERNAL_HEADERS
        )
        assert response.status_code == 201
        tenant_id = uuid.UUID(response.json()["id"])
        shop = Shop(tenant_id, bearer(token_for(tenant_id)))
        self.all.append(shop)
        return shop

    @rule(shop=shops, number=st.sampled_from(NUMBERS))
    def put_whatsapp(self, shop: Shop, number: str) -> None:
        token = "EAA" + self.secret(shop, "wa")
        body = {
            "credentials": {
                "accessToken": token,
                "phoneNumberId": number,
                "businessAccountId": "1",
            }
        }
        response = self.call(
            "PUT", "/api/v1/integrations/whatsapp", json=body, headers=shop.headers
        )
        taken = any(s.number == number for s in self.all if s is not shop)
        if taken:
            assert response.status_code == 409, response.text
        else:
            assert response.status_code == 200, response.text
            shop.number = number

    @rule(shop=shops, provider=st.sampled_from(LLM_PROVIDERS))
    def put_llm(self, shop: Shop, provider: str) -> None:
        key = self.secret(shop, "llm")
        body = {"provider": provider, "credentials": {"apiKey": key}}
        response = self.call("PUT", "/api/v1/integrations/llm", json=body, headers=shop.headers)
        assert response.status_code == 200, response.text
        shop.llm = (provider, key)

    @rule(shop=shops, provider=st.sampled_from(sorted(PAYMENT_CREDENTIALS)))
    def put_payment(self, shop: Shop, provider: str) -> None:
        key = self.secret(shop, "pay")
        body = {"credentials": PAYMENT_CREDENTIALS[provider](key)}
        url = f"/api/v1/integrations/payments/{provider}"
        response = self.call("PUT", url, json=body, headers=shop.headers)
        assert response.status_code == 200, response.text
        shop.payments[provider] = key

    @rule(shop=shops, what=st.sampled_from(["whatsapp", "llm", "payments/stripe", "payments/clip"]))
    def delete(self, shop: Shop, what: str) -> None:
        response = self.call("DELETE", f"/api/v1/integrations/{what}", headers=shop.headers)
        assert response.status_code == 204
        if what == "whatsapp":
            shop.number = None
        elif what == "llm":
            shop.llm = None
        else:
            shop.payments.pop(what.split("/")[1], None)

    @rule(shop=shops, what=st.sampled_from(["whatsapp", "llm", "payments/stripe"]))
    def verify(self, shop: Shop, what: str) -> None:
        response = self.call("POST", f"/api/v1/integrations/{what}/verify", headers=shop.headers)
        configured = {
            "whatsapp": shop.number is not None,
            "llm": shop.llm is not None,
            "payments/stripe": "stripe" in shop.payments,
        }[what]
        assert response.status_code == (200 if configured else 409), response.text

    @rule(shop=shops, victim=shops)
    def forged_token_for_another_shop(self, shop: Shop, victim: Shop) -> None:
        forged = token_for(victim.id, secret="guessed-" + "k" * 40)
        body = {"provider": "openai", "credentials": {"apiKey": "sk-forged-0000000"}}
        response = self.call("PUT", "/api/v1/integrations/llm", json=body, headers=bearer(forged))
        assert response.status_code == 401
        unsigned = jwt.encode({"tenant_id": str(victim.id), "exp": 2**31}, None, "none")
        response = self.call("DELETE", "/api/v1/integrations/llm", headers=bearer(unsigned))
        assert response.status_code == 401

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def every_shop_sees_exactly_its_own_configuration(self) -> None:
        for shop in self.all:
            response = self.call("GET", "/api/v1/integrations/status", headers=shop.headers)
            status = response.json()
            assert status["whatsapp"]["configured"] == (shop.number is not None)
            assert status["whatsapp"].get("phoneNumberId") == shop.number
            assert status["llm"]["configured"] == (shop.llm is not None)
            if shop.llm:
                assert status["llm"]["provider"] == shop.llm[0]
            configured = {p for p, s in status["payments"].items() if s["configured"]}
            assert configured == set(shop.payments)
            others = set().union(*(s.secrets for s in self.all if s is not shop))
            assert not any(secret in response.text for secret in others)

    @invariant()
    def the_internal_api_resolves_each_shop_to_its_own_secrets(self) -> None:
        for shop in self.all:
            llm = self.call(
                "GET", f"/api/v1/internal/integrations/{shop.id}/llm", headers=INTERNAL_HEADERS
            ).json()
            if shop.llm:
                assert (llm["source"], llm["provider"]) == ("tenant", shop.llm[0])
                assert llm["credentials"]["apiKey"] == shop.llm[1]
            else:
                assert llm["source"] == "platform"
                assert llm["credentials"]["apiKey"] == TEST_ENV["OPENAI_API_KEY"]
        for number in NUMBERS:
            owner = next((s for s in self.all if s.number == number), None)
            response = self.call(
                "GET",
                f"/api/v1/internal/integrations/resolve-tenant/{number}",
                headers=INTERNAL_HEADERS,
            )
            if owner is None:
                assert response.status_code == 404
            else:
                assert response.json() == {"tenantId": str(owner.id)}


@pytest.fixture
def isolation_database(fresh_database_url: str) -> str:
    return fresh_database_url


def test_tenants_never_read_or_change_each_other(isolation_database: str) -> None:
    TenantIsolation.database_url = isolation_database
    run = TenantIsolation.TestCase
    run.settings = settings(
        max_examples=10,
        stateful_step_count=10,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    run().runTest()
