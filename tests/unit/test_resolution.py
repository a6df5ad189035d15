"""The fallback policy, one property per rule (``changarrito.domain.resolution``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from changarrito.domain.errors import NotConfigured, UnknownPhoneNumber
from changarrito.domain.model import (
    Credential,
    IntegrationType,
    PlatformCredential,
    PlatformDefaults,
    Route,
    Secrets,
    Source,
    WhatsAppNumber,
)
from changarrito.domain.resolution import (
    configure_endpoint,
    pick_tenant_credential,
    resolve,
    resolve_sender,
    route_number,
)

#: The built-in WhatsApp provider's id (Meta's Cloud API).
WHATSAPP_PROVIDER = "meta"
PROPERTY = settings(deadline=None, max_examples=40)

PROVIDERS = {
    IntegrationType.WHATSAPP: [WHATSAPP_PROVIDER],
    IntegrationType.LLM: ["openai", "anthropic"],
    IntegrationType.PAYMENTS: ["stripe", "mercadopago"],
}
#: Every (type, provider) pair in play, with the environment variable that configures it.
ENV_HINTS = {
    (itype, provider): f"{itype.value.upper()}_{provider.upper()}_KEY"
    for itype, providers in PROVIDERS.items()
    for provider in providers
}
PAIRS = sorted(ENV_HINTS)

itypes = st.sampled_from(IntegrationType)
any_bool = st.booleans()
tenant_ids = st.uuids()
# Aware instants over (nearly) the whole datetime range, in a few zones, so that "newest" is
# about instants; drawn as microsecond offsets, which is much cheaper than st.datetimes().
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
zones = st.sampled_from([UTC, timezone(timedelta(hours=-6)), timezone(timedelta(hours=5))])
instants = st.builds(
    lambda us, zone: (EPOCH + timedelta(microseconds=us)).astimezone(zone),
    st.integers(-62_000_000_000_000_000, 253_000_000_000_000_000),
    zones,
)
#: Secrets distinct per draw, so a served secret tells which credential it came from.
secret_values = st.uuids().map(lambda u: f"sk-{u.hex}")


def secrets_for(key: str) -> st.SearchStrategy[Secrets]:
    return secret_values.map(lambda v: Secrets({key: v}))


@st.composite
def credentials(
    draw: st.DrawFn,
    tenant_id: st.SearchStrategy[UUID] = tenant_ids,
    itype: st.SearchStrategy[IntegrationType] = itypes,
    active: st.SearchStrategy[bool] = any_bool,
) -> Credential:
    kind = draw(itype)
    return Credential(
        tenant_id=draw(tenant_id),
        integration_type=kind,
        provider=draw(st.sampled_from(PROVIDERS[kind])),
        secrets=draw(secrets_for("apiKey")),
        config=draw(st.fixed_dictionaries({}, optional={"phoneNumberId": st.text(max_size=5)})),
        is_active=draw(active),
        is_verified=draw(st.booleans()),
        priority=draw(st.integers(-2, 2)),
        id=draw(st.uuids()),
        updated_at=draw(instants),
    )


@st.composite
def platforms(draw: st.DrawFn, *, always: bool = False) -> PlatformDefaults:
    """Platform defaults with credentials for some pairs (all of them when ``always``)."""
    configured = PAIRS if always else draw(st.lists(st.sampled_from(PAIRS), unique=True))
    return PlatformDefaults(
        credentials={
            (itype, provider): PlatformCredential(
                itype, provider, draw(secrets_for("apiKey")), {"from": "env"}
            )
            for itype, provider in configured
        },
        default_providers={
            itype: draw(st.sampled_from(PROVIDERS[itype]))
            for itype in (IntegrationType.LLM, IntegrationType.PAYMENTS)
        },
        whatsapp_phone_number_id=draw(st.none() | st.just("platform-number")),
        env_hints=ENV_HINTS,
    )


def without(platform: PlatformDefaults, itype: IntegrationType, provider: str) -> PlatformDefaults:
    creds = {k: v for k, v in platform.credentials.items() if k != (itype, provider)}
    return PlatformDefaults(
        creds, platform.default_providers, platform.whatsapp_phone_number_id, platform.env_hints
    )


def active_of(
    tenant_id: UUID, itype: IntegrationType, stored: list[Credential], provider: str | None = None
) -> list[Credential]:
    return [
        c
        for c in stored
        if c.tenant_id == tenant_id
        and c.integration_type == itype
        and c.is_active
        and provider in (None, c.provider)
    ]


def wanted_provider(
    platform: PlatformDefaults, itype: IntegrationType, provider: str | None
) -> str:
    wanted = provider or platform.default_provider(itype)
    assert wanted is not None
    return wanted


requests = st.tuples(itypes, st.booleans()).flatmap(
    lambda t: st.tuples(st.just(t[0]), st.sampled_from(PROVIDERS[t[0]]) if t[1] else st.none())
)


# Tenant first, then the platform, then nothing -----------------------------------------------


@PROPERTY
@given(tenant_ids, requests, st.data(), platforms(always=True))
def test_an_active_tenant_credential_wins_over_the_platforms(
    tenant_id: UUID,
    request: tuple[IntegrationType, str | None],
    data: st.DataObject,
    platform: PlatformDefaults,
) -> None:
    itype, provider = request
    mine = data.draw(credentials(st.just(tenant_id), st.just(itype), st.just(True)))
    if provider is not None:
        mine = replace(mine, provider=provider)
    stored = [*data.draw(st.lists(credentials(), max_size=6)), mine]

    got = resolve(tenant_id, itype, stored, platform, provider)

    assert got.source is Source.TENANT
    assert got.tenant_id == tenant_id
    winner = next(
        c for c in active_of(tenant_id, itype, stored, provider) if c.id == got.credential_id
    )
    assert got.secrets == winner.secrets
    assert got.provider == winner.provider


@PROPERTY
@given(tenant_ids, requests, st.lists(credentials(), max_size=8), platforms(always=True))
def test_without_an_active_credential_of_its_own_a_tenant_gets_the_platforms(
    tenant_id: UUID,
    request: tuple[IntegrationType, str | None],
    others: list[Credential],
    platform: PlatformDefaults,
) -> None:
    itype, provider = request
    # The tenant's own credentials of this type, all switched off (or none at all).
    stored = [
        replace(c, tenant_id=tenant_id, is_active=False)
        if c.integration_type == itype and i % 2 == 0
        else c
        for i, c in enumerate(others)
    ]
    assume(not active_of(tenant_id, itype, stored, provider))
    wanted = wanted_provider(platform, itype, provider)

    got = resolve(tenant_id, itype, stored, platform, provider)

    env = platform.credential(itype, wanted)
    assert env is not None
    assert got.source is Source.PLATFORM
    assert got.tenant_id == tenant_id
    assert (got.provider, got.secrets, got.config) == (env.provider, env.secrets, env.config)
    assert got.credential_id is None


@PROPERTY
@given(tenant_ids, requests, st.lists(credentials(active=st.just(False)), max_size=6), platforms())
def test_with_neither_resolution_fails_naming_the_env_var_and_the_endpoint_that_fix_it(
    tenant_id: UUID,
    request: tuple[IntegrationType, str | None],
    inactive: list[Credential],
    platform: PlatformDefaults,
) -> None:
    itype, provider = request
    wanted = wanted_provider(platform, itype, provider)
    platform = without(platform, itype, wanted)

    with pytest.raises(NotConfigured) as caught:
        resolve(tenant_id, itype, inactive, platform, provider)

    assert ENV_HINTS[(itype, wanted)] in caught.value.message
    assert configure_endpoint(itype, wanted) in caught.value.message


@pytest.mark.parametrize("itype", [IntegrationType.LLM, IntegrationType.PAYMENTS])
def test_without_a_default_provider_the_error_still_names_the_env_vars_of_the_type(
    itype: IntegrationType,
) -> None:
    platform = PlatformDefaults(env_hints=ENV_HINTS)

    with pytest.raises(NotConfigured) as caught:
        resolve(UUID(int=1), itype, [], platform)

    for provider in PROVIDERS[itype]:
        assert ENV_HINTS[(itype, provider)] in caught.value.message
    assert configure_endpoint(itype) in caught.value.message


# Deterministic choice among several ----------------------------------------------------------


@PROPERTY
@given(tenant_ids, itypes, st.data())
def test_several_active_credentials_resolve_by_lowest_priority_then_newest(
    tenant_id: UUID, itype: IntegrationType, data: st.DataObject
) -> None:
    mine = data.draw(
        st.lists(credentials(st.just(tenant_id), st.just(itype), st.just(True)), min_size=2)
    )
    # Near-ties on purpose: updates a few microseconds apart (or equal), anywhere in time.
    base = data.draw(instants)
    offsets = data.draw(st.lists(st.integers(0, 3), min_size=len(mine), max_size=len(mine)))
    mine = [
        replace(c, updated_at=base + timedelta(microseconds=k))
        for c, k in zip(mine, offsets, strict=True)
    ]

    got = resolve(tenant_id, itype, mine, PlatformDefaults())

    best = min(c.priority for c in mine)
    top = [c for c in mine if c.priority == best]
    newest = max(c.updated_at for c in top)
    expected = max((c for c in top if c.updated_at == newest), key=lambda c: c.id.int)
    assert got.credential_id == expected.id


@PROPERTY
@given(
    tenant_ids, requests, st.lists(credentials(), max_size=10), st.randoms(use_true_random=False)
)
def test_the_winner_does_not_depend_on_the_order_the_store_returns_credentials_in(
    tenant_id: UUID,
    request: tuple[IntegrationType, str | None],
    stored: list[Credential],
    rnd: Any,
) -> None:
    itype, provider = request
    stored = [replace(c, tenant_id=tenant_id) if i % 2 else c for i, c in enumerate(stored)]
    shuffled = list(stored)
    rnd.shuffle(shuffled)

    first = pick_tenant_credential(tenant_id, itype, stored, provider)
    second = pick_tenant_credential(tenant_id, itype, shuffled, provider)

    assert first == second


def test_a_credential_whose_type_was_loaded_as_a_plain_string_still_counts() -> None:
    # Adapters build rows from the database, where the type is text; equal is enough.
    stored = Credential(UUID(int=1), "llm", "openai", Secrets({"apiKey": "sk-x"}))  # type: ignore[arg-type]

    got = resolve(UUID(int=1), IntegrationType.LLM, [stored], PlatformDefaults())

    assert got.source is Source.TENANT


# Isolation between tenants ------------------------------------------------------------------


@PROPERTY
@given(
    st.lists(st.uuids(), min_size=2, max_size=4, unique=True).flatmap(
        lambda pool: st.tuples(
            st.sampled_from(pool),
            st.lists(credentials(st.sampled_from(pool)), max_size=15),
        )
    ),
    requests,
    platforms(),
)
def test_a_tenant_never_receives_another_tenants_credential(
    case: tuple[UUID, list[Credential]],
    request: tuple[IntegrationType, str | None],
    platform: PlatformDefaults,
) -> None:
    tenant_id, stored = case
    itype, provider = request

    try:
        got = resolve(tenant_id, itype, stored, platform, provider)
    except NotConfigured:
        return

    others = {c.secrets for c in stored if c.tenant_id != tenant_id}
    assert got.tenant_id == tenant_id
    assert got.secrets not in others
    if got.source is Source.TENANT:
        (own,) = [c for c in stored if c.id == got.credential_id]
        assert own.tenant_id == tenant_id


# Where the answer came from -----------------------------------------------------------------


@PROPERTY
@given(tenant_ids, requests, st.lists(credentials(), max_size=10), platforms())
def test_the_result_says_whether_it_came_from_the_tenant_or_the_platform(
    tenant_id: UUID,
    request: tuple[IntegrationType, str | None],
    stored: list[Credential],
    platform: PlatformDefaults,
) -> None:
    itype, provider = request
    stored = [replace(c, tenant_id=tenant_id) if i % 2 else c for i, c in enumerate(stored)]
    try:
        got = resolve(tenant_id, itype, stored, platform, provider)
    except NotConfigured:
        return

    own = {c.id: c.secrets for c in active_of(tenant_id, itype, stored, provider)}
    if own:
        assert got.source is Source.TENANT
        assert own[got.credential_id] == got.secrets  # type: ignore[index]
    else:
        assert got.source is Source.PLATFORM
        env = platform.credential(itype, wanted_provider(platform, itype, provider))
        assert env is not None
        assert got.secrets == env.secrets


# WhatsApp: a reply leaves from the number that received the message ---------------------------

PLATFORM_NUMBER = "platform-number"
number_ids = st.text("0123456789", min_size=1, max_size=4)


def whatsapp_platform(with_credential: bool = True) -> PlatformDefaults:
    creds = {}
    if with_credential:
        key = (IntegrationType.WHATSAPP, WHATSAPP_PROVIDER)
        creds[key] = PlatformCredential(
            *key, Secrets({"accessToken": "platform-token"}), {"phoneNumberId": PLATFORM_NUMBER}
        )
    return PlatformDefaults(
        credentials=creds, whatsapp_phone_number_id=PLATFORM_NUMBER, env_hints=ENV_HINTS
    )


whatsapp_credentials = credentials(itype=st.just(IntegrationType.WHATSAPP))


@PROPERTY
@given(number_ids, tenant_ids, st.lists(whatsapp_credentials, max_size=6), st.data())
def test_a_message_to_a_tenants_number_is_answered_with_that_tenants_own_credential(
    number: str, owner_id: UUID, others: list[Credential], data: st.DataObject
) -> None:
    mine = data.draw(
        st.lists(
            credentials(st.just(owner_id), st.just(IntegrationType.WHATSAPP)),
            min_size=1,
            max_size=3,
        )
    )
    assume(any(c.is_active for c in mine))
    stored = data.draw(st.permutations([*others, *mine]))
    platform = whatsapp_platform()

    route = route_number(number, WhatsAppNumber(owner_id, number), platform)
    got = resolve_sender(route, stored, platform)

    assert route == Route(number, owner_id)
    assert (got.source, got.tenant_id) == (Source.TENANT, owner_id)
    (used,) = [c for c in mine if c.id == got.credential_id and c.is_active]
    assert got.secrets == used.secrets
    assert got.config["phoneNumberId"] == number


@PROPERTY
@given(st.none() | tenant_ids, st.lists(whatsapp_credentials, max_size=6))
def test_a_message_to_the_platforms_number_is_answered_with_the_platforms_credential(
    claimant: UUID | None, stored: list[Credential]
) -> None:
    platform = whatsapp_platform()
    # Even a tenant row claiming the platform's number does not take it over.
    owner = WhatsAppNumber(claimant, PLATFORM_NUMBER) if claimant else None

    route = route_number(PLATFORM_NUMBER, owner, platform)
    got = resolve_sender(route, stored, platform)

    assert route == Route(PLATFORM_NUMBER, None)
    assert (got.source, got.tenant_id) == (Source.PLATFORM, None)
    assert got.secrets == Secrets({"accessToken": "platform-token"})
    assert got.config["phoneNumberId"] == PLATFORM_NUMBER


@PROPERTY
@given(
    number_ids,
    st.none() | st.builds(WhatsAppNumber, tenant_ids, number_ids, is_active=st.booleans()),
)
def test_an_unknown_or_inactive_number_is_refused(
    number: str, owner: WhatsAppNumber | None
) -> None:
    assume(owner is None or not owner.is_active or owner.phone_number_id != number)

    with pytest.raises(UnknownPhoneNumber):
        route_number(number, owner, whatsapp_platform())


@PROPERTY
@given(number_ids, tenant_ids, st.lists(whatsapp_credentials, max_size=6))
def test_a_tenants_number_without_its_own_active_credential_is_never_answered_by_another(
    number: str, owner_id: UUID, stored: list[Credential]
) -> None:
    # Whatever else is stored (other tenants' tokens, its own inactive ones), nothing serves.
    stored = [replace(c, is_active=False) if c.tenant_id == owner_id else c for c in stored]
    platform = whatsapp_platform()
    route = route_number(number, WhatsAppNumber(owner_id, number), platform)

    with pytest.raises(NotConfigured):
        resolve_sender(route, stored, platform)


@PROPERTY
@given(
    st.lists(st.uuids(), min_size=1, max_size=3, unique=True).flatmap(
        lambda pool: st.tuples(
            st.dictionaries(number_ids | st.just(PLATFORM_NUMBER), st.sampled_from(pool)),
            st.lists(
                credentials(st.sampled_from(pool), st.just(IntegrationType.WHATSAPP)),
                max_size=8,
            ),
        )
    ),
    number_ids | st.just(PLATFORM_NUMBER),
    st.booleans(),
)
def test_a_reply_always_leaves_from_the_number_that_received_the_message(
    world: tuple[dict[str, UUID], list[Credential]], number: str, platform_configured: bool
) -> None:
    owners, stored = world
    platform = whatsapp_platform(platform_configured)
    owner = WhatsAppNumber(owners[number], number) if number in owners else None
    try:
        got = resolve_sender(route_number(number, owner, platform), stored, platform)
    except (UnknownPhoneNumber, NotConfigured):
        return

    assert got.config["phoneNumberId"] == number
    expected_tenant = None if number == PLATFORM_NUMBER else owners[number]
    assert got.tenant_id == expected_tenant
    if got.source is Source.TENANT:
        (used,) = [c for c in stored if c.id == got.credential_id]
        assert used.tenant_id == expected_tenant
