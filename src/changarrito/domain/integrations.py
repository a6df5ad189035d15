"""Tenants configure their own integrations: status, configure, delete, verify.

Pure use cases over ports (store, cache invalidation, audit log, provider catalog), the same
for every kind: what differs by kind is its row in ``changarrito.domain.kinds``. Rules:

- Secrets are write-only (``integration_views.merge_secrets``): reading shows a hint and a
  fingerprint per field; a masked echo can never overwrite a real secret, and a secret
  that is not printable ASCII (non-ASCII, CR, LF, NUL) is refused at save time, every kind.
- A kind that claims numbers (WhatsApp): a ``phoneNumberId`` owned by another tenant, or the
  platform's own number, is a ``Conflict`` that never names the owner.
- A kind with ``one_per_tenant`` (LLM): configuring a provider removes its other providers.
- An unknown provider is a 404 when the URL names it (``/payments/{provider}``), a 422 on the
  body's ``provider`` field otherwise.
- Every write invalidates this process's cache (others hear of it through the store's change
  notifications) and appends an ``AuditEntry`` (never a secret).

A little past the house's 300-line bound on purpose: one use-case class whose five operations
share the rules above; its views (``integration_views``) and errors (``integration_errors``)
already live beside it, its ports (``ProviderCatalog``, ``Invalidator``...) in ``ports``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from changarrito.domain import resolution
from changarrito.domain.errors import NotConfigured, ProviderError
from changarrito.domain.integration_errors import (
    IntegrationNotConfigured,
    NumberTaken,
    UnknownProvider,
    UnknownProviderInPath,
)
from changarrito.domain.integration_views import (
    Actor,
    IntegrationView,
    KindStatus,
    Status,
    Verification,
    merge_secrets,
    scrub_secrets,
    view,
)
from changarrito.domain.kinds import KINDS, DefaultRule, Kind, StatusShape, kind_of
from changarrito.domain.model import (
    AuditEntry,
    Credential,
    IntegrationType,
    PlatformDefaults,
    Secrets,
    WhatsAppNumber,
    utcnow,
)
from changarrito.domain.ports import AuditLog, CredentialStore, Invalidator, ProviderCatalog

__all__ = [
    "Actor",
    "IntegrationNotConfigured",
    "IntegrationView",
    "Integrations",
    "NumberTaken",
    "Status",
    "UnknownProvider",
    "UnknownProviderInPath",
    "Verification",
]


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
        default_llm_model: str | None,
    ) -> None:
        self.store = store
        self.cache = cache
        self.audit = audit
        self.catalog = catalog
        self.platform = platform
        #: The platform's model, by kind, when its credential serves (``LLM_MODEL``; unset:
        #: the default provider's own default model).
        self.default_models = {IntegrationType.LLM: default_llm_model}

    # -- reading -------------------------------------------------------------------------

    def check_provider(self, itype: IntegrationType, provider: str) -> None:
        installed = self.catalog.installed(itype)
        if provider in installed:
            return
        kind = kind_of(itype)
        if kind.provider_in_path:
            raise UnknownProviderInPath(kind, provider, installed)
        raise UnknownProvider(kind, provider, installed)

    async def status(self, tenant_id: UUID) -> Status:
        stored = await self.store.credentials_for(tenant_id)
        numbers = await self.store.numbers_for(tenant_id)
        sections = {t: self._section(tenant_id, kind, stored) for t, kind in KINDS.items()}
        return Status(sections, numbers)

    def _section(self, tenant_id: UUID, kind: Kind, stored: list[Credential]) -> KindStatus:
        if kind.shape is StatusShape.PER_PROVIDER:
            installed = kind.ordered(self.catalog.installed(kind.type))
            return KindStatus(
                kind,
                providers={
                    p: resolution.pick_tenant_credential(tenant_id, kind.type, stored, p)
                    for p in installed
                },
            )
        own = resolution.pick_tenant_credential(tenant_id, kind.type, stored)
        provider = own.provider if own else self.platform.default_provider(kind.type)
        model = self._model(kind, own) if kind.status_provider else None
        return KindStatus(kind, own=own, provider=provider or kind.default_provider, model=model)

    def _model(self, kind: Kind, own: Credential | None) -> str | None:
        """The model the kind's serving provider answers with (``Kind.status_provider``)."""
        if own is None:
            provider = self.platform.default_provider(kind.type) or kind.default_provider
            chosen = self.default_models.get(kind.type)
            return chosen or (self.catalog.default_model(provider) if provider else None)
        return own.config.get("model") or self.catalog.default_model(own.provider)

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
        """Stores the tenant's credential for ``provider`` (see the module rules); for a kind
        that claims numbers, also claims the one in ``config["phoneNumberId"]``."""
        self.check_provider(itype, provider)
        kind = kind_of(itype)
        existing = await self._own(tenant_id, itype, provider)
        merged = merge_secrets(secrets, existing.secrets if existing else None)
        clean_secrets, clean_config = self.catalog.normalize(itype, provider, merged, config)
        await self.catalog.check_endpoints(clean_secrets)  # resolved now, and at every connect
        number = None
        if kind.claims_number:
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
        old_numbers = await self._numbers(tenant_id) if kind.claims_number else []
        if number is not None and any(n != number.phone_number_id for n in old_numbers):
            # A new number: release the old ones (the store claims, never releases).
            await self.store.delete_credentials(tenant_id, itype)
        saved = await self.store.save_credential(credential, number)
        if kind.one_per_tenant:
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
        numbers = await self._numbers(tenant_id) if kind_of(itype).claims_number else []
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
            message = scrub_secrets(exc.message, own.secrets)
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
        kind = kind_of(itype)
        if kind.default is DefaultRule.PINNED:
            provider = provider or kind.default_provider
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
