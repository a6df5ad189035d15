"""Who transcribes a voice note: ``resolution.resolve_transcriber``, one property per rule."""

from __future__ import annotations

from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from changarrito.domain.errors import NotConfigured
from changarrito.domain.model import (
    IntegrationType,
    PlatformCredential,
    PlatformDefaults,
    Resolved,
    Secrets,
    Source,
)
from changarrito.domain.resolution import platform_transcriber, resolve_transcriber

PROPERTY = settings(deadline=None, max_examples=80)
LLM = IntegrationType.LLM
PROVIDERS = ["openai", "azure-openai", "anthropic", "ollama"]
TRANSCRIBING = frozenset({"openai", "azure-openai"})

providers = st.sampled_from(PROVIDERS)
capable = st.sets(st.sampled_from(PROVIDERS)).map(frozenset)


@st.composite
def llm_credentials(draw: st.DrawFn) -> Resolved:
    """What a tenant's LLM resolved to: its own credential, or the platform's."""
    source = draw(st.sampled_from(Source))
    provider = draw(providers)
    language = draw(st.none() | st.sampled_from(["es", "pt"]))
    return Resolved(
        tenant_id=draw(st.uuids()),
        integration_type=LLM,
        provider=provider,
        secrets=Secrets({"apiKey": f"sk-{source.value}-{provider}"}),
        config={"model": "m", **({"transcriptionLanguage": language} if language else {})},
        source=source,
    )


@st.composite
def platforms(draw: st.DrawFn) -> PlatformDefaults:
    configured = draw(st.sets(providers))
    return PlatformDefaults(
        credentials={
            (LLM, p): PlatformCredential(LLM, p, Secrets({"apiKey": f"sk-platform-{p}"}))
            for p in configured
        },
        default_providers={LLM: draw(providers)},
    )


@PROPERTY
@given(llm_credentials(), platforms(), capable, st.none() | providers, st.booleans())
def test_the_tenants_own_key_transcribes_whenever_its_provider_can(
    llm: Resolved,
    platform: PlatformDefaults,
    can: frozenset[str],
    chosen: str | None,
    allowed: bool,
) -> None:
    try:
        got = resolve_transcriber(
            llm, platform, can.__contains__, platform_provider=chosen, platform_allowed=allowed
        )
    except NotConfigured:
        got = None
    if llm.source is Source.TENANT and llm.provider in can:
        assert got is llm
    elif got is not None:
        assert got.source is Source.PLATFORM
        assert got.secrets.reveal()["apiKey"].startswith("sk-platform-")


@PROPERTY
@given(llm_credentials(), platforms(), capable, st.none() | providers)
def test_a_tenant_with_its_own_llm_never_gets_the_platforms_transcription_unless_allowed(
    llm: Resolved, platform: PlatformDefaults, can: frozenset[str], chosen: str | None
) -> None:
    try:
        got = resolve_transcriber(llm, platform, can.__contains__, platform_provider=chosen)
    except NotConfigured as exc:
        assert "transcri" in exc.message
        return
    assert got.source is llm.source
    if got.source is Source.TENANT:
        assert got is llm


@PROPERTY
@given(llm_credentials(), platforms(), capable, st.none() | providers, st.booleans())
def test_the_platform_transcribes_only_with_a_provider_that_can_and_is_configured(
    llm: Resolved,
    platform: PlatformDefaults,
    can: frozenset[str],
    chosen: str | None,
    allowed: bool,
) -> None:
    try:
        got = resolve_transcriber(
            llm, platform, can.__contains__, platform_provider=chosen, platform_allowed=allowed
        )
    except NotConfigured:
        wanted = chosen or platform.default_provider(LLM)
        platform_ok = wanted in can and platform.credential(LLM, wanted or "") is not None
        own_ok = llm.source is Source.TENANT and llm.provider in can
        may_fall_back = llm.source is Source.PLATFORM or allowed
        assert not own_ok and not (platform_ok and may_fall_back)
        return
    assert got.provider in can
    if got.source is Source.PLATFORM:
        assert got.provider == (chosen or platform.default_provider(LLM))
        assert got.tenant_id == llm.tenant_id  # billed to the tenant it transcribed for
        language = llm.config.get("transcriptionLanguage")
        assert got.config.get("transcriptionLanguage") == language


def platform_with(*configured: str, default: str = "openai") -> PlatformDefaults:
    return PlatformDefaults(
        credentials={
            (LLM, p): PlatformCredential(
                LLM, p, Secrets({"apiKey": f"sk-platform-{p}"}), {"model": "gpt-4o-mini"}
            )
            for p in configured
        },
        default_providers={LLM: default},
    )


def own(provider: str, source: Source = Source.TENANT) -> Resolved:
    return Resolved(
        tenant_id=UUID(int=5),
        integration_type=LLM,
        provider=provider,
        secrets=Secrets({"apiKey": "sk-tenant"}),
        config={"model": "claude", "transcriptionModel": "mine"},
        source=source,
    )


def test_the_platform_model_is_the_operators_and_never_the_tenants() -> None:
    got = resolve_transcriber(
        own("anthropic"),
        platform_with("openai"),
        TRANSCRIBING.__contains__,
        platform_model="whisper-1",
        platform_allowed=True,
    )

    assert got.config["transcriptionModel"] == "whisper-1"
    assert got.secrets.reveal() == {"apiKey": "sk-platform-openai"}


def test_refusing_the_platform_says_which_setting_would_allow_it() -> None:
    with pytest.raises(NotConfigured, match="CHANGARRITO_TRANSCRIPTION_PLATFORM_FALLBACK"):
        resolve_transcriber(own("anthropic"), platform_with("openai"), TRANSCRIBING.__contains__)


def test_no_platform_transcriber_says_how_to_configure_one() -> None:
    with pytest.raises(NotConfigured, match="CHANGARRITO_TRANSCRIPTION_PROVIDER"):
        platform_transcriber(
            own("anthropic", Source.PLATFORM),
            platform_with("anthropic", default="anthropic"),
            TRANSCRIBING.__contains__,
        )
