"""Tenants configure their own integrations: status, configure, delete, verify.

Pure use cases over ports (store, cache invalidation, audit log, provider catalog). Rules:

- Secrets are write-only. Reading shows a hint (``…a1b2``) and a fingerprint per field. On a
  write, a secret field that is omitted, ``null`` or equal to the stored value's hint keeps the
  stored value; any other masked-looking value (starting with ``…``) is refused, so a masked
  echo can never overwrite a real secret.
- A WhatsApp ``phoneNumberId`` owned by another tenant, or the platform's own number, is a
  ``Conflict`` that never names the owner.
- A tenant has one LLM configuration: configuring a provider removes its other LLM providers.
- Every write invalidates this process's cache (others hear of it through the store's change
  notifications) and appends an ``AuditEntry`` (never a secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from changarrito.domain import resolution
from changarrito.domain.errors import (
    Conflict,
    NotConfigured,
    NotFound,
    ProviderError,
    ValidationFailed,
)
from changarrito.domain.model import (
    WHATSAPP_PROVIDER,
    AuditEntry,
    Credential,
    IntegrationType,
    PlatformDefaults,
    Secrets,
    WhatsAppNumber,
    utcnow,
)
from changarrito.domain.ports import AuditLog, CredentialStore

MASK = "…"
#: Payment providers in the order of the contract's status shape; others follow, sorted.
PAYMENT_ORDER = ("stripe", "mercadopago", "clip")


class UnknownLLMProvider(ValidationFailed):
    """No LLM provider by that id is installed."""

    code = "unknown-llm-provider"


class UnknownPaymentProvider(NotFound):
    """No payment provider by that id is installed."""

    code = "unknown-payment-provider"


class IntegrationNotConfigured(NotFound):
    """This tenant has no credentials of its own for this integration."""

    code = "integration-not-configured"


class NumberTaken(Conflict):
    """This WhatsApp phone number id is already registered to another account."""

    code = "phone-number-taken"


class ProviderCatalog(Protocol):
    """What the use cases need of the installed providers (WhatsApp included)."""

    def installed(self, itype: IntegrationType) -> list[str]: ...

    def default_model(self, provider: str) -> str | None: ...

    def normalize(
        self,
        itype: IntegrationType,
        provider: str,
        secrets: Mapping[str, str],
        config: Mapping[str, Any],
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """Secrets and config checked against the provider's schemas; ``ValidationFailed``
        with field-level ``errors`` otherwise."""
        ...

    async def verify(
        self, itype: IntegrationType, provider: str, secrets: Secrets, config: Mapping[str, Any]
    ) -> None:
        """A cheap authenticated call; a ``ProviderError`` (scrubbed) when it fails."""
        ...


class Invalidator(Protocol):
    def invalidate_tenant(self, tenant_id: UUID) -> None: ...

    def invalidate_number(self, phone_number_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks (the JWT's ``sub``) and from where."""

    subject: str
    client_ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class SecretView:
    hint: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class IntegrationView:
    """One stored integration as a tenant may see it: no secret beyond hints."""

    integration: IntegrationType
    provider: str
    is_active: bool
    is_verified: bool
    verified_at: datetime | None
    verification_error: str | None
    updated_at: datetime
    secrets: dict[str, SecretView]
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Verification:
    integration: IntegrationType
    provider: str
    is_verified: bool
    checked_at: datetime
    error: str | None = None
    error_code: str | None = None
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    """The tenant's integrations at a glance (the contract's ``status`` shape)."""

    whatsapp: Credential | None
    whatsapp_numbers: list[WhatsAppNumber]
    llm: Credential | None
    llm_provider: str
    llm_model: str | None
    payments: dict[str, Credential | None] = field(default_factory=dict)


def view(credential: Credential) -> IntegrationView:
    secrets = credential.secrets
    return IntegrationView(
        integration=IntegrationType(credential.integration_type),
        provider=credential.provider,
        is_active=credential.is_active,
        is_verified=credential.is_verified,
        verified_at=credential.verified_at,
        verification_error=credential.verification_error,
        updated_at=credential.updated_at,
        secrets={
            k: SecretView(secrets.hint(k) or MASK, secrets.fingerprint(k) or "") for k in secrets
        },
        config=dict(credential.config),
    )


def merge_secrets(
    given: Mapping[str, str | None], stored: Secrets | None, where: str = "credentials"
) -> dict[str, str]:
    """The secrets to store: ``given`` over ``stored`` (see the module docstring)."""
    merged = dict(stored.reveal()) if stored is not None else {}
    problems: list[tuple[str, str]] = []
    for name, value in given.items():
        if value is None:
            continue
        if stored is not None and name in stored and value == stored.hint(name):
            continue
        if not value:
            problems.append(
                (f"{where}.{name}", "must not be empty; omit it to keep the stored value")
            )
            continue
        if value.startswith(MASK):
            problems.append(
                (f"{where}.{name}", "is a masked value; send the real secret or omit the field")
            )
            continue
        merged[name] = value
    if problems:
        raise ValidationFailed("masked values cannot be stored", errors=problems)
    return merged


def _scrub(text: str, secrets: Secrets) -> str:
    for value in sorted(secrets.values(), key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return text


class Integrations:
    """The tenant API's use cases."""

    def __init__(
        self,
        store: CredentialStore,
        cache: Invalidator,
        audit: AuditLog,
        catalog: ProviderCatalog,
        platform: PlatformDefaults,
        *,
        default_llm_model: str,
    ) -> None:
        self.store = store
        self.cache = cache
        self.audit = audit
        self.catalog = catalog
        self.platform = platform
        self.default_llm_model = default_llm_model

    # -- reading -------------------------------------------------------------------------

    def check_provider(self, itype: IntegrationType, provider: str) -> None:
        installed = self.catalog.installed(itype)
        if provider in installed:
            return
        names = ", ".join(installed) or "none"
        if itype is IntegrationType.PAYMENTS:
            raise UnknownPaymentProvider(
                f"No payment provider {provider!r} is installed; installed: {names}"
            )
        raise UnknownLLMProvider(
            f"Unknown LLM provider {provider!r}; installed: {names}",
            errors=[("provider", f"must be one of: {names}")],
        )

    async def status(self, tenant_id: UUID) -> Status:
        stored = await self.store.credentials_for(tenant_id)
        numbers = await self.store.numbers_for(tenant_id)
        wa = resolution.pick_tenant_credential(tenant_id, IntegrationType.WHATSAPP, stored)
        llm = resolution.pick_tenant_credential(tenant_id, IntegrationType.LLM, stored)
        if llm is not None:
            provider = llm.provider
            model = llm.config.get("model") or self.catalog.default_model(provider)
        else:
            provider = self.platform.default_provider(IntegrationType.LLM) or "openai"
            model = self.default_llm_model
        installed = self.catalog.installed(IntegrationType.PAYMENTS)
        order = [p for p in PAYMENT_ORDER if p in installed]
        order += [p for p in sorted(installed) if p not in order]
        payments = {
            p: resolution.pick_tenant_credential(tenant_id, IntegrationType.PAYMENTS, stored, p)
            for p in order
        }
        return Status(wa, numbers, llm, provider, model, payments)

    async def get(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> IntegrationView:
        """The tenant's own credential (its LLM, whichever provider, when none is named)."""
        if provider is not None:
            self.check_provider(itype, provider)
        own = await self._own(tenant_id, itype, provider)
        if own is None:
            raise IntegrationNotConfigured(
                f"This tenant has no {itype.value} credentials of its own: "
                f"{resolution.configure_endpoint(itype, provider)}"
            )
        return view(own)

    async def _own(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Credential | None:
        stored = await self.store.credentials_for(tenant_id, itype)
        return resolution.pick_tenant_credential(tenant_id, itype, stored, provider)

    # -- writing -------------------------------------------------------------------------

    async def configure(
        self,
        actor: Actor,
        tenant_id: UUID,
        itype: IntegrationType,
        provider: str,
        secrets: Mapping[str, str | None],
        config: Mapping[str, Any],
    ) -> IntegrationView:
        """Stores the tenant's credential for ``provider`` (see the module rules); for
        WhatsApp, also claims the number in ``config["phoneNumberId"]``."""
        self.check_provider(itype, provider)
        existing = await self._own(tenant_id, itype, provider)
        merged = merge_secrets(secrets, existing.secrets if existing else None)
        clean_secrets, clean_config = self.catalog.normalize(itype, provider, merged, config)
        number = None
        if itype is IntegrationType.WHATSAPP:
            number = WhatsAppNumber(
                tenant_id=tenant_id,
                phone_number_id=str(clean_config["phoneNumberId"]),
                phone_number=clean_config.get("phoneNumber"),
                display_name=clean_config.get("displayName"),
            )
            await self._check_number(tenant_id, number.phone_number_id)
        unchanged = (
            existing is not None
            and existing.secrets.reveal() == clean_secrets
            and dict(existing.config) == clean_config
        )
        credential = Credential(
            tenant_id=tenant_id,
            integration_type=itype,
            provider=provider,
            secrets=Secrets(clean_secrets),
            config=clean_config,
            is_verified=unchanged and existing is not None and existing.is_verified,
            verified_at=existing.verified_at if unchanged and existing else None,
        )
        old_numbers = await self._numbers(tenant_id) if itype is IntegrationType.WHATSAPP else []
        if number is not None and any(n != number.phone_number_id for n in old_numbers):
            # A new number: release the old ones (the store claims, never releases).
            await self.store.delete_credentials(tenant_id, itype)
        saved = await self.store.save_credential(credential, number)
        if itype is IntegrationType.LLM:  # one LLM configuration per tenant
            for other in self.catalog.installed(itype):
                if other != provider:
                    await self.store.delete_credentials(tenant_id, itype, other)
        self._invalidate(tenant_id, [*old_numbers, *([number.phone_number_id] if number else [])])
        before = existing.secrets.reveal() if existing else {}
        changed = sorted(k for k, v in clean_secrets.items() if before.get(k) != v)
        await self._audit(
            actor,
            tenant_id,
            itype,
            provider,
            "configure",
            details={"secretsChanged": changed, "created": existing is None},
        )
        return view(saved)

    async def _check_number(self, tenant_id: UUID, phone_number_id: str) -> None:
        taken = NumberTaken(
            f"WhatsApp phone number id {phone_number_id} is already registered to another account"
        )
        if phone_number_id == self.platform.whatsapp_phone_number_id:
            raise taken
        owner = await self.store.number_owner(phone_number_id)
        if owner is not None and owner.tenant_id != tenant_id:
            raise taken

    async def _numbers(self, tenant_id: UUID) -> list[str]:
        return [n.phone_number_id for n in await self.store.numbers_for(tenant_id)]

    async def delete(
        self, actor: Actor, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> int:
        """Back to the platform default; returns how many credentials went."""
        if provider is not None:
            self.check_provider(itype, provider)
        numbers = await self._numbers(tenant_id) if itype is IntegrationType.WHATSAPP else []
        deleted = await self.store.delete_credentials(tenant_id, itype, provider)
        self._invalidate(tenant_id, numbers)
        await self._audit(actor, tenant_id, itype, provider, "delete", details={"deleted": deleted})
        return deleted

    async def verify(
        self, actor: Actor, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Verification:
        """Asks the provider whether the tenant's stored credential works; records the answer.
        Without ``provider``, the tenant's winning credential of the type is checked."""
        if provider is not None:
            self.check_provider(itype, provider)
        own = await self._own(tenant_id, itype, provider)
        if own is None:
            raise NotConfigured(
                f"Nothing to verify: this tenant has no {itype.value} credentials of its own; "
                f"{resolution.configure_endpoint(itype, provider)} first"
            )
        provider = own.provider
        try:
            await self.catalog.verify(itype, provider, own.secrets, own.config)
        except ProviderError as exc:
            message = _scrub(exc.message, own.secrets)
            await self.store.set_verified(tenant_id, itype, provider, False, message)
            result = Verification(
                itype, provider, False, utcnow(), message, exc.code, exc.retryable
            )
        else:
            await self.store.set_verified(tenant_id, itype, provider, True)
            result = Verification(itype, provider, True, utcnow())
        self.cache.invalidate_tenant(tenant_id)
        await self._audit(
            actor,
            tenant_id,
            itype,
            provider,
            "verify",
            outcome="ok" if result.is_verified else "failed",
            details={"error": result.error_code} if result.error_code else {},
        )
        return result

    # -- helpers -------------------------------------------------------------------------

    def _invalidate(self, tenant_id: UUID, numbers: list[str]) -> None:
        self.cache.invalidate_tenant(tenant_id)
        for number in dict.fromkeys(numbers):
            self.cache.invalidate_number(number)

    async def _audit(
        self,
        actor: Actor,
        tenant_id: UUID,
        itype: IntegrationType,
        provider: str | None,
        action: str,
        *,
        outcome: str = "ok",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        if itype is IntegrationType.WHATSAPP:
            provider = provider or WHATSAPP_PROVIDER
        await self.audit.record(
            AuditEntry(
                tenant_id=tenant_id,
                actor=actor.subject,
                integration=itype.value,
                action=action,
                provider=provider,
                outcome=outcome,
                client_ip=actor.client_ip,
                user_agent=actor.user_agent,
                details=dict(details or {}),
            )
        )
