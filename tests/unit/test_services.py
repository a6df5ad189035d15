"""Cached resolution over the ports (``changarrito.domain.services``), with in-memory fakes.

The fakes come from ``tests/unit/conftest.py``: ``make_store`` / ``make_cache`` are their
classes. The store counts its calls, which is how these tests tell a cache hit from a read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar
from uuid import UUID

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from changarrito.domain import resolution
from changarrito.domain.errors import ChangarritoError, NotConfigured, UnknownPhoneNumber
from changarrito.domain.model import (
    Credential,
    IntegrationType,
    PlatformCredential,
    PlatformDefaults,
    Resolved,
    Secrets,
    Source,
    WhatsAppNumber,
)
from changarrito.domain.services import CredentialResolver

LLM, WHATSAPP, PAYMENTS = IntegrationType.LLM, IntegrationType.WHATSAPP, IntegrationType.PAYMENTS
T1, T2 = UUID(int=1), UUID(int=2)
#: The built-in WhatsApp provider's id (Meta's Cloud API).
WHATSAPP_PROVIDER = "meta"
PLATFORM_NUMBER = "999"
PLATFORM = PlatformDefaults(
    credentials={
        (LLM, "openai"): PlatformCredential(LLM, "openai", Secrets({"apiKey": "platform-llm"})),
        (WHATSAPP, WHATSAPP_PROVIDER): PlatformCredential(
            WHATSAPP, WHATSAPP_PROVIDER, Secrets({"accessToken": "platform-wa"})
        ),
    },
    default_providers={LLM: "openai"},
    whatsapp_phone_number_id=PLATFORM_NUMBER,
    env_hints={(LLM, "openai"): "OPENAI_API_KEY", (WHATSAPP, "meta"): "WHATSAPP_ACCESS_TOKEN"},
)


def credential(tenant_id: UUID, itype: IntegrationType, provider: str, key: str) -> Credential:
    return Credential(tenant_id, itype, provider, Secrets({"apiKey": key}))


def parts(make_store: Any, make_cache: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any, Any]:
    store, cache = make_store(*args, **kwargs), make_cache()
    return store, cache, CredentialResolver(store, cache, PLATFORM)


# The cache in front of the store ------------------------------------------------------------


async def test_a_second_resolve_is_served_from_the_cache_without_touching_the_store(
    make_store: Any, make_cache: Any
) -> None:
    store, _, resolver = parts(make_store, make_cache, [credential(T1, LLM, "openai", "t1")])

    first = await resolver.resolve(T1, LLM)
    second = await resolver.resolve(T1, LLM)

    assert second == first
    assert first.source is Source.TENANT
    assert store.calls["credentials_for"] == 1


async def test_invalidating_a_tenant_makes_the_next_resolve_read_the_store(
    make_store: Any, make_cache: Any
) -> None:
    store, _, resolver = parts(make_store, make_cache, [credential(T1, LLM, "openai", "old")])
    await resolver.resolve(T1, LLM)
    await store.save_credential(credential(T1, LLM, "openai", "new"))

    resolver.invalidate_tenant(T1)
    got = await resolver.resolve(T1, LLM)

    assert got.secrets == Secrets({"apiKey": "new"})
    assert store.calls["credentials_for"] == 2


async def test_invalidating_one_tenant_leaves_the_others_cached(
    make_store: Any, make_cache: Any
) -> None:
    store, _, resolver = parts(make_store, make_cache, [credential(T1, LLM, "openai", "t1")])
    await resolver.resolve(T1, LLM)
    await resolver.resolve(T2, LLM)

    resolver.invalidate_tenant(T2)
    await resolver.resolve(T1, LLM)

    assert store.calls["credentials_for"] == 2


async def test_a_refusal_is_not_cached(make_store: Any, make_cache: Any) -> None:
    store, _, resolver = parts(make_store, make_cache)
    with pytest.raises(NotConfigured):
        await resolver.resolve(T1, PAYMENTS)

    await store.save_credential(credential(T1, PAYMENTS, "stripe", "sk"))
    got = await resolver.resolve(T1, PAYMENTS)

    assert got.secrets == Secrets({"apiKey": "sk"})


async def test_a_second_reply_from_a_number_is_served_from_the_cache(
    make_store: Any, make_cache: Any
) -> None:
    store, _, resolver = parts(
        make_store,
        make_cache,
        [credential(T1, WHATSAPP, WHATSAPP_PROVIDER, "wa")],
        [WhatsAppNumber(T1, "100")],
    )

    first = await resolver.sender("100")
    second = await resolver.sender("100")

    assert second == first
    assert (first.tenant_id, first.config["phoneNumberId"]) == (T1, "100")
    # One round trip for the first reply (owner and credentials together), none after.
    assert store.calls["number_with_credentials"] == 1
    assert store.calls["number_owner"] == store.calls["credentials_for"] == 0


async def test_invalidating_a_number_makes_the_next_reply_look_up_its_owner_again(
    make_store: Any, make_cache: Any
) -> None:
    store, _, resolver = parts(
        make_store,
        make_cache,
        [credential(T1, WHATSAPP, WHATSAPP_PROVIDER, "wa")],
        [WhatsAppNumber(T1, "100")],
    )
    await resolver.sender("100")
    store.numbers["100"] = WhatsAppNumber(T1, "100", is_active=False)

    resolver.invalidate_number("100")

    with pytest.raises(UnknownPhoneNumber):
        await resolver.sender("100")
    assert store.calls["number_with_credentials"] == 2


async def test_the_platforms_number_is_answered_without_asking_the_store(
    make_store: Any, make_cache: Any
) -> None:
    store, _, resolver = parts(make_store, make_cache)

    got = await resolver.sender(PLATFORM_NUMBER)

    assert (got.source, got.config["phoneNumberId"]) == (Source.PLATFORM, PLATFORM_NUMBER)
    assert sum(store.calls.values()) == 0


# Random sequences of reads and writes ---------------------------------------------------------

TENANTS = [UUID(int=i) for i in range(1, 4)]
NUMBERS = ["100", "200", "300", PLATFORM_NUMBER]
PROVIDERS = {WHATSAPP: [WHATSAPP_PROVIDER], LLM: ["openai", "anthropic"], PAYMENTS: ["stripe"]}

R = TypeVar("R")


def run(coro: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(coro)


def outcome(call: Any) -> Resolved | type[ChangarritoError]:
    """The result, or the class of the domain error raised, so both can be compared."""
    try:
        return call()  # type: ignore[no-any-return]
    except ChangarritoError as error:
        return type(error)


class CachedResolution(RuleBasedStateMachine):
    """Writes go to the store and invalidate, as the write use cases do; every read through
    the cache must then agree with the pure policy applied to the store's current content.

    The store is leaky (hands over every tenant's rows), and the fake cache refuses to file a
    resolution under another tenant's key, so a cross-tenant answer fails either way.
    """

    def __init__(self, make_store: Any, make_cache: Any) -> None:
        super().__init__()
        self.store = make_store(leaky=True)
        self.cache = make_cache()
        self.resolver = CredentialResolver(self.store, self.cache, PLATFORM)
        self.writes = 0

    @rule(
        tenant=st.sampled_from(TENANTS),
        request=st.sampled_from([(t, p) for t, ps in PROVIDERS.items() for p in ps]),
        active=st.booleans(),
        priority=st.integers(0, 1),
    )
    def save_credential(
        self, tenant: UUID, request: tuple[IntegrationType, str], active: bool, priority: int
    ) -> None:
        self.writes += 1
        itype, provider = request
        run(
            self.store.save_credential(
                Credential(
                    tenant,
                    itype,
                    provider,
                    Secrets({"apiKey": f"{tenant.int}-{self.writes}"}),
                    {"phoneNumberId": "stale"},
                    is_active=active,
                    priority=priority,
                )
            )
        )
        self.resolver.invalidate_tenant(tenant)

    @rule(tenant=st.sampled_from(TENANTS), itype=st.sampled_from(IntegrationType))
    def delete_credentials(self, tenant: UUID, itype: IntegrationType) -> None:
        numbers = run(self.store.numbers_for(tenant)) if itype is WHATSAPP else []
        run(self.store.delete_credentials(tenant, itype))
        self.resolver.invalidate_tenant(tenant)
        for number in numbers:
            self.resolver.invalidate_number(number.phone_number_id)

    @rule(tenant=st.sampled_from(TENANTS), number=st.sampled_from(NUMBERS), active=st.booleans())
    def assign_number(self, tenant: UUID, number: str, active: bool) -> None:
        self.store.numbers[number] = WhatsAppNumber(tenant, number, is_active=active)
        self.resolver.invalidate_number(number)

    @rule(
        tenant=st.sampled_from(TENANTS),
        request=st.sampled_from(
            [(t, None) for t in IntegrationType]
            + [(t, p) for t, ps in PROVIDERS.items() for p in ps]
        ),
    )
    def resolve(self, tenant: UUID, request: tuple[IntegrationType, str | None]) -> None:
        itype, provider = request
        got = outcome(lambda: run(self.resolver.resolve(tenant, itype, provider)))
        expected = outcome(
            lambda: resolution.resolve(tenant, itype, self.store.credentials, PLATFORM, provider)
        )
        assert got == expected
        if isinstance(got, Resolved):
            assert got.tenant_id == tenant

    @rule(number=st.sampled_from(NUMBERS))
    def reply_from(self, number: str) -> None:
        got = outcome(lambda: run(self.resolver.sender(number)))

        def fresh() -> Resolved:
            owner = None if number == PLATFORM_NUMBER else self.store.numbers.get(number)
            route = resolution.route_number(number, owner, PLATFORM)
            return resolution.resolve_sender(route, self.store.credentials, PLATFORM)

        assert got == outcome(fresh)
        if isinstance(got, Resolved):
            assert got.config["phoneNumberId"] == number

    @invariant()
    def every_cached_resolution_belongs_to_the_tenant_it_is_filed_under(self) -> None:
        for (tenant, itype, _), value in self.cache.resolved.items():
            assert (value.tenant_id, value.integration_type) == (tenant, itype)
        for number, route in self.cache.routes.items():
            assert route.phone_number_id == number
        for number, sender in self.cache.senders.items():
            # A number's cached sender belongs to the tenant that owns the number now.
            owner = self.store.numbers.get(number)
            assert owner is not None and owner.is_active and sender.tenant_id == owner.tenant_id


def test_cached_resolution_agrees_with_the_store_and_never_crosses_tenants(
    make_store: Any, make_cache: Any
) -> None:
    run_state_machine_as_test(
        lambda: CachedResolution(make_store, make_cache),
        settings=settings(deadline=None, max_examples=60, stateful_step_count=30),
    )
