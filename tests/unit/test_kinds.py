"""Integration kinds as data: one row per kind, and everything that differs by kind reads it."""

from __future__ import annotations

import inspect
from uuid import UUID

import pytest

from changarrito.domain.integration_errors import UnknownProvider, UnknownProviderInPath
from changarrito.domain.integrations import Actor, Integrations
from changarrito.domain.kinds import KINDS, DefaultRule, IntegrationType, StatusShape, kind_of
from changarrito.domain.model import Credential, PlatformDefaults, Secrets
from changarrito.domain.resolution import configure_endpoint
from changarrito.plugins import hookspecs
from changarrito.plugins.catalog import RegistryCatalog
from changarrito.plugins.hookspecs import PROVIDER_BASES
from changarrito.plugins.manager import load_plugins
from changarrito.plugins.platform import platform_defaults
from changarrito.plugins.registry import ProviderRegistry, format_plugins_table
from changarrito.testing import FakeUpstream
from fakes.memory import MemoryAuditLog, MemoryStore

TENANT = UUID(int=7)
ENV = {
    "WHATSAPP_ACCESS_TOKEN": " EAAplatform-token-000000 ",
    "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
    "WHATSAPP_BUSINESS_ACCOUNT_ID": "200000000000001",
    "OPENAI_API_KEY": "sk-platform-0000000000",
    "STRIPE_API_KEY": "sk_test_platform_000000",
    "CLIP_API_KEY": "clip-platform-key-000",
    "CLIP_SECRET_KEY": "clip-platform-secret-0",
}


@pytest.fixture(scope="module")
def registry() -> ProviderRegistry:
    return load_plugins(ENV, http=FakeUpstream().clients())


def use_cases(registry: ProviderRegistry, store: MemoryStore) -> Integrations:
    platform = platform_defaults(ENV, registry, llm_provider="openai", llm_model="gpt-4o-mini")
    return Integrations(
        store,
        NoCache(),
        MemoryAuditLog(),
        RegistryCatalog(registry),
        platform,
        default_llm_model="gpt-4o-mini",
        fingerprint_key=b"test-kinds-fingerprint-key",
    )


class NoCache:
    """An invalidator with nothing to invalidate."""

    def invalidate_tenant(self, tenant_id: UUID) -> None:
        pass

    def invalidate_number(self, phone_number_id: str) -> None:
        pass


def test_every_integration_type_has_one_row_and_one_base_class() -> None:
    assert set(KINDS) == set(IntegrationType) == set(PROVIDER_BASES)
    for itype, kind in KINDS.items():
        assert kind.type is itype and kind.name == itype.value


def test_every_kinds_hook_is_a_hookspec() -> None:
    specs = {n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)}
    assert {k.hook for k in KINDS.values()} <= specs


def test_a_kind_is_found_by_its_one_name() -> None:
    assert kind_of("whatsapp").default_provider == "meta"
    assert kind_of(IntegrationType.PAYMENTS).name == "payments"


def test_the_configure_endpoint_names_the_provider_only_for_per_provider_kinds() -> None:
    assert configure_endpoint(IntegrationType.WHATSAPP) == "PUT /api/v1/integrations/whatsapp"
    assert configure_endpoint(IntegrationType.LLM, "openai") == "PUT /api/v1/integrations/llm"
    assert (
        configure_endpoint(IntegrationType.PAYMENTS, "clip")
        == "PUT /api/v1/integrations/payments/clip"
    )
    assert configure_endpoint(IntegrationType.PAYMENTS).endswith("/payments/{provider}")


def test_the_status_order_puts_the_contracts_providers_first_then_the_rest_sorted() -> None:
    kind = KINDS[IntegrationType.PAYMENTS]
    assert kind.ordered(["zeta", "clip", "alpha", "stripe"]) == ["stripe", "clip", "alpha", "zeta"]


def test_a_pinned_kind_ignores_a_configured_default_and_a_setting_kind_reads_it() -> None:
    platform = PlatformDefaults(
        default_providers={IntegrationType.WHATSAPP: "other", IntegrationType.LLM: "anthropic"}
    )
    assert KINDS[IntegrationType.WHATSAPP].default is DefaultRule.PINNED
    assert platform.default_provider(IntegrationType.WHATSAPP) == "meta"
    assert platform.default_provider(IntegrationType.LLM) == "anthropic"
    assert PlatformDefaults().default_provider(IntegrationType.PAYMENTS) is None


def test_the_registry_lists_every_kinds_providers(registry: ProviderRegistry) -> None:
    assert registry.ids(IntegrationType.WHATSAPP) == ["meta"]
    assert registry.ids(IntegrationType.PAYMENTS) == ["clip", "mercadopago", "stripe"]
    assert "openai" in registry.ids(IntegrationType.LLM)
    assert {i.kind for i in registry.info()} == set(IntegrationType)


def test_the_plugins_listing_names_each_kind_by_its_one_name(registry: ProviderRegistry) -> None:
    rows = [line.split() for line in format_plugins_table(registry).splitlines()[1:] if line]
    kinds = {row[0]: row[1] for row in rows}
    assert (kinds["meta"], kinds["openai"], kinds["stripe"]) == ("whatsapp", "llm", "payments")


def test_platform_defaults_come_from_each_kinds_providers(registry: ProviderRegistry) -> None:
    platform = platform_defaults(ENV, registry, llm_provider="openai", llm_model="small")
    wa = platform.credential(IntegrationType.WHATSAPP, "meta")
    assert wa is not None and wa.secrets["accessToken"] == "EAAplatform-token-000000"
    assert dict(wa.config) == {
        "phoneNumberId": "100000000000001",
        "businessAccountId": "200000000000001",
    }
    assert platform.whatsapp_phone_number_id == "100000000000001"
    llm = platform.credential(IntegrationType.LLM, "openai")
    assert llm is not None and dict(llm.config) == {"model": "small"}
    # payments: the first provider, by id, the platform has credentials for
    assert platform.default_provider(IntegrationType.PAYMENTS) == "clip"
    assert platform.default_provider(IntegrationType.LLM) == "openai"
    hints = platform.env_hints
    assert hints[(IntegrationType.WHATSAPP, "meta")] == (
        "WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID"
    )
    assert hints[(IntegrationType.PAYMENTS, "stripe")] == "STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET"


def test_the_platforms_whatsapp_credential_needs_its_number_as_well_as_its_token(
    registry: ProviderRegistry,
) -> None:
    env = {"WHATSAPP_ACCESS_TOKEN": "EAAplatform-token-000000"}
    platform = platform_defaults(env, registry, llm_provider="openai", llm_model="m")
    assert platform.credential(IntegrationType.WHATSAPP, "meta") is None
    assert platform.whatsapp_phone_number_id is None


async def test_the_status_has_one_section_per_kind_in_its_shape(
    registry: ProviderRegistry,
) -> None:
    store = MemoryStore(any_tenant=True)
    store.credentials.append(
        Credential(TENANT, IntegrationType.PAYMENTS, "clip", Secrets({"apiKey": "k"}))
    )
    status = await use_cases(registry, store).status(TENANT)
    assert set(status.kinds) == set(KINDS)
    for itype, section in status.kinds.items():
        if KINDS[itype].shape is StatusShape.PER_PROVIDER:
            assert section.own is None and section.providers
        else:
            assert not section.providers
    assert list(status.payments) == ["stripe", "mercadopago", "clip"]
    assert status.payments["clip"] is not None and status.payments["stripe"] is None
    assert (status.whatsapp, status.llm, status.llm_provider, status.llm_model) == (
        None,
        None,
        "openai",
        "gpt-4o-mini",
    )
    assert status.kinds[IntegrationType.WHATSAPP].provider == "meta"


async def test_an_unknown_provider_is_a_404_in_the_path_and_a_422_in_the_body(
    registry: ProviderRegistry,
) -> None:
    integrations = use_cases(registry, MemoryStore(any_tenant=True))
    with pytest.raises(UnknownProviderInPath) as in_path:
        await integrations.get(TENANT, IntegrationType.PAYMENTS, "paypal")
    assert in_path.value.code == "unknown-payment-provider"
    assert in_path.value.message == (
        "No payment provider 'paypal' is installed; installed: clip, mercadopago, stripe"
    )
    with pytest.raises(UnknownProvider) as in_body:
        await integrations.configure(
            Actor("sub"), TENANT, IntegrationType.LLM, "gemini", {"apiKey": "k"}, {}
        )
    assert in_body.value.code == "unknown-llm-provider"
    assert in_body.value.message.startswith("Unknown LLM provider 'gemini'; installed: ")
    assert in_body.value.errors[0][0] == "provider"


async def test_whatsapp_config_errors_are_named_under_credentials_where_the_ids_travel(
    registry: ProviderRegistry,
) -> None:
    catalog = RegistryCatalog(registry)
    with pytest.raises(Exception) as info:
        catalog.normalize(
            IntegrationType.WHATSAPP,
            "meta",
            {"accessToken": "EAA-token"},
            {"phoneNumberId": "not-a-graph-id", "businessAccountId": "1"},
        )
    assert getattr(info.value, "errors", None)
    [(field, _)] = info.value.errors  # type: ignore[attr-defined]
    assert field == "credentials.phoneNumberId"
    with pytest.raises(Exception) as missing:
        catalog.normalize(
            IntegrationType.WHATSAPP, "meta", {"accessToken": "EAA-token"}, {"phoneNumberId": "1"}
        )
    assert missing.value.errors == [  # type: ignore[attr-defined]
        ("credentials.businessAccountId", "is required")
    ]
