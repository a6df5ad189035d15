"""The claim rule of WhatsApp numbers and business accounts (``domain.integrations``).

A claim is confirmed only when the provider's ``verify`` (Graph, with the tenant's own token)
succeeds; a pending claim owns nothing and takes nothing; a confirmed claim takes the number
from any pending one, and only a confirmed claim makes another tenant's claim a conflict.
The use cases run on the in-memory store, with a catalog whose Graph knows who reads what.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from changarrito.domain.errors import ProviderAuthError, RetryableProviderError
from changarrito.domain.integrations import (
    PENDING,
    Actor,
    ClaimState,
    Integrations,
    NumberTaken,
    claim_state,
)
from changarrito.domain.model import IntegrationType, PlatformDefaults, Secrets, WhatsAppNumber
from fakes.memory import MemoryAuditLog, MemoryStore

WHATSAPP = IntegrationType.WHATSAPP
OWNER, SQUATTER = UUID(int=1), UUID(int=2)
PLATFORM_NUMBER = "100000000000009"
ACTOR = Actor("test")


class GraphCatalog:
    """The WhatsApp provider as the use cases see it; ``readable`` holds the (token, number,
    account) triples Graph confirms, ``down`` makes every check unreachable."""

    def __init__(self) -> None:
        self.readable: set[tuple[str, str, str]] = set()
        self.down = False
        self.checks = 0

    def installed(self, itype: IntegrationType) -> list[str]:
        return ["meta"]

    def default_model(self, provider: str) -> str | None:
        return None

    def normalize(
        self,
        itype: IntegrationType,
        provider: str,
        secrets: Mapping[str, str],
        config: Mapping[str, Any],
    ) -> tuple[dict[str, str], dict[str, Any]]:
        return dict(secrets), dict(config)

    async def check_endpoints(self, secrets: Mapping[str, str]) -> None:
        return None

    async def verify(
        self, itype: IntegrationType, provider: str, secrets: Secrets, config: Mapping[str, Any]
    ) -> None:
        self.checks += 1
        if self.down:
            raise RetryableProviderError("WhatsApp is busy or unavailable", provider="whatsapp")
        claim = (secrets["accessToken"], config["phoneNumberId"], config["businessAccountId"])
        if claim not in self.readable:
            raise ProviderAuthError("(#100) no permission", provider="whatsapp")


class NoCache:
    def invalidate_tenant(self, tenant_id: UUID) -> None:
        pass

    def invalidate_number(self, phone_number_id: str) -> None:
        pass


@pytest.fixture
def graph() -> GraphCatalog:
    return GraphCatalog()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(any_tenant=True)


@pytest.fixture
def integrations(store: MemoryStore, graph: GraphCatalog) -> Integrations:
    platform = PlatformDefaults(whatsapp_phone_number_id=PLATFORM_NUMBER)
    return Integrations(
        store,
        NoCache(),
        MemoryAuditLog(),
        graph,
        platform,
        default_llm_model=None,
        fingerprint_key=b"claims-tests-fingerprint-key",
    )


async def put(
    integrations: Integrations, tenant: UUID, token: str, number: str, account: str
) -> bool:
    """Saves the tenant's WhatsApp credential; whether it came back verified."""
    saved = await integrations.configure(
        ACTOR,
        tenant,
        WHATSAPP,
        "meta",
        {"accessToken": token},
        {"phoneNumberId": number, "businessAccountId": account},
    )
    return saved.is_verified


async def test_a_claim_graph_confirms_is_stored_with_its_account(
    integrations: Integrations, store: MemoryStore, graph: GraphCatalog
) -> None:
    graph.readable.add(("owner-token", "111", "900"))
    assert await put(integrations, OWNER, "owner-token", "111", "900")
    assert store.numbers["111"] == WhatsAppNumber(
        OWNER, "111", id=store.numbers["111"].id, business_account_id="900"
    )


async def test_a_claim_graph_refuses_is_saved_pending_and_owns_nothing(
    integrations: Integrations, store: MemoryStore
) -> None:
    assert not await put(integrations, SQUATTER, "squatter-token", "111", "900")
    assert "111" not in store.numbers
    [credential] = store.credentials
    assert credential.verification_error is not None
    assert credential.verification_error.startswith(PENDING)


async def test_a_confirmed_claim_takes_the_number_from_a_pending_one(
    integrations: Integrations, store: MemoryStore, graph: GraphCatalog
) -> None:
    graph.readable.add(("owner-token", "111", "900"))
    await put(integrations, SQUATTER, "squatter-token", "111", "900")
    assert await put(integrations, OWNER, "owner-token", "111", "900")
    assert store.numbers["111"].tenant_id == OWNER
    with pytest.raises(NumberTaken):
        await put(integrations, SQUATTER, "squatter-token", "111", "900")
    assert not (await integrations.verify(ACTOR, SQUATTER, WHATSAPP)).is_verified
    # Even a token Graph lets read the number (an agency's, say) comes second.
    graph.readable.add(("squatter-token", "111", "900"))
    with pytest.raises(NumberTaken):
        await integrations.verify(ACTOR, SQUATTER, WHATSAPP)
    assert store.numbers["111"].tenant_id == OWNER


async def test_a_pending_claim_never_conflicts_with_another_pending_claim(
    integrations: Integrations, store: MemoryStore, graph: GraphCatalog
) -> None:
    graph.down = True
    assert not await put(integrations, SQUATTER, "squatter-token", "111", "900")
    assert not await put(integrations, OWNER, "owner-token", "111", "900")
    assert store.numbers == {}


async def test_verify_confirms_a_pending_claim_once_graph_agrees(
    integrations: Integrations, store: MemoryStore, graph: GraphCatalog
) -> None:
    graph.down = True
    await put(integrations, OWNER, "owner-token", "111", "900")
    graph.down = False
    graph.readable.add(("owner-token", "111", "900"))
    result = await integrations.verify(ACTOR, OWNER, WHATSAPP)
    assert result.is_verified
    assert store.numbers["111"].business_account_id == "900"
    assert claim_state(store.credentials[0].config, store.numbers.values()) is ClaimState.CONFIRMED


async def test_a_confirmed_claim_survives_a_save_graph_cannot_check(
    integrations: Integrations, store: MemoryStore, graph: GraphCatalog
) -> None:
    graph.readable.add(("owner-token", "111", "900"))
    await put(integrations, OWNER, "owner-token", "111", "900")
    graph.down = True
    assert not await put(integrations, OWNER, "owner-token-rotated", "111", "900")
    assert store.numbers["111"].tenant_id == OWNER
    # Another account, though, is a new claim: the old one is released until Graph confirms.
    assert not await put(integrations, OWNER, "owner-token-rotated", "111", "901")
    assert store.numbers == {}


async def test_an_unchanged_confirmed_credential_is_not_checked_again(
    integrations: Integrations, graph: GraphCatalog
) -> None:
    graph.readable.add(("owner-token", "111", "900"))
    await put(integrations, OWNER, "owner-token", "111", "900")
    await put(integrations, OWNER, "owner-token", "111", "900")
    assert graph.checks == 1


async def test_the_platforms_number_is_never_claimed_even_with_graphs_word(
    integrations: Integrations, graph: GraphCatalog
) -> None:
    graph.readable.add(("owner-token", PLATFORM_NUMBER, "900"))
    with pytest.raises(NumberTaken):
        await put(integrations, OWNER, "owner-token", PLATFORM_NUMBER, "900")


ids = st.sampled_from(["111", "222"])
accounts = st.sampled_from(["900", "901", None])


@given(number=ids, account=accounts, held=st.lists(st.tuples(ids, accounts), max_size=3))
def test_a_claim_is_confirmed_exactly_when_a_held_number_matches_number_and_account(
    number: str, account: str | None, held: list[tuple[str, str | None]]
) -> None:
    config = {"phoneNumberId": number, **({"businessAccountId": account} if account else {})}
    numbers = [WhatsAppNumber(OWNER, n, business_account_id=a) for n, a in held]
    expected = ClaimState.CONFIRMED if (number, account) in held else ClaimState.PENDING
    assert claim_state(config, numbers) is expected
