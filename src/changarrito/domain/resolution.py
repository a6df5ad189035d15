"""The fallback policy: which credential serves a tenant, as pure functions.

Order, for one tenant and one integration type (optionally one provider):

1. the tenant's own *active* credentials of that type (and provider, when one is asked for),
   lowest ``priority`` first, then the most recently updated, then the highest id, so the
   answer never depends on the order the store returned them in;
2. else the platform's credential for that type and provider (the type's default provider when
   none is asked for), from the environment;
3. else ``NotConfigured``, whose message names the environment variable and the endpoint that
   would fix it.

Credentials of any other tenant are ignored whatever the store hands over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from changarrito.domain.errors import NotConfigured, UnknownPhoneNumber
from changarrito.domain.kinds import kind_of
from changarrito.domain.model import (
    Credential,
    IntegrationType,
    PlatformDefaults,
    Resolved,
    Route,
    Source,
    WhatsAppNumber,
)


def configure_endpoint(itype: IntegrationType, provider: str | None = None) -> str:
    """The tenant API endpoint that configures an integration."""
    return kind_of(itype).endpoint(provider)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _rank(credential: Credential) -> tuple[int, int, int]:
    """Sort key: lowest priority, then newest update, then highest id (a total order).

    The update time counts in whole microseconds: a float timestamp cannot tell apart updates
    a microsecond apart after 2112, and then the older credential could win on its id.
    """
    updated = credential.updated_at
    if updated.tzinfo is None:  # naive means local time, as ``datetime.timestamp()`` reads it
        updated = updated.astimezone()
    return (credential.priority, -((updated - _EPOCH) // _MICROSECOND), -credential.id.int)


def pick_tenant_credential(
    tenant_id: UUID,
    itype: IntegrationType,
    stored: Iterable[Credential],
    provider: str | None = None,
) -> Credential | None:
    """The tenant's winning active credential (rule 1), or ``None``."""
    candidates = [
        c
        for c in stored
        if c.tenant_id == tenant_id
        and c.integration_type == itype  # equality: a store may load the type as plain text
        and c.is_active
        and (provider is None or c.provider == provider)
    ]
    if not candidates:
        return None
    return min(candidates, key=_rank)


def resolve(
    tenant_id: UUID,
    itype: IntegrationType,
    stored: Iterable[Credential],
    platform: PlatformDefaults,
    provider: str | None = None,
) -> Resolved:
    """The credential that serves ``tenant_id`` for ``itype`` (see the module docstring)."""
    own = pick_tenant_credential(tenant_id, itype, stored, provider)
    if own is not None:
        return Resolved(
            tenant_id=tenant_id,
            integration_type=itype,
            provider=own.provider,
            secrets=own.secrets,
            config=own.config,
            source=Source.TENANT,
            credential_id=own.id,
            is_verified=own.is_verified,
        )
    wanted = provider or platform.default_provider(itype)
    fallback = platform.credential(itype, wanted) if wanted else None
    if fallback is not None:
        return Resolved(
            tenant_id=tenant_id,
            integration_type=itype,
            provider=fallback.provider,
            secrets=fallback.secrets,
            config=fallback.config,
            source=Source.PLATFORM,
        )
    raise NotConfigured(_not_configured_message(tenant_id, itype, wanted, platform))


def _not_configured_message(
    tenant_id: UUID | None,
    itype: IntegrationType,
    provider: str | None,
    platform: PlatformDefaults,
) -> str:
    what = f"{itype.value} ({provider})" if provider else itype.value
    # The variable of the provider asked for; with none (and no default), any of the type's.
    hints = sorted(
        hint
        for (t, p), hint in platform.env_hints.items()
        if t == itype and (provider is None or p == provider)
    )
    env = f"set {' or '.join(hints)}" if hints else "configure the platform's credentials"
    who = f"tenant {tenant_id}" if tenant_id else "the platform"
    return (
        f"No {what} credentials for {who}: {env} or "
        f"{configure_endpoint(itype, provider)} for the tenant"
    )


def route_number(
    phone_number_id: str, owner: WhatsAppNumber | None, platform: PlatformDefaults
) -> Route:
    """Which tenant answers messages received on ``phone_number_id``.

    The platform's own number always belongs to the platform; any other number must be owned by
    a tenant and active. Anything else is refused: a message is never answered from a number
    other than the one that received it.
    """
    if phone_number_id == platform.whatsapp_phone_number_id:
        return Route(phone_number_id=phone_number_id, tenant_id=None)
    if owner is not None and owner.phone_number_id == phone_number_id and owner.is_active:
        return Route(phone_number_id=phone_number_id, tenant_id=owner.tenant_id)
    raise UnknownPhoneNumber(
        f"WhatsApp phone number id {phone_number_id} belongs to no active tenant and is not "
        "the platform's (WHATSAPP_PHONE_NUMBER_ID)"
    )


def resolve_sender(
    route: Route, stored: Iterable[Credential], platform: PlatformDefaults
) -> Resolved:
    """The WhatsApp credential that sends from ``route.phone_number_id``.

    A tenant's number sends only with that tenant's own active WhatsApp credential: the
    platform's token cannot speak for a number in another business account. The result's
    ``config["phoneNumberId"]`` is always the routed number.
    """
    itype = IntegrationType.WHATSAPP
    if route.tenant_id is None:
        provider = platform.default_provider(itype)
        fallback = platform.credential(itype, provider) if provider else None
        if fallback is None:
            raise NotConfigured(_not_configured_message(None, itype, provider, platform))
        return Resolved(
            tenant_id=None,
            integration_type=itype,
            provider=fallback.provider,
            secrets=fallback.secrets,
            config={**fallback.config, "phoneNumberId": route.phone_number_id},
            source=Source.PLATFORM,
        )
    own = pick_tenant_credential(route.tenant_id, itype, stored)
    if own is None:
        raise NotConfigured(
            f"Tenant {route.tenant_id} owns WhatsApp number {route.phone_number_id} but has no "
            f"active WhatsApp credential: {configure_endpoint(itype)}"
        )
    return Resolved(
        tenant_id=route.tenant_id,
        integration_type=itype,
        provider=own.provider,
        secrets=own.secrets,
        config={**own.config, "phoneNumberId": route.phone_number_id},
        source=Source.TENANT,
        credential_id=own.id,
        is_verified=own.is_verified,
    )


def resolve_transcriber(
    llm: Resolved,
    platform: PlatformDefaults,
    can_transcribe: Callable[[str], bool],
    *,
    platform_provider: str | None = None,
    platform_model: str | None = None,
    platform_allowed: bool = False,
) -> Resolved:
    """The credential that transcribes a voice note for the tenant whose LLM credential
    resolved to ``llm`` (``resolve(..., IntegrationType.LLM, ...)``):

    1. the tenant's own LLM credential, when its provider can transcribe (source tenant);
    2. else the platform's transcription credential: the platform's credential of
       ``platform_provider`` (``CHANGARRITO_TRANSCRIPTION_PROVIDER``; unset, the platform's
       LLM provider), when that provider can transcribe, with ``platform_model`` as its
       ``transcriptionModel`` and the tenant's ``transcriptionLanguage`` — for a tenant on
       the platform's LLM (or the platform's own number) always, as its replies are; for a
       tenant with an LLM of its own only when the operator allows it (``platform_allowed``,
       ``CHANGARRITO_TRANSCRIPTION_PLATFORM_FALLBACK``);
    3. else ``NotConfigured``, saying which of those is missing.
    """
    if llm.source is Source.TENANT and can_transcribe(llm.provider):
        return llm
    if llm.source is Source.TENANT and not platform_allowed:
        raise NotConfigured(
            f"the tenant's LLM provider {llm.provider} cannot transcribe voice notes, and the "
            "platform does not transcribe for tenants with an LLM of their own "
            "(CHANGARRITO_TRANSCRIPTION_PLATFORM_FALLBACK is off)"
        )
    return platform_transcriber(llm, platform, can_transcribe, platform_provider, platform_model)


def platform_transcriber(
    llm: Resolved,
    platform: PlatformDefaults,
    can_transcribe: Callable[[str], bool],
    platform_provider: str | None = None,
    platform_model: str | None = None,
) -> Resolved:
    """Rule 2 of ``resolve_transcriber``: the platform's transcription credential for the
    tenant of ``llm`` (also the fallback for a tenant's own transcription key that fails for
    good, when the operator allows it); ``NotConfigured`` when there is none."""
    wanted = platform_provider or platform.default_provider(IntegrationType.LLM)
    credential = platform.credential(IntegrationType.LLM, wanted) if wanted else None
    if credential is None or not can_transcribe(credential.provider):
        why = (
            f"the platform's {wanted} cannot transcribe"
            if credential is not None
            else "no platform transcription provider is configured"
        )
        raise NotConfigured(
            f"No transcription for {_who(llm.tenant_id)}: {why} (set "
            "CHANGARRITO_TRANSCRIPTION_PROVIDER to a platform LLM provider that transcribes, "
            "such as openai with OPENAI_API_KEY, or give the tenant such an LLM provider)"
        )
    config = dict(credential.config)
    if platform_model:
        config["transcriptionModel"] = platform_model
    language = llm.config.get("transcriptionLanguage")
    if isinstance(language, str):
        config["transcriptionLanguage"] = language
    return Resolved(
        tenant_id=llm.tenant_id,
        integration_type=IntegrationType.LLM,
        provider=credential.provider,
        secrets=credential.secrets,
        config=config,
        source=Source.PLATFORM,
    )


def _who(tenant_id: UUID | None) -> str:
    return f"tenant {tenant_id}" if tenant_id and tenant_id.int else "the platform"
